//! The names of the browsable views beside the date tree, and the rule that keeps them from
//! ever colliding with it.
//!
//! The root of the mount holds the date tree exactly as `sync -d` writes it. The views are a
//! handful of directories beside it, named like the sidebar of Apple's Photos app. A folder
//! template can put anything at the top of the date tree (`{album}` puts album names there,
//! `none` puts photos there), so a view whose name is taken by a date-tree entry (compared
//! ignoring case, as the layout compares names) gets ` (2)`, ` (3)`, ... until it is free: the
//! date tree always wins and stays byte-identical to the `sync` tree.

use std::collections::HashSet;

use crate::catalog::SmartFolder;

/// User albums, in their folders.
pub const ALBUMS: &str = "Albums";
/// The favourites smart folder.
pub const FAVORITES: &str = "Favorites";
/// The media-type smart folders (videos, live photos, screenshots, ...).
pub const MEDIA_TYPES: &str = "Media Types";
/// Hidden photos.
pub const HIDDEN: &str = "Hidden";
/// Photos in Recently Deleted.
pub const RECENTLY_DELETED: &str = "Recently Deleted";
/// Libraries other than the ones laid out at the root (a shared library, ...).
pub const LIBRARIES: &str = "Libraries";

/// Every top-level view name, in the order suffixes are chosen.
pub const TOP_LEVEL: [&str; 6] = [
    ALBUMS,
    FAVORITES,
    MEDIA_TYPES,
    HIDDEN,
    RECENTLY_DELETED,
    LIBRARIES,
];

/// Where each smart folder is shown: its top-level view (by name in [`TOP_LEVEL`]) and, for
/// media types, its sub-directory name.
pub fn smart_folder_place(folder: SmartFolder) -> (&'static str, Option<&'static str>) {
    match folder {
        SmartFolder::Favorites => (FAVORITES, None),
        SmartFolder::Hidden => (HIDDEN, None),
        SmartFolder::RecentlyDeleted => (RECENTLY_DELETED, None),
        SmartFolder::Videos => (MEDIA_TYPES, Some("Videos")),
        SmartFolder::LivePhotos => (MEDIA_TYPES, Some("Live Photos")),
        SmartFolder::Screenshots => (MEDIA_TYPES, Some("Screenshots")),
        SmartFolder::Bursts => (MEDIA_TYPES, Some("Bursts")),
        SmartFolder::Panoramas => (MEDIA_TYPES, Some("Panoramas")),
        SmartFolder::SloMo => (MEDIA_TYPES, Some("Slo-mo")),
        SmartFolder::TimeLapse => (MEDIA_TYPES, Some("Time-lapse")),
    }
}

/// The display name of a library in `Libraries/` (before sibling de-duplication).
pub fn library_name(zone: &str) -> String {
    if zone == "PrimarySync" {
        "Personal Library".to_string()
    } else if zone.starts_with("SharedSync-") {
        "Shared Library".to_string()
    } else {
        zone.to_string()
    }
}

/// The names the views actually get, given the date tree's top-level names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopNames {
    names: Vec<(&'static str, String)>,
}

impl TopNames {
    /// Choose a free name for every view: its own name when no date-tree entry at the root has
    /// it (ignoring case), else the first free `NAME (n)`, n = 2, 3, ...
    pub fn choose<'a>(date_tree_top: impl IntoIterator<Item = &'a str>) -> TopNames {
        let mut taken: HashSet<String> = date_tree_top.into_iter().map(str::to_lowercase).collect();
        let mut names = Vec::with_capacity(TOP_LEVEL.len());
        for view in TOP_LEVEL {
            let mut candidate = view.to_string();
            let mut n = 2u32;
            while taken.contains(&candidate.to_lowercase()) {
                candidate = format!("{view} ({n})");
                n += 1;
            }
            taken.insert(candidate.to_lowercase());
            names.push((view, candidate));
        }
        TopNames { names }
    }

    /// The name given to the view called `view` (one of [`TOP_LEVEL`]).
    pub fn get(&self, view: &'static str) -> &str {
        self.names
            .iter()
            .find(|(v, _)| *v == view)
            .map(|(_, n)| n.as_str())
            .unwrap_or(view)
    }

    /// Every (view, chosen name) pair.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.names.iter().map(|(v, n)| (*v, n.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_keep_their_names_beside_a_date_tree() {
        let names = TopNames::choose(["2023", "2024"]);
        for view in TOP_LEVEL {
            assert_eq!(names.get(view), view);
        }
    }

    #[test]
    fn a_taken_name_gets_the_first_free_suffix_ignoring_case() {
        let names = TopNames::choose(["albums", "Albums (2)", "Hidden", "IMG_0001.JPG"]);
        assert_eq!(names.get(ALBUMS), "Albums (3)");
        assert_eq!(names.get(HIDDEN), "Hidden (2)");
        assert_eq!(names.get(FAVORITES), FAVORITES);
        // Deterministic: the same tree gives the same names.
        assert_eq!(
            names,
            TopNames::choose(["Hidden", "IMG_0001.JPG", "Albums (2)", "albums"])
        );
    }

    #[test]
    fn every_smart_folder_has_a_place_under_a_top_level_view() {
        let mut seen = HashSet::new();
        for f in SmartFolder::ALL {
            let (top, sub) = smart_folder_place(f);
            assert!(TOP_LEVEL.contains(&top));
            assert!(seen.insert((top, sub)), "{f:?} shares a directory");
        }
    }

    #[test]
    fn smart_folders_are_listed_under_their_mount_names() {
        for f in SmartFolder::ALL {
            let (top, sub) = smart_folder_place(f);
            assert_eq!(sub.unwrap_or(top), f.album_name(), "{f:?}");
        }
    }

    #[test]
    fn library_names() {
        assert_eq!(library_name("PrimarySync"), "Personal Library");
        assert_eq!(library_name("SharedSync-1234"), "Shared Library");
        assert_eq!(library_name("Other"), "Other");
    }
}

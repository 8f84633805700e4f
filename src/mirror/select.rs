//! Which assets and files a run takes: the selection flags (`--library`, `--album`, smart
//! folders, `--skip-videos`, `--skip-photos`, `--skip-created-before/after`, `--recent`,
//! `--until-found`, `--filename-exclude`) as one typed value, resolved against the catalog.
//!
//! The order is icloudpd's: `--recent N` takes the N newest assets of the listing (All Photos,
//! or the albums and smart folders asked for), and the other filters (kind, dates, excluded
//! albums) then drop some of those; `--until-found` walks what is left.
//!
//! Per-asset filters ([`Selection::accepts`]) are pure; album and smart-folder names become
//! catalog [`AssetFilter`]s only once the catalog holds the album tree (after a refresh), in
//! [`Selection::sources`]. `--filename-exclude` applies to planned files *after* collision
//! handling ([`Selection::keeps_file`]), so excluding a file never renames another one.

use std::collections::HashSet;

use chrono::{DateTime, Local, NaiveDate, TimeZone, Utc};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::catalog::{
    AlbumEntry, AssetFilter, Catalog, CatalogError, LibraryId, SmartFolder, StoredAsset,
};
use crate::model::ItemKind;
use crate::refresh::LibrarySelector;

/// Why selection flags were refused.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error(
        "invalid date {value:?} for {flag}: use YYYY-MM-DD, an RFC 3339 time or Nd (N days ago)"
    )]
    BadDate { flag: &'static str, value: String },
    #[error("invalid --filename-exclude pattern {pattern:?}: {reason}")]
    BadGlob { pattern: String, reason: String },
    #[error("--skip-photos and --skip-videos together select nothing")]
    NothingSelected,
    #[error(
        "--skip-created-before {before} is later than --skip-created-after {after}: no photo \
         can be in both ranges"
    )]
    EmptyDateRange { before: String, after: String },
    #[error("--album {0:?} and --album \"!{0}\" both name the same album")]
    AlbumTakenAndExcluded(String),
    #[error("--recent and --until-found must be at least 1")]
    ZeroCount,
    #[error(
        "no album or smart folder named {0:?} in the catalog (run `icloudpd-rs list albums`; \
         smart folders: {SMART_NAMES})"
    )]
    UnknownAlbum(String),
    #[error(
        "--album \"!{0}\": no album or folder named {0:?} in the catalog (run `icloudpd-rs list \
         albums`)"
    )]
    UnknownExcludedAlbum(String),
    #[error("album name {0:?} matches several albums; use its full path, e.g. \"Folder/Album\"")]
    AmbiguousAlbum(String),
    #[error("no library matches --library {0:?} in the catalog")]
    NoLibrary(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Smart folder names accepted by `--album`, as the help and errors list them.
pub const SMART_NAMES: &str = "All Photos, Favorites, Videos, Live Photos, Screenshots, \
     Bursts, Panoramas, Slo-mo, Time-lapse, Hidden, Recently Deleted";

/// The selection flags, checked.
#[derive(Debug, Clone)]
pub struct Selection {
    pub libraries: LibrarySelector,
    /// Albums or smart folders to take (`--album NAME`); empty = All Photos.
    pub albums: Vec<String>,
    /// `--album all`: every user album.
    pub all_albums: bool,
    /// Albums whose members are left out (`--album '!NAME'`).
    pub exclude_albums: Vec<String>,
    pub skip_videos: bool,
    pub skip_photos: bool,
    /// Assets whose date is before this (ms since the epoch) are left out.
    pub created_before_ms: Option<i64>,
    /// Assets whose date is after this (ms since the epoch) are left out.
    pub created_after_ms: Option<i64>,
    pub recent: Option<usize>,
    pub until_found: Option<usize>,
    filename_exclude: Option<GlobSet>,
    filename_patterns: Vec<String>,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            libraries: LibrarySelector::Primary,
            albums: Vec::new(),
            all_albums: false,
            exclude_albums: Vec::new(),
            skip_videos: false,
            skip_photos: false,
            created_before_ms: None,
            created_after_ms: None,
            recent: None,
            until_found: None,
            filename_exclude: None,
            filename_patterns: Vec::new(),
        }
    }
}

/// The raw flag values, as `SelectionArgs` holds them.
#[derive(Debug, Clone, Default)]
pub struct SelectionFlags<'a> {
    pub library: &'a str,
    pub albums: &'a [String],
    pub skip_videos: bool,
    pub skip_photos: bool,
    pub skip_created_before: Option<&'a str>,
    pub skip_created_after: Option<&'a str>,
    pub recent: Option<usize>,
    pub until_found: Option<usize>,
    pub filename_exclude: &'a [String],
}

impl Selection {
    /// Check and type the flags; relative dates (`Nd`) count back from `now`.
    pub fn from_flags(
        flags: &SelectionFlags<'_>,
        now: DateTime<Utc>,
    ) -> Result<Self, SelectionError> {
        if flags.skip_photos && flags.skip_videos {
            return Err(SelectionError::NothingSelected);
        }
        if flags.recent == Some(0) || flags.until_found == Some(0) {
            return Err(SelectionError::ZeroCount);
        }
        let mut sel = Selection {
            libraries: LibrarySelector::parse(flags.library),
            skip_videos: flags.skip_videos,
            skip_photos: flags.skip_photos,
            recent: flags.recent,
            until_found: flags.until_found,
            ..Selection::default()
        };
        for name in flags.albums {
            let name = name.trim();
            if let Some(excluded) = name.strip_prefix('!') {
                sel.exclude_albums.push(excluded.to_string());
            } else if name.eq_ignore_ascii_case("all") {
                sel.all_albums = true;
            } else if !name.is_empty() {
                sel.albums.push(name.to_string());
            }
        }
        sel.created_before_ms = flags
            .skip_created_before
            .map(|v| parse_date("--skip-created-before", v, now))
            .transpose()?;
        sel.created_after_ms = flags
            .skip_created_after
            .map(|v| parse_date("--skip-created-after", v, now))
            .transpose()?;
        if let (Some(before), Some(after)) = (sel.created_before_ms, sel.created_after_ms)
            && before > after
        {
            return Err(SelectionError::EmptyDateRange {
                before: flags.skip_created_before.unwrap_or_default().to_string(),
                after: flags.skip_created_after.unwrap_or_default().to_string(),
            });
        }
        if let Some(name) = sel
            .albums
            .iter()
            .find(|a| sel.exclude_albums.iter().any(|x| x.eq_ignore_ascii_case(a)))
        {
            return Err(SelectionError::AlbumTakenAndExcluded(name.clone()));
        }
        if !flags.filename_exclude.is_empty() {
            let mut set = GlobSetBuilder::new();
            for pattern in flags.filename_exclude {
                let glob = GlobBuilder::new(pattern)
                    .case_insensitive(true)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| SelectionError::BadGlob {
                        pattern: pattern.clone(),
                        reason: e.kind().to_string(),
                    })?;
                set.add(glob);
            }
            sel.filename_exclude = Some(set.build().map_err(|e| SelectionError::BadGlob {
                pattern: flags.filename_exclude.join(" "),
                reason: e.to_string(),
            })?);
            sel.filename_patterns = flags.filename_exclude.to_vec();
        }
        Ok(sel)
    }

    /// True when an asset can be judged from its own fields as it is listed: no album, smart
    /// folder, `--recent` or `--until-found` (those need the whole catalog). The engine starts
    /// downloading during the listing only then.
    pub fn is_per_asset(&self) -> bool {
        self.albums.is_empty()
            && !self.all_albums
            && self.exclude_albums.is_empty()
            && self.recent.is_none()
            && self.until_found.is_none()
    }

    /// The per-asset filters: kind and date, and never hidden, deleted or gone assets unless
    /// a smart folder asked for them (`from_smart_folder`).
    pub fn accepts(&self, asset: &StoredAsset, from_smart_folder: bool) -> bool {
        Self::listed(asset, from_smart_folder) && self.passes_filters(asset)
    }

    /// Whether iCloud lists the asset at all where it was found: gone assets never, hidden
    /// and deleted ones only in the smart folder that holds them (`from_smart_folder`).
    /// `--recent` counts these, before any other filter (as icloudpd does).
    pub fn listed(asset: &StoredAsset, from_smart_folder: bool) -> bool {
        let a = &asset.asset;
        asset.gone_ms.is_none() && (from_smart_folder || !(a.hidden || a.deleted))
    }

    /// The kind and date filters (`--skip-videos`, `--skip-photos`,
    /// `--skip-created-before/after`), applied after `--recent`.
    pub fn passes_filters(&self, asset: &StoredAsset) -> bool {
        let a = &asset.asset;
        let movie = a.kind == ItemKind::Movie;
        if (movie && self.skip_videos) || (!movie && self.skip_photos) {
            return false;
        }
        if self.created_before_ms.is_some_and(|t| a.asset_date_ms < t) {
            return false;
        }
        if self.created_after_ms.is_some_and(|t| a.asset_date_ms > t) {
            return false;
        }
        true
    }

    /// `--filename-exclude`: whether a planned file name is kept.
    pub fn keeps_file(&self, name: &str) -> bool {
        match &self.filename_exclude {
            Some(set) => !set.is_match(name),
            None => true,
        }
    }

    /// The `--filename-exclude` patterns as given.
    pub fn filename_patterns(&self) -> &[String] {
        &self.filename_patterns
    }

    /// The catalog queries that make up the selection, and the excluded assets.
    pub fn sources(&self, catalog: &Catalog) -> Result<Sources, SelectionError> {
        let libraries = self.library_ids(catalog)?;
        let mut out = Sources::default();
        let mut matched: HashSet<String> = HashSet::new();
        let mut matched_excluded: HashSet<String> = HashSet::new();
        for (library, zone) in libraries {
            // The album tree costs a query per library: only when asked.
            let needs_albums =
                self.all_albums || !self.albums.is_empty() || !self.exclude_albums.is_empty();
            let entries = if needs_albums {
                catalog.albums(library)?
            } else {
                Vec::new()
            };
            let live: Vec<_> = entries.iter().filter(|e| !e.album.deleted).collect();
            let albums: Vec<_> = live
                .iter()
                .filter(|e| !e.album.is_folder)
                .copied()
                .collect();
            let mut wanted: Vec<Source> = Vec::new();
            if self.all_albums {
                for e in &albums {
                    wanted.push(Source::album(library, &zone, e.key, e.path.clone()));
                }
            }
            for name in &self.albums {
                // A user album or folder of that name wins over a smart folder.
                if let Some(found) = find_albums(&live, name)? {
                    for e in found {
                        wanted.push(Source::album(library, &zone, e.key, e.path.clone()));
                    }
                    matched.insert(name.clone());
                } else if let Some(smart) = smart_folder(name) {
                    wanted.push(Source {
                        library,
                        zone: zone.clone(),
                        filter: smart.map_or(AssetFilter::AllPhotos, AssetFilter::Smart),
                        album_path: None,
                        smart: smart.is_some(),
                    });
                    matched.insert(name.clone());
                }
            }
            if self.albums.is_empty() && !self.all_albums {
                wanted.push(Source {
                    library,
                    zone: zone.clone(),
                    filter: AssetFilter::AllPhotos,
                    album_path: None,
                    smart: false,
                });
            }
            for name in &self.exclude_albums {
                if let Some(found) = find_albums(&live, name)? {
                    for e in found {
                        for id in catalog.album_member_ids(library, &e.album.id)? {
                            out.excluded.insert((library, id));
                        }
                    }
                    matched_excluded.insert(name.clone());
                } else if smart_folder(name).is_some() {
                    return Err(SelectionError::UnknownAlbum(format!(
                        "!{name} (smart folders cannot be excluded)"
                    )));
                }
            }
            out.list.extend(wanted);
        }
        // With several libraries an album need only exist in one of them; a name found in
        // none is a mistake worth stopping for.
        if let Some(name) = self.albums.iter().find(|n| !matched.contains(*n)) {
            return Err(SelectionError::UnknownAlbum(name.clone()));
        }
        if let Some(name) = self
            .exclude_albums
            .iter()
            .find(|n| !matched_excluded.contains(*n))
        {
            return Err(SelectionError::UnknownExcludedAlbum(name.clone()));
        }
        Ok(out)
    }

    fn library_ids(&self, catalog: &Catalog) -> Result<Vec<(LibraryId, String)>, SelectionError> {
        let all = catalog.libraries()?;
        let picked: Vec<(LibraryId, String)> = all
            .into_iter()
            .filter(|l| {
                let zone = &l.library.zone;
                match &self.libraries {
                    LibrarySelector::Primary => zone == "PrimarySync",
                    LibrarySelector::Shared => zone.starts_with("SharedSync-"),
                    LibrarySelector::All => {
                        zone == "PrimarySync" || zone.starts_with("SharedSync-")
                    }
                    LibrarySelector::Zone(z) => zone == z,
                }
            })
            .map(|l| (l.id, l.library.zone))
            .collect();
        if picked.is_empty() {
            let name = match &self.libraries {
                LibrarySelector::Primary => "primary".to_string(),
                LibrarySelector::Shared => "shared".to_string(),
                LibrarySelector::All => "all".to_string(),
                LibrarySelector::Zone(z) => z.clone(),
            };
            return Err(SelectionError::NoLibrary(name));
        }
        Ok(picked)
    }
}

/// One catalog query of the selection.
#[derive(Debug, Clone)]
pub struct Source {
    pub library: LibraryId,
    pub zone: String,
    pub filter: AssetFilter,
    /// For a user album: its folder path (for `{album}` in the folder template).
    pub album_path: Option<Vec<String>>,
    /// A smart folder (may hold hidden or deleted assets on purpose).
    pub smart: bool,
}

impl Source {
    fn album(
        library: LibraryId,
        zone: &str,
        key: crate::catalog::AlbumKey,
        path: Vec<String>,
    ) -> Self {
        Source {
            library,
            zone: zone.to_string(),
            filter: AssetFilter::Album(key),
            album_path: Some(path),
            smart: false,
        }
    }
}

/// The resolved selection.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub list: Vec<Source>,
    /// (library, record name) of members of excluded albums (master or asset record names).
    pub excluded: HashSet<(LibraryId, String)>,
}

impl Sources {
    /// Whether an asset is a member of an excluded album.
    pub fn is_excluded(&self, asset: &StoredAsset) -> bool {
        !self.excluded.is_empty()
            && (self
                .excluded
                .contains(&(asset.library, asset.asset.id.clone()))
                || self
                    .excluded
                    .contains(&(asset.library, asset.asset.asset_record.clone())))
    }
}

/// The smart folder a name means: `Some(None)` for All Photos, `Some(Some(f))` for a folder,
/// `None` when it is no smart folder name.
fn smart_folder(name: &str) -> Option<Option<SmartFolder>> {
    let key: String = name
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    Some(match key.as_str() {
        "allphotos" => None,
        "favorites" | "favourites" => Some(SmartFolder::Favorites),
        "videos" => Some(SmartFolder::Videos),
        "live" | "livephotos" => Some(SmartFolder::LivePhotos),
        "screenshots" => Some(SmartFolder::Screenshots),
        "bursts" => Some(SmartFolder::Bursts),
        "panoramas" => Some(SmartFolder::Panoramas),
        "slomo" => Some(SmartFolder::SloMo),
        "timelapse" => Some(SmartFolder::TimeLapse),
        "hidden" => Some(SmartFolder::Hidden),
        "recentlydeleted" => Some(SmartFolder::RecentlyDeleted),
        _ => return None,
    })
}

/// The album a name designates: its full path first, then a unique album name (exact case,
/// then ignoring case).
/// The albums a `--album` name takes: the album of that name, else every album under the
/// folder of that name (at any depth; none for an empty folder). `entries` are the live albums
/// and folders of one library; an album wins over a folder of the same name.
fn find_albums<'e>(
    entries: &[&'e AlbumEntry],
    name: &str,
) -> Result<Option<Vec<&'e AlbumEntry>>, SelectionError> {
    let (folders, albums): (Vec<&AlbumEntry>, Vec<&AlbumEntry>) =
        entries.iter().partition(|e| e.album.is_folder);
    if let Some(album) = find_named(&albums, name)? {
        return Ok(Some(vec![album]));
    }
    let Some(folder) = find_named(&folders, name)? else {
        return Ok(None);
    };
    let inside =
        |e: &&AlbumEntry| e.path.len() > folder.path.len() && e.path.starts_with(&folder.path);
    Ok(Some(albums.into_iter().filter(inside).collect()))
}

/// The one entry named `name`: by full path (`Trips/Europe/Paris`), by exact name, or by name
/// ignoring case.
fn find_named<'e>(
    albums: &[&'e AlbumEntry],
    name: &str,
) -> Result<Option<&'e AlbumEntry>, SelectionError> {
    if let Some(e) = albums.iter().find(|e| e.path.join("/") == name) {
        return Ok(Some(e));
    }
    let exact: Vec<_> = albums.iter().filter(|e| e.album.name == name).collect();
    match exact.len() {
        1 => return Ok(Some(exact[0])),
        n if n > 1 => return Err(SelectionError::AmbiguousAlbum(name.to_string())),
        _ => {}
    }
    let folded: Vec<_> = albums
        .iter()
        .filter(|e| e.album.name.to_lowercase() == name.to_lowercase())
        .collect();
    match folded.len() {
        0 => Ok(None),
        1 => Ok(Some(folded[0])),
        _ => Err(SelectionError::AmbiguousAlbum(name.to_string())),
    }
}

/// `YYYY-MM-DD` (local midnight), an RFC 3339 time, or `Nd` (N days before `now`).
pub fn parse_date(
    flag: &'static str,
    value: &str,
    now: DateTime<Utc>,
) -> Result<i64, SelectionError> {
    let bad = || SelectionError::BadDate {
        flag,
        value: value.to_string(),
    };
    let v = value.trim();
    if let Some(days) = v.strip_suffix('d').or_else(|| v.strip_suffix('D')) {
        let days: i64 = days.trim().parse().map_err(|_| bad())?;
        if !(0..=365 * 1000).contains(&days) {
            return Err(bad());
        }
        return Ok((now - chrono::Duration::days(days)).timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp_millis());
    }
    let date = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| bad())?;
    let midnight = date.and_hms_opt(0, 0, 0).ok_or_else(bad)?;
    let local = Local
        .from_local_datetime(&midnight)
        .earliest()
        .ok_or_else(bad)?;
    Ok(local.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-03-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn dates_parse_in_every_spelling() {
        let day = 86_400_000;
        let n = now().timestamp_millis();
        assert_eq!(parse_date("--x", "3d", now()).unwrap(), n - 3 * day);
        assert_eq!(
            parse_date("--x", "2024-01-02T03:04:05Z", now()).unwrap(),
            1_704_164_645_000
        );
        let local = parse_date("--x", "2024-01-02", now()).unwrap();
        assert!(
            (local - 1_704_153_600_000).abs() <= 14 * 3_600_000,
            "{local}"
        );
        for bad in ["yesterday", "-3d", "2024-13-01", "", "3x"] {
            let e = parse_date("--skip-created-before", bad, now()).unwrap_err();
            assert!(e.to_string().contains("--skip-created-before"), "{e}");
        }
    }

    #[test]
    fn album_flags_split_into_includes_excludes_and_all() {
        let albums = vec!["Trip".to_string(), "!Work".to_string(), "ALL".to_string()];
        let sel = Selection::from_flags(
            &SelectionFlags {
                library: "primary",
                albums: &albums,
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        assert_eq!(sel.albums, ["Trip"]);
        assert_eq!(sel.exclude_albums, ["Work"]);
        assert!(sel.all_albums);
        assert!(!sel.is_per_asset());
    }

    #[test]
    fn contradictory_or_bad_flags_are_refused() {
        let both = SelectionFlags {
            library: "primary",
            skip_photos: true,
            skip_videos: true,
            ..Default::default()
        };
        assert!(matches!(
            Selection::from_flags(&both, now()),
            Err(SelectionError::NothingSelected)
        ));
        let globs = vec!["[".to_string()];
        let bad_glob = SelectionFlags {
            library: "primary",
            filename_exclude: &globs,
            ..Default::default()
        };
        let e = Selection::from_flags(&bad_glob, now()).unwrap_err();
        assert!(e.to_string().contains("--filename-exclude"), "{e}");
        let zero = SelectionFlags {
            library: "primary",
            recent: Some(0),
            ..Default::default()
        };
        assert!(Selection::from_flags(&zero, now()).is_err());
    }

    #[test]
    fn filename_globs_ignore_case_and_match_names() {
        let globs = vec!["*.aae".to_string(), "IMG_9*".to_string()];
        let sel = Selection::from_flags(
            &SelectionFlags {
                library: "primary",
                filename_exclude: &globs,
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        assert!(!sel.keeps_file("IMG_0001.AAE"));
        assert!(!sel.keeps_file("IMG_9000.JPG"));
        assert!(sel.keeps_file("IMG_0001.JPG"));
    }

    #[test]
    fn smart_folder_names_are_forgiving() {
        assert_eq!(smart_folder("Slo-mo"), Some(Some(SmartFolder::SloMo)));
        assert_eq!(
            smart_folder("time-lapse"),
            Some(Some(SmartFolder::TimeLapse))
        );
        assert_eq!(
            smart_folder("Recently Deleted"),
            Some(Some(SmartFolder::RecentlyDeleted))
        );
        assert_eq!(smart_folder("All Photos"), Some(None));
        assert_eq!(smart_folder("Live"), Some(Some(SmartFolder::LivePhotos)));
        assert_eq!(smart_folder("Holidays"), None);
    }

    #[test]
    fn the_smart_names_given_are_the_listed_ones() {
        let listed: Vec<&str> = std::iter::once("All Photos")
            .chain(SmartFolder::ALL.iter().map(|f| f.album_name()))
            .collect();
        assert_eq!(SMART_NAMES.split(", ").collect::<Vec<_>>(), listed);
        for name in listed {
            assert!(smart_folder(name).is_some(), "{name}");
        }
    }
}

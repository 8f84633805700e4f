//! The album and smart-folder views, from one pass over the catalog.
//!
//! Asking the catalog for each album and each smart folder costs a scan of the library per
//! view (seconds at 100,000 photos); instead the album tree and every album's member names are
//! read first (small), then the library is streamed once and each asset is dealt into the
//! views it belongs to. The smart-folder rules are the catalog's (`AssetFilter::Smart`),
//! written here over [`Asset`] fields; a test checks both agree.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::ViewError;
use super::build::{Builder, join};
use super::names::{self, TopNames};
use crate::catalog::{AlbumEntry, AssetFilter, LibraryId, LibraryRecord, SmartFolder};
use crate::layout;
use crate::model::{Asset, ItemKind};

/// Deepest album-folder nesting followed (guards against a parent cycle).
const MAX_ALBUM_DEPTH: usize = 64;

/// An album shown as a directory.
struct AlbumDir {
    library: LibraryId,
    /// CPLAlbum record name.
    id: String,
    path: String,
}

/// Whether `asset` is in `folder`, by the catalog's definition (assets gone from iCloud are
/// never listed, so they are not considered here).
pub(super) fn in_smart_folder(a: &Asset, folder: SmartFolder) -> bool {
    let visible = !a.hidden && !a.deleted;
    match folder {
        SmartFolder::Favorites => visible && a.favorite,
        // Slo-mo and time-lapse videos have folders of their own, as on the server.
        SmartFolder::Videos => visible && a.kind == ItemKind::Movie && a.subtype == 0,
        SmartFolder::LivePhotos => visible && a.is_live(),
        SmartFolder::Screenshots => visible && a.subtype_v2 == 3,
        SmartFolder::Bursts => visible && a.burst_id.as_deref().is_some_and(|b| !b.is_empty()),
        SmartFolder::Panoramas => visible && a.subtype == 1,
        SmartFolder::SloMo => visible && a.subtype == 100,
        SmartFolder::TimeLapse => visible && a.subtype == 101,
        SmartFolder::Hidden => a.hidden && !a.deleted,
        SmartFolder::RecentlyDeleted => a.deleted,
    }
}

impl Builder<'_> {
    /// `Albums/`, `Favorites/`, `Media Types/*`, `Hidden/`, `Recently Deleted/` of the root
    /// libraries.
    pub(super) fn views(
        &mut self,
        libraries: &[LibraryRecord],
        names: &TopNames,
    ) -> Result<(), ViewError> {
        let albums = self.album_dirs(libraries, names.get(names::ALBUMS))?;
        // Member record names (master or asset record) -> albums.
        let mut members: HashMap<LibraryId, HashMap<String, Vec<usize>>> = HashMap::new();
        for (i, a) in albums.iter().enumerate() {
            for id in self.catalog.album_member_ids(a.library, &a.id)? {
                members
                    .entry(a.library)
                    .or_default()
                    .entry(id)
                    .or_default()
                    .push(i);
            }
        }
        let mut in_album: Vec<Vec<Arc<crate::catalog::StoredAsset>>> =
            (0..albums.len()).map(|_| Vec::new()).collect();
        let mut in_smart: HashMap<SmartFolder, Vec<Arc<crate::catalog::StoredAsset>>> =
            HashMap::new();
        let selection = &self.cfg.selection;
        let none = HashMap::new();
        for lib in libraries {
            let members = members.get(&lib.id).unwrap_or(&none);
            for asset in self.catalog.assets(lib.id, AssetFilter::InICloud) {
                let asset = asset?;
                let folders: Vec<SmartFolder> = SmartFolder::ALL
                    .into_iter()
                    .filter(|f| in_smart_folder(&asset.asset, *f))
                    .collect();
                let mut hits: Vec<usize> = Vec::new();
                // Albums hold members that are in All Photos.
                if !asset.asset.hidden && !asset.asset.deleted {
                    for name in [&asset.asset.id, &asset.asset.asset_record] {
                        if let Some(found) = members.get(name.as_str()) {
                            hits.extend(found);
                        }
                    }
                    hits.sort_unstable();
                    hits.dedup();
                }
                if folders.is_empty() && hits.is_empty() {
                    continue;
                }
                let asset = Arc::new(asset);
                if !hits.is_empty() && selection.accepts(&asset, false) {
                    for i in hits {
                        in_album[i].push(asset.clone());
                    }
                }
                if !folders.is_empty() && selection.accepts(&asset, true) {
                    for f in folders {
                        in_smart.entry(f).or_default().push(asset.clone());
                    }
                }
            }
        }
        for (album, assets) in albums.iter().zip(&in_album) {
            self.flat(&album.path, assets);
        }
        self.counts.albums = albums.len();
        for folder in SmartFolder::ALL {
            let (view, sub) = names::smart_folder_place(folder);
            let top = names.get(view).to_string();
            let dir = match sub {
                Some(sub) => {
                    self.dirs.push(top.clone());
                    join(&top, sub)
                }
                None => top,
            };
            self.dirs.push(dir.clone());
            let assets = in_smart.remove(&folder).unwrap_or_default();
            self.flat(&dir, &assets);
        }
        Ok(())
    }

    /// The album tree under `top`: every folder and album as a directory (empty ones too);
    /// returns the albums (not folders) with their directories.
    fn album_dirs(
        &mut self,
        libraries: &[LibraryRecord],
        top: &str,
    ) -> Result<Vec<AlbumDir>, ViewError> {
        self.dirs.push(top.to_string());
        let mut all: Vec<(&LibraryRecord, AlbumEntry)> = Vec::new();
        for lib in libraries {
            for e in self.catalog.albums(lib.id)? {
                if !e.album.deleted {
                    all.push((lib, e));
                }
            }
        }
        let ids: HashSet<(&str, &str)> = all
            .iter()
            .map(|(l, e)| (l.library.zone.as_str(), e.album.id.as_str()))
            .collect();
        // Children of each parent (None: the top); an unknown parent counts as the top.
        let mut children: HashMap<Option<(&str, &str)>, Vec<usize>> = HashMap::new();
        for (i, (l, e)) in all.iter().enumerate() {
            let zone = l.library.zone.as_str();
            let parent = e
                .album
                .parent_id
                .as_deref()
                .map(|p| (zone, p))
                .filter(|p| ids.contains(p));
            children.entry(parent).or_default().push(i);
        }
        // (parent album, its directory, depth)
        type Level<'k> = (Option<(&'k str, &'k str)>, String, usize);
        let mut stack: Vec<Level<'_>> = vec![(None, top.to_string(), 0)];
        let mut out = Vec::new();
        while let Some((parent, dir, depth)) = stack.pop() {
            let Some(kids) = children.get(&parent) else {
                continue;
            };
            if depth >= MAX_ALBUM_DEPTH {
                continue;
            }
            let keyed: Vec<(String, &str)> = kids
                .iter()
                .map(|&i| {
                    let (l, e) = &all[i];
                    (
                        format!("{}/{}", l.library.zone, e.album.id),
                        e.album.name.as_str(),
                    )
                })
                .collect();
            let pairs: Vec<(&str, &str)> = keyed.iter().map(|(k, n)| (k.as_str(), *n)).collect();
            let names = layout::folder_names(&pairs);
            for (&i, name) in kids.iter().zip(names) {
                let (l, e) = &all[i];
                let path = join(&dir, &name);
                self.dirs.push(path.clone());
                if e.album.is_folder {
                    stack.push((
                        Some((l.library.zone.as_str(), e.album.id.as_str())),
                        path,
                        depth + 1,
                    ));
                } else {
                    out.push(AlbumDir {
                        library: l.id,
                        id: e.album.id.clone(),
                        path,
                    });
                }
            }
        }
        Ok(out)
    }
}

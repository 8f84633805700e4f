//! Building the mount's file list from the catalog: the date tree (the sync engine's own plan,
//! so it is the tree `sync -d` writes), then the views beside it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::ids;
use super::names::{self, TopNames};
use super::{LibraryView, ViewConfig, ViewCounts, ViewError};
use crate::catalog::{
    AlbumEntry, AssetFilter, AssetKey, Catalog, LibraryRecord, SmartFolder, StoredAsset,
};
use crate::layout::{self, PlannedFile, RelDir};
use crate::mirror::{Selection, TreeIndex};
use crate::mount::{Entry, FileId, Xattrs};
use crate::refresh::LibrarySelector;

/// What a sidecar's name adds to its file's name.
const SIDECAR_SUFFIX: &str = ".xmp";
/// Deepest album-folder nesting followed (guards against a parent cycle).
const MAX_ALBUM_DEPTH: usize = 64;

/// A sidecar as rendered once per asset: size and ids.
#[derive(Clone, Copy)]
struct Sidecar {
    size: u64,
    file: FileId,
    key: u64,
}

/// Collects entries; shares each asset's extended attributes and sidecar between its paths.
pub(super) struct Builder<'a> {
    catalog: &'a Catalog,
    cfg: &'a ViewConfig,
    entries: Vec<Entry>,
    dirs: Vec<String>,
    xattrs: HashMap<AssetKey, Xattrs>,
    sidecars: HashMap<AssetKey, Option<Sidecar>>,
    no_xattrs: Xattrs,
    counts: ViewCounts,
}

/// Whether a library is one of those the selection lays out at the root.
fn selected(selector: &LibrarySelector, zone: &str) -> bool {
    match selector {
        LibrarySelector::Primary => zone == "PrimarySync",
        LibrarySelector::Shared => zone.starts_with("SharedSync-"),
        LibrarySelector::All => zone == "PrimarySync" || zone.starts_with("SharedSync-"),
        LibrarySelector::Zone(z) => zone == z,
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

impl<'a> Builder<'a> {
    pub(super) fn new(catalog: &'a Catalog, cfg: &'a ViewConfig) -> Self {
        Builder {
            catalog,
            cfg,
            entries: Vec::new(),
            dirs: Vec::new(),
            xattrs: HashMap::new(),
            sidecars: HashMap::new(),
            no_xattrs: Arc::default(),
            counts: ViewCounts::default(),
        }
    }

    /// The whole view: date tree at the root, then every view under its chosen name.
    pub(super) fn build(mut self) -> Result<LibraryView, ViewError> {
        let libraries = self.catalog.libraries()?;
        let (root_libs, other_libs): (Vec<_>, Vec<_>) = libraries
            .into_iter()
            .partition(|l| selected(&self.cfg.selection.libraries, &l.library.zone));
        self.date_tree(&self.cfg.selection.clone(), "", self.cfg.mirror_root)?;
        self.counts.date_tree_files = self.entries.len();
        let top: HashSet<&str> = self
            .entries
            .iter()
            .map(|e| e.path.split('/').next().unwrap_or(""))
            .collect();
        let names = TopNames::choose(top);

        self.albums(&root_libs, names.get(names::ALBUMS))?;
        self.smart_folders(&root_libs, &names)?;
        self.libraries(&other_libs, names.get(names::LIBRARIES))?;
        self.counts.view_files = self.entries.len() - self.counts.date_tree_files;
        Ok(LibraryView {
            entries: self.entries,
            extra_dirs: self.dirs,
            names,
            counts: self.counts,
        })
    }

    /// The files `sync -d` would write for `selection`, under `prefix`.
    fn date_tree(
        &mut self,
        selection: &Selection,
        prefix: &str,
        root: Option<crate::catalog::RootId>,
    ) -> Result<(), ViewError> {
        let catalog = self.catalog;
        let policy = &self.cfg.policy;
        let sources = selection.sources(catalog)?;
        let index = TreeIndex::build(catalog, policy, selection, &sources, root)?;
        for group in 0..index.directories() {
            for item in index.plan_directory(group, catalog, policy, selection)? {
                self.add_file(join(prefix, &item.file.rel_path()), &item.file, &item.asset);
            }
        }
        Ok(())
    }

    /// One file of `asset`, and its sidecar when asked for.
    fn add_file(&mut self, path: String, file: &PlannedFile, asset: &StoredAsset) {
        let Some((id, key)) = asset.version_key(file.version).and_then(ids::version_ids) else {
            tracing::debug!(path, "no usable catalog version for a planned file");
            return;
        };
        let xattrs = self
            .xattrs
            .entry(asset.key)
            .or_insert_with(|| {
                Arc::new(
                    crate::metadata::xattrs_for(&asset.asset)
                        .into_iter()
                        .collect(),
                )
            })
            .clone();
        let mtime = file.mtime();
        let sidecar = if self.cfg.xmp_sidecar {
            *self
                .sidecars
                .entry(asset.key)
                .or_insert_with(|| render_sidecar(asset))
        } else {
            None
        };
        // A name too long for the suffix gets no sidecar (no file system could hold it).
        let fits = file.name.len() + SIDECAR_SUFFIX.len() <= crate::mount::namespace::NAME_MAX;
        if let Some(s) = sidecar.filter(|_| fits) {
            self.entries.push(Entry {
                path: format!("{path}{SIDECAR_SUFFIX}"),
                size: s.size,
                mtime,
                file: s.file,
                inode_key: s.key,
                xattrs: self.no_xattrs.clone(),
            });
        }
        self.entries.push(Entry {
            path,
            size: file.size,
            mtime,
            file: id,
            inode_key: key,
            xattrs,
        });
    }

    /// `assets` listed flat in `dir` (an album or a smart folder), names as everywhere else.
    fn flat(&mut self, dir: &str, assets: &[StoredAsset]) {
        let by_id: HashMap<&str, &StoredAsset> =
            assets.iter().map(|a| (a.asset.id.as_str(), a)).collect();
        let planned = layout::plan_flat(
            assets.iter().map(|a| &a.asset),
            &self.cfg.policy,
            &RelDir::root(),
        );
        for file in planned {
            if !self.cfg.selection.keeps_file(&file.name) {
                continue;
            }
            if let Some(asset) = by_id.get(file.asset_id.as_str()) {
                self.add_file(join(dir, &file.name), &file, asset);
            }
        }
    }

    /// The assets of `filter` in `library` that the per-asset selection flags accept.
    fn selected_assets(
        &self,
        library: &LibraryRecord,
        filter: AssetFilter,
        smart: bool,
    ) -> Result<Vec<StoredAsset>, ViewError> {
        let mut out = Vec::new();
        for asset in self.catalog.assets(library.id, filter) {
            let asset = asset?;
            if self.cfg.selection.accepts(&asset, smart) {
                out.push(asset);
            }
        }
        Ok(out)
    }

    /// `Albums/`: every user album of the root libraries in its folders, empty ones included.
    fn albums(&mut self, libraries: &[LibraryRecord], top: &str) -> Result<(), ViewError> {
        self.dirs.push(top.to_string());
        // Albums of every root library share one tree: (library, entry) pairs.
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
        // (parent album id, its directory, depth)
        type Level<'k> = (Option<(&'k str, &'k str)>, String, usize);
        let mut stack: Vec<Level<'_>> = vec![(None, top.to_string(), 0)];
        let mut work: Vec<(usize, String)> = Vec::new();
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
            let names = layout::folder_names(&pairs, &self.cfg.policy);
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
                    work.push((i, path));
                }
            }
        }
        for (i, path) in work {
            let (lib, entry) = &all[i];
            let assets = self.selected_assets(lib, AssetFilter::Album(entry.key), false)?;
            self.flat(&path, &assets);
            self.counts.albums += 1;
        }
        Ok(())
    }

    /// Favourites, the media types, Hidden and Recently Deleted of the root libraries.
    fn smart_folders(
        &mut self,
        libraries: &[LibraryRecord],
        names: &TopNames,
    ) -> Result<(), ViewError> {
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
            let mut assets = Vec::new();
            for lib in libraries {
                assets.extend(self.selected_assets(lib, AssetFilter::Smart(folder), true)?);
            }
            self.flat(&dir, &assets);
        }
        Ok(())
    }

    /// `Libraries/NAME/`: the date tree of each library the root does not show.
    fn libraries(&mut self, others: &[LibraryRecord], top: &str) -> Result<(), ViewError> {
        if others.is_empty() {
            return Ok(());
        }
        self.dirs.push(top.to_string());
        let display: Vec<String> = others
            .iter()
            .map(|l| names::library_name(&l.library.zone))
            .collect();
        let pairs: Vec<(&str, &str)> = others
            .iter()
            .zip(&display)
            .map(|(l, d)| (l.library.zone.as_str(), d.as_str()))
            .collect();
        let dir_names = layout::folder_names(&pairs, &self.cfg.policy);
        for (lib, name) in others.iter().zip(dir_names) {
            let dir = join(top, &name);
            self.dirs.push(dir.clone());
            let mut selection = self.cfg.selection.clone();
            selection.libraries = LibrarySelector::Zone(lib.library.zone.clone());
            selection.albums.clear();
            selection.all_albums = false;
            selection.exclude_albums.clear();
            selection.recent = None;
            selection.until_found = None;
            self.date_tree(&selection, &dir, None)?;
            self.counts.libraries += 1;
        }
        Ok(())
    }
}

/// The sidecar of an asset: its size and ids (the bytes are rendered again when read).
fn render_sidecar(asset: &StoredAsset) -> Option<Sidecar> {
    let text = crate::metadata::render_xmp(&asset.asset);
    let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    let (file, key) = ids::sidecar_ids(asset.key, &digest)?;
    Some(Sidecar {
        size: text.len() as u64,
        file,
        key,
    })
}

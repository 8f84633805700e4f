//! Building the mount's file list from the catalog: the date tree (the sync engine's own plan,
//! so it is the tree `sync -d` writes), then the views beside it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::ids;
use super::names::{self, TopNames};
use super::neighbours::NeighbourOrder;
use super::{LibraryView, ViewConfig, ViewCounts, ViewError};
use crate::catalog::{AssetKey, Catalog, LibraryRecord, StoredAsset};
use crate::layout::{self, PlannedFile, RelDir};
use crate::mirror::{Selection, TreeIndex};
use crate::mount::{Entry, FileId, Xattrs};
use crate::refresh::LibrarySelector;

/// A sidecar as rendered once per asset: size and ids.
#[derive(Clone, Copy)]
struct Sidecar {
    size: u64,
    file: FileId,
    key: u64,
}

/// Collects entries; shares each asset's extended attributes and sidecar between its paths.
pub(super) struct Builder<'a> {
    pub(super) catalog: &'a Catalog,
    pub(super) cfg: &'a ViewConfig,
    entries: Vec<Entry>,
    pub(super) dirs: Vec<String>,
    sidecars: HashMap<AssetKey, Option<Sidecar>>,
    no_xattrs: Xattrs,
    pub(super) counts: ViewCounts,
    /// (directory, name, asset) of every file, for the neighbour order.
    listed: Vec<(String, String, AssetKey)>,
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

pub(super) fn join(dir: &str, name: &str) -> String {
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
            sidecars: HashMap::new(),
            no_xattrs: Arc::default(),
            counts: ViewCounts::default(),
            listed: Vec::new(),
        }
    }

    /// The whole view: date tree at the root, then every view under its chosen name.
    pub(super) fn build(mut self) -> Result<LibraryView, ViewError> {
        let libraries = self.catalog.libraries()?;
        let (root_libs, other_libs): (Vec<_>, Vec<_>) = libraries
            .into_iter()
            .partition(|l| selected(&self.cfg.selection.libraries, &l.library.zone));
        let started = std::time::Instant::now();
        self.date_tree(&self.cfg.selection.clone(), "", self.cfg.mirror_root)?;
        self.counts.date_tree_files = self.entries.len();
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "date tree built"
        );
        let top: HashSet<&str> = self
            .entries
            .iter()
            .map(|e| e.path.split('/').next().unwrap_or(""))
            .collect();
        let names = TopNames::choose(top);

        let started = std::time::Instant::now();
        self.views(&root_libs, &names)?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "views built"
        );
        let started = std::time::Instant::now();
        self.libraries(&other_libs, names.get(names::LIBRARIES))?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "libraries built"
        );
        self.counts.view_files = self.entries.len() - self.counts.date_tree_files;
        Ok(LibraryView {
            entries: self.entries,
            extra_dirs: self.dirs,
            names,
            counts: self.counts,
            neighbours: NeighbourOrder::new(self.listed),
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
        let mtime = file.mtime();
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        self.listed
            .push((dir.to_string(), name.to_string(), asset.key));
        let sidecar = if self.cfg.xmp_sidecar {
            *self
                .sidecars
                .entry(asset.key)
                .or_insert_with(|| render_sidecar(asset))
        } else {
            None
        };
        if let Some(s) = sidecar {
            self.entries.push(Entry {
                path: format!("{path}{}", layout::SIDECAR_SUFFIX),
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
            // Looked up when asked for (`LibrarySource::xattrs`), not held by the tree.
            xattrs: self.no_xattrs.clone(),
        });
    }

    /// `assets` listed flat in `dir` (an album or a smart folder), names as everywhere else.
    pub(super) fn flat(&mut self, dir: &str, assets: &[Arc<StoredAsset>]) {
        let by_id: HashMap<&str, &StoredAsset> = assets
            .iter()
            .map(|a| (a.asset.id.as_str(), a.as_ref()))
            .collect();
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
        let dir_names = layout::folder_names(&pairs);
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

//! The files a root should hold: the selected catalog assets laid out by `layout`, exactly as
//! `layout::plan_tree` would lay them out, but directory by directory so that memory stays
//! small whatever the library's size.
//!
//! Collisions are resolved within a directory only, and an asset's directory depends only on
//! the asset (and the album it is laid out for). So a first pass streams the selection and
//! keeps, per asset, a few numbers: its directory (interned), album, key and date. A second
//! pass takes one directory at a time, loads its assets in a batch and plans them with
//! `layout::plan_asset` + `layout::resolve_collisions`: the same names `plan_tree` gives,
//! with only one directory's assets in memory at once (a flat layout, `none`, is one
//! directory and holds them all).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::catalog::{
    AssetKey, Catalog, CatalogError, DownloadState, RootId, StoredAsset, VersionKey,
};
use crate::layout::{self, LayoutPolicy, PlannedFile};
use crate::model::Asset;

use super::select::{Selection, Sources};

/// An asset placed in a directory (first pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    dir: u32,
    album: u32,
    key: AssetKey,
    date_ms: i64,
}

/// No album: the folder template is rendered without `{album}`.
const NO_ALBUM: u32 = u32::MAX;

/// The selection reduced to (directory, asset) pairs, grouped by directory.
#[derive(Debug, Default)]
pub struct TreeIndex {
    dirs: Vec<String>,
    albums: Vec<Vec<String>>,
    entries: Vec<Entry>,
    /// Start offsets of each directory's entries in `entries`.
    groups: Vec<usize>,
}

/// One file to have, with its asset and catalog version.
#[derive(Debug, Clone)]
pub struct PlanItem {
    pub file: PlannedFile,
    pub asset: Arc<StoredAsset>,
    pub version: VersionKey,
    /// The file's name before collision handling (what the listing's early downloads use,
    /// and what icloudpd would have called it).
    pub base_name: Option<String>,
    /// Collision handling changed the name.
    pub collided: bool,
}

impl PlanItem {
    /// Names under which icloudpd may have written the file: the name before collision
    /// handling, and that name with `-<size>` before the extension.
    pub(super) fn icloudpd_names(&self) -> Vec<String> {
        let Some(base) = &self.base_name else {
            return Vec::new();
        };
        let dir = &self.file.dir;
        let (stem, ext) = match base.rfind('.') {
            Some(i) if i > 0 => (&base[..i], &base[i..]),
            _ => (base.as_str(), ""),
        };
        vec![
            dir.join(base),
            dir.join(&format!("{stem}-{}{ext}", self.file.size)),
        ]
    }
}

impl TreeIndex {
    /// First pass: stream the selection's sources and place every accepted asset. `root`
    /// (when the root exists) lets `--until-found` see what is already downloaded or on disk.
    ///
    /// `--recent N` keeps the N newest assets the sources list, before the kind, date and
    /// excluded-album filters, as icloudpd slices its listing before it skips anything: with
    /// `--recent 2 --skip-photos` and two photos newest, nothing is taken.
    pub fn build(
        catalog: &Catalog,
        policy: &LayoutPolicy,
        selection: &Selection,
        sources: &Sources,
        root: Option<RootId>,
    ) -> Result<TreeIndex, CatalogError> {
        let mut index = TreeIndex::default();
        let mut dir_ids: HashMap<String, u32> = HashMap::new();
        // (date, key) of every listed asset, filtered or not: what `--recent` counts.
        let mut listed: Vec<(i64, AssetKey)> = Vec::new();
        let uses_album = policy.folder.uses_album();
        for source in &sources.list {
            let album = match (&source.album_path, uses_album) {
                (Some(path), true) => {
                    index.albums.push(path.clone());
                    (index.albums.len() - 1) as u32
                }
                _ => NO_ALBUM,
            };
            let album_path: Option<Vec<&str>> = (album != NO_ALBUM).then(|| {
                index.albums[album as usize]
                    .iter()
                    .map(String::as_str)
                    .collect()
            });
            // Directories depend on the asset's own fields only: no versions needed here.
            for asset in catalog.assets_without_versions(source.library, source.filter) {
                let asset = asset?;
                if !Selection::listed(&asset, source.smart) {
                    continue;
                }
                if selection.recent.is_some() {
                    listed.push((asset.asset.asset_date_ms, asset.key));
                }
                if !selection.passes_filters(&asset) || sources.is_excluded(&asset) {
                    continue;
                }
                let dir = layout::asset_dir(&asset.asset, policy, album_path.as_deref());
                let next = dir_ids.len() as u32;
                let dir = *dir_ids.entry(dir.as_str().to_string()).or_insert_with(|| {
                    index.dirs.push(dir.as_str().to_string());
                    next
                });
                index.entries.push(Entry {
                    dir,
                    album,
                    key: asset.key,
                    date_ms: asset.asset.asset_date_ms,
                });
            }
        }
        index.entries.sort_unstable();
        index.entries.dedup();
        if let Some(n) = selection.recent {
            let keep = newest_keys(listed, n);
            index.entries.retain(|e| keep.contains(&e.key));
        }
        if let (Some(n), Some(root)) = (selection.until_found, root) {
            let keep = until_found(catalog, policy, &index, n, root)?;
            index.entries.retain(|e| keep.contains(&e.key));
        }
        index.group();
        Ok(index)
    }

    /// Orders entries by directory, newest-named directory first (date folders: newest
    /// first), and records where each directory starts.
    fn group(&mut self) {
        let mut order: Vec<u32> = (0..self.dirs.len() as u32).collect();
        order.sort_by(|a, b| self.dirs[*b as usize].cmp(&self.dirs[*a as usize]));
        let mut rank = vec![0u32; self.dirs.len()];
        for (r, d) in order.iter().enumerate() {
            rank[*d as usize] = r as u32;
        }
        self.entries
            .sort_by_key(|e| (rank[e.dir as usize], e.album, e.key));
        self.groups.clear();
        for (i, e) in self.entries.iter().enumerate() {
            if i == 0 || self.entries[i - 1].dir != e.dir {
                self.groups.push(i);
            }
        }
    }

    /// Number of (directory, asset) pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is selected.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of directories.
    pub fn directories(&self) -> usize {
        self.groups.len()
    }

    /// Second pass for directory number `group`: its files with collisions resolved, in the
    /// layout's order, minus the files `--filename-exclude` drops.
    pub fn plan_directory(
        &self,
        group: usize,
        catalog: &Catalog,
        policy: &LayoutPolicy,
        selection: &Selection,
    ) -> Result<Vec<PlanItem>, CatalogError> {
        let start = self.groups[group];
        let end = self
            .groups
            .get(group + 1)
            .copied()
            .unwrap_or(self.entries.len());
        let entries = &self.entries[start..end];
        let mut keys: Vec<AssetKey> = entries.iter().map(|e| e.key).collect();
        keys.sort_unstable();
        keys.dedup();
        let assets: HashMap<AssetKey, Arc<StoredAsset>> = catalog
            .assets_by_keys(&keys)?
            .into_iter()
            .map(|a| (a.key, Arc::new(a)))
            .collect();
        let mut by_id: HashMap<&str, Arc<StoredAsset>> = HashMap::new();
        let mut files = Vec::new();
        for e in entries {
            let Some(asset) = assets.get(&e.key) else {
                continue; // removed meanwhile
            };
            by_id.insert(asset.asset.id.as_str(), asset.clone());
            files.extend(self.plan_entry(&asset.asset, policy, e.album));
        }
        let base_names: HashMap<(String, crate::model::VersionKind), String> = files
            .iter()
            .map(|f| ((f.asset_id.clone(), f.role), f.name.clone()))
            .collect();
        let resolved = layout::resolve_collisions(files, policy.file_match);
        let mut out = Vec::with_capacity(resolved.len());
        for file in resolved {
            if !selection.keeps_file(&file.name) {
                continue;
            }
            let Some(asset) = by_id.get(file.asset_id.as_str()) else {
                continue;
            };
            let Some(version) = asset.version_key(file.version) else {
                continue;
            };
            let base_name = base_names.get(&(file.asset_id.clone(), file.role)).cloned();
            let collided = base_name.as_deref() != Some(file.name.as_str());
            out.push(PlanItem {
                file,
                asset: asset.clone(),
                version,
                base_name,
                collided,
            });
        }
        Ok(out)
    }

    /// The files of one asset in its folder, or in the folder of album number `album`; names
    /// before collision handling.
    fn plan_entry(&self, asset: &Asset, policy: &LayoutPolicy, album: u32) -> Vec<PlannedFile> {
        if album == NO_ALBUM {
            return layout::plan_asset(asset, policy);
        }
        let path: Vec<&str> = self.albums[album as usize]
            .iter()
            .map(String::as_str)
            .collect();
        layout::plan_asset_in_album(asset, policy, &path)
    }
}

/// Keys of the `n` most recent of the listed assets (by asset date, then key).
fn newest_keys(mut by_date: Vec<(i64, AssetKey)>, n: usize) -> HashSet<AssetKey> {
    by_date.sort_unstable_by(|a, b| b.cmp(a));
    by_date.dedup();
    by_date.into_iter().take(n).map(|(_, k)| k).collect()
}

/// `--until-found N`: walking assets newest first, stop after `n` consecutive assets whose
/// files are all there already; keep the assets up to that point.
///
/// A file is there when the catalog records it as downloaded into `root`, or when a file of
/// exactly its size sits at its path (one `sync` adopts without downloading). icloudpd looks
/// only at the disk, so a folder it wrote, or one synced with another data folder, stops the
/// walk as it would stop icloudpd, instead of walking the whole library and fetching again the
/// old files the user deleted. Paths are the names before collision handling (the ones
/// icloudpd gives): a file that collision handling renamed counts only when recorded;
/// otherwise the walk just goes on.
fn until_found(
    catalog: &Catalog,
    policy: &LayoutPolicy,
    index: &TreeIndex,
    n: usize,
    root: RootId,
) -> Result<HashSet<AssetKey>, CatalogError> {
    let root_dir = catalog
        .roots()?
        .into_iter()
        .find(|r| r.id == root)
        .map(|r| r.path);
    let on_disk = |file: &PlannedFile| {
        root_dir.as_ref().is_some_and(|dir| {
            std::fs::symlink_metadata(dir.join(file.rel_path()))
                .is_ok_and(|m| m.is_file() && m.len() == file.size)
        })
    };
    // Every place of an asset (one per album folder under `{album}`), newest asset first.
    let mut by_date: Vec<(i64, AssetKey, u32)> = index
        .entries
        .iter()
        .map(|e| (e.date_ms, e.key, e.album))
        .collect();
    by_date.sort_unstable_by(|a, b| b.cmp(a));
    by_date.dedup();
    let mut keep = HashSet::new();
    let mut streak = 0usize;
    let mut i = 0;
    while i < by_date.len() {
        // A chunk of whole assets: an asset's places are adjacent.
        let mut end = (i + 256).min(by_date.len());
        while end < by_date.len() && by_date[end].1 == by_date[end - 1].1 {
            end += 1;
        }
        let chunk = &by_date[i..end];
        i = end;
        let mut keys: Vec<AssetKey> = chunk.iter().map(|(_, k, _)| *k).collect();
        keys.dedup();
        let assets: HashMap<AssetKey, StoredAsset> = catalog
            .assets_by_keys(&keys)?
            .into_iter()
            .map(|a| (a.key, a))
            .collect();
        // Each asset's files, in every place it has.
        let mut planned: Vec<(&StoredAsset, Vec<PlannedFile>)> = Vec::new();
        for (_, key, album) in chunk {
            let Some(a) = assets.get(key) else {
                continue; // removed meanwhile
            };
            if planned.last().is_none_or(|(last, _)| last.key != *key) {
                planned.push((a, Vec::new()));
            }
            if let Some((_, files)) = planned.last_mut() {
                files.extend(index.plan_entry(&a.asset, policy, *album));
            }
        }
        let versions: Vec<VersionKey> = planned
            .iter()
            .flat_map(|(a, files)| files.iter().filter_map(|f| a.version_key(f.version)))
            .collect();
        let states = catalog.download_states(root, &versions)?;
        for (a, files) in planned {
            keep.insert(a.key);
            let recorded = |file: &PlannedFile| {
                a.version_key(file.version).is_some_and(|v| {
                    matches!(states.get(&v), Some(DownloadState::Downloaded { .. }))
                })
            };
            let done = !files.is_empty() && files.iter().all(|f| recorded(f) || on_disk(f));
            streak = if done { streak + 1 } else { 0 };
            if streak >= n {
                return Ok(keep);
            }
        }
    }
    Ok(keep)
}

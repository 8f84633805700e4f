//! Mutations of the library (`POST /_sim/mutate`, `records/modify`, in-process tests).
//!
//! Each operation takes its zone's write lock once and, before releasing it, updates the
//! assets, every index (so ranks and counts move at once), the album relations and the change
//! log (one entry per touched record plus the zone's CPLLibraryInfo). Operations of a list run
//! in order; the first invalid one stops the list, earlier ones stay applied.

use serde::{Deserialize, Serialize};

use super::changelog::RecordRef;
use super::generate::{added_delay, pick_kind};
use super::ids::Rng;
use super::index::IndexId;
use super::model::{
    Album, AlbumKind, Asset, AssetKind, DAY_MS, DELETED, EDITED, EXPUNGE_AFTER_MS, FAVORITE,
    HIDDEN, PURGED, Relation, asset_key,
};
use super::{LibraryState, PRIMARY_ZONE, Zone, ZoneHandle, now_ms};

/// Assets an operation applies to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetsArgs {
    /// CPLMaster recordNames (CPLAsset UUIDs are accepted too).
    pub asset_ids: Vec<String>,
    /// Zone name (default `PrimarySync`).
    #[serde(default)]
    pub zone: Option<String>,
}

/// An album and assets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlbumAssetsArgs {
    /// Album name or record name.
    pub album: String,
    pub asset_ids: Vec<String>,
    #[serde(default)]
    pub zone: Option<String>,
}

/// One mutation, as `{"op": ..., ...}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Mutation {
    /// Add `count` new assets (newest of the library), optionally into an album.
    Add {
        count: usize,
        #[serde(default)]
        album: Option<String>,
        #[serde(default)]
        zone: Option<String>,
    },
    /// Move to Recently Deleted.
    Delete(AssetsArgs),
    /// Bring back from Recently Deleted.
    Restore(AssetsArgs),
    /// Hard delete (the change feed shows `deleted: true`, `recordType: null`).
    Purge(AssetsArgs),
    Hide(AssetsArgs),
    Unhide(AssetsArgs),
    Favorite(AssetsArgs),
    Unfavorite(AssetsArgs),
    /// Add or change the adjusted version (new content generation).
    Edit(AssetsArgs),
    /// Revert an edit: the adjusted version disappears (the asset is as first taken).
    Revert(AssetsArgs),
    AlbumCreate {
        name: String,
        /// Parent folder (name or record name).
        #[serde(default)]
        parent: Option<String>,
        /// Create a folder (`albumType` 3) instead of an album.
        #[serde(default)]
        folder: bool,
        #[serde(default)]
        zone: Option<String>,
    },
    AlbumDelete {
        album: String,
        #[serde(default)]
        zone: Option<String>,
    },
    AlbumAdd(AlbumAssetsArgs),
    AlbumRemove(AlbumAssetsArgs),
}

/// What a list of mutations produced.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MutationOutcome {
    pub ok: bool,
    /// New asset ids (`add`) or the assets acted on.
    pub asset_ids: Vec<String>,
    /// Record names of created albums.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub album_ids: Vec<String>,
}

/// Why a mutation was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MutationError {
    #[error("invalid mutation request: {0}")]
    Parse(String),
    #[error("operation {index} ({op}): {reason}{}", applied_note(*.index))]
    Invalid {
        index: usize,
        op: &'static str,
        reason: String,
    },
}

fn applied_note(index: usize) -> String {
    if index == 0 {
        String::new()
    } else {
        format!(" (operations before {index} were applied)")
    }
}

/// A change to one asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetChange {
    Delete,
    Restore,
    Purge,
    Hide,
    Unhide,
    Favorite,
    Unfavorite,
    Edit,
    Revert,
}

impl Mutation {
    fn name(&self) -> &'static str {
        match self {
            Mutation::Add { .. } => "add",
            Mutation::Delete(_) => "delete",
            Mutation::Restore(_) => "restore",
            Mutation::Purge(_) => "purge",
            Mutation::Hide(_) => "hide",
            Mutation::Unhide(_) => "unhide",
            Mutation::Favorite(_) => "favorite",
            Mutation::Unfavorite(_) => "unfavorite",
            Mutation::Edit(_) => "edit",
            Mutation::Revert(_) => "revert",
            Mutation::AlbumCreate { .. } => "album_create",
            Mutation::AlbumDelete { .. } => "album_delete",
            Mutation::AlbumAdd(_) => "album_add",
            Mutation::AlbumRemove(_) => "album_remove",
        }
    }

    fn zone(&self) -> Option<&str> {
        match self {
            Mutation::Add { zone, .. }
            | Mutation::AlbumCreate { zone, .. }
            | Mutation::AlbumDelete { zone, .. } => zone.as_deref(),
            Mutation::Delete(a)
            | Mutation::Restore(a)
            | Mutation::Purge(a)
            | Mutation::Hide(a)
            | Mutation::Unhide(a)
            | Mutation::Favorite(a)
            | Mutation::Unfavorite(a)
            | Mutation::Edit(a)
            | Mutation::Revert(a) => a.zone.as_deref(),
            Mutation::AlbumAdd(a) | Mutation::AlbumRemove(a) => a.zone.as_deref(),
        }
    }
}

/// Random-stream label of added assets.
const ADD_STREAM: u64 = 0x4144_4431;

impl LibraryState {
    /// Apply a JSON object or array of objects `{"op": ...}`.
    pub fn mutate_json(&self, body: &serde_json::Value) -> Result<MutationOutcome, MutationError> {
        let ops: Vec<Mutation> = match body {
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    Mutation::deserialize(v)
                        .map_err(|e| MutationError::Parse(format!("operation {i}: {e}")))
                })
                .collect::<Result<_, _>>()?,
            serde_json::Value::Object(_) => {
                vec![Mutation::deserialize(body).map_err(|e| MutationError::Parse(e.to_string()))?]
            }
            _ => {
                return Err(MutationError::Parse(
                    "expected a JSON object or an array of objects".into(),
                ));
            }
        };
        self.mutate(&ops)
    }

    /// Apply mutations in order.
    pub fn mutate(&self, ops: &[Mutation]) -> Result<MutationOutcome, MutationError> {
        let mut out = MutationOutcome {
            ok: true,
            ..MutationOutcome::default()
        };
        for (index, op) in ops.iter().enumerate() {
            let invalid = |reason: String| MutationError::Invalid {
                index,
                op: op.name(),
                reason,
            };
            let zone_name = op.zone().unwrap_or(PRIMARY_ZONE);
            let zone = self
                .zone(zone_name)
                .ok_or_else(|| invalid(format!("no zone named {zone_name:?}")))?;
            self.apply(zone, op, &mut out).map_err(invalid)?;
        }
        Ok(out)
    }

    fn apply(
        &self,
        zone: &ZoneHandle,
        op: &Mutation,
        out: &mut MutationOutcome,
    ) -> Result<(), String> {
        let now = now_ms();
        let mut z = zone.write();
        let change = match op {
            Mutation::Delete(a) => Some((a, AssetChange::Delete)),
            Mutation::Restore(a) => Some((a, AssetChange::Restore)),
            Mutation::Purge(a) => Some((a, AssetChange::Purge)),
            Mutation::Hide(a) => Some((a, AssetChange::Hide)),
            Mutation::Unhide(a) => Some((a, AssetChange::Unhide)),
            Mutation::Favorite(a) => Some((a, AssetChange::Favorite)),
            Mutation::Unfavorite(a) => Some((a, AssetChange::Unfavorite)),
            Mutation::Edit(a) => Some((a, AssetChange::Edit)),
            Mutation::Revert(a) => Some((a, AssetChange::Revert)),
            _ => None,
        };
        if let Some((args, change)) = change {
            let idxs = self.resolve_assets(zone, &z, &args.asset_ids)?;
            for &i in &idxs {
                check_change(&z.assets[i as usize], change)?;
            }
            z.log.mark_time(now);
            for &i in &idxs {
                apply_change(&mut z, i, change, now);
            }
            out.asset_ids.extend(args.asset_ids.iter().cloned());
        } else {
            z.log.mark_time(now);
            match op {
                Mutation::Add { count, album, .. } => {
                    let album = album
                        .as_deref()
                        .map(|a| self.resolve_album(zone, &z, a, true))
                        .transpose()?;
                    if *count > 100_000 {
                        return Err(format!(
                            "count {count} is too large (at most 100000 per operation)"
                        ));
                    }
                    let new = self.add_assets(&mut z, zone.info.number, *count, now);
                    if let Some(album) = album {
                        add_to_album(&mut z, album, &new);
                    }
                    out.asset_ids.extend(
                        new.iter()
                            .map(|&i| self.ids.master_name(z.assets[i as usize].key)),
                    );
                }
                Mutation::AlbumCreate {
                    name,
                    parent,
                    folder,
                    ..
                } => {
                    if name.trim().is_empty() {
                        return Err("album name is empty".into());
                    }
                    if z.albums.is_empty() {
                        return Err("this zone has no albums".into());
                    }
                    let parent = parent
                        .as_deref()
                        .map(|p| self.resolve_folder(zone, &z, p))
                        .transpose()?;
                    let idx = create_album(&mut z, name, parent, *folder, now);
                    out.album_ids.push(self.album_record_name(&zone.info, idx));
                }
                Mutation::AlbumDelete { album, .. } => {
                    let a = self.resolve_album(zone, &z, album, false)?;
                    delete_album(&mut z, a)?;
                }
                Mutation::AlbumAdd(args) | Mutation::AlbumRemove(args) => {
                    let a = self.resolve_album(zone, &z, &args.album, true)?;
                    let idxs = self.resolve_assets(zone, &z, &args.asset_ids)?;
                    if matches!(op, Mutation::AlbumAdd(_)) {
                        add_to_album(&mut z, a, &idxs);
                    } else {
                        remove_from_album(&mut z, a, &idxs);
                    }
                    out.asset_ids.extend(args.asset_ids.iter().cloned());
                }
                _ => {}
            }
        }
        z.library_info_seq = z.log.append(RecordRef::LibraryInfo);
        self.bump_db_counter(&mut z);
        Ok(())
    }

    /// Apply one asset change (for `records/modify`); returns the asset's new view.
    pub fn change_asset(
        &self,
        zone: &ZoneHandle,
        idx: u32,
        change: AssetChange,
    ) -> Result<super::AssetView, String> {
        let now = now_ms();
        let mut z = zone.write();
        let asset = z.assets.get(idx as usize).ok_or("no such record")?;
        check_change(asset, change)?;
        z.log.mark_time(now);
        apply_change(&mut z, idx, change, now);
        z.library_info_seq = z.log.append(RecordRef::LibraryInfo);
        self.bump_db_counter(&mut z);
        self.asset_view(&z, idx)
            .ok_or_else(|| "no such record".to_string())
    }

    fn resolve_assets(
        &self,
        zone: &ZoneHandle,
        z: &Zone,
        ids: &[String],
    ) -> Result<Vec<u32>, String> {
        if ids.is_empty() {
            return Err("asset_ids is empty".into());
        }
        ids.iter()
            .map(|id| {
                self.resolve_asset(&zone.info, id)
                    .filter(|&i| z.assets.get(i as usize).is_some_and(|a| !a.has(PURGED)))
                    .ok_or_else(|| format!("no asset {id:?} in zone {}", zone.info.name))
            })
            .collect()
    }

    /// An album by record name or (first live match of its) name.
    fn resolve_album(
        &self,
        zone: &ZoneHandle,
        z: &Zone,
        album: &str,
        want_album: bool,
    ) -> Result<u32, String> {
        let idx = self.ids.parse_uuid(album).and_then(|_| {
            (1..z.albums.len() as u32).find(|&i| self.album_record_name(&zone.info, i) == album)
        });
        let idx = idx
            .or_else(|| {
                (1..z.albums.len() as u32)
                    .find(|&i| z.albums[i as usize].name == album && !z.albums[i as usize].deleted)
            })
            .ok_or_else(|| format!("no album {album:?}"))?;
        let a = &z.albums[idx as usize];
        if a.deleted {
            return Err(format!("album {album:?} is deleted"));
        }
        if want_album && a.kind != AlbumKind::Album {
            return Err(format!("{album:?} is a folder, not an album"));
        }
        Ok(idx)
    }

    fn resolve_folder(&self, zone: &ZoneHandle, z: &Zone, folder: &str) -> Result<u32, String> {
        let idx = self.resolve_album(zone, z, folder, false)?;
        if z.albums[idx as usize].kind != AlbumKind::Folder {
            return Err(format!("{folder:?} is not a folder"));
        }
        Ok(idx)
    }

    fn add_assets(&self, z: &mut Zone, zone_number: usize, count: usize, now: i64) -> Vec<u32> {
        let mut new = Vec::with_capacity(count);
        for _ in 0..count {
            let idx = z.assets.len() as u32;
            let key = asset_key(zone_number, idx);
            let mut rng = Rng::new(self.seed, ADD_STREAM, key);
            let kind = pick_kind(&mut rng);
            let burst = if kind == AssetKind::Burst {
                z.next_burst += 1;
                z.next_burst - 1
            } else {
                0
            };
            let asset_date = now - rng.range(0, 3_600_000);
            let added_date = (asset_date + added_delay(&mut rng, asset_date))
                .min(now)
                .max(asset_date);
            z.assets.push(Asset {
                key,
                asset_date,
                added_date,
                date_expunged: 0,
                master_seq: 0,
                asset_seq: 0,
                burst,
                edit_gen: 0,
                kind,
                flags: 0,
            });
            let (m, a) = (
                z.log.append(RecordRef::Master(idx)),
                z.log.append(RecordRef::Asset(idx)),
            );
            z.assets[idx as usize].master_seq = m;
            z.assets[idx as usize].asset_seq = a;
            let Zone {
                indexes, assets, ..
            } = z;
            indexes.add_asset(assets, idx);
            new.push(idx);
        }
        new
    }
}

fn check_change(a: &Asset, change: AssetChange) -> Result<(), String> {
    match change {
        AssetChange::Delete if a.has(DELETED) => Err("asset is already in Recently Deleted".into()),
        AssetChange::Restore if !a.has(DELETED) => Err("asset is not in Recently Deleted".into()),
        AssetChange::Revert if !a.has(EDITED) => Err("asset has no edit to revert".into()),
        _ if a.has(PURGED) => Err("asset was purged".into()),
        _ => Ok(()),
    }
}

/// Apply a checked change to asset `i`, re-index it and log its records.
fn apply_change(z: &mut Zone, i: u32, change: AssetChange, now: i64) {
    reindex(z, i, |a| match change {
        AssetChange::Delete => {
            a.flags |= DELETED;
            a.date_expunged = now + EXPUNGE_AFTER_MS;
        }
        AssetChange::Restore => {
            a.flags &= !DELETED;
            a.date_expunged = 0;
        }
        AssetChange::Purge => a.flags |= PURGED,
        AssetChange::Hide => a.flags |= HIDDEN,
        AssetChange::Unhide => a.flags &= !HIDDEN,
        AssetChange::Favorite => a.flags |= FAVORITE,
        AssetChange::Unfavorite => a.flags &= !FAVORITE,
        AssetChange::Edit => {
            a.flags |= EDITED;
            a.edit_gen = a.edit_gen.wrapping_add(1).max(1);
        }
        // The generation stays: a later edit gets content of its own.
        AssetChange::Revert => a.flags &= !EDITED,
    });
    if change == AssetChange::Purge {
        // The asset's album relations go with it.
        for album in z.asset_albums.remove(&i).unwrap_or_default() {
            if let Some(r) = z.relations.get_mut(&(album, i)) {
                r.live = false;
            }
            let seq = z.log.append(RecordRef::Relation { album, asset: i });
            if let Some(r) = z.relations.get_mut(&(album, i)) {
                r.seq = seq;
            }
        }
    }
    let both = matches!(
        change,
        AssetChange::Delete | AssetChange::Restore | AssetChange::Purge
    );
    if both {
        let seq = z.log.append(RecordRef::Master(i));
        z.assets[i as usize].master_seq = seq;
    }
    let seq = z.log.append(RecordRef::Asset(i));
    z.assets[i as usize].asset_seq = seq;
}

/// Change asset `i` with every index (albums included) kept consistent around the change.
fn reindex(z: &mut Zone, i: u32, f: impl FnOnce(&mut Asset)) {
    let albums = z.asset_albums.get(&i).cloned().unwrap_or_default();
    let Zone {
        indexes, assets, ..
    } = z;
    let was_visible = assets[i as usize].is_visible();
    indexes.remove_asset(assets, i);
    if was_visible {
        for &album in &albums {
            indexes.remove(IndexId::Album(album), assets, i);
        }
    }
    f(&mut assets[i as usize]);
    indexes.add_asset(assets, i);
    if assets[i as usize].is_visible() {
        for &album in &albums {
            indexes.insert(IndexId::Album(album), assets, i);
        }
    }
}

fn create_album(z: &mut Zone, name: &str, parent: Option<u32>, folder: bool, now: i64) -> u32 {
    let idx = z.albums.len() as u32;
    let position = z.albums.iter().map(|a| a.position).max().unwrap_or(0) + 1024;
    let seq = z.log.append(RecordRef::Album(idx));
    z.albums.push(Album {
        name: name.to_string(),
        kind: if folder {
            AlbumKind::Folder
        } else {
            AlbumKind::Album
        },
        parent,
        position,
        deleted: false,
        created_ms: now,
        seq,
        next_position: 1024,
    });
    if z.indexes.albums.len() <= idx as usize {
        z.indexes.albums.resize(idx as usize + 1, Vec::new());
    }
    idx
}

fn delete_album(z: &mut Zone, album: u32) -> Result<(), String> {
    if album == 0 {
        return Err("the root folder cannot be deleted".into());
    }
    let has_children = z
        .albums
        .iter()
        .any(|a| a.parent == Some(album) && !a.deleted);
    if has_children {
        return Err("folder is not empty".into());
    }
    let members: Vec<u32> = z
        .relations
        .iter()
        .filter(|((a, _), r)| *a == album && r.live)
        .map(|((_, asset), _)| *asset)
        .collect();
    remove_from_album(z, album, &members);
    z.albums[album as usize].deleted = true;
    z.albums[album as usize].seq = z.log.append(RecordRef::Album(album));
    if let Some(v) = z.indexes.albums.get_mut(album as usize) {
        v.clear();
    }
    Ok(())
}

fn add_to_album(z: &mut Zone, album: u32, assets: &[u32]) {
    let mut first = !z.relations.keys().any(|(al, _)| *al == album);
    for &i in assets {
        if z.relations.get(&(album, i)).is_some_and(|r| r.live) {
            continue;
        }
        let seq = z.log.append(RecordRef::Relation { album, asset: i });
        let a = &mut z.albums[album as usize];
        let position = a.next_position.max(1024);
        a.next_position = position + 1024;
        z.relations.insert(
            (album, i),
            Relation {
                seq,
                position,
                live: true,
                key_asset: first,
            },
        );
        first = false;
        z.asset_albums.entry(i).or_default().push(album);
        if z.assets[i as usize].is_visible() {
            let Zone {
                indexes, assets, ..
            } = z;
            indexes.insert(IndexId::Album(album), assets, i);
        }
    }
    z.albums[album as usize].seq = z.log.append(RecordRef::Album(album));
}

fn remove_from_album(z: &mut Zone, album: u32, assets: &[u32]) {
    for &i in assets {
        if !z.relations.get(&(album, i)).is_some_and(|r| r.live) {
            continue;
        }
        let seq = z.log.append(RecordRef::Relation { album, asset: i });
        if let Some(r) = z.relations.get_mut(&(album, i)) {
            r.live = false;
            r.seq = seq;
        }
        if let Some(list) = z.asset_albums.get_mut(&i) {
            list.retain(|a| *a != album);
        }
        if z.assets[i as usize].is_visible() {
            let Zone {
                indexes, assets, ..
            } = z;
            indexes.remove(IndexId::Album(album), assets, i);
        }
    }
}

/// Days a deleted asset stays in Recently Deleted (for documentation and tests).
pub const RETENTION_DAYS: i64 = EXPUNGE_AFTER_MS / DAY_MS;

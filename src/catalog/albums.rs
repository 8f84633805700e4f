//! User albums, folders of albums, and album membership.
//!
//! The album list (`CPLAlbumByPositionLive`) is small and always fetched whole, so a full
//! refresh replaces the tree of a library at once ([`Catalog::replace_albums`]); album keys of
//! albums that stay are kept. Membership is stored by record names (see `schema.rs`): a member
//! may be named by its CPLMaster record name (album-content listings) or by its CPLAsset record
//! name (`CPLContainerRelation` records of the change feed); both match.

use std::collections::{HashMap, HashSet};

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use super::error::{CatalogError, Result, SqlContext};
use super::{AlbumKey, Catalog, LibraryId, to_u64};
use crate::model::Album;

/// Deepest folder nesting followed when building paths (guards against a parent cycle).
const MAX_FOLDER_DEPTH: usize = 64;

/// An album with its place in the folder tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlbumEntry {
    pub key: AlbumKey,
    pub library: LibraryId,
    pub album: Album,
    /// Names from the top-level folder down to this album itself (`["Trips", "2019", "Rome"]`).
    /// A parent that is not stored (the root sentinel, or not yet seen) ends the path.
    pub path: Vec<String>,
}

/// What replacing an album tree changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AlbumTreeCounts {
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
}

impl Catalog {
    /// Makes `albums` the library's album tree in one transaction: new albums are added,
    /// existing ones updated (keeping their keys), albums not listed are removed with their
    /// membership.
    pub fn replace_albums(
        &mut self,
        library: LibraryId,
        albums: &[Album],
    ) -> Result<AlbumTreeCounts> {
        let tx = self.write_tx("replacing the album tree")?;
        let zone = library_zone(&tx, library)?;
        let mut counts = AlbumTreeCounts::default();
        let mut keep = HashSet::with_capacity(albums.len());
        for album in albums {
            match upsert_album(&tx, library, &zone, album)? {
                Some(true) => counts.added += 1,
                Some(false) => counts.changed += 1,
                None => {}
            }
            keep.insert(album.id.as_str());
        }
        let stored: Vec<String> = {
            let mut stmt = tx
                .prepare_cached("SELECT record_id FROM albums WHERE library_id = ?1")
                .ctx("listing albums")?;
            stmt.query_map([library], |r| r.get(0))
                .ctx("listing albums")?
                .collect::<rusqlite::Result<_>>()
                .ctx("listing albums")?
        };
        for id in stored.iter().filter(|id| !keep.contains(id.as_str())) {
            if remove_album(&tx, library, id)? {
                counts.removed += 1;
            }
        }
        tx.commit().ctx("replacing the album tree")?;
        Ok(counts)
    }

    /// Makes `asset_ids` (CPLMaster record names) the members of an album, in one transaction.
    pub fn set_album_members(
        &mut self,
        library: LibraryId,
        album_id: &str,
        asset_ids: &[&str],
    ) -> Result<()> {
        let tx = self.write_tx("setting album members")?;
        let known: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM albums WHERE library_id = ?1 AND record_id = ?2",
                params![library, album_id],
                |r| r.get(0),
            )
            .optional()
            .ctx("setting album members")?;
        if known.is_none() {
            return Err(CatalogError::UnknownAlbumId {
                library,
                album_id: album_id.to_owned(),
            });
        }
        // An album's listing holds its visible members only: the memberships of its hidden
        // and recently deleted assets are kept, for when they are shown again.
        tx.execute(
            "DELETE FROM album_members WHERE library_id = ?1 AND album_id = ?2
               AND asset_id NOT IN (SELECT record_id FROM assets WHERE library_id = ?1
                                    AND gone_ms IS NULL AND (hidden = 1 OR deleted = 1))",
            params![library, album_id],
        )
        .ctx("setting album members")?;
        for asset in asset_ids {
            add_member(&tx, library, album_id, asset)?;
        }
        tx.commit().ctx("setting album members")
    }

    /// Every album and folder of a library (deleted ones included, flagged), ordered by
    /// position, each with its folder path.
    pub fn albums(&self, library: LibraryId) -> Result<Vec<AlbumEntry>> {
        self.require_library(library)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT al.album_key, al.record_id, l.zone, al.name, al.parent_id, al.is_folder,
                        al.deleted, al.position
                 FROM albums al JOIN libraries l USING (library_id)
                 WHERE al.library_id = ?1 ORDER BY al.position, al.album_key",
            )
            .ctx("listing albums")?;
        let mut entries = stmt
            .query_map([library], |r| {
                Ok(AlbumEntry {
                    key: r.get(0)?,
                    library,
                    album: Album {
                        id: r.get(1)?,
                        zone: r.get(2)?,
                        name: r.get(3)?,
                        parent_id: r.get(4)?,
                        is_folder: r.get(5)?,
                        deleted: r.get(6)?,
                        position: r.get(7)?,
                    },
                    path: Vec::new(),
                })
            })
            .ctx("listing albums")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx("listing albums")?;
        let by_id: HashMap<&str, (&str, Option<&str>)> = entries
            .iter()
            .map(|e| {
                (
                    e.album.id.as_str(),
                    (e.album.name.as_str(), e.album.parent_id.as_deref()),
                )
            })
            .collect();
        let paths: Vec<Vec<String>> = entries
            .iter()
            .map(|e| folder_path(&by_id, &e.album.id))
            .collect();
        for (entry, path) in entries.iter_mut().zip(paths) {
            entry.path = path;
        }
        Ok(entries)
    }

    /// Each album's count of members that are in All Photos (not gone, hidden or deleted), by
    /// album record name; albums without any are absent. A join over every membership: for
    /// listings, not for building views.
    pub fn album_member_counts(&self, library: LibraryId) -> Result<HashMap<String, u64>> {
        self.require_library(library)?;
        let mut counts: HashMap<String, u64> = HashMap::new();
        let mut stmt = self
            .conn
            .prepare_cached(
                // Two indexed joins rather than one join on `record_id OR asset_record`,
                // which SQLite runs as a scan of every asset per member.
                "SELECT album_id, count(DISTINCT asset_key) FROM (
                    SELECT m.album_id, a.asset_key FROM album_members m
                      JOIN assets a ON a.library_id = m.library_id AND a.record_id = m.asset_id
                      WHERE m.library_id = ?1 AND a.gone_ms IS NULL AND a.hidden = 0
                        AND a.deleted = 0
                    UNION ALL
                    SELECT m.album_id, a.asset_key FROM album_members m
                      JOIN assets a ON a.library_id = m.library_id
                                   AND a.asset_record = m.asset_id
                      WHERE m.library_id = ?1 AND a.gone_ms IS NULL AND a.hidden = 0
                        AND a.deleted = 0)
                 GROUP BY album_id",
            )
            .ctx("counting album members")?;
        let rows = stmt
            .query_map([library], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .ctx("counting album members")?;
        for row in rows {
            let (id, n) = row.ctx("counting album members")?;
            counts.insert(id, to_u64(n));
        }
        Ok(counts)
    }

    /// The record names listed as members of an album (whether or not those assets are stored
    /// yet). For the member assets themselves use [`super::AssetFilter::Album`].
    pub fn album_member_ids(&self, library: LibraryId, album_id: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT asset_id FROM album_members WHERE library_id = ?1 AND album_id = ?2
                 ORDER BY asset_id",
            )
            .ctx("listing album members")?;
        let ids = stmt
            .query_map(params![library, album_id], |r| r.get(0))
            .ctx("listing album members")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx("listing album members")?;
        Ok(ids)
    }
}

/// The names from the outermost stored ancestor down to `id`.
fn folder_path(by_id: &HashMap<&str, (&str, Option<&str>)>, id: &str) -> Vec<String> {
    let mut path = Vec::new();
    let mut current = Some(id);
    while let Some(cur) = current {
        let Some(&(name, parent)) = by_id.get(cur) else {
            break;
        };
        if path.len() == MAX_FOLDER_DEPTH {
            tracing::warn!(
                album = id,
                "album folder chain too deep or cyclic; path cut"
            );
            break;
        }
        path.push(name.to_owned());
        current = parent;
    }
    path.reverse();
    path
}

pub(super) fn library_zone(tx: &Transaction<'_>, library: LibraryId) -> Result<String> {
    tx.prepare_cached("SELECT zone FROM libraries WHERE library_id = ?1")
        .and_then(|mut s| s.query_row([library], |r| r.get(0)).optional())
        .ctx("reading a library")?
        .ok_or(CatalogError::UnknownLibrary(library))
}

/// Inserts or updates one album. `Some(true)` added, `Some(false)` changed, `None` unchanged.
pub(super) fn upsert_album(
    tx: &Transaction<'_>,
    library: LibraryId,
    zone: &str,
    album: &Album,
) -> Result<Option<bool>> {
    if album.zone != zone {
        return Err(CatalogError::ZoneMismatch {
            record: album.id.clone(),
            expected: zone.to_owned(),
            found: album.zone.clone(),
        });
    }
    let existing: Option<(String, Option<String>, bool, bool, i64)> = tx
        .prepare_cached(
            "SELECT name, parent_id, is_folder, deleted, position FROM albums
             WHERE library_id = ?1 AND record_id = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![library, album.id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
        })
        .ctx("reading an album")?;
    let new = (
        album.name.clone(),
        album.parent_id.clone(),
        album.is_folder,
        album.deleted,
        album.position,
    );
    if existing.as_ref() == Some(&new) {
        return Ok(None);
    }
    tx.prepare_cached(
        "INSERT INTO albums (library_id, record_id, name, parent_id, is_folder, deleted, position)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (library_id, record_id) DO UPDATE SET name = excluded.name,
            parent_id = excluded.parent_id, is_folder = excluded.is_folder,
            deleted = excluded.deleted, position = excluded.position",
    )
    .and_then(|mut s| {
        s.execute(params![
            library,
            album.id,
            album.name,
            album.parent_id,
            album.is_folder,
            album.deleted,
            album.position
        ])
    })
    .ctx("storing an album")?;
    Ok(Some(existing.is_none()))
}

/// Removes an album and its membership; false when it was not stored.
pub(super) fn remove_album(
    tx: &Transaction<'_>,
    library: LibraryId,
    album_id: &str,
) -> Result<bool> {
    tx.prepare_cached("DELETE FROM album_members WHERE library_id = ?1 AND album_id = ?2")
        .and_then(|mut s| s.execute(params![library, album_id]))
        .ctx("removing an album")?;
    let n = tx
        .prepare_cached("DELETE FROM albums WHERE library_id = ?1 AND record_id = ?2")
        .and_then(|mut s| s.execute(params![library, album_id]))
        .ctx("removing an album")?;
    Ok(n > 0)
}

/// Adds one membership; false when it was already there.
pub(super) fn add_member(
    tx: &Transaction<'_>,
    library: LibraryId,
    album_id: &str,
    asset_id: &str,
) -> Result<bool> {
    let n = tx
        .prepare_cached(
            "INSERT INTO album_members (library_id, album_id, asset_id) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![library, album_id, asset_id]))
        .ctx("adding an album member")?;
    Ok(n > 0)
}

/// Removes one membership; false when it was not there.
pub(super) fn remove_member(
    tx: &Transaction<'_>,
    library: LibraryId,
    album_id: &str,
    asset_id: &str,
) -> Result<bool> {
    let n = tx
        .prepare_cached(
            "DELETE FROM album_members WHERE library_id = ?1 AND album_id = ?2 AND asset_id = ?3",
        )
        .and_then(|mut s| s.execute(params![library, album_id, asset_id]))
        .ctx("removing an album member")?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{MAX_FOLDER_DEPTH, folder_path};

    #[test]
    fn folder_paths_stop_at_unknown_parents_and_cycles() {
        let mut by_id = HashMap::new();
        by_id.insert("top", ("Top", Some("----Root-Folder----")));
        by_id.insert("mid", ("Mid", Some("top")));
        by_id.insert("leaf", ("Leaf", Some("mid")));
        by_id.insert("loop", ("Loop", Some("loop")));
        assert_eq!(folder_path(&by_id, "leaf"), ["Top", "Mid", "Leaf"]);
        assert_eq!(folder_path(&by_id, "top"), ["Top"]);
        assert!(folder_path(&by_id, "absent").is_empty());
        assert_eq!(folder_path(&by_id, "loop").len(), MAX_FOLDER_DEPTH);
    }
}

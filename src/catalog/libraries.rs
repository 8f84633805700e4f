//! Libraries (a database + zone pair) and the sync tokens that let refreshes resume from where
//! the last one stopped.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::error::{CatalogError, Result, SqlContext};
use super::{Catalog, LibraryId, now_ms, serialize_ms};
use crate::model::Library;

/// A library as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LibraryRecord {
    pub id: LibraryId,
    #[serde(flatten)]
    pub library: Library,
    /// The zone's `changes/zone` sync token, stored after the pages it covers were committed.
    #[serde(skip)]
    pub zone_token: Option<String>,
    /// When a run of this library last completed (serialised as a timestamp, as the top
    /// level's `last_refresh`).
    #[serde(rename = "last_refresh", serialize_with = "serialize_ms")]
    pub last_refresh_ms: Option<i64>,
    /// When a full enumeration of this library last completed.
    #[serde(rename = "last_full_refresh", serialize_with = "serialize_ms")]
    pub last_full_refresh_ms: Option<i64>,
}

const LIBRARY_COLUMNS: &str =
    "library_id, database, zone, owner, zone_token, last_refresh_ms, last_full_refresh_ms";

fn library_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LibraryRecord> {
    Ok(LibraryRecord {
        id: row.get(0)?,
        library: Library {
            database: row.get(1)?,
            zone: row.get(2)?,
            owner: row.get(3)?,
        },
        zone_token: row.get(4)?,
        last_refresh_ms: row.get(5)?,
        last_full_refresh_ms: row.get(6)?,
    })
}

impl Catalog {
    /// Adds a library, or updates its owner if known; returns its id (stable across calls).
    pub fn upsert_library(&mut self, library: &Library) -> Result<LibraryId> {
        let tx = self.write_tx("storing a library")?;
        let id = tx
            .query_row(
                "INSERT INTO libraries (database, zone, owner) VALUES (?1, ?2, ?3)
                 ON CONFLICT (database, zone) DO UPDATE SET owner = coalesce(excluded.owner, owner)
                 RETURNING library_id",
                params![library.database, library.zone, library.owner],
                |r| r.get(0),
            )
            .ctx("storing a library")?;
        tx.commit().ctx("storing a library")?;
        Ok(id)
    }

    /// Every library, in the order they were added.
    pub fn libraries(&self) -> Result<Vec<LibraryRecord>> {
        let sql = format!("SELECT {LIBRARY_COLUMNS} FROM libraries ORDER BY library_id");
        let mut stmt = self.conn.prepare_cached(&sql).ctx("listing libraries")?;
        let rows = stmt
            .query_map([], library_row)
            .ctx("listing libraries")?
            .collect::<rusqlite::Result<Vec<_>>>()
            .ctx("listing libraries")?;
        Ok(rows)
    }

    /// One library by id.
    pub fn library(&self, id: LibraryId) -> Result<LibraryRecord> {
        let sql = format!("SELECT {LIBRARY_COLUMNS} FROM libraries WHERE library_id = ?1");
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row([id], library_row).optional())
            .ctx("reading a library")?
            .ok_or(CatalogError::UnknownLibrary(id))
    }

    /// The id of the library of `database` / `zone`, if it was added.
    pub fn library_id(&self, database: &str, zone: &str) -> Result<Option<LibraryId>> {
        self.conn
            .prepare_cached("SELECT library_id FROM libraries WHERE database = ?1 AND zone = ?2")
            .and_then(|mut s| s.query_row([database, zone], |r| r.get(0)).optional())
            .ctx("finding a library")
    }

    /// The library's stored zone sync token.
    pub fn zone_token(&self, id: LibraryId) -> Result<Option<String>> {
        Ok(self.library(id)?.zone_token)
    }

    /// Stores (or with `None` forgets, e.g. after the server refused it) the zone sync token.
    pub fn set_zone_token(&mut self, id: LibraryId, token: Option<&str>) -> Result<()> {
        let tx = self.write_tx("storing a zone token")?;
        set_zone_token(&tx, id, token)?;
        tx.commit().ctx("storing a zone token")
    }

    /// The stored `changes/database` token of a database (`private` or `shared`).
    pub fn database_token(&self, database: &str) -> Result<Option<String>> {
        self.conn
            .prepare_cached("SELECT token FROM database_tokens WHERE database = ?1")
            .and_then(|mut s| s.query_row([database], |r| r.get(0)).optional())
            .ctx("reading a database token")
    }

    /// Stores (or with `None` forgets) the `changes/database` token of a database.
    pub fn set_database_token(&mut self, database: &str, token: Option<&str>) -> Result<()> {
        let tx = self.write_tx("storing a database token")?;
        match token {
            Some(token) => tx.execute(
                "INSERT INTO database_tokens (database, token, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (database) DO UPDATE SET token = excluded.token,
                                                     updated_ms = excluded.updated_ms",
                params![database, token, now_ms()],
            ),
            None => tx.execute(
                "DELETE FROM database_tokens WHERE database = ?1",
                [database],
            ),
        }
        .ctx("storing a database token")?;
        tx.commit().ctx("storing a database token")
    }
}

/// Sets the zone token inside a caller's transaction (so it lands with the pages it covers).
pub(super) fn set_zone_token(
    tx: &rusqlite::Transaction<'_>,
    id: LibraryId,
    token: Option<&str>,
) -> Result<()> {
    let updated = tx
        .prepare_cached("UPDATE libraries SET zone_token = ?2 WHERE library_id = ?1")
        .and_then(|mut s| s.execute(params![id, token]))
        .ctx("storing a zone token")?;
    if updated == 0 {
        return Err(CatalogError::UnknownLibrary(id));
    }
    Ok(())
}

/// Records a completed refresh of the library (full ones also set the full-refresh time).
pub(super) fn touch_refresh(
    tx: &rusqlite::Transaction<'_>,
    id: LibraryId,
    full: bool,
    at_ms: i64,
) -> Result<()> {
    tx.prepare_cached(
        "UPDATE libraries SET last_refresh_ms = ?2,
             last_full_refresh_ms = CASE WHEN ?3 THEN ?2 ELSE last_full_refresh_ms END
         WHERE library_id = ?1",
    )
    .and_then(|mut s| s.execute(params![id, at_ms, full]))
    .ctx("recording a refresh")?;
    Ok(())
}

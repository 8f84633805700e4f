//! The versioned schema and its migrations.
//!
//! A catalog is recognised by SQLite's `application_id` header field ([`APPLICATION_ID`]) and
//! versioned by `user_version` ([`CURRENT_VERSION`]). Opening for writing creates the current
//! schema in an empty file, or runs every migration from the file's version up to the current one
//! (see `open.rs` for the backup and the single transaction around them).
//!
//! Versions:
//! - **0**, the pre-release prototype: `assets(id, zone, filename, asset_date_ms,
//!   added_date_ms, favorite, hidden, deleted)` and `versions(asset_id, kind, size, checksum,
//!   file_type)`, metadata only, no runs, albums or download state ([`V0_SCHEMA`]).
//! - **1**, the first release ([`V1_SCHEMA`]).
//! - **2**: `downloads.source_sha256`, the digest of the bytes as the CDN served them when the
//!   file on disk was rewritten after its download (`--set-exif-datetime`); `sha256` is always
//!   the digest of the file on disk ([`V2_CHANGES`]).
//! - **3**: `orphaned_downloads`, files written for a version its asset later lost (an edit
//!   reverted in iCloud), kept until the sync engine has removed them ([`V3_CHANGES`]).
//! - **4**: the `(library_id, record_id)` uniqueness of `assets` moves from the table's
//!   definition to a named unique index, `assets_by_record` ([`V4_ASSETS`]), which a first
//!   listing can drop and build once at its end (see `bulk.rs`).
//! - **5**: `downloads.sidecar_of`, the content hash of the asset whose metadata the file's
//!   XMP sidecar was last written from (`--xmp-sidecar`), so that a sync writes the sidecar of
//!   a file downloaded before, and again when the asset's metadata changes ([`V5_CHANGES`]).
//! - **6** ([`V6_CHANGES`]): `assets.gps_speed` and `assets.gps_time_ms`, the speed and time
//!   of the GPS fix from `locationEnc` (XMP `exif:GPSSpeed`, `exif:GPSTimeStamp`); and
//!   `sync_runs`, one row per sync or mirror run into a download root with how it ended, so
//!   `status` can tell a folder whose last sync was interrupted. Migrating forgets the zone
//!   token of libraries with located assets: the next refresh lists them in full, which
//!   fills the new columns of assets stored before. And `moved_to_trash`: the assets this
//!   tool moved to Recently Deleted itself (`--delete-after-download`,
//!   `--keep-icloud-recent-days`), whose local copies `--auto-delete` keeps.
//! - **7** ([`V7_CHANGES`]): `downloads.planned_path`, the path a failed download was to be
//!   written to (the run's layout decided it; `rel_path` keeps meaning the older copy), so
//!   `status --failed` names every failure by where its file goes.
//!
//! Choices in v1 worth knowing:
//! - Row keys (`asset_key`, `version_key`, `album_key`, ...) are `AUTOINCREMENT` so a key is
//!   never reused after a delete: the mount derives inode numbers from them.
//! - Assets are never deleted, only marked `gone_ms`: their keys, and the download state of
//!   files already on disk, survive an asset leaving iCloud.
//! - Times are integer milliseconds since the Unix epoch (UTC), like CloudKit's.
//! - Album membership is keyed by record names, not row keys: the change feed can report a
//!   membership before the asset or album it names, and such a row simply joins nothing until
//!   they arrive.
//! - Download state never holds a download URL (they expire within the hour).

use rusqlite::{OptionalExtension, Transaction, params};

/// `PRAGMA application_id` of an icloudpd-rs catalog ("iCPD").
pub const APPLICATION_ID: i32 = 0x6943_5044;

/// Schema version this program reads and writes.
pub const CURRENT_VERSION: i64 = 7;

/// The columns of `assets` from version 1 to 5, in this order (v6 adds two at the end: see
/// [`V6_CHANGES`]; the v4 rebuild copies rows by position, so this list stays as it was).
macro_rules! assets_columns {
    () => {
        r#"
    asset_key        INTEGER PRIMARY KEY AUTOINCREMENT,
    library_id       INTEGER NOT NULL REFERENCES libraries(library_id),
    record_id        TEXT NOT NULL,
    asset_record     TEXT NOT NULL,
    asset_change_tag TEXT,
    filename         TEXT,
    filename_problem TEXT,
    item_type        TEXT,
    kind             TEXT NOT NULL,
    asset_date_ms    INTEGER NOT NULL,
    added_date_ms    INTEGER NOT NULL,
    tz_offset_s      INTEGER,
    favorite         INTEGER NOT NULL,
    hidden           INTEGER NOT NULL,
    deleted          INTEGER NOT NULL,
    date_expunged_ms INTEGER,
    burst_id         TEXT,
    subtype          INTEGER NOT NULL,
    subtype_v2       INTEGER NOT NULL,
    orientation      INTEGER,
    duration         INTEGER,
    adjustment_type  TEXT,
    caption          TEXT,
    description      TEXT,
    keywords         TEXT,             -- JSON array of strings; NULL when there are none
    latitude         REAL,
    longitude        REAL,
    altitude         REAL,
    live             INTEGER NOT NULL, -- derived: an image with a motion version
    content_hash     INTEGER NOT NULL, -- of the Asset as last upserted; 0 = unknown
    first_seen_run   INTEGER REFERENCES runs(run_id),
    last_seen_run    INTEGER REFERENCES runs(run_id),
    gone_ms          INTEGER           -- set when the asset left iCloud
"#
    };
}

/// The v1 schema, created in one transaction on an empty database.
pub const V1_SCHEMA: &str = concat!(
    r#"
CREATE TABLE libraries (
    library_id           INTEGER PRIMARY KEY AUTOINCREMENT,
    database             TEXT NOT NULL,
    zone                 TEXT NOT NULL,
    owner                TEXT,
    zone_token           TEXT,
    last_refresh_ms      INTEGER,
    last_full_refresh_ms INTEGER,
    UNIQUE (database, zone)
);

-- changes/database tokens belong to a database (private, shared), not to a zone.
CREATE TABLE database_tokens (
    database   TEXT PRIMARY KEY,
    token      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);

CREATE TABLE runs (
    run_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    library_id  INTEGER NOT NULL REFERENCES libraries(library_id),
    kind        TEXT NOT NULL CHECK (kind IN ('full', 'incremental')),
    status      TEXT NOT NULL CHECK (status IN ('running', 'completed', 'interrupted', 'failed')),
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    expected    INTEGER,
    seen        INTEGER NOT NULL DEFAULT 0,
    added       INTEGER NOT NULL DEFAULT 0,
    changed     INTEGER NOT NULL DEFAULT 0,
    removed     INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX runs_by_library ON runs (library_id, run_id);
CREATE INDEX runs_by_status ON runs (status);

CREATE TABLE skipped_records (
    run_id      INTEGER NOT NULL REFERENCES runs(run_id),
    record_name TEXT NOT NULL,
    reason      TEXT NOT NULL
);
CREATE INDEX skipped_by_run ON skipped_records (run_id);

CREATE TABLE assets (
"#,
    assets_columns!(),
    r#",
    UNIQUE (library_id, record_id)
);
CREATE INDEX assets_in_order ON assets (library_id, added_date_ms, record_id);
CREATE INDEX assets_by_asset_record ON assets (library_id, asset_record);

CREATE TABLE versions (
    version_key INTEGER PRIMARY KEY AUTOINCREMENT,
    asset_key   INTEGER NOT NULL REFERENCES assets(asset_key) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    file_type   TEXT NOT NULL,
    checksum    TEXT NOT NULL,
    width       INTEGER,
    height      INTEGER,
    UNIQUE (asset_key, kind)
);

CREATE TABLE albums (
    album_key  INTEGER PRIMARY KEY AUTOINCREMENT,
    library_id INTEGER NOT NULL REFERENCES libraries(library_id),
    record_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    parent_id  TEXT,
    is_folder  INTEGER NOT NULL,
    deleted    INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    UNIQUE (library_id, record_id)
);

CREATE TABLE album_members (
    library_id INTEGER NOT NULL REFERENCES libraries(library_id),
    album_id   TEXT NOT NULL,
    asset_id   TEXT NOT NULL,
    PRIMARY KEY (library_id, album_id, asset_id)
) WITHOUT ROWID;
CREATE INDEX album_members_by_asset ON album_members (library_id, asset_id);

CREATE TABLE download_roots (
    root_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    path       BLOB NOT NULL UNIQUE,  -- the OS bytes of the absolute path
    created_ms INTEGER NOT NULL
);

CREATE TABLE downloads (
    root_id       INTEGER NOT NULL REFERENCES download_roots(root_id) ON DELETE CASCADE,
    version_key   INTEGER NOT NULL REFERENCES versions(version_key) ON DELETE CASCADE,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'downloaded', 'failed')),
    rel_path      TEXT,    -- downloaded: the file; pending/failed: where an older copy was
    size          INTEGER,
    sha256        BLOB,
    downloaded_ms INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    failed_ms     INTEGER,
    PRIMARY KEY (root_id, version_key)
) WITHOUT ROWID;
CREATE INDEX downloads_by_version ON downloads (version_key);
CREATE INDEX downloads_by_state ON downloads (root_id, state, version_key);
"#
);

/// v1 -> v2, applied on top of [`V1_SCHEMA`] for a new catalog too.
pub const V2_CHANGES: &str = r#"
ALTER TABLE downloads ADD COLUMN source_sha256 BLOB;
"#;

/// v4 -> v5: a new, empty column (every sidecar counts as written from unknown metadata).
pub const V5_CHANGES: &str = r#"
ALTER TABLE downloads ADD COLUMN sidecar_of INTEGER;
"#;

/// v5 -> v6: the GPS fix's speed and time, and the outcome of each sync run. A run row is
/// written `running` when the run has its folder, and gets its outcome when it ends; one
/// still `running` when no process holds the catalog died with its process.
pub const V6_CHANGES: &str = r#"
ALTER TABLE assets ADD COLUMN gps_speed REAL;     -- metres per second, as recorded
ALTER TABLE assets ADD COLUMN gps_time_ms INTEGER; -- when the fix was taken
CREATE TABLE sync_runs (
    sync_run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    root_id     INTEGER NOT NULL REFERENCES download_roots(root_id) ON DELETE CASCADE,
    mode        TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    ended_ms    INTEGER,
    outcome     TEXT NOT NULL
                CHECK (outcome IN ('running', 'complete', 'partial', 'interrupted', 'failed')),
    downloaded  INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE INDEX sync_runs_by_root ON sync_runs (root_id, sync_run_id);
CREATE TABLE moved_to_trash (
    asset_key INTEGER PRIMARY KEY REFERENCES assets(asset_key) ON DELETE CASCADE,
    moved_ms  INTEGER NOT NULL
);
"#;

/// v6 -> v7: a new, empty column (failures recorded before name no planned path).
pub const V7_CHANGES: &str = r#"
ALTER TABLE downloads ADD COLUMN planned_path TEXT; -- failed: where the last attempt was to write
"#;

/// v2 -> v3: the files of lost versions (see `orphans.rs`).
pub const V3_CHANGES: &str = r#"
CREATE TABLE orphaned_downloads (
    orphan_id INTEGER PRIMARY KEY AUTOINCREMENT,
    root_id   INTEGER NOT NULL REFERENCES download_roots(root_id) ON DELETE CASCADE,
    asset_key INTEGER NOT NULL REFERENCES assets(asset_key) ON DELETE CASCADE,
    kind      TEXT NOT NULL,
    rel_path  TEXT NOT NULL,
    size      INTEGER NOT NULL,
    sha256    BLOB NOT NULL
);
CREATE INDEX orphaned_by_asset ON orphaned_downloads (root_id, asset_key);
"#;

/// v3 -> v4: `assets` rebuilt without its inline `UNIQUE`, which becomes a named index (an
/// inline constraint's index can never be dropped). Same columns, same order, same rows.
pub const V4_ASSETS: &str = concat!(
    "CREATE TABLE assets_v4 (",
    assets_columns!(),
    r#");
INSERT INTO assets_v4 SELECT * FROM assets;
DROP TABLE assets;
ALTER TABLE assets_v4 RENAME TO assets;
CREATE UNIQUE INDEX assets_by_record ON assets (library_id, record_id);
CREATE INDEX assets_in_order ON assets (library_id, added_date_ms, record_id);
CREATE INDEX assets_by_asset_record ON assets (library_id, asset_record);
"#
);

/// The v0 prototype schema; kept so tests can build a v0 file and the migration knows its input.
pub const V0_SCHEMA: &str = r#"
CREATE TABLE assets (
    id            TEXT PRIMARY KEY,
    zone          TEXT NOT NULL,
    filename      TEXT,
    asset_date_ms INTEGER NOT NULL,
    added_date_ms INTEGER NOT NULL,
    favorite      INTEGER NOT NULL,
    hidden        INTEGER NOT NULL,
    deleted       INTEGER NOT NULL
);
CREATE TABLE versions (
    asset_id  TEXT NOT NULL REFERENCES assets(id),
    kind      TEXT NOT NULL,
    size      INTEGER NOT NULL,
    checksum  TEXT NOT NULL,
    file_type TEXT NOT NULL,
    PRIMARY KEY (asset_id, kind)
);
"#;

/// One step of the schema history.
pub struct Migration {
    /// Version the step starts from.
    pub from: i64,
    /// Version the step produces (always `from + 1`).
    pub to: i64,
    /// Rewrites the data inside the caller's transaction; an error rolls everything back.
    pub apply: fn(&Transaction<'_>) -> Result<(), String>,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        from: 0,
        to: 1,
        apply: migrate_v0_to_v1,
    },
    Migration {
        from: 1,
        to: 2,
        apply: migrate_v1_to_v2,
    },
    Migration {
        from: 2,
        to: 3,
        apply: migrate_v2_to_v3,
    },
    Migration {
        from: 3,
        to: 4,
        apply: migrate_v3_to_v4,
    },
    Migration {
        from: 4,
        to: 5,
        apply: migrate_v4_to_v5,
    },
    Migration {
        from: 5,
        to: 6,
        apply: migrate_v5_to_v6,
    },
    Migration {
        from: 6,
        to: 7,
        apply: migrate_v6_to_v7,
    },
];

/// Creates the current schema in an empty database (inside the caller's transaction).
pub fn create_current(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(V1_SCHEMA)?;
    tx.execute_batch(V2_CHANGES)?;
    tx.execute_batch(V3_CHANGES)?;
    rebuild_assets(tx)?;
    tx.execute_batch(V5_CHANGES)?;
    tx.execute_batch(V6_CHANGES)?;
    tx.execute_batch(V7_CHANGES)?;
    stamp(tx, CURRENT_VERSION)
}

/// v1 -> v2: the new column starts empty (no file was rewritten under v1's bookkeeping).
fn migrate_v1_to_v2(tx: &Transaction<'_>) -> Result<(), String> {
    tx.execute_batch(V2_CHANGES).map_err(|e| e.to_string())
}

/// v2 -> v3: a new, empty table.
fn migrate_v2_to_v3(tx: &Transaction<'_>) -> Result<(), String> {
    tx.execute_batch(V3_CHANGES).map_err(|e| e.to_string())
}

/// v3 -> v4: see [`V4_ASSETS`].
fn migrate_v3_to_v4(tx: &Transaction<'_>) -> Result<(), String> {
    rebuild_assets(tx).map_err(|e| e.to_string())
}

/// v4 -> v5: see [`V5_CHANGES`].
fn migrate_v4_to_v5(tx: &Transaction<'_>) -> Result<(), String> {
    tx.execute_batch(V5_CHANGES).map_err(|e| e.to_string())
}

/// v5 -> v6: see [`V6_CHANGES`]. Assets stored before have no speed or time although iCloud
/// has them, and an incremental refresh only brings assets that change: their libraries are
/// listed in full once (the zone token is what makes a refresh incremental).
fn migrate_v5_to_v6(tx: &Transaction<'_>) -> Result<(), String> {
    tx.execute_batch(V6_CHANGES).map_err(|e| e.to_string())?;
    tx.execute(
        "UPDATE libraries SET zone_token = NULL
         WHERE library_id IN (SELECT DISTINCT library_id FROM assets
                              WHERE latitude IS NOT NULL AND gone_ms IS NULL)",
        [],
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// v6 -> v7: see [`V7_CHANGES`].
fn migrate_v6_to_v7(tx: &Transaction<'_>) -> Result<(), String> {
    tx.execute_batch(V7_CHANGES).map_err(|e| e.to_string())
}

/// Runs [`V4_ASSETS`] (foreign keys off: dropping `assets` must not touch `versions`), keeping
/// the AUTOINCREMENT high-water mark so no asset key is ever handed out twice.
fn rebuild_assets(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let last_key: Option<i64> = tx
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'assets'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    tx.execute_batch(V4_ASSETS)?;
    if let Some(last_key) = last_key {
        tx.execute("DELETE FROM sqlite_sequence WHERE name = 'assets'", [])?;
        tx.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('assets', ?1)",
            [last_key],
        )?;
    }
    Ok(())
}

/// Writes the identifying header fields.
pub fn stamp(tx: &Transaction<'_>, version: i64) -> rusqlite::Result<()> {
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.pragma_update(None, "user_version", version)
}

/// v0 -> v1: libraries appear (one per zone, in the private database), assets gain the fields
/// the prototype did not keep (filled with neutral values; the next refresh rewrites them since
/// `content_hash` 0 never matches), versions get row keys.
fn migrate_v0_to_v1(tx: &Transaction<'_>) -> Result<(), String> {
    let sql = |e: rusqlite::Error| e.to_string();
    tx.execute_batch(
        "ALTER TABLE assets RENAME TO v0_assets;
         ALTER TABLE versions RENAME TO v0_versions;",
    )
    .map_err(sql)?;
    tx.execute_batch(V1_SCHEMA).map_err(sql)?;

    // Refuse data the new schema cannot represent rather than inventing it.
    let mut bad_kind = tx.prepare("SELECT kind FROM v0_versions").map_err(sql)?;
    let kinds = bad_kind
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(sql)?;
    for kind in kinds {
        let kind = kind.map_err(sql)?;
        if crate::model::VersionKind::parse(&kind).is_none() {
            return Err(format!("v0 version kind {kind:?} is unknown"));
        }
    }
    drop(bad_kind);

    tx.execute_batch(
        r#"
        INSERT INTO libraries (database, zone)
            SELECT DISTINCT 'private', zone FROM v0_assets ORDER BY zone;
        INSERT INTO assets (library_id, record_id, asset_record, filename, kind,
                            asset_date_ms, added_date_ms, favorite, hidden, deleted,
                            subtype, subtype_v2, live, content_hash)
            SELECT l.library_id, a.id, a.id, a.filename,
                   CASE
                     WHEN EXISTS (SELECT 1 FROM v0_versions v WHERE v.asset_id = a.id
                                  AND v.kind = 'original'
                                  AND v.file_type = 'com.apple.quicktime-movie') THEN 'movie'
                     ELSE 'image'
                   END,
                   a.asset_date_ms, a.added_date_ms, a.favorite, a.hidden, a.deleted, 0, 0, 0, 0
            FROM v0_assets a JOIN libraries l ON l.zone = a.zone
            ORDER BY a.added_date_ms, a.id;
        INSERT INTO versions (asset_key, kind, size, file_type, checksum)
            SELECT n.asset_key, v.kind, v.size, v.file_type, v.checksum
            FROM v0_versions v JOIN assets n ON n.record_id = v.asset_id
            ORDER BY n.asset_key, v.kind;
        UPDATE assets SET live = 1
            WHERE kind <> 'movie' AND EXISTS (
                SELECT 1 FROM versions v WHERE v.asset_key = assets.asset_key
                AND v.kind IN ('live_original', 'live_medium', 'live_thumb', 'live_adjusted'));
        DROP TABLE v0_versions;
        DROP TABLE v0_assets;
        "#,
    )
    .map_err(sql)?;

    let orphans: i64 = tx
        .query_row(
            "SELECT count(*) FROM versions v LEFT JOIN assets a USING (asset_key)
             WHERE a.asset_key IS NULL",
            params![],
            |row| row.get(0),
        )
        .map_err(sql)?;
    if orphans != 0 {
        return Err(format!("{orphans} migrated versions lost their asset"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_form_a_chain_up_to_the_current_version() {
        let mut version = 0;
        for m in MIGRATIONS {
            assert_eq!((m.from, m.to), (version, version + 1));
            version = m.to;
        }
        assert_eq!(version, CURRENT_VERSION);
    }

    #[test]
    fn a_v6_failure_keeps_its_row_and_names_no_planned_path() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        for sql in [V1_SCHEMA, V2_CHANGES, V3_CHANGES] {
            tx.execute_batch(sql).unwrap();
        }
        rebuild_assets(&tx).unwrap();
        for sql in [V5_CHANGES, V6_CHANGES] {
            tx.execute_batch(sql).unwrap();
        }
        tx.execute_batch(
            "INSERT INTO libraries (database, zone) VALUES ('private', 'PrimarySync');
             INSERT INTO assets (library_id, record_id, asset_record, kind, asset_date_ms,
                                 added_date_ms, favorite, hidden, deleted, subtype, subtype_v2,
                                 live, content_hash)
                 VALUES (1, 'M1', 'A1', 'image', 1, 1, 0, 0, 0, 0, 0, 0, 0);
             INSERT INTO versions (asset_key, kind, size, file_type, checksum)
                 VALUES (1, 'original', 1, 'public.jpeg', 'c');
             INSERT INTO download_roots (path, created_ms) VALUES (x'2f70', 1);
             INSERT INTO downloads (root_id, version_key, state, rel_path, attempts, last_error)
                 VALUES (1, 1, 'failed', 'a/IMG.JPG', 2, 'HTTP 503');",
        )
        .unwrap();
        migrate_v6_to_v7(&tx).unwrap();
        let row: (Option<String>, Option<String>, i64) = tx
            .query_row(
                "SELECT planned_path, rel_path, attempts FROM downloads",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(row, (None, Some("a/IMG.JPG".into()), 2));
    }

    #[test]
    fn the_current_schema_is_created_and_stamped() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        create_current(&tx).unwrap();
        tx.commit().unwrap();
        let app: i32 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!((app, version), (APPLICATION_ID, CURRENT_VERSION));
    }
}

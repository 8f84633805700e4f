//! Opening catalogs: creation, the one-writer lock, refusal of foreign, damaged and newer files
//! (bytes untouched), read-only handles, and schema migration from v0.

use crate::support;

use icloudpd_rs::catalog::schema::{
    APPLICATION_ID, CURRENT_VERSION, V0_SCHEMA, V1_SCHEMA, V2_CHANGES, V3_CHANGES, V4_ASSETS,
    V5_CHANGES,
};
use icloudpd_rs::catalog::{AssetFilter, Catalog, CatalogError, RunKind};
use icloudpd_rs::model::{ItemKind, Library, VersionKind};
use rusqlite::Connection;
use support::*;

#[test]
fn creates_a_catalog_in_wal_mode_and_reopens_it() {
    let s = Scratch::new();
    let db = s.path("nested/dir/catalog.db");
    {
        let (mut c, lib) = writer(&db);
        assert!(c.is_writer());
        full_refresh(&mut c, lib, &[photo("A", 1)]);
    }
    let conn = Connection::open(&db).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let app: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .unwrap();
    assert_eq!(app, APPLICATION_ID);
    drop(conn);

    let c = Catalog::open(&db).unwrap();
    let lib = c.library_id("private", "PrimarySync").unwrap().unwrap();
    assert_eq!(c.count_assets(lib, AssetFilter::AllPhotos).unwrap(), 1);
    assert!(c.interrupted_at_open().is_empty());
    // Personal data: the catalog and the files SQLite and the lock make beside it are the
    // owner's only.
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let file = s.path(&format!("nested/dir/catalog.db{suffix}"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
}

#[test]
fn an_empty_file_becomes_a_catalog() {
    let s = Scratch::new();
    std::fs::write(s.db(), b"").unwrap();
    let (c, _) = writer(&s.db());
    assert_eq!(c.libraries().unwrap().len(), 1);
}

#[test]
fn newer_schema_is_refused_and_left_untouched() {
    let s = Scratch::new();
    drop(writer(&s.db()));
    {
        let conn = Connection::open(s.db()).unwrap();
        conn.pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
    }
    let before = file_bytes(&s.db());
    for result in [Catalog::open(s.db()), Catalog::open_read_only(s.db())] {
        match result {
            Err(CatalogError::NewerSchema {
                found, supported, ..
            }) => {
                assert_eq!(found, CURRENT_VERSION + 1);
                assert_eq!(supported, CURRENT_VERSION);
            }
            other => panic!("expected NewerSchema, got {other:?}"),
        }
    }
    assert_eq!(file_bytes(&s.db()), before);
    let message = Catalog::open(s.db()).unwrap_err().to_string();
    assert!(message.contains("catalog.db"), "{message}");
    assert!(message.contains("untouched"), "{message}");
}

#[test]
fn non_sqlite_files_are_refused_untouched() {
    let s = Scratch::new();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "text",
            b"these are my holiday notes, not a database\n".to_vec(),
        ),
        (
            "random",
            (0..8192u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
        ("short", b"SQLite format 3\0".to_vec()),
    ];
    for (name, bytes) in cases {
        let path = s.path(name);
        std::fs::write(&path, &bytes).unwrap();
        for result in [Catalog::open(&path), Catalog::open_read_only(&path)] {
            match result {
                Err(CatalogError::NotACatalog { path: p, .. }) => assert_eq!(p, path),
                other => panic!("{name}: expected NotACatalog, got {other:?}"),
            }
        }
        assert_eq!(file_bytes(&path), bytes, "{name} was modified");
    }
}

#[test]
fn a_damaged_database_is_refused_untouched() {
    let s = Scratch::new();
    {
        let (mut c, lib) = writer(&s.db());
        full_refresh(&mut c, lib, &[photo("A", 1)]);
    }
    // Keep SQLite's 100-byte header, destroy the schema page behind it.
    let mut bytes = file_bytes(&s.db());
    for b in bytes.iter_mut().skip(100).take(3000) {
        *b = 0xA5;
    }
    std::fs::write(s.db(), &bytes).unwrap();
    for result in [Catalog::open(s.db()), Catalog::open_read_only(s.db())] {
        match result {
            Err(CatalogError::Corrupt { path, .. }) => assert_eq!(path, s.db()),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    assert_eq!(file_bytes(&s.db()), bytes);
}

#[test]
fn a_truncated_catalog_is_refused_by_writers_and_found_by_check_integrity() {
    let s = Scratch::new();
    {
        let (mut c, lib) = writer(&s.db());
        let assets: Vec<_> = (0..2000).map(|i| photo(&format!("M{i}"), i)).collect();
        full_refresh(&mut c, lib, &assets);
    }
    let mut bytes = file_bytes(&s.db());
    bytes.truncate(bytes.len() / 2);
    std::fs::write(s.db(), &bytes).unwrap();

    match Catalog::open(s.db()) {
        Err(e @ CatalogError::Corrupt { .. }) => {
            assert!(e.to_string().contains("catalog.db"), "{e}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(file_bytes(&s.db()), bytes);
    // Readers skip the full check at open (SQLite may still notice), and can ask for it.
    let found = Catalog::open_read_only(s.db()).and_then(|r| r.check_integrity());
    assert!(
        matches!(found, Err(CatalogError::Corrupt { .. })),
        "{found:?}"
    );
    assert_eq!(file_bytes(&s.db()), bytes);
}

#[test]
fn damage_past_the_schema_pages_is_found_by_the_writer_check() {
    let s = Scratch::new();
    {
        let (mut c, lib) = writer(&s.db());
        let assets: Vec<_> = (0..2000).map(|i| photo(&format!("M{i}"), i)).collect();
        full_refresh(&mut c, lib, &assets);
    }
    // Overwrite a stretch in the middle of the file (the size stays right).
    let mut bytes = file_bytes(&s.db());
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 8192] {
        *b = 0x5A;
    }
    std::fs::write(s.db(), &bytes).unwrap();
    assert!(matches!(
        Catalog::open(s.db()),
        Err(CatalogError::Corrupt { .. })
    ));
    assert_eq!(file_bytes(&s.db()), bytes);
}

#[test]
fn a_sound_catalog_passes_check_integrity() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    full_refresh(&mut c, lib, &[photo("A", 1)]);
    c.check_integrity().unwrap();
    Catalog::open_read_only(s.db())
        .unwrap()
        .check_integrity()
        .unwrap();
}

#[test]
fn another_programs_database_is_refused_untouched() {
    let s = Scratch::new();
    {
        let conn = Connection::open(s.db()).unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hi');")
            .unwrap();
    }
    let before = file_bytes(&s.db());
    match Catalog::open(s.db()) {
        Err(CatalogError::NotACatalog { reason, .. }) => {
            assert!(reason.contains("another program"), "{reason}")
        }
        other => panic!("expected NotACatalog, got {other:?}"),
    }
    assert_eq!(file_bytes(&s.db()), before);
}

#[test]
fn a_second_writer_is_refused_while_a_reader_works() {
    let s = Scratch::new();
    let (mut w, lib) = writer(&s.db());
    full_refresh(&mut w, lib, &[photo("A", 1), photo("B", 2)]);

    match Catalog::open(s.db()) {
        Err(e @ CatalogError::Locked { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains(&format!("pid {}", std::process::id())),
                "the error should name the holder: {message}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }

    let reader = Catalog::open_read_only(s.db()).unwrap();
    assert!(!reader.is_writer());
    assert_eq!(reader.count_assets(lib, AssetFilter::AllPhotos).unwrap(), 2);
    let status = reader.status(None).unwrap();
    assert!(status.writer.is_some(), "a reader sees the live writer");

    // The writer keeps writing while the reader is open; the reader sees the commit and
    // notices it through the data version.
    let version = reader.data_version().unwrap();
    assert_eq!(reader.data_version().unwrap(), version);
    let run = w.begin_run(lib, RunKind::Full, None).unwrap();
    w.upsert_page(run, &[photo("C", 3)], &[]).unwrap();
    assert_eq!(reader.count_assets(lib, AssetFilter::AllPhotos).unwrap(), 3);
    assert_ne!(reader.data_version().unwrap(), version);

    // Writes through the reader are refused before reaching SQLite.
    let mut reader = reader;
    assert!(matches!(
        reader.upsert_library(&Library::primary()),
        Err(CatalogError::ReadOnly { .. })
    ));

    drop(w);
    assert!(reader.status(None).unwrap().writer.is_none());
    let again = Catalog::open(s.db()).expect("the lock dies with its holder");
    assert_eq!(again.interrupted_at_open(), &[run]);
}

#[test]
fn read_only_open_of_a_missing_catalog_fails_clearly() {
    let s = Scratch::new();
    match Catalog::open_read_only(s.db()) {
        Err(e @ CatalogError::Missing { .. }) => assert!(e.to_string().contains("catalog.db")),
        other => panic!("expected Missing, got {other:?}"),
    }
    assert!(!s.db().exists(), "a reader must not create the file");
}

/// A v0 prototype catalog, built by hand.
fn build_v0(path: &std::path::Path, bad_kind: bool) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(V0_SCHEMA).unwrap();
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .unwrap();
    conn.execute_batch(
        "INSERT INTO assets VALUES ('M1', 'PrimarySync', 'IMG_0001.HEIC', 1000, 2000, 1, 0, 0);
         INSERT INTO assets VALUES ('M2', 'PrimarySync', 'IMG_0002.MOV', 3000, 4000, 0, 1, 0);
         INSERT INTO assets VALUES ('S1', 'SharedSync-ABC', NULL, 5000, 6000, 0, 0, 1);
         INSERT INTO versions VALUES ('M1', 'original', 111, 'c-m1-o', 'public.heic');
         INSERT INTO versions VALUES ('M1', 'live_original', 112, 'c-m1-l',
                                      'com.apple.quicktime-movie');
         INSERT INTO versions VALUES ('M2', 'original', 222, 'c-m2-o', 'com.apple.quicktime-movie');
         INSERT INTO versions VALUES ('S1', 'thumb', 333, 'c-s1-t', 'public.jpeg');",
    )
    .unwrap();
    if bad_kind {
        conn.execute(
            "INSERT INTO versions VALUES ('M2', 'hologram', 1, 'x', 'public.jpeg')",
            [],
        )
        .unwrap();
    }
}

fn backups(s: &Scratch) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".backup-v0-"))
        .collect()
}

#[test]
fn a_v0_catalog_is_backed_up_and_migrated() {
    let s = Scratch::new();
    build_v0(&s.db(), false);
    let original = file_bytes(&s.db());

    let c = Catalog::open(s.db()).unwrap();
    let libs = c.libraries().unwrap();
    assert_eq!(libs.len(), 2);
    let primary = c.library_id("private", "PrimarySync").unwrap().unwrap();
    let shared = c.library_id("private", "SharedSync-ABC").unwrap().unwrap();

    let m1 = c.asset_by_id(primary, "M1").unwrap().unwrap();
    assert_eq!(m1.asset.filename.as_deref(), Some("IMG_0001.HEIC"));
    assert_eq!(
        (m1.asset.asset_date_ms, m1.asset.added_date_ms),
        (1000, 2000)
    );
    assert!(m1.asset.favorite && !m1.asset.hidden);
    assert_eq!(m1.asset.kind, ItemKind::Image);
    assert!(m1.asset.is_live());
    assert_eq!(m1.asset.version(VersionKind::Original).unwrap().size, 111);
    assert_eq!(
        m1.asset
            .version(VersionKind::LiveOriginal)
            .unwrap()
            .checksum,
        "c-m1-l"
    );
    let m2 = c.asset_by_id(primary, "M2").unwrap().unwrap();
    assert_eq!(m2.asset.kind, ItemKind::Movie);
    assert!(m2.asset.hidden);
    let s1 = c.asset_by_id(shared, "S1").unwrap().unwrap();
    assert!(s1.asset.deleted && s1.asset.filename.is_none());
    assert_eq!(s1.asset.zone, "SharedSync-ABC");
    drop(c);

    // The copy taken before migrating is the v0 file, content for content.
    let backup = backups(&s);
    assert_eq!(backup.len(), 1);
    let conn = Connection::open(&backup[0]).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 0);
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM versions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 4);
    assert_ne!(file_bytes(&s.db()), original);

    // Migrated once: the next open has nothing to do.
    let again = Catalog::open(s.db()).unwrap();
    assert_eq!(again.libraries().unwrap().len(), 2);
    assert_eq!(backups(&s).len(), 1);
}

/// A v3 catalog (record-id uniqueness inline in `assets`) with a downloaded version, and an
/// asset key high-water mark above its assets (later ones were deleted).
fn build_v3(path: &std::path::Path) {
    let conn = Connection::open(path).unwrap();
    for sql in [V1_SCHEMA, V2_CHANGES, V3_CHANGES] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .unwrap();
    conn.pragma_update(None, "user_version", 3).unwrap();
    conn.execute_batch(
        "INSERT INTO libraries (database, zone) VALUES ('private', 'PrimarySync');
         INSERT INTO assets (asset_key, library_id, record_id, asset_record, filename, kind,
                             asset_date_ms, added_date_ms, favorite, hidden, deleted, subtype,
                             subtype_v2, live, content_hash)
             VALUES (7, 1, 'M1', 'A1', 'IMG_0001.HEIC', 'image', 1000, 2000, 1, 0, 0, 0, 0, 0, 5),
                    (9, 1, 'M2', 'A2', 'IMG_0002.HEIC', 'image', 3000, 4000, 0, 1, 0, 0, 0, 0, 6);
         UPDATE sqlite_sequence SET seq = 40 WHERE name = 'assets';
         INSERT INTO versions (asset_key, kind, size, file_type, checksum)
             VALUES (7, 'original', 111, 'public.heic', 'c1'),
                    (9, 'original', 222, 'public.heic', 'c2');
         INSERT INTO download_roots (path, created_ms) VALUES (x'2f70', 1);
         INSERT INTO downloads (root_id, version_key, state, rel_path, size, sha256, downloaded_ms)
             VALUES (1, 1, 'downloaded', '2024/IMG_0001.HEIC', 111, x'00', 5);",
    )
    .unwrap();
}

#[test]
fn a_v3_catalog_is_migrated_to_the_current_schema_and_keeps_everything() {
    let s = Scratch::new();
    build_v3(&s.db());
    // The copy an earlier migration left: one copy is kept, the newest.
    let name = s.db().file_name().unwrap().to_string_lossy().into_owned();
    let older = s.dir.path().join(format!("{name}.backup-v2-1000"));
    std::fs::write(&older, b"an older copy").unwrap();
    let unrelated = s.dir.path().join("notes.backup-v2-1000");
    std::fs::write(&unrelated, b"not ours").unwrap();
    let mut c = Catalog::open(s.db()).unwrap();
    let lib = c.library_id("private", "PrimarySync").unwrap().unwrap();
    let m1 = c.asset_by_id(lib, "M1").unwrap().unwrap();
    assert_eq!(m1.key.0, 7);
    assert!(m1.asset.favorite);
    assert_eq!(m1.asset.version(VersionKind::Original).unwrap().size, 111);
    assert!(c.asset_by_id(lib, "M2").unwrap().unwrap().asset.hidden);

    let conn = Connection::open(s.db()).unwrap();
    let one = |sql: &str| -> String { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        one("SELECT CAST(user_version AS TEXT) FROM pragma_user_version"),
        CURRENT_VERSION.to_string()
    );
    // v5: no sidecar is known to be written from the asset's current metadata.
    assert_eq!(one("SELECT quote(sidecar_of) FROM downloads"), "NULL");
    // v6: no GPS speed or time yet, no sync run.
    assert_eq!(
        one("SELECT quote(gps_speed) || quote(gps_time_ms) FROM assets WHERE record_id = 'M1'"),
        "NULLNULL"
    );
    assert_eq!(one("SELECT CAST(count(*) AS TEXT) FROM sync_runs"), "0");
    assert_eq!(
        one(
            "SELECT a.record_id FROM downloads JOIN versions USING (version_key)
             JOIN assets a USING (asset_key)"
        ),
        "M1",
        "download state still reaches its asset"
    );
    assert!(
        one("SELECT sql FROM sqlite_master WHERE name = 'assets_by_record'")
            .starts_with("CREATE UNIQUE INDEX")
    );
    let twice = conn.execute(
        "INSERT INTO assets (library_id, record_id, asset_record, kind, asset_date_ms,
                             added_date_ms, favorite, hidden, deleted, subtype, subtype_v2,
                             live, content_hash)
         VALUES (1, 'M1', 'A1', 'image', 0, 0, 0, 0, 0, 0, 0, 0, 1)",
        [],
    );
    assert!(twice.is_err(), "a record is still unique in its library");
    drop(conn);

    assert!(!older.exists(), "the earlier migration's copy is removed");
    assert!(
        unrelated.exists(),
        "only the catalog's own copies are touched"
    );
    let copies: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{name}.backup-v3-")))
        .collect();
    assert_eq!(copies.len(), 1, "this migration's copy stays");

    // Keys are never reused: the next asset comes after the old high-water mark.
    full_refresh(&mut c, lib, &[photo("NEW", 1)]);
    assert_eq!(c.asset_by_id(lib, "NEW").unwrap().unwrap().key.0, 41);
    c.check_integrity().unwrap();
}

#[test]
fn a_read_only_open_does_not_migrate() {
    let s = Scratch::new();
    build_v0(&s.db(), false);
    let before = file_bytes(&s.db());
    assert!(matches!(
        Catalog::open_read_only(s.db()),
        Err(CatalogError::NeedsMigration { found: 0, .. })
    ));
    assert_eq!(file_bytes(&s.db()), before);
}

#[test]
fn a_failed_migration_leaves_the_original_intact() {
    let s = Scratch::new();
    build_v0(&s.db(), true);
    let before = file_bytes(&s.db());

    let err = Catalog::open(s.db()).unwrap_err();
    match &err {
        CatalogError::MigrationFailed {
            from, to, reason, ..
        } => {
            assert_eq!((*from, *to), (0, CURRENT_VERSION));
            assert!(reason.contains("hologram"), "{reason}");
        }
        other => panic!("expected MigrationFailed, got {other:?}"),
    }
    assert_eq!(file_bytes(&s.db()), before, "the v0 file must be unchanged");
    let conn = Connection::open(s.db()).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["assets", "versions"]);
    drop(conn);

    // Still refused the same way, and the lock was released.
    assert!(matches!(
        Catalog::open(s.db()),
        Err(CatalogError::MigrationFailed { .. })
    ));
}

/// A v5 catalog: two libraries with zone tokens, one with a located asset; a downloaded file.
pub(crate) fn build_v5(path: &std::path::Path) {
    let conn = Connection::open(path).unwrap();
    for sql in [V1_SCHEMA, V2_CHANGES, V3_CHANGES, V4_ASSETS, V5_CHANGES] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .unwrap();
    conn.pragma_update(None, "user_version", 5).unwrap();
    conn.execute_batch(
        "INSERT INTO libraries (database, zone, zone_token)
             VALUES ('private', 'PrimarySync', 'tok-p'), ('shared', 'SharedSync-1', 'tok-s');
         INSERT INTO assets (asset_key, library_id, record_id, asset_record, filename, kind,
                             asset_date_ms, added_date_ms, favorite, hidden, deleted, subtype,
                             subtype_v2, latitude, longitude, altitude, live, content_hash)
             VALUES (3, 1, 'M1', 'A1', 'IMG_0001.HEIC', 'image', 1000, 2000, 0, 0, 0, 0, 0,
                     48.85, 2.35, 35.5, 0, 5),
                    (4, 2, 'S1', 'B1', 'IMG_0002.HEIC', 'image', 3000, 4000, 0, 0, 0, 0, 0,
                     NULL, NULL, NULL, 0, 6);
         INSERT INTO versions (asset_key, kind, size, file_type, checksum)
             VALUES (3, 'original', 111, 'public.heic', 'c1');
         INSERT INTO download_roots (path, created_ms) VALUES (x'2f70', 1);
         INSERT INTO downloads (root_id, version_key, state, rel_path, size, sha256,
                                downloaded_ms, sidecar_of)
             VALUES (1, 1, 'downloaded', '2024/IMG_0001.HEIC', 111, x'00', 5, 5);",
    )
    .unwrap();
}

#[test]
fn a_v5_catalog_is_migrated_in_place_to_v6() {
    let s = Scratch::new();
    build_v5(&s.db());
    let original = file_bytes(&s.db());
    let c = Catalog::open(s.db()).unwrap();
    let primary = c.library_id("private", "PrimarySync").unwrap().unwrap();
    let shared = c.library_id("shared", "SharedSync-1").unwrap().unwrap();
    let m1 = c.asset_by_id(primary, "M1").unwrap().unwrap();
    assert_eq!(m1.key.0, 3);
    let loc = m1.asset.location.unwrap();
    assert_eq!(
        (loc.latitude, loc.longitude, loc.altitude),
        (48.85, 2.35, Some(35.5))
    );
    assert_eq!((loc.speed, loc.gps_time_ms), (None, None));
    // The library with located assets is listed in full next time (which brings their speed
    // and time); the other one keeps following its change feed.
    assert_eq!(c.zone_token(primary).unwrap(), None);
    assert_eq!(c.zone_token(shared).unwrap().as_deref(), Some("tok-s"));
    // Download state and sidecar bookkeeping are kept; no sync has run yet.
    let status = c.status(None).unwrap();
    assert_eq!(status.downloaded, 1);
    assert!(status.last_syncs.is_empty());
    drop(c);

    let conn = Connection::open(s.db()).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, CURRENT_VERSION);
    let sidecar_of: i64 = conn
        .query_row("SELECT sidecar_of FROM downloads", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sidecar_of, 5);
    drop(conn);

    // The copy taken before is the v5 file as it was.
    let backup: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".backup-v5-"))
        .collect();
    assert_eq!(backup.len(), 1);
    let copy = Connection::open(&backup[0]).unwrap();
    let (version, token): (i64, String) = copy
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), zone_token
             FROM libraries WHERE zone = 'PrimarySync'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((version, token.as_str()), (5, "tok-p"));
    assert_ne!(file_bytes(&s.db()), original);
    Catalog::open(s.db()).unwrap().check_integrity().unwrap();
}

#[test]
fn a_failed_v6_migration_leaves_the_v5_catalog_intact() {
    let s = Scratch::new();
    build_v5(&s.db());
    // A table in the way of the one v6 creates (a hand-made addition).
    Connection::open(s.db())
        .unwrap()
        .execute_batch("CREATE TABLE sync_runs (note TEXT)")
        .unwrap();
    let before = file_bytes(&s.db());
    match Catalog::open(s.db()).unwrap_err() {
        CatalogError::MigrationFailed {
            from, to, reason, ..
        } => {
            assert_eq!((from, to), (5, CURRENT_VERSION));
            assert!(reason.contains("sync_runs"), "{reason}");
        }
        other => panic!("expected MigrationFailed, got {other:?}"),
    }
    assert_eq!(file_bytes(&s.db()), before, "the v5 file must be unchanged");
    let conn = Connection::open(s.db()).unwrap();
    let columns: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('assets') WHERE name LIKE 'gps_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(columns, 0, "no half-applied migration");
}

//! The bulk load of a full run into an empty library: same catalog as the upsert path, indexes
//! back after the run (completed, failed, or its writer killed), duplicates merged, whether
//! the record-id index stayed (`upsert_page`) or was dropped too (`upsert_page_batched`).

use crate::support;

use icloudpd_rs::catalog::{AssetFilter, Catalog, RunKind, RunStatus};
use icloudpd_rs::model::Asset;
use rusqlite::Connection;
use support::*;

const CHILD_ENV: &str = "CATALOG_BULK_CRASH_CHILD_DB";
const UNCHECKED_CHILD_ENV: &str = "CATALOG_UNCHECKED_CRASH_CHILD_DB";
const DEFERRED: [&str; 2] = ["assets_in_order", "assets_by_asset_record"];

/// The deferred indexes present in the file, read through a plain SQLite connection.
fn present_indexes(db: &std::path::Path) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name IN (?1, ?2)")
        .unwrap();
    let mut names: Vec<String> = stmt
        .query_map(DEFERRED, |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names.sort();
    names
}

/// One value read through a plain SQLite connection.
fn sql_value<T: rusqlite::types::FromSql>(db: &std::path::Path, sql: &str) -> T {
    Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// True when the index that makes a record unique in its library is in the file.
fn has_record_index(db: &std::path::Path) -> bool {
    sql_value(
        db,
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'assets_by_record')",
    )
}

/// Asset rows beyond one per record.
fn extra_rows(db: &std::path::Path) -> i64 {
    sql_value(
        db,
        "SELECT count(*) - count(DISTINCT record_id) FROM assets",
    )
}

fn all_deferred() -> Vec<String> {
    let mut v: Vec<String> = DEFERRED.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Every field the catalog stores about the library's assets in iCloud, comparable across
/// catalogs (row keys aside).
fn snapshot(c: &Catalog, lib: icloudpd_rs::catalog::LibraryId) -> Vec<Asset> {
    let mut out: Vec<_> = c
        .assets(lib, AssetFilter::InICloud)
        .map(|a| a.unwrap().asset)
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

fn library(n: usize) -> Vec<Asset> {
    (0..n)
        .map(|i| {
            if i % 7 == 0 {
                everything(&format!("E{i}"))
            } else {
                photo(&format!("P{i}"), i as i64)
            }
        })
        .collect()
}

#[test]
fn a_bulk_load_stores_what_upserts_store_and_rebuilds_the_indexes() {
    let assets = library(450);
    // Bulk: a first full run into an empty library.
    let bulk = Scratch::new();
    let (mut b, blib) = writer(&bulk.db());
    let run = b
        .begin_run(blib, RunKind::Full, Some(assets.len() as u64))
        .unwrap();
    assert!(
        present_indexes(&bulk.db()).is_empty(),
        "indexes are deferred while loading"
    );
    assert!(has_record_index(&bulk.db()), "kept for lookups by id");
    // A record listed twice (moved between indexes while listing): stored once, the later copy wins.
    let mut moved = assets[3].clone();
    moved.hidden = true;
    for page in assets.chunks(100) {
        b.upsert_page(run, page, &[]).unwrap();
    }
    let counts = b.upsert_page(run, [&moved], &[]).unwrap();
    assert_eq!((counts.added, counts.changed), (0, 1));
    let record = b.finish_full_enumeration(run, Some("t")).unwrap();
    assert_eq!(record.counts.seen, assets.len() as u64 + 1);
    assert_eq!(record.counts.added, assets.len() as u64);
    assert_eq!(present_indexes(&bulk.db()), all_deferred());

    // Upserts: the same listing into a library that already has an asset, which is then gone.
    let upsert = Scratch::new();
    let (mut u, ulib) = writer(&upsert.db());
    full_refresh(&mut u, ulib, &[photo("OLD", 1)]);
    let run = u.begin_run(ulib, RunKind::Full, None).unwrap();
    assert_eq!(present_indexes(&upsert.db()), all_deferred());
    for page in assets.chunks(100) {
        u.upsert_page(run, page, &[]).unwrap();
    }
    u.upsert_page(run, [&moved], &[]).unwrap();
    u.finish_full_enumeration(run, Some("t")).unwrap();

    let got = snapshot(&b, blib);
    assert_eq!(got.len(), assets.len());
    assert_eq!(got, snapshot(&u, ulib), "OLD is gone, the rest equal");
    assert!(got.iter().any(|a| a.id == moved.id && a.hidden));

    // A later full run of the same library is not a bulk load: nothing is dropped.
    let again = b.begin_run(blib, RunKind::Full, None).unwrap();
    assert_eq!(present_indexes(&bulk.db()), all_deferred());
    b.finish_run(again, RunStatus::Failed, Some("test"))
        .unwrap();
}

#[test]
fn a_failed_bulk_load_puts_the_indexes_back() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    c.upsert_page(run, &library(120), &[]).unwrap();
    assert!(present_indexes(&s.db()).is_empty());
    c.finish_run(run, RunStatus::Failed, Some("network down"))
        .unwrap();
    assert_eq!(present_indexes(&s.db()), all_deferred());
    // Nothing was marked gone, and the next full run (not a bulk load any more) completes it.
    assert_eq!(c.count_assets(lib, AssetFilter::InICloud).unwrap(), 120);
    full_refresh(&mut c, lib, &library(200));
    assert_eq!(c.count_assets(lib, AssetFilter::InICloud).unwrap(), 200);
}

#[test]
#[ignore = "run by a_writer_killed_mid_load_leaves_a_catalog_the_next_open_repairs as a child"]
fn bulk_child_writer() {
    let Some((mut c, lib)) = child_catalog(CHILD_ENV) else {
        return;
    };
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    c.upsert_page(run, &library(300), &[]).unwrap();
    write_until_killed(&mut c, run, 1_000_000);
}

#[test]
fn a_writer_killed_mid_load_leaves_a_catalog_the_next_open_repairs() {
    let s = Scratch::new();
    let (mut child, run) = spawn_child_writer("bulk::bulk_child_writer", CHILD_ENV, &s.db());
    // Readers work while the load runs without its deferred indexes.
    let reader = Catalog::open_read_only(s.db()).unwrap();
    let lib = reader
        .library_id("private", "PrimarySync")
        .unwrap()
        .unwrap();
    assert!(reader.count_assets(lib, AssetFilter::InICloud).unwrap() >= 300);
    assert!(present_indexes(&s.db()).is_empty());
    child.kill().unwrap(); // SIGKILL mid-load
    child.wait().unwrap();
    drop(reader);

    let mut c = Catalog::open(s.db()).expect("open after the kill");
    assert_eq!(present_indexes(&s.db()), all_deferred(), "indexes rebuilt");
    c.check_integrity().unwrap();
    assert_eq!(c.interrupted_at_open(), &[run]);
    assert_eq!(c.run(run).unwrap().status, RunStatus::Interrupted);
    // Committed pages are whole.
    for a in c.assets(lib, AssetFilter::InICloud) {
        let a = a.unwrap();
        if a.asset.id.starts_with('N') {
            assert_eq!(a.asset.versions.len(), 3, "{}", a.asset.id);
        }
    }
    // The next full refresh ends exact: exactly the listed assets in iCloud.
    let listing = library(300);
    full_refresh(&mut c, lib, &listing);
    let mut in_icloud: Vec<String> = c
        .assets(lib, AssetFilter::InICloud)
        .map(|a| a.unwrap().asset.id)
        .collect();
    in_icloud.sort();
    let mut want: Vec<String> = listing.iter().map(|a| a.id.clone()).collect();
    want.sort();
    assert_eq!(in_icloud, want);
}

#[test]
fn batched_pages_load_without_the_record_id_index_and_merge_a_record_listed_twice() {
    let assets = library(450);
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    let mut moved = assets[3].clone();
    moved.hidden = true;
    let unchanged = assets[5].clone();
    for page in assets.chunks(100) {
        c.upsert_page_batched(run, page, &[]).unwrap();
    }
    c.upsert_page_batched(run, [&moved, &unchanged], &[])
        .unwrap();
    c.commit_batched().unwrap();
    assert!(!has_record_index(&s.db()), "built once, at the end");
    assert_eq!(extra_rows(&s.db()), 2);

    let record = c.finish_full_enumeration(run, Some("t")).unwrap();
    assert!(has_record_index(&s.db()));
    assert_eq!(present_indexes(&s.db()), all_deferred());
    assert_eq!(extra_rows(&s.db()), 0);
    let c_ = &record.counts;
    assert_eq!(
        (c_.seen, c_.added, c_.changed),
        (452, 450, 1),
        "as upserts count"
    );
    c.check_integrity().unwrap();

    // The same listing through upserts, into a library that is not empty.
    let upsert = Scratch::new();
    let (mut u, ulib) = writer(&upsert.db());
    full_refresh(&mut u, ulib, &[photo("OLD", 1)]);
    let run = u.begin_run(ulib, RunKind::Full, None).unwrap();
    for page in assets.chunks(100) {
        u.upsert_page(run, page, &[]).unwrap();
    }
    u.upsert_page(run, [&moved, &unchanged], &[]).unwrap();
    u.finish_full_enumeration(run, Some("t")).unwrap();
    let got = snapshot(&c, lib);
    assert_eq!(got, snapshot(&u, ulib));
    assert!(
        got.iter().any(|a| a.id == moved.id && a.hidden),
        "the later copy wins"
    );
}

#[test]
#[ignore = "run by a_writer_killed_mid_batched_load_leaves_copies_the_next_open_merges as a child"]
fn unchecked_child_writer() {
    let Some((mut c, lib)) = child_catalog(UNCHECKED_CHILD_ENV) else {
        return;
    };
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    let assets = library(300);
    c.upsert_page_batched(run, &assets, &[]).unwrap();
    let mut moved = assets[3].clone();
    moved.hidden = true;
    c.upsert_page_batched(run, [&moved], &[]).unwrap();
    c.commit_batched().unwrap();
    write_until_killed(&mut c, run, 1_000_000);
}

#[test]
fn a_writer_killed_mid_batched_load_leaves_copies_the_next_open_merges() {
    let s = Scratch::new();
    let (mut child, _run) =
        spawn_child_writer("bulk::unchecked_child_writer", UNCHECKED_CHILD_ENV, &s.db());
    std::thread::sleep(std::time::Duration::from_millis(100));
    child.kill().unwrap(); // SIGKILL mid-load
    child.wait().unwrap();
    assert!(!has_record_index(&s.db()));
    assert_eq!(extra_rows(&s.db()), 1, "the record listed twice");

    let c = Catalog::open(s.db()).expect("open after the kill");
    assert!(has_record_index(&s.db()), "index rebuilt");
    assert_eq!(present_indexes(&s.db()), all_deferred());
    assert_eq!(extra_rows(&s.db()), 0);
    c.check_integrity().unwrap();
    let lib = c.library_id("private", "PrimarySync").unwrap().unwrap();
    let kept = c.asset_by_id(lib, &library(300)[3].id).unwrap().unwrap();
    assert!(kept.asset.hidden, "the later copy wins");
    assert_eq!(kept.asset.versions.len(), library(300)[3].versions.len());
}

//! Pages stored with `upsert_page_batched`: one open transaction, committed by the next other
//! write or when the handle is dropped, and given up whole when a page fails.

use crate::support;

use icloudpd_rs::catalog::{AssetFilter, Catalog, LibraryId, RunId, RunKind};
use support::*;

fn photos(prefix: &str, n: usize) -> Vec<icloudpd_rs::model::Asset> {
    (0..n)
        .map(|i| photo(&format!("{prefix}{i}"), i as i64))
        .collect()
}

fn visible_to_a_reader(s: &Scratch) -> u64 {
    let reader = Catalog::open_read_only(s.db()).unwrap();
    let lib = reader
        .library_id("private", "PrimarySync")
        .unwrap()
        .unwrap();
    reader.count_assets(lib, AssetFilter::InICloud).unwrap()
}

#[test]
fn batched_pages_are_committed_by_the_next_write_and_equal_plain_pages() {
    let assets = photos("P", 300);
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    for page in assets.chunks(100) {
        let counts = c.upsert_page_batched(run, page, &[]).unwrap();
        assert_eq!(counts.added, 100);
    }
    // The writer sees its own pages; another connection sees them only once committed.
    assert_eq!(c.count_assets(lib, AssetFilter::InICloud).unwrap(), 300);
    assert_eq!(visible_to_a_reader(&s), 0, "not committed yet");
    let record = c.finish_full_enumeration(run, Some("token")).unwrap();
    assert_eq!((record.counts.seen, record.counts.added), (300, 300));
    assert_eq!(visible_to_a_reader(&s), 300);

    let plain = Scratch::new();
    let (mut p, plib) = writer(&plain.db());
    full_refresh(&mut p, plib, &assets);
    let all = |c: &Catalog, lib| {
        let mut v: Vec<_> = c
            .assets(lib, AssetFilter::InICloud)
            .map(|a| a.unwrap().asset)
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    };
    assert_eq!(all(&c, lib), all(&p, plib));
}

/// A writer with a full run under way and 50 assets stored batched, not yet committed.
fn fifty_pending() -> (Scratch, Catalog, LibraryId, RunId) {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    c.upsert_page_batched(run, &photos("P", 50), &[]).unwrap();
    assert_eq!(visible_to_a_reader(&s), 0);
    (s, c, lib, run)
}

#[test]
fn dropping_the_writer_commits_the_pages_stored() {
    let (s, c, _, _) = fifty_pending();
    drop(c);
    assert_eq!(visible_to_a_reader(&s), 50);
}

#[test]
fn a_failed_page_gives_up_the_whole_open_transaction() {
    let (s, mut c, lib, run) = fifty_pending();
    let err = c
        .upsert_page_batched(RunId(run.0 + 1000), &photos("Q", 10), &[])
        .unwrap_err();
    assert!(err.to_string().contains("run"), "{err}");
    // Nothing of the batch is left, committed or not, and the handle still works.
    assert_eq!(c.count_assets(lib, AssetFilter::InICloud).unwrap(), 0);
    c.upsert_page(run, &photos("R", 20), &[]).unwrap();
    assert_eq!(visible_to_a_reader(&s), 20);
}

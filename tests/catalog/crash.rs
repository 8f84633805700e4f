//! A writer process killed with SIGKILL in the middle of a full run: the lock names it while it
//! lives and dies with it, the catalog stays sound, nothing is marked gone, and the run is
//! reported interrupted.
//!
//! The child is this same test binary running the ignored `child_writer` test, selected by the
//! `CATALOG_CRASH_CHILD_DB` environment variable.

use crate::support;

use icloudpd_rs::catalog::{AssetFilter, Catalog, CatalogError, RunKind, RunStatus};
use support::*;

const CHILD_ENV: &str = "CATALOG_CRASH_CHILD_DB";
const KNOWN: usize = 500;

#[test]
#[ignore = "run by killed_writer_leaves_a_sound_catalog as a child process"]
fn child_writer() {
    let Some((mut c, lib)) = child_catalog(CHILD_ENV) else {
        return;
    };
    let known: Vec<_> = (0..KNOWN)
        .map(|i| photo(&format!("M{i}"), i as i64))
        .collect();
    full_refresh(&mut c, lib, &known);
    // A second full run that will never finish: it re-lists only the first 100 assets, then
    // keeps writing new ones until it is killed.
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    c.upsert_page(run, &known[..100], &[]).unwrap();
    write_until_killed(&mut c, run, KNOWN as i64);
}

#[test]
fn killed_writer_leaves_a_sound_catalog() {
    let s = Scratch::new();
    let (mut child, run) = spawn_child_writer("crash::child_writer", CHILD_ENV, &s.db());

    // While the child writes: a second writer is refused with the child's pid; a reader works.
    match Catalog::open(s.db()) {
        Err(e @ CatalogError::Locked { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains(&format!("pid {}", child.id())),
                "{message}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let reader = Catalog::open_read_only(s.db()).unwrap();
    let lib = reader
        .library_id("private", "PrimarySync")
        .unwrap()
        .unwrap();
    assert!(reader.count_assets(lib, AssetFilter::InICloud).unwrap() >= KNOWN as u64);
    assert_eq!(reader.run(run).unwrap().status, RunStatus::Running);
    assert!(reader.interrupted_runs().unwrap().is_empty());

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // The reader now sees the run as interrupted (its writer is gone).
    assert_eq!(reader.interrupted_runs().unwrap()[0].id, run);
    drop(reader);

    let c = Catalog::open(s.db()).expect("the lock died with the child");
    c.check_integrity().unwrap();
    assert_eq!(c.interrupted_at_open(), &[run]);
    assert_eq!(c.run(run).unwrap().status, RunStatus::Interrupted);
    // None of the 400 known assets the killed run did not re-list was marked gone.
    for i in 0..KNOWN {
        let a = c.asset_by_id(lib, &format!("M{i}")).unwrap().unwrap();
        assert_eq!(a.gone_ms, None, "M{i} was marked gone by a killed run");
    }
    // Whatever pages committed before the kill are whole: every stored asset has 3 versions.
    let mut listed = 0;
    for a in c.assets(lib, AssetFilter::InICloud) {
        assert_eq!(a.unwrap().asset.versions.len(), 3);
        listed += 1;
    }
    assert!(listed >= KNOWN);
    let counted = c.run(run).unwrap().counts.seen as usize;
    assert_eq!(
        counted,
        listed - KNOWN + 100,
        "run counts match committed pages"
    );
}

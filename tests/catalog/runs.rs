//! Refresh runs: full enumerations marking unseen assets gone only once complete, interrupted
//! runs, sync tokens, and incremental change batches.

use crate::support;

use icloudpd_rs::catalog::{
    AssetFilter, Catalog, CatalogError, ChangeBatch, FlagChange, RunKind, RunStatus,
};
use icloudpd_rs::model::Library;
use support::*;

fn ids(c: &Catalog, lib: icloudpd_rs::catalog::LibraryId, filter: AssetFilter) -> Vec<String> {
    c.assets(lib, filter)
        .map(|a| a.map(|a| a.asset.id))
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_completed_full_run_marks_unseen_assets_gone() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let all: Vec<_> = (0..5).map(|i| photo(&format!("M{i}"), i)).collect();
    full_refresh(&mut c, lib, &all);
    let m3_key = c.asset_by_id(lib, "M3").unwrap().unwrap().key;

    // M1 and M3 left iCloud; M4 is hidden now (seen through the Hidden index).
    let mut m4 = all[4].clone();
    m4.hidden = true;
    let run = c.begin_run(lib, RunKind::Full, Some(3)).unwrap();
    c.upsert_page(run, &[all[0].clone(), all[2].clone()], &[])
        .unwrap();
    c.upsert_page(run, &[m4], &[]).unwrap();
    assert_eq!(
        ids(&c, lib, AssetFilter::InICloud).len(),
        5,
        "nothing is gone before the run completes"
    );
    let record = c.finish_full_enumeration(run, Some("tok-2")).unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.counts.removed, 2);
    assert_eq!(record.counts.changed, 1);

    assert_eq!(ids(&c, lib, AssetFilter::AllPhotos), ["M0", "M2"]);
    assert_eq!(ids(&c, lib, AssetFilter::InICloud), ["M0", "M2", "M4"]);
    let m3 = c.asset(m3_key).unwrap().unwrap();
    assert!(m3.gone_ms.is_some(), "gone assets keep their row and key");
    assert_eq!(c.zone_token(lib).unwrap().as_deref(), Some("tok-2"));
    let libr = c.library(lib).unwrap();
    assert!(libr.last_full_refresh_ms.is_some());
    assert_eq!(libr.last_refresh_ms, libr.last_full_refresh_ms);

    // M3 comes back: same key, counted as added.
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    let counts = c.upsert_page(run, &[all[3].clone()], &[]).unwrap();
    assert_eq!(counts.added, 1);
    let back = c.asset_by_id(lib, "M3").unwrap().unwrap();
    assert_eq!((back.key, back.gone_ms), (m3_key, None));
}

#[test]
fn an_interrupted_full_run_marks_nothing_and_is_reported() {
    let s = Scratch::new();
    let lib;
    let run;
    {
        let (mut c, l) = writer(&s.db());
        lib = l;
        full_refresh(&mut c, lib, &[photo("A", 1), photo("B", 2), photo("C", 3)]);
        run = c.begin_run(lib, RunKind::Full, Some(3)).unwrap();
        c.upsert_page(run, &[photo("A", 1)], &[]).unwrap();
        // Killed here: the handle is dropped without finishing.
    }

    // A reader, before any writer reopens, sees the dead writer's run as interrupted.
    let reader = Catalog::open_read_only(s.db()).unwrap();
    let interrupted = reader.interrupted_runs().unwrap();
    assert_eq!(interrupted.len(), 1);
    assert_eq!(
        (interrupted[0].id, interrupted[0].status),
        (run, RunStatus::Interrupted)
    );
    drop(reader);

    let mut c = Catalog::open(s.db()).unwrap();
    assert_eq!(c.interrupted_at_open(), &[run]);
    let record = c.run(run).unwrap();
    assert_eq!(record.status, RunStatus::Interrupted);
    assert!(record.finished_ms.is_some());
    assert_eq!(ids(&c, lib, AssetFilter::AllPhotos), ["A", "B", "C"]);
    assert_eq!(
        c.zone_token(lib).unwrap().as_deref(),
        Some("token-after-full"),
        "the token of the killed run was never stored"
    );
    assert!(matches!(
        c.finish_full_enumeration(run, Some("late")),
        Err(CatalogError::RunNotRunning { .. })
    ));

    let status = c.status(None).unwrap();
    assert_eq!(status.interrupted_runs.len(), 1);
    assert_eq!(status.last_run.as_ref().map(|r| r.id), Some(run));

    // A later completed run of the library settles it.
    full_refresh(&mut c, lib, &[photo("A", 1), photo("B", 2), photo("C", 3)]);
    assert!(c.interrupted_runs().unwrap().is_empty());
}

#[test]
fn a_reader_sees_a_live_writers_run_as_running() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    let reader = Catalog::open_read_only(s.db()).unwrap();
    assert!(reader.interrupted_runs().unwrap().is_empty());
    assert_eq!(reader.run(run).unwrap().status, RunStatus::Running);
    drop(c);
    assert_eq!(reader.interrupted_runs().unwrap()[0].id, run);
}

#[test]
fn failed_runs_store_their_error_and_mark_nothing() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    full_refresh(&mut c, lib, &[photo("A", 1), photo("B", 2)]);
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    c.upsert_page(run, &[photo("A", 1)], &[]).unwrap();
    let record = c
        .finish_run(run, RunStatus::Failed, Some("HTTP 503 after 8 retries"))
        .unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.error.as_deref(), Some("HTTP 503 after 8 retries"));
    assert_eq!(ids(&c, lib, AssetFilter::AllPhotos), ["A", "B"]);

    // A full run cannot be completed without its enumeration finishing.
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    assert!(matches!(
        c.begin_run(lib, RunKind::Incremental, None),
        Err(CatalogError::RunInProgress { .. })
    ));
    assert!(matches!(
        c.finish_run(run, RunStatus::Completed, None),
        Err(CatalogError::WrongRunKind { .. })
    ));
}

#[test]
fn tokens_are_kept_per_zone_and_per_database() {
    let s = Scratch::new();
    let (mut c, primary) = writer(&s.db());
    let shared = c
        .upsert_library(&Library {
            database: "shared".into(),
            zone: "SharedSync-982E4DAF".into(),
            owner: None,
        })
        .unwrap();
    assert_eq!(
        c.upsert_library(&Library::primary()).unwrap(),
        primary,
        "upsert returns the same id"
    );
    assert_eq!(c.zone_token(primary).unwrap(), None);
    c.set_zone_token(primary, Some("AQAAAAAAAwmVf")).unwrap();
    c.set_zone_token(shared, Some("shared-token")).unwrap();
    c.set_database_token("private", Some("db-private")).unwrap();
    c.set_database_token("shared", Some("db-shared")).unwrap();
    c.set_database_token("private", Some("db-private-2"))
        .unwrap();
    drop(c);

    let mut c = Catalog::open(s.db()).unwrap();
    assert_eq!(
        c.zone_token(primary).unwrap().as_deref(),
        Some("AQAAAAAAAwmVf")
    );
    assert_eq!(
        c.zone_token(shared).unwrap().as_deref(),
        Some("shared-token")
    );
    assert_eq!(
        c.database_token("private").unwrap().as_deref(),
        Some("db-private-2")
    );
    assert_eq!(
        c.database_token("shared").unwrap().as_deref(),
        Some("db-shared")
    );
    c.set_zone_token(primary, None).unwrap();
    c.set_database_token("shared", None).unwrap();
    assert_eq!(c.zone_token(primary).unwrap(), None);
    assert_eq!(c.database_token("shared").unwrap(), None);
    assert!(matches!(
        c.set_zone_token(icloudpd_rs::catalog::LibraryId(77), Some("x")),
        Err(CatalogError::UnknownLibrary(_))
    ));
    let libs = c.libraries().unwrap();
    assert_eq!(libs.len(), 2);
    assert_eq!(libs[1].library.zone, "SharedSync-982E4DAF");
}

#[test]
fn incremental_batches_apply_changes_with_their_token() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    full_refresh(
        &mut c,
        lib,
        &[photo("A", 1), photo("B", 2), photo("C", 3), photo("D", 4)],
    );
    c.replace_albums(
        lib,
        &[
            album("ALB1", "Trips", None, false, 1),
            album("ALB2", "Old", None, false, 2),
        ],
    )
    .unwrap();
    c.set_album_members(lib, "ALB1", &["A", "B"]).unwrap();

    let run = c.begin_run(lib, RunKind::Incremental, None).unwrap();
    let mut b_edited = photo("B", 2);
    b_edited.caption = Some("new caption".into());
    let batch = ChangeBatch {
        assets: vec![photo("E", 5), b_edited],
        flags: vec![
            FlagChange {
                record: "ASSET-C".into(), // by CPLAsset record name
                hidden: Some(true),
                ..FlagChange::default()
            },
            FlagChange {
                record: "NOT-STORED".into(),
                favorite: Some(true),
                ..FlagChange::default()
            },
        ],
        deleted_records: vec![
            "D".into(),                   // a master: hard delete
            "ASSET-A-IN-ALB1".into(),     // a membership, by CPLAsset name
            "ALB2".into(),                // an album
            "PrimarySync-0000-LI".into(), // library info: not stored
        ],
        albums: vec![album("ALB3", "New album", None, false, 3)],
        members_added: vec![("ALB3".into(), "ASSET-E".into())],
        members_removed: vec![],
        skipped: vec![],
        zone_token: Some("tok-inc-1".into()),
    };
    let counts = c.apply_changes(run, &batch).unwrap();
    assert_eq!(counts.added, 1);
    assert_eq!(counts.changed, 1);
    assert_eq!(counts.flagged, 1);
    assert_eq!(counts.removed, 1);
    assert_eq!(counts.members_removed, 1);
    assert_eq!(counts.albums_removed, 1);
    assert_eq!(counts.albums_changed, 1);
    assert_eq!(counts.members_added, 1);
    assert_eq!(counts.unmatched, 2);
    assert_eq!(c.zone_token(lib).unwrap().as_deref(), Some("tok-inc-1"));

    assert_eq!(ids(&c, lib, AssetFilter::AllPhotos), ["A", "B", "E"]);
    assert_eq!(
        ids(
            &c,
            lib,
            AssetFilter::Smart(icloudpd_rs::catalog::SmartFolder::Hidden)
        ),
        ["C"]
    );
    let b = c.asset_by_id(lib, "B").unwrap().unwrap();
    assert_eq!(b.asset.caption.as_deref(), Some("new caption"));
    let albums = c.albums(lib).unwrap();
    let names: Vec<_> = albums.iter().map(|a| a.album.name.as_str()).collect();
    assert_eq!(names, ["Trips", "New album"]);
    assert_eq!(c.album_member_ids(lib, "ALB1").unwrap(), ["B"]);
    let new_album = albums.iter().find(|a| a.album.id == "ALB3").unwrap();
    assert_eq!(ids(&c, lib, AssetFilter::Album(new_album.key)), ["E"]);

    // Un-hide C and delete it softly in a second page; the token moves with it.
    let counts = c
        .apply_changes(
            run,
            &ChangeBatch {
                flags: vec![FlagChange {
                    record: "C".into(),
                    hidden: Some(false),
                    deleted: Some(true),
                    favorite: None,
                }],
                zone_token: Some("tok-inc-2".into()),
                ..ChangeBatch::default()
            },
        )
        .unwrap();
    assert_eq!(counts.flagged, 1);
    assert_eq!(
        ids(
            &c,
            lib,
            AssetFilter::Smart(icloudpd_rs::catalog::SmartFolder::RecentlyDeleted)
        ),
        ["C"]
    );
    let record = c.finish_run(run, RunStatus::Completed, None).unwrap();
    assert_eq!(record.counts.removed, 1);
    assert_eq!(record.counts.added, 1);
    assert_eq!(c.zone_token(lib).unwrap().as_deref(), Some("tok-inc-2"));
    assert!(c.library(lib).unwrap().last_refresh_ms.is_some());

    // A failing batch stores neither its changes nor its token.
    let run = c.begin_run(lib, RunKind::Incremental, None).unwrap();
    let mut foreign = photo("F", 6);
    foreign.zone = "Elsewhere".into();
    let err = c.apply_changes(
        run,
        &ChangeBatch {
            assets: vec![photo("G", 7), foreign],
            zone_token: Some("tok-bad".into()),
            ..ChangeBatch::default()
        },
    );
    assert!(matches!(err, Err(CatalogError::ZoneMismatch { .. })));
    assert_eq!(c.zone_token(lib).unwrap().as_deref(), Some("tok-inc-2"));
    assert!(c.asset_by_id(lib, "G").unwrap().is_none());
}

#[test]
fn change_batches_need_an_incremental_run() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    assert!(matches!(
        c.apply_changes(run, &ChangeBatch::default()),
        Err(CatalogError::WrongRunKind { .. })
    ));
}

/// Sync runs (schema v6): begun `running`, ended with their outcome and counts; the last run
/// into each folder is what `status` shows. A run whose process died without ending it reads
/// as interrupted, with the downloads recorded since it started.
#[test]
fn sync_runs_record_how_the_last_run_into_each_folder_ended() {
    use icloudpd_rs::catalog::{SyncOutcome, SyncRunEnd};
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    full_refresh(&mut c, lib, &[photo("M1", 1), photo("M2", 2)]);
    let photos = c.register_root(&s.path("photos")).unwrap();
    let backup = c.register_root(&s.path("backup")).unwrap();
    let never = c.register_root(&s.path("never")).unwrap();
    let reader = Catalog::open_read_only(s.db()).unwrap();
    assert!(reader.last_sync_runs(None).unwrap().is_empty());

    // A run going on: running while its process holds the catalog.
    c.begin_sync_run(photos, "download").unwrap();
    let runs = reader.last_sync_runs(None).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].outcome, runs[0].ended, runs[0].root.clone()),
        (SyncOutcome::Running, None, s.path("photos"))
    );
    let stopped = SyncRunEnd {
        outcome: SyncOutcome::Interrupted,
        downloaded: 182,
        skipped: 3,
        failed: 1,
        error: None,
    };
    assert!(c.end_sync_run(photos, &stopped).unwrap());
    c.begin_sync_run(backup, "retry_failed").unwrap();
    let complete = SyncRunEnd {
        outcome: SyncOutcome::Complete,
        downloaded: 2,
        skipped: 0,
        failed: 0,
        error: None,
    };
    assert!(c.end_sync_run(backup, &complete).unwrap());
    // Nothing begun into that folder: nothing to end.
    assert!(!c.end_sync_run(never, &complete).unwrap());

    let runs = reader.last_sync_runs(None).unwrap();
    let by_root: Vec<_> = runs
        .iter()
        .map(|r| (r.root.clone(), r.mode.as_str(), r.outcome))
        .collect();
    assert_eq!(
        by_root,
        [
            (s.path("backup"), "retry_failed", SyncOutcome::Complete),
            (s.path("photos"), "download", SyncOutcome::Interrupted),
        ],
        "one per folder, by path"
    );
    let p = &runs[1];
    assert_eq!((p.downloaded, p.skipped, p.failed), (182, 3, 1));
    assert!(p.ended.unwrap() >= p.started);
    let json = serde_json::to_value(reader.status(Some(photos)).unwrap()).unwrap();
    let last = json["last_syncs"].as_array().unwrap();
    assert_eq!(last.len(), 1, "only the folder asked about: {json}");
    assert_eq!(last[0]["outcome"], "interrupted");
    assert_eq!(last[0]["downloaded"], 182);
    assert!(last[0]["started"].as_str().unwrap().ends_with('Z'));

    // The next run into that folder, killed before its end (the handle dropped unended):
    // interrupted, as far as the download state tells, once no process holds the catalog.
    c.begin_sync_run(photos, "download").unwrap();
    let m1 = c.asset_by_id(lib, "M1").unwrap().unwrap();
    c.mark_downloaded(m1.version_keys[0], photos, "a/M1.JPG", 1, &[0; 32])
        .unwrap();
    drop(c);
    let runs = reader.last_sync_runs(Some(photos)).unwrap();
    assert_eq!(
        (runs[0].outcome, runs[0].ended, runs[0].downloaded),
        (SyncOutcome::Interrupted, None, 1)
    );
    // The next writer marks it so for good; a new run begins afresh.
    let (mut c, _) = writer(&s.db());
    let stored: String = rusqlite::Connection::open(s.db())
        .unwrap()
        .query_row(
            "SELECT group_concat(outcome, ',') FROM
                 (SELECT outcome FROM sync_runs WHERE root_id = ?1 ORDER BY sync_run_id)",
            [photos.0],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, "interrupted,interrupted");
    c.begin_sync_run(photos, "download").unwrap();
    assert_eq!(
        reader.last_sync_runs(Some(photos)).unwrap()[0].outcome,
        SyncOutcome::Running
    );
}

/// A watch records a run every few minutes: the table keeps the latest runs of each folder.
#[test]
fn only_the_latest_sync_runs_are_kept() {
    let s = Scratch::new();
    let (mut c, _lib) = writer(&s.db());
    let photos = c.register_root(&s.path("photos")).unwrap();
    let other = c.register_root(&s.path("other")).unwrap();
    c.begin_sync_run(other, "download").unwrap();
    for _ in 0..130 {
        c.begin_sync_run(photos, "download").unwrap();
    }
    drop(c);
    let db = rusqlite::Connection::open(s.db()).unwrap();
    let count = |root: icloudpd_rs::catalog::RootId| -> i64 {
        db.query_row(
            "SELECT count(*) FROM sync_runs WHERE root_id = ?1",
            [root],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(count(photos), 100);
    assert_eq!(count(other), 1, "another folder's runs are its own");
}

//! Storing assets: field round trips, idempotent upserts, edits resetting download state,
//! version removal, skipped records, and the guards around runs and zones.

use crate::support;

use icloudpd_rs::catalog::{
    AssetFilter, CatalogError, DownloadState, PageCounts, RunKind, RunStatus,
};
use icloudpd_rs::model::{ItemKind, Skipped, VersionKind};
use support::*;

#[test]
fn every_asset_field_round_trips() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let rich = everything("AY6c+BsE0jjaXx9tmVGJM1D2VcEO");
    let mut sparse = photo("sparse", 7);
    sparse.asset_change_tag = None;
    sparse.filename = None;
    sparse.item_type = None;
    sparse.kind = ItemKind::Unknown;
    sparse.location = None;
    sparse.versions.clear();
    let mut no_altitude = photo("no-alt", 8);
    no_altitude.kind = ItemKind::Movie;
    no_altitude.location = Some(icloudpd_rs::model::Location {
        latitude: 0.0,
        longitude: 0.0,
        altitude: None,
        speed: None,
        gps_time_ms: None,
    });

    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    c.upsert_page(
        run,
        &[rich.clone(), sparse.clone(), no_altitude.clone()],
        &[],
    )
    .unwrap();

    for original in [&rich, &sparse, &no_altitude] {
        let stored = c.asset_by_id(lib, &original.id).unwrap().unwrap();
        assert_eq!(&stored.asset, original, "asset {} differs", original.id);
        assert_eq!(stored.version_keys.len(), original.versions.len());
        assert_eq!(stored.first_seen_run, Some(run));
        assert_eq!(stored.last_seen_run, Some(run));
        assert_eq!(stored.gone_ms, None);
        assert_eq!(c.asset(stored.key).unwrap().unwrap(), stored);
        for v in &original.versions {
            let key = stored.version_key(v.kind).unwrap();
            let sv = c.version(key).unwrap().unwrap();
            assert_eq!((&sv.version, sv.asset), (v, stored.key));
        }
    }
    // Versions come back ordered by kind whatever order they were given in.
    let mut shuffled = everything("shuffled");
    shuffled.versions.reverse();
    c.upsert_page(run, std::slice::from_ref(&shuffled), &[])
        .unwrap();
    let back = c.asset_by_id(lib, "shuffled").unwrap().unwrap();
    let kinds: Vec<VersionKind> = back.asset.versions.iter().map(|v| v.kind).collect();
    assert_eq!(kinds, VersionKind::ALL);
}

/// Schema v6: the GPS fix's speed and time are stored, read back, and part of the content
/// hash, so a fix that changes only in them is a change (its sidecar is written again).
#[test]
fn gps_speed_and_time_round_trip_and_their_changes_are_noticed() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let mut asset = everything("GPS");
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    c.upsert_page(run, std::slice::from_ref(&asset), &[])
        .unwrap();
    let stored = c.asset_by_id(lib, "GPS").unwrap().unwrap();
    let loc = stored.asset.location.unwrap();
    assert_eq!(
        (loc.speed, loc.gps_time_ms),
        (Some(4.25), Some(1_555_410_486_500))
    );
    let edits: [fn(&mut icloudpd_rs::model::Location); 4] = [
        |l| l.speed = Some(0.5),
        |l| l.gps_time_ms = Some(1_555_410_487_000),
        |l| l.speed = None,
        |l| l.gps_time_ms = None,
    ];
    for edit in edits {
        edit(asset.location.as_mut().unwrap());
        let counts = c
            .upsert_page(run, std::slice::from_ref(&asset), &[])
            .unwrap();
        assert_eq!(counts.changed, 1, "{:?}", asset.location);
        let back = c.asset_by_id(lib, "GPS").unwrap().unwrap();
        assert_eq!(back.asset, asset);
        assert_eq!(back.key, stored.key);
    }
    let again = c
        .upsert_page(run, std::slice::from_ref(&asset), &[])
        .unwrap();
    assert_eq!(again.unchanged, 1);
}

#[test]
fn upserting_the_same_page_again_changes_nothing() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let page: Vec<_> = (0..50).map(|i| photo(&format!("M{i}"), i)).collect();

    let run = c.begin_run(lib, RunKind::Full, Some(50)).unwrap();
    let first = c.upsert_page(run, &page, &[]).unwrap();
    assert_eq!(
        first,
        PageCounts {
            seen: 50,
            added: 50,
            ..PageCounts::default()
        }
    );
    let before: Vec<_> = c
        .assets(lib, AssetFilter::InICloud)
        .collect::<Result<_, _>>()
        .unwrap();

    let second = c.upsert_page(run, &page, &[]).unwrap();
    assert_eq!(
        second,
        PageCounts {
            seen: 50,
            unchanged: 50,
            ..PageCounts::default()
        }
    );
    let run2 = {
        c.finish_full_enumeration(run, None).unwrap();
        c.begin_run(lib, RunKind::Full, Some(50)).unwrap()
    };
    let third = c.upsert_page(run2, &page, &[]).unwrap();
    assert_eq!(third.unchanged, 50);
    let after: Vec<_> = c
        .assets(lib, AssetFilter::InICloud)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(after.len(), 50);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            (b.key, &b.version_keys, &b.asset),
            (a.key, &a.version_keys, &a.asset)
        );
        assert_eq!(a.last_seen_run, Some(run2));
        assert_eq!(a.first_seen_run, Some(run));
    }
    let record = c.run(run).unwrap();
    assert_eq!(
        (
            record.counts.seen,
            record.counts.added,
            record.counts.changed
        ),
        (100, 50, 0)
    );
}

#[test]
fn an_edit_resets_the_download_state_of_that_version_only() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let root_a = c.register_root(&s.path("mirror-a")).unwrap();
    let root_b = c.register_root(&s.path("mirror-b")).unwrap();
    let mut asset = photo("EDITED", 1);
    let other = photo("UNTOUCHED", 2);
    full_refresh(&mut c, lib, &[asset.clone(), other.clone()]);

    let stored = c.asset_by_id(lib, "EDITED").unwrap().unwrap();
    let untouched = c.asset_by_id(lib, "UNTOUCHED").unwrap().unwrap();
    let mut keys = stored.version_keys.clone();
    keys.extend(&untouched.version_keys);
    for &key in &keys {
        for root in [root_a, root_b] {
            c.mark_downloaded(key, root, &format!("2017/07/14/{key}.HEIC"), 10, &[7; 32])
                .unwrap();
        }
    }

    // The photo is edited: the original's checksum and size change, medium gets new
    // dimensions only, thumb is unchanged.
    asset.asset_change_tag = Some("ct2".into());
    asset.versions[0].checksum = "orig-EDITED-v2".into();
    asset.versions[0].size += 1;
    asset.versions[1].width = Some(1);
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    let counts = c.upsert_page(run, &[asset.clone(), other], &[]).unwrap();
    assert_eq!((counts.changed, counts.unchanged), (1, 1));

    let after = c.asset_by_id(lib, "EDITED").unwrap().unwrap();
    assert_eq!(
        after.version_keys, stored.version_keys,
        "keys survive an edit"
    );
    assert_eq!(after.asset, asset);
    let original = stored.version_key(VersionKind::Original).unwrap();
    for &key in &keys {
        for root in [root_a, root_b] {
            let state = c.download_state(key, root).unwrap().unwrap();
            if key == original {
                assert_eq!(
                    state,
                    DownloadState::Pending {
                        previous_path: Some(format!("2017/07/14/{key}.HEIC"))
                    }
                );
            } else {
                assert!(
                    matches!(state, DownloadState::Downloaded { .. }),
                    "version {key} should still be downloaded: {state:?}"
                );
            }
        }
    }
}

#[test]
fn a_version_the_asset_lost_is_removed_with_its_state() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let root = c.register_root(&s.path("m")).unwrap();
    let mut asset = photo("A", 1);
    asset
        .versions
        .push(version(VersionKind::Adjusted, 5, "adj"));
    full_refresh(&mut c, lib, std::slice::from_ref(&asset));
    let stored = c.asset_by_id(lib, "A").unwrap().unwrap();
    let adjusted = stored.version_key(VersionKind::Adjusted).unwrap();
    c.mark_downloaded(adjusted, root, "a.JPG", 5, &[1; 32])
        .unwrap();

    asset.versions.pop(); // the edit was reverted
    full_refresh(&mut c, lib, std::slice::from_ref(&asset));
    let after = c.asset_by_id(lib, "A").unwrap().unwrap();
    assert_eq!(after.version_key(VersionKind::Adjusted), None);
    assert!(c.version(adjusted).unwrap().is_none());
    assert!(c.download_state(adjusted, root).unwrap().is_none());

    // Re-adding the kind gets a new key: keys are never reused.
    asset
        .versions
        .push(version(VersionKind::Adjusted, 6, "adj2"));
    full_refresh(&mut c, lib, std::slice::from_ref(&asset));
    let again = c.asset_by_id(lib, "A").unwrap().unwrap();
    assert!(again.version_key(VersionKind::Adjusted).unwrap() > adjusted);
}

#[test]
fn skipped_records_are_stored_and_counted() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    let skipped = vec![
        Skipped {
            record_name: "MASTER-WITHOUT-ASSET".into(),
            reason: "no CPLAsset pointed at this master".into(),
        },
        Skipped {
            record_name: "B".into(),
            reason: "resOriginalRes without downloadURL".into(),
        },
    ];
    let counts = c.upsert_page(run, &[photo("A", 1)], &skipped).unwrap();
    assert_eq!(counts.skipped, 2);
    assert_eq!(c.skipped_records(run).unwrap(), skipped);
    assert_eq!(c.run(run).unwrap().counts.skipped, 2);
}

#[test]
fn pages_go_only_into_running_runs_of_the_right_zone() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let run = c.begin_run(lib, RunKind::Incremental, None).unwrap();

    let mut foreign = photo("X", 1);
    foreign.zone = "SharedSync-1234".into();
    assert!(matches!(
        c.upsert_page(run, &[photo("ok", 0), foreign], &[]),
        Err(CatalogError::ZoneMismatch { .. })
    ));
    // The failed page left nothing behind: one transaction per call.
    assert!(c.asset_by_id(lib, "ok").unwrap().is_none());
    assert_eq!(c.run(run).unwrap().counts.seen, 0);

    c.finish_run(run, RunStatus::Failed, Some("network down"))
        .unwrap();
    assert!(matches!(
        c.upsert_page(run, &[photo("late", 1)], &[]),
        Err(CatalogError::RunNotRunning { .. })
    ));
    assert!(matches!(
        c.upsert_page(icloudpd_rs::catalog::RunId(999), &[], &[]),
        Err(CatalogError::UnknownRun(_))
    ));
}

#[test]
fn the_same_master_in_two_libraries_is_two_assets() {
    let s = Scratch::new();
    let (mut c, primary) = writer(&s.db());
    let shared = c
        .upsert_library(&icloudpd_rs::model::Library {
            database: "shared".into(),
            zone: "SharedSync-1234".into(),
            owner: Some("_owner".into()),
        })
        .unwrap();
    full_refresh(&mut c, primary, &[photo("SAME", 1)]);
    let mut in_shared = photo("SAME", 2);
    in_shared.zone = "SharedSync-1234".into();
    full_refresh(&mut c, shared, &[in_shared]);

    let a = c.asset_by_id(primary, "SAME").unwrap().unwrap();
    let b = c.asset_by_id(shared, "SAME").unwrap().unwrap();
    assert_ne!(a.key, b.key);
    assert_eq!(b.asset.zone, "SharedSync-1234");
    assert_eq!(a.asset.filename.as_deref(), Some("IMG_0001.HEIC"));
    assert_eq!(b.asset.filename.as_deref(), Some("IMG_0002.HEIC"));
}

#[test]
fn sizes_beyond_sqlite_integers_are_refused_not_wrapped() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let run = c.begin_run(lib, RunKind::Full, None).unwrap();
    let mut huge = photo("HUGE", 1);
    huge.versions[0].size = u64::MAX;
    assert!(matches!(
        c.upsert_page(run, &[huge], &[]),
        Err(CatalogError::OutOfRange { .. })
    ));
}

#[test]
fn a_fingerprint_from_an_older_encoding_only_rewrites_the_row_once() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let root = c.register_root(&s.path("mirror")).unwrap();
    let asset = photo("OLD", 1);
    full_refresh(&mut c, lib, std::slice::from_ref(&asset));
    let stored = c.asset_by_id(lib, "OLD").unwrap().unwrap();
    for &key in &stored.version_keys {
        c.mark_downloaded(key, root, &format!("{key}.HEIC"), 10, &[7; 32])
            .unwrap();
    }
    // A catalog written before the current fingerprint encoding holds another value for the
    // same content.
    let raw = rusqlite::Connection::open(s.db()).unwrap();
    raw.execute(
        "UPDATE assets SET content_hash = 12345 WHERE record_id = 'OLD'",
        [],
    )
    .unwrap();
    drop(raw);

    let counts = full_refresh_counts(&mut c, lib, &asset);
    assert_eq!((counts.changed, counts.unchanged), (1, 0), "rewritten once");
    let after = c.asset_by_id(lib, "OLD").unwrap().unwrap();
    assert_eq!(after.asset, asset);
    assert_eq!(after.version_keys, stored.version_keys);
    for &key in &stored.version_keys {
        let state = c.download_state(key, root).unwrap().unwrap();
        assert!(
            matches!(state, DownloadState::Downloaded { .. }),
            "version {key} should still be downloaded: {state:?}"
        );
    }
    let again = full_refresh_counts(&mut c, lib, &asset);
    assert_eq!((again.changed, again.unchanged), (0, 1), "then unchanged");
}

/// One full run over `asset` alone; the page's counts.
fn full_refresh_counts(
    c: &mut icloudpd_rs::catalog::Catalog,
    lib: icloudpd_rs::catalog::LibraryId,
    asset: &icloudpd_rs::model::Asset,
) -> PageCounts {
    let run = c.begin_run(lib, RunKind::Full, Some(1)).unwrap();
    let counts = c
        .upsert_page(run, std::slice::from_ref(asset), &[])
        .unwrap();
    c.finish_full_enumeration(run, None).unwrap();
    counts
}

//! `refresh` against the simulator: the catalog equals the simulator's manifest after a full
//! listing, after every kind of change, under API faults and after a session expiry; an
//! unchanged library costs at most two CloudKit requests; a rejected token falls back to a full
//! listing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use icloudpd_rs::auth::{
    AccountSession, AuthOptions, Authenticator, Domain, Endpoints, PasswordSources,
};
use icloudpd_rs::catalog::{AssetFilter, Catalog};
use icloudpd_rs::refresh::{self, NoSink, RefreshMode, RefreshOptions};
use icloudpd_rs::sim::faults::{FaultKind, FaultRule};
use icloudpd_rs::sim::{Sim, SimConfig, SimState};

use crate::support::primary_manifest;

async fn start(assets: usize, seed: u64) -> Sim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sim::start(SimConfig {
        assets,
        seed,
        size_scale: 0.0001,
        iterations: 1000,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

async fn sign_in(sim: &Sim, data: &Path) -> AccountSession {
    let a = sim.account();
    let mut opts = AuthOptions::new(
        &a.username,
        PasswordSources::literal(&a.password),
        data.to_path_buf(),
    );
    opts.endpoints = Endpoints::custom(sim.endpoint(), Domain::Com).expect("endpoint");
    Authenticator::resume(opts).await.expect("signs in")
}

/// One refresh with the default options, which must succeed.
async fn refresh_once(session: &AccountSession, catalog: &mut Catalog) -> refresh::RefreshReport {
    refresh::refresh(session, catalog, &RefreshOptions::default(), &mut NoSink)
        .await
        .unwrap()
}

/// (asset id, version) -> size, plus per-asset flags and albums, as the simulator sees it.
type View = (
    BTreeMap<(String, String), u64>,
    BTreeMap<String, (bool, bool, bool)>,
    BTreeMap<String, BTreeSet<String>>,
);

fn manifest_view(sim: &SimState) -> View {
    let entries = primary_manifest(sim);
    let mut versions = BTreeMap::new();
    let mut flags = BTreeMap::new();
    let mut albums: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in entries {
        versions.insert((e.asset_id.clone(), e.version.to_string()), e.size);
        flags.insert(
            e.asset_id.clone(),
            (e.is_deleted, e.is_hidden, e.is_favorite),
        );
        albums
            .entry(e.asset_id.clone())
            .or_default()
            .extend(e.albums.iter().cloned());
    }
    (versions, flags, albums)
}

fn catalog_view(catalog: &Catalog) -> View {
    let lib = catalog
        .libraries()
        .expect("libraries")
        .into_iter()
        .find(|l| l.library.zone == "PrimarySync")
        .expect("primary library");
    let mut versions = BTreeMap::new();
    let mut flags = BTreeMap::new();
    let mut albums: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for stored in catalog.assets(lib.id, AssetFilter::InICloud) {
        let stored = stored.expect("row");
        if stored.gone_ms.is_some() {
            continue;
        }
        let a = &stored.asset;
        for v in &a.versions {
            versions.insert((a.id.clone(), v.kind.as_str().to_string()), v.size);
        }
        flags.insert(a.id.clone(), (a.deleted, a.hidden, a.favorite));
        albums.entry(a.id.clone()).or_default();
    }
    for entry in catalog.albums(lib.id).expect("albums") {
        if entry.album.is_folder || entry.album.deleted {
            continue;
        }
        for member in catalog.assets(lib.id, AssetFilter::Album(entry.key)) {
            if let Some(set) = albums.get_mut(&member.expect("row").asset.id) {
                set.insert(entry.album.name.clone());
            }
        }
    }
    (versions, flags, albums)
}

/// Album membership is only visible for assets in All Photos: album listings leave hidden and
/// recently deleted assets out.
fn visible_albums(
    albums: BTreeMap<String, BTreeSet<String>>,
    flags: &BTreeMap<String, (bool, bool, bool)>,
) -> BTreeMap<String, BTreeSet<String>> {
    albums
        .into_iter()
        .filter(|(id, _)| flags.get(id).is_some_and(|f| !f.0 && !f.1))
        .collect()
}

fn assert_equal(catalog: &Catalog, sim: &SimState, when: &str) {
    let (mv, mf, ma) = manifest_view(sim);
    let (cv, cf, ca) = catalog_view(catalog);
    let (ma, ca) = (visible_albums(ma, &mf), visible_albums(ca, &cf));
    assert_eq!(cv.len(), mv.len(), "{when}: version count");
    assert!(cv == mv, "{when}: versions or sizes differ");
    assert!(cf == mf, "{when}: flags differ");
    if ca != ma {
        let diffs: Vec<_> = ma
            .iter()
            .filter(|(k, v)| ca.get(*k) != Some(v))
            .take(5)
            .map(|(k, v)| (k.clone(), v.clone(), ca.get(k).cloned(), mf.get(k).cloned()))
            .collect();
        panic!("{when}: album membership differs, e.g. {diffs:?}");
    }
}

fn cloudkit_requests(sim: &Sim) -> u64 {
    sim.state().stats.cloudkit_requests()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_then_incremental_refreshes_match_the_manifest() {
    let sim = start(3000, 21).await;
    let dir = tempfile::tempdir().unwrap();
    let session = sign_in(&sim, dir.path()).await;
    let mut catalog = Catalog::open(dir.path().join("catalog.sqlite")).unwrap();
    let opts = RefreshOptions::default();

    let report = refresh::refresh(&session, &mut catalog, &opts, &mut NoSink)
        .await
        .unwrap();
    assert!(matches!(report.libraries[0].mode, RefreshMode::Full { .. }));
    assert_equal(&catalog, sim.state(), "after the first listing");

    // Nothing changed: at most two CloudKit requests.
    let before = cloudkit_requests(&sim);
    let report = refresh::refresh(&session, &mut catalog, &opts, &mut NoSink)
        .await
        .unwrap();
    assert_eq!(report.libraries[0].mode, RefreshMode::Unchanged);
    assert!(
        cloudkit_requests(&sim) - before <= 2,
        "unchanged refresh cost {} requests",
        cloudkit_requests(&sim) - before
    );

    // Every kind of change, then an incremental refresh.
    let ids: Vec<String> = manifest_view(sim.state())
        .1
        .into_iter()
        .filter(|(_, f)| !f.0 && !f.1)
        .map(|(id, _)| id)
        .collect();
    let album = catalog
        .albums(catalog.libraries().unwrap()[0].id)
        .unwrap()
        .into_iter()
        .find(|a| !a.album.is_folder && !a.album.deleted)
        .unwrap()
        .album;
    let members = catalog
        .album_member_ids(catalog.libraries().unwrap()[0].id, &album.id)
        .unwrap();
    let body = serde_json::json!([
        {"op": "add", "count": 7},
        {"op": "delete", "asset_ids": [ids[0], ids[1]]},
        {"op": "hide", "asset_ids": [ids[2]]},
        {"op": "favorite", "asset_ids": [ids[3]]},
        {"op": "edit", "asset_ids": [ids[4]]},
        {"op": "purge", "asset_ids": [ids[5]]},
        {"op": "album_add", "album": album.id, "asset_ids": [ids[6], ids[7]]},
        {"op": "album_remove", "album": album.id, "asset_ids": [members[0]]},
        {"op": "album_create", "name": "Fresh album"},
    ]);
    sim.state()
        .library
        .mutate_json(&body)
        .expect("mutations apply");
    let report = refresh::refresh(&session, &mut catalog, &opts, &mut NoSink)
        .await
        .unwrap();
    assert_eq!(report.libraries[0].mode, RefreshMode::Incremental);
    assert_equal(&catalog, sim.state(), "after mutations");
    assert!(
        catalog
            .albums(catalog.libraries().unwrap()[0].id)
            .unwrap()
            .iter()
            .any(|a| a.album.name == "Fresh album")
    );
}

/// A change of albums only is reported as such, not as a refresh that changed nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn album_only_changes_are_counted_in_the_report() {
    let sim = start(300, 6).await;
    let dir = tempfile::tempdir().unwrap();
    let session = sign_in(&sim, dir.path()).await;
    let mut catalog = Catalog::open(dir.path().join("catalog.sqlite")).unwrap();
    refresh_once(&session, &mut catalog).await;
    let lib = catalog.libraries().unwrap()[0].id;
    let album = catalog
        .albums(lib)
        .unwrap()
        .into_iter()
        .find(|a| !a.album.is_folder && !a.album.deleted)
        .unwrap()
        .album;
    let members = catalog.album_member_ids(lib, &album.id).unwrap();
    let outsiders: Vec<String> = manifest_view(sim.state())
        .1
        .into_iter()
        .filter(|(id, f)| !f.0 && !f.1 && !members.contains(id))
        .map(|(id, _)| id)
        .take(2)
        .collect();
    let body = serde_json::json!([
        {"op": "album_add", "album": album.id, "asset_ids": outsiders},
        {"op": "album_remove", "album": album.id, "asset_ids": [members[0]]},
        {"op": "album_create", "name": "Fresh album"},
    ]);
    sim.state().library.mutate_json(&body).unwrap();
    let report = refresh_once(&session, &mut catalog).await;
    let lib = &report.libraries[0];
    assert_eq!(lib.mode, RefreshMode::Incremental);
    assert_equal(&catalog, sim.state(), "after album changes");
    assert_eq!((lib.added, lib.changed, lib.removed), (0, 0, 0));
    assert_eq!(lib.albums, 1, "one album created");
    assert_eq!(lib.memberships, 3, "two members added, one removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_falls_back_to_a_full_listing() {
    let sim = start(800, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let session = sign_in(&sim, dir.path()).await;
    let mut catalog = Catalog::open(dir.path().join("catalog.sqlite")).unwrap();
    refresh_once(&session, &mut catalog).await;
    sim.state()
        .library
        .mutate_json(&serde_json::json!({"op": "add", "count": 3}))
        .unwrap();
    sim.state().faults.set(
        FaultKind::TokenExpire,
        FaultRule {
            p: 1.0,
            ..FaultRule::default()
        },
    );
    let report = refresh_once(&session, &mut catalog).await;
    match &report.libraries[0].mode {
        RefreshMode::Full { reason } => assert!(reason.contains("rejected"), "{reason}"),
        other => panic!("expected a full listing, got {other:?}"),
    }
    sim.state().faults.clear();
    assert_equal(&catalog, sim.state(), "after the fallback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_faults_and_session_expiry_still_end_exact() {
    let sim = start(2500, 9).await;
    let dir = tempfile::tempdir().unwrap();
    let session = sign_in(&sim, dir.path()).await;
    let mut catalog = Catalog::open(dir.path().join("catalog.sqlite")).unwrap();
    for (kind, p) in [
        (FaultKind::Api503, 0.04),
        (FaultKind::Api429, 0.04),
        (FaultKind::ApiReset, 0.03),
        (FaultKind::ApiMalformed, 0.03),
        (FaultKind::SessionExpire, 0.01),
    ] {
        sim.state().faults.set(
            kind,
            FaultRule {
                p,
                ..FaultRule::default()
            },
        );
    }
    refresh_once(&session, &mut catalog).await;
    sim.state()
        .library
        .mutate_json(&serde_json::json!([{"op": "add", "count": 20}]))
        .unwrap();
    refresh_once(&session, &mut catalog).await;
    let fired: u64 = [
        FaultKind::Api503,
        FaultKind::Api429,
        FaultKind::ApiReset,
        FaultKind::ApiMalformed,
    ]
    .iter()
    .map(|k| sim.state().faults.fired(*k))
    .sum();
    sim.state().faults.clear();
    assert!(fired > 0, "faults fired during the refresh");
    assert_equal(&catalog, sim.state(), "under faults");
}

/// An album's listing holds its visible members only: album members hidden or deleted when
/// the library is listed in full, then shown again, are back in their albums after the next
/// refresh (the change feed says nothing of albums then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn album_members_shown_again_are_back_in_their_albums() {
    let sim = start(300, 15).await;
    let (_, flags, albums) = manifest_view(sim.state());
    let in_albums: Vec<String> = albums
        .iter()
        .filter(|(id, a)| !a.is_empty() && flags.get(*id).is_some_and(|f| !f.0 && !f.1))
        .map(|(id, _)| id.clone())
        .take(4)
        .collect();
    assert_eq!(in_albums.len(), 4, "visible album members to hide");
    let (hide, delete) = in_albums.split_at(2);
    let mutate = |v: serde_json::Value| sim.state().library.mutate_json(&v).unwrap();
    mutate(serde_json::json!([{"op": "hide", "asset_ids": hide}]));
    mutate(serde_json::json!([{"op": "delete", "asset_ids": delete}]));
    let dir = tempfile::tempdir().unwrap();
    let session = sign_in(&sim, dir.path()).await;
    let mut catalog = Catalog::open(dir.path().join("catalog.sqlite")).unwrap();
    refresh_once(&session, &mut catalog).await;
    assert_equal(&catalog, sim.state(), "listed while hidden and deleted");
    mutate(serde_json::json!([{"op": "unhide", "asset_ids": hide}]));
    mutate(serde_json::json!([{"op": "restore", "asset_ids": delete}]));
    refresh_once(&session, &mut catalog).await;
    assert_equal(&catalog, sim.state(), "shown again");
}

/// Listing pages answered with part of their records (a gateway cutting the answer): each is
/// asked again until whole, and the catalog ends exact, with no stale "unpaired" skips.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_answered_cut_short_are_asked_again() {
    let sim = start(1450, 12).await;
    let dir = tempfile::tempdir().unwrap();
    let session = sign_in(&sim, dir.path()).await;
    let mut catalog = Catalog::open(dir.path().join("catalog.sqlite")).unwrap();
    sim.state().faults.set(
        FaultKind::ApiShortPage,
        FaultRule {
            p: 1.0,
            // Fewer than the answers one page may get: none of them has all its answers cut.
            remaining: Some(3),
            ..FaultRule::default()
        },
    );
    let report = refresh_once(&session, &mut catalog).await;
    assert_eq!(sim.state().faults.fired(FaultKind::ApiShortPage), 3);
    sim.state().faults.clear();
    assert_equal(&catalog, sim.state(), "after pages cut short");
    assert_eq!(report.libraries[0].skipped, 0, "{:?}", report.libraries[0]);
}

/// Pages that never come whole: the listing keeps what the server gives and reports the
/// records left without their partner as skipped, and a full listing does not take their
/// assets for gone (a sync with `--auto-delete` would delete their files). With the server
/// healthy again, the next listing ends exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_always_cut_short_mark_nothing_gone() {
    let sim = start(700, 13).await;
    let dir = tempfile::tempdir().unwrap();
    let session = sign_in(&sim, dir.path()).await;
    let mut catalog = Catalog::open(dir.path().join("catalog.sqlite")).unwrap();
    refresh_once(&session, &mut catalog).await;
    sim.state().faults.set(
        FaultKind::ApiShortPage,
        FaultRule {
            p: 1.0,
            ..FaultRule::default()
        },
    );
    let full = RefreshOptions {
        full: true,
        ..RefreshOptions::default()
    };
    let report = refresh::refresh(&session, &mut catalog, &full, &mut NoSink)
        .await
        .unwrap();
    sim.state().faults.clear();
    let library = &report.libraries[0];
    assert!(library.skipped > 0, "{library:?}");
    assert_eq!(library.removed, 0, "{library:?}");
    // Every asset is still there (album members are what the cut album pages held).
    let ((mv, mf, _), (cv, cf, _)) = (manifest_view(sim.state()), catalog_view(&catalog));
    assert!(
        cv == mv && cf == mf,
        "assets or flags differ after the cut listing"
    );
    refresh::refresh(&session, &mut catalog, &full, &mut NoSink)
        .await
        .unwrap();
    assert_equal(&catalog, sim.state(), "after the next listing");
}

#[test]
fn kill_during_enumeration_then_refresh_ends_exact() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = icloudpd_rs::sim::BackgroundSim::start(SimConfig {
        assets: 6000,
        seed: 33,
        size_scale: 0.0001,
        iterations: 1000,
        latency: 15,
        ..SimConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_icloudpd-rs");
    let a = sim.account().clone();
    let run = |wait: Option<Duration>| {
        let mut child = std::process::Command::new(bin)
            .args([
                "refresh",
                "-u",
                &a.username,
                "-p",
                &a.password,
                "--endpoint",
                sim.endpoint(),
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        match wait {
            Some(d) => {
                std::thread::sleep(d);
                // SIGKILL: no chance to clean up.
                let _ = child.kill();
                let _ = child.wait();
            }
            None => assert!(child.wait().unwrap().success(), "refresh succeeds"),
        }
    };
    for ms in [600, 1100, 1700] {
        run(Some(Duration::from_millis(ms)));
    }
    run(None);
    let account_dir = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .unwrap()
        .path();
    let catalog = Catalog::open_read_only(account_dir.join("catalog.sqlite")).unwrap();
    assert_equal(&catalog, sim.state(), "after kills and a refresh");
}

/// The catalog's smart folders (which `--album Videos` and the mount's views read) hold what
/// the server's own indexes hold: icloudpd lists those indexes, so both tools take the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_folders_hold_what_the_servers_indexes_hold() {
    use icloudpd_rs::catalog::SmartFolder;
    use icloudpd_rs::cloudkit::{CloudKitClient, Index, SmartAlbum, WalkOptions};
    use icloudpd_rs::model::Library;
    let sim = start(1500, 21).await;
    let dir = tempfile::tempdir().unwrap();
    let session = sign_in(&sim, dir.path()).await;
    let mut catalog = Catalog::open(dir.path().join("catalog.sqlite")).unwrap();
    refresh_once(&session, &mut catalog).await;
    let lib_id = catalog.libraries().unwrap()[0].id;
    let client = CloudKitClient::for_session(&session).unwrap();
    for folder in SmartFolder::ALL {
        let index = match folder {
            SmartFolder::Favorites => Index::Smart(SmartAlbum::Favorite),
            SmartFolder::Videos => Index::Smart(SmartAlbum::Video),
            SmartFolder::LivePhotos => Index::Smart(SmartAlbum::Live),
            SmartFolder::Screenshots => Index::Smart(SmartAlbum::Screenshot),
            SmartFolder::Panoramas => Index::Smart(SmartAlbum::Panorama),
            SmartFolder::SloMo => Index::Smart(SmartAlbum::Slomo),
            SmartFolder::TimeLapse => Index::Smart(SmartAlbum::Timelapse),
            SmartFolder::Bursts => Index::Bursts,
            SmartFolder::Hidden => Index::Hidden,
            SmartFolder::RecentlyDeleted => Index::RecentlyDeleted,
        };
        let mut walk = client.walk(&Library::primary(), index, WalkOptions::default());
        let mut server = BTreeSet::new();
        while let Some(page) = walk.next_page().await {
            server.extend(page.assets.into_iter().map(|a| a.asset.id));
        }
        walk.finish().await.unwrap();
        let local: BTreeSet<String> = catalog
            .assets(lib_id, AssetFilter::Smart(folder))
            .map(|a| a.unwrap().asset.id)
            .collect();
        assert!(!server.is_empty(), "{folder:?}: the library has some");
        assert_eq!(local, server, "{folder:?}");
    }
}

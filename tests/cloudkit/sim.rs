//! The client against the simulator: enumerations equal the simulator's manifest, faults do not
//! change the result, change feeds report mutations, errors arrive typed.

use crate::support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use icloudpd_rs::cloudkit::{
    Change, CloudKitClient, CloudKitError, Database, Index, ListedAsset, SmartAlbum, WalkOptions,
    WalkSummary, ZoneChanges,
};
use icloudpd_rs::model::Library;
use icloudpd_rs::sim::faults::{FaultKind, FaultRule};
use icloudpd_rs::sim::library::{ManifestEntry, ManifestOptions};
use icloudpd_rs::sim::{Sim, SimConfig};
use support::{client_for, client_with_cookie};

fn config(assets: usize) -> SimConfig {
    SimConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        assets,
        size_scale: 0.0001,
        ..SimConfig::default()
    }
}

async fn start(config: SimConfig) -> (Sim, CloudKitClient) {
    let sim = Sim::start(config).await.expect("simulator starts");
    let cookie = sim.state().auth.mint_web_session();
    let client = client_with_cookie(sim.endpoint(), Some(&cookie));
    (sim, client)
}

async fn walk(
    client: &CloudKitClient,
    library: &Library,
    index: Index,
) -> (Vec<ListedAsset>, WalkSummary) {
    let mut walk = client.walk(library, index, WalkOptions::default());
    let mut assets = Vec::new();
    while let Some(page) = walk.next_page().await {
        assert!(page.skipped.is_empty(), "skipped: {:?}", page.skipped);
        assets.extend(page.assets);
    }
    let summary = walk.finish().await.expect("walk completes");
    assert!(
        summary.skipped.is_empty(),
        "unpaired: {:?}",
        summary.skipped
    );
    (assets, summary)
}

fn manifest(sim: &Sim, zone: &str) -> Vec<ManifestEntry> {
    sim.state()
        .library
        .manifest(&ManifestOptions {
            zone: Some(zone.to_string()),
            sha256: false,
        })
        .expect("manifest")
}

/// The manifest's assets: id → their lines.
fn by_asset(manifest: &[ManifestEntry]) -> BTreeMap<String, Vec<&ManifestEntry>> {
    let mut out: BTreeMap<String, Vec<&ManifestEntry>> = BTreeMap::new();
    for e in manifest {
        out.entry(e.asset_id.clone()).or_default().push(e);
    }
    out
}

/// Every field the manifest states equals what the client parsed.
fn assert_matches_manifest(a: &ListedAsset, lines: &[&ManifestEntry]) {
    let id = &a.asset.id;
    let first = lines[0];
    assert_eq!(a.asset.filename, first.filename, "{id}: filename");
    assert_eq!(
        a.asset.item_type.as_deref(),
        Some(first.item_type),
        "{id}: itemType"
    );
    assert_eq!(a.asset.asset_date_ms, first.asset_date, "{id}: assetDate");
    assert_eq!(a.asset.added_date_ms, first.added_date, "{id}: addedDate");
    assert_eq!(a.asset.deleted, first.is_deleted, "{id}: deleted");
    assert_eq!(a.asset.hidden, first.is_hidden, "{id}: hidden");
    assert_eq!(a.asset.favorite, first.is_favorite, "{id}: favorite");
    assert_eq!(
        a.asset.asset_record, first.asset_record,
        "{id}: asset record"
    );
    assert_eq!(a.asset.zone, first.zone, "{id}: zone");
    if first.filename.is_none() {
        assert!(
            a.asset.filename_problem.is_some(),
            "{id}: missing name must say why"
        );
    }
    let expected: BTreeSet<(String, u64, String, String)> = lines
        .iter()
        .map(|e| {
            (
                e.version.to_string(),
                e.size,
                e.file_type.to_string(),
                e.file_checksum.clone(),
            )
        })
        .collect();
    let got: BTreeSet<(String, u64, String, String)> = a
        .asset
        .versions
        .iter()
        .map(|v| {
            (
                v.kind.as_str().to_string(),
                v.size,
                v.file_type.clone(),
                v.checksum.clone(),
            )
        })
        .collect();
    assert_eq!(got, expected, "{id}: versions");
    for d in &a.downloads {
        assert!(
            !d.download_url.is_empty(),
            "{id}: {} has no URL",
            d.version.kind.as_str()
        );
    }
}

/// Walk All Photos, Hidden and Recently Deleted; every asset of the manifest exactly once.
async fn assert_full_library_equals_manifest(sim: &Sim, client: &CloudKitClient) {
    let lib = Library::primary();
    let expected = manifest(sim, "PrimarySync");
    let expected = by_asset(&expected);
    let mut seen: HashMap<String, ListedAsset> = HashMap::new();
    for index in [Index::AllPhotos, Index::Hidden, Index::RecentlyDeleted] {
        let (assets, summary) = walk(client, &lib, index.clone()).await;
        assert_eq!(
            summary.expected,
            Some(assets.len() as u64),
            "{index:?}: count equals the listing"
        );
        assert!(summary.sync_token.is_some());
        for a in assets {
            match &index {
                Index::Hidden => assert!(a.asset.hidden && !a.asset.deleted),
                Index::RecentlyDeleted => {
                    assert!(a.asset.deleted && a.asset.date_expunged_ms.is_some())
                }
                _ => assert!(!a.asset.hidden && !a.asset.deleted),
            }
            let id = a.asset.id.clone();
            assert!(seen.insert(id.clone(), a).is_none(), "{id} listed twice");
        }
    }
    assert_eq!(
        seen.len(),
        expected.len(),
        "every asset of the library, once"
    );
    for (id, lines) in &expected {
        let a = seen.get(id).unwrap_or_else(|| panic!("{id} never listed"));
        assert_matches_manifest(a, lines);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_assets_enumerate_exactly_as_the_manifest() {
    let (sim, client) = start(config(5000)).await;
    let lib = Library::primary();
    assert!(
        client
            .indexing_state(&lib)
            .await
            .expect("indexing")
            .is_finished()
    );
    let zones = client.list_libraries().await.expect("zones");
    assert_eq!(
        zones,
        vec![Library {
            owner: zones[0].owner.clone(),
            ..Library::primary()
        }]
    );
    assert_full_library_equals_manifest(&sim, &client).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_faults_at_a_few_percent_still_give_the_exact_library() {
    let (sim, client) = start(config(3000)).await;
    let faults = &sim.state().faults;
    for kind in [
        FaultKind::Api503,
        FaultKind::Api429,
        FaultKind::ApiReset,
        FaultKind::ApiMalformed,
    ] {
        faults.set(
            kind,
            FaultRule {
                p: 0.04,
                ..FaultRule::default()
            },
        );
    }
    assert_full_library_equals_manifest(&sim, &client).await;
    let fired: u64 = [
        FaultKind::Api503,
        FaultKind::Api429,
        FaultKind::ApiReset,
        FaultKind::ApiMalformed,
    ]
    .into_iter()
    .map(|k| faults.fired(k))
    .sum();
    assert!(fired > 0, "the faults fired");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn albums_folders_and_smart_folders_equal_the_manifest_view() {
    let (sim, client) = start(config(3000)).await;
    let lib = Library::primary();
    let listing = client.list_albums(&lib).await.expect("albums");
    assert!(listing.skipped.is_empty(), "{:?}", listing.skipped);
    let ids: HashSet<&str> = listing.albums.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), listing.albums.len(), "each album once");
    assert!(listing.albums.iter().any(|a| a.is_folder), "folders listed");
    assert!(
        listing.albums.iter().any(|a| a.deleted),
        "deleted album reported with its flag"
    );
    for a in &listing.albums {
        if let Some(p) = &a.parent_id {
            let parent = listing
                .albums
                .iter()
                .find(|x| &x.id == p)
                .expect("parent listed");
            assert!(parent.is_folder, "{} sits in a folder", a.name);
        }
    }

    // Album contents against the manifest's album names (visible assets only: albums, like
    // All Photos, do not show hidden or deleted assets).
    let expected = manifest(&sim, "PrimarySync");
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in expected
        .iter()
        .filter(|e| e.version == "original" && !e.is_hidden && !e.is_deleted)
    {
        for album in &e.albums {
            want.entry(album.clone())
                .or_default()
                .insert(e.asset_id.clone());
        }
    }
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for album in listing.albums.iter().filter(|a| !a.is_folder && !a.deleted) {
        let (assets, summary) = walk(&client, &lib, Index::Album(album.id.clone())).await;
        assert_eq!(
            summary.expected,
            Some(assets.len() as u64),
            "count of {}",
            album.name
        );
        if !assets.is_empty() {
            got.entry(album.name.clone())
                .or_default()
                .extend(assets.into_iter().map(|a| a.asset.id));
        }
    }
    assert_eq!(got, want);

    // Smart folders: counts equal listings; favourites equal the manifest's visible favourites.
    for smart in SmartAlbum::ALL {
        let (assets, summary) = walk(&client, &lib, Index::Smart(smart)).await;
        assert_eq!(summary.expected, Some(assets.len() as u64), "{smart:?}");
        if smart == SmartAlbum::Favorite {
            let favs: BTreeSet<String> = assets.iter().map(|a| a.asset.id.clone()).collect();
            let want: BTreeSet<String> = expected
                .iter()
                .filter(|e| {
                    e.version == "original" && e.is_favorite && !e.is_hidden && !e.is_deleted
                })
                .map(|e| e.asset_id.clone())
                .collect();
            assert_eq!(favs, want);
        }
        if smart == SmartAlbum::Live {
            assert!(assets.iter().all(|a| a.asset.is_live()));
        }
        if smart == SmartAlbum::Video {
            assert!(
                assets
                    .iter()
                    .all(|a| a.asset.kind == icloudpd_rs::model::ItemKind::Movie)
            );
        }
    }
    let (bursts, _) = walk(&client, &lib, Index::Bursts).await;
    assert!(!bursts.is_empty() && bursts.iter().all(|a| a.asset.burst_id.is_some()));
    sim.shutdown().await;
}

/// Follow a zone's change feed from a token to the end.
async fn changes_since(
    client: &CloudKitClient,
    lib: &Library,
    token: &str,
) -> (Vec<Change>, String) {
    let mut token = token.to_string();
    let mut all = Vec::new();
    loop {
        match client
            .zone_changes(lib, Some(&token))
            .await
            .expect("changes")
        {
            ZoneChanges::Page(page) => {
                assert!(page.skipped.is_empty(), "{:?}", page.skipped);
                all.extend(page.changes);
                token = page.sync_token.expect("page token");
                if !page.more_coming {
                    return (all, token);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_changes_report_every_kind_of_mutation() {
    let (sim, client) = start(config(200)).await;
    let lib = Library::primary();
    let (assets, summary) = walk(&client, &lib, Index::AllPhotos).await;
    let token = summary.sync_token.expect("token");
    let album = client
        .list_albums(&lib)
        .await
        .expect("albums")
        .albums
        .into_iter()
        .find(|a| !a.is_folder && !a.deleted)
        .expect("an album");
    let visible: Vec<&ListedAsset> = assets.iter().collect();
    let (del, hide, edit, fav, member) =
        (visible[0], visible[1], visible[2], visible[3], visible[4]);
    let ops = serde_json::json!([
        {"op": "add", "count": 2},
        {"op": "delete", "asset_ids": [del.asset.id]},
        {"op": "hide", "asset_ids": [hide.asset.id]},
        {"op": "edit", "asset_ids": [edit.asset.id]},
        {"op": "favorite", "asset_ids": [fav.asset.id]},
        {"op": "album_add", "album": album.id, "asset_ids": [member.asset.id]},
    ]);
    let outcome = sim.state().library.mutate_json(&ops).expect("mutations");
    let added: Vec<String> = outcome.asset_ids[..2].to_vec();

    let (changes, next) = changes_since(&client, &lib, &token).await;
    let full: HashMap<String, &ListedAsset> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Asset(a) => Some((a.asset.id.clone(), a.as_ref())),
            _ => None,
        })
        .collect();
    let partial: HashMap<String, &icloudpd_rs::cloudkit::AssetRecordChange> = changes
        .iter()
        .filter_map(|c| match c {
            Change::AssetRecord(r) => Some((r.master_id.clone(), r)),
            _ => None,
        })
        .collect();
    let flags = |id: &str| -> (bool, bool, bool) {
        if let Some(a) = full.get(id) {
            (a.asset.deleted, a.asset.hidden, a.asset.favorite)
        } else if let Some(r) = partial.get(id) {
            (r.deleted, r.hidden, r.favorite)
        } else {
            panic!("no change reported for {id}")
        }
    };
    for id in &added {
        let a = full
            .get(id)
            .unwrap_or_else(|| panic!("added asset {id} not reported in full"));
        assert!(
            a.asset
                .version(icloudpd_rs::model::VersionKind::Original)
                .is_some()
        );
    }
    assert!(flags(&del.asset.id).0, "delete reported");
    assert!(flags(&hide.asset.id).1, "hide reported");
    assert!(flags(&fav.asset.id).2, "favourite reported");
    let edited = full
        .get(&edit.asset.id)
        .map(|a| a.asset.adjustment_type.clone())
        .or_else(|| {
            partial
                .get(&edit.asset.id)
                .map(|r| r.adjustment_type.clone())
        })
        .expect("edit reported");
    assert!(edited.is_some(), "edit carries its adjustment");
    // An edit through refresh gives the new adjusted version with a fresh URL.
    let refreshed = client
        .refresh_asset(&lib, &edit.asset.id, &edit.asset.asset_record)
        .await
        .expect("lookup")
        .expect("still exists");
    let adjusted = refreshed
        .asset
        .version(icloudpd_rs::model::VersionKind::Adjusted)
        .expect("adjusted version");
    assert!(
        refreshed
            .url(icloudpd_rs::model::VersionKind::Adjusted)
            .is_some()
    );
    assert!(adjusted.size > 0);
    assert!(changes.iter().any(
        |c| matches!(c, Change::Membership { asset_record, album_id, deleted: false }
        if *asset_record == member.asset.asset_record && *album_id == album.id)
    ));

    // Removal from the album, then purge of the deleted asset.
    let ops = serde_json::json!([
        {"op": "album_remove", "album": album.id, "asset_ids": [member.asset.id]},
        {"op": "purge", "asset_ids": [del.asset.id]},
    ]);
    sim.state().library.mutate_json(&ops).expect("mutations");
    let (changes, _) = changes_since(&client, &lib, &next).await;
    assert!(changes.iter().any(|c| matches!(c, Change::MembershipRemoved { asset_record, album_id }
        if *asset_record == member.asset.asset_record && *album_id == album.id)
        || matches!(c, Change::Membership { asset_record, deleted: true, .. } if *asset_record == member.asset.asset_record)));
    let removed: HashSet<&str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Removed { record_name } => Some(record_name.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        removed.contains(del.asset.id.as_str())
            || removed.contains(del.asset.asset_record.as_str()),
        "purge reported"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_through_the_client_moves_the_asset_to_recently_deleted() {
    let (sim, client) = start(config(150)).await;
    let lib = Library::primary();
    let (assets, _) = walk(&client, &lib, Index::AllPhotos).await;
    let victim = &assets[10];
    let modified = client
        .move_to_recently_deleted(
            &lib,
            &victim.asset.asset_record,
            victim.asset.asset_change_tag.as_deref(),
        )
        .await
        .expect("delete");
    assert!(modified.change_tag.is_some() && modified.change_tag != victim.asset.asset_change_tag);
    let (after, _) = walk(&client, &lib, Index::AllPhotos).await;
    assert_eq!(after.len(), assets.len() - 1);
    assert!(after.iter().all(|a| a.asset.id != victim.asset.id));
    let (trash, _) = walk(&client, &lib, Index::RecentlyDeleted).await;
    assert!(
        trash
            .iter()
            .any(|a| a.asset.id == victim.asset.id && a.asset.deleted)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_unsigned_calls_and_adp_are_typed() {
    let (sim, client) = start(config(50)).await;
    let lib = Library::primary();
    match client
        .zone_changes(&lib, Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
        .await
        .expect("outcome")
    {
        ZoneChanges::TokenRejected { code, .. } => assert_eq!(code, "BAD_REQUEST"),
        other => panic!("garbage token accepted: {other:?}"),
    }
    let token = sim
        .state()
        .library
        .zone_token("PrimarySync")
        .expect("token");
    sim.state().faults.set(
        FaultKind::TokenExpire,
        FaultRule {
            p: 1.0,
            ..FaultRule::default()
        },
    );
    assert!(matches!(
        client
            .zone_changes(&lib, Some(&token))
            .await
            .expect("outcome"),
        ZoneChanges::TokenRejected { .. }
    ));
    sim.state().faults.clear();
    assert!(matches!(
        client
            .zone_changes(&lib, Some(&token))
            .await
            .expect("outcome"),
        ZoneChanges::Page(_)
    ));

    // A database token is not a zone token.
    let db = client
        .database_changes(Database::Private, None)
        .await
        .expect("db changes");
    let db_token = db.sync_token.expect("db token");
    assert!(matches!(
        client
            .zone_changes(&lib, Some(&db_token))
            .await
            .expect("outcome"),
        ZoneChanges::TokenRejected { .. }
    ));

    // No session: the typed variant, for the caller to sign in again.
    let unsigned = client_for(sim.endpoint());
    let err = unsigned.indexing_state(&lib).await.expect_err("refused");
    assert!(
        matches!(err, CloudKitError::SessionExpired { status: 401, .. }),
        "{err:?}"
    );
    sim.shutdown().await;

    let (sim, client) = start(SimConfig {
        adp: true,
        ..config(20)
    })
    .await;
    let err = client.indexing_state(&lib).await.expect_err("ADP");
    assert!(
        matches!(err, CloudKitError::WebAccessDisabled { .. }),
        "{err:?}"
    );
    let mut walk = client.walk(&lib, Index::AllPhotos, WalkOptions::default());
    while walk.next_page().await.is_some() {}
    assert!(matches!(
        walk.finish().await,
        Err(CloudKitError::WebAccessDisabled { .. })
    ));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_fault_gives_the_typed_variant() {
    let (sim, client) = start(config(50)).await;
    sim.state().faults.set(
        FaultKind::SessionExpire,
        FaultRule {
            p: 1.0,
            ..FaultRule::default()
        },
    );
    let err = client
        .indexing_state(&Library::primary())
        .await
        .expect_err("expired");
    assert!(err.needs_reauthentication(), "{err:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_library_is_listed_and_enumerated() {
    let (sim, client) = start(SimConfig {
        shared_library: true,
        shared_assets: 40,
        ..config(30)
    })
    .await;
    let libraries = client.list_libraries().await.expect("libraries");
    let shared = libraries
        .iter()
        .find(|l| l.zone.starts_with("SharedSync-"))
        .expect("shared library listed")
        .clone();
    assert!(
        client
            .indexing_state(&shared)
            .await
            .expect("state")
            .is_finished()
    );
    let expected = manifest(&sim, &shared.zone);
    let expected = by_asset(&expected);
    let mut seen = HashMap::new();
    for index in [Index::AllPhotos, Index::Hidden, Index::RecentlyDeleted] {
        for a in walk(&client, &shared, index).await.0 {
            seen.insert(a.asset.id.clone(), a);
        }
    }
    assert_eq!(seen.len(), expected.len());
    for (id, lines) in &expected {
        assert_matches_manifest(&seen[id], lines);
    }
    // Shared zones have no album index: an empty album list, not an error.
    assert!(
        client
            .list_albums(&shared)
            .await
            .expect("albums")
            .albums
            .is_empty()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_given_its_count_sends_no_count_request_and_lists_everything() {
    let (sim, client) = start(config(700)).await;
    let lib = Library::primary();
    let (expected, _) = walk(&client, &lib, Index::AllPhotos).await;
    let counted = client.count(&lib, &Index::AllPhotos).await.expect("count");
    assert_eq!(counted.count, Some(expected.len() as u64));
    let counts_path =
        "/database/1/com.apple.photos.cloud/production/private/internal/records/query/batch";
    let before = sim.state().stats.count(counts_path);

    // A count of another index is ignored: the walk counts for itself.
    let other = icloudpd_rs::cloudkit::IndexCount {
        index: Index::Hidden,
        ..counted.clone()
    };
    for (given, count_requests) in [(other, 1), (counted, 0)] {
        let start = sim.state().stats.count(counts_path);
        let options = WalkOptions {
            count: Some(given),
            ..WalkOptions::default()
        };
        let mut w = client.walk(&lib, Index::AllPhotos, options);
        let mut ids = Vec::new();
        while let Some(page) = w.next_page().await {
            ids.extend(page.assets.into_iter().map(|a| a.asset.id));
        }
        w.finish().await.expect("walk completes");
        assert_eq!(sim.state().stats.count(counts_path) - start, count_requests);
        let mut want: Vec<String> = expected.iter().map(|a| a.asset.id.clone()).collect();
        ids.sort();
        want.sort();
        assert_eq!(ids, want);
    }
    assert!(sim.state().stats.count(counts_path) > before);
    sim.shutdown().await;
}

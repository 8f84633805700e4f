//! The client end to end against a local server replaying recorded Apple answers.

use crate::support;

use std::collections::HashMap;

use icloudpd_rs::cloudkit::{Database, Index, ListedAsset, Record, WalkOptions, parse_records};
use icloudpd_rs::model::Library;
use support::{client_for, load_cassette, replay};

/// The assets of the recorded whole-library page of a zone, parsed directly.
fn recorded_page(cassette: &str, db: &str) -> Vec<ListedAsset> {
    for it in load_cassette(cassette) {
        let Some((d, path)) = it.cloudkit_call() else {
            continue;
        };
        if d != db || path != "records/query" || !it.request_body.contains("startRank") {
            continue;
        }
        let json = it.response_json().expect("json");
        let zone = it.request_json().expect("json")["zoneID"]["zoneName"]
            .as_str()
            .expect("zone")
            .to_string();
        let records: Vec<Record> =
            serde_json::from_value(json["records"].clone()).expect("records");
        return parse_records(records, &zone).assets;
    }
    panic!("no listing page for {db} in {cassette}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_library_lists_counts_and_enumerates() {
    let server = replay(&["listing_photos.yml"]).await;
    let client = client_for(&server.url());

    let libraries = client.list_libraries().await.expect("libraries");
    let zones: Vec<(&str, &str)> = libraries
        .iter()
        .map(|l| (l.database.as_str(), l.zone.as_str()))
        .collect();
    assert_eq!(
        zones,
        vec![
            ("private", "PrimarySync"),
            ("shared", "SharedSync-00000000-1111-2222-3333-444444444444")
        ]
    );
    assert_eq!(
        libraries[0].owner.as_deref(),
        Some("_bfc6dbbcc77b03e6cebefd28a28f7e2f")
    );
    for lib in &libraries {
        assert!(
            client
                .indexing_state(lib)
                .await
                .expect("indexing")
                .is_finished()
        );
    }

    let primary = &libraries[0];
    let count = client
        .count(primary, &Index::AllPhotosByAddedDate)
        .await
        .expect("count");
    assert_eq!(count.count, Some(33161));
    assert!(count.sync_token.is_some());

    // Walk the recorded index: only rank 0 was recorded; every other rank answers past-the-end.
    let mut walk = client.walk(primary, Index::AllPhotosByAddedDate, WalkOptions::default());
    let mut got: HashMap<String, ListedAsset> = HashMap::new();
    let mut tokens = Vec::new();
    while let Some(page) = walk.next_page().await {
        assert!(page.skipped.is_empty(), "{:?}", page.skipped);
        tokens.push(page.sync_token.clone());
        for a in page.assets {
            assert!(
                got.insert(a.asset.id.clone(), a).is_none(),
                "asset seen twice"
            );
        }
    }
    let progress = walk.progress();
    let summary = walk.finish().await.expect("walk completes");
    assert_eq!(summary.expected, Some(33161));
    assert_eq!(summary.assets_seen, 100);
    assert_eq!(progress.assets_seen, 100);
    // Past rank 0 every page is empty: five in a row end each fetcher, instead of a walk of
    // all 332 counted pages.
    assert!(summary.pages < 40, "{} pages", summary.pages);
    assert!(summary.skipped.is_empty());
    assert_eq!(
        summary.sync_token.as_deref(),
        Some("AQAAAAAAAwmVf//////////Kd+LphRdKGbpJMSeRX5Td")
    );
    assert!(tokens.iter().all(|t| t.is_some()));

    let expected = recorded_page("listing_photos.yml", "private");
    assert_eq!(expected.len(), 100);
    for e in &expected {
        assert_eq!(
            got.get(&e.asset.id),
            Some(e),
            "asset {} differs",
            e.asset.id
        );
    }

    // The shared library.
    let shared = &libraries[1];
    let mut walk = client.walk(shared, Index::AllPhotosByAddedDate, WalkOptions::default());
    let mut shared_assets = Vec::new();
    while let Some(page) = walk.next_page().await {
        shared_assets.extend(page.assets);
    }
    let summary = walk.finish().await.expect("shared walk");
    assert_eq!(summary.expected, Some(1));
    assert_eq!(shared_assets, recorded_page("listing_photos.yml", "shared"));

    // The recorded delete answers `{}`: accepted.
    let modified = client
        .move_to_recently_deleted(
            primary,
            "F2A23C38-0020-42FE-A273-2923ADE3CAED",
            Some("49lh"),
        )
        .await
        .expect("delete");
    assert_eq!(modified.change_tag, None);

    let log = server.log.lock().expect("log");
    assert!(
        log.unmatched.is_empty(),
        "unrecorded calls: {:?}",
        log.unmatched
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_album_list() {
    let server = replay(&["listing_albums.yml"]).await;
    let client = client_for(&server.url());
    let listing = client
        .list_albums(&Library::primary())
        .await
        .expect("albums");
    assert_eq!(listing.albums.len(), 16);
    assert!(listing.skipped.is_empty());
    assert!(listing.sync_token.is_some());
    let names: Vec<&str> = listing.albums.iter().map(|a| a.name.as_str()).collect();
    assert!(names.contains(&"Garage vorher/nachher") && names.contains(&"Taufe Fotos"));
    assert!(listing.albums.iter().all(|a| a.zone == "PrimarySync"));
    let shared_zones = client
        .list_zones(Database::Shared)
        .await
        .expect("shared zones");
    assert_eq!(shared_zones.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_recently_deleted_walk() {
    let server = replay(&["autodelete_photos.yml"]).await;
    let client = client_for(&server.url());
    // The recording counted the legacy index, not Recently Deleted: the walk probes until a
    // short page instead and still finds all 16.
    let mut walk = client.walk(
        &Library::primary(),
        Index::RecentlyDeleted,
        WalkOptions::default(),
    );
    let mut n = 0;
    while let Some(page) = walk.next_page().await {
        assert!(page.assets.iter().all(|a| a.asset.deleted));
        n += page.assets.len();
    }
    let summary = walk.finish().await.expect("walk");
    assert_eq!(summary.expected, None);
    assert_eq!(n, 16);
    assert_eq!(summary.pages, 1);
}

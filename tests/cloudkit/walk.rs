//! Streaming enumeration and the album tree against synthetic servers with awkward behaviour:
//! counts that are wrong, pairs split across pages, empty pages inside an index, per-record
//! errors, folders and continuation markers.

use crate::scripted;
use crate::support;

use std::collections::{HashMap, HashSet};

use icloudpd_rs::cloudkit::{CloudKitClient, Index, WalkOptions, WalkSummary};
use icloudpd_rs::model::Library;
use scripted::{Reply, asset_json, count_answer, master_json, page_records, serve, start_rank};
use serde_json::{Value, json};
use support::client_for;

async fn walk_all(
    client: &CloudKitClient,
    parallelism: usize,
) -> (Vec<String>, WalkSummary, Vec<String>) {
    let options = WalkOptions {
        parallelism,
        ..WalkOptions::default()
    };
    let mut walk = client.walk(&Library::primary(), Index::AllPhotos, options);
    let mut ids = Vec::new();
    let mut skipped = Vec::new();
    while let Some(page) = walk.next_page().await {
        assert_eq!(page.sync_token.as_deref(), Some("PAGE-TOKEN"));
        ids.extend(page.assets.into_iter().map(|a| a.asset.id));
        skipped.extend(page.skipped.into_iter().map(|s| s.record_name));
    }
    let summary = walk.finish().await.expect("walk completes");
    (ids, summary, skipped)
}

fn expect_all(ids: &[String], total: u64) {
    let set: HashSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "an asset was handed over twice");
    assert_eq!(ids.len() as u64, total);
    for i in 0..total {
        assert!(set.contains(&scripted::master_name(i)), "asset {i} missing");
    }
}

/// A server for an index of `total` assets that reports `count`.
async fn index_server(total: u64, count: Option<u64>) -> scripted::ScriptedServer {
    serve(move |call, body, _| match call {
        "internal/records/query/batch" => match count {
            Some(c) => Reply::Json(count_answer(c)),
            None => Reply::Json(json!({"batch": [{"records": []}]})),
        },
        "records/query" => {
            let limit = body["resultsLimit"].as_u64().unwrap_or(200);
            Reply::Json(json!({"records": page_records(start_rank(body), limit, total), "syncToken": "PAGE-TOKEN"}))
        }
        other => panic!("unexpected call {other}"),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_count_parallel_ranges_cover_every_asset_once() {
    let server = index_server(1234, Some(1234)).await;
    let client = client_for(&server.url());
    let (ids, summary, skipped) = walk_all(&client, 4).await;
    expect_all(&ids, 1234);
    assert!(skipped.is_empty() && summary.skipped.is_empty());
    assert_eq!(summary.expected, Some(1234));
    assert_eq!(summary.assets_seen, 1234);
    // 13 pages hold the index; the last range probes once past the end only if its page is full.
    assert_eq!(summary.pages, 13);
    assert_eq!(summary.sync_token.as_deref(), Some("TOKEN-AT-COUNT"));
    assert_eq!(server.calls(), 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finishing_before_reading_every_page_is_not_a_complete_listing() {
    let server = index_server(1234, Some(1234)).await;
    let client = client_for(&server.url());
    let mut walk = client.walk(
        &Library::primary(),
        Index::AllPhotos,
        WalkOptions::default(),
    );
    assert!(walk.next_page().await.is_some());
    let err = walk.finish().await.expect_err("incomplete");
    assert!(err.to_string().contains("incomplete"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undercount_is_repaired_by_tail_probing() {
    let server = index_server(1234, Some(1000)).await;
    let client = client_for(&server.url());
    let (ids, summary, _) = walk_all(&client, 4).await;
    expect_all(&ids, 1234);
    assert_eq!(summary.expected, Some(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overcount_and_missing_count_lose_nothing() {
    for count in [Some(1500), None, Some(0)] {
        let server = index_server(1234, count).await;
        let client = client_for(&server.url());
        let (ids, summary, _) = walk_all(&client, 6).await;
        expect_all(&ids, 1234);
        assert_eq!(summary.expected, count);
    }
    // An exact multiple of the page size ends with one empty probe.
    let server = index_server(300, Some(300)).await;
    let client = client_for(&server.url());
    let (ids, summary, _) = walk_all(&client, 8).await;
    expect_all(&ids, 300);
    assert_eq!(summary.pages, 4);
}

/// A count far above the content (a billion for 250 assets) costs a few empty pages per
/// fetcher, not a walk of every counted rank (it used to walk 500,000 empty pages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_count_ends_at_the_content() {
    let server = index_server(250, Some(1_000_000_000)).await;
    let client = client_for(&server.url());
    let (ids, summary, _) = walk_all(&client, 6).await;
    expect_all(&ids, 250);
    assert!(summary.pages <= 6 * 6, "{} pages", summary.pages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_split_across_pages_are_joined() {
    const TOTAL: u64 = 950;
    // Each page carries the masters of its ranks but the CPLAsset of its last rank moves to the
    // next page, as a server that splits pairs would do.
    let server = serve(|call, body, _| match call {
        "internal/records/query/batch" => Reply::Json(count_answer(TOTAL)),
        _ => {
            let start = start_rank(body);
            let end = (start + 100).min(TOTAL);
            let mut records: Vec<Value> = (start.min(TOTAL)..end).map(master_json).collect();
            if start > 0 && start <= TOTAL {
                records.push(asset_json(start - 1));
            }
            let last_kept = if end == TOTAL {
                end
            } else {
                end.saturating_sub(1)
            };
            records.extend((start.min(TOTAL)..last_kept).map(asset_json));
            Reply::Json(json!({"records": records, "syncToken": "PAGE-TOKEN"}))
        }
    })
    .await;
    let client = client_for(&server.url());
    let (ids, summary, skipped) = walk_all(&client, 4).await;
    expect_all(&ids, TOTAL);
    assert!(skipped.is_empty());
    assert!(summary.skipped.is_empty(), "{:?}", summary.skipped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_page_inside_the_index_does_not_end_the_walk() {
    let server = serve(|call, body, _| match call {
        "internal/records/query/batch" => Reply::Json(count_answer(1000)),
        _ => {
            let start = start_rank(body);
            let records = if start == 300 {
                vec![]
            } else {
                page_records(start, 200, 1000)
            };
            Reply::Json(json!({"records": records, "syncToken": "PAGE-TOKEN"}))
        }
    })
    .await;
    let client = client_for(&server.url());
    // One range only: the single fetcher must walk past the hole.
    let (ids, _, _) = walk_all(&client, 1).await;
    let set: HashSet<String> = ids.into_iter().collect();
    assert_eq!(set.len(), 900);
    assert!(set.contains(&scripted::master_name(999)));
    assert!(!set.contains(&scripted::master_name(350)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_reported_not_dropped() {
    let server = serve(|call, body, _| match call {
        "internal/records/query/batch" => Reply::Json(count_answer(250)),
        _ => {
            let start = start_rank(body);
            let mut records = page_records(start, 200, 250);
            if start == 0 {
                records.push(json!({"recordName": "REVOKED", "serverErrorCode": "ACCESS_DENIED", "reason": "revoked"}));
                records.push(json!({"recordName": "ORPHAN", "recordType": "CPLMaster", "fields": {}}));
            }
            Reply::Json(json!({"records": records, "syncToken": "PAGE-TOKEN"}))
        }
    })
    .await;
    let client = client_for(&server.url());
    let (ids, summary, skipped) = walk_all(&client, 2).await;
    expect_all(&ids, 250);
    assert_eq!(skipped, vec!["REVOKED".to_string()]);
    let at_end: Vec<&str> = summary
        .skipped
        .iter()
        .map(|s| s.record_name.as_str())
        .collect();
    assert_eq!(at_end, vec!["ORPHAN"]);
    assert!(summary.skipped[0].reason.contains("without its CPLAsset"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_mid_walk_fails_the_walk_with_the_typed_error() {
    let server = serve(|call, body, _| match call {
        "internal/records/query/batch" => Reply::Json(count_answer(2000)),
        _ if start_rank(body) == 700 => Reply::Full(401, vec![], "{}".into()),
        _ => Reply::Json(json!({"records": page_records(start_rank(body), 200, 2000), "syncToken": "PAGE-TOKEN"})),
    })
    .await;
    let client = client_for(&server.url());
    let mut walk = client.walk(
        &Library::primary(),
        Index::AllPhotos,
        WalkOptions::default(),
    );
    while walk.next_page().await.is_some() {}
    let err = walk.finish().await.expect_err("walk fails");
    assert!(err.needs_reauthentication(), "{err:?}");
}

/// Album records: folders (albumType 3) whose children carry `parentId`.
fn album(id: &str, name: &str, album_type: i64, parent: Option<&str>, position: i64) -> Value {
    use base64::Engine as _;
    let mut fields = json!({
        "albumNameEnc": {"value": base64::engine::general_purpose::STANDARD.encode(name), "type": "ENCRYPTED_BYTES"},
        "albumType": {"value": album_type, "type": "INT64"},
        "position": {"value": position, "type": "INT64"},
    });
    if let Some(p) = parent {
        fields["parentId"] = json!({"value": p, "type": "STRING"});
    }
    json!({"recordName": id, "recordType": "CPLAlbum", "fields": fields, "deleted": false})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn album_tree_follows_folders_and_continuation_markers() {
    let server = serve(|call, body, _| {
        assert_eq!(call, "records/query");
        assert_eq!(body["query"]["recordType"], "CPLAlbumByPositionLive");
        let parent = body["query"]["filterBy"][0]["fieldValue"]["value"].as_str().map(str::to_string);
        let marker = body["continuationMarker"].as_str().map(str::to_string);
        let (records, next) = match (parent.as_deref(), marker.as_deref()) {
            (None, None) => (
                vec![
                    json!({"recordName": "----Root-Folder----", "recordType": "CPLAlbum", "fields": {"albumType": {"value": 3}}}),
                    album("TRIPS", "Trips", 3, None, 10),
                    album("A1", "Été à Zürich", 0, None, 20),
                ],
                Some("page2"),
            ),
            (None, Some("page2")) => (
                vec![
                    album("A2", "Garage vorher/nachher", 0, None, 30),
                    json!({"recordName": "OLD", "recordType": "CPLAlbum", "fields": {
                        "albumNameEnc": {"value": "T2xk"}, "albumType": {"value": 0}, "isDeleted": {"value": true}}}),
                ],
                None,
            ),
            (Some("TRIPS"), None) => (
                vec![album("Y2020", "2020", 3, Some("TRIPS"), 1), album("ROME", "Rome", 0, Some("TRIPS"), 2)],
                None,
            ),
            (Some("Y2020"), None) => (vec![album("SKI", "Ski", 0, None, 1)], None),
            other => panic!("unexpected album query {other:?}"),
        };
        let mut answer = json!({"records": records, "syncToken": "AT"});
        if let Some(n) = next {
            answer["continuationMarker"] = json!(n);
        }
        Reply::Json(answer)
    })
    .await;
    let client = client_for(&server.url());
    let listing = client
        .list_albums(&Library::primary())
        .await
        .expect("albums");
    let by_id: HashMap<&str, &icloudpd_rs::model::Album> =
        listing.albums.iter().map(|a| (a.id.as_str(), a)).collect();
    assert_eq!(listing.albums.len(), 7);
    assert!(by_id["TRIPS"].is_folder && by_id["TRIPS"].parent_id.is_none());
    assert_eq!(by_id["Y2020"].parent_id.as_deref(), Some("TRIPS"));
    assert!(by_id["Y2020"].is_folder);
    assert_eq!(by_id["ROME"].parent_id.as_deref(), Some("TRIPS"));
    // A child without its own parentId field gets the folder it was listed under.
    assert_eq!(by_id["SKI"].parent_id.as_deref(), Some("Y2020"));
    assert_eq!(by_id["A1"].name, "Été à Zürich");
    assert_eq!(by_id["A2"].name, "Garage vorher/nachher");
    assert!(by_id["OLD"].deleted);
    assert!(!by_id.contains_key("----Root-Folder----"));
    assert_eq!(server.calls(), 4);
}

//! The simulator's CloudKit listing over HTTP: a 100,000-asset walk by many fetchers, page
//! limits, directions, desired keys and the end of a listing; zones, database changes and
//! lookups.

use crate::support;

use std::collections::{HashMap, HashSet};

use icloudpd_rs::sim::SimConfig;
use icloudpd_rs::sim::library::ManifestOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{
    ALL, Client, PRIMARY, config, filename, int, pairs, record_name, start, without_download_urls,
};

/// The fields the big listing test checks (keeps a 100,000-asset walk quick in debug builds).
const KEYS: &[&str] = &[
    "resOriginalRes",
    "filenameEnc",
    "masterRef",
    "assetDate",
    "addedDate",
    "isFavorite",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_assets_paged_by_20_fetchers_arrive_once_and_match_the_manifest() {
    let (sim, c) = start(config(100_000)).await;
    let count = c
        .counts(PRIMARY, &["CPLAssetByAssetDateWithoutHiddenOrDeleted"])
        .await[0] as usize;
    assert!(count > 90_000, "count {count}");
    // kei's split (protocol notes 5.4): 20 fetchers on page boundaries.
    let fetchers = 20;
    let chunk = count.div_ceil(fetchers).div_ceil(100) * 100;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..fetchers {
        let c: Client = c.clone();
        tasks.spawn(async move {
            let (lo, hi) = (i * chunk, ((i + 1) * chunk).min(count));
            let mut got = Vec::new();
            let mut rank = lo;
            while rank < hi {
                let page = c.page_keys(PRIMARY, ALL, &[], rank, 200, Some(KEYS)).await;
                let p = pairs(&page);
                assert!(!p.is_empty(), "empty page at rank {rank} of {count}");
                assert_eq!(
                    page.get("continuationMarker").is_some(),
                    rank + p.len() < count
                );
                for (m, a) in p {
                    if rank < hi {
                        got.push((rank, m, a));
                    }
                    rank += 1;
                }
            }
            got
        });
    }
    let mut by_rank: Vec<(usize, Value, Value)> = Vec::with_capacity(count);
    while let Some(r) = tasks.join_next().await {
        by_rank.extend(r.expect("fetcher"));
    }
    by_rank.sort_by_key(|(r, ..)| *r);
    assert_eq!(by_rank.len(), count);
    assert!(
        by_rank.iter().enumerate().all(|(i, (r, ..))| i == *r),
        "ranks dense and unique"
    );
    let ids: HashSet<String> = by_rank.iter().map(|(_, m, _)| record_name(m)).collect();
    assert_eq!(ids.len(), count, "every asset exactly once");
    for w in by_rank.windows(2) {
        assert!(
            int(&w[0].2, "assetDate") >= int(&w[1].2, "assetDate"),
            "newest first"
        );
    }

    let manifest = sim
        .state()
        .library
        .manifest(&ManifestOptions {
            zone: Some(PRIMARY.into()),
            sha256: false,
        })
        .expect("manifest");
    let expected: HashMap<&str, _> = manifest
        .iter()
        .filter(|e| e.version == "original" && !e.is_deleted && !e.is_hidden)
        .map(|e| (e.asset_id.as_str(), e))
        .collect();
    assert_eq!(expected.len(), count);
    for (_, m, a) in &by_rank {
        let e = expected
            .get(record_name(m).as_str())
            .expect("listed asset is in the manifest");
        let res = &m["fields"]["resOriginalRes"]["value"];
        assert_eq!(res["size"].as_u64(), Some(e.size));
        assert_eq!(res["fileChecksum"].as_str(), Some(e.asset_id.as_str()));
        assert_eq!(filename(m), e.filename);
        assert_eq!(int(a, "assetDate"), Some(e.asset_date));
        assert_eq!(int(a, "addedDate"), Some(e.added_date));
        assert_eq!(a["recordName"].as_str(), Some(e.asset_record.as_str()));
        assert_eq!(int(a, "isFavorite"), Some(i64::from(e.is_favorite)));
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_respect_limits_directions_desired_keys_and_the_end() {
    let (sim, c) = start(config(250)).await;
    let count = c
        .counts(PRIMARY, &["CPLAssetByAssetDateWithoutHiddenOrDeleted"])
        .await[0] as usize;
    let page = c.page(PRIMARY, ALL, &[], 0, 200).await;
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 200);
    assert!(
        records[..100]
            .iter()
            .all(|r| r["recordType"] == "CPLMaster"),
        "masters first"
    );
    assert!(records[100..].iter().all(|r| r["recordType"] == "CPLAsset"));
    for i in 0..100 {
        assert_eq!(
            records[100 + i]["fields"]["masterRef"]["value"]["recordName"],
            records[i]["recordName"],
            "same order"
        );
    }
    assert!(page["continuationMarker"].is_string());
    let token = page["syncToken"].as_str().unwrap().to_string();
    // Past the end: empty records and the same token.
    let end = c.page(PRIMARY, ALL, &[], count, 200).await;
    assert_eq!(end, json!({"records": [], "syncToken": token}));
    // A short last page has no continuationMarker.
    let last = c.page(PRIMARY, ALL, &[], count - 5, 200).await;
    assert_eq!(pairs(&last).len(), 5);
    assert!(last.get("continuationMarker").is_none());
    // resultsLimit counts records; more than 200 is capped; 1 still gives one pair.
    assert_eq!(pairs(&c.page(PRIMARY, ALL, &[], 0, 10).await).len(), 5);
    assert_eq!(pairs(&c.page(PRIMARY, ALL, &[], 0, 5000).await).len(), 100);
    assert_eq!(pairs(&c.page(PRIMARY, ALL, &[], 0, 1).await).len(), 1);
    // DESCENDING walks the same index oldest first.
    let body = json!({"query": {"recordType": ALL, "filterBy": [
            {"fieldName": "direction", "fieldValue": {"type": "STRING", "value": "DESCENDING"}, "comparator": "EQUALS"},
            {"fieldName": "startRank", "fieldValue": {"type": "INT64", "value": 0}, "comparator": "EQUALS"}]},
        "resultsLimit": 2, "zoneID": {"zoneName": PRIMARY}});
    let oldest = c.ok("private", "records/query", &body).await;
    let newest_last = c.page(PRIMARY, ALL, &[], count - 1, 2).await;
    assert_eq!(
        oldest["records"][0]["recordName"],
        newest_last["records"][0]["recordName"]
    );
    // desiredKeys: only those fields.
    let body = json!({"query": {"recordType": ALL, "filterBy": [
            {"fieldName": "startRank", "fieldValue": {"type": "INT64", "value": 0}, "comparator": "EQUALS"}]},
        "resultsLimit": 1, "zoneID": {"zoneName": PRIMARY}, "desiredKeys": ["masterRef", "resOriginalRes", "isHidden"]});
    let v = c.ok("private", "records/query", &body).await;
    for r in v["records"].as_array().unwrap() {
        let keys: Vec<&String> = r["fields"].as_object().unwrap().keys().collect();
        let expect: &[&str] = if r["recordType"] == "CPLMaster" {
            &["resOriginalRes"]
        } else {
            &["masterRef", "isHidden"]
        };
        assert_eq!(keys.len(), expect.len(), "{keys:?}");
        assert!(keys.iter().all(|k| expect.contains(&k.as_str())));
    }
    // Unknown list type or smart album: HTTP 200 with a top-level BAD_REQUEST.
    for body in [
        json!({"query": {"recordType": "CPLNope"}, "zoneID": {"zoneName": PRIMARY}}),
        json!({"query": {"recordType": "CPLAssetAndMasterInSmartAlbumByAssetDate", "filterBy": [
            {"fieldName": "smartAlbum", "fieldValue": {"type": "STRING", "value": "SELFIES"}, "comparator": "EQUALS"}]},
            "zoneID": {"zoneName": PRIMARY}}),
    ] {
        let (status, v) = c.post("private", "records/query", &body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["serverErrorCode"], "BAD_REQUEST", "{v}");
        assert!(v["reason"].as_str().unwrap().len() > 5);
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_database_changes_and_lookup() {
    let (sim, c) = start(SimConfig {
        shared_library: true,
        ..config(60)
    })
    .await;
    let shared_name = sim.state().library.zone_names()[1].clone();
    let zones = c.ok("private", "zones/list", &json!({})).await;
    let listed: Vec<&str> = zones["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["zoneID"]["zoneName"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [PRIMARY, shared_name.as_str()]);
    assert_eq!(zones["moreComing"], false);
    assert!(
        zones["zones"][0]["zoneID"]["ownerRecordName"]
            .as_str()
            .unwrap()
            .starts_with('_')
    );
    assert_eq!(
        c.ok("shared", "zones/list", &json!({})).await["zones"],
        json!([])
    );

    // changes/database: all zones, then none, then only the changed one.
    let first = c.ok("private", "changes/database", &json!({})).await;
    assert_eq!(first["zones"].as_array().unwrap().len(), 2);
    assert_eq!(first["moreComing"], false);
    let token = first["syncToken"].as_str().unwrap().to_string();
    let none = c
        .ok("private", "changes/database", &json!({"syncToken": token}))
        .await;
    assert_eq!(none["zones"], json!([]));
    assert!(none["syncToken"].is_string() && none["moreComing"] == false);
    let shared_asset = c.list_all(&shared_name, ALL, &[]).await[0].0.clone();
    let (status, _) = c
        .mutate(&json!({"op": "favorite", "zone": shared_name, "asset_ids": [record_name(&shared_asset)]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let changed = c
        .ok("private", "changes/database", &json!({"syncToken": token}))
        .await;
    let zones: Vec<&str> = changed["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["zoneID"]["zoneName"].as_str().unwrap())
        .collect();
    assert_eq!(zones, [shared_name.as_str()]);
    let zone_token = changed["zones"][0]["syncToken"].as_str().unwrap();
    assert_eq!(
        Some(zone_token.to_string()),
        sim.state().library.zone_token(&shared_name)
    );
    // A zone token is not a database token.
    let (status, v) = c
        .post(
            "private",
            "changes/database",
            &json!({"syncToken": zone_token}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["serverErrorCode"], "BAD_REQUEST");

    // Shared records carry contributors.
    assert_eq!(
        shared_asset["fields"]["contributors"]["type"],
        "REFERENCE_LIST"
    );

    // records/lookup: full current records by master or asset name, errors per record.
    let (m, a) = c.list_all(PRIMARY, ALL, &[]).await[3].clone();
    let body = json!({"records": [{"recordName": record_name(&m)}, {"recordName": record_name(&a)}, {"recordName": "nope"}],
        "zoneID": {"zoneName": PRIMARY}});
    let v = c.ok("private", "records/lookup", &body).await;
    assert_eq!(v["records"][0]["recordType"], "CPLMaster");
    // The URL is signed anew (its expiry moves with the clock): compare the rest.
    assert!(v["records"][0]["fields"]["resOriginalRes"]["value"]["downloadURL"].is_string());
    assert_eq!(
        without_download_urls(&v["records"][0]["fields"]["resOriginalRes"]),
        without_download_urls(&m["fields"]["resOriginalRes"])
    );
    assert_eq!(v["records"][1]["recordType"], "CPLAsset");
    assert_eq!(
        v["records"][1]["fields"]["assetDate"],
        a["fields"]["assetDate"]
    );
    assert_eq!(v["records"][2]["serverErrorCode"], "NOT_FOUND");
    sim.shutdown().await;
}

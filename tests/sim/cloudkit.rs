//! The simulator's CloudKit endpoints over HTTP: listing, smart folders, albums, counts,
//! lookups, and the error answers (unsigned, malformed, ADP, unknown zone or index).

use crate::support;

use std::collections::{HashMap, HashSet};

use icloudpd_rs::sim::SimConfig;
use icloudpd_rs::sim::library::ManifestOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Client, config, filename, pairs, start};

const PRIMARY: &str = "PrimarySync";
const ALL: &str = "CPLAssetAndMasterByAssetDateWithoutHiddenOrDeleted";
/// The fields the big listing test checks (keeps a 100,000-asset walk quick in debug builds).
const KEYS: &[&str] = &[
    "resOriginalRes",
    "filenameEnc",
    "masterRef",
    "assetDate",
    "addedDate",
    "isFavorite",
];

fn int(record: &Value, field: &str) -> Option<i64> {
    record["fields"][field]["value"].as_i64()
}

fn name(record: &Value) -> String {
    record["recordName"]
        .as_str()
        .expect("recordName")
        .to_string()
}

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
    let ids: HashSet<String> = by_rank.iter().map(|(_, m, _)| name(m)).collect();
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
            .get(name(m).as_str())
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

/// The smart folders and the rule their members must satisfy (read from the records).
/// A membership rule over a (master, asset) pair.
type Rule = Box<dyn Fn(&Value, &Value) -> bool>;

fn smart_rules() -> Vec<(&'static str, &'static str, Rule)> {
    let movie = |m: &Value| {
        matches!(
            m["fields"]["itemType"]["value"].as_str(),
            Some("com.apple.quicktime-movie" | "public.mpeg-4")
        )
    };
    vec![
        (
            "FAVORITE",
            "Favorite",
            Box::new(|_, a| int(a, "isFavorite") == Some(1)),
        ),
        (
            "VIDEO",
            "Video",
            Box::new(move |m, a| movie(m) && int(a, "assetSubtype") == Some(0)),
        ),
        (
            "LIVE",
            "Live",
            Box::new(|_, a| int(a, "assetSubtypeV2") == Some(2)),
        ),
        (
            "SCREENSHOT",
            "Screenshot",
            Box::new(|_, a| int(a, "assetSubtypeV2") == Some(3)),
        ),
        (
            "PANORAMA",
            "Panorama",
            Box::new(|_, a| int(a, "assetSubtype") == Some(1)),
        ),
        (
            "TIMELAPSE",
            "Timelapse",
            Box::new(|_, a| int(a, "assetSubtype") == Some(101)),
        ),
        (
            "SLOMO",
            "Slomo",
            Box::new(|_, a| int(a, "assetSubtype") == Some(100)),
        ),
        (
            "DEPTH",
            "Depth",
            Box::new(|_, a| int(a, "adjustmentRenderType").unwrap_or(0) & 2 != 0),
        ),
        (
            "EXPOSURE",
            "Exposure",
            Box::new(|_, a| int(a, "adjustmentRenderType").unwrap_or(0) & 4 != 0),
        ),
        ("ANIMATED", "Animated", Box::new(|_, _| false)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_folders_albums_and_counts_equal_the_manifest_view() {
    let (sim, c) = start(config(3000)).await;
    let all = c.list_all(PRIMARY, ALL, &[]).await;
    let hidden = c
        .list_all(PRIMARY, "CPLAssetAndMasterHiddenByAssetDate", &[])
        .await;
    let deleted = c
        .list_all(PRIMARY, "CPLAssetAndMasterDeletedByExpungedDate", &[])
        .await;
    let manifest = sim
        .state()
        .library
        .manifest(&ManifestOptions {
            zone: None,
            sha256: false,
        })
        .unwrap();
    let originals: Vec<_> = manifest
        .iter()
        .filter(|e| e.version == "original")
        .collect();
    // The three indexes partition the library.
    let mut seen = HashSet::new();
    for (m, a) in all.iter().chain(&hidden).chain(&deleted) {
        assert!(seen.insert(name(m)), "{} in two indexes", name(m));
        let _ = a;
    }
    assert_eq!(seen.len(), originals.len());
    assert!(
        hidden
            .iter()
            .all(|(_, a)| int(a, "isHidden") == Some(1) && int(a, "isDeleted").is_none())
    );
    assert!(
        deleted
            .iter()
            .all(|(m, a)| int(a, "isDeleted") == Some(1) && int(m, "isDeleted") == Some(1))
    );
    for w in deleted.windows(2) {
        assert!(
            int(&w[0].1, "dateExpunged") >= int(&w[1].1, "dateExpunged"),
            "most recently deleted first"
        );
    }
    assert_eq!(
        originals
            .iter()
            .filter(|e| e.is_hidden && !e.is_deleted)
            .count(),
        hidden.len()
    );

    let smart = "CPLAssetAndMasterInSmartAlbumByAssetDate";
    for (value, count_suffix, rule) in smart_rules() {
        let filter = json!({"fieldName": "smartAlbum", "comparator": "EQUALS", "fieldValue": {"type": "STRING", "value": value}});
        let listed: Vec<String> = c
            .list_all(PRIMARY, smart, &[filter])
            .await
            .iter()
            .map(|(m, _)| name(m))
            .collect();
        let expected: Vec<String> = all
            .iter()
            .filter(|(m, a)| rule(m, a))
            .map(|(m, _)| name(m))
            .collect();
        assert_eq!(listed, expected, "smart folder {value}");
        let id = format!("CPLAssetInSmartAlbumByAssetDate:{count_suffix}");
        assert_eq!(
            c.counts(PRIMARY, &[&id]).await[0],
            listed.len() as i64,
            "{id}"
        );
        if value != "ANIMATED" {
            assert!(!listed.is_empty(), "{value} is populated");
        }
    }
    let bursts: Vec<String> = c
        .list_all(PRIMARY, "CPLBurstStackAssetAndMasterByAssetDate", &[])
        .await
        .iter()
        .map(|(m, _)| name(m))
        .collect();
    let expected: Vec<String> = all
        .iter()
        .filter(|(_, a)| a["fields"]["burstId"].is_object())
        .map(|(m, _)| name(m))
        .collect();
    assert_eq!(bursts, expected);
    assert_eq!(
        c.counts(PRIMARY, &["CPLAssetBurstStackAssetByAssetDate"])
            .await[0],
        bursts.len() as i64
    );

    // Counts of the whole-library indexes.
    let counts = c
        .counts(
            PRIMARY,
            &[
                "CPLAssetByAssetDateWithoutHiddenOrDeleted",
                "CPLAssetHiddenByAssetDate",
                "CPLAssetDeletedByExpungedDate",
                "CPLAssetByAddedDate",
            ],
        )
        .await;
    assert_eq!(
        counts,
        [all.len(), hidden.len(), deleted.len(), all.len()].map(|n| n as i64)
    );
    let legacy = c
        .list_all(PRIMARY, "CPLAssetAndMasterByAddedDate", &[])
        .await;
    assert_eq!(legacy.len(), all.len());
    for w in legacy.windows(2) {
        assert!(int(&w[0].1, "addedDate") >= int(&w[1].1, "addedDate"));
    }

    // Albums (walking folders) equal the manifest's album names.
    let albums = walk_albums(&c, PRIMARY).await;
    let mut checked = 0;
    for (record, _) in albums
        .iter()
        .filter(|(r, _)| int(r, "albumType") == Some(0) && int(r, "isDeleted").is_none())
    {
        let album_name = album_name(record);
        let parent = json!({"fieldName": "parentId", "comparator": "EQUALS", "fieldValue": {"type": "STRING", "value": name(record)}});
        let listed: HashSet<String> = c
            .list_all(PRIMARY, "CPLContainerRelationLiveByAssetDate", &[parent])
            .await
            .iter()
            .map(|(m, _)| name(m))
            .collect();
        let expected: HashSet<String> = originals
            .iter()
            .filter(|e| !e.is_deleted && !e.is_hidden && e.albums.contains(&album_name))
            .map(|e| e.asset_id.clone())
            .collect();
        assert_eq!(listed, expected, "album {album_name}");
        let id = format!("CPLContainerRelationNotDeletedByAssetDate:{}", name(record));
        assert_eq!(
            c.counts(PRIMARY, &[&id]).await[0],
            listed.len() as i64,
            "{id}"
        );
        checked += 1;
    }
    assert!(checked >= 15, "{checked} albums checked");
    let big = albums
        .iter()
        .find(|(r, _)| album_name(r) == "Everything")
        .expect("big album");
    let id = format!("CPLContainerRelationNotDeletedByAssetDate:{}", name(&big.0));
    assert!(c.counts(PRIMARY, &[&id]).await[0] > 1000);
    sim.shutdown().await;
}

fn album_name(record: &Value) -> String {
    use base64::Engine as _;
    let v = record["fields"]["albumNameEnc"]["value"]
        .as_str()
        .unwrap_or_default();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(v).unwrap()).unwrap()
}

async fn album_page(c: &Client, zone: &str, parent: Option<&str>, marker: Option<&str>) -> Value {
    let mut query = json!({"recordType": "CPLAlbumByPositionLive"});
    if let Some(p) = parent {
        query["filterBy"] = json!([{"fieldName": "parentId", "comparator": "EQUALS", "fieldValue": {"type": "STRING", "value": p}}]);
    }
    let mut body = json!({"query": query, "zoneID": {"zoneName": zone}});
    if let Some(m) = marker {
        body["continuationMarker"] = json!(m);
    }
    c.ok("private", "records/query", &body).await
}

/// Every album record, depth first through folders, with its parent's record name.
async fn walk_albums(c: &Client, zone: &str) -> Vec<(Value, Option<String>)> {
    let mut out = Vec::new();
    let mut stack: Vec<Option<String>> = vec![None];
    while let Some(parent) = stack.pop() {
        let mut marker: Option<String> = None;
        loop {
            let page = album_page(c, zone, parent.as_deref(), marker.as_deref()).await;
            for r in page["records"].as_array().unwrap() {
                if name(r).starts_with("----") {
                    continue;
                }
                assert_eq!(
                    r["fields"]["parentId"]["value"].as_str(),
                    parent.as_deref(),
                    "parentId of {}",
                    name(r)
                );
                if int(r, "albumType") == Some(3) {
                    stack.push(Some(name(r)));
                }
                out.push((r.clone(), parent.clone()));
            }
            marker = page["continuationMarker"].as_str().map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn album_list_has_root_first_folders_deleted_flags_keys_and_paging() {
    let (sim, c) = start(SimConfig {
        shared_library: true,
        ..config(300)
    })
    .await;
    let top = album_page(&c, PRIMARY, None, None).await;
    let records = top["records"].as_array().unwrap();
    assert_eq!(name(&records[0]), "----Root-Folder----");
    assert_eq!(int(&records[0], "albumType"), Some(3));
    assert!(records[0]["fields"].get("albumNameEnc").is_none());
    assert!(
        records
            .iter()
            .all(|r| r["fields"].get("parentId").is_none()),
        "top level only"
    );
    let positions: Vec<i64> = records
        .iter()
        .map(|r| int(r, "position").unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "by position");
    let names: Vec<String> = records[1..].iter().map(album_name).collect();
    assert!(names.contains(&"Garage vorher/nachher".to_string()));
    assert!(names.contains(&"Jörg".to_string()));
    let deleted = records[1..]
        .iter()
        .find(|r| album_name(r) == "Old album (deleted)")
        .unwrap();
    assert_eq!(int(deleted, "isDeleted"), Some(1));
    let trips = records[1..]
        .iter()
        .find(|r| album_name(r) == "Trips")
        .unwrap();
    assert_eq!(int(trips, "albumType"), Some(3));
    let children = album_page(&c, PRIMARY, Some(&name(trips)), None).await;
    let child_names: Vec<String> = children["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(album_name)
        .collect();
    assert_eq!(child_names, ["Été à Zürich 2019", "東京 / Tokyo", "Europe"]);
    // desiredKeys (rclone's).
    let body = json!({"query": {"recordType": "CPLAlbumByPositionLive"}, "zoneID": {"zoneName": PRIMARY},
        "desiredKeys": ["albumNameEnc", "albumType", "parentId", "isDeleted"]});
    let v = c.ok("private", "records/query", &body).await;
    for r in v["records"].as_array().unwrap() {
        for k in r["fields"].as_object().unwrap().keys() {
            assert!(
                ["albumNameEnc", "albumType", "parentId", "isDeleted"].contains(&k.as_str()),
                "{k}"
            );
        }
    }
    // More than 200 albums: continuationMarker paging, nothing lost or repeated.
    let ops: Vec<Value> = (0..230)
        .map(|i| json!({"op": "album_create", "name": format!("Bulk {i}")}))
        .collect();
    assert_eq!(c.mutate(&json!(ops)).await.0, StatusCode::OK);
    let first = album_page(&c, PRIMARY, None, None).await;
    assert_eq!(first["records"].as_array().unwrap().len(), 200);
    let marker = first["continuationMarker"]
        .as_str()
        .expect("marker")
        .to_string();
    let second = album_page(&c, PRIMARY, None, Some(&marker)).await;
    assert!(second.get("continuationMarker").is_none());
    let mut all: Vec<String> = first["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(name)
        .collect();
    all.extend(second["records"].as_array().unwrap().iter().map(name));
    assert_eq!(all.len(), all.iter().collect::<HashSet<_>>().len());
    assert_eq!(all.len(), 1 + names.len() + 230);
    assert_eq!(walk_albums(&c, PRIMARY).await.len(), 22 + 230);
    // Shared zones refuse the album index the way rclone saw it.
    let shared = sim.state().library.zone_names()[1].clone();
    let body =
        json!({"query": {"recordType": "CPLAlbumByPositionLive"}, "zoneID": {"zoneName": shared}});
    let (status, v) = c.post("private", "records/query", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["serverErrorCode"], "BAD_REQUEST");
    assert_eq!(v["reason"], "Index has invalid data");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_forms_batches_in_order_and_unknown_ids() {
    let (sim, c) = start(config(500)).await;
    let albums = walk_albums(&c, PRIMARY).await;
    let jorg = albums
        .iter()
        .find(|(r, _)| album_name(r) == "Jörg")
        .unwrap();
    let album_id = format!(
        "CPLContainerRelationNotDeletedByAssetDate:{}",
        name(&jorg.0)
    );
    let ids = [
        "CPLAssetInSmartAlbumByAssetDate:Live",
        album_id.as_str(),
        "CPLAssetByAssetDateWithoutHiddenOrDeleted",
        "CPLAlbumByPositionLive",
        "CPLAssetInSmartAlbumByAssetDate:Favorite",
    ];
    let counts = c.counts(PRIMARY, &ids).await;
    let lib = &sim.state().library;
    assert_eq!(
        counts[2],
        lib.count(PRIMARY, icloudpd_rs::sim::library::index::IndexId::All)
            .unwrap() as i64
    );
    assert_eq!(counts[3], 18, "live, non-folder albums");
    let again: Vec<i64> = {
        let mut v = Vec::new();
        for id in ids {
            v.push(c.counts(PRIMARY, &[id]).await[0]);
        }
        v
    };
    assert_eq!(counts, again, "batch answers keep request order");
    // The plain records/query form (rclone), with a single object filter.
    let body = json!({"resultsLimit": 1, "query": {"filterBy": {"fieldName": "indexCountID",
        "fieldValue": {"type": "STRING_LIST", "value": [album_id]}, "comparator": "IN"},
        "recordType": "HyperionIndexCountLookup"}, "zoneWide": true, "zoneID": {"zoneName": PRIMARY}});
    let v = c.ok("private", "records/query", &body).await;
    assert_eq!(
        v["records"][0]["fields"]["itemCount"]["value"].as_i64(),
        Some(counts[1])
    );
    assert_eq!(
        v["records"][0]["recordName"].as_str(),
        Some(album_id.as_str())
    );
    assert!(v["syncToken"].is_string());
    // An unknown id errors in its own element; the others still answer.
    let body = json!({"batch": [
        {"resultsLimit": 1, "query": {"filterBy": {"fieldName": "indexCountID", "fieldValue": {"type": "STRING_LIST", "value": ["Bogus"]}, "comparator": "IN"}, "recordType": "HyperionIndexCountLookup"}, "zoneWide": true, "zoneID": {"zoneName": PRIMARY}},
        {"resultsLimit": 1, "query": {"filterBy": {"fieldName": "indexCountID", "fieldValue": {"type": "STRING_LIST", "value": ["CPLAssetHiddenByAssetDate"]}, "comparator": "IN"}, "recordType": "HyperionIndexCountLookup"}, "zoneWide": true, "zoneID": {"zoneName": "Nowhere"}},
        {"resultsLimit": 1, "query": {"filterBy": {"fieldName": "indexCountID", "fieldValue": {"type": "STRING_LIST", "value": ["CPLAssetHiddenByAssetDate"]}, "comparator": "IN"}, "recordType": "HyperionIndexCountLookup"}, "zoneWide": true, "zoneID": {"zoneName": PRIMARY}},
    ]});
    let v = c.ok("private", "internal/records/query/batch", &body).await;
    assert_eq!(v["batch"][0]["serverErrorCode"], "BAD_REQUEST");
    assert_eq!(v["batch"][1]["serverErrorCode"], "ZONE_NOT_FOUND");
    assert!(v["batch"][2]["records"][0]["fields"]["itemCount"]["value"].is_i64());
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
async fn unsigned_malformed_adp_and_unknown_zone_answers() {
    let (sim, c) = start(config(50)).await;
    let query =
        json!({"query": {"recordType": "CheckIndexingState"}, "zoneID": {"zoneName": PRIMARY}})
            .to_string();
    // Unsigned: 401 with the exact body.
    let (status, headers, body) = c.post_raw("private", "records/query", &query, false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["content-type"], "application/json; charset=UTF-8");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"serverErrorCode": "AUTHENTICATION_REQUIRED", "reason": "Invalid global session"})
    );
    // A bad cookie is no better.
    let bad = Client {
        cookie: "X-APPLE-WEBAUTH-TOKEN=forged".into(),
        ..c.clone()
    };
    assert_eq!(
        bad.post_raw("private", "zones/list", "{}", true).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Malformed JSON: 400 with a CloudKit error.
    for junk in ["{\"query\": ", "not json", "[1, 2]"] {
        let (status, headers, body) = c.post_raw("private", "records/query", junk, true).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{junk}");
        assert_eq!(headers["content-type"], "application/json; charset=UTF-8");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["serverErrorCode"], "BAD_REQUEST");
    }
    // Signed: the recorded shape, any query string (none at all here).
    let url = format!("{}{}/private/records/query", c.endpoint, support::BASE);
    let resp = c
        .http
        .post(url)
        .header("Cookie", &c.cookie)
        .body(query.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("x-apple-request-uuid"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["records"][0]["fields"]["state"]["value"], "FINISHED");
    assert_eq!(v["records"][0]["fields"]["progress"]["value"], 100);
    assert!(
        v["records"][0]["recordName"]
            .as_str()
            .unwrap()
            .starts_with('_')
    );
    // Unknown zone: 404 in rclone's shape.
    let body = json!({"query": {"recordType": ALL}, "zoneID": {"zoneName": "SharedSync"}});
    let (status, v) = c.post("private", "records/query", &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["serverErrorCode"], "ZONE_NOT_FOUND");
    assert_eq!(v["reason"], "Zone does not exist");
    sim.shutdown().await;

    // Advanced Data Protection: every private call refused, shared still answers.
    let (sim, c) = start(SimConfig {
        adp: true,
        ..config(10)
    })
    .await;
    for path in [
        "zones/list",
        "records/query",
        "changes/database",
        "internal/records/query/batch",
    ] {
        let (status, v) = c.post("private", path, &json!({})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            v,
            json!({"serverErrorCode": "ACCESS_DENIED", "reason": "private db access disabled for this account"})
        );
    }
    let (status, v) = c.post("shared", "zones/list", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["zones"].is_array());
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
        .mutate(&json!({"op": "favorite", "zone": shared_name, "asset_ids": [name(&shared_asset)]}))
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
    let body = json!({"records": [{"recordName": name(&m)}, {"recordName": name(&a)}, {"recordName": "nope"}],
        "zoneID": {"zoneName": PRIMARY}});
    let v = c.ok("private", "records/lookup", &body).await;
    assert_eq!(v["records"][0]["recordType"], "CPLMaster");
    assert_eq!(
        v["records"][0]["fields"]["resOriginalRes"],
        m["fields"]["resOriginalRes"]
    );
    assert_eq!(v["records"][1]["recordType"], "CPLAsset");
    assert_eq!(
        v["records"][1]["fields"]["assetDate"],
        a["fields"]["assetDate"]
    );
    assert_eq!(v["records"][2]["serverErrorCode"], "NOT_FOUND");
    sim.shutdown().await;
}

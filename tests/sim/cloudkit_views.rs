//! The simulator's CloudKit views over HTTP: smart folders, albums (folders, deletion flags,
//! keys, paging) and counts equal what the library's manifest says.

use crate::support;

use std::collections::HashSet;

use icloudpd_rs::sim::SimConfig;
use icloudpd_rs::sim::library::ManifestOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{ALL, Client, PRIMARY, config, int, record_name, start};

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
        assert!(
            seen.insert(record_name(m)),
            "{} in two indexes",
            record_name(m)
        );
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
            .map(|(m, _)| record_name(m))
            .collect();
        let expected: Vec<String> = all
            .iter()
            .filter(|(m, a)| rule(m, a))
            .map(|(m, _)| record_name(m))
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
        .map(|(m, _)| record_name(m))
        .collect();
    let expected: Vec<String> = all
        .iter()
        .filter(|(_, a)| a["fields"]["burstId"].is_object())
        .map(|(m, _)| record_name(m))
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
        let parent = json!({"fieldName": "parentId", "comparator": "EQUALS", "fieldValue": {"type": "STRING", "value": record_name(record)}});
        let listed: HashSet<String> = c
            .list_all(PRIMARY, "CPLContainerRelationLiveByAssetDate", &[parent])
            .await
            .iter()
            .map(|(m, _)| record_name(m))
            .collect();
        let expected: HashSet<String> = originals
            .iter()
            .filter(|e| !e.is_deleted && !e.is_hidden && e.albums.contains(&album_name))
            .map(|e| e.asset_id.clone())
            .collect();
        assert_eq!(listed, expected, "album {album_name}");
        let id = format!(
            "CPLContainerRelationNotDeletedByAssetDate:{}",
            record_name(record)
        );
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
    let id = format!(
        "CPLContainerRelationNotDeletedByAssetDate:{}",
        record_name(&big.0)
    );
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
                if record_name(r).starts_with("----") {
                    continue;
                }
                assert_eq!(
                    r["fields"]["parentId"]["value"].as_str(),
                    parent.as_deref(),
                    "parentId of {}",
                    record_name(r)
                );
                if int(r, "albumType") == Some(3) {
                    stack.push(Some(record_name(r)));
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
    assert_eq!(record_name(&records[0]), "----Root-Folder----");
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
    let children = album_page(&c, PRIMARY, Some(&record_name(trips)), None).await;
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
        .map(record_name)
        .collect();
    all.extend(
        second["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(record_name),
    );
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
        record_name(&jorg.0)
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

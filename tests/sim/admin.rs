//! The `/_sim/` admin API: manifest, stats, mutate, faults, account, expire, session.

use crate::support;

use std::collections::HashSet;

use icloudpd_rs::sim::SimConfig;
use icloudpd_rs::sim::library::ManifestOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{config, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_streams_json_lines_equal_to_the_library_view() {
    let (sim, c) = start(SimConfig {
        shared_library: true,
        shared_assets: 20,
        ..config(300)
    })
    .await;
    let (status, text) = c.admin_get("manifest").await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let expected = sim
        .state()
        .library
        .manifest(&ManifestOptions {
            zone: None,
            sha256: true,
        })
        .unwrap();
    assert_eq!(lines.len(), expected.len());
    for (line, e) in lines.iter().zip(&expected) {
        assert_eq!(line, &serde_json::to_value(e).unwrap());
    }
    let keys: HashSet<&str> = lines[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "asset_id",
        "version",
        "filename",
        "item_type",
        "file_type",
        "asset_date",
        "added_date",
        "size",
        "sha256",
        "is_deleted",
        "is_hidden",
        "is_favorite",
        "albums",
        "zone",
        "asset_record",
    ] {
        assert!(keys.contains(k), "manifest line lacks {k}");
    }
    assert!(
        lines
            .iter()
            .all(|l| l["sha256"].as_str().is_some_and(|h| h.len() == 64))
    );
    let zones: HashSet<&str> = lines.iter().map(|l| l["zone"].as_str().unwrap()).collect();
    assert_eq!(zones.len(), 2);

    let (_, only_shared) = c
        .admin_get(&format!(
            "manifest?zone={}&sha256=0",
            sim.state().library.zone_names()[1]
        ))
        .await;
    let shared: Vec<Value> = only_shared
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!shared.is_empty());
    assert!(
        shared
            .iter()
            .all(|l| l["zone"] != "PrimarySync" && l["sha256"].is_null())
    );
    let (status, _) = c.admin_get("manifest?zone=Nowhere").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutate_faults_account_session_expire_and_stats() {
    let (sim, c) = start(config(50)).await;
    // Mutations: ids back, bad input named.
    let (status, v) = c.mutate(&json!({"op": "add", "count": 2})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["ok"], true);
    assert_eq!(v["asset_ids"].as_array().unwrap().len(), 2);
    let id = v["asset_ids"][0].as_str().unwrap().to_string();
    let (status, v) = c
        .mutate(&json!([{"op": "favorite", "asset_ids": [id]}, {"op": "hide", "asset_ids": [id]}]))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    for (body, needle) in [
        (
            json!({"op": "favourite", "asset_ids": [id]}),
            "unknown variant",
        ),
        (json!({"op": "delete", "asset_ids": ["AAAA"]}), "no asset"),
        (
            json!({"op": "album_add", "album": "No such album", "asset_ids": [id]}),
            "no album",
        ),
    ] {
        let (status, v) = c.mutate(&body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(v["error"].as_str().unwrap().contains(needle), "{v}");
    }
    let resp = c
        .http
        .post(format!("{}/_sim/mutate", c.endpoint))
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Faults: arm, target, list, refuse unknown names, clear.
    let (status, v) = c
        .admin_post(
            "faults",
            &json!({"cdn-503": 0.25, "url-expire": {"p": 1.0, "asset_ids": [id], "remaining": 2}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["armed"]["cdn-503"]["p"], 0.25);
    assert_eq!(v["armed"]["url-expire"]["remaining"], 2);
    let faults = &sim.state().faults;
    assert!(faults.fire_for(icloudpd_rs::sim::faults::FaultKind::UrlExpire, Some(&id)));
    assert!(!faults.fire_for(
        icloudpd_rs::sim::faults::FaultKind::UrlExpire,
        Some("other")
    ));
    let (status, v) = c.admin_post("faults", &json!({"cdn-404": 0.5})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("unknown fault"));
    let (status, _) = c.admin_post("faults", &json!({"cdn-503": 2.0})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, v) = c.admin_post("faults", &json!({"clear": true})).await;
    assert_eq!(v["armed"], json!({}));
    let (status, text) = c.admin_get("faults").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        serde_json::from_str::<Value>(&text).unwrap()["fired"]["url-expire"].as_u64() == Some(1)
    );

    // Account, session, expire.
    let (_, text) = c.admin_get("account").await;
    let account: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(account["username"], sim.account().username.as_str());
    assert_eq!(account["dsid"], sim.account().dsid.as_str());
    let (status, v) = c.admin_post("session", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let minted = support::Client {
        cookie: v["cookie"].as_str().unwrap().to_string(),
        ..c.clone()
    };
    assert_eq!(
        minted.post("private", "zones/list", &json!({})).await.0,
        StatusCode::OK
    );
    let (status, v) = c
        .admin_post("expire", &json!({"sessions": true, "trust": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["sessions"], true);
    assert_eq!(
        c.admin_post("expire", &json!({})).await.0,
        StatusCode::BAD_REQUEST
    );

    // Stats count API calls (admin calls are not counted).
    let (_, text) = c.admin_get("stats").await;
    let stats: Value = serde_json::from_str(&text).unwrap();
    assert!(stats["cloudkit_requests"].as_u64().unwrap() >= 1);
    assert!(
        stats["by_path"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("/_sim"))
    );
    sim.shutdown().await;
}

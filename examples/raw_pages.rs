//! Baseline for `scripts/bench-catalog.sh`: fetch every page of All Photos, Hidden and Recently
//! Deleted from a running simulator with plain HTTP requests (same bodies and parallelism as a
//! refresh, bodies read and dropped, nothing parsed or stored). Prints `raw_s=SECONDS`.
//!
//! Usage: raw_pages ENDPOINT COOKIE PARALLELISM

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use icloudpd_rs::cloudkit::requests;
use serde_json::{Value, json};

const INDEXES: [(&str, &str); 3] = [
    (
        "CPLAssetAndMasterByAssetDateWithoutHiddenOrDeleted",
        "CPLAssetByAssetDateWithoutHiddenOrDeleted",
    ),
    (
        "CPLAssetAndMasterHiddenByAssetDate",
        "CPLAssetHiddenByAssetDate",
    ),
    (
        "CPLAssetAndMasterDeletedByExpungedDate",
        "CPLAssetDeletedByExpungedDate",
    ),
];

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let (endpoint, cookie) = (args[1].clone(), args[2].clone());
    let parallelism: u64 = args[3].parse().expect("parallelism");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let base = format!("{endpoint}/database/1/com.apple.photos.cloud/production/private");
    let started = Instant::now();
    let keys = requests::asset_desired_keys();
    for (list, count_id) in INDEXES {
        let count_body = json!({"batch": [{"resultsLimit": 1, "query": {"filterBy": {"fieldName": "indexCountID",
            "fieldValue": {"type": "STRING_LIST", "value": [count_id]}, "comparator": "IN"},
            "recordType": "HyperionIndexCountLookup"}, "zoneWide": true, "zoneID": {"zoneName": "PrimarySync"}}]});
        let answer: Value = http
            .post(format!("{base}/internal/records/query/batch"))
            .header("Cookie", &cookie)
            .body(count_body.to_string())
            .send()
            .await
            .expect("count")
            .json()
            .await
            .expect("count json");
        let count = answer["batch"][0]["records"][0]["fields"]["itemCount"]["value"]
            .as_u64()
            .unwrap_or(0);
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..parallelism {
            let (http, url, keys, next, cookie) = (
                http.clone(),
                format!("{base}/records/query"),
                keys.clone(),
                next.clone(),
                cookie.clone(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let rank = next.fetch_add(requests::PAGE_ASSETS, Ordering::Relaxed);
                    if rank >= count {
                        return;
                    }
                    let body = json!({"query": {"filterBy": [
                        {"fieldName": "startRank", "comparator": "EQUALS", "fieldValue": {"type": "INT64", "value": rank}},
                        {"fieldName": "direction", "comparator": "EQUALS", "fieldValue": {"type": "STRING", "value": "ASCENDING"}}],
                        "recordType": list}, "resultsLimit": requests::RESULTS_LIMIT, "desiredKeys": keys,
                        "zoneID": {"zoneName": "PrimarySync"}});
                    let resp = http.post(&url).header("Cookie", &cookie).body(body.to_string()).send().await.expect("page");
                    let _ = resp.bytes().await.expect("body");
                }
            }));
        }
        for t in tasks {
            t.await.expect("fetcher");
        }
    }
    println!("raw_s={:.3}", started.elapsed().as_secs_f64());
}

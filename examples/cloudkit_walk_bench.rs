//! Benchmark of a full enumeration (`scripts/bench-cloudkit.sh`): an in-process simulator with
//! N assets, then (1) the raw transfer of every page of All Photos (same requests, same
//! parallelism, bodies read but not parsed) and (2) the client's streaming walk of the same
//! index (parse, pair, hand over). Prints key=value lines; the ratio of the two is the cost of
//! the client over the transfer itself.
//!
//! Usage: cloudkit_walk_bench [ASSETS] [PARALLELISM]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use icloudpd_rs::cloudkit::{ClientParams, CloudKitClient, Index, WalkOptions, requests};
use icloudpd_rs::model::Library;
use icloudpd_rs::sim::{Sim, SimConfig};
use serde_json::json;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let assets: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let parallelism: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(6);
    let _ = rustls::crypto::ring::default_provider().install_default();

    let started = Instant::now();
    let sim = Sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        assets,
        size_scale: 0.0001,
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    println!("sim.start_s={:.2}", started.elapsed().as_secs_f64());
    let cookie = sim.state().auth.mint_web_session();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::COOKIE, cookie.parse().expect("cookie"));
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(64)
        .build()
        .expect("http");
    let client = CloudKitClient::new(
        http.clone(),
        sim.endpoint(),
        ClientParams {
            client_id: "BENCH".into(),
            dsid: None,
        },
    );
    let library = Library::primary();
    let count = client
        .count(&library, &Index::AllPhotos)
        .await
        .expect("count")
        .count
        .expect("a count");

    // (1) Raw transfer of the same pages.
    let keys = requests::asset_desired_keys();
    let url = format!(
        "{}/database/1/com.apple.photos.cloud/production/private/records/query",
        sim.endpoint()
    );
    let next_rank = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let raw_started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..parallelism {
        let (http, url, keys, next_rank, bytes) = (
            http.clone(),
            url.clone(),
            keys.clone(),
            next_rank.clone(),
            bytes.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let rank = next_rank.fetch_add(requests::PAGE_ASSETS, Ordering::Relaxed);
                if rank >= count {
                    return;
                }
                let body = json!({
                    "query": {"filterBy": [
                        {"fieldName": "startRank", "comparator": "EQUALS", "fieldValue": {"type": "INT64", "value": rank}},
                        {"fieldName": "direction", "comparator": "EQUALS", "fieldValue": {"type": "STRING", "value": "ASCENDING"}}],
                        "recordType": "CPLAssetAndMasterByAssetDateWithoutHiddenOrDeleted"},
                    "resultsLimit": requests::RESULTS_LIMIT, "desiredKeys": keys, "zoneID": {"zoneName": "PrimarySync"}});
                let resp = http.post(&url).body(body.to_string()).send().await.expect("page");
                let b = resp.bytes().await.expect("body");
                bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("raw fetcher");
    }
    let raw = raw_started.elapsed().as_secs_f64();

    // (2) The client's walk.
    let walk_started = Instant::now();
    let mut walk = client.walk(
        &library,
        Index::AllPhotos,
        WalkOptions {
            parallelism,
            ..WalkOptions::default()
        },
    );
    let mut seen = 0u64;
    let mut versions = 0u64;
    while let Some(page) = walk.next_page().await {
        seen += page.assets.len() as u64;
        versions += page
            .assets
            .iter()
            .map(|a| a.downloads.len() as u64)
            .sum::<u64>();
    }
    let summary = walk.finish().await.expect("walk");
    let walked = walk_started.elapsed().as_secs_f64();
    assert_eq!(seen, count, "the walk saw every asset");

    println!("assets={count}");
    println!("parallelism={parallelism}");
    println!("pages={}", summary.pages);
    println!("versions={versions}");
    println!("page_bytes_total={}", bytes.load(Ordering::Relaxed));
    println!("raw_transfer_s={raw:.2}");
    println!("raw_assets_per_s={:.0}", count as f64 / raw);
    println!("walk_s={walked:.2}");
    println!("walk_assets_per_s={:.0}", count as f64 / walked);
    println!("walk_vs_raw={:.2}", walked / raw);
    sim.shutdown().await;
}

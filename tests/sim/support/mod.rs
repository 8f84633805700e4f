//! Shared helpers of the simulator's integration tests: start an in-process simulator, sign a
//! client in with a minted web session, and speak CloudKit to it.

#![allow(dead_code)]

use std::collections::HashMap;

use icloudpd_rs::sim::{Sim, SimConfig};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// The container path every CloudKit call goes to.
pub const BASE: &str = "/database/1/com.apple.photos.cloud/production";
/// The zone of the primary library.
pub const PRIMARY: &str = "PrimarySync";
/// The index of every visible asset (with its master), by asset date.
pub const ALL: &str = "CPLAssetAndMasterByAssetDateWithoutHiddenOrDeleted";
/// icloudpd's query string.
pub const QUERY: &str = "clientBuildNumber=2522Project44&clientMasteringNumber=2522B2&clientId=X&dsid=1&remapEnums=True&getCurrentSyncToken=True";

/// A signed-in client of one simulator.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub endpoint: String,
    pub cookie: String,
}

/// Start a simulator on 127.0.0.1:0 and a client with a minted session.
pub async fn start(config: SimConfig) -> (Sim, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        ..config
    })
    .await
    .expect("simulator starts");
    let client = Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("client"),
        endpoint: sim.endpoint().to_string(),
        cookie: sim.state().auth.mint_web_session(),
    };
    (sim, client)
}

/// A config with tiny files.
pub fn config(assets: usize) -> SimConfig {
    SimConfig {
        assets,
        size_scale: 0.0001,
        ..SimConfig::default()
    }
}

impl Client {
    /// POST raw text to a CloudKit path of a database, with or without the session cookie.
    pub async fn post_raw(
        &self,
        db: &str,
        path: &str,
        body: &str,
        signed: bool,
    ) -> (StatusCode, HeaderMap, String) {
        let url = format!("{}{BASE}/{db}/{path}?{QUERY}", self.endpoint);
        let mut req = self
            .http
            .post(url)
            .header("Content-Type", "text/plain")
            .body(body.to_string());
        if signed {
            req = req.header("Cookie", &self.cookie);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.expect("body"))
    }

    /// POST JSON to a CloudKit path; the answer must be JSON.
    pub async fn post(&self, db: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        let (status, _, text) = self.post_raw(db, path, &body.to_string(), true).await;
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: answer is not JSON ({e}): {text:.300}"));
        (status, v)
    }

    /// POST JSON expecting HTTP 200.
    pub async fn ok(&self, db: &str, path: &str, body: &Value) -> Value {
        let (status, v) = self.post(db, path, body).await;
        assert_eq!(status, StatusCode::OK, "{path} {body}: {v}");
        v
    }

    /// One page of an index.
    pub async fn page(
        &self,
        zone: &str,
        record_type: &str,
        extra: &[Value],
        start: usize,
        limit: usize,
    ) -> Value {
        self.page_keys(zone, record_type, extra, start, limit, None)
            .await
    }

    /// One page of an index, with only `desired` fields when given.
    pub async fn page_keys(
        &self,
        zone: &str,
        record_type: &str,
        extra: &[Value],
        start: usize,
        limit: usize,
        desired: Option<&[&str]>,
    ) -> Value {
        let mut filters = vec![
            json!({"fieldName": "startRank", "fieldValue": {"type": "INT64", "value": start}, "comparator": "EQUALS"}),
            json!({"fieldName": "direction", "fieldValue": {"type": "STRING", "value": "ASCENDING"}, "comparator": "EQUALS"}),
        ];
        filters.extend(extra.iter().cloned());
        let mut body = json!({
            "query": {"filterBy": filters, "recordType": record_type},
            "resultsLimit": limit,
            "zoneID": {"zoneName": zone},
        });
        if let Some(keys) = desired {
            body["desiredKeys"] = json!(keys);
        }
        self.ok("private", "records/query", &body).await
    }

    /// Every (master, asset) pair of an index, walking pages of 100 until a short page.
    pub async fn list_all(
        &self,
        zone: &str,
        record_type: &str,
        extra: &[Value],
    ) -> Vec<(Value, Value)> {
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let page = self.page(zone, record_type, extra, start, 200).await;
            let pairs = pairs(&page);
            let n = pairs.len();
            out.extend(pairs);
            if n < 100 {
                return out;
            }
            start += n;
        }
    }

    /// Counts of some count ids (one batch element each, answers in order).
    pub async fn counts(&self, zone: &str, ids: &[&str]) -> Vec<i64> {
        let batch: Vec<Value> = ids
            .iter()
            .map(|id| {
                json!({"resultsLimit": 1, "query": {"filterBy": {"fieldName": "indexCountID",
                    "fieldValue": {"type": "STRING_LIST", "value": [id]}, "comparator": "IN"},
                    "recordType": "HyperionIndexCountLookup"}, "zoneWide": true, "zoneID": {"zoneName": zone}})
            })
            .collect();
        let v = self
            .ok(
                "private",
                "internal/records/query/batch",
                &json!({"batch": batch}),
            )
            .await;
        v["batch"]
            .as_array()
            .expect("batch")
            .iter()
            .map(|b| {
                b["records"][0]["fields"]["itemCount"]["value"]
                    .as_i64()
                    .unwrap_or(-1)
            })
            .collect()
    }

    /// `POST /_sim/mutate`.
    pub async fn mutate(&self, body: &Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/_sim/mutate", self.endpoint))
            .body(body.to_string())
            .send()
            .await
            .expect("mutate");
        let status = resp.status();
        (status, resp.json().await.expect("json"))
    }

    /// A `changes/zone` page for one zone.
    pub async fn changes(&self, zone: &str, token: Option<&str>) -> Value {
        let mut entry = json!({"zoneID": {"zoneName": zone}, "resultsLimit": 200});
        if let Some(t) = token {
            entry["syncToken"] = json!(t);
        }
        let v = self
            .ok("private", "changes/zone", &json!({"zones": [entry]}))
            .await;
        v["zones"][0].clone()
    }

    /// Every change record after `token`, following `moreComing`; returns them and the last token.
    pub async fn all_changes(&self, zone: &str, token: &str) -> (Vec<Value>, String) {
        let mut token = token.to_string();
        let mut out = Vec::new();
        loop {
            let z = self.changes(zone, Some(&token)).await;
            out.extend(z["records"].as_array().expect("records").iter().cloned());
            token = z["syncToken"].as_str().expect("syncToken").to_string();
            if !z["moreComing"].as_bool().expect("moreComing") {
                return (out, token);
            }
        }
    }

    /// GET a `/_sim/` path as text.
    pub async fn admin_get(&self, path: &str) -> (StatusCode, String) {
        let resp = self
            .http
            .get(format!("{}/_sim/{path}", self.endpoint))
            .send()
            .await
            .expect("admin get");
        let status = resp.status();
        (status, resp.text().await.expect("text"))
    }

    /// POST JSON to a `/_sim/` path.
    pub async fn admin_post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/_sim/{path}", self.endpoint))
            .body(body.to_string())
            .send()
            .await
            .expect("admin post");
        let status = resp.status();
        (status, resp.json().await.expect("json"))
    }
}

/// (master, asset) pairs of a page, paired by `masterRef`; panics if a master lacks its asset.
pub fn pairs(page: &Value) -> Vec<(Value, Value)> {
    let records = page["records"].as_array().expect("records array");
    let assets: HashMap<&str, &Value> = records
        .iter()
        .filter(|r| r["recordType"] == "CPLAsset")
        .map(|r| {
            (
                r["fields"]["masterRef"]["value"]["recordName"]
                    .as_str()
                    .expect("masterRef"),
                r,
            )
        })
        .collect();
    records
        .iter()
        .filter(|r| r["recordType"] == "CPLMaster")
        .map(|m| {
            let name = m["recordName"].as_str().expect("recordName");
            let a = assets
                .get(name)
                .unwrap_or_else(|| panic!("master {name} without its asset in the page"));
            (m.clone(), (*a).clone())
        })
        .collect()
}

/// Decoded `filenameEnc` of a master.
pub fn filename(master: &Value) -> Option<String> {
    use base64::Engine as _;
    let f = &master["fields"]["filenameEnc"];
    match f["type"].as_str()? {
        "STRING" => f["value"].as_str().map(str::to_string),
        _ => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(f["value"].as_str()?)
                .ok()?;
            String::from_utf8(bytes).ok()
        }
    }
}

/// A record's `recordName`.
pub fn record_name(record: &Value) -> String {
    record["recordName"]
        .as_str()
        .expect("recordName")
        .to_string()
}

/// An integer field of a record.
pub fn int(record: &Value, field: &str) -> Option<i64> {
    record["fields"][field]["value"].as_i64()
}

/// `v` without its `downloadURL`s, each checked to be a string first. The simulator signs URLs
/// when it serves them, with an expiry of now + TTL: two answers a second apart differ there
/// and nowhere else.
pub fn without_download_urls(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, u)| {
                    let url = k.as_str() == "downloadURL";
                    assert!(!url || u.is_string(), "downloadURL {u}");
                    !url
                })
                .map(|(k, x)| (k.clone(), without_download_urls(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_download_urls).collect()),
        other => other.clone(),
    }
}

//! Shared helpers of the cloudkit tests: reading the recorded cassettes, a replay server that
//! answers CloudKit calls with the recorded answers, and a client pointed at a local server.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use icloudpd_rs::cloudkit::{ClientParams, CloudKitClient, RetryPolicy};
use serde_json::Value;

/// Where the recorded exchanges are: `$ICLOUDPD_CASSETTES`, else `shared/fixtures/cassettes`
/// beside the checkout (or two levels up, for a worktree), else the shared fixtures.
pub fn cassette_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates: Vec<PathBuf> = std::env::var_os("ICLOUDPD_CASSETTES")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            manifest.join("../shared/fixtures/cassettes"),
            manifest.join("../../shared/fixtures/cassettes"),
            PathBuf::from("/work/shared/fixtures/cassettes"),
        ])
        .collect();
    candidates
        .iter()
        .find(|dir| dir.join("listing_photos.yml").is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!("recorded cassettes not found in {candidates:?} (set ICLOUDPD_CASSETTES)")
        })
}

/// One recorded exchange.
#[derive(Debug, Clone)]
pub struct Interaction {
    pub method: String,
    pub uri: String,
    pub request_body: String,
    pub status: u16,
    pub response_body: String,
}

impl Interaction {
    /// `(database, path)` of a CloudKit call, e.g. `("private", "records/query")`.
    pub fn cloudkit_call(&self) -> Option<(String, String)> {
        let (_, rest) = self.uri.split_once("/com.apple.photos.cloud/production/")?;
        let rest = rest.split('?').next()?;
        let (db, path) = rest.split_once('/')?;
        Some((db.to_string(), path.to_string()))
    }

    /// The response body as JSON, when it is JSON.
    pub fn response_json(&self) -> Option<Value> {
        serde_json::from_str(&self.response_body).ok()
    }

    /// The request body as JSON, when it is JSON.
    pub fn request_json(&self) -> Option<Value> {
        serde_json::from_str(&self.request_body).ok()
    }
}

fn untag(v: serde_yaml::Value) -> serde_yaml::Value {
    match v {
        serde_yaml::Value::Tagged(t) => untag(t.value),
        serde_yaml::Value::Mapping(m) => {
            serde_yaml::Value::Mapping(m.into_iter().map(|(k, v)| (untag(k), untag(v))).collect())
        }
        serde_yaml::Value::Sequence(s) => {
            serde_yaml::Value::Sequence(s.into_iter().map(untag).collect())
        }
        other => other,
    }
}

fn text(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Mapping(m) => m
            .get(serde_yaml::Value::String("string".into()))
            .map(text)
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// Every cassette file name.
pub fn cassette_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cassette_dir())
        .expect("cassette directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    names.sort();
    names
}

/// The interactions of one cassette.
pub fn load_cassette(name: &str) -> Vec<Interaction> {
    let path = cassette_dir().join(name);
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: serde_yaml::Value =
        untag(serde_yaml::from_str(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    let items = doc["interactions"].as_sequence().expect("interactions");
    items
        .iter()
        .map(|it| {
            let req = &it["request"];
            let resp = &it["response"];
            Interaction {
                method: req["method"].as_str().unwrap_or("").to_string(),
                uri: req["uri"].as_str().unwrap_or("").to_string(),
                request_body: text(&req["body"]),
                status: resp["status"]["code"].as_u64().unwrap_or(0) as u16,
                response_body: text(&resp["body"]),
            }
        })
        .collect()
}

/// A CloudKit request reduced to what identifies its recorded answer.
pub fn request_key(db: &str, path: &str, body: &Value) -> String {
    let zone = body["zoneID"]["zoneName"].as_str().unwrap_or("");
    match path {
        "records/query" => {
            let q = &body["query"];
            let mut key = format!(
                "{db} {path} {zone} {}",
                q["recordType"].as_str().unwrap_or("")
            );
            if let Some(filters) = q["filterBy"].as_array() {
                for f in filters {
                    let name = f["fieldName"].as_str().unwrap_or("");
                    if name != "direction" {
                        key.push_str(&format!(" {name}={}", f["fieldValue"]["value"]));
                    }
                }
            }
            key
        }
        "internal/records/query/batch" => {
            let ids: Vec<String> = body["batch"]
                .as_array()
                .map(|b| {
                    b.iter()
                        .map(|e| {
                            format!(
                                "{}@{}",
                                e["query"]["filterBy"]["fieldValue"]["value"],
                                e["zoneID"]["zoneName"].as_str().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("{db} {path} {}", ids.join(","))
        }
        "records/modify" => format!(
            "{db} {path} {}",
            body["operations"][0]["record"]["recordName"]
                .as_str()
                .unwrap_or("")
        ),
        _ => format!("{db} {path}"),
    }
}

/// What the replay server saw and answered.
#[derive(Default)]
pub struct ReplayLog {
    pub requests: Vec<String>,
    pub unmatched: Vec<String>,
}

#[derive(Clone)]
struct Replay {
    answers: Arc<HashMap<String, String>>,
    /// Answer for listing pages that were not recorded: the recorded past-the-end shape.
    past_end_token: String,
    log: Arc<Mutex<ReplayLog>>,
}

/// A local server answering CloudKit calls with a cassette's recorded answers.
pub struct ReplayServer {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<ReplayLog>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ReplayServer {
    /// Base URL to give the client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Serve the CloudKit answers of some cassettes. Listing pages that were not recorded get the
/// recorded past-the-end answer (`{"records": [], "syncToken": ...}`); any other unknown call
/// gets HTTP 404 and is logged as unmatched.
pub async fn replay(cassettes: &[&str]) -> ReplayServer {
    let mut answers = HashMap::new();
    let mut token = String::new();
    for c in cassettes {
        for it in load_cassette(c) {
            let Some((db, path)) = it.cloudkit_call() else {
                continue;
            };
            let body = it.request_json().unwrap_or(Value::Null);
            if let Some(t) = it
                .response_json()
                .and_then(|j| j["syncToken"].as_str().map(str::to_string))
            {
                token = t;
            }
            answers.insert(request_key(&db, &path, &body), it.response_body.clone());
        }
    }
    let log = Arc::new(Mutex::new(ReplayLog::default()));
    let state = Replay {
        answers: Arc::new(answers),
        past_end_token: token,
        log: log.clone(),
    };
    let app = Router::new().fallback(replay_handler).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    ReplayServer { addr, log, task }
}

async fn replay_handler(State(state): State<Replay>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let body: Bytes = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(rest) = path
        .split_once("/com.apple.photos.cloud/production/")
        .map(|(_, r)| r.to_string())
    else {
        return (StatusCode::NOT_FOUND, "not a CloudKit path").into_response();
    };
    let (db, call) = rest.split_once('/').unwrap_or((&rest, ""));
    let key = request_key(db, call, &json);
    state.log.lock().expect("log").requests.push(key.clone());
    let json_type = [(header::CONTENT_TYPE, "application/json; charset=UTF-8")];
    if let Some(answer) = state.answers.get(&key) {
        return (json_type, answer.clone()).into_response();
    }
    if call == "records/query" && key.contains("startRank=") {
        let past_end = serde_json::json!({"records": [], "syncToken": state.past_end_token});
        return (json_type, past_end.to_string()).into_response();
    }
    state.log.lock().expect("log").unmatched.push(key);
    (
        StatusCode::NOT_FOUND,
        json_type,
        r#"{"serverErrorCode":"NOT_FOUND","reason":"not recorded"}"#,
    )
        .into_response()
}

/// Install the TLS crypto provider reqwest needs (once per process).
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client of a local server, with retries fast enough for tests.
pub fn client_for(base_url: &str) -> CloudKitClient {
    client_with_cookie(base_url, None)
}

/// A client that sends a fixed `Cookie` header (a simulator web session).
pub fn client_with_cookie(base_url: &str, cookie: Option<&str>) -> CloudKitClient {
    init_crypto();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(c) = cookie {
        headers.insert(reqwest::header::COOKIE, c.parse().expect("cookie header"));
    }
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("http client");
    let params = ClientParams {
        client_id: "DE309E26-942E-11E8-92F5-14109FE0B321".into(),
        dsid: Some("12345678901".into()),
    };
    CloudKitClient::new(http, base_url, params).with_retry_policy(fast_retries())
}

/// Retries with short waits, so fault tests run quickly.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_millis(50),
        request_timeout: Duration::from_secs(30),
    }
}

//! A local server whose answers a test scripts: a closure from (call path, JSON body) to a
//! response, plus a synthetic index server generating CPLMaster/CPLAsset pages.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A scripted answer.
pub enum Reply {
    /// Status, extra headers, body.
    Full(u16, Vec<(&'static str, String)>, String),
    /// A 200 JSON answer.
    Json(Value),
    /// Start a 200 answer, then break the connection mid-body.
    Reset,
}

type Script = dyn Fn(&str, &Value, u64) -> Reply + Send + Sync;

#[derive(Clone)]
struct Scripted {
    script: Arc<Script>,
    calls: Arc<AtomicU64>,
}

/// A running scripted server.
pub struct ScriptedServer {
    pub addr: SocketAddr,
    pub calls: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve `script(call, body, n)` where `call` is the path after the database segment
/// (e.g. `records/query`) and `n` counts requests from 0.
pub async fn serve(
    script: impl Fn(&str, &Value, u64) -> Reply + Send + Sync + 'static,
) -> ScriptedServer {
    let calls = Arc::new(AtomicU64::new(0));
    let state = Scripted {
        script: Arc::new(script),
        calls: calls.clone(),
    };
    let app = Router::new().fallback(handle).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    ScriptedServer { addr, calls, task }
}

async fn handle(State(s): State<Scripted>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let body: Bytes = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let call = path
        .split_once("/production/")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, c)| c.to_string())
        .unwrap_or_default();
    let n = s.calls.fetch_add(1, Ordering::SeqCst);
    match (s.script)(&call, &json, n) {
        Reply::Json(v) => (
            [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
            v.to_string(),
        )
            .into_response(),
        Reply::Full(status, headers, body) => {
            let mut resp = (StatusCode::from_u16(status).expect("status"), body).into_response();
            for (k, v) in headers {
                resp.headers_mut()
                    .insert(k, HeaderValue::from_str(&v).expect("header"));
            }
            resp
        }
        Reply::Reset => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"{\"records\": [")),
                Err(std::io::Error::other("cut")),
            ];
            let mut resp = Body::from_stream(futures_util::stream::iter(chunks)).into_response();
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("4096"));
            resp
        }
    }
}

/// Master recordName of synthetic asset `i`.
pub fn master_name(i: u64) -> String {
    format!("M{i:07}")
}

/// CPLAsset recordName of synthetic asset `i`.
pub fn asset_name(i: u64) -> String {
    format!("A{i:07}")
}

fn res(i: u64, size: u64) -> Value {
    json!({"value": {"fileChecksum": format!("AQ{i:07}"), "size": size,
        "downloadURL": format!("https://cvws.icloud-content.com/B/{i}/${{f}}")}, "type": "ASSETID"})
}

/// The CPLMaster of synthetic asset `i`.
pub fn master_json(i: u64) -> Value {
    json!({"recordName": master_name(i), "recordType": "CPLMaster", "recordChangeTag": "m", "deleted": false,
        "fields": {
            "itemType": {"value": "public.jpeg", "type": "STRING"},
            "filenameEnc": {"value": "SU1HXzc0MDkuSlBH", "type": "ENCRYPTED_BYTES"},
            "resOriginalRes": res(i, 1000 + i), "resOriginalFileType": {"value": "public.jpeg", "type": "STRING"},
            "resOriginalWidth": {"value": 4032, "type": "INT64"}, "resOriginalHeight": {"value": 3024, "type": "INT64"},
        },
        "zoneID": {"zoneName": "PrimarySync"}})
}

/// The CPLAsset of synthetic asset `i`.
pub fn asset_json(i: u64) -> Value {
    json!({"recordName": asset_name(i), "recordType": "CPLAsset", "recordChangeTag": "a", "deleted": false,
        "fields": {
            "masterRef": {"value": {"recordName": master_name(i), "action": "DELETE_SELF"}, "type": "REFERENCE"},
            "assetDate": {"value": 1_500_000_000_000u64 - i, "type": "TIMESTAMP"},
            "addedDate": {"value": 1_500_000_000_000u64, "type": "TIMESTAMP"},
        },
        "zoneID": {"zoneName": "PrimarySync"}})
}

/// Records of the page at `start_rank` of an index of `total` synthetic assets, masters first.
pub fn page_records(start_rank: u64, limit: u64, total: u64) -> Vec<Value> {
    let end = (start_rank + limit / 2).min(total);
    let ranks = start_rank.min(total)..end;
    let mut v: Vec<Value> = ranks.clone().map(master_json).collect();
    v.extend(ranks.map(asset_json));
    v
}

/// `startRank` of a listing body.
pub fn start_rank(body: &Value) -> u64 {
    body["query"]["filterBy"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x["fieldName"] == "startRank"))
        .and_then(|x| x["fieldValue"]["value"].as_u64())
        .unwrap_or(0)
}

/// A count-batch answer.
pub fn count_answer(count: u64) -> Value {
    json!({"batch": [{"records": [{"recordName": "X", "recordType": "IndexCountResult",
        "fields": {"itemCount": {"value": count, "type": "INT64"}}}], "syncToken": "TOKEN-AT-COUNT"}]})
}

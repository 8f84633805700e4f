//! The simulator's own API under `/_sim/` (never in Apple's URL space): manifest, stats,
//! mutations, faults, account, session expiry and minted sessions.
//!
//! | Route | Does |
//! |---|---|
//! | `GET /_sim/manifest[?zone=NAME][&sha256=0]` | JSON lines, one per asset version (streamed) |
//! | `GET /_sim/stats` | request counters |
//! | `POST /_sim/mutate` | `{"op": ...}` or a list of them (see `library::mutate`) |
//! | `GET /_sim/faults`, `POST /_sim/faults` | armed faults; arm with `{"name": p}` or `{"name": {"p", "asset_ids", "remaining"}}`, `{"clear": true}` disarms all |
//! | `GET /_sim/account` | the simulated account's credentials |
//! | `POST /_sim/expire` | `{"sessions": true, "trust": true}` |
//! | `POST /_sim/session` | `{"cookie": ...}`: a trusted web session without signing in |

use std::collections::HashMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::SharedState;
use super::faults::{FaultKind, FaultRule};
use super::library::ManifestOptions;
use super::library::manifest::CHUNK_ASSETS;

/// Routes under `/_sim/`.
pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/_sim/manifest", get(manifest))
        .route("/_sim/stats", get(stats))
        .route("/_sim/mutate", post(mutate))
        .route("/_sim/faults", get(faults_get).post(faults_post))
        .route("/_sim/account", get(account))
        .route("/_sim/expire", post(expire))
        .route("/_sim/session", post(session))
}

fn json_reply(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn bad_request(msg: impl Into<String>) -> Response {
    let msg = msg.into();
    tracing::warn!(error = %msg, "/_sim request refused");
    json_reply(StatusCode::BAD_REQUEST, &json!({"ok": false, "error": msg}))
}

fn parse_body(body: &Bytes) -> Result<Value, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| Box::new(bad_request(format!("malformed JSON body: {e}"))))
}

async fn manifest(
    State(state): State<SharedState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let sha256 = !matches!(
        q.get("sha256").map(String::as_str),
        Some("0" | "false" | "no")
    );
    let opts = ManifestOptions {
        zone: q.get("zone").cloned(),
        sha256,
    };
    if let Err(e) = state.library.manifest_zones(&opts) {
        return bad_request(e);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        let Ok(zones) = state.library.manifest_zones(&opts) else {
            return;
        };
        for zone in zones {
            let mut start = 0;
            loop {
                let (entries, next) =
                    state
                        .library
                        .manifest_chunk(zone, start, CHUNK_ASSETS, opts.sha256);
                let mut buf = Vec::with_capacity(entries.len() * 400);
                for e in &entries {
                    if serde_json::to_writer(&mut buf, e).is_ok() {
                        buf.push(b'\n');
                    }
                }
                if tx.blocking_send(Bytes::from(buf)).is_err() {
                    return; // client went away
                }
                match next {
                    Some(n) => start = n,
                    None => break,
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn stats(State(state): State<SharedState>) -> Response {
    json_reply(StatusCode::OK, &state.stats.snapshot())
}

async fn mutate(State(state): State<SharedState>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match state.library.mutate_json(&body) {
        Ok(outcome) => json_reply(
            StatusCode::OK,
            &serde_json::to_value(outcome).unwrap_or_default(),
        ),
        Err(e) => bad_request(e.to_string()),
    }
}

async fn faults_get(State(state): State<SharedState>) -> Response {
    json_reply(StatusCode::OK, &state.faults.snapshot())
}

/// Parse one fault setting: a probability or a rule object.
fn fault_rule(name: &str, v: &Value) -> Result<(FaultKind, FaultRule), String> {
    let kind: FaultKind = name.parse()?;
    let rule = match v {
        Value::Number(n) => FaultRule {
            p: n.as_f64().unwrap_or(-1.0),
            ..FaultRule::default()
        },
        Value::Object(_) => serde_json::from_value::<FaultRule>(v.clone())
            .map_err(|e| format!("fault {name}: {e}"))?,
        _ => {
            return Err(format!(
                "fault {name}: expected a probability or {{\"p\": ...}}"
            ));
        }
    };
    if !(0.0..=1.0).contains(&rule.p) {
        return Err(format!("fault {name}: probability must be between 0 and 1"));
    }
    Ok((kind, rule))
}

async fn faults_post(State(state): State<SharedState>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(map) = body.as_object() else {
        return bad_request("expected a JSON object mapping fault names to probabilities");
    };
    let clear = map.get("clear").and_then(Value::as_bool).unwrap_or(false);
    let mut rules = Vec::new();
    for (name, v) in map.iter().filter(|(k, _)| k.as_str() != "clear") {
        match fault_rule(name, v) {
            Ok(r) => rules.push(r),
            Err(e) => return bad_request(e),
        }
    }
    if clear {
        state.faults.clear();
    }
    for (kind, rule) in rules {
        tracing::info!(
            fault = kind.name(),
            p = rule.p,
            "fault armed via /_sim/faults"
        );
        state.faults.set(kind, rule);
    }
    json_reply(StatusCode::OK, &state.faults.snapshot())
}

async fn account(State(state): State<SharedState>) -> Response {
    json_reply(
        StatusCode::OK,
        &serde_json::to_value(&state.account).unwrap_or_default(),
    )
}

async fn expire(State(state): State<SharedState>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let sessions = body
        .get("sessions")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let trust = body.get("trust").and_then(Value::as_bool).unwrap_or(false);
    if !sessions && !trust {
        return bad_request(
            "nothing to expire: send {\"sessions\": true} and/or {\"trust\": true}",
        );
    }
    if sessions {
        state.auth.expire_web_sessions();
    }
    if trust {
        state.auth.expire_trust_tokens();
    }
    json_reply(
        StatusCode::OK,
        &json!({"ok": true, "sessions": sessions, "trust": trust}),
    )
}

async fn session(State(state): State<SharedState>) -> Response {
    json_reply(
        StatusCode::OK,
        &json!({"cookie": state.auth.mint_web_session()}),
    )
}

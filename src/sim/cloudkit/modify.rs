//! `records/modify`: updates of an asset's `isDeleted`, `isHidden` and `isFavorite` (icloudpd's
//! delete-after-download sends `isDeleted: 1` on the CPLAsset).
//!
//! The change tag sent is not checked (a stale tag is accepted, as the notes recommend by
//! default). With `atomic: true`, one invalid operation fails them all.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::records::Renderer;
use super::{begin, desired_keys, json};
use crate::sim::SharedState;
use crate::sim::library::model::{DELETED, FAVORITE, HIDDEN, PURGED};
use crate::sim::library::mutate::AssetChange;

/// One validated operation.
struct Planned {
    record_name: String,
    as_master: bool,
    idx: u32,
    changes: Vec<AssetChange>,
}

/// The changes a `fields` object asks for, given the asset's current flags.
fn plan_fields(
    fields: &serde_json::Map<String, Value>,
    flags: u8,
) -> Result<Vec<AssetChange>, String> {
    let mut out = Vec::new();
    for (name, v) in fields {
        let value = v.get("value").unwrap_or(v);
        let on = match value {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_i64().unwrap_or(0) != 0,
            _ => return Err(format!("field {name} must be 0, 1 or null")),
        };
        let (flag, set, clear) = match name.as_str() {
            "isDeleted" => (DELETED, AssetChange::Delete, AssetChange::Restore),
            "isHidden" => (HIDDEN, AssetChange::Hide, AssetChange::Unhide),
            "isFavorite" => (FAVORITE, AssetChange::Favorite, AssetChange::Unfavorite),
            other => return Err(format!("field {other} cannot be modified")),
        };
        if on != (flags & flag != 0) {
            out.push(if on { set } else { clear });
        }
    }
    Ok(out)
}

/// `POST .../records/modify`.
pub async fn records_modify(
    State(state): State<SharedState>,
    Path(db): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = match begin(state, &db, &headers, &body, "records/modify") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let zone = match call.zone(&call.body["zoneID"]) {
        Ok(z) => z,
        Err(r) => return *r,
    };
    let Some(ops) = call.body.get("operations").and_then(Value::as_array) else {
        return call.bad_request(StatusCode::BAD_REQUEST, "Missing operations array");
    };
    let atomic = call
        .body
        .get("atomic")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let library = &call.state.library;

    let mut planned: Vec<Result<Planned, (String, String)>> = Vec::with_capacity(ops.len());
    for op in ops {
        let record = &op["record"];
        let name = record
            .get("recordName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = op
            .get("operationType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let result = if !matches!(kind, "update" | "forceUpdate") {
            Err(format!("operationType {kind:?} is not supported"))
        } else {
            match library
                .resolve_asset(&zone.info, &name)
                .and_then(|i| library.lookup(zone, i))
            {
                None => Err("Record not found".to_string()),
                Some(v) => {
                    let empty = serde_json::Map::new();
                    let fields = record
                        .get("fields")
                        .and_then(Value::as_object)
                        .unwrap_or(&empty);
                    plan_fields(fields, v.asset.flags).map(|changes| Planned {
                        as_master: library.ids.parse_master(&name).is_some(),
                        record_name: name.clone(),
                        idx: v.asset.idx(),
                        changes,
                    })
                }
            }
        };
        planned.push(result.map_err(|reason| (name, reason)));
    }
    let failed = planned.iter().any(Result::is_err);
    if failed {
        tracing::warn!(zone = %zone.info.name, "records/modify: invalid operation");
    }

    let desired = desired_keys(&call.body);
    let r = Renderer {
        state: &call.state,
        zone: &zone.info,
        desired: &desired,
        with_zone_id: false,
    };
    let mut out = String::from("{\"records\":[");
    for (i, p) in planned.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match p {
            Err((name, reason)) => record_error(&mut out, name, "BAD_REQUEST", reason),
            Ok(p) if atomic && failed => record_error(
                &mut out,
                &p.record_name,
                "ATOMIC_ERROR",
                "Atomic batch failed",
            ),
            Ok(p) => {
                let mut view = library.lookup(zone, p.idx);
                for &change in &p.changes {
                    match library.change_asset(zone, p.idx, change) {
                        Ok(v) => view = Some(v),
                        Err(e) => {
                            tracing::warn!(record = %p.record_name, error = %e, "records/modify: change skipped")
                        }
                    }
                }
                match view.filter(|v| !v.asset.has(PURGED)) {
                    Some(v) if p.as_master => r.master(&mut out, &v),
                    Some(v) => r.asset(&mut out, &v),
                    None => record_error(&mut out, &p.record_name, "NOT_FOUND", "Record not found"),
                }
            }
        }
    }
    out.push_str("],\"syncToken\":");
    let pos = zone.read().log.len();
    json::string(&mut out, &library.tokens.zone_token(&zone.info.name, pos));
    out.push('}');
    call.ok(out)
}

fn record_error(out: &mut String, name: &str, code: &str, reason: &str) {
    out.push_str("{\"recordName\":");
    json::string(out, name);
    out.push_str(",\"serverErrorCode\":");
    json::string(out, code);
    out.push_str(",\"reason\":");
    json::string(out, reason);
    out.push('}');
}

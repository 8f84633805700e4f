//! `zones/list`, `changes/database` and `changes/zone`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::records::{Renderer, zone_id};
use super::{begin, desired_keys, json};
use crate::sim::SharedState;
use crate::sim::faults::FaultKind;
use crate::sim::library::changelog::TokenError;

/// Most records per `changes/zone` page, whatever `resultsLimit` says.
pub const MAX_CHANGES_PER_PAGE: usize = 200;

/// `POST .../zones/list`: the zones of this database.
pub async fn zones_list(
    State(state): State<SharedState>,
    Path(db): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = match begin(state, &db, &headers, &body, "zones/list") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let library = &call.state.library;
    let mut out = String::from("{\"moreComing\":false,\"syncToken\":");
    json::string(
        &mut out,
        &library
            .tokens
            .database_token(call.db.as_str(), library.db_counter()),
    );
    out.push_str(",\"zones\":[");
    let zones = library
        .zones()
        .iter()
        .filter(|z| z.info.database == call.db);
    for (i, z) in zones.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"zoneID\":");
        zone_id(&mut out, &z.info);
        out.push('}');
    }
    out.push_str("]}");
    call.ok(out)
}

/// `POST .../changes/database`: every zone for `{}`, else the zones changed since the token.
pub async fn changes_database(
    State(state): State<SharedState>,
    Path(db): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = match begin(state, &db, &headers, &body, "changes/database") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let library = &call.state.library;
    // Read the counter first: a change racing this call shows up again next time.
    let counter = library.db_counter();
    let since = match call.body.get("syncToken").and_then(Value::as_str) {
        None | Some("") => None,
        Some(token) => match library.tokens.parse_database_token(call.db.as_str(), token) {
            Ok(n) => Some(n),
            Err(e) => return call.bad_request(StatusCode::OK, &e.to_string()),
        },
    };
    let mut out = String::from("{\"syncToken\":");
    json::string(
        &mut out,
        &library.tokens.database_token(call.db.as_str(), counter),
    );
    out.push_str(",\"moreComing\":false,\"zones\":[");
    let mut first = true;
    for z in library
        .zones()
        .iter()
        .filter(|z| z.info.database == call.db)
    {
        let (changed_at, pos) = {
            let data = z.read();
            (data.last_db_change, data.log.len())
        };
        if since.is_some_and(|s| changed_at <= s) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str("{\"zoneID\":");
        zone_id(&mut out, &z.info);
        out.push_str(",\"syncToken\":");
        json::string(&mut out, &library.tokens.zone_token(&z.info.name, pos));
        out.push('}');
    }
    out.push_str("]}");
    call.ok(out)
}

/// `POST .../changes/zone`: a page of each requested zone's change feed.
pub async fn changes_zone(
    State(state): State<SharedState>,
    Path(db): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = match begin(state, &db, &headers, &body, "changes/zone") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Some(zones) = call.body.get("zones").and_then(Value::as_array) else {
        return call.bad_request(StatusCode::BAD_REQUEST, "Missing zones array");
    };
    let library = &call.state.library;
    let top_desired = desired_keys(&call.body);
    let mut out = String::from("{\"zones\":[");
    for (i, entry) in zones.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let name = entry["zoneID"]["zoneName"].as_str().unwrap_or_default();
        let Some(zone) = library.zone_in(call.db, name) else {
            zone_error(&mut out, name, "ZONE_NOT_FOUND", "Zone does not exist");
            continue;
        };
        let len = zone.read().log.len();
        let pos = match entry.get("syncToken") {
            None | Some(Value::Null) => Ok(0),
            Some(Value::String(t)) if t.is_empty() => Ok(len),
            Some(Value::String(t)) => {
                if call.state.faults.fire(FaultKind::TokenExpire) {
                    Err(TokenError::UnknownType)
                } else {
                    library
                        .tokens
                        .parse_zone_token(&zone.info.name, t)
                        .and_then(|p| {
                            if p <= len {
                                Ok(p)
                            } else {
                                Err(TokenError::UnknownType)
                            }
                        })
                }
            }
            Some(_) => Err(TokenError::Format),
        };
        let pos = match pos {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(zone = name, reason = %e, "changes/zone: sync token refused");
                zone_error(&mut out, name, "BAD_REQUEST", &e.to_string());
                continue;
            }
        };
        let limit = entry
            .get("resultsLimit")
            .and_then(Value::as_i64)
            .map(|n| n.clamp(1, MAX_CHANGES_PER_PAGE as i64) as usize)
            .unwrap_or(MAX_CHANGES_PER_PAGE);
        let page = library.changes(zone, pos, limit);
        let desired = if entry.get("desiredKeys").is_some() {
            desired_keys(entry)
        } else {
            top_desired.clone()
        };
        let r = Renderer {
            state: &call.state,
            zone: &zone.info,
            desired: &desired,
            with_zone_id: true,
        };
        out.push_str("{\"zoneID\":");
        zone_id(&mut out, &zone.info);
        out.push_str(",\"syncToken\":");
        json::string(
            &mut out,
            &library.tokens.zone_token(&zone.info.name, page.next_pos),
        );
        out.push_str(if page.more_coming {
            ",\"moreComing\":true,\"records\":["
        } else {
            ",\"moreComing\":false,\"records\":["
        });
        for (j, item) in page.items.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            r.change_item(&mut out, item);
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    call.ok(out)
}

/// A zone entry carrying an error (HTTP 200 overall), in the shape of kei's notes.
fn zone_error(out: &mut String, zone: &str, code: &str, reason: &str) {
    out.push_str("{\"zoneID\":{\"zoneName\":");
    json::string(out, zone);
    out.push_str("},\"serverErrorCode\":");
    json::string(out, code);
    out.push_str(",\"reason\":");
    json::string(out, reason);
    out.push('}');
}

//! `records/query` (indexing state, asset indexes, the album list, single counts),
//! `internal/records/query/batch` (counts) and `records/lookup`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::records::Renderer;
use super::{Call, begin, desired_keys, json};
use crate::sim::SharedState;
use crate::sim::library::index::IndexId;
use crate::sim::library::model::AlbumKind;
use crate::sim::library::{ZoneHandle, now_ms};

/// Most records `records/query` returns in one answer, whatever `resultsLimit` asks.
pub const MAX_RECORDS_PER_PAGE: usize = 200;
/// Albums per `CPLAlbumByPositionLive` answer before `continuationMarker` paging.
pub const MAX_ALBUMS_PER_PAGE: usize = 200;

/// Filters of a query by field name (`filterBy` as an array or a single object).
fn filters(query: &Value) -> HashMap<&str, &Value> {
    let mut out = HashMap::new();
    let list: Vec<&Value> = match query.get("filterBy") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(obj @ Value::Object(_)) => vec![obj],
        _ => Vec::new(),
    };
    for f in list {
        if let (Some(name), Some(value)) = (
            f.get("fieldName").and_then(Value::as_str),
            f.get("fieldValue"),
        ) {
            out.insert(name, value.get("value").unwrap_or(&Value::Null));
        }
    }
    out
}

/// An integer that may arrive as a JSON number or a string of digits.
fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn marker(kind: &str, n: usize) -> String {
    STANDARD.encode(format!("sim-{kind}:{n}"))
}

fn parse_marker(kind: &str, v: Option<&Value>) -> Option<usize> {
    let text = String::from_utf8(STANDARD.decode(v?.as_str()?).ok()?).ok()?;
    text.strip_prefix(&format!("sim-{kind}:"))?.parse().ok()
}

fn sync_token(call: &Call, zone: &ZoneHandle, pos: Option<u32>) -> String {
    let pos = pos.unwrap_or_else(|| zone.read().log.len());
    call.state.library.tokens.zone_token(&zone.info.name, pos)
}

/// `POST .../records/query`.
pub async fn records_query(
    State(state): State<SharedState>,
    Path(db): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = match begin(state, &db, &headers, &body, "records/query") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let zone = match call.zone(&call.body["zoneID"]) {
        Ok(z) => z,
        Err(r) => return *r,
    };
    let query = &call.body["query"];
    let Some(record_type) = query.get("recordType").and_then(Value::as_str) else {
        return call.bad_request(StatusCode::OK, "Missing query.recordType");
    };
    match record_type {
        "CheckIndexingState" => {
            let desired = desired_keys(&call.body);
            let r = renderer(&call, zone, &desired);
            let mut out = String::from("{\"records\":[");
            r.check_indexing_state(&mut out, now_ms());
            out.push_str("],\"syncToken\":");
            json::string(&mut out, &sync_token(&call, zone, None));
            out.push('}');
            call.ok(out)
        }
        "CPLAlbumByPositionLive" => album_list(&call, zone, query),
        "HyperionIndexCountLookup" => single_count(&call, zone, query),
        _ => asset_page(&call, zone, query, record_type),
    }
}

fn renderer<'a>(call: &'a Call, zone: &'a ZoneHandle, desired: &'a json::Desired) -> Renderer<'a> {
    Renderer {
        state: &call.state,
        zone: &zone.info,
        desired,
        with_zone_id: true,
    }
}

fn asset_page(call: &Call, zone: &ZoneHandle, query: &Value, record_type: &str) -> Response {
    let f = filters(query);
    let smart = f.get("smartAlbum").and_then(|v| v.as_str());
    let index = match IndexId::from_list_type(record_type, smart) {
        Ok(Some(index)) => Some(index),
        Ok(None) => {
            let Some(parent) = f.get("parentId").and_then(|v| v.as_str()) else {
                return call.bad_request(
                    StatusCode::OK,
                    "parentId filter required for album contents",
                );
            };
            call.state
                .library
                .album_index(zone, parent)
                .map(IndexId::Album)
        }
        Err(reason) => return call.bad_request(StatusCode::OK, &reason),
    };
    let start = match parse_marker("rank", call.body.get("continuationMarker")) {
        Some(n) => n,
        None => match f.get("startRank").map(|v| as_i64(v)) {
            None => 0,
            Some(Some(n)) if n >= 0 => n as usize,
            Some(_) => {
                return call
                    .bad_request(StatusCode::OK, "startRank must be a non-negative integer");
            }
        },
    };
    let descending = f.get("direction").and_then(|v| v.as_str()) == Some("DESCENDING");
    let limit = call
        .body
        .get("resultsLimit")
        .and_then(as_i64)
        .map(|n| n.clamp(1, MAX_RECORDS_PER_PAGE as i64) as usize)
        .unwrap_or(MAX_RECORDS_PER_PAGE);
    let pairs = (limit / 2).max(1);
    let library = &call.state.library;
    let page = index.and_then(|ix| library.page(zone, ix, start, pairs, descending));
    let desired = desired_keys(&call.body);
    let r = renderer(call, zone, &desired);
    let mut out = String::with_capacity(page.as_ref().map_or(64, |p| p.assets.len() * 7000 + 256));
    out.push_str("{\"records\":[");
    let (next, pos) = match &page {
        Some(p) => {
            for (i, v) in p.assets.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                r.master(&mut out, v);
            }
            for v in &p.assets {
                out.push(',');
                r.asset(&mut out, v);
            }
            (p.next_rank, Some(p.sync_pos))
        }
        None => (None, None),
    };
    out.push(']');
    if let Some(n) = next {
        out.push_str(",\"continuationMarker\":");
        json::string(&mut out, &marker("rank", n));
    }
    out.push_str(",\"syncToken\":");
    json::string(&mut out, &sync_token(call, zone, pos));
    out.push('}');
    call.ok(out)
}

fn album_list(call: &Call, zone: &ZoneHandle, query: &Value) -> Response {
    if zone.info.shared {
        return call.bad_request(StatusCode::BAD_REQUEST, "Index has invalid data");
    }
    let f = filters(query);
    let library = &call.state.library;
    let albums = match f.get("parentId").and_then(|v| v.as_str()) {
        None => library.albums(zone, None),
        Some(parent) => match library.album_index(zone, parent) {
            Some(p) => library.albums(zone, Some(p)),
            None => Vec::new(),
        },
    };
    let start = parse_marker("album", call.body.get("continuationMarker")).unwrap_or(0);
    let end = start.saturating_add(MAX_ALBUMS_PER_PAGE).min(albums.len());
    let desired = desired_keys(&call.body);
    let r = renderer(call, zone, &desired);
    let mut out = String::from("{\"records\":[");
    for (i, v) in albums
        .get(start.min(end)..end)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        r.album(&mut out, v);
    }
    out.push(']');
    if end < albums.len() {
        out.push_str(",\"continuationMarker\":");
        json::string(&mut out, &marker("album", end));
    }
    out.push_str(",\"syncToken\":");
    json::string(&mut out, &sync_token(call, zone, None));
    out.push('}');
    call.ok(out)
}

/// The count ids a count query asks for.
fn count_ids(query: &Value) -> Vec<String> {
    match filters(query).get("indexCountID") {
        Some(Value::Array(ids)) => ids
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Exact item count of a count id (None: unknown id or album).
fn count_for(call: &Call, zone: &ZoneHandle, id: &str) -> Option<usize> {
    let library = &call.state.library;
    if id == "CPLAlbumByPositionLive" {
        let z = zone.read();
        return Some(
            z.albums
                .iter()
                .filter(|a| a.kind == AlbumKind::Album && !a.deleted)
                .count(),
        );
    }
    let index = match IndexId::from_count_id(id)? {
        Ok(index) => index,
        Err(album) => IndexId::Album(library.album_index(zone, album)?),
    };
    zone.read().indexes.get(index).map(<[u32]>::len)
}

fn count_records(
    call: &Call,
    zone: &ZoneHandle,
    ids: &[String],
    out: &mut String,
) -> Result<(), String> {
    let desired = None;
    let r = renderer(call, zone, &desired);
    let now = now_ms();
    for (i, id) in ids.iter().enumerate() {
        let n =
            count_for(call, zone, id).ok_or_else(|| format!("Unknown index count id {id:?}"))?;
        if i > 0 {
            out.push(',');
        }
        r.index_count(out, id, n, now);
    }
    Ok(())
}

/// `HyperionIndexCountLookup` sent as a plain `records/query` (rclone).
fn single_count(call: &Call, zone: &ZoneHandle, query: &Value) -> Response {
    let ids = count_ids(query);
    if ids.is_empty() {
        return call.bad_request(StatusCode::OK, "indexCountID filter required");
    }
    let mut out = String::from("{\"records\":[");
    if let Err(reason) = count_records(call, zone, &ids, &mut out) {
        return call.bad_request(StatusCode::OK, &reason);
    }
    out.push_str("],\"syncToken\":");
    json::string(&mut out, &sync_token(call, zone, None));
    out.push('}');
    call.ok(out)
}

/// `POST .../internal/records/query/batch`: counts, one answer per element, in request order.
pub async fn query_batch(
    State(state): State<SharedState>,
    Path(db): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = match begin(state, &db, &headers, &body, "internal/records/query/batch") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Some(batch) = call.body.get("batch").and_then(Value::as_array) else {
        return call.bad_request(StatusCode::BAD_REQUEST, "Missing batch array");
    };
    let mut out = String::from("{\"batch\":[");
    for (i, element) in batch.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let zone_name = element["zoneID"]["zoneName"].as_str().unwrap_or_default();
        let Some(zone) = call.state.library.zone_in(call.db, zone_name) else {
            element_error(&mut out, "ZONE_NOT_FOUND", "Zone does not exist");
            continue;
        };
        let query = &element["query"];
        if query.get("recordType").and_then(Value::as_str) != Some("HyperionIndexCountLookup") {
            element_error(
                &mut out,
                "BAD_REQUEST",
                "Only HyperionIndexCountLookup is supported in a batch",
            );
            continue;
        }
        let mut records = String::new();
        match count_records(&call, zone, &count_ids(query), &mut records) {
            Ok(()) => {
                out.push_str("{\"records\":[");
                out.push_str(&records);
                out.push_str("],\"syncToken\":");
                json::string(&mut out, &sync_token(&call, zone, None));
                out.push('}');
            }
            Err(reason) => element_error(&mut out, "BAD_REQUEST", &reason),
        }
    }
    out.push_str("]}");
    call.ok(out)
}

fn element_error(out: &mut String, code: &str, reason: &str) {
    out.push_str("{\"serverErrorCode\":");
    json::string(out, code);
    out.push_str(",\"reason\":");
    json::string(out, reason);
    out.push('}');
}

/// `POST .../records/lookup`: current records by name, with freshly signed URLs.
pub async fn records_lookup(
    State(state): State<SharedState>,
    Path(db): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = match begin(state, &db, &headers, &body, "records/lookup") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let zone = match call.zone(&call.body["zoneID"]) {
        Ok(z) => z,
        Err(r) => return *r,
    };
    let Some(wanted) = call.body.get("records").and_then(Value::as_array) else {
        return call.bad_request(StatusCode::BAD_REQUEST, "Missing records array");
    };
    let library = &call.state.library;
    let desired = desired_keys(&call.body);
    let r = renderer(&call, zone, &desired);
    let mut out = String::from("{\"records\":[");
    for (i, w) in wanted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let name = w
            .get("recordName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let as_master = library.ids.parse_master(name).is_some();
        let album = library.album_index(zone, name);
        let asset = library
            .resolve_asset(&zone.info, name)
            .and_then(|i| library.lookup(zone, i));
        match (asset, album) {
            (Some(v), _) if as_master => r.master(&mut out, &v),
            (Some(v), _) => r.asset(&mut out, &v),
            (None, Some(a)) => match library.album(zone, a) {
                Some(v) => r.album(&mut out, &v),
                None => not_found(&mut out, name),
            },
            (None, None) => not_found(&mut out, name),
        }
    }
    out.push_str("],\"syncToken\":");
    json::string(&mut out, &sync_token(&call, zone, None));
    out.push('}');
    call.ok(out)
}

fn not_found(out: &mut String, name: &str) {
    out.push_str("{\"recordName\":");
    json::string(out, name);
    out.push_str(",\"serverErrorCode\":\"NOT_FOUND\",\"reason\":\"Record not found\"}");
}

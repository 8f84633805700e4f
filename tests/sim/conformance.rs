//! Conformance with Apple's recorded replies: for every CloudKit reply shape in the cassettes
//! (zones/list, CheckIndexingState, a listing page, Recently Deleted, the shared zone, the album
//! list, the count batch, records/modify), the simulator's reply has the same keys, JSON types,
//! encodings and nesting. Values are not compared; recorded fields of a master/asset pair must
//! all be on ours when ours has that rendition (or that feature: edit, location, deletion).
//!
//! The cassettes live in `/work/shared/fixtures/cassettes` (override with
//! `ICLOUDPD_CASSETTES`); a missing cassette fails the test.

use crate::support;

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use icloudpd_rs::sim::SimConfig;
use serde_json::{Value, json};
use support::{ALL, Client, PRIMARY, config, pairs, start};

/// One recorded exchange: request path, request body and response body (JSON).
struct Exchange {
    path: String,
    request: Value,
    response: Value,
    content_type: Option<String>,
}

fn untag(v: serde_yaml::Value) -> serde_yaml::Value {
    match v {
        serde_yaml::Value::Tagged(t) => untag(t.value),
        other => other,
    }
}

fn cassette(name: &str) -> Vec<Exchange> {
    let dir = std::env::var("ICLOUDPD_CASSETTES")
        .unwrap_or_else(|_| "/work/shared/fixtures/cassettes".into());
    let path = format!("{dir}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cassette {path}: {e}"));
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("cassette YAML");
    let mut out = Vec::new();
    for it in doc["interactions"].as_sequence().expect("interactions") {
        let uri = untag(it["request"]["uri"].clone());
        let Some(uri) = uri.as_str() else { continue };
        let Some(path) = uri.split("/production/").nth(1) else {
            continue;
        };
        let body = untag(it["response"]["body"]["string"].clone());
        let Some(body) = body.as_str() else { continue };
        let Ok(response) = serde_json::from_str::<Value>(body) else {
            continue;
        };
        let req = untag(it["request"]["body"].clone());
        let request = req
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null);
        let content_type = it["response"]["headers"]["Content-Type"][0]
            .as_str()
            .map(str::to_string);
        out.push(Exchange {
            path: path.split('?').next().unwrap_or_default().to_string(),
            request,
            response,
            content_type,
        });
    }
    out
}

fn find<'a>(ex: &'a [Exchange], path: &str, pred: impl Fn(&Exchange) -> bool) -> &'a Exchange {
    ex.iter()
        .find(|e| e.path == path && pred(e))
        .unwrap_or_else(|| panic!("no recorded {path}"))
}

fn record_type(e: &Exchange) -> &str {
    e.request["query"]["recordType"]
        .as_str()
        .unwrap_or_default()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of `rec` is in `ours` with the same JSON type, recursively (arrays: first items).
fn same_shape(rec: &Value, ours: &Value, path: &str, errs: &mut Vec<String>) {
    if kind(rec) != kind(ours) {
        errs.push(format!(
            "{path}: recorded {} but ours is {}",
            kind(rec),
            kind(ours)
        ));
        return;
    }
    match (rec, ours) {
        (Value::Object(r), Value::Object(o)) => {
            for (k, v) in r {
                match o.get(k) {
                    Some(ov) => same_shape(v, ov, &format!("{path}.{k}"), errs),
                    None => errs.push(format!("{path}.{k}: missing")),
                }
            }
        }
        (Value::Array(r), Value::Array(o)) => {
            if let (Some(r0), Some(o0)) = (r.first(), o.first()) {
                same_shape(r0, o0, &format!("{path}[0]"), errs);
            }
        }
        _ => {}
    }
}

/// Fields some recorded records carry that ours never do (newer or shared-zone extras, and
/// asset-level medium renditions of hand-edited fixtures).
const OPTIONAL: &[&str] = &[
    "fullSizeJPEGSource",
    "importDate",
    "importGroupId",
    "importedBy",
    "importedByBundleIdentifierEnc",
    "importedByDisplayNameEnc",
    "mediaMetaDataEnc",
    "mediaMetaDataType",
    "originalCreationDate",
    "recordModificationDate",
    "videoFrameRate",
    "timeZoneNameEnc",
    "mostRecentAddedDate",
    "originalChoice",
    "adjustmentSourceType",
];

/// The rendition prefix of a `res<P>...` field name.
fn rendition_of(field: &str) -> Option<&str> {
    let rest = field.strip_prefix("res")?;
    [
        "Res",
        "FileType",
        "Width",
        "Height",
        "Fingerprint",
        "FileSize",
    ]
    .iter()
    .find_map(|suffix| rest.strip_suffix(suffix))
}

/// Whether a recorded field must be on our record too.
fn applicable(k: &str, of: &Value, label: &str) -> bool {
    if let Some(p) = rendition_of(k) {
        return !k.ends_with("FileSize") && of.get(format!("res{p}Res")).is_some();
    }
    let edited = of.get("resJPEGFullRes").is_some() || of.get("resVidFullRes").is_some();
    match k {
        _ if OPTIONAL.contains(&k) => false,
        "adjustmentType" => edited,
        "locationEnc" => of.get("locationLatitude").is_some(),
        "keywordsEnc" => of.get("keywordsEnc").is_some(),
        "contributors" | "trashReason" => label.contains("shared"),
        _ => true,
    }
}

/// Compare a recorded record with ours: envelope keys and every applicable field.
fn compare_record(rec: &Value, ours: &Value, label: &str, errs: &mut Vec<String>) {
    for (k, v) in rec.as_object().expect("record") {
        if k == "fields" {
            continue;
        }
        match ours.get(k) {
            Some(o) => same_shape(v, o, &format!("{label}.{k}"), errs),
            None => errs.push(format!("{label}.{k}: missing from the envelope")),
        }
    }
    let of = &ours["fields"];
    for (k, v) in rec["fields"].as_object().expect("fields") {
        if !applicable(k, of, label) {
            continue;
        }
        match of.get(k) {
            None => errs.push(format!("{label}.fields.{k}: missing")),
            Some(o) => {
                same_shape(v, o, &format!("{label}.fields.{k}"), errs);
                if v["type"] != o["type"] {
                    errs.push(format!(
                        "{label}.fields.{k}: type {} vs ours {}",
                        v["type"], o["type"]
                    ));
                }
            }
        }
    }
}

fn b64_len(s: &Value) -> Option<usize> {
    STANDARD.decode(s.as_str()?).ok().map(|b| b.len())
}

/// Encodings of our record's values, as clients decode them.
fn check_encodings(r: &Value, errs: &mut Vec<String>) {
    let name = r["recordName"].as_str().unwrap_or_default();
    for (k, f) in r["fields"].as_object().into_iter().flatten() {
        let v = &f["value"];
        let ok = match f["type"].as_str().unwrap_or_default() {
            "ENCRYPTED_BYTES" => b64_len(v).is_some(),
            "INT64" | "TIMESTAMP" => v.is_i64(),
            "DOUBLE" => v.is_number(),
            "STRING" => v.is_string(),
            "ASSETID" => {
                let bytes = STANDARD
                    .decode(v["fileChecksum"].as_str().unwrap_or("!"))
                    .unwrap_or_default();
                bytes.len() == 21
                    && bytes[0] == 1
                    && b64_len(&v["referenceChecksum"]) == Some(21)
                    && b64_len(&v["wrappingKey"]) == Some(16)
                    && v["size"].is_u64()
                    && v["downloadURL"].is_string()
            }
            "REFERENCE" => v["recordName"].is_string() && v["zoneID"]["zoneName"].is_string(),
            "REFERENCE_LIST" => v
                .as_array()
                .is_some_and(|a| a.iter().all(|x| x["recordName"].is_string())),
            other => {
                errs.push(format!("{name}.{k}: unexpected type {other}"));
                true
            }
        };
        if !ok {
            errs.push(format!("{name}.{k}: bad {} value {v}", f["type"]));
        }
        if let Some(p) = rendition_of(k).filter(|_| k.ends_with("Res"))
            && r["fields"].get(format!("res{p}FileType")).is_none()
        {
            errs.push(format!("{name}: res{p}Res without its FileType"));
        }
    }
    match r["recordType"].as_str() {
        Some("CPLMaster") => {
            let f = &r["fields"];
            if b64_len(&r["recordName"]) != Some(21)
                || f["resOriginalFingerprint"]["value"] != r["recordName"]
                || f["resOriginalRes"]["value"]["fileChecksum"] != r["recordName"]
            {
                errs.push(format!(
                    "{name}: master name, fingerprint and checksum differ"
                ));
            }
        }
        Some("CPLAsset") => {
            let upper_uuid =
                name.len() == 36 && name == name.to_uppercase() && name.matches('-').count() == 4;
            if !upper_uuid {
                errs.push(format!("{name}: CPLAsset name is not an upper-case UUID"));
            }
        }
        _ => {}
    }
}

fn class(m: &Value) -> &'static str {
    let f = &m["fields"];
    let item = f["itemType"]["value"].as_str().unwrap_or_default();
    if item == "com.apple.quicktime-movie" {
        "video"
    } else if f.get("resOriginalAltRes").is_some() {
        "raw"
    } else if f.get("resOriginalVidComplRes").is_some() {
        "live"
    } else {
        "photo"
    }
}

/// Our (master, asset) pair best matching a recorded one (same name encoding, class, edit,
/// location).
fn matching<'a>(ours: &'a [(Value, Value)], rm: &Value, ra: &Value) -> &'a (Value, Value) {
    let want_edit = ra["fields"].get("adjustmentType").is_some();
    let want_loc = ra["fields"].get("locationEnc").is_some();
    let score = |(m, a): &(Value, Value)| {
        let mut s = 0;
        if class(m) == class(rm) {
            s += 8;
        }
        if a["fields"].get("adjustmentType").is_some() == want_edit {
            s += 4;
        }
        if a["fields"].get("locationEnc").is_some() == want_loc {
            s += 2;
        }
        if m["fields"]["itemType"] == rm["fields"]["itemType"] {
            s += 1;
        }
        // One generated master deliberately types filenameEnc STRING; match like with like.
        if m["fields"]["filenameEnc"]["type"] == rm["fields"]["filenameEnc"]["type"] {
            s += 16;
        }
        s
    };
    ours.iter().max_by_key(|p| score(p)).expect("some pair")
}

fn compare_pages(recorded: &Value, ours: &[(Value, Value)], label: &str, errs: &mut Vec<String>) {
    let rec_pairs = pairs(recorded);
    assert!(!rec_pairs.is_empty());
    for (rm, ra) in &rec_pairs {
        let (om, oa) = matching(ours, rm, ra);
        compare_record(rm, om, &format!("{label}:{}:master", class(rm)), errs);
        compare_record(ra, oa, &format!("{label}:{}:asset", class(rm)), errs);
    }
    for (m, a) in ours {
        check_encodings(m, errs);
        check_encodings(a, errs);
    }
    let top_keys: Vec<&String> = recorded.as_object().unwrap().keys().collect();
    assert!(
        top_keys
            .iter()
            .all(|k| ["records", "continuationMarker", "syncToken"].contains(&k.as_str()))
    );
}

fn assert_clean(errs: Vec<String>) {
    let mut uniq: Vec<String> = errs;
    uniq.sort();
    uniq.dedup();
    assert!(
        uniq.is_empty(),
        "{} differences:\n{}",
        uniq.len(),
        uniq.join("\n")
    );
}

async fn all_pairs(c: &Client, zone: &str, record_type: &str) -> Vec<(Value, Value)> {
    c.list_all(zone, record_type, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_replies_have_the_recorded_shape() {
    let (sim, c) = start(SimConfig {
        shared_library: true,
        shared_assets: 30,
        ..config(400)
    })
    .await;
    let ours = all_pairs(&c, PRIMARY, ALL).await;
    let mut errs = Vec::new();

    let photos = cassette("listing_photos.yml");
    let page = find(&photos, "private/records/query", |e| {
        record_type(e) == "CPLAssetAndMasterByAddedDate"
    });
    assert_eq!(
        page.content_type.as_deref(),
        Some("application/json; charset=UTF-8")
    );
    let (_, headers, body) = c
        .post_raw("private", "records/query", &page.request.to_string(), true)
        .await;
    assert_eq!(headers["content-type"], "application/json; charset=UTF-8");
    let our_page: Value = serde_json::from_str(&body).unwrap();
    same_shape(
        &json!({"continuationMarker": "", "syncToken": ""}),
        &our_page,
        "page",
        &mut errs,
    );
    compare_pages(&page.response, &ours, "listing", &mut errs);

    for (file, label) in [
        ("listing_photos_raw_alt_adj.yml", "raw_adj"),
        ("listing_videos.yml", "videos"),
    ] {
        let ex = cassette(file);
        let page = find(&ex, "private/records/query", |e| {
            record_type(e) == "CPLAssetAndMasterByAddedDate"
        });
        compare_pages(&page.response, &ours, label, &mut errs);
    }

    // Recently Deleted (envelope carries expirationTime on both records).
    let deleted = all_pairs(&c, PRIMARY, "CPLAssetAndMasterDeletedByExpungedDate").await;
    let auto = cassette("autodelete_photos.yml");
    let page = find(&auto, "private/records/query", |e| {
        record_type(e) == "CPLAssetAndMasterDeletedByExpungedDate"
            && e.response["records"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
    });
    compare_pages(&page.response, &deleted, "deleted", &mut errs);

    // The shared zone (2025 record with contributors).
    let shared_zone = sim.state().library.zone_names()[1].clone();
    let shared = all_pairs(&c, &shared_zone, ALL).await;
    let page = find(&photos, "shared/records/query", |e| {
        record_type(e) == "CPLAssetAndMasterByAddedDate"
    });
    compare_pages(&page.response, &shared, "shared", &mut errs);
    assert_clean(errs);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_state_album_count_and_modify_replies_have_the_recorded_shape() {
    let (sim, c) = start(config(200)).await;
    let mut errs = Vec::new();
    let albums_ex = cassette("listing_albums.yml");

    let rec = find(&albums_ex, "private/zones/list", |_| true);
    let ours = c.ok("private", "zones/list", &json!({})).await;
    same_shape(&rec.response, &ours, "zones/list", &mut errs);

    let rec = find(&albums_ex, "private/records/query", |e| {
        record_type(e) == "CheckIndexingState"
    });
    let ours = c.ok("private", "records/query", &rec.request).await;
    same_shape(&rec.response, &ours, "CheckIndexingState", &mut errs);
    compare_record(
        &rec.response["records"][0],
        &ours["records"][0],
        "CheckIndexingState",
        &mut errs,
    );

    let rec = find(&albums_ex, "private/records/query", |e| {
        record_type(e) == "CPLAlbumByPositionLive"
    });
    let ours = c.ok("private", "records/query", &rec.request).await;
    let rec_albums = rec.response["records"].as_array().unwrap();
    let our_albums = ours["records"].as_array().unwrap();
    compare_record(&rec_albums[0], &our_albums[0], "root", &mut errs);
    assert_eq!(our_albums[0]["recordName"], rec_albums[0]["recordName"]);
    let ordinary = our_albums
        .iter()
        .find(|a| a["fields"]["albumType"]["value"] == 0 && a["fields"].get("isDeleted").is_none())
        .unwrap();
    for r in &rec_albums[1..] {
        compare_record(r, ordinary, "album", &mut errs);
    }
    for a in our_albums {
        check_encodings(a, &mut errs);
    }

    let photos = cassette("listing_photos.yml");
    let rec = find(&photos, "private/internal/records/query/batch", |_| true);
    let ours = c
        .ok("private", "internal/records/query/batch", &rec.request)
        .await;
    same_shape(&rec.response, &ours, "count batch", &mut errs);
    compare_record(
        &rec.response["batch"][0]["records"][0],
        &ours["batch"][0]["records"][0],
        "count",
        &mut errs,
    );
    assert_eq!(
        ours["batch"][0]["records"][0]["recordName"],
        "CPLAssetByAddedDate"
    );

    let part1 = cassette("download_autodelete_photos_part1.yml");
    let rec = find(&part1, "private/records/modify", |e| {
        e.response.get("records").is_some()
    });
    let (_, asset) = &pairs(&c.page(PRIMARY, ALL, &[], 0, 2).await)[0];
    let mut body = rec.request.clone();
    body["operations"][0]["record"]["recordName"] = asset["recordName"].clone();
    body["operations"][0]["record"]["recordChangeTag"] = asset["recordChangeTag"].clone();
    let ours = c.ok("private", "records/modify", &body).await;
    same_shape(&rec.response, &ours, "records/modify", &mut errs);
    let rec_keys: Vec<&String> = rec.response["records"][0]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let our_keys: Vec<&String> = ours["records"][0].as_object().unwrap().keys().collect();
    assert_eq!(rec_keys, our_keys, "modify answer envelope, key for key");
    assert_eq!(
        ours["records"][0]["fields"],
        rec.response["records"][0]["fields"]
    );
    assert_clean(errs);

    // The recorded count request and listing request work verbatim (icloudpd's own bodies).
    let listing = find(&photos, "private/records/query", |e| {
        record_type(e) == "CPLAssetAndMasterByAddedDate"
    });
    let v = c.ok("private", "records/query", &listing.request).await;
    assert_eq!(v["records"].as_array().unwrap().len(), 200);
    let by_type: HashMap<&str, usize> =
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .fold(HashMap::new(), |mut m, r| {
                *m.entry(r["recordType"].as_str().unwrap()).or_default() += 1;
                m
            });
    assert_eq!(by_type["CPLMaster"], 100);
    sim.shutdown().await;
}

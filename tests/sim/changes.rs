//! Writes and the change feed over HTTP: `records/modify`, `changes/zone` after every kind of
//! mutation, token errors and the `token-expire` fault.

use crate::support;

use std::collections::HashSet;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{ALL, Client, PRIMARY, config, pairs, record_name, start, without_download_urls};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn all_count(c: &Client) -> i64 {
    c.counts(PRIMARY, &["CPLAssetByAssetDateWithoutHiddenOrDeleted"])
        .await[0]
}

fn delete_body(asset: &Value) -> Value {
    json!({"atomic": true, "desiredKeys": ["isDeleted"], "operations": [{"operationType": "update",
        "record": {"fields": {"isDeleted": {"value": 1}}, "recordChangeTag": asset["recordChangeTag"],
        "recordName": asset["recordName"], "recordType": "CPLAsset"}}], "zoneID": {"zoneName": PRIMARY}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_modify_delete_shifts_ranks_and_counts_at_once() {
    let (sim, c) = start(config(300)).await;
    let first = pairs(&c.page(PRIMARY, ALL, &[], 0, 6).await);
    let (m0, a0) = first[0].clone();
    let before = all_count(&c).await;
    let deleted_before = c.counts(PRIMARY, &["CPLAssetDeletedByExpungedDate"]).await[0];
    let old_token = c.page(PRIMARY, ALL, &[], 0, 2).await["syncToken"].clone();

    let t = now_ms();
    let v = c.ok("private", "records/modify", &delete_body(&a0)).await;
    let r = &v["records"][0];
    assert_eq!(r["recordName"], a0["recordName"]);
    assert_eq!(r["recordType"], "CPLAsset");
    assert_eq!(
        r["fields"],
        json!({"isDeleted": {"value": 1, "type": "INT64"}})
    );
    assert_ne!(r["recordChangeTag"], a0["recordChangeTag"]);
    assert!(r.get("zoneID").is_none(), "as recorded");
    let expiration = r["expirationTime"].as_i64().expect("expirationTime");
    assert!(
        (expiration - (t / 1000 + 40 * 86_400)).abs() < 120,
        "now + 40 days, in seconds"
    );
    assert!(v["syncToken"].is_string() && v["syncToken"] != old_token);

    // Ranks shift down at once (icloudpd lowers its next startRank by one).
    let after = pairs(&c.page(PRIMARY, ALL, &[], 0, 6).await);
    assert_eq!(record_name(&after[0].0), record_name(&first[1].0));
    assert_eq!(all_count(&c).await, before - 1);
    assert_eq!(
        c.counts(PRIMARY, &["CPLAssetDeletedByExpungedDate"]).await[0],
        deleted_before + 1
    );
    let trash = pairs(
        &c.page(PRIMARY, "CPLAssetAndMasterDeletedByExpungedDate", &[], 0, 2)
            .await,
    );
    let (dm, da) = &trash[0];
    assert_eq!(
        record_name(dm),
        record_name(&m0),
        "most recently deleted first"
    );
    for rec in [dm, da] {
        assert_eq!(rec["fields"]["isDeleted"]["value"], 1);
        let expunged = rec["fields"]["dateExpunged"]["value"].as_i64().unwrap();
        assert!(
            (expunged - (t + 30 * 86_400_000)).abs() < 120_000,
            "now + 30 days"
        );
    }

    // Idempotent on a deleted asset (stale tag accepted); unknown records error per record.
    let again = c.ok("private", "records/modify", &delete_body(&a0)).await;
    assert_eq!(again["records"][0]["fields"]["isDeleted"]["value"], 1);
    assert_eq!(all_count(&c).await, before - 1);
    let (_, a1) = after[0].clone();
    let mut body = delete_body(&a1);
    body["operations"]
        .as_array_mut()
        .unwrap()
        .push(json!({"operationType": "update", "record": {"recordName": "NOPE", "recordType": "CPLAsset", "fields": {"isDeleted": {"value": 1}}}}));
    let v = c.ok("private", "records/modify", &body).await;
    assert_eq!(v["records"][0]["serverErrorCode"], "ATOMIC_ERROR");
    assert_eq!(v["records"][1]["serverErrorCode"], "BAD_REQUEST");
    assert_eq!(all_count(&c).await, before - 1, "atomic: nothing applied");
    body["atomic"] = json!(false);
    let v = c.ok("private", "records/modify", &body).await;
    assert_eq!(v["records"][0]["fields"]["isDeleted"]["value"], 1);
    assert_eq!(all_count(&c).await, before - 2);
    // Restore through records/modify too (isDeleted null).
    let mut body = delete_body(&a1);
    body["operations"][0]["record"]["fields"]["isDeleted"]["value"] = Value::Null;
    let v = c.ok("private", "records/modify", &body).await;
    assert!(v["records"][0]["fields"].get("isDeleted").is_none());
    assert_eq!(all_count(&c).await, before - 1);
    sim.shutdown().await;
}

fn of_type<'a>(records: &'a [Value], t: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["recordType"] == t).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_feed_shows_every_mutation_in_the_documented_shape() {
    let (sim, c) = start(config(400)).await;
    let listing = c.page(PRIMARY, ALL, &[], 0, 40).await;
    let mut token = listing["syncToken"].as_str().unwrap().to_string();
    let photo = pairs(&listing)
        .into_iter()
        .find(|(m, _)| m["fields"]["itemType"]["value"] == "public.heic")
        .expect("a HEIC photo");
    let id = record_name(&photo.0);
    let asset_name = record_name(&photo.1);

    // The records/query token is a valid changes/zone token: nothing changed yet.
    let caught_up = c.changes(PRIMARY, Some(&token)).await;
    assert_eq!(caught_up["records"], json!([]));
    assert_eq!(caught_up["moreComing"], false);
    assert_eq!(caught_up["syncToken"].as_str(), Some(token.as_str()));

    let mut step = async |op: Value| -> (Value, Vec<Value>) {
        let (status, out) = c.mutate(&op).await;
        assert_eq!(status, StatusCode::OK, "{op}: {out}");
        let (records, next) = c.all_changes(PRIMARY, &token).await;
        token = next;
        let info = of_type(&records, "CPLLibraryInfo");
        assert_eq!(info.len(), 1, "{op}: one CPLLibraryInfo");
        assert!(info[0]["fields"]["photosCount"]["value"].is_i64());
        (out, records)
    };

    let (_, r) = step(json!({"op": "favorite", "asset_ids": [id]})).await;
    assert_eq!(
        of_type(&r, "CPLAsset")[0]["fields"]["isFavorite"]["value"],
        1
    );
    assert!(of_type(&r, "CPLMaster").is_empty());
    let (_, r) = step(json!({"op": "unfavorite", "asset_ids": [id]})).await;
    assert_eq!(
        of_type(&r, "CPLAsset")[0]["fields"]["isFavorite"]["value"],
        0
    );
    let (_, r) = step(json!({"op": "hide", "asset_ids": [id]})).await;
    assert_eq!(of_type(&r, "CPLAsset")[0]["fields"]["isHidden"]["value"], 1);
    let (_, r) = step(json!({"op": "unhide", "asset_ids": [id]})).await;
    assert_eq!(of_type(&r, "CPLAsset")[0]["fields"]["isHidden"]["value"], 0);

    let (_, r) = step(json!({"op": "delete", "asset_ids": [id]})).await;
    for t in ["CPLMaster", "CPLAsset"] {
        let rec = of_type(&r, t)[0];
        assert_eq!(rec["fields"]["isDeleted"]["value"], 1, "{t}");
        assert!(rec["fields"]["dateExpunged"]["value"].is_i64(), "{t}");
    }
    let (_, r) = step(json!({"op": "restore", "asset_ids": [id]})).await;
    for t in ["CPLMaster", "CPLAsset"] {
        assert!(
            of_type(&r, t)[0]["fields"].get("isDeleted").is_none(),
            "restore clears isDeleted on {t}"
        );
    }

    let (_, r) = step(json!({"op": "edit", "asset_ids": [id]})).await;
    let edited = of_type(&r, "CPLAsset")[0];
    assert_eq!(
        edited["fields"]["adjustmentType"]["value"],
        "com.apple.photo"
    );
    let full = &edited["fields"]["resJPEGFullRes"]["value"];
    assert!(full["size"].as_u64().unwrap() >= 1024 && full["fileChecksum"].is_string());
    assert_eq!(
        edited["fields"]["resJPEGThumbFileType"]["value"],
        "public.jpeg"
    );
    let (_, r) = step(json!({"op": "edit", "asset_ids": [id]})).await;
    let again = &of_type(&r, "CPLAsset")[0]["fields"]["resJPEGFullRes"]["value"]["fileChecksum"];
    assert_ne!(again, &full["fileChecksum"], "a new edit is new content");

    let (created, r) = step(json!({"op": "album_create", "name": "Été 2025"})).await;
    let album_id = created["album_ids"][0].as_str().unwrap().to_string();
    assert_eq!(record_name(of_type(&r, "CPLAlbum")[0]), album_id);
    let (_, r) = step(json!({"op": "album_add", "album": album_id, "asset_ids": [id]})).await;
    let rel = of_type(&r, "CPLContainerRelation")[0];
    assert_eq!(record_name(rel), format!("{asset_name}-IN-{album_id}"));
    assert_eq!(rel["fields"]["containerId"]["value"], album_id.as_str());
    assert_eq!(rel["fields"]["itemId"]["value"], asset_name.as_str());
    let album = of_type(&r, "CPLAlbum")[0];
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(album["fields"]["albumNameEnc"]["value"].as_str().unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), "Été 2025");
    let (_, r) = step(json!({"op": "album_remove", "album": album_id, "asset_ids": [id]})).await;
    let gone: Vec<&Value> = r.iter().filter(|x| x["deleted"] == true).collect();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0]["recordType"], Value::Null);
    assert_eq!(record_name(gone[0]), format!("{asset_name}-IN-{album_id}"));
    assert!(gone[0].get("fields").is_none());

    let (_, r) = step(json!({"op": "purge", "asset_ids": [id]})).await;
    let gone: HashSet<String> = r
        .iter()
        .filter(|x| x["deleted"] == true && x["recordType"].is_null())
        .map(record_name)
        .collect();
    assert!(gone.contains(&id) && gone.contains(&asset_name), "{gone:?}");

    let (_, r) = step(json!({"op": "add", "count": 2})).await;
    assert_eq!(of_type(&r, "CPLMaster").len(), 2);
    assert_eq!(of_type(&r, "CPLAsset").len(), 2);
    let newest = pairs(&c.page(PRIMARY, ALL, &[], 0, 2).await);
    assert!(
        of_type(&r, "CPLMaster")
            .iter()
            .any(|m| record_name(m) == record_name(&newest[0].0))
    );

    // Caught up: same token back, nothing more; "" means caught up too.
    let end = c.changes(PRIMARY, Some(&token)).await;
    assert_eq!(end["records"], json!([]));
    assert_eq!(end["syncToken"].as_str(), Some(token.as_str()));
    let empty = c.changes(PRIMARY, Some("")).await;
    assert_eq!(empty["records"], json!([]));
    assert_eq!(empty["moreComing"], false);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_history_pages_tokens_zones_and_desired_keys() {
    let (sim, c) = start(config(1000)).await;
    // Absent token: full history, at most 200 records a page, token chaining to the end.
    let mut token: Option<String> = None;
    let mut total = 0;
    let mut pages = 0;
    loop {
        let z = c.changes(PRIMARY, token.as_deref()).await;
        let n = z["records"].as_array().unwrap().len();
        assert!(n <= 200);
        total += n;
        pages += 1;
        let next = z["syncToken"].as_str().unwrap().to_string();
        // Idempotent: asking again with the same token gives the same page (its download
        // URLs signed anew).
        if pages == 3 {
            let again = c.changes(PRIMARY, token.as_deref()).await;
            assert_eq!(without_download_urls(&again), without_download_urls(&z));
        }
        token = Some(next);
        if z["moreComing"] == false {
            break;
        }
    }
    assert!(total >= 2000, "{total} records");
    assert!(pages >= total / 200);
    assert_eq!(token, sim.state().library.zone_token(PRIMARY));
    // resultsLimit above 200 is capped; a smaller one is honoured.
    let body = json!({"zones": [{"zoneID": {"zoneName": PRIMARY}, "resultsLimit": 5000}]});
    let v = c.ok("private", "changes/zone", &body).await;
    assert_eq!(v["zones"][0]["records"].as_array().unwrap().len(), 200);
    let body = json!({"zones": [{"zoneID": {"zoneName": PRIMARY}, "resultsLimit": 7}]});
    let v = c.ok("private", "changes/zone", &body).await;
    assert_eq!(v["zones"][0]["records"].as_array().unwrap().len(), 7);

    // rclone's form: desiredKeys in the zone entry, no resultsLimit; several zones at once.
    let good = sim.state().library.zone_token(PRIMARY).unwrap();
    let garbage = base64::engine::general_purpose::STANDARD.encode([9u8; 33]);
    let body = json!({"zones": [
        {"zoneID": {"zoneName": PRIMARY}, "desiredKeys": ["isFavorite"]},
        {"zoneID": {"zoneName": "SharedSync"}, "syncToken": good},
        {"zoneID": {"zoneName": PRIMARY}, "syncToken": garbage},
        {"zoneID": {"zoneName": PRIMARY}, "syncToken": &good[..20]},
        {"zoneID": {"zoneName": PRIMARY}, "syncToken": good},
    ]});
    let (status, v) = c.post("private", "changes/zone", &body).await;
    assert_eq!(status, StatusCode::OK);
    let zones = v["zones"].as_array().unwrap();
    assert_eq!(zones.len(), 5);
    for r in zones[0]["records"].as_array().unwrap() {
        let keys: Vec<&String> = r["fields"]
            .as_object()
            .map(|f| f.keys().collect())
            .unwrap_or_default();
        assert!(keys.iter().all(|k| *k == "isFavorite"), "{keys:?}");
    }
    assert_eq!(zones[1]["serverErrorCode"], "ZONE_NOT_FOUND");
    assert_eq!(zones[2]["serverErrorCode"], "BAD_REQUEST");
    assert_eq!(zones[2]["reason"], "Unknown sync continuation type");
    assert_eq!(zones[2]["zoneID"]["zoneName"], PRIMARY);
    assert_eq!(zones[3]["serverErrorCode"], "BAD_REQUEST");
    assert_eq!(zones[3]["reason"], "Invalid continuation format");
    assert_eq!(zones[4]["records"], json!([]));
    assert_eq!(zones[4]["moreComing"], false);
    // A database token is not a zone token.
    let db = c.ok("private", "changes/database", &json!({})).await["syncToken"]
        .as_str()
        .unwrap()
        .to_string();
    let z = c.changes(PRIMARY, Some(&db)).await;
    assert_eq!(z["serverErrorCode"], "BAD_REQUEST");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expire_fires_only_when_armed_and_at_its_rate() {
    let (sim, c) = start(config(30)).await;
    let token = sim.state().library.zone_token(PRIMARY).unwrap();
    let errors = async |n: usize, token: Option<&str>| {
        let mut e = 0;
        for _ in 0..n {
            if c.changes(PRIMARY, token)
                .await
                .get("serverErrorCode")
                .is_some()
            {
                e += 1;
            }
        }
        e
    };
    assert_eq!(errors(50, Some(&token)).await, 0, "not armed");
    let (status, _) = c.admin_post("faults", &json!({"token-expire": 0.3})).await;
    assert_eq!(status, StatusCode::OK);
    let fired = errors(300, Some(&token)).await;
    assert!((50..=130).contains(&fired), "fired {fired} of 300 at p=0.3");
    // Without a token there is nothing to expire (and the fault is not consulted).
    let consulted = |v: &Value| v["consulted"]["token-expire"].as_u64().unwrap();
    let before = consulted(&serde_json::from_str(&c.admin_get("faults").await.1).unwrap());
    assert_eq!(errors(40, None).await, 0);
    let after = consulted(&serde_json::from_str(&c.admin_get("faults").await.1).unwrap());
    assert_eq!(before, after);
    let (status, _) = c.admin_post("faults", &json!({"clear": true})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(errors(50, Some(&token)).await, 0, "cleared");
    sim.shutdown().await;
}

//! The simulator's CloudKit error answers over HTTP: unsigned, malformed, ADP, unknown zone
//! or index.

use crate::support;

use icloudpd_rs::sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{ALL, Client, PRIMARY, config, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_malformed_adp_and_unknown_zone_answers() {
    let (sim, c) = start(config(50)).await;
    let query =
        json!({"query": {"recordType": "CheckIndexingState"}, "zoneID": {"zoneName": PRIMARY}})
            .to_string();
    // Unsigned: 401 with the exact body.
    let (status, headers, body) = c.post_raw("private", "records/query", &query, false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["content-type"], "application/json; charset=UTF-8");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"serverErrorCode": "AUTHENTICATION_REQUIRED", "reason": "Invalid global session"})
    );
    // A bad cookie is no better.
    let bad = Client {
        cookie: "X-APPLE-WEBAUTH-TOKEN=forged".into(),
        ..c.clone()
    };
    assert_eq!(
        bad.post_raw("private", "zones/list", "{}", true).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Malformed JSON: 400 with a CloudKit error.
    for junk in ["{\"query\": ", "not json", "[1, 2]"] {
        let (status, headers, body) = c.post_raw("private", "records/query", junk, true).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{junk}");
        assert_eq!(headers["content-type"], "application/json; charset=UTF-8");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["serverErrorCode"], "BAD_REQUEST");
    }
    // Signed: the recorded shape, any query string (none at all here).
    let url = format!("{}{}/private/records/query", c.endpoint, support::BASE);
    let resp = c
        .http
        .post(url)
        .header("Cookie", &c.cookie)
        .body(query.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("x-apple-request-uuid"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["records"][0]["fields"]["state"]["value"], "FINISHED");
    assert_eq!(v["records"][0]["fields"]["progress"]["value"], 100);
    assert!(
        v["records"][0]["recordName"]
            .as_str()
            .unwrap()
            .starts_with('_')
    );
    // Unknown zone: 404 in rclone's shape.
    let body = json!({"query": {"recordType": ALL}, "zoneID": {"zoneName": "SharedSync"}});
    let (status, v) = c.post("private", "records/query", &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["serverErrorCode"], "ZONE_NOT_FOUND");
    assert_eq!(v["reason"], "Zone does not exist");
    sim.shutdown().await;

    // Advanced Data Protection: every private call refused, shared still answers.
    let (sim, c) = start(SimConfig {
        adp: true,
        ..config(10)
    })
    .await;
    for path in [
        "zones/list",
        "records/query",
        "changes/database",
        "internal/records/query/batch",
    ] {
        let (status, v) = c.post("private", path, &json!({})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            v,
            json!({"serverErrorCode": "ACCESS_DENIED", "reason": "private db access disabled for this account"})
        );
    }
    let (status, v) = c.post("shared", "zones/list", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["zones"].is_array());
    sim.shutdown().await;
}

//! Error classification and retries of the client, against a scripted server.

use crate::scripted;
use crate::support;

use icloudpd_rs::cloudkit::{Change, CloudKitError, Database, ZoneChanges};
use icloudpd_rs::model::Library;
use scripted::{Reply, serve};
use serde_json::json;
use support::client_for;

fn finished() -> serde_json::Value {
    json!({"records": [{"recordName": "_x", "recordType": "CheckIndexingState",
        "fields": {"progress": {"value": 100, "type": "INT64"}, "state": {"value": "FINISHED", "type": "STRING"}}}],
        "syncToken": "T"})
}

fn shared_lib() -> Library {
    Library {
        database: "shared".into(),
        zone: "SharedSync-1".into(),
        owner: None,
    }
}

#[tokio::test]
async fn transient_failures_are_retried_until_success() {
    let server = serve(|_, _, n| match n {
        0 => Reply::Full(
            503,
            vec![("retry-after", "0".into())],
            "Service Temporary Unavailable".into(),
        ),
        1 => Reply::Full(
            429,
            vec![("retry-after", "0".into())],
            r#"{"serverErrorCode":"THROTTLED"}"#.into(),
        ),
        2 => Reply::Reset,
        3 => Reply::Full(
            200,
            vec![("content-type", "application/json".into())],
            r#"{"records": [{"recordN"#.into(),
        ),
        4 => Reply::Json(
            json!({"serverErrorCode": "TRY_AGAIN_LATER", "reason": "Sync zone CAS Op-Lock failed"}),
        ),
        5 => Reply::Full(502, vec![], "bad gateway".into()),
        _ => Reply::Json(finished()),
    })
    .await;
    let client = client_for(&server.url());
    let state = client
        .indexing_state(&Library::primary())
        .await
        .expect("retried to success");
    assert!(state.is_finished());
    assert_eq!(state.progress, Some(100));
    assert_eq!(server.calls(), 7);
}

#[tokio::test]
async fn persistent_throttling_gives_up_after_the_budget() {
    let server = serve(|_, _, _| Reply::Full(503, vec![], "busy".into())).await;
    let client = client_for(&server.url());
    let err = client
        .indexing_state(&Library::primary())
        .await
        .expect_err("gives up");
    assert!(
        matches!(err, CloudKitError::RetriesExhausted { attempts: 10, .. }),
        "{err:?}"
    );
    assert_eq!(server.calls(), 10);
    assert!(err.to_string().contains("CheckIndexingState"));
}

#[tokio::test]
async fn session_expiry_is_typed_and_not_retried() {
    for (status, body) in [
        (
            401,
            r#"{"serverErrorCode":"AUTHENTICATION_REQUIRED","reason":"Invalid global session"}"#,
        ),
        (421, "Missing X-APPLE-WEBAUTH-USER cookie"),
        (403, "<html>Forbidden</html>"),
    ] {
        let server = serve(move |_, _, _| Reply::Full(status, vec![], body.into())).await;
        let client = client_for(&server.url());
        let err = client
            .indexing_state(&Library::primary())
            .await
            .expect_err("expired");
        assert!(err.needs_reauthentication(), "{status}: {err:?}");
        assert!(matches!(err, CloudKitError::SessionExpired { status: s, .. } if s == status));
        assert_eq!(server.calls(), 1, "{status} must not be retried");
    }
}

#[tokio::test]
async fn web_access_refusals_say_what_to_change() {
    let bodies = [
        (
            200,
            r#"{"serverErrorCode":"ACCESS_DENIED","reason":"private db access disabled for this account"}"#,
        ),
        (
            403,
            r#"{"serverErrorCode":"ACCESS_DENIED","reason":"private db access disabled for this account"}"#,
        ),
        (
            200,
            r#"{"serverErrorCode":"ZONE_NOT_FOUND","reason":"Zone does not exist"}"#,
        ),
        (
            200,
            r#"{"serverErrorCode":"AUTHENTICATION_FAILED","reason":"no auth method found"}"#,
        ),
    ];
    for (status, body) in bodies {
        let server = serve(move |_, _, _| {
            Reply::Full(
                status,
                vec![("content-type", "application/json".into())],
                body.into(),
            )
        })
        .await;
        let client = client_for(&server.url());
        let err = client
            .indexing_state(&Library::primary())
            .await
            .expect_err("refused");
        assert!(
            matches!(err, CloudKitError::WebAccessDisabled { .. }),
            "{body}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("Advanced Data Protection")
                && msg.contains("Access iCloud Data on the Web")
        );
        assert_eq!(server.calls(), 1);
    }
}

#[tokio::test]
async fn missing_shared_zone_and_permanent_errors() {
    let server = serve(|_, _, _| {
        Reply::Json(json!({"serverErrorCode": "ZONE_NOT_FOUND", "reason": "Zone does not exist"}))
    })
    .await;
    let client = client_for(&server.url());
    let err = client
        .indexing_state(&shared_lib())
        .await
        .expect_err("gone");
    assert!(
        matches!(err, CloudKitError::ZoneNotFound { ref zone, .. } if zone == "SharedSync-1"),
        "{err:?}"
    );

    let server = serve(|_, _, _| {
        Reply::Full(
            400,
            vec![],
            r#"{"serverErrorCode":"BAD_REQUEST","reason":"Unknown index"}"#.into(),
        )
    })
    .await;
    let client = client_for(&server.url());
    let err = client
        .indexing_state(&Library::primary())
        .await
        .expect_err("permanent");
    assert!(
        matches!(err, CloudKitError::Server { ref code, .. } if code == "BAD_REQUEST"),
        "{err:?}"
    );
    assert_eq!(server.calls(), 1);

    let server = serve(|_, _, _| Reply::Full(404, vec![], "<html>nope</html>".into())).await;
    let client = client_for(&server.url());
    let err = client
        .indexing_state(&Library::primary())
        .await
        .expect_err("permanent");
    assert!(
        matches!(err, CloudKitError::Http { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn zone_token_errors_are_outcomes_with_or_without_a_token() {
    let server = serve(|_, body, n| {
        assert_eq!(body["zones"][0]["zoneID"]["zoneName"], "PrimarySync");
        match n {
            0 => Reply::Json(json!({"zones": [{"zoneID": {"zoneName": "PrimarySync"},
                "serverErrorCode": "BAD_REQUEST", "reason": "Unknown sync continuation type"}]})),
            1 => Reply::Json(json!({"zones": [{"zoneID": {"zoneName": "PrimarySync"}, "syncToken": "", "moreComing": false,
                "serverErrorCode": "BAD_REQUEST", "reason": "Invalid continuation format"}]})),
            2 => Reply::Json(json!({"zones": [{"zoneID": {"zoneName": "PrimarySync"}, "syncToken": "NEW",
                "moreComing": false, "serverErrorCode": "BAD_REQUEST", "reason": "expired"}]})),
            3 => Reply::Json(json!({"zones": [{"zoneID": {"zoneName": "PrimarySync"},
                "serverErrorCode": "ZONE_NOT_FOUND", "reason": "Zone does not exist"}]})),
            4 => Reply::Json(json!({"zones": [{"zoneID": {"zoneName": "PrimarySync"},
                "serverErrorCode": "TRY_AGAIN_LATER", "reason": "busy"}]})),
            _ => Reply::Json(json!({"zones": [{"zoneID": {"zoneName": "PrimarySync"}, "syncToken": "T2",
                "moreComing": false, "records": []}]})),
        }
    })
    .await;
    let client = client_for(&server.url());
    let lib = Library::primary();
    let r = client
        .zone_changes(&lib, Some("garbage"))
        .await
        .expect("outcome");
    assert!(
        matches!(r, ZoneChanges::TokenRejected { ref code, sync_token: None, .. } if code == "BAD_REQUEST"),
        "{r:?}"
    );
    let r = client
        .zone_changes(&lib, Some("truncated"))
        .await
        .expect("outcome");
    assert!(
        matches!(
            r,
            ZoneChanges::TokenRejected {
                sync_token: None,
                ..
            }
        ),
        "{r:?}"
    );
    let r = client
        .zone_changes(&lib, Some("old"))
        .await
        .expect("outcome");
    assert!(
        matches!(r, ZoneChanges::TokenRejected { sync_token: Some(ref t), .. } if t == "NEW"),
        "{r:?}"
    );
    let r = client.zone_changes(&lib, Some("x")).await.expect("outcome");
    assert!(matches!(r, ZoneChanges::ZoneNotFound { .. }), "{r:?}");
    // A transient code inside the zone entry is retried.
    let r = client.zone_changes(&lib, Some("x")).await.expect("outcome");
    let ZoneChanges::Page(p) = r else {
        panic!("page expected")
    };
    assert_eq!(p.sync_token.as_deref(), Some("T2"));
    assert!(!p.more_coming && p.changes.is_empty());
    assert_eq!(server.calls(), 6);
}

#[tokio::test]
async fn zone_feed_chains_through_empty_pages() {
    let server = serve(|_, body, _| {
        let token = body["zones"][0]["syncToken"].as_str().map(str::to_string);
        let (records, next, more) = match token.as_deref() {
            None => (
                json!([scripted::master_json(1), scripted::asset_json(1)]),
                "p1",
                true,
            ),
            Some("p1") => (json!([]), "p2", true),
            Some("p2") => (
                json!([{"recordName": "A0000002", "recordType": "CPLAsset", "fields": {
                    "masterRef": {"value": {"recordName": "M0000002"}}, "isDeleted": {"value": 1}}},
                    {"recordName": "GONE", "recordType": null, "deleted": true}]),
                "p3",
                false,
            ),
            _ => (json!([]), "p3", false),
        };
        Reply::Json(
            json!({"zones": [{"zoneID": {"zoneName": "PrimarySync"}, "records": records,
            "syncToken": next, "moreComing": more}]}),
        )
    })
    .await;
    let client = client_for(&server.url());
    let lib = Library::primary();
    let mut token: Option<String> = None;
    let mut changes = Vec::new();
    loop {
        let ZoneChanges::Page(page) = client
            .zone_changes(&lib, token.as_deref())
            .await
            .expect("page")
        else {
            panic!("page expected");
        };
        changes.extend(page.changes);
        token = page.sync_token;
        if !page.more_coming {
            break;
        }
    }
    assert_eq!(token.as_deref(), Some("p3"));
    assert_eq!(changes.len(), 3);
    assert!(matches!(&changes[0], Change::Asset(a) if a.asset.id == "M0000001"));
    assert!(matches!(&changes[1], Change::Removed { record_name } if record_name == "GONE"));
    assert!(
        matches!(&changes[2], Change::AssetRecord(c) if c.deleted && c.master_id == "M0000002")
    );
}

#[tokio::test]
async fn database_changes_list_zones_and_tokens() {
    let server = serve(|call, body, _| {
        assert_eq!(call, "changes/database");
        if body.get("syncToken").is_some() {
            Reply::Json(json!({"syncToken": "DB2", "moreComing": false, "zones": []}))
        } else {
            Reply::Json(json!({"syncToken": "DB1", "moreComing": false, "zones": [
                {"zoneID": {"zoneName": "PrimarySync", "ownerRecordName": "_o"}, "syncToken": "Z1"},
                {"zoneID": {"zoneName": "SharedSync-9"}, "syncToken": "Z2"}]}))
        }
    })
    .await;
    let client = client_for(&server.url());
    let all = client
        .database_changes(Database::Private, None)
        .await
        .expect("changes");
    assert_eq!(all.sync_token.as_deref(), Some("DB1"));
    assert_eq!(all.zones.len(), 2);
    assert_eq!(all.zones[0].library.zone, "PrimarySync");
    assert_eq!(all.zones[0].library.owner.as_deref(), Some("_o"));
    assert_eq!(all.zones[1].sync_token.as_deref(), Some("Z2"));
    let none = client
        .database_changes(Database::Private, Some("DB1"))
        .await
        .expect("changes");
    assert!(none.zones.is_empty() && !none.more_coming);
}

#[tokio::test]
async fn stale_change_tag_on_delete_is_a_typed_error() {
    let server = serve(|call, body, _| {
        assert_eq!(call, "records/modify");
        assert_eq!(body["operations"][0]["record"]["recordChangeTag"], "old");
        Reply::Json(json!({"records": [{"recordName": "A1", "serverErrorCode": "CONFLICT", "reason": "oplock"}]}))
    })
    .await;
    let client = client_for(&server.url());
    let err = client
        .move_to_recently_deleted(&Library::primary(), "A1", Some("old"))
        .await
        .expect_err("conflict");
    assert!(
        matches!(err, CloudKitError::Server { ref code, .. } if code == "CONFLICT"),
        "{err:?}"
    );
}

//! Refusals of the simulator's sign-in service: wrong password, unknown account, expired
//! sessions, FIDO and locked accounts, and malformed input (always a 4xx, never a crash).

use crate::auth_support;

use reqwest::{Method, StatusCode};
use serde_json::json;

use auth_support::{Client, SrpClient, Style, config, start};
use icloudpd_rs::sim::SimConfig;

#[tokio::test]
async fn wrong_password_and_unknown_account() {
    let sim = start(config()).await;
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Py);
    let e2 = c.signin(&acct.username, "not the password").await;
    assert_eq!(e2.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        e2.header("content-type"),
        Some("application/json;charset=UTF-8")
    );
    assert_eq!(e2.json()["serviceErrors"][0]["code"], json!("-20101"));
    assert!(e2.header("x-apple-session-token").is_none());

    let e2 = c.signin("nobody@example.com", &acct.password).await;
    assert_eq!(e2.status, StatusCode::UNAUTHORIZED);

    // The Apple ID is case-insensitive; the proof uses the name as sent.
    let e2 = c
        .signin(&acct.username.to_uppercase(), &acct.password)
        .await;
    assert_eq!(e2.status, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn expired_web_sessions_are_refused_everywhere() {
    let sim = start(config()).await;
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Py);
    c.signin(&acct.username, &acct.password).await;
    c.idmsa(Method::POST, "/repair/complete", Some("{}".into()), false)
        .await;
    assert_eq!(c.account_login().await.status, StatusCode::OK);
    assert!(
        sim.state()
            .auth
            .web_session(&c.cloudkit_headers())
            .is_some()
    );

    sim.state().auth.expire_web_sessions();
    let e6 = c.validate().await;
    assert_eq!(e6.status, StatusCode::UNAUTHORIZED);
    assert!(
        serde_json::from_str::<serde_json::Value>(&e6.body).is_err(),
        "non-JSON body"
    );
    assert!(!e6.is_json());
    assert_eq!(c.account_login().await.status, StatusCode::UNAUTHORIZED);
    assert!(
        sim.state()
            .auth
            .web_session(&c.cloudkit_headers())
            .is_none()
    );

    // A new sign-in works again.
    c.signin(&acct.username, &acct.password).await;
    c.idmsa(Method::POST, "/repair/complete", Some("{}".into()), false)
        .await;
    assert_eq!(c.account_login().await.status, StatusCode::OK);
    assert_eq!(c.validate().await.status, StatusCode::OK);
}

#[tokio::test]
async fn session_lifetime_is_configurable() {
    let sim = start(SimConfig {
        session_ttl: 0,
        ..config()
    })
    .await;
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Py);
    c.signin(&acct.username, &acct.password).await;
    // The session token is already expired: accountLogin refuses it.
    assert_eq!(c.account_login().await.status, StatusCode::UNAUTHORIZED);
    let minted = sim.state().auth.mint_web_session();
    let mut h = axum::http::HeaderMap::new();
    h.insert(axum::http::header::COOKIE, minted.parse().expect("header"));
    assert!(sim.state().auth.web_session(&h).is_none());
}

#[tokio::test]
async fn fido_account_gets_a_security_key_challenge() {
    let sim = start(SimConfig {
        fido: true,
        ..config()
    })
    .await;
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Py);
    let e2 = c.signin(&acct.username, &acct.password).await;
    assert_eq!(e2.status, StatusCode::CONFLICT);
    let body = e2.json();
    assert!(body["fsaChallenge"]["challenge"].is_string());
    assert_eq!(body["fsaChallenge"]["rpId"], json!("apple.com"));
    assert!(body["keyNames"].as_array().is_some_and(|k| !k.is_empty()));
    // Codes cannot replace the security key.
    let e8 = c.submit_device_code(&acct.two_factor_code).await;
    assert_eq!(e8.status, StatusCode::BAD_REQUEST);
    let doc = c.account_login().await.json();
    assert_eq!(doc["hsaChallengeRequired"], json!(true));
    assert!(
        !sim.state()
            .auth
            .web_session(&c.cloudkit_headers())
            .expect("session")
            .trusted
    );
}

#[tokio::test]
async fn locked_account_is_refused() {
    let sim = start(SimConfig {
        locked: true,
        ..config()
    })
    .await;
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Py);
    let e2 = c.signin(&acct.username, &acct.password).await;
    assert_eq!(e2.status, StatusCode::FORBIDDEN);
    assert!(e2.is_json());
    assert_eq!(e2.json()["serviceErrors"][0]["code"], json!("-20209"));
    assert!(e2.header("x-apple-session-token").is_none());
}

#[tokio::test]
async fn bad_input_gets_4xx_not_a_crash() {
    let sim = start(config()).await;
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Py);
    let post = |body: &str| Some(body.to_string());

    let cases = [
        ("/signin/init", "{not json"),
        ("/signin/init", "[]"),
        (
            "/signin/init",
            r#"{"accountName": "x", "protocols": ["s2k"]}"#,
        ),
        (
            "/signin/init",
            r#"{"a": "AAAA", "accountName": "x", "protocols": ["s2k"]}"#,
        ),
        (
            "/signin/init",
            r#"{"a": "not base64!", "accountName": "x", "protocols": ["s2k"]}"#,
        ),
        (
            "/signin/init",
            r#"{"a": "Ag==", "accountName": "x", "protocols": ["plain"]}"#,
        ),
        ("/signin/init", r#"{"a": "Ag==", "accountName": "x"}"#),
        (
            "/signin/complete",
            r#"{"accountName": "x", "c": "nope", "m1": "AA==", "m2": "AA=="}"#,
        ),
        (
            "/signin/complete",
            r#"{"accountName": "x", "m1": "AA==", "m2": "AA=="}"#,
        ),
        ("/signin/complete", ""),
    ];
    for (path, body) in cases {
        let r = c.idmsa(Method::POST, path, post(body), true).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{path} {body}: {}",
            r.body
        );
        assert!(
            r.json()["serviceErrors"][0]["code"].is_string(),
            "{}",
            r.body
        );
        assert_eq!(r.json()["hasError"], json!(true));
    }

    // A = N (≡ 0 mod N) is refused at init.
    let n_bytes = hex::decode(
        "AC6BDB41324A9A9BF166DE5E1389582FAF72B6651987EE07FC3192943DB56050A37329CBB4A099ED8193E0757767A13DD52312AB4B03310DCD7F48A9DA04FD50E8083969EDB767B0CF6095179A163AB3661A05FBD5FAAAE82918A9962F0B93B855F97993EC975EEAA80D740ADBF4FF747359D041D5C33EA71D281E446B14773BCA97B43A23FB801676BD207A436C6481F1D2B9078717461A5B9D32E688F87748544523B524B0D57D5EA77A2775D2ECFA032CFBDBF52FB3786160279004E57AE6AF874E7303CE53299CCC041C7BC308D82A5698F3A8D0C38271AE35F8E9DBFBB694B5C803D89F7AE435DE236D525F54759B65E372FCD68EF20FA7111F9E4AFF73",
    )
    .expect("hex");
    use base64::Engine;
    let a = base64::engine::general_purpose::STANDARD.encode(n_bytes);
    let body =
        json!({"a": a, "accountName": acct.username, "protocols": ["s2k", "s2k_fo"]}).to_string();
    let r = c
        .idmsa(Method::POST, "/signin/init", Some(body), true)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A `c` is single use: replaying a completed exchange is refused.
    let srp = SrpClient::random();
    let init = c.signin_init(&acct.username, &srp).await.json();
    let (m1, m2) = srp.proofs(&acct.username, &acct.password, &init, false);
    let body = json!({"accountName": acct.username, "c": init["c"], "m1": m1, "m2": m2, "rememberMe": true, "trustTokens": []})
        .to_string();
    let first = c
        .idmsa(Method::POST, "/signin/complete", Some(body.clone()), true)
        .await;
    assert_eq!(first.status, StatusCode::PRECONDITION_FAILED);
    let replay = c
        .idmsa(Method::POST, "/signin/complete", Some(body), true)
        .await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);

    // 2FA and setup calls without a context.
    let mut stranger = Client::new(sim.endpoint(), Style::Py);
    stranger.scnt = Some("made-up".into());
    let r = stranger.idmsa(Method::GET, "/2sv/trust", None, false).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = stranger
        .idmsa(Method::POST, "/repair/complete", Some("{}".into()), false)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    stranger.session_token = Some("made-up".into());
    let r = stranger.account_login().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = stranger
        .send(
            stranger
                .bare
                .post(format!("{}/setup/ws/1/accountLogin", sim.endpoint()))
                .body("garbage"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = stranger
        .send(
            stranger
                .bare
                .post(format!("{}/setup/ws/1/validate", sim.endpoint()))
                .header(
                    "cookie",
                    "X-APPLE-DS-WEB-SESSION-TOKEN=\"forged\"; junk; =x; X-APPLE-WEBAUTH-TOKEN=",
                )
                .body("null"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

//! The client against Apple's recorded sign-in exchanges (py's cassettes), replayed by a local
//! server that matches method + path and answers the recorded status, headers and body.
//!
//! What the replay bypasses, because the recordings are anonymised: the SRP proofs are not
//! checked (the recorded salt and B are placeholders, so no proof could match), the trust token
//! sent in `trustTokens` is not checked, and the push request (`PUT .../securitycode`, which py
//! never sends) gets a synthetic 204. Everything else — the order of exchanges, headers we send,
//! the bodies we send, how we read Apple's answers — is what the tests assert.

use crate::support;

use icloudpd_rs::auth::{AuthError, Authenticator, SecondFactor};
use support::{Replay, ScriptedPrompter, files_containing, load_cassette, options, synthetic};

const USER: &str = "jdoe@gmail.com";
const PASSWORD: &str = "correct horse battery staple";
const E1: &str = "POST /appleauth/auth/signin/init";
const E2: &str = "POST /appleauth/auth/signin/complete";
const E3: &str = "POST /appleauth/auth/repair/complete";
const E5: &str = "POST /setup/ws/1/accountLogin";
const E6: &str = "POST /setup/ws/1/validate";
const E7: &str = "PUT /appleauth/auth/verify/trusteddevice/securitycode";
const E8: &str = "POST /appleauth/auth/verify/trusteddevice/securitycode";
const E12: &str = "GET /appleauth/auth/2sv/trust";

async fn replay(cassette: &str) -> Replay {
    let mut interactions = load_cassette(cassette);
    interactions.push(synthetic(
        "PUT",
        "/appleauth/auth/verify/trusteddevice/securitycode",
        204,
        "",
    ));
    Replay::start(interactions).await
}

fn session_json(dir: &std::path::Path) -> serde_json::Value {
    let path = dir.join("jdoe@gmail.com/session.json");
    serde_json::from_slice(&std::fs::read(&path).expect("session file")).expect("session json")
}

#[tokio::test]
async fn non_2fa_account_signs_in_with_srp_repair_and_account_login() {
    let server = replay("auth_non_2fa.yml").await;
    let data = tempfile::tempdir().expect("tempdir");
    let session = Authenticator::resume(options(&server.endpoint, USER, PASSWORD, data.path()))
        .await
        .expect("sign-in");
    assert_eq!(server.calls(), vec![E1, E2, E3, E5]);
    assert_eq!(session.dsid(), "12345678901");
    assert_eq!(
        session.ckdatabasews_url(),
        "https://p61-ckdatabasews.icloud.com:443"
    );
    assert!(
        session.client_id().starts_with("auth-"),
        "{}",
        session.client_id()
    );

    let init = &server.requests(E1)[0];
    let body = init.json();
    assert_eq!(body["accountName"], USER);
    assert_eq!(body["protocols"], serde_json::json!(["s2k", "s2k_fo"]));
    assert!(
        body["a"].as_str().is_some_and(|a| a.len() >= 340),
        "A is 256 bytes in base64"
    );
    assert_eq!(init.header("origin"), Some(server.endpoint.as_str()));
    assert_eq!(
        init.header("x-apple-oauth-state"),
        Some(session.client_id())
    );
    assert_eq!(
        init.header("x-apple-widget-key"),
        Some("d39ba9916b7251055b22c7f910e2ea796ee65e98b2ddecea8f5dde8d9d1a815d")
    );
    assert_eq!(
        init.header("x-apple-oauth-redirect-uri"),
        Some("https://www.icloud.com")
    );
    assert!(
        init.header("user-agent")
            .is_some_and(|ua| ua.contains("Chrome/"))
    );

    let complete = &server.requests(E2)[0];
    assert_eq!(complete.query.as_deref(), Some("isRememberMeEnabled=true"));
    let body = complete.json();
    assert_eq!(
        body["c"], "d-123-456789ab-cdef-0123-4567-89abcdef0123:MSA",
        "c echoed unchanged"
    );
    assert_eq!(body["m1"].as_str().map(str::len), Some(44));
    assert_eq!(body["m2"].as_str().map(str::len), Some(44));
    assert_eq!(body["rememberMe"], true);
    assert_eq!(body["trustTokens"], serde_json::json!([]));
    assert_eq!(
        complete.header("scnt"),
        Some("scnt-1234567890"),
        "scnt from E1 sent on E2"
    );

    // E3 carries what E2 returned, with the home origin.
    let repair = &server.requests(E3)[0];
    assert_eq!(repair.header("scnt"), Some("scnt-1234567890"));
    assert_eq!(
        repair.header("x-apple-id-session-id"),
        Some("sess-1234567890")
    );

    let login = server.requests(E5)[0].json();
    assert_eq!(login["dsWebAuthToken"], "token-1234567890");
    assert_eq!(login["accountCountryCode"], "USA");
    assert_eq!(login["extended_login"], true);
    assert_eq!(login["trustToken"], "");

    let saved = session_json(data.path());
    assert_eq!(saved["session_token"], "token-1234567890");
    assert_eq!(saved["client_id"], session.client_id());
    assert_eq!(saved["account"]["dsid"], "12345678901");
    assert!(
        files_containing(data.path(), PASSWORD).is_empty(),
        "password written to disk"
    );
}

#[tokio::test]
async fn account_requiring_2fa_is_reported_without_asking() {
    let server = replay("auth_requires_2fa.yml").await;
    let data = tempfile::tempdir().expect("tempdir");
    let err = Authenticator::resume(options(&server.endpoint, USER, PASSWORD, data.path()))
        .await
        .expect_err("2FA needed");
    match &err {
        AuthError::TwoFactorRequired { login_command, .. } => {
            assert!(login_command.contains("login"), "{login_command}");
        }
        other => panic!("expected TwoFactorRequired, got {other:?}"),
    }
    assert_eq!(
        server.calls(),
        vec![E1, E2, E5],
        "no code may be requested unattended"
    );
    // The half-done session is kept, so `login` continues without a new SRP.
    assert_eq!(
        session_json(data.path())["session_token"],
        "token-1234567890"
    );
}

async fn two_factor(cassette: &str, typed: &str, sent: &str) {
    let server = replay(cassette).await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut prompter = ScriptedPrompter::with_codes(&[typed]);
    let session = Authenticator::login(
        options(&server.endpoint, USER, PASSWORD, data.path()),
        &mut prompter,
        SecondFactor::TrustedDevice,
    )
    .await
    .expect("sign-in with a code");
    assert_eq!(server.calls(), vec![E1, E2, E5, E7, E8, E12, E5]);
    let submitted = &server.requests(E8)[0];
    assert_eq!(
        submitted.json(),
        serde_json::json!({"securityCode": {"code": sent}})
    );
    assert_eq!(submitted.header("accept"), Some("application/json"));
    assert_eq!(submitted.header("scnt"), Some("scnt-1234567890"));
    assert_eq!(
        submitted.header("x-apple-id-session-id"),
        Some("sess-1234567890")
    );
    // The final accountLogin uses the token and trust token of the trust answer.
    let last_login = server.requests(E5)[1].json();
    assert_eq!(last_login["trustToken"], "2svtoken-1234567890");
    let summary = session.summary().await;
    assert!(summary.trusted && summary.signed_in, "{summary:?}");
    assert!(summary.trust_expires_estimate.is_some());
    let saved = session_json(data.path());
    assert_eq!(saved["trust_token"], "2svtoken-1234567890");
    assert!(saved.get("pending").is_none());
    assert!(
        session
            .cookies()
            .names()
            .contains(&"X-APPLE-WEBAUTH-TOKEN".to_string()),
        "{:?}",
        session.cookies().names()
    );
}

#[tokio::test]
async fn valid_code_completes_trust() {
    two_factor("2fa_flow_valid_code.yml", "654321", "654321").await;
}

#[tokio::test]
async fn code_with_leading_zero_and_spaces_is_sent_as_six_digit_text() {
    two_factor("2fa_flow_valid_code_zero_lead.yml", " 054 321 ", "054321").await;
}

#[tokio::test]
async fn wrong_code_three_times_fails_with_wrong_code() {
    let server = replay("2fa_flow_invalid_code.yml").await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut prompter = ScriptedPrompter::with_codes(&["901431", "111111", "222222", "333333"]);
    let err = Authenticator::login(
        options(&server.endpoint, USER, PASSWORD, data.path()),
        &mut prompter,
        SecondFactor::TrustedDevice,
    )
    .await
    .expect_err("wrong code");
    assert!(
        matches!(err, AuthError::WrongCode { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(server.requests(E8).len(), 3);
    assert_eq!(server.requests(E12).len(), 0, "no trust after a wrong code");
    assert_eq!(prompter.codes.len(), 1, "asked exactly three times");
    assert!(err.to_string().contains("wrong"), "{err}");
}

#[tokio::test]
async fn wrong_password_is_reported_as_such() {
    let server = replay("failed_auth.yml").await;
    let data = tempfile::tempdir().expect("tempdir");
    let err = Authenticator::resume(options(
        &server.endpoint,
        "bad_username",
        "bad_password",
        data.path(),
    ))
    .await
    .expect_err("wrong password");
    assert!(matches!(err, AuthError::WrongPassword { .. }), "{err:?}");
    assert_eq!(
        server.calls(),
        vec![E1, E2],
        "no legacy plain-password fallback, no retry"
    );
    assert!(!err.to_string().contains("bad_password"));
    assert!(err.is_authentication_problem());
}

#[tokio::test]
async fn service_unavailable_is_retried_then_reported() {
    let server = replay("failed_auth_503.yml").await;
    let data = tempfile::tempdir().expect("tempdir");
    let err = Authenticator::resume(options(
        &server.endpoint,
        "whatever_username",
        "pw",
        data.path(),
    ))
    .await
    .expect_err("503");
    match err {
        AuthError::Throttled {
            status: 503,
            attempts: 3,
            endpoint,
            ..
        } => assert_eq!(endpoint, "signin/init"),
        other => panic!("expected Throttled after 3 attempts, got {other:?}"),
    }
    assert_eq!(server.calls(), vec![E1, E1, E1]);
}

#[tokio::test]
async fn saved_session_is_reused_with_validate_only() {
    let server = replay("successful_auth.yml").await;
    let data = tempfile::tempdir().expect("tempdir");
    // A session saved by an earlier run (our format), with its cookies.
    let dir = data.path().join("jdoe@gmail.com");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("session.json"),
        serde_json::json!({
            "format": 1, "username": USER, "client_id": "auth-12345678-1234-1234-1234-123456789012",
            "session_token": "token-1234567890", "trust_token": "2svtoken-1234567890",
            "scnt": "scnt-1234567890", "session_id": "sess-1234567890", "account_country": "USA",
            "auth_root": server.endpoint.trim_end_matches('/')
        })
        .to_string(),
    )
    .expect("write session");
    let session = Authenticator::resume(options(&server.endpoint, USER, PASSWORD, data.path()))
        .await
        .expect("reuse");
    assert_eq!(server.calls(), vec![E6], "no SRP, no code");
    assert_eq!(server.requests(E6)[0].body, b"null");
    assert_eq!(
        session.client_id(),
        "auth-12345678-1234-1234-1234-123456789012"
    );
    assert_eq!(session.dsid(), "12345678901");
}

#[tokio::test]
async fn account_of_the_other_domain_is_told_which_domain_to_use() {
    let mut interactions: Vec<_> = load_cassette("auth_non_2fa.yml")
        .into_iter()
        .filter(|i| i.path != "/setup/ws/1/accountLogin")
        .collect();
    interactions.push(synthetic(
        "POST",
        "/setup/ws/1/accountLogin",
        200,
        r#"{"domainToUse":"iCloud.com.cn"}"#,
    ));
    let server = Replay::start(interactions).await;
    let data = tempfile::tempdir().expect("tempdir");
    let err = Authenticator::resume(options(&server.endpoint, USER, PASSWORD, data.path()))
        .await
        .expect_err("wrong domain");
    match &err {
        AuthError::WrongDomain { suggested, .. } => {
            assert_eq!(*suggested, Some(icloudpd_rs::auth::Domain::Cn))
        }
        other => panic!("expected WrongDomain, got {other:?}"),
    }
    assert!(err.to_string().contains("--domain cn"), "{err}");
}

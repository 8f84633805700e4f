//! rclone's sign-in habits (icloud-auth.md appendix A): the extra calls E17/E18/E19, padded SRP
//! proofs, exactly-200 answers, no cookies to idmsa or E5, unquoted cookies, JSON phone page,
//! E7 with `null`, and the trust-token switch for accounts without 2FA.

use crate::auth_support;

use reqwest::{Method, StatusCode};
use serde_json::json;

use auth_support::{Client, SrpClient, Style, VECTOR2_A, config, start};
use icloudpd_rs::sim::SimConfig;

/// E17 then E18, as rclone starts every sign-in.
async fn authorize_and_federate(c: &mut Client, user: &str) {
    let url = format!(
        "{}/appleauth/auth/authorize/signin?authVersion=latest&client_id=d39b&frame_id=auth-1&iframeId=auth-1\
         &language=en_US&redirect_uri=https%3A%2F%2Fwww.icloud.com&response_mode=web_message\
         &response_type=code&skVersion=7&state=auth-1",
        c.base
    );
    let e17 = c.send(c.bare.get(url).header("accept", "*/*")).await;
    assert_eq!(e17.status, StatusCode::OK);
    for h in ["scnt", "x-apple-id-session-id", "x-apple-auth-attributes"] {
        assert!(e17.header(h).is_some(), "E17 lacks {h}");
    }
    let body = json!({"accountName": user.to_lowercase(), "rememberMe": true}).to_string();
    let e18 = c
        .idmsa(
            Method::POST,
            "/federate?isRememberMeEnabled=true",
            Some(body),
            true,
        )
        .await;
    assert_eq!(e18.status, StatusCode::OK);
}

#[tokio::test]
async fn rclone_non_2fa_with_padded_proofs_and_pcs() {
    let sim = start(SimConfig {
        // Mixed case: rclone lower-cases the Apple ID, and the proof uses what it sends.
        username: Some("Jane.Doe@Example.com".into()),
        trust_token_without_2fa: true,
        ..config()
    })
    .await;
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Rclone);
    authorize_and_federate(&mut c, &acct.username).await;

    // Vector 2's `a` gives a 255-byte A: the padded proof differs from the minimal one.
    let srp = SrpClient::with_private(VECTOR2_A);
    assert_eq!(srp.a_pub.to_bytes_be().len(), 255);
    let e2 = c.signin_with(&acct.username, &acct.password, &srp).await;
    assert_eq!(e2.status, StatusCode::PRECONDITION_FAILED, "{}", e2.body);

    let e3 = c
        .idmsa(Method::POST, "/repair/complete", Some("{}".into()), true)
        .await;
    assert_eq!(e3.status, StatusCode::OK, "rclone needs exactly 200");
    let trust = e3
        .header("x-apple-twosv-trust-token")
        .expect("trust token switch")
        .to_string();

    let e5 = c.account_login().await;
    assert_eq!(e5.status, StatusCode::OK);
    let doc = e5.json();
    assert_eq!(
        doc["webservices"]["ckdatabasews"]["status"],
        json!("active")
    );
    assert!(doc["webservices"]["drivews"]["url"].is_string());
    assert!(doc["webservices"]["docws"]["url"].is_string());
    // Every cookie value survives rclone's parser: printable ASCII without `"`, `;`, `\`.
    for (name, value) in &c.rclone_cookies {
        assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"\";\\".contains(&b)),
            "{name}={value}"
        );
    }
    assert!(
        !c.rclone_cookies
            .iter()
            .any(|(n, _)| n == "X-APPLE-WEBAUTH-PCS-Photos")
    );

    // E6 with an empty body and the unquoted cookies.
    let e6 = c.validate().await;
    assert_eq!(e6.status, StatusCode::OK, "{}", e6.body);
    let ws = sim
        .state()
        .auth
        .web_session(&c.cloudkit_headers())
        .expect("unquoted cookies identify the session");
    assert!(ws.trusted);

    let pcs = c.request_pcs("photos").await;
    assert_eq!(pcs.status, StatusCode::OK);
    assert_eq!(pcs.json()["status"], json!("success"));
    let names = pcs.cookie_names();
    assert!(names.iter().any(|n| n == "X-APPLE-WEBAUTH-PCS-Photos"));
    assert!(names.iter().any(|n| n == "X-APPLE-WEBAUTH-PCS-Sharing"));
    let drive = c.request_pcs("iclouddrive").await;
    assert_eq!(drive.status, StatusCode::OK);
    assert!(
        drive
            .cookie_names()
            .iter()
            .any(|n| n == "X-APPLE-WEBAUTH-PCS-Documents")
    );
    assert_eq!(c.request_pcs("mail").await.status, StatusCode::BAD_REQUEST);

    // Silent re-login of a later run: E17 → E18 → E1 → E2 with the trust token → E3 → E5.
    let mut later = Client::new(sim.endpoint(), Style::Rclone);
    later.trust_token = Some(trust);
    authorize_and_federate(&mut later, &acct.username).await;
    let e2 = later.signin(&acct.username, &acct.password).await;
    assert_eq!(e2.status, StatusCode::PRECONDITION_FAILED);
    let e3 = later
        .idmsa(Method::POST, "/repair/complete", Some("{}".into()), true)
        .await;
    assert_eq!(e3.status, StatusCode::OK);
    assert_eq!(later.account_login().await.status, StatusCode::OK);
}

#[tokio::test]
async fn without_the_switch_a_non_2fa_account_gets_no_trust_token() {
    let sim = start(config()).await;
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Rclone);
    c.signin(&acct.username, &acct.password).await;
    let e3 = c
        .idmsa(Method::POST, "/repair/complete", Some("{}".into()), true)
        .await;
    assert_eq!(e3.status, StatusCode::OK);
    assert!(e3.header("x-apple-twosv-trust-token").is_none());
}

#[tokio::test]
async fn minimal_and_padded_proofs_both_accepted_with_a_short_a() {
    let sim = start(config()).await;
    let acct = sim.account().clone();
    for style in [Style::Py, Style::Rclone] {
        let mut c = Client::new(sim.endpoint(), style);
        let srp = SrpClient::with_private(VECTOR2_A);
        let e2 = c.signin_with(&acct.username, &acct.password, &srp).await;
        assert_eq!(e2.status, StatusCode::PRECONDITION_FAILED, "{style:?}");
        let wrong = c.signin_with(&acct.username, "wrong", &srp).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{style:?}");
    }
}

#[tokio::test]
async fn rclone_two_factor_configuration_then_silent_relogin() {
    let sim = start(SimConfig {
        two_factor: true,
        ..config()
    })
    .await;
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Rclone);
    authorize_and_federate(&mut c, &acct.username).await;
    let e2 = c.signin(&acct.username, &acct.password).await;
    assert_eq!(e2.status, StatusCode::CONFLICT);

    // E9 as JSON (rclone sends `Accept: application/json`).
    let e9 = c.idmsa(Method::GET, "", None, false).await;
    assert_eq!(e9.status, StatusCode::OK);
    let page = e9.json();
    assert_eq!(page["noTrustedDevices"], json!(false));
    assert!(page["trustedPhoneNumbers"][0]["id"].is_i64());
    assert_eq!(page["authenticationType"], json!("hsa2"));

    let e7 = c
        .idmsa(
            Method::PUT,
            "/verify/trusteddevice/securitycode",
            Some("null".into()),
            false,
        )
        .await;
    assert!(e7.status.is_success());

    // `config update --continue` in a new process: only the saved idmsa values.
    let mut b = Client::resume(&c);
    b.auth_attributes = c.auth_attributes.clone();
    let e8 = b
        .idmsa(
            Method::POST,
            "/verify/trusteddevice/securitycode",
            Some(json!({"securityCode": {"code": acct.two_factor_code}}).to_string()),
            false,
        )
        .await;
    assert_eq!(e8.status, StatusCode::NO_CONTENT);
    let e12 = b.idmsa(Method::GET, "/2sv/trust", None, false).await;
    assert_eq!(e12.status, StatusCode::NO_CONTENT);
    let trust = b.trust_token.clone().expect("trust token");
    let doc = b.account_login().await.json();
    assert_eq!(doc["hsaChallengeRequired"], json!(false));
    assert_eq!(doc["dsInfo"]["hsaVersion"], json!(2));

    // A later command: E6 fails without cookies → silent re-login with the trust token → 200.
    let mut later = Client::new(sim.endpoint(), Style::Rclone);
    assert_eq!(later.validate().await.status, StatusCode::UNAUTHORIZED);
    later.trust_token = Some(trust);
    authorize_and_federate(&mut later, &acct.username).await;
    let e2 = later.signin(&acct.username, &acct.password).await;
    assert_eq!(e2.status, StatusCode::OK, "{}", e2.body);
    let doc = later.account_login().await.json();
    assert_eq!(doc["hsaChallengeRequired"], json!(false));
    assert_eq!(later.request_pcs("photos").await.status, StatusCode::OK);
}

#[tokio::test]
async fn apple_host_names_scope_cookies_to_icloud_com() {
    let sim = start(SimConfig {
        apple_hosts: true,
        ..config()
    })
    .await;
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Rclone);
    c.signin(&acct.username, &acct.password).await;
    let e5 = c.account_login().await;
    let lines = e5.set_cookies();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(line.contains(";Domain=.icloud.com"), "{line}");
    }
    let url = e5.json()["webservices"]["ckdatabasews"]["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert!(
        url.starts_with("http://p01-ckdatabasews.icloud.com:"),
        "{url}"
    );
    let drive = e5.json()["webservices"]["drivews"]["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert!(
        drive.starts_with("http://p01-drivews.icloud.com:"),
        "{drive}"
    );
}

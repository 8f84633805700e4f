//! Sign-in flows against an in-process simulator, driven over HTTP with a client-side SRP written
//! in the test from the spec: no 2FA, 2FA by device code and by SMS, headless two-step, trust
//! token reuse and expiry, wrong code, the 409 quirk, `s2k_fo`, ADP. Refusals are in
//! `sim_auth_refusals.rs`, rclone's habits in `sim_auth_rclone.rs`.

use crate::auth_support;

use reqwest::{Method, StatusCode};
use serde_json::json;

use auth_support::{Client, SrpClient, Style, config, start};
use icloudpd_rs::sim::{SimConfig, SrpProtocol};

fn two_factor() -> SimConfig {
    SimConfig {
        two_factor: true,
        ..config()
    }
}

#[tokio::test]
async fn non_2fa_sign_in_then_cloudkit_session() {
    let sim = start(config()).await;
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Py);

    let e2 = c.signin(&acct.username, &acct.password).await;
    assert_eq!(e2.status, StatusCode::PRECONDITION_FAILED, "{}", e2.body);
    assert_eq!(e2.json(), json!({"auth_type": "sa"}));
    assert!(e2.is_json());
    for h in [
        "scnt",
        "x-apple-session-token",
        "x-apple-id-session-id",
        "x-apple-id-account-country",
        "x-apple-twosv-trust-eligible",
        "x-apple-auth-attributes",
    ] {
        assert!(e2.header(h).is_some(), "E2 412 lacks {h}");
    }
    let token_412 = c.session_token.clone();

    let e3 = c
        .idmsa(Method::POST, "/repair/complete", Some("{}".into()), false)
        .await;
    assert_eq!(e3.status, StatusCode::OK);
    assert_eq!(e3.json(), json!({}));
    assert_ne!(c.session_token, token_412, "E3 mints a fresh session token");
    assert!(e3.header("x-apple-twosv-trust-token").is_none());

    let e5 = c.account_login().await;
    assert_eq!(e5.status, StatusCode::OK, "{}", e5.body);
    let doc = e5.json();
    assert_eq!(doc["dsInfo"]["dsid"], json!(acct.dsid));
    assert!(doc["dsInfo"].get("hsaVersion").is_none());
    assert!(doc.get("hsaChallengeRequired").is_none());
    assert_eq!(
        doc["webservices"]["ckdatabasews"]["url"],
        json!(sim.endpoint())
    );
    assert_eq!(
        doc["webservices"]["ckdatabasews"]["status"],
        json!("active")
    );
    assert_eq!(doc["iCDPEnabled"], json!(false));
    let names = e5.cookie_names();
    for n in [
        "X-APPLE-WEBAUTH-USER",
        "X-APPLE-DS-WEB-SESSION-TOKEN",
        "X-APPLE-WEBAUTH-TOKEN",
    ] {
        assert!(
            names.iter().any(|x| x == n),
            "missing cookie {n} in {names:?}"
        );
    }
    // Host-only cookies on a plain-HTTP simulator: no Domain, no Secure.
    for line in e5.set_cookies() {
        assert!(!line.contains("Domain="), "{line}");
        assert!(!line.contains("Secure"), "{line}");
    }

    let ws = sim
        .state()
        .auth
        .web_session(&c.cloudkit_headers())
        .expect("CloudKit accepts the cookies");
    assert_eq!(ws.dsid, acct.dsid);
    assert!(ws.trusted);

    let e6 = c.validate().await;
    assert_eq!(e6.status, StatusCode::OK);
    assert_eq!(e6.json()["dsInfo"]["dsid"], json!(acct.dsid));
}

#[tokio::test]
async fn two_factor_by_trusted_device_code() {
    let sim = start(two_factor()).await;
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Py);

    let e2 = c.signin(&acct.username, &acct.password).await;
    assert_eq!(e2.status, StatusCode::CONFLICT, "{}", e2.body);
    assert!(e2.is_json());
    let challenge = e2.json();
    assert_eq!(challenge["authType"], json!("hsa2"));
    assert!(
        challenge["trustedDevices"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
    );
    assert!(challenge["trustedPhoneNumbers"][0]["id"].is_i64());
    assert_eq!(challenge["securityCode"]["length"], json!(6));
    assert!(challenge.get("fsaChallenge").is_none());
    assert!(e2.header("x-apple-session-token").is_some());

    let e5 = c.account_login().await;
    assert_eq!(e5.status, StatusCode::OK);
    let doc = e5.json();
    assert_eq!(doc["dsInfo"]["hsaVersion"], json!(2));
    assert_eq!(doc["dsInfo"]["hasICloudQualifyingDevice"], json!(true));
    assert_eq!(doc["hsaChallengeRequired"], json!(true));
    assert_eq!(doc["hsaTrustedBrowser"], json!(false));
    assert!(
        !e5.cookie_names()
            .iter()
            .any(|n| n == "X-APPLE-WEBAUTH-TOKEN")
    );
    let untrusted = sim
        .state()
        .auth
        .web_session(&c.cloudkit_headers())
        .expect("session exists");
    assert!(!untrusted.trusted);

    // A session that passed SRP validates before the second factor.
    let e6 = c.validate().await;
    assert_eq!(e6.status, StatusCode::OK);
    assert_eq!(e6.json()["hsaChallengeRequired"], json!(true));

    // E7 with no body, then with `null`: each counts as a delivered code.
    let e7 = c
        .idmsa(
            Method::PUT,
            "/verify/trusteddevice/securitycode",
            None,
            false,
        )
        .await;
    assert!(e7.status.is_success(), "{}", e7.body);
    let e7 = c
        .idmsa(
            Method::PUT,
            "/verify/trusteddevice/securitycode",
            Some("null".into()),
            false,
        )
        .await;
    assert!(e7.status.is_success());
    assert_eq!(sim.state().auth.codes_sent(&c.context_headers()), Some(2));

    // Trust before a verified code is refused.
    let early = c.idmsa(Method::GET, "/2sv/trust", None, false).await;
    assert!(early.status.is_client_error());
    assert!(early.header("x-apple-twosv-trust-token").is_none());

    let wrong = if acct.two_factor_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    let e8 = c.submit_device_code(wrong).await;
    assert_eq!(e8.status, StatusCode::BAD_REQUEST);
    assert_eq!(e8.header("x-apple-i-ercd"), Some("-21669"));
    assert_eq!(e8.json()["service_errors"][0]["code"], json!("-21669"));
    assert_eq!(e8.json()["hasError"], json!(true));

    let before = c.session_token.clone();
    let e8 = c.submit_device_code(&acct.two_factor_code).await;
    assert_eq!(e8.status, StatusCode::NO_CONTENT);
    assert!(e8.body.is_empty());
    assert_ne!(c.session_token, before);

    let e12 = c.idmsa(Method::GET, "/2sv/trust", None, false).await;
    assert_eq!(e12.status, StatusCode::NO_CONTENT);
    assert!(c.trust_token.is_some());

    let e5 = c.account_login().await;
    let doc = e5.json();
    assert_eq!(doc["hsaChallengeRequired"], json!(false));
    assert_eq!(doc["hsaTrustedBrowser"], json!(true));
    let names = e5.cookie_names();
    assert!(names.iter().any(|n| n == "X-APPLE-WEBAUTH-TOKEN"));
    assert!(names.iter().any(|n| n == "X-APPLE-WEBAUTH-PCS-Sharing"));
    let ws = sim
        .state()
        .auth
        .web_session(&c.cloudkit_headers())
        .expect("trusted session");
    assert!(ws.trusted);
}

#[tokio::test]
async fn two_factor_by_sms() {
    let sim = start(two_factor()).await;
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Py);
    assert_eq!(
        c.signin(&acct.username, &acct.password).await.status,
        StatusCode::CONFLICT
    );
    c.account_login().await;

    // py: HTML page; the boot_args script holds the phone numbers.
    let page = c
        .send(
            c.bare
                .get(format!("{}/appleauth/auth", sim.endpoint()))
                .header("scnt", c.scnt.clone().expect("scnt"))
                .header("x-apple-id-session-id", c.session_id.clone().expect("id")),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    let start_tag = r#"<script type="application/json" class="boot_args">"#;
    let from = page.body.find(start_tag).expect("boot_args script") + start_tag.len();
    let to = from + page.body[from..].find("</script>").expect("end of script");
    let boot: serde_json::Value =
        serde_json::from_str(&page.body[from..to]).expect("boot_args JSON");
    let phones = &boot["direct"]["twoSV"]["phoneNumberVerification"]["trustedPhoneNumbers"];
    let phone_id = phones[0]["id"].as_i64().expect("integer id");
    assert!(phones[0]["obfuscatedNumber"].is_string());

    let e10 = c
        .idmsa(
            Method::PUT,
            "/verify/phone",
            Some(json!({"phoneNumber": {"id": phone_id}, "mode": "sms"}).to_string()),
            false,
        )
        .await;
    assert!(e10.status.is_success(), "{}", e10.body);
    assert_eq!(sim.state().auth.codes_sent(&c.context_headers()), Some(1));
    let bad_phone = c
        .idmsa(
            Method::PUT,
            "/verify/phone",
            Some(json!({"phoneNumber": {"id": 99}, "mode": "sms"}).to_string()),
            false,
        )
        .await;
    assert_eq!(bad_phone.status, StatusCode::BAD_REQUEST);

    let e11 = c
        .idmsa(
            Method::POST,
            "/verify/phone/securitycode",
            Some(
                json!({"phoneNumber": {"id": phone_id}, "securityCode": {"code": acct.two_factor_code}, "mode": "sms"})
                    .to_string(),
            ),
            false,
        )
        .await;
    assert!(e11.status.is_success(), "{}", e11.body);
    assert_eq!(c.trust().await, StatusCode::NO_CONTENT);
    let doc = c.account_login().await.json();
    assert_eq!(doc["hsaTrustedBrowser"], json!(true));
}

#[tokio::test]
async fn headless_two_step_across_processes() {
    let sim = start(two_factor()).await;
    let acct = sim.account().clone();

    // Process A (`get-code`): SRP, accountLogin, push.
    let mut a = Client::new(sim.endpoint(), Style::Py);
    assert_eq!(
        a.signin(&acct.username, &acct.password).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        a.account_login().await.json()["hsaChallengeRequired"],
        json!(true)
    );
    assert!(
        a.idmsa(
            Method::PUT,
            "/verify/trusteddevice/securitycode",
            None,
            false
        )
        .await
        .status
        .is_success()
    );

    // Process B (`submit-code`): a new client with only scnt, session id and session token.
    let mut b = Client::resume(&a);
    let e5 = b.account_login().await;
    assert_eq!(
        e5.status,
        StatusCode::OK,
        "E5 with the saved token works in a new process"
    );
    let e8 = b.submit_device_code(&acct.two_factor_code).await;
    assert_eq!(e8.status, StatusCode::NO_CONTENT);
    assert_eq!(b.trust().await, StatusCode::NO_CONTENT);
    let doc = b.account_login().await.json();
    assert_eq!(doc["hsaChallengeRequired"], json!(false));
    assert!(
        sim.state()
            .auth
            .web_session(&b.cloudkit_headers())
            .expect("session")
            .trusted
    );

    // Process A's untrusted web session becomes trusted at its next validate.
    let e6 = a.validate().await;
    assert_eq!(e6.json()["hsaTrustedBrowser"], json!(true));
    assert!(
        e6.cookie_names()
            .iter()
            .any(|n| n == "X-APPLE-WEBAUTH-TOKEN")
    );
}

async fn trusted_client(sim: &icloudpd_rs::sim::Sim) -> Client {
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Py);
    assert_eq!(
        c.signin(&acct.username, &acct.password).await.status,
        StatusCode::CONFLICT
    );
    let e8 = c.submit_device_code(&acct.two_factor_code).await;
    assert_eq!(e8.status, StatusCode::NO_CONTENT);
    assert_eq!(c.trust().await, StatusCode::NO_CONTENT);
    assert!(c.trust_token.is_some());
    c
}

#[tokio::test]
async fn trust_token_skips_the_code_until_it_expires() {
    let sim = start(two_factor()).await;
    let acct = sim.account().clone();
    let first = trusted_client(&sim).await;

    // A new sign-in presenting the trust token: 200 at E2, trusted at E5, no code asked.
    let mut again = Client::new(sim.endpoint(), Style::Py);
    again.trust_token = first.trust_token.clone();
    let e2 = again.signin(&acct.username, &acct.password).await;
    assert_eq!(e2.status, StatusCode::OK, "{}", e2.body);
    assert!(e2.header("x-apple-session-token").is_some());
    let doc = again.account_login().await.json();
    assert_eq!(doc["hsaChallengeRequired"], json!(false));
    assert_eq!(doc["hsaTrustedBrowser"], json!(true));
    assert_eq!(
        sim.state().auth.codes_sent(&again.context_headers()),
        Some(0)
    );

    // An invented token is not accepted.
    let mut forged = Client::new(sim.endpoint(), Style::Py);
    forged.trust_token = Some("HSARMTKNSRVXWFlaforged".into());
    assert_eq!(
        forged.signin(&acct.username, &acct.password).await.status,
        StatusCode::CONFLICT
    );

    sim.state().auth.expire_trust_tokens();
    let mut late = Client::new(sim.endpoint(), Style::Py);
    late.trust_token = first.trust_token.clone();
    assert_eq!(
        late.signin(&acct.username, &acct.password).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        late.account_login().await.json()["hsaChallengeRequired"],
        json!(true)
    );
}

#[tokio::test]
async fn trust_token_lifetime_is_configurable() {
    let sim = start(SimConfig {
        trust_ttl: 0,
        ..two_factor()
    })
    .await;
    let acct = sim.account().clone();
    let first = trusted_client(&sim).await;
    let mut again = Client::new(sim.endpoint(), Style::Py);
    again.trust_token = first.trust_token.clone();
    assert_eq!(
        again.signin(&acct.username, &acct.password).await.status,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn s2k_fo_protocol() {
    let sim = start(SimConfig {
        protocol: SrpProtocol::S2kFo,
        ..config()
    })
    .await;
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Py);
    let init = c.signin_init(&acct.username, &SrpClient::random()).await;
    assert_eq!(init.json()["protocol"], json!("s2k_fo"));
    assert_eq!(init.json()["iteration"], json!(1000));
    assert_eq!(
        c.signin(&acct.username, &acct.password).await.status,
        StatusCode::PRECONDITION_FAILED
    );
}

#[tokio::test]
async fn adp_flag_in_the_document() {
    let sim = start(SimConfig {
        adp: true,
        ..config()
    })
    .await;
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Py);
    c.signin(&acct.username, &acct.password).await;
    let doc = c.account_login().await.json();
    assert_eq!(doc["iCDPEnabled"], json!(true));
    assert_eq!(doc["dsInfo"]["iCDPEnabled"], json!(true));
    assert_eq!(
        doc["webservices"]["ckdatabasews"]["pcsRequired"],
        json!(true)
    );
}

#[tokio::test]
async fn right_code_answered_with_409_when_the_quirk_is_on() {
    let sim = start(two_factor()).await;
    sim.state().auth.set_code_409_quirk(true);
    let acct = sim.account().clone();
    let mut c = Client::new(sim.endpoint(), Style::Rclone);
    assert_eq!(
        c.signin(&acct.username, &acct.password).await.status,
        StatusCode::CONFLICT
    );
    let before = c.session_token.clone();
    let e8 = c.submit_device_code(&acct.two_factor_code).await;
    assert_eq!(e8.status, StatusCode::CONFLICT);
    assert_eq!(e8.json()["securityCode"]["valid"], json!(true));
    assert!(e8.header("x-apple-session-token").is_some());
    assert_ne!(c.session_token, before);
    assert_eq!(c.trust().await, StatusCode::NO_CONTENT);
}

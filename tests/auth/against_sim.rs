//! The sign-in library against the in-process simulator: both SRP protocols, both second
//! factors, the headless two-step, trust reuse, expiry and re-authentication in the middle of
//! a run, and the refusals (wrong password, locked, FIDO, ADP).

use crate::support;

use std::sync::Arc;

use icloudpd_rs::auth::{
    AccountSession, AuthError, AuthOptions, Authenticator, CodeRequest, NoPrompt, SecondFactor,
};
use icloudpd_rs::sim::{Sim, SimConfig, SrpProtocol};
use support::{ScriptedPrompter, files_containing, options};

const INIT: &str = "/appleauth/auth/signin/init";
const PUSH_OR_SUBMIT: &str = "/appleauth/auth/verify/trusteddevice/securitycode";

async fn start(config: SimConfig) -> Sim {
    Sim::start(SimConfig {
        assets: 5,
        iterations: 1000,
        ..config
    })
    .await
    .expect("simulator starts")
}

fn opts(sim: &Sim, data: &std::path::Path) -> AuthOptions {
    let a = sim.account();
    options(sim.endpoint(), &a.username, &a.password, data)
}

/// A sign-in answering the trusted-device code prompt with the right code.
async fn login_with_device_code(
    sim: &Sim,
    data: &std::path::Path,
) -> Result<AccountSession, AuthError> {
    let mut prompter = ScriptedPrompter::with_codes(&[&sim.account().two_factor_code]);
    Authenticator::login(opts(sim, data), &mut prompter, SecondFactor::TrustedDevice).await
}

fn count(sim: &Sim, path: &str) -> u64 {
    sim.state().stats.count(path)
}

async fn signs_in_with(protocol: SrpProtocol) {
    let sim = start(SimConfig {
        protocol,
        ..Default::default()
    })
    .await;
    let data = tempfile::tempdir().expect("tempdir");
    let session = Authenticator::resume(opts(&sim, data.path()))
        .await
        .expect("sign-in");
    assert_eq!(session.dsid(), sim.account().dsid);
    assert!(!session.ckdatabasews_url().is_empty());
    assert_eq!(count(&sim, INIT), 1);
    assert!(files_containing(data.path(), &sim.account().password).is_empty());
}

#[tokio::test]
async fn srp_s2k() {
    signs_in_with(SrpProtocol::S2k).await;
}

#[tokio::test]
async fn srp_s2k_fo() {
    signs_in_with(SrpProtocol::S2kFo).await;
}

fn two_factor() -> SimConfig {
    SimConfig {
        two_factor: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn trusted_device_code_then_trust_is_reused_without_srp_or_code() {
    let sim = start(two_factor()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let session = login_with_device_code(&sim, data.path())
        .await
        .expect("login with a device code");
    let summary = session.summary().await;
    assert!(summary.signed_in && summary.trusted, "{summary:?}");
    assert_eq!(count(&sim, INIT), 1);

    // Second login: the saved session is accepted; no SRP, no code asked.
    let mut nobody = ScriptedPrompter::default();
    Authenticator::login(
        opts(&sim, data.path()),
        &mut nobody,
        SecondFactor::TrustedDevice,
    )
    .await
    .expect("second login");
    assert_eq!(count(&sim, INIT), 1, "the second login ran SRP");
    assert!(nobody.prompts.is_empty(), "asked: {:?}", nobody.prompts);

    // Web session gone, trust token still good: SRP again, but no second factor.
    sim.state().auth.expire_web_sessions();
    let pushes = count(&sim, PUSH_OR_SUBMIT);
    Authenticator::resume(opts(&sim, data.path()))
        .await
        .expect("resume with trust");
    assert_eq!(count(&sim, INIT), 2);
    assert_eq!(
        count(&sim, PUSH_OR_SUBMIT),
        pushes,
        "a code was requested despite trust"
    );

    // Trust gone too: unattended runs must stop and say how to sign in.
    sim.state().auth.expire_trust_tokens();
    sim.state().auth.expire_web_sessions();
    let err = Authenticator::resume(opts(&sim, data.path()))
        .await
        .expect_err("2FA needed");
    assert!(
        matches!(err, AuthError::TwoFactorRequired { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("--request-code"), "{err}");
}

#[tokio::test]
async fn sms_code() {
    let sim = start(two_factor()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut prompter = ScriptedPrompter::with_codes(&[&sim.account().two_factor_code]);
    let session = Authenticator::login(opts(&sim, data.path()), &mut prompter, SecondFactor::Sms)
        .await
        .expect("login with an SMS code");
    assert!(session.summary().await.trusted);
    assert_eq!(count(&sim, "/appleauth/auth"), 1, "phone list fetched once");
    assert_eq!(
        count(&sim, "/appleauth/auth/verify/phone"),
        1,
        "one SMS sent"
    );
    assert_eq!(count(&sim, "/appleauth/auth/verify/phone/securitycode"), 1);
    assert_eq!(count(&sim, PUSH_OR_SUBMIT), 0, "no device push for SMS");
    assert!(
        prompter.notices.iter().any(|n| n.contains("SMS")),
        "{:?}",
        prompter.notices
    );
}

#[tokio::test]
async fn wrong_codes_are_allowed_three_times() {
    let sim = start(two_factor()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let right = sim.account().two_factor_code.clone();
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    // A malformed entry is asked again without spending one of the three attempts: three
    // wrong codes around it end the sign-in.
    let mut prompter = ScriptedPrompter::with_codes(&[wrong, "12", wrong, wrong]);
    let err = Authenticator::login(
        opts(&sim, data.path()),
        &mut prompter,
        SecondFactor::TrustedDevice,
    )
    .await
    .expect_err("three wrong");
    assert!(
        matches!(err, AuthError::WrongCode { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(prompter.codes.is_empty(), "the fourth entry was asked for");

    // Two wrong then right: accepted; the session from the failed attempt is reused (no SRP).
    let inits = count(&sim, INIT);
    let mut prompter = ScriptedPrompter::with_codes(&[wrong, "", &right]);
    Authenticator::login(
        opts(&sim, data.path()),
        &mut prompter,
        SecondFactor::TrustedDevice,
    )
    .await
    .expect("right code on the last try");
    assert_eq!(count(&sim, INIT), inits, "a new SRP was run");
}

#[tokio::test]
async fn headless_two_step_in_separate_authenticators() {
    let sim = start(two_factor()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let sent = Authenticator::request_code(
        opts(&sim, data.path()),
        &mut NoPrompt,
        SecondFactor::TrustedDevice,
    )
    .await
    .expect("request a code");
    assert!(matches!(sent, CodeRequest::Sent { .. }), "{sent:?}");
    assert_eq!(count(&sim, INIT), 1);

    // The second "process" has no password at all: it must not need one.
    let mut second = opts(&sim, data.path());
    second.password = Default::default();
    let session = Authenticator::submit_code(second, &sim.account().two_factor_code)
        .await
        .expect("submit the code");
    assert_eq!(
        count(&sim, INIT),
        1,
        "submit-code ran SRP (that would send a new code)"
    );
    assert!(session.summary().await.trusted);

    // Asking again now: nothing to do.
    let again = Authenticator::request_code(
        opts(&sim, data.path()),
        &mut NoPrompt,
        SecondFactor::TrustedDevice,
    )
    .await
    .expect("request again");
    assert!(
        matches!(again, CodeRequest::AlreadySignedIn(_)),
        "{again:?}"
    );
}

#[tokio::test]
async fn headless_sms_two_step_and_wrong_code_keeps_the_pending_sign_in() {
    let sim = start(two_factor()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let sent =
        Authenticator::request_code(opts(&sim, data.path()), &mut NoPrompt, SecondFactor::Sms)
            .await
            .expect("request an SMS");
    assert!(
        matches!(sent, CodeRequest::Sent { ref destination } if destination.contains('•') || !destination.is_empty())
    );
    let right = sim.account().two_factor_code.clone();
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let err = Authenticator::submit_code(opts(&sim, data.path()), wrong)
        .await
        .expect_err("wrong code");
    assert!(
        matches!(err, AuthError::WrongSubmittedCode { .. }),
        "{err:?}"
    );
    // The message says to submit again, not to start over.
    assert!(
        err.to_string().contains("--submit-code CODE` again"),
        "{err}"
    );
    Authenticator::submit_code(opts(&sim, data.path()), &right)
        .await
        .expect("right code after a wrong one");
    assert_eq!(count(&sim, "/appleauth/auth/verify/phone/securitycode"), 2);
    assert_eq!(count(&sim, INIT), 1);
}

#[tokio::test]
async fn submit_code_without_request_code_is_refused_clearly() {
    let sim = start(two_factor()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let err = Authenticator::submit_code(opts(&sim, data.path()), "123456")
        .await
        .expect_err("nothing pending");
    assert!(matches!(err, AuthError::NoPendingCode { .. }), "{err:?}");
    assert_eq!(count(&sim, INIT), 0);
}

/// A pending sign-in that expired on Apple's side is refused as such, and forgotten: `status`
/// no longer says a code is awaited.
#[tokio::test]
async fn an_expired_pending_sign_in_is_forgotten_when_a_code_comes_too_late() {
    let sim = start(two_factor()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let username = sim.account().username.clone();
    Authenticator::request_code(
        opts(&sim, data.path()),
        &mut NoPrompt,
        SecondFactor::TrustedDevice,
    )
    .await
    .expect("request a code");
    let summary = || {
        icloudpd_rs::auth::read_summary(data.path(), &username)
            .unwrap()
            .expect("a saved session")
    };
    assert!(summary().code_pending);
    sim.state().auth.expire_web_sessions();
    let err = Authenticator::submit_code(opts(&sim, data.path()), &sim.account().two_factor_code)
        .await
        .expect_err("the pending sign-in expired");
    assert!(matches!(err, AuthError::NoPendingCode { .. }), "{err:?}");
    assert!(!summary().code_pending, "the expired marker is gone");
}

/// A CloudKit stand-in: answers 200 to a valid trusted web session, else 401 — the check the
/// simulator's CloudKit service makes (`AuthState::web_session`). Cookies are scoped by host,
/// not port, so the session's jar sends the simulator's cookies here too.
async fn cloudkit_stand_in(sim: &Sim) -> String {
    use axum::http::StatusCode;
    let state = sim.state().clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let state = state.clone();
        async move {
            match state.auth.web_session(&headers) {
                Some(w) if w.trusted => StatusCode::OK,
                _ => StatusCode::UNAUTHORIZED,
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/database/1/com.apple.photos.cloud/production/private/zones/list")
}

/// One CloudKit call with the documented recovery: on 401/421, re-authenticate once and retry.
async fn call(session: &AccountSession, url: &str) -> Result<u16, AuthError> {
    for _ in 0..2 {
        let seen = session.generation();
        let status = session
            .http()
            .post(url)
            .body("{}")
            .send()
            .await
            .expect("request")
            .status()
            .as_u16();
        if status == 401 || status == 421 {
            session.reauthenticate(seen).await?;
            continue;
        }
        return Ok(status);
    }
    Ok(401)
}

#[tokio::test]
async fn session_expiry_mid_run_is_healed_by_one_reauthentication() {
    let sim = start(two_factor()).await;
    let data = tempfile::tempdir().expect("tempdir");
    login_with_device_code(&sim, data.path())
        .await
        .expect("login");
    let session = Authenticator::resume(opts(&sim, data.path()))
        .await
        .expect("resume");
    let url = cloudkit_stand_in(&sim).await;
    assert_eq!(call(&session, &url).await.expect("call"), 200);

    sim.state().auth.expire_web_sessions();
    let inits = count(&sim, INIT);
    let pushes = count(&sim, PUSH_OR_SUBMIT);
    // Eight tasks hit the expiry at once; one sign-in heals all of them.
    let session = Arc::new(session);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let session = session.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move { call(&session, &url).await }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("call after expiry"), 200);
    }
    assert_eq!(
        count(&sim, INIT),
        inits + 1,
        "exactly one SRP for all tasks"
    );
    assert_eq!(
        count(&sim, PUSH_OR_SUBMIT),
        pushes,
        "no second factor while trusted"
    );
    assert_eq!(session.generation(), 1);
    // The saved session is the healed one: a new process reuses it without SRP.
    Authenticator::resume(opts(&sim, data.path()))
        .await
        .expect("resume after heal");
    assert_eq!(count(&sim, INIT), inits + 1);
}

#[tokio::test]
async fn reauthentication_needing_a_code_fails_once_for_everyone() {
    let sim = start(two_factor()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let session = login_with_device_code(&sim, data.path())
        .await
        .expect("login");
    sim.state().auth.expire_trust_tokens();
    sim.state().auth.expire_web_sessions();
    let seen = session.generation();
    let first = session.reauthenticate(seen).await.expect_err("code needed");
    assert!(
        matches!(first, AuthError::TwoFactorRequired { .. }),
        "{first:?}"
    );
    let inits = count(&sim, INIT);
    let second = session
        .reauthenticate(seen)
        .await
        .expect_err("still needed");
    assert!(matches!(second, AuthError::TwoFactorRequired { .. }));
    assert_eq!(count(&sim, INIT), inits, "the failure was not remembered");

    // The user signs in again elsewhere (another process, same data dir): the running session
    // picks that up on its next attempt, without a code of its own.
    login_with_device_code(&sim, data.path())
        .await
        .expect("login elsewhere");
    let inits = count(&sim, INIT);
    session
        .reauthenticate(seen)
        .await
        .expect("healed by the other sign-in");
    assert_eq!(
        count(&sim, INIT),
        inits,
        "no SRP needed: the saved session is adopted"
    );
    assert_eq!(session.generation(), seen + 1);
}

#[tokio::test]
async fn persist_never_overwrites_a_newer_sign_in() {
    let sim = start(SimConfig::default()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let old = Authenticator::resume(opts(&sim, data.path()))
        .await
        .expect("first");
    sim.state().auth.expire_web_sessions();
    let newer = Authenticator::resume(opts(&sim, data.path()))
        .await
        .expect("second");
    let path = data
        .path()
        .join(icloudpd_rs::auth::session_store::account_dir_name(
            &sim.account().username,
        ))
        .join("session.json");
    let before = std::fs::read(&path).expect("saved");
    old.persist().await.expect("persist old");
    assert_eq!(
        std::fs::read(&path).expect("saved"),
        before,
        "the older session overwrote the newer"
    );
    newer.persist().await.expect("persist newer");
    // The saved session still works for a new process, without SRP.
    let inits = count(&sim, INIT);
    Authenticator::resume(opts(&sim, data.path()))
        .await
        .expect("third");
    assert_eq!(count(&sim, INIT), inits);
}

#[tokio::test]
async fn refusals_are_distinct() {
    // Wrong password.
    let sim = start(SimConfig::default()).await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut o = opts(&sim, data.path());
    o.password = icloudpd_rs::auth::PasswordSources::literal("not-the-password");
    let err = Authenticator::resume(o).await.expect_err("wrong password");
    assert!(matches!(err, AuthError::WrongPassword { .. }), "{err:?}");

    // Locked.
    let sim = start(SimConfig {
        locked: true,
        ..Default::default()
    })
    .await;
    let err = Authenticator::resume(opts(&sim, data.path()))
        .await
        .expect_err("locked");
    assert!(matches!(err, AuthError::AccountLocked { .. }), "{err:?}");

    // Security keys.
    let sim = start(SimConfig {
        two_factor: true,
        fido: true,
        ..Default::default()
    })
    .await;
    let err = Authenticator::resume(opts(&sim, data.path()))
        .await
        .expect_err("fido");
    match &err {
        AuthError::SecurityKeys { key_names } => assert!(!key_names.is_empty()),
        other => panic!("expected SecurityKeys, got {other:?}"),
    }

    // Advanced Data Protection.
    let sim = start(SimConfig {
        adp: true,
        ..Default::default()
    })
    .await;
    let err = Authenticator::resume(opts(&sim, data.path()))
        .await
        .expect_err("adp");
    assert!(
        matches!(err, AuthError::AdvancedDataProtection { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("Access iCloud Data on the Web"),
        "{err}"
    );
}

#[tokio::test]
async fn throttling_is_retried_a_bounded_number_of_times() {
    let sim = start(SimConfig {
        faults: vec!["api-429=1.0".into()],
        ..Default::default()
    })
    .await;
    let data = tempfile::tempdir().expect("tempdir");
    let err = Authenticator::resume(opts(&sim, data.path()))
        .await
        .expect_err("throttled");
    match err {
        AuthError::Throttled {
            status: 429,
            attempts: 3,
            retry_after,
            ..
        } => assert!(retry_after.is_some(), "Retry-After not reported"),
        other => panic!("expected Throttled, got {other:?}"),
    }
    assert_eq!(count(&sim, INIT), 3);
}

#[tokio::test]
async fn garbled_answers_to_repeatable_calls_are_retried() {
    use icloudpd_rs::sim::faults::{FaultKind, FaultRule};
    let sim = start(SimConfig::default()).await;
    // The first two answers arrive cut in half (status and headers intact): both are SRP
    // challenges, asked again rather than taken as a protocol error.
    sim.state().faults.set(
        FaultKind::ApiMalformed,
        FaultRule {
            p: 1.0,
            remaining: Some(2),
            ..FaultRule::default()
        },
    );
    let data = tempfile::tempdir().expect("tempdir");
    let session = Authenticator::resume(opts(&sim, data.path()))
        .await
        .expect("sign-in through garbled answers");
    assert_eq!(session.dsid(), sim.account().dsid);
    assert_eq!(count(&sim, INIT), 3, "signin/init asked again twice");
}

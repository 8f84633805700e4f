//! Simulated Apple sign-in: idmsa (`/appleauth/auth/...`: SRP-6a, two-factor, trust) and the
//! setup service (`/setup/ws/1/...`: `accountLogin`, `validate`, `requestPCS`), with the web
//! sessions that CloudKit calls must present. Written from `icloud-auth.md` as a server, never
//! from client code.
//!
//! Layout: [`srp`] (server math), [`accounts`] (salt and verifiers), [`sessions`] (everything
//! remembered between requests), [`idmsa`] (password sign-in), [`second_factor`] (codes and
//! trust), [`setup`] and [`account_doc`] (the setup service), [`cookies`] and [`replies`]
//! (wire details shared by the handlers).
//!
//! Choices where the recordings are silent (documented in the handlers):
//! - a locked account gets 403 with `serviceErrors` code `-20209` at `signin/complete`, whatever
//!   the password;
//! - malformed input gets 400 with code `-20000` (in both `serviceErrors` and `service_errors`
//!   spellings, plus `hasError`); an idmsa call without a live `scnt` / `X-Apple-ID-Session-Id`
//!   gets 401; an unknown or expired web session gets 401 with a plain-text body at the setup
//!   service;
//! - the push (E7) and SMS request (E10) answer 200 with a small JSON body; a right SMS code
//!   (E11) answers 204 like a device code; `2sv/trust` without a verified code answers 401;
//! - 204 answers carry no body (the recorded `{}` of `2sv/trust` cannot go with a 204);
//! - a web session is "trusted" once no second factor is needed (so always, for an account
//!   without one); trusted sessions get `X-APPLE-WEBAUTH-TOKEN` and the recorded PCS cookies
//!   (not `-PCS-Photos`, which only `requestPCS` hands out);
//! - `scnt` and the session id stay the same for a whole idmsa session; session tokens rotate.
//!   `expire_web_sessions` also ends idmsa sessions (their session tokens are gone).

pub mod account_doc;
pub mod accounts;
pub mod cookies;
pub mod idmsa;
pub mod replies;
pub mod second_factor;
pub mod sessions;
pub mod setup;
pub mod srp;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post, put};

use self::accounts::AccountSecrets;
use self::sessions::{DS_WEB_SESSION_TOKEN, SessionStore, WEBAUTH_TOKEN};
use super::{SharedState, SimAccount, SimConfig};

/// A valid web session, as identified from a request's cookies.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub dsid: String,
    /// The second factor was completed or a valid trust token was presented (always true for
    /// an account without a second factor).
    pub trusted: bool,
}

/// Accounts, SRP exchanges in flight, idmsa sessions, web sessions and trust tokens.
pub struct AuthState {
    dsid: String,
    secrets: AccountSecrets,
    store: SessionStore,
    code_409_quirk: AtomicBool,
}

impl AuthState {
    /// State for the configured account (computes its SRP verifiers once).
    pub fn new(config: &SimConfig, account: &SimAccount) -> Self {
        AuthState {
            dsid: account.dsid.clone(),
            secrets: AccountSecrets::new(config, account),
            store: SessionStore::new(
                Duration::from_secs(config.session_ttl),
                Duration::from_secs(config.trust_ttl),
            ),
            code_409_quirk: AtomicBool::new(false),
        }
    }

    /// Test and benchmark convenience: a new trusted web session minted without signing in,
    /// returned as the value of a `Cookie` header that CloudKit calls accept.
    pub fn mint_web_session(&self) -> String {
        let web = self.store.create_web_session(&self.dsid, None, true);
        let c = &web.cookies;
        format!(
            "X-APPLE-WEBAUTH-USER=\"{}\"; {WEBAUTH_TOKEN}=\"{}\"; {DS_WEB_SESSION_TOKEN}=\"{}\"",
            c.webauth_user, c.webauth_token, c.ds_web_session_token
        )
    }

    /// Invalidate every web session (cookies and session tokens); trust tokens stay valid.
    pub fn expire_web_sessions(&self) {
        tracing::info!("all web sessions expired");
        self.store.expire_web_sessions();
    }

    /// Invalidate every trust token (the next sign-in needs the second factor again).
    pub fn expire_trust_tokens(&self) {
        tracing::info!("all trust tokens expired");
        self.store.expire_trust_tokens();
    }

    /// The web session a request's cookies identify, if valid.
    pub fn web_session(&self, headers: &HeaderMap) -> Option<WebSession> {
        let web = self.store.find_web_session_in(headers)?;
        Some(WebSession {
            dsid: web.dsid.clone(),
            trusted: web.trusted(),
        })
    }

    /// Quirk reported by rclone's change log: answer a right code with 409 (and `valid: true`)
    /// instead of the recorded 204. Off by default.
    pub fn set_code_409_quirk(&self, on: bool) {
        self.code_409_quirk.store(on, Ordering::Relaxed);
    }

    fn code_409_quirk(&self) -> bool {
        self.code_409_quirk.load(Ordering::Relaxed)
    }

    /// Codes "delivered" (trusted-device pushes and SMS) in the idmsa session named by these
    /// headers (`scnt` / `X-Apple-ID-Session-Id`), for tests.
    pub fn codes_sent(&self, headers: &HeaderMap) -> Option<u32> {
        let id = self.store.session_id_from_headers(headers)?;
        self.store.with_session(&id, |s| s.codes_sent)
    }
}

/// Routes under `/appleauth/auth` and `/setup/ws/1`.
pub fn router() -> Router<SharedState> {
    const AUTH: &str = "/appleauth/auth";
    const SETUP: &str = "/setup/ws/1";
    Router::new()
        .route(&format!("{AUTH}/signin/init"), post(idmsa::signin_init))
        .route(
            &format!("{AUTH}/signin/complete"),
            post(idmsa::signin_complete),
        )
        .route(
            &format!("{AUTH}/repair/complete"),
            post(idmsa::repair_complete),
        )
        .route(
            &format!("{AUTH}/authorize/signin"),
            get(idmsa::authorize_signin),
        )
        .route(&format!("{AUTH}/federate"), post(idmsa::federate))
        .route(
            &format!("{AUTH}/verify/trusteddevice/securitycode"),
            put(second_factor::push_code).post(second_factor::submit_device_code),
        )
        .route(AUTH, get(second_factor::auth_page))
        .route(&format!("{AUTH}/"), get(second_factor::auth_page))
        .route(
            &format!("{AUTH}/verify/phone"),
            put(second_factor::send_phone_code),
        )
        .route(
            &format!("{AUTH}/verify/phone/securitycode"),
            post(second_factor::submit_phone_code),
        )
        .route(&format!("{AUTH}/2sv/trust"), get(second_factor::trust))
        .route(&format!("{SETUP}/accountLogin"), post(setup::account_login))
        .route(&format!("{SETUP}/validate"), post(setup::validate))
        .route(&format!("{SETUP}/requestPCS"), post(setup::request_pcs))
}

//! Simulated Apple sign-in: idmsa (`/appleauth/auth/...`: SRP-6a, two-factor, trust) and the
//! setup service (`/setup/ws/1/...`: `accountLogin`, `validate`), with the web sessions that
//! CloudKit calls must present.

use axum::Router;
use axum::http::HeaderMap;

use super::{SharedState, SimAccount, SimConfig};

/// A valid web session, as identified from a request's cookies.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub dsid: String,
    /// The second factor was completed or a valid trust token was presented.
    pub trusted: bool,
}

/// Accounts, SRP exchanges in flight, idmsa sessions, web sessions and trust tokens.
pub struct AuthState {
    dsid: String,
}

/// Placeholder token of the stub (replaced by real sessions).
const STUB_TOKEN: &str = "X-APPLE-WEBAUTH-TOKEN=stub";

impl AuthState {
    /// State for the configured account.
    pub fn new(_config: &SimConfig, account: &SimAccount) -> Self {
        AuthState {
            dsid: account.dsid.clone(),
        }
    }

    /// Test and benchmark convenience: a new trusted web session minted without signing in,
    /// returned as the value of a `Cookie` header that CloudKit calls accept.
    pub fn mint_web_session(&self) -> String {
        format!("X-APPLE-WEBAUTH-USER=\"v=1:s=1:d={}\"; {STUB_TOKEN}", self.dsid)
    }

    /// Invalidate every web session (cookies and session tokens); trust tokens stay valid.
    pub fn expire_web_sessions(&self) {}

    /// Invalidate every trust token (the next sign-in needs the second factor again).
    pub fn expire_trust_tokens(&self) {}

    /// The web session a request's cookies identify, if valid.
    pub fn web_session(&self, headers: &HeaderMap) -> Option<WebSession> {
        let cookies = headers.get(axum::http::header::COOKIE)?.to_str().ok()?;
        cookies.contains(STUB_TOKEN).then(|| WebSession {
            dsid: self.dsid.clone(),
            trusted: true,
        })
    }
}

/// Routes under `/appleauth/auth` and `/setup/ws/1`.
pub fn router() -> Router<SharedState> {
    Router::new()
}

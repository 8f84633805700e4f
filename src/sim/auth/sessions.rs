//! What the sign-in service remembers: SRP exchanges in flight (by `c`), idmsa sessions (the
//! sign-in and two-factor context, found again by `X-Apple-ID-Session-Id` or `scnt`, and by the
//! `X-Apple-Session-Token`s minted for them), web sessions (the `.icloud.com` cookies CloudKit
//! calls present) and two-factor trust tokens. All of it lives in the server, so a client may
//! continue a sign-in from another process with nothing but the values it was handed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine;

use super::cookies::request_cookies;
use super::srp::ServerExchange;

/// How long a `signin/init` answer may wait for its `signin/complete`.
const EXCHANGE_TTL: Duration = Duration::from_secs(10 * 60);
/// Above this many entries, a map is swept of expired entries before it grows further.
const SWEEP_THRESHOLD: usize = 4096;

/// Cookie that names a web session (set at `accountLogin`, present before and after trust).
pub const DS_WEB_SESSION_TOKEN: &str = "X-APPLE-DS-WEB-SESSION-TOKEN";
/// Cookie given only to trusted web sessions; it names the session too.
pub const WEBAUTH_TOKEN: &str = "X-APPLE-WEBAUTH-TOKEN";

/// A fresh random token: `n` random bytes, base64url without padding (safe in headers and
/// cookies).
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::fill(&mut bytes[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Random upper-case hexadecimal of `n` bytes.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::fill(&mut bytes[..]);
    hex::encode_upper(bytes)
}

/// Where an idmsa session stands with the second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// The account has no second factor.
    NotRequired,
    /// A trusted-device or SMS code is expected.
    Pending,
    /// The account signs in with FIDO security keys only, which web clients cannot do.
    SecurityKey,
    /// A correct code was entered in this session.
    Verified,
}

/// An `signin/init` answer waiting for its `signin/complete`.
pub struct PendingExchange {
    pub exchange: ServerExchange,
    /// `accountName` exactly as sent to `signin/init`.
    pub account_name: String,
    /// The name is the simulated account (else every proof is refused).
    pub known: bool,
    /// The `scnt` handed out by `signin/init`; the idmsa session keeps it.
    pub scnt: String,
    created: Instant,
}

impl PendingExchange {
    /// A new exchange, timed from now.
    pub fn new(exchange: ServerExchange, account_name: String, known: bool, scnt: String) -> Self {
        PendingExchange {
            exchange,
            account_name,
            known,
            scnt,
            created: Instant::now(),
        }
    }
}

/// The sign-in context Apple keys by `X-Apple-ID-Session-Id` / `scnt`.
#[derive(Debug, Clone)]
pub struct IdmsaSession {
    pub id: String,
    pub scnt: String,
    pub auth_attributes: String,
    pub second_factor: SecondFactor,
    /// A valid trust token was presented (`signin/complete` or `accountLogin`).
    pub trusted_by_token: bool,
    /// Codes "delivered" so far (pushes and SMS); tests read it.
    pub codes_sent: u32,
    expires: Instant,
}

impl IdmsaSession {
    /// No second factor is (any longer) needed in this session.
    pub fn trusted(&self) -> bool {
        matches!(
            self.second_factor,
            SecondFactor::NotRequired | SecondFactor::Verified
        ) || self.trusted_by_token
    }
}

/// The idmsa values a success-type answer carries.
#[derive(Debug, Clone)]
pub struct SessionHeaders {
    pub scnt: String,
    pub session_id: String,
    pub session_token: String,
    pub auth_attributes: String,
}

/// Random cookie values of one web session (names in icloud-auth.md 1.5).
#[derive(Debug, Clone)]
pub struct WebCookies {
    pub ds_web_session_token: String,
    pub webauth_token: String,
    pub webauth_user: String,
    pub login: String,
    pub validate: String,
    pub hsa_login: String,
    pub unique_client_id: String,
    /// Suffix of the `X_APPLE_WEB_KB-<id>` cookie name.
    pub kb_id: String,
    pub kb: String,
}

impl WebCookies {
    fn new(dsid: &str) -> Self {
        let bst = || format!("v=1:t=Cw==BST_{}~~", random_token(24));
        WebCookies {
            ds_web_session_token: random_token(48),
            webauth_token: format!("v=2:t=EQ==BST_{}~~", random_token(48)),
            webauth_user: format!("v=1:s=1:d={dsid}"),
            login: bst(),
            validate: bst(),
            hsa_login: format!("v=2:t=Cw==BST_{}~~", random_token(24)),
            unique_client_id: random_token(12),
            kb_id: random_hex(16),
            kb: bst(),
        }
    }
}

/// A web session: what `accountLogin` created and `validate` / CloudKit calls identify.
#[derive(Debug)]
pub struct WebEntry {
    pub dsid: String,
    /// The idmsa session it was created from (`None` for sessions minted for tests).
    pub idmsa_id: Option<String>,
    trusted: AtomicBool,
    pub expires: Instant,
    pub cookies: WebCookies,
}

impl WebEntry {
    /// The session may reach the photos (second factor done, trusted, or none needed).
    pub fn trusted(&self) -> bool {
        self.trusted.load(Ordering::Relaxed)
    }

    /// Mark the session trusted (its next cookies include `X-APPLE-WEBAUTH-TOKEN`).
    pub fn set_trusted(&self) {
        self.trusted.store(true, Ordering::Relaxed);
    }

    /// Still within its lifetime.
    pub fn is_live(&self) -> bool {
        Instant::now() < self.expires
    }

    /// Time left before it expires.
    pub fn remaining(&self) -> Duration {
        self.expires.saturating_duration_since(Instant::now())
    }
}

#[derive(Default)]
struct SignIn {
    exchanges: HashMap<String, PendingExchange>,
    sessions: HashMap<String, IdmsaSession>,
    by_scnt: HashMap<String, String>,
    /// `X-Apple-Session-Token` -> (idmsa session id, expiry).
    by_token: HashMap<String, (String, Instant)>,
}

/// Every piece of sign-in state, each behind its own lock so CloudKit's per-request web-session
/// check only takes a shared read lock.
pub struct SessionStore {
    session_ttl: Duration,
    trust_ttl: Duration,
    signin: Mutex<SignIn>,
    web: RwLock<HashMap<String, Arc<WebEntry>>>,
    trust: Mutex<HashMap<String, Instant>>,
}

impl SessionStore {
    /// Empty store with the configured lifetimes.
    pub fn new(session_ttl: Duration, trust_ttl: Duration) -> Self {
        SessionStore {
            session_ttl,
            trust_ttl,
            signin: Mutex::new(SignIn::default()),
            web: RwLock::new(HashMap::new()),
            trust: Mutex::new(HashMap::new()),
        }
    }

    fn signin(&self) -> MutexGuard<'_, SignIn> {
        self.signin.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remember an exchange under `c`.
    pub fn put_exchange(&self, c: String, pending: PendingExchange) {
        let mut s = self.signin();
        if s.exchanges.len() >= SWEEP_THRESHOLD {
            s.exchanges
                .retain(|_, p| p.created.elapsed() < EXCHANGE_TTL);
        }
        s.exchanges.insert(c, pending);
    }

    /// Take (once) the exchange stored under `c`, if it has not timed out.
    pub fn take_exchange(&self, c: &str) -> Option<PendingExchange> {
        self.signin()
            .exchanges
            .remove(c)
            .filter(|p| p.created.elapsed() < EXCHANGE_TTL)
    }

    /// Open an idmsa session after a successful SRP proof; returns its first headers.
    pub fn open_session(
        &self,
        scnt: String,
        second_factor: SecondFactor,
        trusted_by_token: bool,
    ) -> SessionHeaders {
        let session = IdmsaSession {
            id: random_hex(16),
            scnt,
            auth_attributes: random_token(36),
            second_factor,
            trusted_by_token,
            codes_sent: 0,
            expires: Instant::now() + self.session_ttl,
        };
        let mut s = self.signin();
        if s.sessions.len() >= SWEEP_THRESHOLD {
            let now = Instant::now();
            s.sessions.retain(|_, v| v.expires > now);
            s.by_token.retain(|_, (_, exp)| *exp > now);
            let SignIn {
                sessions, by_scnt, ..
            } = &mut *s;
            by_scnt.retain(|_, id| sessions.contains_key(id));
        }
        let id = session.id.clone();
        s.by_scnt.insert(session.scnt.clone(), id.clone());
        s.sessions.insert(id.clone(), session);
        Self::mint_token_locked(&mut s, &id, self.session_ttl).expect("session just inserted")
    }

    fn mint_token_locked(s: &mut SignIn, id: &str, ttl: Duration) -> Option<SessionHeaders> {
        let session = s.sessions.get(id)?;
        let headers = SessionHeaders {
            scnt: session.scnt.clone(),
            session_id: session.id.clone(),
            session_token: random_token(96),
            auth_attributes: session.auth_attributes.clone(),
        };
        s.by_token.insert(
            headers.session_token.clone(),
            (id.to_string(), Instant::now() + ttl),
        );
        Some(headers)
    }

    /// A new `X-Apple-Session-Token` for the session `id`.
    pub fn mint_token(&self, id: &str) -> Option<SessionHeaders> {
        Self::mint_token_locked(&mut self.signin(), id, self.session_ttl)
    }

    /// The idmsa session a request names with `X-Apple-ID-Session-Id`, else with `scnt`.
    pub fn session_id_from_headers(&self, headers: &HeaderMap) -> Option<String> {
        let s = self.signin();
        let now = Instant::now();
        let live = |id: &String| s.sessions.get(id).is_some_and(|v| v.expires > now);
        let by_id = headers
            .get("x-apple-id-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .filter(live);
        by_id.or_else(|| {
            let scnt = headers.get("scnt")?.to_str().ok()?;
            s.by_scnt.get(scnt).filter(|id| live(id)).cloned()
        })
    }

    /// The idmsa session a valid `X-Apple-Session-Token` was minted for.
    pub fn session_id_from_token(&self, token: &str) -> Option<String> {
        let s = self.signin();
        let (id, expires) = s.by_token.get(token)?;
        (*expires > Instant::now() && s.sessions.contains_key(id)).then(|| id.clone())
    }

    /// Run `f` on the session `id`, if it exists.
    pub fn with_session<R>(&self, id: &str, f: impl FnOnce(&mut IdmsaSession) -> R) -> Option<R> {
        self.signin().sessions.get_mut(id).map(f)
    }

    /// A new trust token, valid for the configured trust lifetime.
    pub fn mint_trust_token(&self) -> String {
        let token = format!("HSARMTKNSRVXWFla{}", random_token(64));
        let mut t = self.trust.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() >= SWEEP_THRESHOLD {
            let now = Instant::now();
            t.retain(|_, exp| *exp > now);
        }
        t.insert(token.clone(), Instant::now() + self.trust_ttl);
        token
    }

    /// The token was minted here and has not expired.
    pub fn trust_token_valid(&self, token: &str) -> bool {
        let t = self.trust.lock().unwrap_or_else(|e| e.into_inner());
        t.get(token).is_some_and(|exp| *exp > Instant::now())
    }

    /// Create a web session for `dsid`.
    pub fn create_web_session(
        &self,
        dsid: &str,
        idmsa_id: Option<String>,
        trusted: bool,
    ) -> Arc<WebEntry> {
        let entry = Arc::new(WebEntry {
            dsid: dsid.to_string(),
            idmsa_id,
            trusted: AtomicBool::new(trusted),
            expires: Instant::now() + self.session_ttl,
            cookies: WebCookies::new(dsid),
        });
        let mut web = self.web.write().unwrap_or_else(|e| e.into_inner());
        if web.len() >= SWEEP_THRESHOLD {
            web.retain(|_, e| e.is_live());
        }
        web.insert(entry.cookies.ds_web_session_token.clone(), entry.clone());
        web.insert(entry.cookies.webauth_token.clone(), entry.clone());
        entry
    }

    /// The live web session a `Cookie` header names, by `X-APPLE-DS-WEB-SESSION-TOKEN` or
    /// `X-APPLE-WEBAUTH-TOKEN`. Other cookies are ignored.
    pub fn find_web_session(&self, cookie_header: &str) -> Option<Arc<WebEntry>> {
        let web = self.web.read().unwrap_or_else(|e| e.into_inner());
        request_cookies(cookie_header)
            .filter(|(name, _)| *name == DS_WEB_SESSION_TOKEN || *name == WEBAUTH_TOKEN)
            .find_map(|(_, value)| web.get(value).filter(|e| e.is_live()).cloned())
    }

    /// The live web session named by any of a request's `Cookie` headers (HTTP/2 clients such
    /// as Go's split the cookies over several header fields).
    pub fn find_web_session_in(&self, headers: &HeaderMap) -> Option<Arc<WebEntry>> {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|cookies| self.find_web_session(cookies))
    }

    /// Forget every web session, session token and idmsa session (trust tokens stay).
    pub fn expire_web_sessions(&self) {
        self.web.write().unwrap_or_else(|e| e.into_inner()).clear();
        let mut s = self.signin();
        s.sessions.clear();
        s.by_scnt.clear();
        s.by_token.clear();
    }

    /// Forget every trust token.
    pub fn expire_trust_tokens(&self) {
        self.trust.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn store() -> SessionStore {
        SessionStore::new(Duration::from_secs(60), Duration::from_secs(60))
    }

    #[test]
    fn idmsa_session_is_found_by_id_scnt_or_token() {
        let st = store();
        let h = st.open_session("scnt-1".into(), SecondFactor::Pending, false);
        assert_eq!(h.scnt, "scnt-1");
        let mut headers = HeaderMap::new();
        headers.insert("scnt", HeaderValue::from_static("scnt-1"));
        assert_eq!(
            st.session_id_from_headers(&headers),
            Some(h.session_id.clone())
        );
        // A stale session id falls back to scnt; a known session id wins.
        headers.insert("x-apple-id-session-id", HeaderValue::from_static("unknown"));
        assert_eq!(
            st.session_id_from_headers(&headers),
            Some(h.session_id.clone())
        );
        let mut by_id = HeaderMap::new();
        by_id.insert(
            "x-apple-id-session-id",
            HeaderValue::from_str(&h.session_id).expect("ascii"),
        );
        assert_eq!(
            st.session_id_from_headers(&by_id),
            Some(h.session_id.clone())
        );
        assert_eq!(
            st.session_id_from_token(&h.session_token),
            Some(h.session_id.clone())
        );
        let again = st.mint_token(&h.session_id).expect("session exists");
        assert_ne!(again.session_token, h.session_token);
        assert_eq!(
            st.session_id_from_token(&again.session_token),
            Some(h.session_id.clone())
        );

        st.expire_web_sessions();
        assert_eq!(st.session_id_from_headers(&by_id), None);
        assert_eq!(st.session_id_from_token(&h.session_token), None);
    }

    #[test]
    fn exchanges_are_single_use() {
        let st = store();
        let ex = ServerExchange::new(
            vec![1; 16],
            num_bigint::BigUint::from(7u8),
            num_bigint::BigUint::from(9u8),
        )
        .expect("valid A");
        st.put_exchange(
            "c1".into(),
            PendingExchange::new(ex, "n".into(), true, "s".into()),
        );
        assert!(st.take_exchange("c1").is_some());
        assert!(st.take_exchange("c1").is_none());
    }

    #[test]
    fn web_sessions_by_either_cookie_and_expiry() {
        let st = store();
        let e = st.create_web_session("42", None, false);
        let ds = format!(
            "junk=1; {DS_WEB_SESSION_TOKEN}=\"{}\"",
            e.cookies.ds_web_session_token
        );
        assert_eq!(
            st.find_web_session(&ds).map(|w| w.dsid.clone()),
            Some("42".into())
        );
        let tok = format!("{WEBAUTH_TOKEN}={}", e.cookies.webauth_token);
        assert!(st.find_web_session(&tok).is_some());
        assert!(
            st.find_web_session("X-APPLE-DS-WEB-SESSION-TOKEN=nope")
                .is_none()
        );
        assert!(!e.trusted());
        e.set_trusted();
        assert!(st.find_web_session(&ds).is_some_and(|w| w.trusted()));
        // Cookies split over several header fields (HTTP/2).
        let mut split = HeaderMap::new();
        split.append(axum::http::header::COOKIE, HeaderValue::from_static("a=1"));
        split.append(
            axum::http::header::COOKIE,
            HeaderValue::from_str(&ds).expect("ascii"),
        );
        assert!(st.find_web_session_in(&split).is_some());
        st.expire_web_sessions();
        assert!(st.find_web_session(&ds).is_none());
        assert!(st.find_web_session_in(&split).is_none());

        let short = SessionStore::new(Duration::ZERO, Duration::ZERO);
        let e = short.create_web_session("1", None, true);
        assert!(
            short
                .find_web_session(&format!(
                    "{DS_WEB_SESSION_TOKEN}={}",
                    e.cookies.ds_web_session_token
                ))
                .is_none()
        );
        let t = short.mint_trust_token();
        assert!(!short.trust_token_valid(&t));
    }

    #[test]
    fn trust_tokens_expire_on_demand() {
        let st = store();
        let t = st.mint_trust_token();
        assert!(st.trust_token_valid(&t));
        assert!(!st.trust_token_valid("forged"));
        st.expire_trust_tokens();
        assert!(!st.trust_token_valid(&t));
    }
}

//! A signed-in account as later modules use it: the HTTP client carrying the web-session
//! cookies, the CloudKit URL and ids, and re-authentication in the middle of a run.
//!
//! Re-authentication is single-flight: callers pass the [`AccountSession::generation`] they saw
//! before the request that failed; the first caller signs in again while the others wait on the
//! same mutex, then find the generation moved on and simply retry. A failure is remembered for
//! that generation, so a crowd of failing requests causes one sign-in attempt, not one each
//! (Apple rate-limits SRP): an authentication failure (a code is needed, the password is wrong)
//! until the saved session changes on disk (the user ran `login` meanwhile), a transient one
//! for [`TRANSIENT_FAILURE_MEMORY`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::account::AccountInfo;
use super::error::AuthError;
use super::flow::Work;
use super::session_store::SessionSummary;
use crate::net::CookieJar;

/// A signed-in account. Cheap to clone; clones share the cookie jar and re-authentication.
#[derive(Clone)]
pub struct AccountSession {
    inner: Arc<Shared>,
}

struct Shared {
    http: reqwest::Client,
    jar: Arc<CookieJar>,
    client_id: String,
    username: String,
    account: RwLock<AccountInfo>,
    generation: AtomicU64,
    reauth: tokio::sync::Mutex<ReauthState>,
}

/// How long a transient re-authentication failure (network, Apple unavailable) is returned to
/// later callers before a new attempt is allowed.
pub const TRANSIENT_FAILURE_MEMORY: Duration = Duration::from_secs(30);

struct ReauthState {
    work: Work,
    failure: Option<Failure>,
}

/// The last failed re-authentication.
struct Failure {
    generation: u64,
    error: AuthError,
    at: Instant,
    /// The session token saved on disk at the time (a change means someone signed in).
    saved_token: Option<String>,
}

impl Failure {
    /// Whether a caller of `generation` should get this failure instead of a new attempt.
    fn still_holds(&self, generation: u64, work: &Work) -> bool {
        if self.generation != generation {
            return false;
        }
        if saved_token(work) != self.saved_token {
            return false;
        }
        // Throttling is transient (exit code 1), but signing in again soon makes it worse.
        self.error.is_authentication_problem()
            || matches!(self.error, AuthError::Throttled { .. })
            || self.at.elapsed() < TRANSIENT_FAILURE_MEMORY
    }
}

/// The session token in the saved session file (read without the lock: writes are atomic).
fn saved_token(work: &Work) -> Option<String> {
    work.store
        .load_session()
        .ok()
        .flatten()
        .and_then(|s| s.session_token)
}

impl std::fmt::Debug for AccountSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountSession")
            .field("username", &self.inner.username)
            .field("client_id", &self.inner.client_id)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

/// Attempts of a mid-run re-authentication when Apple answers with a transient failure.
const REAUTH_ATTEMPTS: u32 = 4;
/// First pause between those attempts (doubles each time).
const REAUTH_BASE_WAIT: Duration = Duration::from_secs(1);
/// Longest `Retry-After` honoured between those attempts.
const REAUTH_MAX_WAIT: Duration = Duration::from_secs(30);

impl AccountSession {
    pub(crate) fn new(work: Work, info: AccountInfo) -> Self {
        AccountSession {
            inner: Arc::new(Shared {
                http: work.api.http().clone(),
                jar: work.jar.clone(),
                client_id: work.session.client_id.clone(),
                username: work.opts.username.clone(),
                account: RwLock::new(info),
                generation: AtomicU64::new(0),
                reauth: tokio::sync::Mutex::new(ReauthState {
                    work,
                    failure: None,
                }),
            }),
        }
    }

    /// The HTTP client to use for CloudKit and CDN calls: it sends and updates the session
    /// cookies, has bounded timeouts, and Apple's browser User-Agent and Origin.
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The cookie jar behind [`AccountSession::http`].
    pub fn cookies(&self) -> &Arc<CookieJar> {
        &self.inner.jar
    }

    /// `webservices.ckdatabasews.url` (may change after a re-authentication: read it again).
    pub fn ckdatabasews_url(&self) -> String {
        self.account().ckdatabasews_url.unwrap_or_default()
    }

    /// The account's dsid (`dsid` query parameter of CloudKit calls).
    pub fn dsid(&self) -> String {
        self.account().dsid
    }

    /// The client id (`clientId` query parameter of CloudKit calls).
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The Apple ID.
    pub fn username(&self) -> &str {
        &self.inner.username
    }

    /// The account document subset of the last accepted sign-in.
    pub fn account(&self) -> AccountInfo {
        self.inner
            .account
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Counter of successful re-authentications; read it before a request, pass it to
    /// [`AccountSession::reauthenticate`] if the request fails for an expired session.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Sign in again after a CloudKit or CDN call was refused for an expired session (401/421),
    /// then retry that call once. `seen` is the [`AccountSession::generation`] read before the
    /// failed request: if another task re-authenticated since, this returns at once.
    ///
    /// Order: validate the cookies, accountLogin with the saved tokens, then SRP with the
    /// password and trust token (no second factor while Apple honours the trust). Never
    /// prompts: if a second factor is needed, fails with [`AuthError::TwoFactorRequired`].
    pub async fn reauthenticate(&self, seen: u64) -> Result<(), AuthError> {
        let mut state = self.inner.reauth.lock().await;
        let current = self.generation();
        if current != seen {
            return Ok(());
        }
        if let Some(failure) = &state.failure
            && failure.still_holds(current, &state.work)
        {
            return Err(failure.error.clone());
        }
        tracing::info!(username = %self.inner.username, "session refused by iCloud; signing in again");
        let mut attempt = 0u32;
        let result = loop {
            attempt += 1;
            match reauthenticate_work(&mut state.work).await {
                Err(e) if e.is_transient() && attempt < REAUTH_ATTEMPTS => {
                    let wait = match &e {
                        AuthError::Throttled {
                            retry_after: Some(d),
                            ..
                        } => (*d).min(REAUTH_MAX_WAIT),
                        _ => REAUTH_BASE_WAIT * 2u32.pow(attempt - 1),
                    };
                    tracing::warn!(error = %e, attempt, "signing in again failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                other => break other,
            }
        };
        match result {
            Ok(info) => {
                *self
                    .inner
                    .account
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = info;
                state.failure = None;
                self.inner.generation.fetch_add(1, Ordering::AcqRel);
                tracing::info!("signed in again");
                Ok(())
            }
            Err(e) => {
                let e = match &state.work.password {
                    Some(p) => e.redacted(p),
                    None => e,
                };
                tracing::warn!(error = %e, "signing in again failed");
                state.failure = Some(Failure {
                    generation: current,
                    error: e.clone(),
                    at: Instant::now(),
                    saved_token: saved_token(&state.work),
                });
                Err(e)
            }
        }
    }

    /// Save the current cookies and session (cookies rotate on many answers; call this at the
    /// end of a run, or now and then in a long one). A session saved meanwhile by another
    /// process after a newer sign-in is left alone.
    pub async fn persist(&self) -> Result<(), AuthError> {
        let mut state = self.inner.reauth.lock().await;
        let _lock = state.work.store.lock(state.work.opts.lock_wait).await?;
        if let Some(saved) = state.work.store.load_session()?
            && saved.validated_at > state.work.session.validated_at
        {
            tracing::debug!("a newer session was saved by another process; not overwriting it");
            return Ok(());
        }
        state.work.save()
    }

    /// What `status` shows about this session.
    pub async fn summary(&self) -> SessionSummary {
        SessionSummary::from_data(&self.inner.reauth.lock().await.work.session)
    }
}

/// The re-authentication sequence, under the account's file lock.
async fn reauthenticate_work(work: &mut Work) -> Result<AccountInfo, AuthError> {
    let _lock = work.store.lock(work.opts.lock_wait).await?;
    // Another process may have signed in meanwhile: its saved tokens are the freshest.
    if let Some(saved) = work.store.load_session()?
        && saved.session_token != work.session.session_token
    {
        tracing::debug!("using the session saved by another process");
        work.jar.replace_with(work.store.load_cookies()?);
        work.session = saved;
    }
    let reused = work
        .reuse_saved()
        .await?
        .filter(|info| !info.needs_two_factor());
    let info = match reused {
        Some(info) => info,
        None => {
            let password = match work.password.clone() {
                Some(p) => p,
                None => match work.opts.password.resolve().await? {
                    Some(p) => {
                        work.password = Some(p.clone());
                        p
                    }
                    None => {
                        return Err(AuthError::PasswordNeeded {
                            username: work.opts.username.clone(),
                            login_command: work.opts.login_command.clone(),
                        });
                    }
                },
            };
            let info = work.sign_in_with_srp(&password).await?;
            if info.needs_two_factor() {
                work.save()?;
                return Err(work.two_factor_required());
            }
            info
        }
    };
    work.accept(&info);
    work.save()?;
    Ok(info)
}

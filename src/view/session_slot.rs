//! The signed-in session of a mount, once there is one. A mount started while iCloud cannot be
//! reached (an offline laptop with a catalog) serves what is local and signs in later, when
//! something needs the network: the next catalog refresh or a read of a file not cached.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::auth::{AccountSession, AuthOptions, Authenticator};

/// Least time between two sign-in attempts while offline (reads fail fast meanwhile): short,
/// so that reads work again soon after the network is back (each attempt resumes the saved
/// session: one request, no password).
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why there is no session.
#[derive(Debug, Clone, thiserror::Error)]
#[error("not signed in to iCloud ({0})")]
pub struct NoSession(pub String);

/// Holds the session; cheap to clone.
#[derive(Clone)]
pub struct SessionSlot {
    inner: Arc<Inner>,
}

struct Inner {
    auth: AuthOptions,
    session: RwLock<Option<AccountSession>>,
    /// When the last sign-in failed, and why.
    failed: Mutex<Option<(Instant, String)>>,
    /// One sign-in at a time.
    signing_in: tokio::sync::Mutex<()>,
}

impl SessionSlot {
    /// A slot for the account of `auth`, with the session if there is one already.
    pub fn new(auth: AuthOptions, session: Option<AccountSession>) -> SessionSlot {
        SessionSlot {
            inner: Arc::new(Inner {
                auth,
                session: RwLock::new(session),
                failed: Mutex::new(None),
                signing_in: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The session, if signed in.
    pub fn current(&self) -> Option<AccountSession> {
        self.inner
            .session
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The session, signing in (without prompting) when there is none yet; a recent failure is
    /// answered at once instead of being retried.
    pub async fn get(&self) -> Result<AccountSession, NoSession> {
        if let Some(s) = self.current() {
            return Ok(s);
        }
        let _one = self.inner.signing_in.lock().await;
        if let Some(s) = self.current() {
            return Ok(s);
        }
        if let Some((at, why)) = &*self.inner.failed.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < RETRY_AFTER
        {
            return Err(NoSession(why.clone()));
        }
        match Authenticator::resume(self.inner.auth.clone()).await {
            Ok(session) => {
                tracing::info!("signed in to iCloud");
                *self
                    .inner
                    .session
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = Some(session.clone());
                *self.inner.failed.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Ok(session)
            }
            Err(e) => {
                let why = e.to_string();
                *self.inner.failed.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), why.clone()));
                Err(NoSession(why))
            }
        }
    }
}

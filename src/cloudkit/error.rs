//! What can go wrong talking to CloudKit, typed by what the caller must do about it.
//!
//! Transient failures (throttling, 5xx, dropped connections, truncated JSON, lock contention)
//! never reach the caller unless the retry budget of [`super::RetryPolicy`] ran out; they are
//! retried inside the client. Everything that reaches the caller is one of: the session is gone
//! (sign in again, then repeat), the account does not allow web access to Photos (the user must
//! change a setting), a zone that does not exist, or a permanent failure naming the call.

/// An error of a CloudKit call, after the client's own retries.
#[derive(Debug, thiserror::Error)]
pub enum CloudKitError {
    /// The web session is no longer accepted (HTTP 401, 421, or a bare 403). Not retried here:
    /// the caller re-authenticates and repeats the call.
    #[error("{call}: the iCloud session has expired or was refused (HTTP {status}); sign in again")]
    SessionExpired { call: String, status: u16 },

    /// Photos cannot be read through the web API for this account: Advanced Data Protection is
    /// on, or "Access iCloud Data on the Web" is off, or iCloud Photos was never set up.
    #[error(
        "{call}: iCloud refuses web access to this Photos library ({code}: {reason}). \
         On an Apple device, turn off Advanced Data Protection and turn on \
         \"Access iCloud Data on the Web\" (Settings > [your name] > iCloud), and make sure \
         iCloud Photos is enabled; then try again"
    )]
    WebAccessDisabled {
        call: String,
        code: String,
        reason: String,
    },

    /// The zone (library) named in the call does not exist (any more).
    #[error("{call}: the library zone {zone:?} does not exist ({reason})")]
    ZoneNotFound {
        call: String,
        zone: String,
        reason: String,
    },

    /// A transient failure that persisted through every retry.
    #[error("{call}: still failing after {attempts} attempts: {last}")]
    RetriesExhausted {
        call: String,
        attempts: u32,
        last: String,
    },

    /// CloudKit answered with a `serverErrorCode` that retrying will not fix.
    #[error("{call}: CloudKit error {code}: {reason}")]
    Server {
        call: String,
        code: String,
        reason: String,
    },

    /// An HTTP status that retrying will not fix (e.g. 400, 404), with the start of the body.
    #[error("{call}: HTTP {status}: {body}")]
    Http {
        call: String,
        status: u16,
        body: String,
    },

    /// A well-formed answer that does not have the shape the call needs.
    #[error("{call}: unexpected answer: {detail}")]
    Protocol { call: String, detail: String },

    /// The request could not be built (bad URL, unknown database name).
    #[error("{call}: invalid request: {detail}")]
    InvalidRequest { call: String, detail: String },
}

impl CloudKitError {
    /// True when signing in again and repeating the call may succeed.
    pub fn needs_reauthentication(&self) -> bool {
        matches!(self, CloudKitError::SessionExpired { .. })
    }

    /// The call (endpoint and purpose) that failed.
    pub fn call(&self) -> &str {
        match self {
            CloudKitError::SessionExpired { call, .. }
            | CloudKitError::WebAccessDisabled { call, .. }
            | CloudKitError::ZoneNotFound { call, .. }
            | CloudKitError::RetriesExhausted { call, .. }
            | CloudKitError::Server { call, .. }
            | CloudKitError::Http { call, .. }
            | CloudKitError::Protocol { call, .. }
            | CloudKitError::InvalidRequest { call, .. } => call,
        }
    }
}

/// Server error codes that mean "try again later" (lock contention, throttling).
pub(crate) fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "TRY_AGAIN_LATER"
            | "RETRY_LATER"
            | "CAS_OP_LOCK"
            | "THROTTLED"
            | "ZONE_BUSY"
            | "SERVICE_UNAVAILABLE"
    )
}

/// True when a code/reason pair says the private database is closed to the web (ADP).
pub(crate) fn is_web_access_refusal(code: &str, reason: &str) -> bool {
    reason.contains("private db access disabled")
        || code == "ACCESS_DENIED" && reason.contains("access disabled")
}

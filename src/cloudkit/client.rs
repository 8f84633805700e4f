//! The transport: one POST to `ckdatabasews`, with error classification and bounded retries.
//!
//! Every CloudKit call goes through `CloudKitClient::post`. It retries what is transient
//! (HTTP 429 and 5xx honouring `Retry-After`, connection errors, timeouts, truncated or
//! malformed JSON, the lock/throttle `serverErrorCode`s) with exponential backoff and jitter, and
//! turns everything else into a typed [`CloudKitError`] naming the call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, ORIGIN, REFERER, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{CloudKitError, is_transient_code, is_web_access_refusal};
use super::records::TopLevelError;
use super::requests::Database;

/// Client identification sent on every call except `zones/list` (section 1.3).
#[derive(Debug, Clone)]
pub struct ClientParams {
    /// The session's client id (a UUID).
    pub client_id: String,
    /// `dsInfo.dsid` of the account, when known.
    pub dsid: Option<String>,
}

/// How hard the client tries before giving up on a transient failure.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time.
    pub base_delay: Duration,
    /// Ceiling of the exponential backoff.
    pub max_delay: Duration,
    /// Ceiling applied to a server's `Retry-After`.
    pub max_retry_after: Duration,
    /// Whole-request timeout (connect, send, receive the full body).
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            request_timeout: Duration::from_secs(120),
        }
    }
}

/// Web origin the CloudKit endpoints expect.
const ORIGIN_URL: &str = "https://www.icloud.com";
const CLIENT_BUILD_NUMBER: &str = "2522Project44";
const CLIENT_MASTERING_NUMBER: &str = "2522B2";
/// Most bytes of an error body kept for a message.
const ERROR_BODY_LIMIT: usize = 1024;

/// A typed client of the iCloud Photos CloudKit database. Cheap to clone; share one per session.
#[derive(Clone)]
pub struct CloudKitClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    query: String,
    retry: RetryPolicy,
    /// Calls answered successfully through this client and its clones.
    answered: AtomicU64,
}

/// What a call is, for error messages and for zone-aware error classification.
#[derive(Debug, Clone)]
pub(crate) struct CallInfo {
    pub name: String,
    /// The zone the call targets, if one.
    pub zone: Option<String>,
    /// Send the §1.3 query string (everything except `zones/list`).
    pub with_query: bool,
}

impl CallInfo {
    pub fn new(name: impl Into<String>, zone: Option<&str>) -> Self {
        CallInfo {
            name: name.into(),
            zone: zone.map(str::to_string),
            with_query: true,
        }
    }
}

/// One outcome of an attempt: done, or worth another try after an optional server-given wait.
enum Attempt<T> {
    Done(Result<T, CloudKitError>),
    Retry { why: String, wait: Option<Duration> },
}

/// An answer that may carry a top-level CloudKit error instead of its payload.
pub(crate) trait TopError {
    /// `(code, reason)` when the answer is an error.
    fn top_error(&self) -> Option<(String, String)>;
}

/// An answer type parsed on its own (owned strings).
pub(crate) trait Answer: DeserializeOwned + TopError {}

impl<T: DeserializeOwned + TopError> Answer for T {}

impl TopError for Value {
    fn top_error(&self) -> Option<(String, String)> {
        let code = self
            .get("serverErrorCode")
            .or_else(|| self.get("errorCode"))
            .and_then(Value::as_str)?;
        let reason = self
            .get("reason")
            .or_else(|| self.get("serverErrorMessage"))
            .and_then(Value::as_str)
            .unwrap_or("");
        Some((code.to_string(), reason.to_string()))
    }
}

impl CloudKitClient {
    /// A client over an HTTP client that already holds the session cookies, for the
    /// `webservices.ckdatabasews.url` of the account (e.g. `https://p61-ckdatabasews.icloud.com:443`).
    pub fn new(http: reqwest::Client, ckdatabasews_url: &str, params: ClientParams) -> Self {
        let mut query = format!(
            "clientBuildNumber={CLIENT_BUILD_NUMBER}&clientMasteringNumber={CLIENT_MASTERING_NUMBER}&clientId={}",
            percent_encode(&params.client_id)
        );
        if let Some(dsid) = &params.dsid {
            query.push_str("&dsid=");
            query.push_str(&percent_encode(dsid));
        }
        query.push_str("&remapEnums=true&getCurrentSyncToken=true");
        CloudKitClient {
            inner: Arc::new(Inner {
                http,
                base: ckdatabasews_url.trim_end_matches('/').to_string(),
                query,
                retry: RetryPolicy::default(),
                answered: AtomicU64::new(0),
            }),
        }
    }

    /// A client for a signed-in account: its HTTP client (with the session cookies), its
    /// `ckdatabasews` URL, dsid and client id. Build a new one after a re-authentication: the
    /// URL may have changed.
    pub fn for_session(session: &crate::auth::AccountSession) -> Result<Self, CloudKitError> {
        let url = session.ckdatabasews_url();
        if url.is_empty() {
            return Err(CloudKitError::WebAccessDisabled {
                call: "account setup".into(),
                code: "NO_CKDATABASEWS".into(),
                reason: "the account document names no Photos (ckdatabasews) service".into(),
            });
        }
        let dsid = session.dsid();
        let params = ClientParams {
            client_id: session.client_id().to_string(),
            dsid: (!dsid.is_empty()).then_some(dsid),
        };
        Ok(CloudKitClient::new(session.http().clone(), &url, params))
    }

    /// How many calls this client (and its clones) had answered successfully: proof that the
    /// session it was built for worked.
    pub fn answered(&self) -> u64 {
        self.inner.answered.load(Ordering::Relaxed)
    }

    /// The same client with another retry policy.
    pub fn with_retry_policy(self, retry: RetryPolicy) -> Self {
        let inner = &self.inner;
        CloudKitClient {
            inner: Arc::new(Inner {
                http: inner.http.clone(),
                base: inner.base.clone(),
                query: inner.query.clone(),
                retry,
                answered: AtomicU64::new(0),
            }),
        }
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    fn url(&self, db: Database, path: &str, with_query: bool) -> String {
        let mut url = format!(
            "{}/database/1/com.apple.photos.cloud/production/{}/{}",
            self.inner.base,
            db.as_str(),
            path
        );
        if with_query {
            url.push('?');
            url.push_str(&self.inner.query);
        }
        url
    }

    /// POST a JSON body and decode the answer, retrying transient failures.
    pub(crate) async fn post<T: Answer>(
        &self,
        info: &CallInfo,
        db: Database,
        path: &str,
        body: &Value,
    ) -> Result<T, CloudKitError> {
        let payload = serde_json::to_vec(body).map_err(|e| CloudKitError::InvalidRequest {
            call: info.name.clone(),
            detail: e.to_string(),
        })?;
        self.post_serialised(info, db, path, &payload).await
    }

    /// [`Self::post`] of a body already serialised.
    pub(crate) async fn post_serialised<T: Answer>(
        &self,
        info: &CallInfo,
        db: Database,
        path: &str,
        payload: &[u8],
    ) -> Result<T, CloudKitError> {
        self.post_decoded(info, db, path, payload, &|text| serde_json::from_str(text))
            .await
    }

    /// [`Self::post_serialised`] with the answer's text handed to `decode`, which may borrow
    /// from it (a listing page is parsed without copying its strings). `decode` runs once per
    /// attempt that gets an answer; an answer with a top-level error is retried or failed as
    /// usual, so `decode` must not act on a page before checking its error.
    pub(crate) async fn post_decoded<T: TopError>(
        &self,
        info: &CallInfo,
        db: Database,
        path: &str,
        payload: &[u8],
        decode: &(dyn Fn(&str) -> serde_json::Result<T> + Sync),
    ) -> Result<T, CloudKitError> {
        let url = self.url(db, path, info.with_query);
        let policy = &self.inner.retry;
        let mut attempt = 1u32;
        loop {
            match self.attempt::<T>(info, &url, payload, decode).await {
                Attempt::Done(result) => {
                    if result.is_ok() {
                        self.inner.answered.fetch_add(1, Ordering::Relaxed);
                    }
                    return result;
                }
                Attempt::Retry { why, wait } => {
                    if attempt >= policy.max_attempts {
                        return Err(CloudKitError::RetriesExhausted {
                            call: info.name.clone(),
                            attempts: attempt,
                            last: why,
                        });
                    }
                    let delay = retry_delay(policy, attempt, wait);
                    tracing::warn!(call = %info.name, attempt, delay_ms = delay.as_millis() as u64, %why, "transient CloudKit failure; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn attempt<T: TopError>(
        &self,
        info: &CallInfo,
        url: &str,
        payload: &[u8],
        decode: &(dyn Fn(&str) -> serde_json::Result<T> + Sync),
    ) -> Attempt<T> {
        let sent = self
            .inner
            .http
            .post(url)
            .header(CONTENT_TYPE, "text/plain")
            .header(ORIGIN, ORIGIN_URL)
            .header(REFERER, "https://www.icloud.com/")
            .timeout(self.inner.retry.request_timeout)
            .body(payload.to_vec())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_builder() => {
                return Attempt::Done(Err(CloudKitError::InvalidRequest {
                    call: info.name.clone(),
                    detail: e.to_string(),
                }));
            }
            Err(e) => {
                return Attempt::Retry {
                    why: format!("request failed: {}", error_chain(&e)),
                    wait: None,
                };
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Retry {
                    why: format!("HTTP {status}: body cut off: {}", error_chain(&e)),
                    wait: None,
                };
            }
        };
        if status.is_success() {
            return match decode_answer(&bytes, decode) {
                Ok(answer) => match answer.top_error() {
                    None => Attempt::Done(Ok(answer)),
                    Some((code, reason)) => {
                        classify_code(info, status, &code, &reason, retry_after)
                    }
                },
                Err(e) => match serde_json::from_slice::<TopLevelError>(&bytes)
                    .ok()
                    .and_then(|t| t.code_and_reason())
                {
                    Some((code, reason)) => {
                        classify_code(info, status, &code, &reason, retry_after)
                    }
                    None => Attempt::Retry {
                        why: format!("malformed JSON answer ({} bytes): {e}", bytes.len()),
                        wait: None,
                    },
                },
            };
        }
        classify_status(info, status, &bytes, retry_after)
    }
}

/// A JSON answer. The body is checked as UTF-8 once, then parsed as text: parsing bytes
/// checks every string on its own, which cost ~2% of a large listing's CPU.
fn decode_answer<T>(
    bytes: &[u8],
    decode: &(dyn Fn(&str) -> serde_json::Result<T> + Sync),
) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => decode(text),
        // Let the byte parser say where the text is broken.
        Err(_) => match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Err(e) => Err(e),
            Ok(_) => Err(serde::de::Error::custom("answer is not valid UTF-8")),
        },
    }
}

/// Decide what a non-2xx answer means.
fn classify_status<T>(
    info: &CallInfo,
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Attempt<T> {
    let coded = serde_json::from_slice::<TopLevelError>(body)
        .ok()
        .and_then(|t| t.code_and_reason());
    let code = status.as_u16();
    if code == 429 || status.is_server_error() {
        return Attempt::Retry {
            why: format!("HTTP {code}: {}", snippet(body)),
            wait: retry_after,
        };
    }
    let expired = || {
        Attempt::Done(Err(CloudKitError::SessionExpired {
            call: info.name.clone(),
            status: code,
        }))
    };
    match (code, coded) {
        (401 | 421, _) => expired(),
        (403, Some((c, reason))) if is_web_access_refusal(&c, &reason) => {
            Attempt::Done(Err(CloudKitError::WebAccessDisabled {
                call: info.name.clone(),
                code: c,
                reason,
            }))
        }
        (403, Some((c, _))) if c.starts_with("AUTHENTICATION") => expired(),
        (403, Some((c, reason))) => Attempt::Done(Err(CloudKitError::Server {
            call: info.name.clone(),
            code: c,
            reason,
        })),
        (403, None) => expired(),
        (_, Some((c, reason))) => classify_code(info, status, &c, &reason, retry_after),
        (_, None) => Attempt::Done(Err(CloudKitError::Http {
            call: info.name.clone(),
            status: code,
            body: snippet(body),
        })),
    }
}

/// Decide what a `serverErrorCode` means.
fn classify_code<T>(
    info: &CallInfo,
    status: StatusCode,
    code: &str,
    reason: &str,
    retry_after: Option<Duration>,
) -> Attempt<T> {
    if is_transient_code(code) {
        return Attempt::Retry {
            why: format!("{code}: {reason}"),
            wait: retry_after,
        };
    }
    let call = info.name.clone();
    let err = if is_web_access_refusal(code, reason) || code == "AUTHENTICATION_FAILED" {
        CloudKitError::WebAccessDisabled {
            call,
            code: code.to_string(),
            reason: reason.to_string(),
        }
    } else if code == "AUTHENTICATION_REQUIRED" {
        CloudKitError::SessionExpired {
            call,
            status: status.as_u16(),
        }
    } else if code == "ZONE_NOT_FOUND" {
        match info.zone.as_deref() {
            // The personal library always exists; "not found" there means web access is off.
            Some("PrimarySync") | None => CloudKitError::WebAccessDisabled {
                call,
                code: code.to_string(),
                reason: reason.to_string(),
            },
            Some(zone) => CloudKitError::ZoneNotFound {
                call,
                zone: zone.to_string(),
                reason: reason.to_string(),
            },
        }
    } else {
        CloudKitError::Server {
            call,
            code: code.to_string(),
            reason: reason.to_string(),
        }
    };
    Attempt::Done(Err(err))
}

/// How long to wait before the next attempt: the server's `Retry-After` (capped) when it gave
/// one, else exponential backoff.
fn retry_delay(policy: &RetryPolicy, attempt: u32, server_wait: Option<Duration>) -> Duration {
    match server_wait {
        Some(w) => w.min(policy.max_retry_after),
        None => backoff(policy, attempt),
    }
}

/// Exponential backoff with jitter: a random delay in [d/2, d], d = base · 2^(attempt-1).
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy.base_delay.saturating_mul(
        1u32.checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX),
    );
    let d = exp.min(policy.max_delay);
    let jitter: f64 = rand::random();
    d.mul_f64(0.5 + jitter / 2.0)
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

fn snippet(body: &[u8]) -> String {
    let cut = &body[..body.len().min(ERROR_BODY_LIMIT)];
    String::from_utf8_lossy(cut).trim().to_string()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(zone: &str) -> CallInfo {
        CallInfo::new("records/query (test)", Some(zone))
    }

    fn outcome<T>(a: Attempt<T>) -> Result<(), String> {
        match a {
            Attempt::Done(Ok(_)) => Ok(()),
            Attempt::Done(Err(e)) => Err(format!("{e:?}")),
            Attempt::Retry { .. } => Err("retry".into()),
        }
    }

    #[test]
    fn statuses_map_to_the_documented_outcomes() {
        let i = info("PrimarySync");
        let r = |s: u16, body: &str| {
            outcome::<()>(classify_status(
                &i,
                StatusCode::from_u16(s).expect("status"),
                body.as_bytes(),
                None,
            ))
        };
        assert!(r(401, "").unwrap_err().starts_with("SessionExpired"));
        assert!(
            r(421, "Missing X-APPLE-WEBAUTH-USER cookie")
                .unwrap_err()
                .starts_with("SessionExpired")
        );
        assert!(r(403, "<html>").unwrap_err().starts_with("SessionExpired"));
        assert!(
            r(403, r#"{"serverErrorCode":"ACCESS_DENIED","reason":"private db access disabled for this account"}"#)
                .unwrap_err()
                .starts_with("WebAccessDisabled")
        );
        assert_eq!(r(503, "busy").unwrap_err(), "retry");
        assert_eq!(r(429, "{}").unwrap_err(), "retry");
        assert_eq!(r(500, "").unwrap_err(), "retry");
        assert!(r(400, "{}").unwrap_err().starts_with("Http"));
    }

    #[test]
    fn codes_map_to_the_documented_outcomes() {
        let c = |zone: &str, code: &str, reason: &str| {
            outcome::<()>(classify_code(
                &info(zone),
                StatusCode::OK,
                code,
                reason,
                None,
            ))
        };
        assert_eq!(
            c(
                "PrimarySync",
                "TRY_AGAIN_LATER",
                "Sync zone CAS Op-Lock failed"
            )
            .unwrap_err(),
            "retry"
        );
        assert_eq!(c("PrimarySync", "THROTTLED", "").unwrap_err(), "retry");
        assert!(
            c("PrimarySync", "ZONE_NOT_FOUND", "")
                .unwrap_err()
                .starts_with("WebAccessDisabled")
        );
        assert!(
            c("SharedSync-1", "ZONE_NOT_FOUND", "")
                .unwrap_err()
                .starts_with("ZoneNotFound")
        );
        assert!(
            c("PrimarySync", "ACCESS_DENIED", "private db access disabled")
                .unwrap_err()
                .starts_with("WebAccessDisabled")
        );
        assert!(
            c("PrimarySync", "BAD_REQUEST", "Unknown index")
                .unwrap_err()
                .starts_with("Server")
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for attempt in 1..40 {
            let d = backoff(&p, attempt);
            assert!(d <= p.max_delay);
        }
        assert!(backoff(&p, 1) <= p.base_delay && backoff(&p, 1) >= p.base_delay / 2);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(
            retry_delay(&p, 1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            retry_delay(&p, 1, Some(Duration::from_secs(3600))),
            p.max_retry_after
        );
        assert!(retry_delay(&p, 3, None) <= p.base_delay * 4);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().expect("value"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("value"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }
}

//! The transport of the sign-in calls: one HTTP exchange with Apple's header set
//! (icloud-auth.md section 1.3), capture of the section-1.4 response headers into the session
//! (newest value wins), bounded retries of 429/5xx with Retry-After or backoff plus jitter
//! (section 6.3), and the readers of Apple's answers that every call shares.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::endpoints::Endpoints;
use super::error::AuthError;
use super::session_store::SessionData;

/// The browser User-Agent Apple's web endpoints are used with (section 1.2).
pub const APPLE_USER_AGENT: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36";
/// `X-Apple-OAuth-Client-Id` and `X-Apple-Widget-Key` of the iCloud web app.
pub(super) const WIDGET_KEY: &str =
    "d39ba9916b7251055b22c7f910e2ea796ee65e98b2ddecea8f5dde8d9d1a815d";
/// Longest time one sign-in request may take, connection included.
pub const AUTH_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Apple's error code for a locked account (as the simulator models it).
pub(super) const LOCKED_ACCOUNT: &str = "-20209";

/// How transient answers (429, 5xx) and network errors are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per request, the first included.
    pub attempts: u32,
    /// Delay before the first retry when Apple gives no Retry-After; doubles each time.
    pub base_delay: Duration,
    /// Cap of that doubling delay.
    pub max_delay: Duration,
    /// Longest Retry-After honoured; a longer one is waited for this long.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `n` (1-based) without Retry-After: doubling plus up to one
    /// base delay of jitter, so that many clients do not retry in step.
    pub(super) fn backoff(&self, n: u32) -> Duration {
        let doubled = self
            .base_delay
            .saturating_mul(1u32 << n.saturating_sub(1).min(16));
        let jitter = self.base_delay.mul_f64(rand::random::<f64>());
        doubled.min(self.max_delay) + jitter
    }
}

/// An answer, read completely.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Attempts it took.
    pub attempts: u32,
}

impl Reply {
    pub(super) fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(super) fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(self.header("retry-after")?)
    }

    /// First service error code and message in the body, if any.
    pub(super) fn service_error(&self) -> Option<(String, String)> {
        first_service_error(&self.json()?)
    }

    /// A short, safe description of the body for error messages.
    pub(super) fn describe(&self) -> String {
        if let Some((code, msg)) = self.service_error() {
            return format!("{msg} (code {code})");
        }
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if text.is_empty() {
            "empty answer".to_string()
        } else if text.contains('<') {
            "an HTML page".to_string()
        } else {
            text.chars().take(200).collect()
        }
    }
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub(super) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = when.to_utc() - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// First entry of `serviceErrors` / `service_errors`: (code, message or title).
pub(super) fn first_service_error(body: &Value) -> Option<(String, String)> {
    let list = body
        .get("serviceErrors")
        .or_else(|| body.get("service_errors"))?
        .as_array()?;
    let first = list.first()?;
    let code = match first.get("code") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let message = first
        .get("message")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| first.get("title").and_then(Value::as_str))
        .unwrap_or("")
        .to_string();
    Some((code, message))
}

pub(super) fn has_body_error(body: &Value) -> bool {
    body.get("hasError")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || body
            .get("has_error")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        || ["serviceErrors", "service_errors"].iter().any(|k| {
            body.get(*k)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        })
}

/// Base64 decoding of server values: standard alphabet, tolerant of missing padding and of
/// non-zero trailing bits (recorded fixtures have both).
pub(super) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(s.trim()).ok()
}

pub(super) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A reqwest error as readable text, causes included (the URL never holds a secret).
pub(super) fn describe_network_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time (timeout)".to_string();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Where an idmsa request claims to come from (section 1.3).
#[derive(Clone, Copy)]
pub(super) enum Origin {
    /// E1/E2: `{AUTH_ROOT}`.
    AuthRoot,
    /// Everything else: `{HOME}`.
    Home,
}

pub(super) struct Call {
    pub(super) name: &'static str,
    pub(super) method: Method,
    pub(super) url: String,
    pub(super) headers: HeaderMap,
    pub(super) body: Option<Vec<u8>>,
    /// Retry 429/5xx answers.
    pub(super) retry_status: bool,
    /// Retry network failures (safe only where repeating cannot consume anything).
    pub(super) retry_network: bool,
    /// The success answer's body is read as JSON, and the request is safe to repeat: a body cut
    /// short or garbled on the way (not JSON) is retried like a network failure.
    pub(super) json_answer: bool,
}

/// The typed sign-in client over a shared HTTP client (and its cookie jar).
#[derive(Clone)]
pub(crate) struct AppleClient {
    pub(super) http: reqwest::Client,
    pub(super) endpoints: Endpoints,
    pub(super) retry: RetryPolicy,
}

impl AppleClient {
    pub fn new(http: reqwest::Client, endpoints: Endpoints, retry: RetryPolicy) -> Self {
        AppleClient {
            http,
            endpoints,
            retry,
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(super) fn auth_headers(
        &self,
        session: &SessionData,
        origin: Origin,
        accept: &'static str,
    ) -> HeaderMap {
        let mut h = HeaderMap::new();
        let mut put = |name: &'static str, value: &str| match HeaderValue::from_str(value) {
            Ok(v) => {
                h.insert(HeaderName::from_static(name), v);
            }
            Err(_) => tracing::warn!(
                header = name,
                "value not sendable as an HTTP header; omitted"
            ),
        };
        put("accept", accept);
        put("content-type", "application/json");
        put("x-apple-oauth-client-id", WIDGET_KEY);
        put("x-apple-oauth-client-type", "firstPartyAuth");
        put(
            "x-apple-oauth-redirect-uri",
            self.endpoints.domain.redirect_uri(),
        );
        put("x-apple-oauth-require-grant-code", "true");
        put("x-apple-oauth-response-mode", "web_message");
        put("x-apple-oauth-response-type", "code");
        put("x-apple-oauth-state", &session.client_id);
        put("x-apple-widget-key", WIDGET_KEY);
        if let Some(scnt) = &session.scnt {
            put("scnt", scnt);
        }
        if let Some(id) = &session.session_id {
            put("x-apple-id-session-id", id);
        }
        let origin = match origin {
            Origin::AuthRoot => &self.endpoints.auth_root,
            Origin::Home => &self.endpoints.home,
        };
        put("origin", origin);
        put("referer", &format!("{origin}/"));
        h
    }

    pub(super) fn setup_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        let home = &self.endpoints.home;
        if let Ok(v) = HeaderValue::from_str(home) {
            h.insert(reqwest::header::ORIGIN, v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("{home}/")) {
            h.insert(reqwest::header::REFERER, v);
        }
        h.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h
    }

    /// Send with retries, capturing the session headers of every answer.
    pub(super) async fn send(
        &self,
        session: &mut SessionData,
        call: Call,
    ) -> Result<Reply, AuthError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let can_retry = attempt < self.retry.attempts;
            let mut request = self
                .http
                .request(call.method.clone(), &call.url)
                .headers(call.headers.clone())
                .timeout(AUTH_REQUEST_TIMEOUT);
            if let Some(body) = &call.body {
                request = request.body(body.clone());
            }
            tracing::debug!(endpoint = call.name, attempt, "sending");
            let outcome = match request.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    capture_session_headers(session, &headers);
                    resp.bytes().await.map(|body| Reply {
                        status,
                        headers,
                        body,
                        attempts: attempt,
                    })
                }
                Err(e) => Err(e),
            };
            let reply = match outcome {
                Ok(reply) => reply,
                Err(e) => {
                    let detail = describe_network_error(&e);
                    if call.retry_network && can_retry {
                        let delay = self.retry.backoff(attempt);
                        tracing::warn!(endpoint = call.name, %detail, ?delay, "network error; retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(AuthError::Network {
                        endpoint: call.name,
                        detail,
                    });
                }
            };
            tracing::debug!(
                endpoint = call.name,
                status = reply.status.as_u16(),
                "answer"
            );
            let transient =
                reply.status == StatusCode::TOO_MANY_REQUESTS || reply.status.is_server_error();
            if call.retry_status && transient && can_retry {
                let delay = match reply.retry_after() {
                    Some(d) if !d.is_zero() => d.min(self.retry.max_retry_after),
                    _ => self.retry.backoff(attempt),
                };
                tracing::warn!(
                    endpoint = call.name,
                    status = reply.status.as_u16(),
                    ?delay,
                    "Apple answered a transient error; retrying"
                );
                tokio::time::sleep(delay).await;
                continue;
            }
            if call.json_answer && can_retry && reply.status.is_success() && reply.json().is_none()
            {
                let delay = self.retry.backoff(attempt);
                tracing::warn!(
                    endpoint = call.name,
                    ?delay,
                    "Apple's answer was cut short or garbled (not JSON); retrying"
                );
                tokio::time::sleep(delay).await;
                continue;
            }
            return Ok(reply);
        }
    }

    /// [`Self::send`], and an answer that is not a success becomes the call's error.
    pub(super) async fn send_expecting_success(
        &self,
        session: &mut SessionData,
        call: Call,
    ) -> Result<Reply, AuthError> {
        let name = call.name;
        let reply = self.send(session, call).await?;
        if reply.status.is_success() {
            Ok(reply)
        } else {
            Err(self.failure(name, &reply, &session.username.clone()))
        }
    }

    /// The error for a failed idmsa answer.
    pub(super) fn failure(&self, name: &'static str, reply: &Reply, username: &str) -> AuthError {
        if let Some(detail) = locked_detail(reply) {
            return AuthError::AccountLocked {
                username: username.to_string(),
                detail,
            };
        }
        let status = reply.status.as_u16();
        match status {
            429 | 503 => AuthError::Throttled {
                endpoint: name,
                status,
                attempts: reply.attempts,
                retry_after: reply.retry_after(),
            },
            500..=599 => AuthError::Unavailable {
                endpoint: name,
                status,
            },
            _ => AuthError::Rejected {
                endpoint: name,
                status,
                detail: reply.describe(),
            },
        }
    }

    /// `X-Apple-I-Rscd: 401/403`: Apple rejected the session whatever the status says.
    pub(super) fn hidden_rejection(name: &'static str, reply: &Reply) -> Option<AuthError> {
        match reply.header("x-apple-i-rscd").map(str::trim) {
            Some(code @ ("401" | "403")) => Some(AuthError::Rejected {
                endpoint: name,
                status: code.parse().unwrap_or(401),
                detail: "Apple rejected the session (X-Apple-I-Rscd)".to_string(),
            }),
            _ => None,
        }
    }
}

/// Copy the section-1.4 headers of an answer into the session (non-empty values only).
pub(super) fn capture_session_headers(session: &mut SessionData, headers: &HeaderMap) {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let fields: [(&str, &mut Option<String>); 8] = [
        ("x-apple-id-account-country", &mut session.account_country),
        ("x-apple-id-session-id", &mut session.session_id),
        ("x-apple-session-token", &mut session.session_token),
        ("x-apple-twosv-trust-token", &mut session.trust_token),
        ("x-apple-twosv-trust-eligible", &mut session.trust_eligible),
        ("x-apple-i-rscd", &mut session.apple_rscd),
        ("x-apple-i-ercd", &mut session.apple_ercd),
        ("scnt", &mut session.scnt),
    ];
    for (name, slot) in fields {
        if let Some(v) = get(name) {
            *slot = Some(v);
        }
    }
}

/// `Some(detail)` when the answer says the account is locked.
pub(super) fn locked_detail(reply: &Reply) -> Option<String> {
    if reply.header("x-apple-i-ercd") == Some(LOCKED_ACCOUNT) {
        return Some(String::new());
    }
    match reply.service_error() {
        Some((code, message)) if code == LOCKED_ACCOUNT => Some(if message.is_empty() {
            String::new()
        } else {
            format!(" ({message})")
        }),
        _ => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A canned answer for the readers' tests.
    pub fn reply(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> Reply {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        Reply {
            status: StatusCode::from_u16(status).expect("status"),
            headers: h,
            body: Bytes::from(body.to_string()),
            attempts: 1,
        }
    }

    #[test]
    fn captured_headers_newest_wins_and_empty_is_ignored() {
        let mut s = SessionData::new("u");
        s.scnt = Some("old".into());
        s.trust_token = Some("keep".into());
        let r = reply(
            200,
            &[
                ("scnt", "new"),
                ("x-apple-twosv-trust-token", ""),
                ("x-apple-session-token", "tok"),
            ],
            "",
        );
        capture_session_headers(&mut s, &r.headers);
        assert_eq!(s.scnt.as_deref(), Some("new"));
        assert_eq!(s.trust_token.as_deref(), Some("keep"));
        assert_eq!(s.session_token.as_deref(), Some("tok"));
    }

    #[test]
    fn user_agent_is_the_documented_browser_string() {
        assert_eq!(
            APPLE_USER_AGENT,
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/138.0.0.0 Safari/537.36"
        );
        assert!(!APPLE_USER_AGENT.contains("  "));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            max_retry_after: Duration::from_secs(1),
        };
        let first = p.backoff(1);
        assert!(
            first >= Duration::from_millis(100) && first < Duration::from_millis(200),
            "{first:?}"
        );
        let third = p.backoff(3);
        assert!(
            third >= Duration::from_millis(300) && third < Duration::from_millis(400),
            "{third:?}"
        );
    }

    #[test]
    fn lenient_base64_accepts_the_recorded_placeholders() {
        assert!(decode_base64("UUN/abcdefghijklmnopqr==").is_some());
        assert_eq!(decode_base64("AQID").as_deref(), Some(&[1u8, 2, 3][..]));
        assert!(decode_base64("***").is_none());
    }

    #[test]
    fn body_descriptions_are_safe() {
        assert_eq!(
            reply(500, &[], "<html>oops</html>").describe(),
            "an HTML page"
        );
        assert_eq!(reply(500, &[], "").describe(), "empty answer");
        assert_eq!(
            reply(
                401,
                &[],
                r#"{"serviceErrors":[{"code":"-20101","message":"Enter the email"}]}"#
            )
            .describe(),
            "Enter the email (code -20101)"
        );
    }
}

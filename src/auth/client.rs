//! Typed calls to Apple's sign-in services (icloud-auth.md section 2): idmsa (E1-E3, E7-E12)
//! and setup (E5, E6), with the exact header sets of section 1.3, capture of the section-1.4
//! response headers into the session (newest value wins), bounded retries of 429/5xx
//! (section 6.3) and classification of failures into [`AuthError`] (section 6).
//!
//! This module knows single exchanges; the order of exchanges is `flow`'s job.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::account::AccountInfo;
use super::endpoints::Endpoints;
use super::error::AuthError;
use super::session_store::SessionData;
use super::srp::{Proofs, Protocol};

/// The browser User-Agent Apple's web endpoints are used with (section 1.2).
pub const APPLE_USER_AGENT: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36";
/// `X-Apple-OAuth-Client-Id` and `X-Apple-Widget-Key` of the iCloud web app.
const WIDGET_KEY: &str = "d39ba9916b7251055b22c7f910e2ea796ee65e98b2ddecea8f5dde8d9d1a815d";
/// Longest time one sign-in request may take, connection included.
pub const AUTH_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Apple's error code for a wrong verification code.
const WRONG_CODE: &str = "-21669";
/// Apple's error code for a locked account (as the simulator models it).
const LOCKED_ACCOUNT: &str = "-20209";

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
    fn backoff(&self, n: u32) -> Duration {
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
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(self.header("retry-after")?)
    }

    /// First service error code and message in the body, if any.
    fn service_error(&self) -> Option<(String, String)> {
        first_service_error(&self.json()?)
    }

    /// A short, safe description of the body for error messages.
    fn describe(&self) -> String {
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
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = when.to_utc() - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// First entry of `serviceErrors` / `service_errors`: (code, message or title).
fn first_service_error(body: &Value) -> Option<(String, String)> {
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

fn has_body_error(body: &Value) -> bool {
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
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(s.trim()).ok()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A reqwest error as readable text, causes included (the URL never holds a secret).
fn describe_network_error(e: &reqwest::Error) -> String {
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

/// Answer of E1.
#[derive(Debug, Clone)]
pub(crate) struct InitAnswer {
    pub salt: Vec<u8>,
    pub b: Vec<u8>,
    pub iterations: u64,
    pub protocol: Protocol,
    pub c: Value,
}

/// Outcome of E2 with a correct password.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Completion {
    /// Signed in; accountLogin tells whether a second factor is still needed.
    Done,
    /// HSA2 second factor required (409).
    SecondFactor,
    /// 412: finish with repair/complete (accounts without 2FA).
    NeedsRepair,
}

/// Outcome of E5/E6.
#[derive(Debug, Clone)]
pub(crate) enum SetupOutcome {
    Accepted(AccountInfo),
    /// The saved session or token is not (or no longer) accepted.
    Refused {
        status: u16,
        detail: String,
    },
}

/// A trusted phone number for SMS codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedPhone {
    pub id: u64,
    /// As Apple shows it, e.g. `+1 (•••) •••-••81`.
    pub number: String,
}

/// Where an idmsa request claims to come from (section 1.3).
#[derive(Clone, Copy)]
enum Origin {
    /// E1/E2: `{AUTH_ROOT}`.
    AuthRoot,
    /// Everything else: `{HOME}`.
    Home,
}

struct Call {
    name: &'static str,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    /// Retry 429/5xx answers.
    retry_status: bool,
    /// Retry network failures (safe only where repeating cannot consume anything).
    retry_network: bool,
}

/// The typed sign-in client over a shared HTTP client (and its cookie jar).
#[derive(Clone)]
pub(crate) struct AppleClient {
    http: reqwest::Client,
    endpoints: Endpoints,
    retry: RetryPolicy,
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

    fn auth_headers(
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

    fn setup_headers(&self) -> HeaderMap {
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
    async fn send(&self, session: &mut SessionData, call: Call) -> Result<Reply, AuthError> {
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
            return Ok(reply);
        }
    }

    /// The error for a failed idmsa answer.
    fn failure(&self, name: &'static str, reply: &Reply, username: &str) -> AuthError {
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
    fn hidden_rejection(name: &'static str, reply: &Reply) -> Option<AuthError> {
        match reply.header("x-apple-i-rscd").map(str::trim) {
            Some(code @ ("401" | "403")) => Some(AuthError::Rejected {
                endpoint: name,
                status: code.parse().unwrap_or(401),
                detail: "Apple rejected the session (X-Apple-I-Rscd)".to_string(),
            }),
            _ => None,
        }
    }

    /// E1: send A, get the server's SRP values.
    pub async fn signin_init(
        &self,
        session: &mut SessionData,
        account_name: &str,
        a_pub: &[u8],
    ) -> Result<InitAnswer, AuthError> {
        const NAME: &str = "signin/init";
        let body =
            json!({"a": b64(a_pub), "accountName": account_name, "protocols": ["s2k", "s2k_fo"]});
        let call = Call {
            name: NAME,
            method: Method::POST,
            url: self.endpoints.auth_url("/signin/init"),
            headers: self.auth_headers(
                session,
                Origin::AuthRoot,
                "application/json, text/javascript",
            ),
            body: Some(body.to_string().into_bytes()),
            retry_status: true,
            retry_network: true,
        };
        let reply = self.send(session, call).await?;
        if !reply.status.is_success() {
            return Err(self.failure(NAME, &reply, account_name));
        }
        if let Some(e) = Self::hidden_rejection(NAME, &reply) {
            return Err(e);
        }
        let protocol_error = |detail: &str| AuthError::Protocol {
            endpoint: NAME,
            detail: detail.to_string(),
        };
        let doc = reply
            .json()
            .ok_or_else(|| protocol_error("the answer is not JSON"))?;
        let field = |k: &str| doc.get(k).and_then(Value::as_str);
        let salt = field("salt")
            .and_then(decode_base64)
            .ok_or_else(|| protocol_error("missing or invalid salt"))?;
        let b = field("b")
            .and_then(decode_base64)
            .ok_or_else(|| protocol_error("missing or invalid b"))?;
        let iterations = doc
            .get("iteration")
            .and_then(Value::as_u64)
            .ok_or_else(|| protocol_error("missing or invalid iteration"))?;
        let protocol = field("protocol")
            .and_then(Protocol::parse)
            .ok_or_else(|| protocol_error("missing or unknown protocol"))?;
        let c = doc
            .get("c")
            .cloned()
            .ok_or_else(|| protocol_error("missing c"))?;
        Ok(InitAnswer {
            salt,
            b,
            iterations,
            protocol,
            c,
        })
    }

    /// E2: send the proofs (and saved trust token).
    pub async fn signin_complete(
        &self,
        session: &mut SessionData,
        account_name: &str,
        c: &Value,
        proofs: &Proofs,
    ) -> Result<Completion, AuthError> {
        const NAME: &str = "signin/complete";
        let trust_tokens: Vec<&str> = session
            .trust_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .into_iter()
            .collect();
        let body = json!({
            "accountName": account_name,
            "c": c,
            "m1": b64(&proofs.m1),
            "m2": b64(&proofs.m2),
            "rememberMe": true,
            "trustTokens": trust_tokens,
        });
        let call = Call {
            name: NAME,
            method: Method::POST,
            url: self
                .endpoints
                .auth_url("/signin/complete?isRememberMeEnabled=true"),
            headers: self.auth_headers(
                session,
                Origin::AuthRoot,
                "application/json, text/javascript",
            ),
            body: Some(body.to_string().into_bytes()),
            retry_status: true,
            retry_network: true,
        };
        let reply = self.send(session, call).await?;
        let status = reply.status.as_u16();
        if status == 401 {
            if let Some(detail) = locked_detail(&reply) {
                return Err(AuthError::AccountLocked {
                    username: account_name.to_string(),
                    detail,
                });
            }
            return Err(AuthError::WrongPassword {
                username: account_name.to_string(),
            });
        }
        if status == 400 && locked_detail(&reply).is_none() {
            return Err(AuthError::Protocol {
                endpoint: NAME,
                detail: format!(
                    "Apple called the request malformed ({}); this is a bug in icloudpd-rs or a protocol change",
                    reply.describe()
                ),
            });
        }
        let completion = match status {
            409 => {
                if let Some(keys) = security_keys(&reply) {
                    return Err(AuthError::SecurityKeys { key_names: keys });
                }
                Completion::SecondFactor
            }
            412 => Completion::NeedsRepair,
            _ if reply.status.is_success() => Completion::Done,
            _ => return Err(self.failure(NAME, &reply, account_name)),
        };
        if let Some(e) = Self::hidden_rejection(NAME, &reply) {
            return Err(e);
        }
        Ok(completion)
    }

    /// E3: finish a 412 sign-in.
    pub async fn repair_complete(&self, session: &mut SessionData) -> Result<(), AuthError> {
        const NAME: &str = "repair/complete";
        let call = Call {
            name: NAME,
            method: Method::POST,
            url: self.endpoints.auth_url("/repair/complete"),
            headers: self.auth_headers(session, Origin::Home, "application/json, text/javascript"),
            body: Some(b"{}".to_vec()),
            retry_status: true,
            retry_network: true,
        };
        let reply = self.send(session, call).await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(self.failure(NAME, &reply, &session.username.clone()))
        }
    }

    /// E5: exchange the session token (and trust token) for a web session.
    pub async fn account_login(
        &self,
        session: &mut SessionData,
    ) -> Result<SetupOutcome, AuthError> {
        let body = json!({
            "accountCountryCode": session.account_country.clone().unwrap_or_default(),
            "dsWebAuthToken": session.session_token.clone().unwrap_or_default(),
            "extended_login": true,
            "trustToken": session.trust_token.clone().unwrap_or_default(),
        });
        self.setup_call(
            session,
            "accountLogin",
            "/accountLogin",
            body.to_string().into_bytes(),
        )
        .await
    }

    /// E6: check the saved cookies.
    pub async fn validate(&self, session: &mut SessionData) -> Result<SetupOutcome, AuthError> {
        self.setup_call(session, "validate", "/validate", b"null".to_vec())
            .await
    }

    async fn setup_call(
        &self,
        session: &mut SessionData,
        name: &'static str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<SetupOutcome, AuthError> {
        let call = Call {
            name,
            method: Method::POST,
            url: self.endpoints.setup_url(path),
            headers: self.setup_headers(),
            body: Some(body),
            retry_status: false,
            retry_network: false,
        };
        let reply = self.send(session, call).await?;
        let status = reply.status.as_u16();
        if reply.status.is_server_error() || status == 429 {
            // Falling through to SRP would only add load to a struggling service (kei's rule).
            return Err(self.failure(name, &reply, &session.username.clone()));
        }
        if !reply.status.is_success() {
            return Ok(SetupOutcome::Refused {
                status,
                detail: reply.describe(),
            });
        }
        if let Some(AuthError::Rejected { detail, status, .. }) =
            Self::hidden_rejection(name, &reply)
        {
            return Ok(SetupOutcome::Refused { status, detail });
        }
        let Some(doc) = reply.json() else {
            return Err(AuthError::Protocol {
                endpoint: name,
                detail: "the account document is not JSON".into(),
            });
        };
        if has_body_error(&doc) {
            let (code, message) = first_service_error(&doc).unwrap_or_default();
            if code == LOCKED_ACCOUNT {
                return Err(AuthError::AccountLocked {
                    username: session.username.clone(),
                    detail: format!(" ({message})"),
                });
            }
            return Ok(SetupOutcome::Refused {
                status,
                detail: format!("{message} (code {code})"),
            });
        }
        let info = AccountInfo::from_body(&doc).map_err(|detail| AuthError::Protocol {
            endpoint: name,
            detail,
        })?;
        Ok(SetupOutcome::Accepted(info))
    }

    /// E7: ask Apple to show a code on the trusted devices.
    pub async fn request_device_code(&self, session: &mut SessionData) -> Result<(), AuthError> {
        const NAME: &str = "verify/trusteddevice/securitycode (request)";
        let mut headers = self.auth_headers(session, Origin::Home, "application/json");
        headers.remove(reqwest::header::CONTENT_TYPE);
        let call = Call {
            name: NAME,
            method: Method::PUT,
            url: self
                .endpoints
                .auth_url("/verify/trusteddevice/securitycode"),
            headers,
            body: None,
            retry_status: true,
            retry_network: false,
        };
        let reply = self.send(session, call).await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(self.failure(NAME, &reply, &session.username.clone()))
        }
    }

    /// E8: submit a trusted-device code; `Ok(false)` when Apple says it is wrong.
    pub async fn submit_device_code(
        &self,
        session: &mut SessionData,
        code: &str,
    ) -> Result<bool, AuthError> {
        const NAME: &str = "verify/trusteddevice/securitycode";
        let call = Call {
            name: NAME,
            method: Method::POST,
            url: self
                .endpoints
                .auth_url("/verify/trusteddevice/securitycode"),
            headers: self.auth_headers(session, Origin::Home, "application/json"),
            body: Some(
                json!({"securityCode": {"code": code}})
                    .to_string()
                    .into_bytes(),
            ),
            retry_status: true,
            retry_network: false,
        };
        let reply = self.send(session, call).await?;
        self.code_verdict(NAME, &reply, session)
    }

    fn code_verdict(
        &self,
        name: &'static str,
        reply: &Reply,
        session: &SessionData,
    ) -> Result<bool, AuthError> {
        if reply.status.is_success() {
            return Ok(!reply.json().is_some_and(|doc| has_body_error(&doc)));
        }
        if is_wrong_code(reply) {
            return Ok(false);
        }
        Err(self.failure(name, reply, &session.username))
    }

    /// E9: the trusted phone numbers (from the HTML boot_args page, or JSON).
    pub async fn trusted_phones(
        &self,
        session: &mut SessionData,
    ) -> Result<Vec<TrustedPhone>, AuthError> {
        const NAME: &str = "auth (trusted phone numbers)";
        let mut headers = self.auth_headers(session, Origin::Home, "text/html, application/json");
        headers.remove(reqwest::header::CONTENT_TYPE);
        let call = Call {
            name: NAME,
            method: Method::GET,
            url: self.endpoints.auth_url(""),
            headers,
            body: None,
            retry_status: true,
            retry_network: true,
        };
        let reply = self.send(session, call).await?;
        if !reply.status.is_success() {
            return Err(self.failure(NAME, &reply, &session.username.clone()));
        }
        Ok(parse_trusted_phones(&String::from_utf8_lossy(&reply.body)))
    }

    /// E10: send an SMS code to a trusted phone number.
    pub async fn request_sms_code(
        &self,
        session: &mut SessionData,
        phone_id: u64,
    ) -> Result<(), AuthError> {
        const NAME: &str = "verify/phone";
        let call = Call {
            name: NAME,
            method: Method::PUT,
            url: self.endpoints.auth_url("/verify/phone"),
            headers: self.auth_headers(session, Origin::Home, "application/json"),
            body: Some(
                json!({"phoneNumber": {"id": phone_id}, "mode": "sms"})
                    .to_string()
                    .into_bytes(),
            ),
            retry_status: true,
            retry_network: false,
        };
        let reply = self.send(session, call).await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(self.failure(NAME, &reply, &session.username.clone()))
        }
    }

    /// E11: submit an SMS code; `Ok(false)` when Apple says it is wrong.
    pub async fn submit_sms_code(
        &self,
        session: &mut SessionData,
        phone_id: u64,
        code: &str,
    ) -> Result<bool, AuthError> {
        const NAME: &str = "verify/phone/securitycode";
        let body =
            json!({"phoneNumber": {"id": phone_id}, "securityCode": {"code": code}, "mode": "sms"});
        let call = Call {
            name: NAME,
            method: Method::POST,
            url: self.endpoints.auth_url("/verify/phone/securitycode"),
            headers: self.auth_headers(session, Origin::Home, "application/json"),
            body: Some(body.to_string().into_bytes()),
            retry_status: true,
            retry_network: false,
        };
        let reply = self.send(session, call).await?;
        self.code_verdict(NAME, &reply, session)
    }

    /// E12: make this client trusted; the trust token arrives in a captured header.
    pub async fn trust(&self, session: &mut SessionData) -> Result<(), AuthError> {
        const NAME: &str = "2sv/trust";
        let previous = session.trust_token.clone();
        let call = Call {
            name: NAME,
            method: Method::GET,
            url: self.endpoints.auth_url("/2sv/trust"),
            headers: self.auth_headers(session, Origin::Home, "application/json, text/javascript"),
            body: None,
            retry_status: true,
            retry_network: true,
        };
        let reply = self.send(session, call).await?;
        if !reply.status.is_success() {
            return Err(self.failure(NAME, &reply, &session.username.clone()));
        }
        if reply
            .header("x-apple-twosv-trust-token")
            .is_some_and(|t| !t.is_empty())
        {
            session.trust_established_at = Some(chrono::Utc::now());
        } else {
            tracing::warn!("Apple answered the trust request without a trust token");
            session.trust_token = previous;
        }
        Ok(())
    }
}

/// Copy the section-1.4 headers of an answer into the session (non-empty values only).
fn capture_session_headers(session: &mut SessionData, headers: &HeaderMap) {
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

fn is_wrong_code(reply: &Reply) -> bool {
    reply.header("x-apple-i-ercd") == Some(WRONG_CODE)
        || reply
            .service_error()
            .is_some_and(|(code, _)| code == WRONG_CODE)
        || (reply.status == StatusCode::BAD_REQUEST && locked_detail(reply).is_none())
}

/// `Some(detail)` when the answer says the account is locked.
fn locked_detail(reply: &Reply) -> Option<String> {
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

/// Key names when a 409 announces a FIDO/WebAuthn challenge (`fsaChallenge` or `keyNames`).
fn security_keys(reply: &Reply) -> Option<Vec<String>> {
    let doc = reply.json()?;
    let names: Vec<String> = doc
        .get("keyNames")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let challenge = doc.get("fsaChallenge").is_some_and(Value::is_object);
    (challenge || !names.is_empty()).then_some(names)
}

/// Trusted phone numbers from the E9 page: the `boot_args` JSON script of the HTML page, or a
/// JSON document with the same content.
pub fn parse_trusted_phones(body: &str) -> Vec<TrustedPhone> {
    let doc = serde_json::from_str::<Value>(body.trim())
        .ok()
        .or_else(|| boot_args(body).and_then(|s| serde_json::from_str(s).ok()));
    let Some(doc) = doc else {
        return Vec::new();
    };
    let list = [
        "/direct/twoSV/phoneNumberVerification/trustedPhoneNumbers",
        "/trustedPhoneNumbers",
    ]
    .iter()
    .find_map(|p| doc.pointer(p).and_then(Value::as_array));
    list.into_iter()
        .flatten()
        .filter_map(|entry| {
            let id = entry.get("id").and_then(Value::as_u64)?;
            let number = entry
                .get("numberWithDialCode")
                .or_else(|| entry.get("obfuscatedNumber"))
                .and_then(Value::as_str)?
                .to_string();
            Some(TrustedPhone { id, number })
        })
        .collect()
}

/// The content of `<script type="application/json" class="boot_args">`.
fn boot_args(html: &str) -> Option<&str> {
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let after = &rest[start..];
        let tag_end = after.find('>')?;
        let tag = &after[..tag_end];
        let content = &after[tag_end + 1..];
        let close = content.find("</script>")?;
        if tag.contains(r#"type="application/json""#) && tag.contains(r#"class="boot_args""#) {
            return Some(&content[..close]);
        }
        rest = &content[close..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> Reply {
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
    fn boot_args_phone_list() {
        let html = r#"<html><script type="application/json" class="pre">{"x":1}</script>
            <script type="application/json" class="boot_args">{"direct":{"twoSV":{"phoneNumberVerification":
            {"trustedPhoneNumbers":[{"numberWithDialCode":"+1 (•••) •••-••81","obfuscatedNumber":"(•••) •••-••81","id":1},
            {"obfuscatedNumber":"x"},{"id":3,"obfuscatedNumber":"(•••) •••-••03"}]}}}}</script></html>"#;
        assert_eq!(
            parse_trusted_phones(html),
            vec![
                TrustedPhone {
                    id: 1,
                    number: "+1 (•••) •••-••81".into()
                },
                TrustedPhone {
                    id: 3,
                    number: "(•••) •••-••03".into()
                }
            ]
        );
        assert!(parse_trusted_phones("<html>nothing</html>").is_empty());
        assert_eq!(
            parse_trusted_phones(
                r#"{"trustedPhoneNumbers":[{"id":2,"numberWithDialCode":"+49"}]}"#
            )
            .len(),
            1
        );
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
    fn wrong_code_and_locked_detection() {
        let wrong = reply(
            400,
            &[("x-apple-i-ercd", "-21669")],
            r#"{"service_errors":[{"code":"-21669","title":"Incorrect Verification Code","message":"Incorrect verification code."}],"hasError":true}"#,
        );
        assert!(is_wrong_code(&wrong));
        assert_eq!(locked_detail(&wrong), None);
        let locked = reply(
            403,
            &[],
            r#"{"serviceErrors":[{"code":"-20209","message":"This Apple Account has been locked."}]}"#,
        );
        assert_eq!(
            locked_detail(&locked).as_deref(),
            Some(" (This Apple Account has been locked.)")
        );
        assert!(!is_wrong_code(&locked));
    }

    #[test]
    fn fido_detection() {
        assert_eq!(
            security_keys(&reply(409, &[], r#"{"authType":"hsa2"}"#)),
            None
        );
        assert_eq!(security_keys(&reply(409, &[], "not json")), None);
        assert_eq!(
            security_keys(&reply(409, &[], r#"{"keyNames":["YubiKey 5C"]}"#)),
            Some(vec!["YubiKey 5C".to_string()])
        );
        assert_eq!(
            security_keys(&reply(
                409,
                &[],
                r#"{"fsaChallenge":{"challenge":"x","keyHandles":[],"rpId":"apple.com"}}"#
            )),
            Some(vec![])
        );
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

//! Answers shared by the idmsa and setup handlers: content types as recorded, the idmsa session
//! headers, Apple's error bodies, and request-body parsing that never trusts the client.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::cookies::CookieScope;
use super::sessions::SessionHeaders;
use crate::sim::SimState;

/// Content type of idmsa JSON answers.
pub const IDMSA_JSON: &str = "application/json;charset=UTF-8";
/// Content type of setup-service JSON answers (note the space, as recorded).
pub const SETUP_JSON: &str = "application/json; charset=UTF-8";
/// Content type Apple uses for `signin/init`, `2sv/trust` and error pages.
pub const HTML: &str = "text/html;charset=UTF-8";
/// Country every answer reports (`X-Apple-ID-Account-Country`).
pub const ACCOUNT_COUNTRY: &str = "USA";
/// Generic code of the simulator's "bad request" answers (no Apple code is recorded for them).
pub const BAD_REQUEST_CODE: &str = "-20000";

/// A response with `status`, `content_type` and `body`, plus a fresh `X-Apple-I-Request-ID`.
pub fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert("x-apple-i-request-id", v);
    }
    resp
}

/// An idmsa JSON answer.
pub fn idmsa_json(status: StatusCode, body: &Value) -> Response {
    reply(status, IDMSA_JSON, body.to_string())
}

/// Insert a header whose value came from our own token generators.
pub fn put(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// The headers of a success-type idmsa answer (icloud-auth.md 2.2).
pub fn add_session_headers(resp: &mut Response, s: &SessionHeaders) {
    let h = resp.headers_mut();
    put(h, "scnt", &s.scnt);
    put(h, "x-apple-id-session-id", &s.session_id);
    put(h, "x-apple-session-token", &s.session_token);
    put(h, "x-apple-auth-attributes", &s.auth_attributes);
    put(h, "x-apple-id-account-country", ACCOUNT_COUNTRY);
    put(h, "x-apple-twosv-trust-eligible", "true");
}

/// The `dslang` / `site` cookies idmsa sets after a code (Domain `apple.com` on Apple's hosts).
pub fn add_idmsa_cookies(resp: &mut Response, state: &SimState) {
    let scope = CookieScope {
        domain: state.config.apple_hosts.then_some("apple.com"),
        secure: serves_tls(state),
    };
    for (name, value) in [("dslang", "US-EN"), ("site", ACCOUNT_COUNTRY)] {
        if let Some(v) = super::cookies::set_cookie(name, value, false, None, true, scope) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
}

/// The simulator is served over HTTPS (cookies may then be `Secure`).
pub fn serves_tls(state: &SimState) -> bool {
    state.urls.endpoint.starts_with("https://")
}

/// An error in Apple's idmsa shape, in both spellings clients read (`serviceErrors` as on the
/// recorded 401, `service_errors` + `hasError` as on the recorded 400, which is what py checks).
pub fn service_error(status: StatusCode, code: &str, title: &str, message: &str) -> Response {
    let entry =
        json!({"code": code, "title": title, "message": message, "suppressDismissal": false});
    idmsa_json(
        status,
        &json!({"serviceErrors": [entry.clone()], "service_errors": [entry], "hasError": true}),
    )
}

/// 400 for malformed or incomplete input; logs why.
pub fn bad_request(endpoint: &str, why: &str) -> Response {
    tracing::warn!(endpoint, why, "rejected: bad request");
    service_error(
        StatusCode::BAD_REQUEST,
        BAD_REQUEST_CODE,
        "Bad Request",
        "Your request could not be completed because of an error. Please try again later.",
    )
}

/// 401 for an idmsa call whose `scnt` / `X-Apple-ID-Session-Id` names no live sign-in.
pub fn no_signin_context(endpoint: &str) -> Response {
    tracing::warn!(
        endpoint,
        "rejected: no sign-in context for scnt / X-Apple-ID-Session-Id"
    );
    service_error(
        StatusCode::UNAUTHORIZED,
        BAD_REQUEST_CODE,
        "Session Expired",
        "Your session has expired. Please sign in again.",
    )
}

/// The recorded wrong-password answer: 401, `serviceErrors` code `-20101`.
pub fn wrong_password(scnt: &str) -> Response {
    let mut resp = idmsa_json(
        StatusCode::UNAUTHORIZED,
        &json!({"serviceErrors": [{
            "code": "-20101",
            "message": "Enter the email or phone number and password for your Apple Account.",
            "suppressDismissal": false,
        }]}),
    );
    put(resp.headers_mut(), "scnt", scnt);
    resp
}

/// A locked account: 403, `serviceErrors` code `-20209`. No recording shows Apple's answer;
/// this is the simulator's choice (403 reads as "refused" to every client, and the text says why).
pub fn locked(scnt: &str) -> Response {
    let mut resp = idmsa_json(
        StatusCode::FORBIDDEN,
        &json!({"serviceErrors": [{
            "code": "-20209",
            "message": "This Apple Account has been locked for security reasons.",
            "suppressDismissal": false,
        }]}),
    );
    put(resp.headers_mut(), "scnt", scnt);
    resp
}

/// The recorded wrong-code answer: 400, `X-Apple-I-Ercd: -21669`.
pub fn wrong_code(scnt: &str) -> Response {
    let mut resp = idmsa_json(
        StatusCode::BAD_REQUEST,
        &json!({"service_errors": [{
            "code": "-21669",
            "title": "Incorrect Verification Code",
            "message": "Incorrect verification code.",
            "suppressDismissal": false,
        }], "hasError": true}),
    );
    put(resp.headers_mut(), "x-apple-i-ercd", "-21669");
    put(resp.headers_mut(), "scnt", scnt);
    resp
}

/// Setup-service refusal of an unknown or expired session: 401 with a non-JSON body, so that
/// every client falls back to signing in (icloud-auth.md 6.4).
pub fn setup_unauthorized(endpoint: &str, why: &str) -> Response {
    tracing::warn!(endpoint, why, "rejected: no valid session");
    reply(
        StatusCode::UNAUTHORIZED,
        "text/plain;charset=UTF-8",
        "Unauthorized".into(),
    )
}

/// Setup-service 400 (non-JSON, so that py does not mistake it for a success body).
pub fn setup_bad_request(endpoint: &str, why: &str) -> Response {
    tracing::warn!(endpoint, why, "rejected: bad request");
    reply(
        StatusCode::BAD_REQUEST,
        "text/plain;charset=UTF-8",
        "Bad Request".into(),
    )
}

/// Parse a request body as a JSON object, whatever its `Content-Type`.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, &'static str> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("body is not a JSON object"),
        Err(_) => Err("body is not valid JSON"),
    }
}

/// A string field of a JSON object.
pub fn str_field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

/// The first characters of a secret, for logs.
pub fn redact(secret: &str) -> String {
    let head: String = secret.chars().take(6).collect();
    format!("{head}…")
}

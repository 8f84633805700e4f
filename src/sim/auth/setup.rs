//! The setup service under `/setup/ws/1`: `accountLogin` (E5) turns an idmsa session token into
//! a web session, `validate` (E6) checks one from its cookies, `requestPCS` (E19, rclone) hands
//! out the PCS cookies of a service.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::json;

use super::account_doc::account_document;
use super::cookies::{CookieScope, set_cookie};
use super::replies::{
    SETUP_JSON, json_object, put, redact, reply, serves_tls, setup_bad_request, setup_unauthorized,
    str_field,
};
use super::sessions::{DS_WEB_SESSION_TOKEN, WEBAUTH_TOKEN, WebEntry, random_token};
use crate::sim::{SharedState, SimState};

/// PCS cookies Apple sets on a trusted session at `accountLogin` / `validate` (no `-Photos`:
/// that one only comes from `requestPCS`, as recorded).
const SESSION_PCS: [&str; 4] = ["Documents", "News", "Notes", "Sharing"];

/// E5 `POST /setup/ws/1/accountLogin`: identify the idmsa session by `dsWebAuthToken` alone
/// (rclone sends no cookies), apply a valid `trustToken`, create a web session.
pub async fn account_login(State(state): State<SharedState>, body: Bytes) -> Response {
    const EP: &str = "accountLogin";
    let req = match json_object(&body) {
        Ok(req) => req,
        Err(why) => return setup_bad_request(EP, why),
    };
    let Some(token) = str_field(&req, "dsWebAuthToken").filter(|t| !t.is_empty()) else {
        return setup_unauthorized(EP, "missing dsWebAuthToken");
    };
    let store = &state.auth.store;
    let Some(id) = store.session_id_from_token(token) else {
        return setup_unauthorized(
            EP,
            &format!("unknown or expired session token {}", redact(token)),
        );
    };
    let trust_ok = str_field(&req, "trustToken")
        .filter(|t| !t.is_empty())
        .is_some_and(|t| store.trust_token_valid(t));
    let Some(trusted) = store.with_session(&id, |s| {
        s.trusted_by_token |= trust_ok;
        s.trusted()
    }) else {
        return setup_unauthorized(EP, "session ended");
    };
    let web = store.create_web_session(&state.account.dsid, Some(id), trusted);
    tracing::info!(trusted, "web session created");
    document_response(&state, &web)
}

/// E6 `POST /setup/ws/1/validate`: the body is ignored (`null`, empty, anything); the session
/// comes from the cookies. Unknown or expired → 401 with a non-JSON body.
pub async fn validate(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    const EP: &str = "validate";
    let Some(web) = find_web(&state, &headers) else {
        return setup_unauthorized(EP, "no live web session in cookies");
    };
    // A session created before the second factor was done becomes trusted once it is.
    if !web.trusted()
        && let Some(id) = &web.idmsa_id
        && state.auth.store.with_session(id, |s| s.trusted()) == Some(true)
    {
        web.set_trusted();
    }
    document_response(&state, &web)
}

/// E19 `POST /setup/ws/1/requestPCS` (rclone): `{"appName": "photos" | "iclouddrive", ...}` →
/// `{"status": "success"}` and that service's PCS cookies.
pub async fn request_pcs(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const EP: &str = "requestPCS";
    let Some(web) = find_web(&state, &headers) else {
        return setup_unauthorized(EP, "no live web session in cookies");
    };
    if !web.trusted() {
        return setup_unauthorized(EP, "web session is not trusted yet");
    }
    let req = match json_object(&body) {
        Ok(req) => req,
        Err(why) => return setup_bad_request(EP, why),
    };
    let services: &[&str] = match str_field(&req, "appName") {
        Some("photos") => &["Photos", "Sharing"],
        Some("iclouddrive") => &["Documents"],
        _ => return setup_bad_request(EP, "unknown appName"),
    };
    let mut resp = reply(
        StatusCode::OK,
        SETUP_JSON,
        json!({"status": "success", "message": "PCS cookies issued"}).to_string(),
    );
    add_setup_headers(&state, &mut resp);
    let scope = web_scope(&state);
    for service in services {
        let name = format!("X-APPLE-WEBAUTH-PCS-{service}");
        if let Some(v) = set_cookie(
            &name,
            &random_token(24),
            true,
            Some(web.remaining()),
            true,
            scope,
        ) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

fn find_web(state: &SimState, headers: &HeaderMap) -> Option<std::sync::Arc<WebEntry>> {
    state.auth.store.find_web_session_in(headers)
}

/// `.icloud.com` on Apple's host names, host-only otherwise; `Secure` only over TLS.
fn web_scope(state: &SimState) -> CookieScope {
    CookieScope {
        domain: state.config.apple_hosts.then_some(".icloud.com"),
        secure: serves_tls(state),
    }
}

fn add_setup_headers(state: &SimState, resp: &mut Response) {
    let h = resp.headers_mut();
    put(h, "access-control-allow-credentials", "true");
    put(h, "access-control-allow-origin", &state.urls.home);
    put(h, "x-apple-request-uuid", &uuid::Uuid::new_v4().to_string());
    put(h, "x-apple-user-partition", "61");
}

/// 200 with the account document and the session's cookies.
fn document_response(state: &SimState, web: &WebEntry) -> Response {
    let trusted = web.trusted();
    let mut resp = reply(
        StatusCode::OK,
        SETUP_JSON,
        account_document(state, trusted).to_string(),
    );
    add_setup_headers(state, &mut resp);
    let scope = web_scope(state);
    let c = &web.cookies;
    let session = Some(web.remaining());
    let trust = Some(Duration::from_secs(state.config.trust_ttl));
    let kb = format!("X_APPLE_WEB_KB-{}", c.kb_id);
    let mut cookies: Vec<(String, &str, Option<Duration>, bool)> = vec![
        (
            "X-APPLE-UNIQUE-CLIENT-ID".into(),
            &c.unique_client_id,
            None,
            false,
        ),
        ("X-APPLE-WEBAUTH-LOGIN".into(), &c.login, None, true),
        ("X-APPLE-WEBAUTH-VALIDATE".into(), &c.validate, None, false),
        ("X-APPLE-WEBAUTH-HSA-LOGIN".into(), &c.hsa_login, None, true),
        (
            "X-APPLE-WEBAUTH-USER".into(),
            &c.webauth_user,
            session,
            true,
        ),
        (kb, &c.kb, trust, true),
        (
            DS_WEB_SESSION_TOKEN.into(),
            &c.ds_web_session_token,
            session,
            true,
        ),
    ];
    let pcs_values: Vec<(String, String)> = if trusted {
        SESSION_PCS
            .iter()
            .map(|s| (format!("X-APPLE-WEBAUTH-PCS-{s}"), random_token(24)))
            .collect()
    } else {
        Vec::new()
    };
    if trusted {
        cookies.push((WEBAUTH_TOKEN.into(), &c.webauth_token, session, true));
        for (name, value) in &pcs_values {
            cookies.push((name.clone(), value, session, true));
        }
    }
    for (name, value, lifetime, http_only) in cookies {
        if let Some(v) = set_cookie(&name, value, true, lifetime, http_only, scope) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

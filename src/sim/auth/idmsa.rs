//! Password sign-in under `/appleauth/auth`: SRP `signin/init` (E1) and `signin/complete` (E2),
//! `repair/complete` (E3), and rclone's `authorize/signin` (E17) and `federate` (E18).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use num_bigint::BigUint;
use serde_json::{Value, json};

use super::accounts::SecondFactorKind;
use super::replies::{
    self, HTML, add_session_headers, bad_request, idmsa_json, json_object, no_signin_context, put,
    redact, reply, str_field, wrong_password,
};
use super::second_factor::{phone_challenge, security_code_info};
use super::sessions::{PendingExchange, SecondFactor, random_hex, random_token};
use super::srp::{ServerExchange, SrpError};
use crate::sim::SharedState;

/// Base64 as clients send it: standard alphabet, padding optional.
const B64_IN: base64::engine::GeneralPurpose =
    base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
/// Base64 as Apple answers: standard alphabet, canonical padding.
const B64_OUT: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// E1 `POST /appleauth/auth/signin/init`: start SRP.
pub async fn signin_init(State(state): State<SharedState>, body: Bytes) -> Response {
    const EP: &str = "signin/init";
    let req = match json_object(&body) {
        Ok(req) => req,
        Err(why) => return bad_request(EP, why),
    };
    let Some(name) = str_field(&req, "accountName") else {
        return bad_request(EP, "missing accountName");
    };
    let Some(a_pub) = str_field(&req, "a")
        .and_then(|a| B64_IN.decode(a).ok())
        .map(|bytes| BigUint::from_bytes_be(&bytes))
    else {
        return bad_request(EP, "missing or invalid a");
    };
    let offered: Vec<&str> = match req.get("protocols") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => return bad_request(EP, "missing protocols"),
    };
    let secrets = &state.auth.secrets;
    let Some(protocol) = secrets.choose_protocol(&offered) else {
        return bad_request(EP, "no supported protocol offered");
    };
    let known = secrets.is_account(name);
    let params = if known {
        secrets.params(protocol, &state.account.password)
    } else {
        tracing::info!(
            account = name,
            "signin/init for an unknown account (decoy parameters)"
        );
        secrets.decoy_params(name, protocol)
    };
    let exchange = match ServerExchange::new(params.salt.clone(), params.verifier, a_pub) {
        Ok(ex) => ex,
        Err(e) => return bad_request(EP, &e.to_string()),
    };
    let c = format!(
        "d-{}-{}:MSA",
        100 + rand::random::<u16>() % 900,
        uuid::Uuid::new_v4()
    );
    let scnt = random_token(48);
    let answer = json!({
        "iteration": params.iterations,
        "salt": B64_OUT.encode(&params.salt),
        "protocol": params.protocol.as_str(),
        "version": 1,
        "b": B64_OUT.encode(exchange.b_pub.to_bytes_be()),
        "c": c,
    });
    state.auth.store.put_exchange(
        c,
        PendingExchange::new(exchange, name.to_string(), known, scnt.clone()),
    );
    // Recorded with an HTML content type although the body is JSON.
    let mut resp = reply(StatusCode::OK, HTML, answer.to_string());
    put(resp.headers_mut(), "scnt", &scnt);
    resp
}

/// E2 `POST /appleauth/auth/signin/complete`: check the proofs; 412 (no second factor),
/// 409 (second factor needed), 200 (trust token accepted), 401 (wrong password), 403 (locked).
pub async fn signin_complete(State(state): State<SharedState>, body: Bytes) -> Response {
    const EP: &str = "signin/complete";
    let req = match json_object(&body) {
        Ok(req) => req,
        Err(why) => return bad_request(EP, why),
    };
    let Some(name) = str_field(&req, "accountName") else {
        return bad_request(EP, "missing accountName");
    };
    // `c` is opaque: echoed as received, normally the string we sent.
    let c = match req.get("c") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => return bad_request(EP, "missing c"),
        Some(other) => other.to_string(),
    };
    let proof = |key| str_field(&req, key).and_then(|p| B64_IN.decode(p).ok());
    let (Some(m1), Some(m2)) = (proof("m1"), proof("m2")) else {
        return bad_request(EP, "missing or invalid m1/m2");
    };
    let trust_tokens: Vec<&str> = match req.get("trustTokens") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(_) => return bad_request(EP, "trustTokens is not an array"),
    };
    let auth = &state.auth;
    let Some(pending) = auth.store.take_exchange(&c) else {
        return bad_request(EP, "unknown or expired c");
    };
    let scnt = pending.scnt.clone();
    if !pending.known
        || !name
            .trim()
            .eq_ignore_ascii_case(pending.account_name.trim())
    {
        tracing::warn!(
            account = name,
            "rejected: unknown account or name differs from signin/init"
        );
        return wrong_password(&scnt);
    }
    if auth.secrets.locked {
        tracing::warn!(account = name, "rejected: account is locked");
        return replies::locked(&scnt);
    }
    match pending.exchange.verify(name, &m1, &m2) {
        Ok(form) => tracing::info!(account = name, ?form, "password proof accepted"),
        Err(SrpError::BadProof) => {
            tracing::warn!(
                account = name,
                "rejected: wrong password (SRP proof mismatch)"
            );
            return wrong_password(&scnt);
        }
        Err(e) => return bad_request(EP, &e.to_string()),
    }
    let trusted_by_token = trust_tokens.iter().any(|t| auth.store.trust_token_valid(t));
    if !trust_tokens.is_empty() && !trusted_by_token {
        tracing::info!(token = %redact(trust_tokens[0]), "trust token not valid (expired or unknown)");
    }
    let (status, second_factor, answer) = match auth.secrets.second_factor {
        SecondFactorKind::None => (
            StatusCode::PRECONDITION_FAILED,
            SecondFactor::NotRequired,
            json!({"auth_type": "sa"}),
        ),
        SecondFactorKind::Codes if trusted_by_token => (
            StatusCode::OK,
            SecondFactor::Pending,
            json!({"authType": "hsa2"}),
        ),
        SecondFactorKind::Codes => (
            StatusCode::CONFLICT,
            SecondFactor::Pending,
            challenge(false),
        ),
        SecondFactorKind::SecurityKeys if trusted_by_token => (
            StatusCode::OK,
            SecondFactor::SecurityKey,
            json!({"authType": "hsa2"}),
        ),
        SecondFactorKind::SecurityKeys => (
            StatusCode::CONFLICT,
            SecondFactor::SecurityKey,
            challenge(true),
        ),
    };
    let headers = auth
        .store
        .open_session(scnt, second_factor, trusted_by_token);
    let mut resp = idmsa_json(status, &answer);
    add_session_headers(&mut resp, &headers);
    put(resp.headers_mut(), "location", "/auth");
    resp
}

/// The 409 body: how the second factor can be given (icloud-auth.md 2.2). A FIDO account adds
/// `fsaChallenge` and `keyNames`.
fn challenge(security_keys: bool) -> Value {
    let mut body = json!({
        "authType": "hsa2",
        "trustedDevices": [{"id": "device-1", "name": "iPhone", "modelName": "iPhone 15", "type": "iPhone"}],
        "trustedPhoneNumbers": [phone_challenge()],
        "securityCode": security_code_info(),
        "noTrustedDevices": false,
    });
    if security_keys {
        body["fsaChallenge"] = json!({
            "challenge": random_token(32),
            "keyHandles": [random_token(48)],
            "rpId": "apple.com",
            "allowedCredentials": "",
        });
        body["keyNames"] = json!(["YubiKey 5C"]);
    }
    body
}

/// E3 `POST /appleauth/auth/repair/complete`: after a 412, finish the sign-in (exactly 200:
/// rclone refuses 204). With `trust_token_without_2fa`, also hand out a trust token (A.8).
pub async fn repair_complete(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    const EP: &str = "repair/complete";
    let auth = &state.auth;
    let Some(headers) = auth
        .store
        .session_id_from_headers(&headers)
        .and_then(|id| auth.store.mint_token(&id))
    else {
        return no_signin_context(EP);
    };
    let mut resp = idmsa_json(StatusCode::OK, &json!({}));
    add_session_headers(&mut resp, &headers);
    put(resp.headers_mut(), "location", "/auth");
    if state.config.trust_token_without_2fa && !auth.secrets.has_second_factor() {
        let token = auth.store.mint_trust_token();
        put(resp.headers_mut(), "x-apple-twosv-trust-token", &token);
    }
    resp
}

/// E17 `GET /appleauth/auth/authorize/signin` (rclone's first call): the sign-in page, with a
/// fresh `scnt`, session id and auth attributes.
pub async fn authorize_signin() -> Response {
    let mut resp = reply(
        StatusCode::OK,
        HTML,
        "<!DOCTYPE html><html><head><title>Sign In</title></head><body></body></html>".into(),
    );
    let h = resp.headers_mut();
    put(h, "scnt", &random_token(48));
    put(h, "x-apple-id-session-id", &random_hex(16));
    put(h, "x-apple-auth-attributes", &random_token(36));
    resp
}

/// E18 `POST /appleauth/auth/federate` (rclone, before E1): never federated; any body.
pub async fn federate(headers: HeaderMap) -> Response {
    let mut resp = idmsa_json(
        StatusCode::OK,
        &json!({"federated": false, "showFederatedIdpConfirmation": false}),
    );
    for name in ["scnt", "x-apple-id-session-id"] {
        if let Some(v) = headers.get(name) {
            resp.headers_mut().insert(name, v.clone());
        }
    }
    resp
}

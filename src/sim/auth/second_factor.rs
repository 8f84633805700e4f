//! The second factor under `/appleauth/auth`: trusted-device push (E7) and code (E8), the phone
//! page (E9: HTML for py, JSON for rclone), SMS request (E10) and code (E11), and trust (E12).
//! The context is the idmsa session named by `X-Apple-ID-Session-Id` / `scnt`, so a client may
//! ask for a code in one process and submit it from another.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::replies::{
    BAD_REQUEST_CODE, HTML, IDMSA_JSON, add_idmsa_cookies, add_session_headers, bad_request,
    idmsa_json, json_object, no_signin_context, put, reply, service_error, wrong_code,
};
use super::sessions::{IdmsaSession, SecondFactor, random_token};
use crate::sim::SharedState;

/// Id of the account's single trusted phone number.
const PHONE_ID: i64 = 1;

/// The trusted phone number as listed in the 409 body and on the phone page.
pub fn phone_challenge() -> Value {
    json!({
        "numberWithDialCode": "+1 (•••) •••-••81",
        "pushMode": "sms",
        "obfuscatedNumber": "(•••) •••-••81",
        "lastTwoDigits": "81",
        "id": PHONE_ID,
    })
}

/// The `securityCode` object of the challenge and the phone page.
pub fn security_code_info() -> Value {
    json!({
        "length": 6,
        "tooManyCodesSent": false,
        "tooManyCodesValidated": false,
        "securityCodeLocked": false,
        "securityCodeCooldown": false,
    })
}

/// Why a second-factor request has no usable context.
enum NoCodeContext {
    /// `scnt` / `X-Apple-ID-Session-Id` name no live sign-in.
    Unknown,
    /// The account has no second factor, or only security keys.
    NotApplicable(&'static str),
}

impl NoCodeContext {
    fn response(self, ep: &str) -> Response {
        match self {
            NoCodeContext::Unknown => no_signin_context(ep),
            NoCodeContext::NotApplicable(why) => bad_request(ep, why),
        }
    }
}

/// The idmsa session a second-factor request belongs to, if it can take a code.
fn code_context(state: &SharedState, headers: &HeaderMap) -> Result<IdmsaSession, NoCodeContext> {
    let store = &state.auth.store;
    let session = store
        .session_id_from_headers(headers)
        .and_then(|id| store.with_session(&id, |s| s.clone()))
        .ok_or(NoCodeContext::Unknown)?;
    match session.second_factor {
        SecondFactor::Pending | SecondFactor::Verified => Ok(session),
        SecondFactor::NotRequired => {
            Err(NoCodeContext::NotApplicable("account has no second factor"))
        }
        SecondFactor::SecurityKey => Err(NoCodeContext::NotApplicable(
            "account requires a security key",
        )),
    }
}

/// Count one delivered code.
fn code_sent(state: &SharedState, session: &IdmsaSession) {
    state
        .auth
        .store
        .with_session(&session.id, |s| s.codes_sent += 1);
}

/// E7 `PUT .../verify/trusteddevice/securitycode`: push a code to trusted devices (body: none,
/// `null`, or anything).
pub async fn push_code(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    let session = match code_context(&state, &headers) {
        Ok(s) => s,
        Err(no) => return no.response("verify/trusteddevice (push)"),
    };
    code_sent(&state, &session);
    let mut resp = idmsa_json(
        StatusCode::OK,
        &json!({"trustedDeviceCount": 1, "otherTrustedDeviceClass": "iPhone", "securityCode": security_code_info()}),
    );
    put(resp.headers_mut(), "scnt", &session.scnt);
    resp
}

/// The code in `{"securityCode": {"code": "123456"}}` (a JSON number is read as digits).
fn submitted_code(req: &Map<String, Value>) -> Option<String> {
    match req.get("securityCode")?.get("code")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// E8 `POST .../verify/trusteddevice/securitycode`: check a trusted-device code.
pub async fn submit_device_code(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    check_code(
        &state,
        &headers,
        &body,
        "verify/trusteddevice/securitycode",
        false,
    )
}

/// E11 `POST .../verify/phone/securitycode`: check an SMS code.
pub async fn submit_phone_code(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    check_code(&state, &headers, &body, "verify/phone/securitycode", true)
}

fn check_code(
    state: &SharedState,
    headers: &HeaderMap,
    body: &[u8],
    ep: &str,
    by_phone: bool,
) -> Response {
    let session = match code_context(state, headers) {
        Ok(s) => s,
        Err(no) => return no.response(ep),
    };
    let req = match json_object(body) {
        Ok(req) => req,
        Err(why) => return bad_request(ep, why),
    };
    if by_phone && phone_id(&req) != Some(PHONE_ID) {
        return bad_request(ep, "unknown phoneNumber.id");
    }
    let Some(code) = submitted_code(&req) else {
        return bad_request(ep, "missing securityCode.code");
    };
    let auth = &state.auth;
    if code != state.account.two_factor_code {
        tracing::warn!(endpoint = ep, "rejected: wrong verification code");
        let mut resp = wrong_code(&session.scnt);
        add_idmsa_cookies(&mut resp, state);
        return resp;
    }
    auth.store
        .with_session(&session.id, |s| s.second_factor = SecondFactor::Verified);
    let Some(fresh) = auth.store.mint_token(&session.id) else {
        return no_signin_context(ep);
    };
    tracing::info!(endpoint = ep, "verification code accepted");
    let mut resp = if auth.code_409_quirk() {
        // rclone's change log: Apple now answers a right code with 409 and `valid: true`.
        idmsa_json(
            StatusCode::CONFLICT,
            &json!({"securityCode": {"code": code, "valid": true}}),
        )
    } else {
        reply(StatusCode::NO_CONTENT, IDMSA_JSON, String::new())
    };
    add_session_headers(&mut resp, &fresh);
    put(
        resp.headers_mut(),
        "x-apple-oauth-grant-code",
        &random_token(32),
    );
    add_idmsa_cookies(&mut resp, state);
    resp
}

fn phone_id(req: &Map<String, Value>) -> Option<i64> {
    req.get("phoneNumber")?.get("id")?.as_i64()
}

/// The phone-verification object (py reads it under `direct.twoSV`, rclone at the top or here).
fn phone_verification() -> Value {
    json!({
        "trustedPhoneNumbers": [phone_challenge()],
        "securityCode": security_code_info(),
        "authenticationType": "hsa2",
        "recoveryUrl": "https://iforgot.apple.com/phone/add?autoSubmitAccount=true&appId=142",
        "cantUsePhoneNumberUrl": "https://iforgot.apple.com/iforgot/phone/add?context=cantuse&appId=142",
        "recoveryWebUrl": "https://iforgot.apple.com/password/verify/appleid?appId=142",
        "repairPhoneNumberUrl": "https://gsa.apple.com/appleid/account/manage/repair/verify/phone",
        "repairPhoneNumberWebUrl": "https://appleid.apple.com/widget/account/repair?#!repair",
        "aboutTwoFactorAuthenticationUrl": "https://support.apple.com/kb/HT204921",
        "autoVerified": false,
        "showAutoVerificationUI": false,
        "supportsCustodianRecovery": false,
        "hideSendSMSCodeOption": false,
        "supervisedChangePasswordFlow": false,
        "supportsRecovery": true,
        "trustedPhoneNumber": phone_challenge(),
        "hsa2Account": true,
        "restrictedAccount": false,
        "managedAccount": false,
    })
}

/// E9 `GET /appleauth/auth`: the phone list. JSON when the client accepts `application/json`
/// (rclone), else Apple's HTML page with the `boot_args` script (py).
pub async fn auth_page(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    let session = match code_context(&state, &headers) {
        Ok(s) => s,
        Err(no) => return no.response("auth (phone page)"),
    };
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    let mut resp = if wants_json {
        idmsa_json(
            StatusCode::OK,
            &json!({
                "trustedPhoneNumbers": [phone_challenge()],
                "trustedPhoneNumber": phone_challenge(),
                "noTrustedDevices": false,
                "authenticationType": "hsa2",
                "hsa2Account": true,
                "securityCode": security_code_info(),
                "phoneNumberVerification": phone_verification(),
            }),
        )
    } else {
        reply(StatusCode::OK, "text/html; charset=UTF-8", boot_args_page())
    };
    let h = resp.headers_mut();
    put(h, "scnt", &session.scnt);
    put(h, "access-control-allow-credentials", "true");
    put(h, "access-control-allow-origin", &state.urls.home);
    resp
}

/// The HTML page, with decoy `pre` / `post` scripts around `boot_args` as in recordings.
fn boot_args_page() -> String {
    let boot = json!({
        "direct": {
            "isReact": true,
            "authUserType": "hsa2",
            "hasTrustedDevices": true,
            "twoSV": {
                "supportedPushModes": ["voice", "sms"],
                "phoneNumberVerification": phone_verification(),
                "authFactors": ["robocall", "sms", "generatedcode"],
                "source_returnurl": "https://idmsa.apple.com/",
                "sourceAppId": 1159,
            },
            "referrerQuery": "",
            "urlContext": "/appleauth",
            "authType": "hsa2",
            "authInitialRoute": "auth/verify/phone",
            "appleIDUrl": "https://appleid.apple.com",
        },
        "additional": {"canRoute2sv": true},
    });
    // Inside a <script>, "</" would end the element early.
    let boot = boot.to_string().replace("</", "<\\/");
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Verify</title>\
         <script type=\"application/json\" class=\"pre\">{{\"pre\":true}}</script>\
         <script type=\"application/json\" class=\"boot_args\">{boot}</script>\
         <script type=\"application/json\" class=\"post\">{{\"post\":true}}</script>\
         </head><body></body></html>"
    )
}

/// E10 `PUT /appleauth/auth/verify/phone`: send a code by SMS (or voice) to a trusted number.
pub async fn send_phone_code(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const EP: &str = "verify/phone";
    let session = match code_context(&state, &headers) {
        Ok(s) => s,
        Err(no) => return no.response(EP),
    };
    let req = match json_object(&body) {
        Ok(req) => req,
        Err(why) => return bad_request(EP, why),
    };
    if phone_id(&req) != Some(PHONE_ID) {
        return bad_request(EP, "unknown phoneNumber.id");
    }
    let mode = match req.get("mode").and_then(Value::as_str) {
        None => "sms",
        Some(m @ ("sms" | "voice")) => m,
        Some(_) => return bad_request(EP, "unknown mode"),
    };
    code_sent(&state, &session);
    let mut resp = idmsa_json(
        StatusCode::OK,
        &json!({"trustedPhoneNumber": phone_challenge(), "mode": mode, "securityCode": security_code_info()}),
    );
    put(resp.headers_mut(), "scnt", &session.scnt);
    resp
}

/// E12 `GET /appleauth/auth/2sv/trust`: after a verified code, trust this browser: 204 with a
/// new `X-Apple-TwoSV-Trust-Token`.
pub async fn trust(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    const EP: &str = "2sv/trust";
    let session = match code_context(&state, &headers) {
        Ok(s) => s,
        Err(no) => return no.response(EP),
    };
    if session.second_factor != SecondFactor::Verified {
        tracing::warn!(endpoint = EP, "rejected: no verified code in this session");
        return service_error(
            StatusCode::UNAUTHORIZED,
            BAD_REQUEST_CODE,
            "Verification Required",
            "Enter the verification code first.",
        );
    }
    let auth = &state.auth;
    let Some(fresh) = auth.store.mint_token(&session.id) else {
        return no_signin_context(EP);
    };
    let token = auth.store.mint_trust_token();
    // Recorded as 204 with an HTML content type (the recorded `{}` body cannot go with a 204).
    let mut resp = reply(StatusCode::NO_CONTENT, HTML, String::new());
    add_session_headers(&mut resp, &fresh);
    put(resp.headers_mut(), "x-apple-twosv-trust-token", &token);
    put(
        resp.headers_mut(),
        "x-apple-oauth-grant-code",
        &random_token(32),
    );
    add_idmsa_cookies(&mut resp, &state);
    resp
}

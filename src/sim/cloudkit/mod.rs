//! The CloudKit Photos database endpoints (`/database/1/com.apple.photos.cloud/production/...`),
//! rendering the synthetic library as CPLMaster / CPLAsset / CPLAlbum records.
//!
//! Every call is checked the same way before its handler runs (`begin`): a valid web session
//! (else HTTP 401 `AUTHENTICATION_REQUIRED`), the private database refused with
//! `ACCESS_DENIED` when the account has Advanced Data Protection, and a JSON object body
//! (else HTTP 400 `BAD_REQUEST`). Any query string is accepted and ignored.

mod changes;
pub mod json;
mod modify;
mod query;
pub mod records;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

use super::SharedState;
use super::library::{Database, ZoneHandle};

/// Path prefix of the Photos container's databases.
pub const BASE: &str = "/database/1/com.apple.photos.cloud/production";

/// Routes under `/database/1/com.apple.photos.cloud/production/{private,shared}`.
pub fn router() -> Router<SharedState> {
    let p = |tail: &str| format!("{BASE}/{{db}}/{tail}");
    Router::new()
        .route(&p("zones/list"), post(changes::zones_list))
        .route(&p("records/query"), post(query::records_query))
        .route(&p("records/lookup"), post(query::records_lookup))
        .route(&p("records/modify"), post(modify::records_modify))
        .route(&p("internal/records/query/batch"), post(query::query_batch))
        .route(&p("changes/database"), post(changes::changes_database))
        .route(&p("changes/zone"), post(changes::changes_zone))
}

/// A complete error answer that ends a call early (boxed: responses are large).
pub(crate) type Refusal = Box<Response>;

/// A checked call: signed in, allowed, with a parsed JSON object body.
pub(crate) struct Call {
    pub state: SharedState,
    pub db: Database,
    pub body: Value,
    /// `X-Apple-Request-UUID` of the answer.
    pub request_id: String,
}

/// Check a call; Err is the complete error answer.
pub(crate) fn begin(
    state: SharedState,
    db: &str,
    headers: &HeaderMap,
    body: &Bytes,
    endpoint: &str,
) -> Result<Call, Refusal> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let Some(database) = Database::parse(db) else {
        tracing::warn!(db, endpoint, "rejected: unknown database");
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Unknown database",
            &request_id,
        )));
    };
    match state.auth.web_session(headers) {
        None => {
            tracing::warn!(db, endpoint, "rejected: no valid web session");
            return Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "AUTHENTICATION_REQUIRED",
                "Invalid global session",
                &request_id,
            )));
        }
        // Signed in with the password but the second factor is still owed: Apple's web
        // session lacks the trust cookie, and CloudKit answers as for a missing cookie.
        Some(session) if !session.trusted => {
            tracing::warn!(
                db,
                endpoint,
                "rejected: two-factor authentication not completed"
            );
            return Err(Box::new(
                (
                    StatusCode::MISDIRECTED_REQUEST,
                    [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
                    "Missing X-APPLE-WEBAUTH-TOKEN cookie",
                )
                    .into_response(),
            ));
        }
        Some(_) => {}
    }
    if state.config.adp && database == Database::Private {
        tracing::info!(endpoint, "refused: Advanced Data Protection is on");
        return Err(Box::new(error(
            StatusCode::OK,
            "ACCESS_DENIED",
            "private db access disabled for this account",
            &request_id,
        )));
    }
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(serde_json::Map::new())
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(db, endpoint, error = %e, "rejected: malformed JSON body");
                return Err(Box::new(error(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    &format!("Malformed JSON request body: {e}"),
                    &request_id,
                )));
            }
        }
    };
    if !body.is_object() {
        tracing::warn!(db, endpoint, "rejected: body is not a JSON object");
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Request body must be a JSON object",
            &request_id,
        )));
    }
    Ok(Call {
        state,
        db: database,
        body,
        request_id,
    })
}

impl Call {
    /// The zone a request's `zoneID` names in this call's database; Err answers 404
    /// `ZONE_NOT_FOUND` (rclone's shape) or 400 when `zoneID` is missing.
    pub fn zone(&self, zone_id: &Value) -> Result<&ZoneHandle, Refusal> {
        let Some(name) = zone_id.get("zoneName").and_then(Value::as_str) else {
            return Err(Box::new(
                self.bad_request(StatusCode::BAD_REQUEST, "Missing zoneID.zoneName"),
            ));
        };
        self.state.library.zone_in(self.db, name).ok_or_else(|| {
            tracing::info!(zone = name, db = self.db.as_str(), "zone not found");
            Box::new(zone_not_found(&self.request_id))
        })
    }

    /// A `BAD_REQUEST` answer with this status.
    pub fn bad_request(&self, status: StatusCode, reason: &str) -> Response {
        tracing::warn!(reason, "bad CloudKit request");
        error(status, "BAD_REQUEST", reason, &self.request_id)
    }

    /// A successful JSON answer.
    pub fn ok(&self, body: String) -> Response {
        reply(StatusCode::OK, body, &self.request_id)
    }
}

/// A JSON answer with CloudKit's headers.
pub fn reply(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-apple-request-uuid", v);
    }
    h.insert("x-apple-cloudkit-version", HeaderValue::from_static("1.0"));
    h.insert(
        "x-responding-instance",
        HeaderValue::from_static("ckdatabasews:sim"),
    );
    h.insert("apple-seq", HeaderValue::from_static("0"));
    h.insert("apple-tk", HeaderValue::from_static("false"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("https://www.icloud.com"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    resp
}

/// `{"serverErrorCode": code, "reason": reason}` with a status.
pub fn error(status: StatusCode, code: &str, reason: &str, request_id: &str) -> Response {
    let body = serde_json::json!({"serverErrorCode": code, "reason": reason}).to_string();
    reply(status, body, request_id)
}

/// HTTP 404 `ZONE_NOT_FOUND` in the shape rclone recognises.
pub fn zone_not_found(request_id: &str) -> Response {
    let body = serde_json::json!({
        "serverErrorCode": "ZONE_NOT_FOUND",
        "reason": "Zone does not exist",
        "errorClass": "ZONE_NOT_FOUND",
        "error": "ZONE_NOT_FOUND",
    })
    .to_string();
    reply(StatusCode::NOT_FOUND, body, request_id)
}

/// `desiredKeys` of a request (None = all fields).
pub(crate) fn desired_keys(v: &Value) -> json::Desired {
    v.get("desiredKeys").and_then(Value::as_array).map(|keys| {
        keys.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    })
}

//! The CDN request handler: check the URL, decide faults, answer with Apple's headers and the
//! exact bytes (or range) of the file.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::body::{self, BodyFault, BodyPlan};
use super::range::{self, RangeAnswer};
use super::url::{self, SignedQuery};
use crate::sim::SharedState;
use crate::sim::content::{FileBytes, Resource};
use crate::sim::faults::{FaultKind, Faults};

/// What Apple's CDN says about caching a download (recorded).
const CACHE_CONTROL: &str = "no-transform,private,max-age=2592000,s-maxage=2592000";
const SERVER: &str = "AppleHttpServer/3faf4ee9434b";
const RESPONDING_INSTANCE: &str = "contentvendorws:icloudpd-rs-sim";
/// The page a `cdn-html` fault serves instead of the file (what kei calls a rate-limit page).
const HTML_ERROR_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Service Unavailable</title></head>\
<body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your request. \
Please try again later.</p></body></html>\n";

/// A fault the CDN applies to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CdnFault {
    Expire,
    Unavailable,
    Html,
    Body(BodyFault),
}

/// CDN faults, in the order they are consulted; the first that fires applies.
const CONSULTED: [FaultKind; 6] = [
    FaultKind::UrlExpire,
    FaultKind::Cdn503,
    FaultKind::CdnHtml,
    FaultKind::CdnReset,
    FaultKind::CdnTruncate,
    FaultKind::CdnStall,
];

/// Decide the fault for one request. `asset_id` is looked up (once) only if some CDN fault is
/// armed for particular assets; body faults are not consulted when there is no body (HEAD).
fn pick_fault(
    faults: &Faults,
    has_body: bool,
    stall: Duration,
    asset_id: impl FnOnce() -> Option<String>,
) -> Option<CdnFault> {
    let id = if CONSULTED.iter().any(|&k| faults.needs_asset_id(k)) {
        asset_id()
    } else {
        None
    };
    let kinds = if has_body {
        &CONSULTED[..]
    } else {
        &CONSULTED[..3]
    };
    let kind = kinds
        .iter()
        .copied()
        .find(|&k| faults.fire_for(k, id.as_deref()))?;
    Some(match kind {
        FaultKind::UrlExpire => CdnFault::Expire,
        FaultKind::Cdn503 => CdnFault::Unavailable,
        FaultKind::CdnHtml => CdnFault::Html,
        FaultKind::CdnReset => CdnFault::Body(BodyFault::Reset),
        FaultKind::CdnTruncate => CdnFault::Body(BodyFault::Truncate),
        _ => CdnFault::Body(BodyFault::Stall(stall)),
    })
}

/// `/B/<id>/<name...>` → (id, name); the name is whatever follows, possibly empty.
fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/B/")?;
    let (id, name) = rest.split_once('/').unwrap_or((rest, ""));
    (!id.is_empty()).then_some((id, name))
}

/// `Last-Modified` as Apple writes it: an HTTP date whose day has no leading zero.
fn apple_http_date(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format("%a, %-d %b %Y %H:%M:%S GMT").to_string()
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// Headers on every CDN answer: CORS, server identity, the request UUID (`r` + milliseconds).
fn base_headers(state: &SharedState, request: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    set(&mut h, header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "false");
    set(&mut h, header::ACCESS_CONTROL_ALLOW_HEADERS, "");
    set(&mut h, header::ACCESS_CONTROL_ALLOW_METHODS, "GET,OPTIONS");
    set(
        &mut h,
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        &state.urls.home,
    );
    set(&mut h, header::SERVER, SERVER);
    let millis = chrono::Utc::now().timestamp_millis();
    set(
        &mut h,
        HeaderName::from_static("x-apple-request-uuid"),
        &format!("{request}{millis}"),
    );
    set(
        &mut h,
        HeaderName::from_static("x-responding-instance"),
        RESPONDING_INSTANCE,
    );
    h
}

fn answer(
    status: StatusCode,
    mut headers: HeaderMap,
    content_type: &str,
    body: &'static str,
) -> Response {
    set(&mut headers, header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    (status, headers, body).into_response()
}

/// The CDN endpoint: `GET`, `HEAD` and CORS `OPTIONS` on `/B/...`.
pub(crate) async fn serve(State(state): State<SharedState>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path();
    let Some((path_id, name)) = split_path(path) else {
        return answer(
            StatusCode::NOT_FOUND,
            HeaderMap::new(),
            "text/plain",
            "Not Found\n",
        );
    };
    let Some(query) = req.uri().query().and_then(SignedQuery::parse) else {
        tracing::warn!(path, "CDN: refused, URL without its signed parameters");
        return answer(
            StatusCode::BAD_REQUEST,
            HeaderMap::new(),
            "application/json",
            "{}",
        );
    };
    let request = query.request.map(str::to_string).unwrap_or_default();
    let headers = base_headers(&state, &request);
    if method == Method::OPTIONS {
        return answer(StatusCode::OK, headers, "text/plain", "");
    }
    if method != Method::GET && method != Method::HEAD {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            headers,
            "text/plain",
            "Method Not Allowed\n",
        );
    }
    if !url::verify(
        &state.secret,
        path_id,
        query.token,
        query.expiry,
        query.signature,
    ) {
        tracing::warn!(path, "CDN: refused, bad URL signature");
        return answer(StatusCode::FORBIDDEN, headers, "text/plain", "Forbidden\n");
    }
    let Some(res) = url::decode_token(query.token) else {
        // Only a token this simulator signed gets here, so this is a version mismatch.
        tracing::warn!(path, "CDN: refused, unreadable resource token");
        return answer(StatusCode::BAD_REQUEST, headers, "application/json", "{}");
    };
    let now = super::unix_now();
    if now >= query.expiry {
        tracing::info!(
            asset_key = res.asset_key,
            expired_secs_ago = now - query.expiry,
            "CDN: refused, URL expired"
        );
        return gone(headers);
    }
    let range = range::answer(
        req.headers().get(header::RANGE).map(|v| v.as_bytes()),
        res.size,
    );
    if range == RangeAnswer::Unsatisfiable {
        let mut headers = headers;
        set(
            &mut headers,
            header::CONTENT_RANGE,
            &format!("bytes */{}", res.size),
        );
        return answer(StatusCode::RANGE_NOT_SATISFIABLE, headers, "text/plain", "");
    }
    let has_body = method == Method::GET;
    let stall = Duration::from_secs(state.config.stall_secs);
    let fault = pick_fault(&state.faults, has_body, stall, || {
        state.library.asset_id(res.asset_key)
    });
    match fault {
        Some(CdnFault::Expire) => {
            tracing::info!(
                asset_key = res.asset_key,
                "CDN: refused, URL expired (url-expire fault)"
            );
            return gone(headers);
        }
        Some(CdnFault::Unavailable) => {
            let mut headers = headers;
            set(&mut headers, header::RETRY_AFTER, "1");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                headers,
                "text/html",
                "Service Unavailable\n",
            );
        }
        Some(CdnFault::Html) => {
            return answer(
                StatusCode::OK,
                headers,
                "text/html;charset=utf-8",
                HTML_ERROR_PAGE,
            );
        }
        _ => {}
    }
    let body_fault = match fault {
        Some(CdnFault::Body(f)) => Some(f),
        _ => None,
    };
    file_response(&state, res, name, range, has_body, body_fault, headers)
}

fn gone(headers: HeaderMap) -> Response {
    answer(StatusCode::GONE, headers, "text/plain", "URL expired\n")
}

fn file_response(
    state: &SharedState,
    res: Resource,
    name: &str,
    range: RangeAnswer,
    has_body: bool,
    fault: Option<BodyFault>,
    mut headers: HeaderMap,
) -> Response {
    let (status, start, len) = match range {
        RangeAnswer::Partial { start, end } => {
            let cr = format!("bytes {start}-{end}/{}", res.size);
            set(&mut headers, header::CONTENT_RANGE, &cr);
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        _ => (StatusCode::OK, 0, res.size),
    };
    let filename = url::percent_encode(&url::percent_decode(name));
    let disposition = format!("attachment; filename=\"{filename}\"; filename*=UTF-8''{filename}");
    set(&mut headers, header::ACCEPT_RANGES, "bytes");
    set(&mut headers, header::CACHE_CONTROL, CACHE_CONTROL);
    set(&mut headers, header::CONTENT_DISPOSITION, &disposition);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    set(
        &mut headers,
        header::CONTENT_TYPE,
        "application/octet-stream",
    );
    set(
        &mut headers,
        header::LAST_MODIFIED,
        &apple_http_date(chrono::Utc::now()),
    );
    let body = if has_body {
        let plan = BodyPlan {
            bytes: FileBytes::new(state.config.seed, &res),
            start,
            len,
            fault,
            bandwidth: state.config.cdn_bandwidth,
        };
        body::stream(plan, state.clone())
    } else {
        Body::empty()
    };
    (status, headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::faults::FaultRule;

    const STALL: Duration = Duration::from_secs(3);

    #[test]
    fn paths_split_into_id_and_any_name() {
        assert_eq!(split_path("/B/AAA/${f}"), Some(("AAA", "${f}")));
        assert_eq!(split_path("/B/AAA/$%7Bf%7D"), Some(("AAA", "$%7Bf%7D")));
        assert_eq!(split_path("/B/AAA/a/b.jpg"), Some(("AAA", "a/b.jpg")));
        assert_eq!(split_path("/B/AAA"), Some(("AAA", "")));
        assert_eq!(split_path("/B/"), None);
        assert_eq!(split_path("/C/AAA/x"), None);
    }

    #[test]
    fn apple_dates_have_no_leading_zero_on_the_day() {
        let t = chrono::DateTime::parse_from_rfc3339("2023-06-07T02:54:18Z")
            .unwrap()
            .to_utc();
        assert_eq!(apple_http_date(t), "Wed, 7 Jun 2023 02:54:18 GMT");
    }

    #[test]
    fn no_fault_and_no_lookup_when_nothing_is_armed() {
        let f = Faults::new(1, &[]).unwrap();
        let fault = pick_fault(&f, true, STALL, || {
            panic!("asset id looked up without a targeted rule")
        });
        assert_eq!(fault, None);
    }

    #[test]
    fn each_kind_maps_to_its_behaviour() {
        for (kind, expected) in [
            (FaultKind::UrlExpire, CdnFault::Expire),
            (FaultKind::Cdn503, CdnFault::Unavailable),
            (FaultKind::CdnHtml, CdnFault::Html),
            (FaultKind::CdnReset, CdnFault::Body(BodyFault::Reset)),
            (FaultKind::CdnTruncate, CdnFault::Body(BodyFault::Truncate)),
            (FaultKind::CdnStall, CdnFault::Body(BodyFault::Stall(STALL))),
        ] {
            let f = Faults::new(1, &[format!("{}=1", kind.name())]).unwrap();
            assert_eq!(
                pick_fault(&f, true, STALL, || None),
                Some(expected),
                "{kind}"
            );
        }
    }

    #[test]
    fn body_faults_are_not_consulted_without_a_body() {
        let f = Faults::new(1, &["cdn-reset=1".into(), "cdn-stall=1".into()]).unwrap();
        assert_eq!(pick_fault(&f, false, STALL, || None), None);
        assert_eq!(f.fired(FaultKind::CdnReset), 0);
    }

    #[test]
    fn targeted_faults_fire_only_for_their_asset() {
        let f = Faults::new(1, &[]).unwrap();
        f.set(
            FaultKind::Cdn503,
            FaultRule {
                p: 1.0,
                asset_ids: Some(["ASSET-A".to_string()].into()),
                remaining: None,
            },
        );
        let mut lookups = 0;
        let mut ask = |id: &str| {
            pick_fault(&f, true, STALL, || {
                lookups += 1;
                Some(id.to_string())
            })
        };
        assert_eq!(ask("ASSET-B"), None);
        assert_eq!(ask("ASSET-A"), Some(CdnFault::Unavailable));
        assert_eq!(ask("ASSET-A"), Some(CdnFault::Unavailable));
        assert_eq!(lookups, 3, "one lookup per request");
        // An unknown asset (lookup gives nothing) never matches a targeted rule.
        assert_eq!(pick_fault(&f, true, STALL, || None), None);
    }
}

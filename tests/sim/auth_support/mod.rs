//! Test-side client for the simulator's sign-in service: a small SRP client written from
//! icloud-auth.md section 3 (independently of the server code) and a "client process" that
//! captures idmsa headers and cookies the way py, kei and rclone do.

#![allow(dead_code)]

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use num_bigint::BigUint;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use icloudpd_rs::sim::{Sim, SimConfig};

/// RFC 5054 2048-bit group modulus, as printed in the spec.
const N_HEX: &str = "AC6BDB41324A9A9BF166DE5E1389582FAF72B6651987EE07FC3192943DB56050A37329CBB4A099ED8193E0757767A13DD52312AB4B03310DCD7F48A9DA04FD50E8083969EDB767B0CF6095179A163AB3661A05FBD5FAAAE82918A9962F0B93B855F97993EC975EEAA80D740ADBF4FF747359D041D5C33EA71D281E446B14773BCA97B43A23FB801676BD207A436C6481F1D2B9078717461A5B9D32E688F87748544523B524B0D57D5EA77A2775D2ECFA032CFBDBF52FB3786160279004E57AE6AF874E7303CE53299CCC041C7BC308D82A5698F3A8D0C38271AE35F8E9DBFBB694B5C803D89F7AE435DE236D525F54759B65E372FCD68EF20FA7111F9E4AFF73";

/// Vector 2's private `a` (its A is 255 bytes long, so padded and minimal forms differ).
pub const VECTOR2_A: &str = "3e969c08e0286226efa7160b0bbfe947647f81725a5803600b5b0ce185012d54";

/// The OAuth widget key all clients send.
pub const WIDGET_KEY: &str = "d39ba9916b7251055b22c7f910e2ea796ee65e98b2ddecea8f5dde8d9d1a815d";

fn n() -> BigUint {
    BigUint::parse_bytes(N_HEX.as_bytes(), 16).expect("N")
}

fn h(parts: &[&[u8]]) -> Vec<u8> {
    let mut d = Sha256::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().to_vec()
}

fn pad(x: &BigUint) -> Vec<u8> {
    let b = x.to_bytes_be();
    let mut out = vec![0u8; 256 - b.len()];
    out.extend(b);
    out
}

/// Client side of the SRP exchange.
pub struct SrpClient {
    a: BigUint,
    pub a_pub: BigUint,
}

impl SrpClient {
    /// With a given private value (hex).
    pub fn with_private(hex: &str) -> Self {
        let a = BigUint::parse_bytes(hex.as_bytes(), 16).expect("hex");
        let a_pub = BigUint::from(2u8).modpow(&a, &n());
        SrpClient { a, a_pub }
    }

    /// With a random 32-byte private value.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        Self::with_private(&hex::encode(bytes))
    }

    /// `a` as sent in E1: minimal bytes (py, kei) or padded to 256 bytes (rclone).
    pub fn a_field(&self, padded: bool) -> String {
        if padded {
            B64.encode(pad(&self.a_pub))
        } else {
            B64.encode(self.a_pub.to_bytes_be())
        }
    }

    /// `(m1, m2)` base64 for the E1 answer `init`, in the section-3 form or rclone's padded form.
    pub fn proofs(
        &self,
        user: &str,
        password: &str,
        init: &Value,
        padded: bool,
    ) -> (String, String) {
        let n = n();
        let g = BigUint::from(2u8);
        let salt = B64
            .decode(init["salt"].as_str().expect("salt"))
            .expect("salt b64");
        let b_pub =
            BigUint::from_bytes_be(&B64.decode(init["b"].as_str().expect("b")).expect("b b64"));
        let iterations = init["iteration"].as_u64().expect("iteration") as u32;
        let pw_hash = h(&[password.as_bytes()]);
        let input = match init["protocol"].as_str().expect("protocol") {
            "s2k" => pw_hash,
            "s2k_fo" => hex::encode(pw_hash).into_bytes(),
            other => panic!("unexpected protocol {other}"),
        };
        let mut p = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(&input, &salt, iterations, &mut p);
        let x = BigUint::from_bytes_be(&h(&[&salt, &h(&[b":", &p])]));
        let k = BigUint::from_bytes_be(&h(&[&pad(&n), &pad(&g)]));
        let u = BigUint::from_bytes_be(&h(&[&pad(&self.a_pub), &pad(&b_pub)]));
        let kv = (&k * g.modpow(&x, &n)) % &n;
        let base = ((&b_pub + &n) - kv) % &n;
        let s = base.modpow(&(&self.a + &u * &x), &n);
        let (a_bytes, b_bytes, s_bytes) = if padded {
            (pad(&self.a_pub), pad(&b_pub), pad(&s))
        } else {
            (
                self.a_pub.to_bytes_be(),
                b_pub.to_bytes_be(),
                s.to_bytes_be(),
            )
        };
        let key = h(&[&s_bytes]);
        let hn = h(&[&n.to_bytes_be()]);
        let hg = h(&[&pad(&g)]);
        let xor: Vec<u8> = hn.iter().zip(&hg).map(|(a, b)| a ^ b).collect();
        let m1 = h(&[
            &xor,
            &h(&[user.as_bytes()]),
            &salt,
            &a_bytes,
            &b_bytes,
            &key,
        ]);
        let m2 = h(&[&a_bytes, &m1, &key]);
        (B64.encode(m1), B64.encode(m2))
    }
}

/// Install the TLS crypto provider reqwest needs (it is built without one).
pub fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Start a simulator with a tiny library and few PBKDF2 iterations.
pub async fn start(config: SimConfig) -> Sim {
    crypto();
    Sim::start(SimConfig {
        assets: 5,
        ..config
    })
    .await
    .expect("simulator starts")
}

/// Default configuration for auth tests.
pub fn config() -> SimConfig {
    SimConfig {
        iterations: 1000,
        ..SimConfig::default()
    }
}

/// One answer, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// Body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie` line.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }

    /// Whether the body is declared JSON.
    pub fn is_json(&self) -> bool {
        self.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    }

    /// Names of the cookies set.
    pub fn cookie_names(&self) -> Vec<String> {
        self.set_cookies()
            .iter()
            .filter_map(|c| c.split_once('=').map(|(n, _)| n.to_string()))
            .collect()
    }
}

/// Which client's habits to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// py / kei: minimal SRP encoding, `Origin: {HOME}` on E3/E7/E8/E12, `null` bodies.
    Py,
    /// rclone: padded SRP encoding, lower-cased Apple ID, its extra headers, no idmsa cookies.
    Rclone,
}

/// One client "process": its cookie jar and the idmsa values it captured.
pub struct Client {
    pub http: reqwest::Client,
    /// A client without cookies.
    pub bare: reqwest::Client,
    pub jar: Arc<Jar>,
    pub base: String,
    pub style: Style,
    pub scnt: Option<String>,
    pub session_id: Option<String>,
    pub session_token: Option<String>,
    pub trust_token: Option<String>,
    pub auth_attributes: Option<String>,
    /// rclone's cookie list: merged by name, attributes dropped, quotes stripped (A.6.3).
    pub rclone_cookies: Vec<(String, String)>,
}

impl Client {
    /// A fresh client with an empty cookie jar.
    pub fn new(base: &str, style: Style) -> Self {
        crypto();
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .build()
            .expect("client");
        Client {
            http,
            bare: reqwest::Client::new(),
            jar,
            base: base.to_string(),
            style,
            scnt: None,
            session_id: None,
            session_token: None,
            trust_token: None,
            auth_attributes: None,
            rclone_cookies: Vec::new(),
        }
    }

    /// A new process that resumes with only the values a headless flow hands over.
    pub fn resume(other: &Client) -> Self {
        let mut c = Client::new(&other.base, other.style);
        c.scnt = other.scnt.clone();
        c.session_id = other.session_id.clone();
        c.session_token = other.session_token.clone();
        c.trust_token = other.trust_token.clone();
        c
    }

    fn capture(&mut self, headers: &HeaderMap) {
        let get = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let slots = [
            ("scnt", &mut self.scnt),
            ("x-apple-id-session-id", &mut self.session_id),
            ("x-apple-session-token", &mut self.session_token),
            ("x-apple-twosv-trust-token", &mut self.trust_token),
            ("x-apple-auth-attributes", &mut self.auth_attributes),
        ];
        for (name, slot) in slots {
            if let Some(v) = get(name) {
                *slot = Some(v);
            }
        }
    }

    /// The idmsa header set (section 1.3, or rclone's A.3.2).
    fn idmsa_headers(&self, signin: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        let mut set = |k: &'static str, v: &str| {
            h.insert(k, HeaderValue::from_str(v).expect("header"));
        };
        set("content-type", "application/json");
        set("x-apple-oauth-client-id", WIDGET_KEY);
        set("x-apple-oauth-client-type", "firstPartyAuth");
        set("x-apple-oauth-redirect-uri", "https://www.icloud.com");
        set("x-apple-oauth-require-grant-code", "true");
        set("x-apple-oauth-response-mode", "web_message");
        set("x-apple-oauth-response-type", "code");
        set("x-apple-widget-key", WIDGET_KEY);
        match self.style {
            Style::Py => {
                set("accept", "application/json, text/javascript");
                set(
                    "x-apple-oauth-state",
                    "auth-0f0e0d0c-0b0a-4908-8706-050403020100",
                );
                let origin = if signin {
                    "https://idmsa.apple.com"
                } else {
                    "https://www.icloud.com"
                };
                set("origin", origin);
            }
            Style::Rclone => {
                set("accept", "application/json");
                set(
                    "x-apple-oauth-state",
                    "auth-11111111-2222-4333-8444-555555555555",
                );
                set(
                    "x-apple-frame-id",
                    "auth-11111111-2222-4333-8444-555555555555",
                );
                set("x-requested-with", "XMLHttpRequest");
                set("x-apple-mandate-security-upgrade", "0");
                set("x-apple-i-require-ue", "true");
                set(
                    "x-apple-i-fd-client-info",
                    r#"{"U":"Safari","L":"en-US","Z":"GMT-05:00","V":"1.1","F":""}"#,
                );
                set("origin", "https://idmsa.apple.com");
                if let Some(a) = &self.auth_attributes {
                    set("x-apple-auth-attributes", a);
                }
            }
        }
        if let Some(s) = &self.scnt {
            set("scnt", s);
        }
        if let Some(s) = &self.session_id {
            set("x-apple-id-session-id", s);
        }
        h
    }

    /// Send a request and capture the idmsa headers of the answer (as the clients do).
    pub async fn send(&mut self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request reaches the simulator");
        let status = resp.status();
        let headers = resp.headers().clone();
        self.capture(&headers);
        if self.style == Style::Rclone {
            for line in headers
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
            {
                let first = line.split(';').next().unwrap_or_default();
                if let Some((name, value)) = first.split_once('=') {
                    let value = value.trim_matches('"').to_string();
                    self.rclone_cookies.retain(|(n, _)| n != name);
                    if !value.is_empty() {
                        self.rclone_cookies.push((name.to_string(), value));
                    }
                }
            }
        }
        let body = resp.text().await.expect("body");
        Reply {
            status,
            headers,
            body,
        }
    }

    /// An idmsa call with the header set; `signin` selects the E1/E2 Origin override.
    pub async fn idmsa(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
        signin: bool,
    ) -> Reply {
        let url = format!("{}/appleauth/auth{path}", self.base);
        // rclone sends no cookies to idmsa.
        let http = if self.style == Style::Rclone {
            &self.bare
        } else {
            &self.http
        };
        let mut req = http
            .request(method, url)
            .headers(self.idmsa_headers(signin));
        if let Some(b) = body {
            req = req.body(b);
        }
        self.send(req).await
    }

    /// E8: submit a trusted-device code.
    pub async fn submit_device_code(&mut self, code: &str) -> Reply {
        let body = json!({"securityCode": {"code": code}}).to_string();
        self.idmsa(
            Method::POST,
            "/verify/trusteddevice/securitycode",
            Some(body),
            false,
        )
        .await
    }

    /// E12: ask for a trust token; the status of the reply.
    pub async fn trust(&mut self) -> StatusCode {
        self.idmsa(Method::GET, "/2sv/trust", None, false)
            .await
            .status
    }

    /// E1: returns the reply and the SRP client used.
    pub async fn signin_init(&mut self, user: &str, srp: &SrpClient) -> Reply {
        let padded = self.style == Style::Rclone;
        let body =
            json!({"a": srp.a_field(padded), "accountName": user, "protocols": ["s2k", "s2k_fo"]});
        self.idmsa(Method::POST, "/signin/init", Some(body.to_string()), true)
            .await
    }

    /// E1 + E2 with `trustTokens` = the saved trust token (if any); returns the E2 reply.
    pub async fn signin(&mut self, user: &str, password: &str) -> Reply {
        self.signin_with(user, password, &SrpClient::random()).await
    }

    /// E1 + E2 with a chosen SRP client.
    pub async fn signin_with(&mut self, user: &str, password: &str, srp: &SrpClient) -> Reply {
        self.signin_steps(user, password, srp).await.1
    }

    /// E1 + E2, returning both answers.
    pub async fn signin_steps(
        &mut self,
        user: &str,
        password: &str,
        srp: &SrpClient,
    ) -> (Reply, Reply) {
        let user = match self.style {
            Style::Rclone => user.to_lowercase(),
            Style::Py => user.to_string(),
        };
        let init_reply = self.signin_init(&user, srp).await;
        assert_eq!(
            init_reply.status,
            StatusCode::OK,
            "signin/init: {}",
            init_reply.body
        );
        let init = init_reply.json();
        let (m1, m2) = srp.proofs(&user, password, &init, self.style == Style::Rclone);
        let trust: Vec<&str> = self.trust_token.iter().map(String::as_str).collect();
        let body = json!({"accountName": user, "c": init["c"], "m1": m1, "m2": m2, "rememberMe": true, "trustTokens": trust});
        let complete = self
            .idmsa(
                Method::POST,
                "/signin/complete?isRememberMeEnabled=true",
                Some(body.to_string()),
                true,
            )
            .await;
        (init_reply, complete)
    }

    /// E5 `accountLogin` with the saved session token and trust token.
    pub async fn account_login(&mut self) -> Reply {
        let body = json!({
            "accountCountryCode": "USA",
            "dsWebAuthToken": self.session_token.clone().unwrap_or_default(),
            "extended_login": true,
            "trustToken": self.trust_token.clone().unwrap_or_default(),
        });
        let url = format!("{}/setup/ws/1/accountLogin", self.base);
        // rclone sends no cookies with E5.
        let http = if self.style == Style::Rclone {
            &self.bare
        } else {
            &self.http
        };
        let req = http.post(url);
        self.send(
            req.header("origin", "https://www.icloud.com")
                .body(body.to_string()),
        )
        .await
    }

    /// E6 `validate` with the jar's cookies; body `null` (py, kei) or empty (rclone).
    pub async fn validate(&mut self) -> Reply {
        let url = format!("{}/setup/ws/1/validate", self.base);
        let req = match self.style {
            Style::Py => self.http.post(url).body("null"),
            Style::Rclone => self
                .bare
                .post(url)
                .header("cookie", self.rclone_cookie_header())
                .header("content-length", "0"),
        };
        self.send(req.header("origin", "https://www.icloud.com"))
            .await
    }

    /// E19 `requestPCS` as rclone sends it.
    pub async fn request_pcs(&mut self, app: &str) -> Reply {
        let url = format!("{}/setup/ws/1/requestPCS", self.base);
        let body = json!({"appName": app, "derivedFromUserAction": true});
        let req = self
            .bare
            .post(url)
            .header("content-type", "application/json")
            .header("origin", "https://www.icloud.com")
            .header("cookie", self.rclone_cookie_header())
            .body(body.to_string());
        self.send(req).await
    }

    /// rclone's `Cookie` header: every stored cookie, unquoted.
    pub fn rclone_cookie_header(&self) -> String {
        self.rclone_cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The `Cookie` header the jar would send to the simulator.
    pub fn cookie_header(&self) -> String {
        let url = reqwest::Url::parse(&self.base).expect("url");
        self.jar
            .cookies(&url)
            .and_then(|v| v.to_str().ok().map(str::to_string))
            .unwrap_or_default()
    }

    /// Headers of a CloudKit call carrying the jar's cookies.
    pub fn cloudkit_headers(&self) -> axum::http::HeaderMap {
        let cookies = match self.style {
            Style::Py => self.cookie_header(),
            Style::Rclone => self.rclone_cookie_header(),
        };
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            axum::http::HeaderValue::from_str(&cookies).expect("cookie header"),
        );
        h
    }

    /// Idmsa context headers only, as `AuthState::codes_sent` reads them.
    pub fn context_headers(&self) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        if let Some(s) = &self.scnt {
            h.insert("scnt", axum::http::HeaderValue::from_str(s).expect("scnt"));
        }
        if let Some(s) = &self.session_id {
            h.insert(
                "x-apple-id-session-id",
                axum::http::HeaderValue::from_str(s).expect("id"),
            );
        }
        h
    }
}

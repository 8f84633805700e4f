//! Shared helpers of the auth tests: a replay server for recorded Apple exchanges, a scripted
//! prompter, fast retry settings, and a scan of files for a secret.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use icloudpd_rs::auth::{
    AuthOptions, Domain, Endpoints, Password, PasswordSources, Prompter, RetryPolicy, TrustedPhone,
};

/// Where the recorded exchanges are: `$ICLOUDPD_CASSETTES`, else `shared/fixtures/cassettes`
/// beside the checkout (or two levels up, for a worktree), else the shared fixtures.
pub fn cassette_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates: Vec<PathBuf> = std::env::var_os("ICLOUDPD_CASSETTES")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            manifest.join("../shared/fixtures/cassettes"),
            manifest.join("../../shared/fixtures/cassettes"),
            PathBuf::from("/work/shared/fixtures/cassettes"),
        ])
        .collect();
    candidates
        .iter()
        .find(|dir| dir.join("auth_non_2fa.yml").is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!("recorded cassettes not found in {candidates:?} (set ICLOUDPD_CASSETTES)")
        })
}

/// One recorded exchange, as served.
#[derive(Debug, Clone)]
pub struct Interaction {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The recorded request body (stale relative to current clients; informative only).
    pub request_body: Option<String>,
}

/// A request the replay server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Drop YAML tags (`!!python/unicode`, `!!binary`), remembering whether a scalar was binary.
fn untag(v: &serde_yaml::Value) -> (serde_yaml::Value, bool) {
    match v {
        serde_yaml::Value::Tagged(t) => {
            let binary = t.tag == "binary" || t.tag.to_string().ends_with("binary");
            (untag(&t.value).0, binary)
        }
        other => (other.clone(), false),
    }
}

fn scalar(v: &serde_yaml::Value) -> Option<String> {
    match untag(v).0 {
        serde_yaml::Value::String(s) => Some(s),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Read the interactions of a cassette.
pub fn load_cassette(name: &str) -> Vec<Interaction> {
    let path = cassette_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let list = doc["interactions"]
        .as_sequence()
        .expect("interactions list")
        .clone();
    list.iter()
        .map(|i| {
            let req = &i["request"];
            let resp = &i["response"];
            let uri = scalar(&req["uri"]).expect("uri");
            let url = reqwest::Url::parse(&uri).expect("recorded uri");
            let (body_v, _) = untag(&resp["body"]);
            let (string_v, binary) = untag(&body_v["string"]);
            let body = match string_v {
                serde_yaml::Value::String(s) if binary => base64::engine::general_purpose::STANDARD
                    .decode(s.split_whitespace().collect::<String>())
                    .expect("binary body"),
                serde_yaml::Value::String(s) => s.into_bytes(),
                _ => Vec::new(),
            };
            let mut headers = Vec::new();
            if let serde_yaml::Value::Mapping(m) = untag(&resp["headers"]).0 {
                for (k, v) in m {
                    let name = scalar(&k).expect("header name");
                    match untag(&v).0 {
                        serde_yaml::Value::Sequence(vals) => {
                            for val in vals {
                                headers.push((name.clone(), scalar(&val).unwrap_or_default()));
                            }
                        }
                        other => headers.push((name.clone(), scalar(&other).unwrap_or_default())),
                    }
                }
            }
            Interaction {
                method: scalar(&req["method"]).expect("method"),
                path: url.path().to_string(),
                status: resp["status"]["code"].as_u64().expect("status") as u16,
                headers,
                body,
                request_body: scalar(&req["body"]),
            }
        })
        .collect()
}

/// Rewrite a recorded Set-Cookie for a plain-HTTP loopback server: no Domain, no Secure.
fn localize_cookie(value: &str) -> String {
    value
        .split(';')
        .map(str::trim)
        .filter(|part| {
            let lower = part.to_ascii_lowercase();
            !lower.starts_with("domain=") && lower != "secure"
        })
        .collect::<Vec<_>>()
        .join("; ")
}

struct ReplayState {
    /// Interactions per "METHOD path", served in order; the last one repeats.
    script: HashMap<String, Vec<Interaction>>,
    served: HashMap<String, usize>,
    received: Vec<Received>,
}

/// A server answering like a cassette: matched on method + path only.
#[derive(Clone)]
pub struct Replay {
    state: Arc<Mutex<ReplayState>>,
    pub endpoint: String,
}

impl Replay {
    /// Serve `interactions` (plus `extra`, e.g. synthetic answers for calls not recorded).
    pub async fn start(interactions: Vec<Interaction>) -> Replay {
        let mut script: HashMap<String, Vec<Interaction>> = HashMap::new();
        for i in interactions {
            script
                .entry(format!("{} {}", i.method, i.path))
                .or_default()
                .push(i);
        }
        let state = Arc::new(Mutex::new(ReplayState {
            script,
            served: HashMap::new(),
            received: Vec::new(),
        }));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Replay {
            state,
            endpoint: format!("http://{addr}"),
        }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("replay state").received.clone()
    }

    /// "METHOD path" of everything received, in order.
    pub fn calls(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Received requests for one "METHOD path".
    pub fn requests(&self, key: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| format!("{} {}", r.method, r.path) == key)
            .collect()
    }
}

async fn answer(State(state): State<Arc<Mutex<ReplayState>>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default()
        .to_vec();
    let key = format!("{} {}", parts.method, parts.uri.path());
    let mut st = state.lock().expect("replay state");
    st.received.push(Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers.clone(),
        body,
    });
    let Some(list) = st.script.get(&key).cloned() else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from(format!("not recorded: {key}")))
            .expect("response");
    };
    let n = st.served.entry(key).or_insert(0);
    let interaction = list[(*n).min(list.len() - 1)].clone();
    *n += 1;
    let mut builder = Response::builder().status(interaction.status);
    for (name, value) in &interaction.headers {
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "content-length" | "transfer-encoding" | "connection" | "content-encoding" | "vary"
        ) {
            continue;
        }
        let value = if lower == "set-cookie" {
            localize_cookie(value)
        } else {
            value.clone()
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(&value),
        ) {
            builder = builder.header(n, v);
        }
    }
    builder
        .body(Body::from(interaction.body))
        .expect("response")
}

/// A synthetic answer (for an exchange no cassette recorded).
pub fn synthetic(method: &str, path: &str, status: u16, body: &str) -> Interaction {
    Interaction {
        method: method.into(),
        path: path.into(),
        status,
        headers: vec![(
            "Content-Type".into(),
            "application/json;charset=UTF-8".into(),
        )],
        body: body.as_bytes().to_vec(),
        request_body: None,
    }
}

/// Retries fast enough for tests (the policy, not its timing, is what they check).
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        max_retry_after: Duration::from_millis(50),
    }
}

/// Options against `endpoint` with a literal password.
pub fn options(endpoint: &str, username: &str, password: &str, data_dir: &Path) -> AuthOptions {
    let mut opts = AuthOptions::new(
        username,
        PasswordSources::literal(password),
        data_dir.to_path_buf(),
    );
    opts.endpoints = Endpoints::custom(endpoint, Domain::Com).expect("endpoint");
    opts.retry = fast_retry();
    opts.lock_wait = Duration::from_secs(2);
    opts
}

/// A prompter answering from a script; `None` once it runs out (nobody at the keyboard).
#[derive(Default)]
pub struct ScriptedPrompter {
    pub codes: VecDeque<String>,
    pub password: Option<String>,
    pub phone_choice: Option<usize>,
    pub prompts: Vec<String>,
    pub notices: Vec<String>,
}

impl ScriptedPrompter {
    pub fn with_codes(codes: &[&str]) -> Self {
        ScriptedPrompter {
            codes: codes.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        }
    }
}

impl Prompter for ScriptedPrompter {
    fn code(&mut self, prompt: &str) -> std::io::Result<Option<String>> {
        self.prompts.push(prompt.to_string());
        Ok(self.codes.pop_front())
    }
    fn password(&mut self, prompt: &str) -> std::io::Result<Option<Password>> {
        self.prompts.push(prompt.to_string());
        Ok(self.password.take().map(Password::new))
    }
    fn choose_phone(&mut self, _phones: &[TrustedPhone]) -> std::io::Result<Option<usize>> {
        Ok(self.phone_choice)
    }
    fn notice(&mut self, message: &str) {
        self.notices.push(message.to_string());
    }
}

/// Every file under `dir` whose bytes contain `secret`.
pub fn files_containing(dir: &Path, secret: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(secret.len()).any(|w| w == secret.as_bytes())
            {
                found.push(p);
            }
        }
    }
    found
}

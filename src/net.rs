//! The HTTP client every client-side module uses: rustls with the ring provider, trust roots
//! from the system store (honouring `SSL_CERT_FILE` / `SSL_CERT_DIR`), bounded connect and read
//! times, a modest connection pool, and a cookie jar that can be saved and loaded.
//!
//! Why our own root loading: `rustls-native-certs` drops the system store entirely as soon as
//! either variable is set, and reads `SSL_CERT_DIR` as the only directory. OpenSSL (and so curl
//! and the Python tools users compare us with) treats the two independently: `SSL_CERT_FILE`
//! replaces only the default bundle file and `SSL_CERT_DIR` (a colon-separated list) only the
//! default directories. We follow OpenSSL, so pointing `SSL_CERT_FILE` at a private CA keeps the
//! public roots of `/etc/ssl/certs` working.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Our own User-Agent, for requests where the protocol does not dictate one.
pub const USER_AGENT: &str = concat!("icloudpd-rs/", env!("CARGO_PKG_VERSION"));

/// Time allowed to establish a TCP + TLS connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for any single read (headers or a body chunk) before the request fails.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per host; enough for parallel downloads from one CDN host.
const POOL_MAX_IDLE_PER_HOST: usize = 16;
/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// Why an HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(
        "no trusted root certificates found (install your distribution's ca-certificates \
         package, or point SSL_CERT_FILE / SSL_CERT_DIR at PEM certificates)"
    )]
    NoRootCertificates,
    #[error("cannot read certificate file {path}: {detail}")]
    Certificate { path: PathBuf, detail: String },
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// How to build a client.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub connect_timeout: Duration,
    /// Per-read timeout: a stalled peer fails the request after this long without bytes.
    pub read_timeout: Duration,
    pub user_agent: String,
    /// Headers sent on every request unless the request sets its own value.
    pub default_headers: HeaderMap,
    /// PEM files whose certificates are trusted in addition to the system roots.
    pub extra_root_files: Vec<PathBuf>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            user_agent: USER_AGENT.to_string(),
            default_headers: HeaderMap::new(),
            extra_root_files: Vec::new(),
        }
    }
}

/// Build a client; with `cookies`, every request sends and every response updates that jar.
pub fn build_client(
    config: &NetConfig,
    cookies: Option<Arc<CookieJar>>,
) -> Result<reqwest::Client, NetError> {
    let tls = tls_config(&config.extra_root_files)?;
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(config.user_agent.clone())
        .default_headers(config.default_headers.clone())
        .connect_timeout(config.connect_timeout)
        .read_timeout(config.read_timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .tcp_keepalive(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS));
    if let Some(jar) = cookies {
        builder = builder.cookie_provider(jar);
    }
    Ok(builder.build()?)
}

/// A rustls client configuration (ring provider) trusting the system roots plus `extra_root_files`.
pub fn tls_config(extra_root_files: &[PathBuf]) -> Result<rustls::ClientConfig, NetError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in system_roots() {
        // A malformed system certificate is skipped, as OpenSSL does.
        let _ = roots.add(cert.clone());
    }
    for path in extra_root_files {
        let certs = read_pem_certificates(path)?;
        for cert in certs {
            roots.add(cert).map_err(|e| NetError::Certificate {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(NetError::NoRootCertificates);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let err = |detail: String| NetError::Certificate {
        path: path.to_path_buf(),
        detail,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// Where trust roots are read from, OpenSSL style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootSources {
    /// `SSL_CERT_FILE` if set, else the distribution's bundle file.
    pub file: Option<PathBuf>,
    /// `SSL_CERT_DIR` entries if set, else the distribution's certificate directories.
    pub dirs: Vec<PathBuf>,
}

impl RootSources {
    /// Resolve from the two variables' values (`None` or empty = unset).
    pub fn resolve(
        ssl_cert_file: Option<&std::ffi::OsStr>,
        ssl_cert_dir: Option<&std::ffi::OsStr>,
    ) -> Self {
        let file = match ssl_cert_file.filter(|v| !v.is_empty()) {
            Some(f) => Some(PathBuf::from(f)),
            // Without the variable, probe() names the distribution's bundle file.
            None => openssl_probe::probe().cert_file,
        };
        let dirs = match ssl_cert_dir.filter(|v| !v.is_empty()) {
            Some(list) => std::env::split_paths(list)
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
            None => openssl_probe::candidate_cert_dirs()
                .map(Path::to_path_buf)
                .collect(),
        };
        RootSources { file, dirs }
    }

    /// Resolve from this process's environment.
    pub fn from_env() -> Self {
        let file = std::env::var_os("SSL_CERT_FILE");
        let dir = std::env::var_os("SSL_CERT_DIR");
        Self::resolve(file.as_deref(), dir.as_deref())
    }

    /// Load every certificate; unreadable sources are logged and skipped.
    pub fn load(&self) -> Vec<CertificateDer<'static>> {
        let mut certs = Vec::new();
        let mut add = |result: rustls_native_certs::CertificateResult, what: &Path| {
            for e in &result.errors {
                tracing::warn!(source = %what.display(), error = %e, "cannot load trust roots");
            }
            certs.extend(result.certs);
        };
        if let Some(file) = &self.file {
            add(
                rustls_native_certs::load_certs_from_paths(Some(file), None),
                file,
            );
        }
        for dir in &self.dirs {
            add(
                rustls_native_certs::load_certs_from_paths(None, Some(dir)),
                dir,
            );
        }
        certs.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
        certs.dedup();
        certs
    }
}

/// The system's trust roots, loaded once per process (parsing them is not free).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let sources = RootSources::from_env();
        let certs = sources.load();
        tracing::debug!(count = certs.len(), ?sources, "trust roots loaded");
        certs
    })
}

/// A cookie jar shared by a client and whoever saves it: RFC 6265 matching from `cookie_store`,
/// with JSON persistence of every unexpired cookie (session cookies included, because a
/// half-finished sign-in continues in another process).
#[derive(Debug, Default)]
pub struct CookieJar {
    store: RwLock<cookie_store::CookieStore>,
}

/// A saved cookie file could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid cookie data: {0}")]
pub struct CookieFormatError(String);

impl CookieJar {
    /// An empty jar.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serialize the unexpired cookies as a JSON array.
    pub fn to_json(&self) -> String {
        let store = self.store.read().unwrap_or_else(|e| e.into_inner());
        let cookies: Vec<&cookie_store::Cookie<'static>> = store.iter_unexpired().collect();
        serde_json::to_string_pretty(&cookies).unwrap_or_else(|_| "[]".to_string())
    }

    /// Load a jar saved by [`CookieJar::to_json`], dropping cookies that expired since.
    pub fn from_json(json: &str) -> Result<Self, CookieFormatError> {
        let cookies: Vec<cookie_store::Cookie<'static>> =
            serde_json::from_str(json).map_err(|e| CookieFormatError(e.to_string()))?;
        let store = cookie_store::CookieStore::from_cookies(
            cookies.into_iter().map(Ok::<_, std::convert::Infallible>),
            false,
        )
        .unwrap_or_else(|never| match never {});
        Ok(CookieJar {
            store: RwLock::new(store),
        })
    }

    /// Replace this jar's content with another's.
    pub fn replace_with(&self, other: CookieJar) {
        let new = other.store.into_inner().unwrap_or_else(|e| e.into_inner());
        *self.store.write().unwrap_or_else(|e| e.into_inner()) = new;
    }

    /// Remove every cookie.
    pub fn clear(&self) {
        self.store
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Names of the unexpired cookies, sorted (for diagnostics and tests; values stay private).
    pub fn names(&self) -> Vec<String> {
        let store = self.store.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = store
            .iter_unexpired()
            .map(|c| c.name().to_string())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Latest expiry among unexpired cookies whose name starts with `prefix`.
    pub fn expiry_of(&self, prefix: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let store = self.store.read().unwrap_or_else(|e| e.into_inner());
        store
            .iter_unexpired()
            .filter(|c| c.name().starts_with(prefix))
            .filter_map(|c| match c.expires {
                cookie_store::CookieExpiration::AtUtc(t) => {
                    chrono::DateTime::from_timestamp(t.unix_timestamp(), 0)
                }
                cookie_store::CookieExpiration::SessionEnd => None,
            })
            .max()
    }
}

impl reqwest::cookie::CookieStore for CookieJar {
    fn set_cookies(
        &self,
        cookie_headers: &mut dyn Iterator<Item = &HeaderValue>,
        url: &reqwest::Url,
    ) {
        let cookies = cookie_headers
            .filter_map(|v| v.to_str().ok())
            .filter_map(|s| cookie_store::RawCookie::parse(s.to_owned()).ok())
            .collect::<Vec<_>>();
        let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
        store.store_response_cookies(cookies.into_iter(), url);
    }

    fn cookies(&self, url: &reqwest::Url) -> Option<HeaderValue> {
        let store = self.store.read().unwrap_or_else(|e| e.into_inner());
        let header = store
            .get_request_values(url)
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        if header.is_empty() {
            return None;
        }
        HeaderValue::from_str(&header).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::cookie::CookieStore as _;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).expect("test url")
    }

    #[test]
    fn jar_round_trips_session_and_persistent_cookies_but_not_expired_ones() {
        let jar = CookieJar::new();
        let headers = [
            HeaderValue::from_static("A=\"v=1:x\"; Path=/"),
            HeaderValue::from_static("C=3; Path=/; Max-Age=86400"),
            HeaderValue::from_static("D=4; Path=/; Expires=Thu, 01 Jan 2015 00:00:00 GMT"),
        ];
        jar.set_cookies(
            &mut headers.iter(),
            &url("http://127.0.0.1:9/setup/ws/1/accountLogin"),
        );
        let names = jar.names();
        assert!(names.contains(&"A".to_string()), "{names:?}");
        assert!(names.contains(&"C".to_string()), "{names:?}");
        assert!(
            !names.contains(&"D".to_string()),
            "expired cookie kept: {names:?}"
        );

        let restored = CookieJar::from_json(&jar.to_json()).expect("parse saved jar");
        assert_eq!(restored.names(), names);
        let sent = restored
            .cookies(&url("http://127.0.0.1:9/database/1/x"))
            .expect("cookies for the same host");
        let sent = sent.to_str().expect("ascii");
        assert!(sent.contains("A=\"v=1:x\""), "{sent}");
        assert!(sent.contains("C=3"), "{sent}");
        assert!(
            restored.cookies(&url("http://127.0.0.2:9/")).is_none(),
            "cookie leaked to another host"
        );
        assert!(restored.expiry_of("C").is_some());
        assert!(
            restored.expiry_of("A").is_none(),
            "session cookie has no expiry"
        );
    }

    #[test]
    fn malformed_cookie_file_is_an_error_not_a_panic() {
        assert!(CookieJar::from_json("{not json").is_err());
        assert!(CookieJar::from_json("[{\"raw_cookie\": 5}]").is_err());
    }

    #[test]
    fn root_sources_follow_openssl_rules() {
        use std::ffi::OsStr;
        let both =
            RootSources::resolve(Some(OsStr::new("/x/ca.pem")), Some(OsStr::new("/d1:/d2::")));
        assert_eq!(both.file, Some(PathBuf::from("/x/ca.pem")));
        assert_eq!(both.dirs, vec![PathBuf::from("/d1"), PathBuf::from("/d2")]);

        // A file alone replaces only the bundle: the system directories stay.
        let file_only = RootSources::resolve(Some(OsStr::new("/x/ca.pem")), None);
        assert_eq!(file_only.file, Some(PathBuf::from("/x/ca.pem")));
        let system_dirs: Vec<PathBuf> = openssl_probe::candidate_cert_dirs()
            .map(Path::to_path_buf)
            .collect();
        assert_eq!(file_only.dirs, system_dirs);

        // Empty values count as unset.
        let empty = RootSources::resolve(Some(OsStr::new("")), Some(OsStr::new("")));
        assert_eq!(empty.dirs, system_dirs);
        assert_ne!(empty.file, Some(PathBuf::new()));
    }

    #[test]
    fn extra_root_file_must_hold_certificates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        match tls_config(std::slice::from_ref(&path)) {
            Err(NetError::Certificate { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected a certificate error, got {other:?}"),
        }
    }
}

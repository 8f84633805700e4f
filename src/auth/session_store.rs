//! The saved session of one account (icloud-auth.md section 4): a directory under the data dir
//! named from the Apple ID, holding `session.json` (ids, tokens, trust, account subset),
//! `cookies.json` (the web cookies) and `auth.lock`.
//!
//! Files are mode 0600 in a 0700 directory and are replaced atomically (temp file, fsync,
//! rename), so a crash or `kill -9` leaves either the old or the new file. An exclusive `flock`
//! on `auth.lock` makes sign-ins of two processes take turns; the second waits a little, then
//! gives up with a clear message.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::account::AccountInfo;
use super::error::AuthError;
use crate::net::CookieJar;

/// How long Apple honours a trust token: "currently two months" per the py documentation; the
/// 60-day cookie lifetimes recorded agree. An estimate, reported as such.
pub const TRUST_LIFETIME_ESTIMATE: chrono::TimeDelta = chrono::TimeDelta::days(60);
/// Version of the session file format.
const SESSION_FORMAT: u32 = 1;
/// Longest Apple ID kept readable in a directory name; longer ones get a hash suffix.
const MAX_DIR_NAME: usize = 64;

const SESSION_FILE: &str = "session.json";
const COOKIE_FILE: &str = "cookies.json";
const LOCK_FILE: &str = "auth.lock";

/// The Apple IDs with a saved session under `data_dir`, sorted (for commands given no `-u`).
/// A session file in the folder of another Apple ID (copied or moved there) is ignored, as
/// signing in as that account would ignore it.
pub fn saved_accounts(data_dir: &Path) -> Vec<String> {
    #[derive(Deserialize)]
    struct Who {
        username: String,
    }
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let path = e.path().join(SESSION_FILE);
            let who: Who = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            if who.username.trim().is_empty() {
                return None;
            }
            if e.file_name() != account_dir_name(&who.username).as_str() {
                tracing::warn!(path = %path.display(), username = %who.username, "saved session belongs to another Apple ID; ignoring it");
                return None;
            }
            Some(who.username)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Which second factor a pending headless sign-in waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingMethod {
    /// A code shown on a trusted Apple device.
    TrustedDevice,
    /// A code sent by SMS to a trusted phone number.
    Sms { phone_id: u64 },
}

/// A code was requested (`login --request-code`) and not yet submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCode {
    pub method: PendingMethod,
    #[serde(with = "rfc3339")]
    pub requested_at: DateTime<Utc>,
}

/// The persisted state of a session. Debug output hides token values.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionData {
    pub format: u32,
    pub username: String,
    /// `auth-<uuid>`, generated once per account and reused.
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scnt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_eligible: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple_rscd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple_ercd: Option<String>,
    /// When the current trust token was issued (second factor completed).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub trust_established_at: Option<DateTime<Utc>>,
    /// Last time Apple accepted this session (accountLogin or validate).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub validated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingCode>,
    /// Origin of the sign-in service the session's tokens came from (`{AUTH_ROOT}`); absent in
    /// files written before it was recorded, which came from Apple.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_root: Option<String>,
}

impl std::fmt::Debug for SessionData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let present = |o: &Option<String>| if o.is_some() { "<set>" } else { "<none>" };
        f.debug_struct("SessionData")
            .field("username", &self.username)
            .field("client_id", &self.client_id)
            .field("scnt", &present(&self.scnt))
            .field("session_id", &present(&self.session_id))
            .field("session_token", &present(&self.session_token))
            .field("trust_token", &present(&self.trust_token))
            .field("account_country", &self.account_country)
            .field("trust_established_at", &self.trust_established_at)
            .field("validated_at", &self.validated_at)
            .field("account", &self.account)
            .field("pending", &self.pending)
            .finish()
    }
}

impl SessionData {
    /// A fresh session with a new client id.
    pub fn new(username: &str) -> Self {
        SessionData {
            format: SESSION_FORMAT,
            username: username.to_string(),
            client_id: format!("auth-{}", uuid::Uuid::new_v4()),
            ..Default::default()
        }
    }

    /// Forget everything that identifies the web session, keeping the client id and the trust
    /// token (what spares a second factor on the next SRP sign-in).
    pub fn forget_web_session(&mut self) {
        self.scnt = None;
        self.session_id = None;
        self.session_token = None;
        self.validated_at = None;
        self.pending = None;
    }
}

/// What `status` prints about a saved session, read without network access.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionSummary {
    pub username: String,
    /// A session was saved and Apple last accepted it without asking for a second factor.
    pub signed_in: bool,
    /// A trust token is saved: new sign-ins skip the second factor while Apple honours it.
    pub trusted: bool,
    pub trust_established_at: Option<DateTime<Utc>>,
    /// `trust_established_at` + about two months (Apple does not say exactly).
    pub trust_expires_estimate: Option<DateTime<Utc>>,
    pub last_validated_at: Option<DateTime<Utc>>,
    /// `login --request-code` ran and its code was not submitted yet.
    pub code_pending: bool,
    /// The account uses two-factor authentication (`None`: not known, never signed in).
    pub two_factor: Option<bool>,
    /// Advanced Data Protection is on: Apple refuses web access to the photos.
    pub advanced_data_protection: bool,
}

impl SessionSummary {
    /// Summarise saved session data.
    pub fn from_data(data: &SessionData) -> Self {
        let trusted = data.trust_token.as_deref().is_some_and(|t| !t.is_empty());
        let adp = data.account.as_ref().is_some_and(|a| a.adp_enabled);
        let signed_in = data.session_token.is_some()
            && !adp
            && data
                .account
                .as_ref()
                .is_some_and(|a| !a.needs_two_factor() && !a.needs_two_step());
        SessionSummary {
            username: data.username.clone(),
            signed_in,
            trusted,
            trust_established_at: data.trust_established_at,
            trust_expires_estimate: data
                .trust_established_at
                .map(|t| t + TRUST_LIFETIME_ESTIMATE),
            last_validated_at: data.validated_at,
            code_pending: data.pending.is_some(),
            two_factor: data.account.as_ref().map(|a| a.hsa_version == 2),
            advanced_data_protection: adp,
        }
    }

    /// Days left of the estimated trust (negative once past), if known.
    pub fn trust_days_left(&self, now: DateTime<Utc>) -> Option<i64> {
        self.trust_expires_estimate.map(|t| (t - now).num_days())
    }
}

/// Timestamps as RFC 3339 text (chrono is built without its serde feature).
mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.to_utc())
            .map_err(serde::de::Error::custom)
    }
}

/// [`rfc3339`] for optional timestamps.
mod rfc3339_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.to_utc())
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

/// `$XDG_DATA_HOME/icloudpd-rs`, else `~/.local/share/icloudpd-rs`.
pub fn default_data_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base =
        xdg.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(base.join("icloudpd-rs"))
}

/// Directory name for an Apple ID: lower-cased (Apple IDs are case-insensitive). An ID made
/// only of `[a-z0-9._@+-]`, not starting with a dot, is used as is; otherwise (or when too
/// long) the offending characters become `_` and a hash of the whole ID is appended, so that
/// distinct IDs never share a directory.
pub fn account_dir_name(username: &str) -> String {
    let lower = username.trim().to_lowercase();
    let mut name: String = lower
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' | '_' | '@' | '+' | '-' => c,
            _ => '_',
        })
        .collect();
    if name.starts_with('.') || name.is_empty() {
        name.insert(0, '_');
    }
    if name.len() > MAX_DIR_NAME || name != lower {
        let hash = fnv1a64(lower.as_bytes());
        let keep: String = name.chars().take(MAX_DIR_NAME - 17).collect();
        name = format!("{keep}_{hash:016x}");
    }
    name
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The session files of one account.
#[derive(Debug, Clone)]
pub struct AccountStore {
    dir: PathBuf,
    username: String,
}

/// The exclusive sign-in lock of one account, released when dropped.
#[derive(Debug)]
pub struct AccountLock {
    _file: File,
}

impl AccountStore {
    /// The store of `username` under `data_dir`.
    pub fn new(data_dir: &Path, username: &str) -> Self {
        AccountStore {
            dir: data_dir.join(account_dir_name(username)),
            username: username.to_string(),
        }
    }

    /// The account's directory (the catalog lives here too).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn storage_error(&self, path: &Path, e: impl std::fmt::Display) -> AuthError {
        AuthError::Storage {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }
    }

    /// Create the directory (mode 0700) if needed and tighten its mode if it is looser.
    pub fn ensure_dir(&self) -> Result<(), AuthError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| self.storage_error(&self.dir, e))?;
        let meta = std::fs::metadata(&self.dir).map_err(|e| self.storage_error(&self.dir, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| self.storage_error(&self.dir, e))?;
        }
        Ok(())
    }

    /// Take the account's sign-in lock, waiting up to `wait` for another process to finish.
    pub async fn lock(&self, wait: Duration) -> Result<AccountLock, AuthError> {
        self.ensure_dir()?;
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| self.storage_error(&path, e))?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // SAFETY: flock on a descriptor we own; it is released when the file is closed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(AccountLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(self.storage_error(&path, err));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AuthError::SessionBusy {
                    username: self.username.clone(),
                    path,
                });
            }
            tracing::debug!(path = %path.display(), "session lock held by another process; waiting");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The saved session, if any. An unreadable or foreign file is logged and ignored: a fresh
    /// sign-in is better than being stuck.
    pub fn load_session(&self) -> Result<Option<SessionData>, AuthError> {
        let path = self.dir.join(SESSION_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.storage_error(&path, e)),
        };
        match serde_json::from_str::<SessionData>(&text) {
            Ok(data)
                if data.username.eq_ignore_ascii_case(&self.username)
                    && !data.client_id.is_empty() =>
            {
                Ok(Some(data))
            }
            Ok(_) => {
                tracing::warn!(path = %path.display(), "saved session belongs to another Apple ID; ignoring it");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "saved session is unreadable; ignoring it");
                Ok(None)
            }
        }
    }

    /// Save the session atomically.
    pub fn save_session(&self, data: &SessionData) -> Result<(), AuthError> {
        let json = serde_json::to_vec_pretty(data).map_err(|e| self.storage_error(&self.dir, e))?;
        self.write_atomically(SESSION_FILE, &json)
    }

    /// The saved cookies (an empty jar if none or unreadable).
    pub fn load_cookies(&self) -> Result<CookieJar, AuthError> {
        let path = self.dir.join(COOKIE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(CookieJar::from_json(&text).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "saved cookies are unreadable; ignoring them");
                CookieJar::new()
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CookieJar::new()),
            Err(e) => Err(self.storage_error(&path, e)),
        }
    }

    /// Save the cookies atomically.
    pub fn save_cookies(&self, jar: &CookieJar) -> Result<(), AuthError> {
        self.write_atomically(COOKIE_FILE, jar.to_json().as_bytes())
    }

    /// Delete the saved session and cookies (keeps the directory and anything else in it).
    pub fn remove(&self) -> Result<(), AuthError> {
        for name in [SESSION_FILE, COOKIE_FILE] {
            let path = self.dir.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.storage_error(&path, e)),
            }
        }
        Ok(())
    }

    fn write_atomically(&self, name: &str, bytes: &[u8]) -> Result<(), AuthError> {
        self.ensure_dir()?;
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(
            ".{name}.tmp-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let result = (|| -> std::io::Result<()> {
            let mut file = OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.storage_error(&path, e));
        }
        Ok(())
    }
}

/// Summary of the saved session of `username`, or `None` if nothing is saved.
pub fn read_summary(data_dir: &Path, username: &str) -> Result<Option<SessionSummary>, AuthError> {
    let store = AccountStore::new(data_dir, username);
    Ok(store.load_session()?.map(|d| SessionSummary::from_data(&d)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn dir_names_are_safe_and_distinct() {
        assert_eq!(account_dir_name("JDoe@Example.com"), "jdoe@example.com");
        assert!(account_dir_name("a/b c").starts_with("a_b_c_"));
        assert_ne!(account_dir_name("a/b"), account_dir_name("a_b"));
        assert!(account_dir_name(".hidden").starts_with("_.hidden_"));
        assert!(account_dir_name("..").starts_with("_.._"));
        let long = "x".repeat(100) + "@example.com";
        let name = account_dir_name(&long);
        assert!(name.len() <= MAX_DIR_NAME, "{name}");
        assert_ne!(name, account_dir_name(&("x".repeat(101) + "@example.com")));
        assert_ne!(account_dir_name("jörg@x.de"), account_dir_name("j_rg@x.de"));
        assert!(!account_dir_name("jörg@x.de").contains('/'));
    }

    #[test]
    fn files_are_private_and_round_trip() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = AccountStore::new(tmp.path(), "jdoe@example.com");
        assert_eq!(store.load_session().expect("load"), None);
        let mut data = SessionData::new("jdoe@example.com");
        data.session_token = Some("token-secret".into());
        data.trust_token = Some("trust-secret".into());
        store.save_session(&data).expect("save");
        store.save_cookies(&CookieJar::new()).expect("save cookies");
        assert_eq!(store.load_session().expect("load"), Some(data.clone()));
        let dir_mode = std::fs::metadata(store.dir())
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        for name in [SESSION_FILE, COOKIE_FILE] {
            let mode = std::fs::metadata(store.dir().join(name))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
        let leftovers: Vec<_> = std::fs::read_dir(store.dir())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left behind");
        assert!(
            !format!("{data:?}").contains("secret"),
            "Debug shows tokens"
        );
    }

    #[test]
    fn corrupt_or_foreign_session_is_ignored() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = AccountStore::new(tmp.path(), "a@example.com");
        store.ensure_dir().expect("dir");
        std::fs::write(store.dir().join(SESSION_FILE), "{garbage").expect("write");
        assert_eq!(store.load_session().expect("load"), None);
        store
            .save_session(&SessionData::new("b@example.com"))
            .expect("save");
        assert_eq!(store.load_session().expect("load"), None);
    }

    #[test]
    fn loose_directory_mode_is_tightened() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = AccountStore::new(tmp.path(), "a@example.com");
        std::fs::create_dir_all(store.dir()).expect("mkdir");
        std::fs::set_permissions(store.dir(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        store.ensure_dir().expect("ensure");
        let mode = std::fs::metadata(store.dir())
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[tokio::test]
    async fn second_locker_waits_then_gives_up() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = AccountStore::new(tmp.path(), "a@example.com");
        let held = store
            .lock(Duration::from_secs(1))
            .await
            .expect("first lock");
        // flock locks belong to the open file description, so a second open in the same process
        // conflicts just as another process would.
        match store.lock(Duration::from_millis(300)).await {
            Err(AuthError::SessionBusy { .. }) => {}
            other => panic!("expected SessionBusy, got {other:?}"),
        }
        drop(held);
        store
            .lock(Duration::from_millis(300))
            .await
            .expect("lock after release");
    }

    #[test]
    fn summary_reports_trust_and_estimate() {
        let mut data = SessionData::new("a@example.com");
        assert!(!SessionSummary::from_data(&data).trusted);
        let t = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .expect("date")
            .to_utc();
        data.trust_token = Some("t".into());
        data.trust_established_at = Some(t);
        data.session_token = Some("s".into());
        data.account = Some(AccountInfo {
            dsid: "1".into(),
            hsa_version: 2,
            hsa_trusted_browser: true,
            has_qualifying_device: true,
            ..Default::default()
        });
        let s = SessionSummary::from_data(&data);
        assert!(s.trusted && s.signed_in && !s.code_pending);
        assert_eq!(
            s.trust_expires_estimate,
            Some(t + chrono::TimeDelta::days(60))
        );
        assert_eq!(s.trust_days_left(t + chrono::TimeDelta::days(10)), Some(50));
    }
}

//! The inputs of a sign-in: the account and its settings ([`AuthOptions`]), the second factor
//! to use, and how to talk to a person ([`Prompter`]; [`NoPrompt`] for unattended runs).

use std::path::PathBuf;
use std::time::Duration;

use super::endpoints::{Domain, Endpoints};
use super::password::{Password, PasswordSources};
use super::second_factor::TrustedPhone;
use super::session_store::AccountStore;
use super::transport::RetryPolicy;
use crate::net::NetConfig;

/// How long a sign-in waits for another process holding the account's lock.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(10);

/// Everything a sign-in needs to know.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// The Apple ID, as the user typed it.
    pub username: String,
    pub password: PasswordSources,
    pub endpoints: Endpoints,
    /// Root of the data directory; the account's files live in a subdirectory.
    pub data_dir: PathBuf,
    /// HTTP settings (timeouts, extra roots); the User-Agent and default headers are set here.
    pub net: NetConfig,
    pub retry: RetryPolicy,
    pub lock_wait: Duration,
    /// The `login` command line to suggest in messages (`icloudpd-rs login -u ...`).
    pub login_command: String,
}

impl AuthOptions {
    /// Options with defaults for everything but the account, password and data directory.
    pub fn new(username: &str, password: PasswordSources, data_dir: PathBuf) -> Self {
        AuthOptions {
            username: username.to_string(),
            password,
            endpoints: Endpoints::apple(Domain::Com),
            data_dir,
            net: NetConfig::default(),
            retry: RetryPolicy::default(),
            lock_wait: DEFAULT_LOCK_WAIT,
            login_command: format!("icloudpd-rs login -u {username}"),
        }
    }

    /// The account's session files.
    pub fn store(&self) -> AccountStore {
        AccountStore::new(&self.data_dir, &self.username)
    }
}

/// Which second factor to use when one is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecondFactor {
    /// A code shown on a trusted Apple device (pushed by Apple).
    #[default]
    TrustedDevice,
    /// A code sent by SMS to a trusted phone number.
    Sms,
}

/// How a sign-in talks to the person at the keyboard. Methods may block; returning `Ok(None)`
/// means "nobody can answer" (end of input), which ends the sign-in with a clear error.
pub trait Prompter: Send {
    /// Ask for a verification code.
    fn code(&mut self, prompt: &str) -> std::io::Result<Option<String>>;
    /// Ask for the password (without echo).
    fn password(&mut self, prompt: &str) -> std::io::Result<Option<Password>>;
    /// Choose one of several phone numbers; `Ok(None)` picks the first.
    fn choose_phone(&mut self, phones: &[TrustedPhone]) -> std::io::Result<Option<usize>>;
    /// Tell the user something (e.g. "a code was sent").
    fn notice(&mut self, message: &str);
    /// False when a code could certainly not be answered (input already at its end): the
    /// sign-in then stops before having a code sent for nothing.
    fn can_answer(&mut self) -> bool {
        true
    }
}

/// A prompter for unattended runs: never asks, never prints.
#[derive(Debug, Default)]
pub struct NoPrompt;

impl Prompter for NoPrompt {
    fn code(&mut self, _prompt: &str) -> std::io::Result<Option<String>> {
        Ok(None)
    }
    fn password(&mut self, _prompt: &str) -> std::io::Result<Option<Password>> {
        Ok(None)
    }
    fn choose_phone(&mut self, _phones: &[TrustedPhone]) -> std::io::Result<Option<usize>> {
        Ok(None)
    }
    fn notice(&mut self, message: &str) {
        tracing::info!("{message}");
    }
    fn can_answer(&mut self) -> bool {
        false
    }
}

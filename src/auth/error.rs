//! Everything that can stop a sign-in, each case distinct and worded for the user: what
//! happened and what to do next. Messages never contain the password (see
//! [`AuthError::redacted`], applied at the library boundary to the few variants that carry text
//! from outside).

use std::path::PathBuf;
use std::time::Duration;

use super::endpoints::Domain;
use super::password::{Password, PasswordError};

/// A sign-in failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("no Apple ID given: use -u/--username or set ICLOUD_USERNAME")]
    NoUsername,

    #[error(
        "no Apple ID given, and no account has signed in with the data folder {data_dir}{}: use \
         -u/--username or set ICLOUD_USERNAME (or --data-dir for another data folder)",
        if *.exists { "" } else { " (it does not exist)" }
    )]
    NoSavedAccount { data_dir: String, exists: bool },

    #[error(
        "no Apple ID given, and {data_dir} holds several accounts ({accounts}): choose one with \
         -u/--username"
    )]
    WhichAccount { data_dir: String, accounts: String },

    #[error(
        "the saved session of {username} in {dir} was made with {saved}, not {given}; its \
         tokens are not sent elsewhere: use another --data-dir for another server (or move \
         {dir} away to sign in to {given} afresh)"
    )]
    OtherEndpoint {
        username: String,
        dir: String,
        saved: String,
        given: String,
    },

    #[error(
        "a password is needed to sign in as {username}, and none was given: use -p/--password, \
         ICLOUD_PASSWORD, --password-file or --password-command, or run `{login_command}` in a terminal"
    )]
    PasswordNeeded {
        username: String,
        login_command: String,
    },

    #[error("cannot get the password: {0}")]
    PasswordSource(#[from] PasswordError),

    #[error(
        "Apple refused the Apple ID or password for {username} (wrong password, or no such account)"
    )]
    WrongPassword { username: String },

    #[error(
        "the verification code was wrong ({attempts} {}); run `{login_command}` to try again \
         (with --request-code, a new code is sent)",
        if *.attempts == 1 { "attempt" } else { "attempts" }
    )]
    WrongCode {
        attempts: u32,
        login_command: String,
    },

    #[error(
        "the verification code was not accepted; the sign-in still waits for the right one: \
         run `{login_command} --submit-code CODE` again (or `{login_command} --request-code` \
         for a new code)"
    )]
    WrongSubmittedCode { login_command: String },

    #[error("a verification code has 6 digits; got {given_digits} digit(s)")]
    InvalidCodeFormat { given_digits: usize },

    #[error(
        "two-factor authentication is needed for {username} and there is no terminal to ask for a code. \
         Run `{login_command}` in a terminal, or without one: `{login_command} --request-code`, \
         then `{login_command} --submit-code CODE` with the code shown on your Apple device"
    )]
    TwoFactorRequired {
        username: String,
        login_command: String,
    },

    #[error(
        "no sign-in is waiting for a code for {username} (it was never started or has expired): \
         run `{login_command} --request-code` first"
    )]
    NoPendingCode {
        username: String,
        login_command: String,
    },

    #[error(
        "Apple reports that the Apple Account {username} is locked{detail}; unlock it at \
         https://iforgot.apple.com, then sign in again"
    )]
    AccountLocked { username: String, detail: String },

    #[error(
        "Advanced Data Protection is on for this account, so Apple does not let web clients read \
         iCloud Photos. Turn on \"Access iCloud Data on the Web\" (iPhone: Settings > your name > \
         iCloud) or turn off Advanced Data Protection, then run `{login_command}` again"
    )]
    AdvancedDataProtection { login_command: String },

    #[error(
        "this Apple Account requires a security key to sign in ({}); FIDO/WebAuthn security keys are \
         not supported by icloudpd-rs (Apple offers no web sign-in with them to third-party tools)",
        key_list(.key_names)
    )]
    SecurityKeys { key_names: Vec<String> },

    #[error(
        "this account uses Apple's legacy two-step verification, which icloudpd-rs does not support; \
         upgrade the account to two-factor authentication"
    )]
    TwoStepUnsupported,

    #[error(
        "Apple is throttling sign-in requests (HTTP {status} from {endpoint}, still after {attempts} \
         {}){}; wait a while before trying again (too many sign-ins in a short time make it worse)",
        if *.attempts == 1 { "attempt" } else { "attempts" },
        retry_hint(.retry_after)
    )]
    Throttled {
        endpoint: &'static str,
        status: u16,
        attempts: u32,
        retry_after: Option<Duration>,
    },

    #[error(
        "Apple insists on using {domain_to_use} for this account: run again with --domain {}",
        suggested.map(|d| d.as_str()).unwrap_or("cn or --domain com")
    )]
    WrongDomain {
        domain_to_use: String,
        suggested: Option<Domain>,
    },

    #[error(
        "Apple's sign-in service failed (HTTP {status} from {endpoint}); try again in a few minutes"
    )]
    Unavailable { endpoint: &'static str, status: u16 },

    #[error("Apple refused the request ({endpoint}, HTTP {status}): {detail}")]
    Rejected {
        endpoint: &'static str,
        status: u16,
        detail: String,
    },

    #[error("unexpected answer from iCloud ({endpoint}): {detail}")]
    Protocol {
        endpoint: &'static str,
        detail: String,
    },

    #[error("cannot reach iCloud ({endpoint}): {detail}")]
    Network {
        endpoint: &'static str,
        detail: String,
    },

    #[error(
        "another icloudpd-rs process is signing in to {username} (lock file {}); wait for it to \
         finish and try again",
        path.display()
    )]
    SessionBusy { username: String, path: PathBuf },

    #[error("cannot use the session files in {}: {detail}", path.display())]
    Storage { path: PathBuf, detail: String },

    #[error("cannot set up HTTPS: {0}")]
    Setup(String),

    #[error("cannot read from the terminal: {0}")]
    Input(String),
}

fn key_list(names: &[String]) -> String {
    if names.is_empty() {
        "no key names given".to_string()
    } else {
        names.join(", ")
    }
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!("; Apple asked to wait {} s", d.as_secs()),
        None => String::new(),
    }
}

impl AuthError {
    /// True for failures worth another attempt after a pause (throttling, a server error, the
    /// network): a long run re-authenticating mid-way should not die of one busy answer.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AuthError::Throttled { .. } | AuthError::Unavailable { .. } | AuthError::Network { .. }
        )
    }

    /// True when the problem is the sign-in itself (exit code 3): credentials, second factor,
    /// account state or Apple refusing us. False for local and transient failures (exit code 1).
    pub fn is_authentication_problem(&self) -> bool {
        !matches!(
            self,
            AuthError::NoUsername
                | AuthError::NoSavedAccount { .. }
                | AuthError::WhichAccount { .. }
                | AuthError::OtherEndpoint { .. }
                | AuthError::Unavailable { .. }
                | AuthError::Network { .. }
                | AuthError::Protocol { .. }
                | AuthError::SessionBusy { .. }
                | AuthError::Storage { .. }
                | AuthError::Setup(_)
                | AuthError::Input(_)
                | AuthError::Throttled { .. }
                | AuthError::PasswordSource(_)
        )
    }

    /// True when the command exits with code 3: the sign-in problems above, and Apple
    /// throttling sign-ins (transient, but the answer is the same: no sign-in for now; the
    /// user should wait, not retry at once).
    pub fn exits_as_sign_in_failure(&self) -> bool {
        self.is_authentication_problem() || matches!(self, AuthError::Throttled { .. })
    }

    /// The same error with every occurrence of `password` removed from its text.
    pub fn redacted(self, password: &Password) -> AuthError {
        let r = |s: String| password.redact(&s);
        match self {
            AuthError::Rejected {
                endpoint,
                status,
                detail,
            } => AuthError::Rejected {
                endpoint,
                status,
                detail: r(detail),
            },
            AuthError::Protocol { endpoint, detail } => AuthError::Protocol {
                endpoint,
                detail: r(detail),
            },
            AuthError::Network { endpoint, detail } => AuthError::Network {
                endpoint,
                detail: r(detail),
            },
            AuthError::AccountLocked { username, detail } => AuthError::AccountLocked {
                username,
                detail: r(detail),
            },
            AuthError::Storage { path, detail } => AuthError::Storage {
                path,
                detail: r(detail),
            },
            AuthError::Setup(s) => AuthError::Setup(r(s)),
            AuthError::Input(s) => AuthError::Input(r(s)),
            AuthError::SecurityKeys { key_names } => AuthError::SecurityKeys {
                key_names: key_names.into_iter().map(r).collect(),
            },
            AuthError::WrongDomain {
                domain_to_use,
                suggested,
            } => AuthError::WrongDomain {
                domain_to_use: r(domain_to_use),
                suggested,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_reaches_text_from_outside() {
        let pw = Password::new("s3cret!");
        let e = AuthError::Rejected {
            endpoint: "signin/complete",
            status: 403,
            detail: "echo: s3cret!".into(),
        }
        .redacted(&pw);
        assert!(!e.to_string().contains("s3cret!"), "{e}");
        assert!(e.to_string().contains("<redacted>"), "{e}");
    }

    #[test]
    fn exit_classes() {
        assert!(
            AuthError::WrongPassword {
                username: "u".into()
            }
            .is_authentication_problem()
        );
        // Transient: running `login` would not help (and would make throttling worse); still
        // a sign-in refused, so exit code 3.
        let throttled = AuthError::Throttled {
            endpoint: "signin/init",
            status: 429,
            attempts: 3,
            retry_after: None,
        };
        assert!(!throttled.is_authentication_problem());
        assert!(throttled.exits_as_sign_in_failure());
        assert!(
            !AuthError::Network {
                endpoint: "signin/init",
                detail: "refused".into()
            }
            .is_authentication_problem()
        );
    }

    #[test]
    fn security_key_message_lists_names() {
        let e = AuthError::SecurityKeys {
            key_names: vec!["YubiKey 5C".into(), "Titan".into()],
        };
        let text = e.to_string();
        assert!(text.contains("YubiKey 5C, Titan"), "{text}");
        assert!(text.contains("not supported"), "{text}");
    }
}

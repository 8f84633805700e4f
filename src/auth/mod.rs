//! Signing in to iCloud: SRP-6a, two-factor codes, trust, saved sessions and re-authentication
//! (protocol: `shared/docs/icloud-auth.md`). This module knows nothing about photos.
//!
//! # Using it
//!
//! ```no_run
//! # async fn demo() -> Result<(), icloudpd_rs::auth::AuthError> {
//! use icloudpd_rs::auth::{AuthOptions, Authenticator, PasswordSources};
//! let opts = AuthOptions::new("jdoe@example.com", PasswordSources::default(), "/data".into());
//! // Unattended: the saved session, or SRP with a configured password; never prompts.
//! let session = Authenticator::resume(opts).await?;
//! let url = format!("{}/database/1/com.apple.photos.cloud/production/private/zones/list", session.ckdatabasews_url());
//! loop {
//!     let seen = session.generation();
//!     let Ok(resp) = session.http().post(&url).send().await else { break };
//!     if matches!(resp.status().as_u16(), 401 | 421) {
//!         session.reauthenticate(seen).await?; // once per request; then retry
//!         continue;
//!     }
//!     break;
//! }
//! # Ok(()) }
//! ```
//!
//! - [`Authenticator::resume`]: unattended (`sync`, `mount`): saved session, else SRP with the
//!   configured password; [`AuthError::TwoFactorRequired`] if a code would be needed.
//! - [`Authenticator::login`]: interactive, through a [`Prompter`] (password, code, phone).
//! - [`Authenticator::request_code`] / [`Authenticator::submit_code`]: the two halves of a
//!   headless sign-in, in separate processes sharing only the data directory.
//! - [`AccountSession`]: the signed-in account: [`AccountSession::http`] (a `reqwest::Client`
//!   with the session cookies), `ckdatabasews_url`, `dsid`, `client_id`, and
//!   [`AccountSession::reauthenticate`] for a CloudKit/CDN answer of 401 or 421 (safe to call
//!   from many tasks at once; one sign-in runs, the others wait for its result).
//! - [`read_summary`] / [`SessionSummary`]: what `status` prints (signed in, trusted, trust
//!   established, estimated expiry), without network access.
//!
//! Layout: `srp` (client math), `endpoints` (URLs), `transport` (one exchange: headers,
//! retries, header capture, answer readers), `client` (password sign-in and setup calls),
//! `second_factor` (code, SMS and trust calls), `options` (what a sign-in needs), `flow` (the order of exchanges), `session` (the signed-in
//! handle and re-authentication), `session_store` (files and locking), `account` (the account
//! document subset), `password` (sources and redaction), `error`.
//!
//! Files, per account, in `<data dir>/<sanitised Apple ID>/`: `session.json`, `cookies.json`
//! (mode 0600, written atomically) and `auth.lock` (an exclusive `flock` taken for the length of
//! a sign-in). The password is never written anywhere.

pub mod account;
mod client;
pub mod endpoints;
pub mod error;
pub mod flow;
pub mod options;
pub mod password;
mod second_factor;
pub mod session;
pub mod session_store;
pub mod srp;
mod transport;

pub use account::AccountInfo;
pub use endpoints::{Domain, Endpoints};
pub use error::AuthError;
pub use flow::{Authenticator, CodeRequest};
pub use options::{AuthOptions, NoPrompt, Prompter, SecondFactor};
pub use password::{Password, PasswordSources};
pub use second_factor::{TrustedPhone, parse_trusted_phones};
pub use session::AccountSession;
pub use session_store::{SessionSummary, default_data_dir, read_summary, saved_accounts};
pub use transport::{APPLE_USER_AGENT, RetryPolicy};

//! The sign-in state machine (icloud-auth.md section 2.0, kei's order): reuse the saved session
//! (validate, then accountLogin with the saved tokens) without SRP or a second factor while
//! Apple accepts it; otherwise SRP with the saved trust token, then accountLogin; a second
//! factor only when the account document demands it; then trust and a final accountLogin.

use std::sync::Arc;

use super::account::AccountInfo;
use super::client::{Completion, SetupOutcome};
use super::endpoints::Domain;
use super::error::AuthError;
use super::options::{AuthOptions, NoPrompt, Prompter, SecondFactor};
use super::password::Password;
use super::second_factor::TrustedPhone;
use super::session::AccountSession;
use super::session_store::{AccountLock, AccountStore, PendingCode, PendingMethod, SessionData};
use super::srp::SrpClient;
use super::transport::{APPLE_USER_AGENT, AppleClient};
use crate::net::CookieJar;

/// Tries allowed for a verification code in one interactive sign-in.
pub const CODE_ATTEMPTS: u32 = 3;
/// New codes one interactive sign-in may request (empty answers at the prompt).
const MAX_CODE_REQUESTS: u32 = 3;
/// Entries that are not a code at all (a typo, a word) before the sign-in gives up; they are
/// never sent to Apple, so they do not spend one of its [`CODE_ATTEMPTS`].
const MAX_MALFORMED_CODES: u32 = 5;

/// What `login --request-code` achieved.
#[derive(Debug)]
pub enum CodeRequest {
    /// No code is needed: the session is signed in and trusted.
    AlreadySignedIn(AccountSession),
    /// A code was sent; submit it with [`Authenticator::submit_code`].
    Sent {
        /// Where it went ("your trusted Apple devices" or a phone number).
        destination: String,
    },
}

/// Entry points of the sign-in. See the module docs of [`crate::auth`].
pub struct Authenticator;

impl Authenticator {
    /// Sign in without asking anyone: the saved session, else SRP with the configured password
    /// (never a prompt). Fails with [`AuthError::TwoFactorRequired`] if a code is needed.
    pub async fn resume(opts: AuthOptions) -> Result<AccountSession, AuthError> {
        let redact = opts.password.literal.clone();
        let result = async {
            let (mut work, lock) = Work::open(opts).await?;
            let info = work.establish(Srp::Allowed, &mut NoPrompt).await?;
            if info.needs_two_factor() {
                // Apple's answer is recorded (so `status` no longer says signed in), and a
                // trust token it did not honour is no trust any more.
                work.session.account = Some(info);
                work.session.trust_token = None;
                work.session.trust_established_at = None;
                work.save()?;
                return Err(work.two_factor_required());
            }
            work.finish(info, lock)
        }
        .await;
        redact_result(result, redact.as_ref())
    }

    /// Interactive sign-in: as [`Authenticator::resume`], but the password and a verification
    /// code may be asked for through `prompter`.
    pub async fn login(
        opts: AuthOptions,
        prompter: &mut dyn Prompter,
        method: SecondFactor,
    ) -> Result<AccountSession, AuthError> {
        let redact = opts.password.literal.clone();
        let result = async {
            let (mut work, lock) = Work::open(opts).await?;
            let mut info = work.establish(Srp::Allowed, prompter).await?;
            if info.needs_two_factor() {
                info = work.interactive_second_factor(prompter, method).await?;
            }
            work.finish(info, lock)
        }
        .await;
        redact_result(result, redact.as_ref())
    }

    /// First half of a headless sign-in: sign in (saved session or SRP), have a code sent, save
    /// the half-done session for [`Authenticator::submit_code`] in another process.
    pub async fn request_code(
        opts: AuthOptions,
        prompter: &mut dyn Prompter,
        method: SecondFactor,
    ) -> Result<CodeRequest, AuthError> {
        let redact = opts.password.literal.clone();
        let result = async {
            let (mut work, lock) = Work::open(opts).await?;
            let info = work.establish(Srp::Allowed, prompter).await?;
            if !info.needs_two_factor() {
                return Ok(CodeRequest::AlreadySignedIn(work.finish(info, lock)?));
            }
            let (pending, destination) = match method {
                SecondFactor::TrustedDevice => {
                    work.api.request_device_code(&mut work.session).await?;
                    (
                        PendingMethod::TrustedDevice,
                        "your trusted Apple devices".to_string(),
                    )
                }
                SecondFactor::Sms => {
                    let phone = work.pick_phone(prompter).await?;
                    work.api
                        .request_sms_code(&mut work.session, phone.id)
                        .await?;
                    (PendingMethod::Sms { phone_id: phone.id }, phone.number)
                }
            };
            work.session.pending = Some(PendingCode {
                method: pending,
                requested_at: chrono::Utc::now(),
            });
            work.save()?;
            Ok(CodeRequest::Sent { destination })
        }
        .await;
        redact_result(result, redact.as_ref())
    }

    /// Second half of a headless sign-in: continue the session saved by
    /// [`Authenticator::request_code`] (never a new SRP, which would send another code), submit
    /// `code`, trust this client, finish.
    pub async fn submit_code(opts: AuthOptions, code: &str) -> Result<AccountSession, AuthError> {
        let code = normalize_code(code)?;
        let (mut work, lock) = Work::open(opts).await?;
        let info = work.establish(Srp::Forbidden, &mut NoPrompt).await?;
        if !info.needs_two_factor() {
            return work.finish(info, lock);
        }
        let method = work
            .session
            .pending
            .as_ref()
            .map(|p| p.method)
            .unwrap_or(PendingMethod::TrustedDevice);
        let accepted = match method {
            PendingMethod::TrustedDevice => {
                work.api
                    .submit_device_code(&mut work.session, &code)
                    .await?
            }
            PendingMethod::Sms { phone_id } => {
                work.api
                    .submit_sms_code(&mut work.session, phone_id, &code)
                    .await?
            }
        };
        if !accepted {
            // Keep the pending sign-in: the user may retry with the right code.
            work.save()?;
            return Err(AuthError::WrongSubmittedCode {
                login_command: work.opts.login_command.clone(),
            });
        }
        let info = work.trust_and_finish().await?;
        work.finish(info, lock)
    }
}

fn redact_result<T>(
    result: Result<T, AuthError>,
    password: Option<&Password>,
) -> Result<T, AuthError> {
    match (result, password) {
        (Err(e), Some(p)) => Err(e.redacted(p)),
        (r, _) => r,
    }
}

/// Keep the digits of a typed code; exactly six are required.
pub fn normalize_code(input: &str) -> Result<String, AuthError> {
    let digits: String = input.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == 6 {
        Ok(digits)
    } else {
        Err(AuthError::InvalidCodeFormat {
            given_digits: digits.len(),
        })
    }
}

/// Whether a sign-in may run SRP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Srp {
    Allowed,
    /// `submit-code`: a new SRP would push a new code and invalidate the one being submitted.
    Forbidden,
}

/// The working state of one sign-in (also kept by an [`AccountSession`] for re-authentication).
pub(crate) struct Work {
    pub opts: Arc<AuthOptions>,
    pub api: AppleClient,
    pub jar: Arc<CookieJar>,
    pub store: AccountStore,
    pub session: SessionData,
    /// The password once resolved, kept in memory for re-authentication.
    pub password: Option<Password>,
}

impl Work {
    /// Lock the account, load its saved session and cookies, build the HTTP client.
    async fn open(opts: AuthOptions) -> Result<(Work, AccountLock), AuthError> {
        if opts.username.trim().is_empty() {
            return Err(AuthError::NoUsername);
        }
        let store = opts.store();
        let lock = store.lock(opts.lock_wait).await?;
        let session = store
            .load_session()?
            .unwrap_or_else(|| SessionData::new(&opts.username));
        check_endpoint(&session, &opts, &store)?;
        let jar = Arc::new(store.load_cookies()?);
        let api = build_api(&opts, jar.clone())?;
        let work = Work {
            opts: Arc::new(opts),
            api,
            jar,
            store,
            session,
            password: None,
        };
        Ok((work, lock))
    }

    pub fn two_factor_required(&self) -> AuthError {
        AuthError::TwoFactorRequired {
            username: self.opts.username.clone(),
            login_command: self.opts.login_command.clone(),
        }
    }

    /// Save the session and cookies.
    pub fn save(&mut self) -> Result<(), AuthError> {
        self.session.auth_root = Some(self.opts.endpoints.auth_root.clone());
        self.store.save_session(&self.session)?;
        self.store.save_cookies(&self.jar)
    }

    /// Check the account, save, and hand out the session.
    fn finish(mut self, info: AccountInfo, lock: AccountLock) -> Result<AccountSession, AuthError> {
        self.session.pending = None;
        self.accept(&info);
        self.save()?;
        drop(lock);
        check_usable(&info, &self.opts)?;
        Ok(AccountSession::new(self, info))
    }

    /// Record an accepted account document.
    pub fn accept(&mut self, info: &AccountInfo) {
        self.session.account = Some(info.clone());
        self.session.validated_at = Some(chrono::Utc::now());
    }

    /// The password from the configured sources, else from the prompter.
    async fn password(&mut self, prompter: &mut dyn Prompter) -> Result<Password, AuthError> {
        if let Some(p) = &self.password {
            return Ok(p.clone());
        }
        let password = match self.opts.password.resolve().await? {
            Some(p) => p,
            None => {
                let prompt = format!("Password for {}: ", self.opts.username);
                match prompter
                    .password(&prompt)
                    .map_err(|e| AuthError::Input(e.to_string()))?
                {
                    Some(p) if !p.expose().is_empty() => p,
                    _ => {
                        return Err(AuthError::PasswordNeeded {
                            username: self.opts.username.clone(),
                            login_command: self.opts.login_command.clone(),
                        });
                    }
                }
            }
        };
        self.password = Some(password.clone());
        Ok(password)
    }

    /// Reach a signed-in state (second factor possibly still pending): saved session first,
    /// then SRP if allowed.
    pub async fn establish(
        &mut self,
        srp: Srp,
        prompter: &mut dyn Prompter,
    ) -> Result<AccountInfo, AuthError> {
        if let Some(info) = self.reuse_saved().await? {
            return Ok(info);
        }
        if srp == Srp::Forbidden {
            // A sign-in waiting for its code is gone on Apple's side (or never began): the
            // saved marker must not keep `status` saying a code is awaited.
            if self.session.pending.take().is_some()
                && let Err(e) = self.store.save_session(&self.session)
            {
                tracing::debug!(error = %e, "could not clear the expired pending sign-in");
            }
            return Err(AuthError::NoPendingCode {
                username: self.opts.username.clone(),
                login_command: self.opts.login_command.clone(),
            });
        }
        let password = self.password(prompter).await?;
        self.sign_in_with_srp(&password).await
    }

    /// validate, then accountLogin with the saved tokens; `None` when Apple accepts neither.
    pub async fn reuse_saved(&mut self) -> Result<Option<AccountInfo>, AuthError> {
        if self.session.session_token.is_none() {
            return Ok(None);
        }
        match self.api.validate(&mut self.session).await? {
            SetupOutcome::Accepted(info) => {
                tracing::debug!("saved session accepted (validate)");
                return self.checked(info).map(Some);
            }
            SetupOutcome::Refused { status, detail } => {
                tracing::debug!(status, %detail, "saved web session refused; trying the saved token");
            }
        }
        match self.api.account_login(&mut self.session).await? {
            SetupOutcome::Accepted(info) => {
                tracing::debug!("saved session token accepted (accountLogin)");
                self.checked(info).map(Some)
            }
            SetupOutcome::Refused { status, detail } => {
                tracing::debug!(status, %detail, "saved session token refused; a new sign-in is needed");
                // Dead now: forgotten on disk too, so that `status` no longer says signed in
                // when the new sign-in cannot happen (no password in a cron job).
                self.session.forget_web_session();
                if let Err(e) = self.save() {
                    tracing::debug!(error = %e, "could not save the forgotten session");
                }
                Ok(None)
            }
        }
    }

    /// Refuse account documents that cannot lead anywhere, whatever the second factor.
    fn checked(&self, info: AccountInfo) -> Result<AccountInfo, AuthError> {
        if let Some(domain) = &info.domain_to_use {
            return Err(AuthError::WrongDomain {
                domain_to_use: domain.clone(),
                suggested: Domain::from_domain_to_use(domain),
            });
        }
        if info.locked {
            return Err(AuthError::AccountLocked {
                username: self.opts.username.clone(),
                detail: String::new(),
            });
        }
        if info.needs_two_step() {
            return Err(AuthError::TwoStepUnsupported);
        }
        Ok(info)
    }

    /// E1 -> E2 (-> E3) -> E5.
    pub async fn sign_in_with_srp(
        &mut self,
        password: &Password,
    ) -> Result<AccountInfo, AuthError> {
        tracing::debug!("signing in with SRP");
        self.session.forget_web_session();
        let username = self.opts.username.clone();
        let srp = SrpClient::new();
        let init = self
            .api
            .signin_init(&mut self.session, &username, &srp.public_bytes())
            .await?;
        let proofs = srp
            .proofs(
                &username,
                password.expose(),
                init.protocol,
                &init.salt,
                init.iterations,
                &init.b,
            )
            .map_err(|e| AuthError::Protocol {
                endpoint: "signin/init",
                detail: e.to_string(),
            })?;
        match self
            .api
            .signin_complete(&mut self.session, &username, &init.c, &proofs)
            .await?
        {
            Completion::NeedsRepair => self.api.repair_complete(&mut self.session).await?,
            Completion::Done | Completion::SecondFactor => {}
        }
        if self.session.session_token.is_none() {
            return Err(AuthError::Protocol {
                endpoint: "signin/complete",
                detail: "no session token in the answer".into(),
            });
        }
        match self.api.account_login(&mut self.session).await? {
            SetupOutcome::Accepted(info) => self.checked(info),
            SetupOutcome::Refused { status, detail } => Err(AuthError::Rejected {
                endpoint: "accountLogin",
                status,
                detail,
            }),
        }
    }

    /// Push or SMS, prompt (up to three tries), verify, trust.
    async fn interactive_second_factor(
        &mut self,
        prompter: &mut dyn Prompter,
        method: SecondFactor,
    ) -> Result<AccountInfo, AuthError> {
        if !prompter.can_answer() {
            self.save()?;
            return Err(self.two_factor_required());
        }
        let phone = match method {
            SecondFactor::TrustedDevice => {
                self.api.request_device_code(&mut self.session).await?;
                prompter.notice("A verification code was sent to your trusted Apple devices.");
                None
            }
            SecondFactor::Sms => {
                let phone = self.pick_phone(prompter).await?;
                self.api
                    .request_sms_code(&mut self.session, phone.id)
                    .await?;
                prompter.notice(&format!(
                    "A verification code was sent by SMS to {}.",
                    phone.number
                ));
                Some(phone)
            }
        };
        let prompt = match &phone {
            None => {
                "Enter the 6-digit code shown on your Apple device (empty line: send a new code): "
            }
            Some(_) => "Enter the 6-digit code from the SMS (empty line: send a new code): ",
        };
        let mut wrong = 0;
        let mut resent = 0;
        let mut malformed = 0;
        loop {
            let Some(input) = prompter
                .code(prompt)
                .map_err(|e| AuthError::Input(e.to_string()))?
            else {
                self.save()?;
                return Err(self.two_factor_required());
            };
            if input.trim().is_empty() && resent < MAX_CODE_REQUESTS {
                resent += 1;
                match &phone {
                    None => self.api.request_device_code(&mut self.session).await?,
                    Some(p) => self.api.request_sms_code(&mut self.session, p.id).await?,
                }
                prompter.notice("A new code was sent.");
                continue;
            }
            let accepted = match normalize_code(&input) {
                Err(e) if malformed + 1 < MAX_MALFORMED_CODES => {
                    // Not sent to Apple: ask again without spending an attempt.
                    malformed += 1;
                    prompter.notice(&format!("That is not a code ({e}); try again."));
                    continue;
                }
                Err(e) => {
                    self.save()?;
                    return Err(e);
                }
                Ok(code) => match &phone {
                    None => {
                        self.api
                            .submit_device_code(&mut self.session, &code)
                            .await?
                    }
                    Some(p) => {
                        self.api
                            .submit_sms_code(&mut self.session, p.id, &code)
                            .await?
                    }
                },
            };
            if accepted {
                break;
            }
            wrong += 1;
            if wrong >= CODE_ATTEMPTS {
                self.save()?;
                return Err(AuthError::WrongCode {
                    attempts: wrong,
                    login_command: self.opts.login_command.clone(),
                });
            }
            prompter.notice(&format!(
                "That code was not accepted ({} attempt(s) left).",
                CODE_ATTEMPTS - wrong
            ));
        }
        self.trust_and_finish().await
    }

    /// E9 and a choice among the trusted numbers.
    async fn pick_phone(&mut self, prompter: &mut dyn Prompter) -> Result<TrustedPhone, AuthError> {
        let phones = self.api.trusted_phones(&mut self.session).await?;
        if phones.is_empty() {
            return Err(AuthError::Protocol {
                endpoint: "auth (trusted phone numbers)",
                detail: "Apple lists no trusted phone number for SMS; use the code shown on a trusted device".into(),
            });
        }
        let index = if phones.len() == 1 {
            0
        } else {
            prompter
                .choose_phone(&phones)
                .map_err(|e| AuthError::Input(e.to_string()))?
                .unwrap_or(0)
        };
        phones
            .get(index)
            .cloned()
            .ok_or_else(|| AuthError::Input("no such phone number".into()))
    }

    /// E12 -> E5, and check that Apple now trusts us.
    async fn trust_and_finish(&mut self) -> Result<AccountInfo, AuthError> {
        self.api.trust(&mut self.session).await?;
        let info = match self.api.account_login(&mut self.session).await? {
            SetupOutcome::Accepted(info) => self.checked(info)?,
            SetupOutcome::Refused { status, detail } => {
                return Err(AuthError::Rejected {
                    endpoint: "accountLogin",
                    status,
                    detail,
                });
            }
        };
        if info.needs_two_factor() {
            return Err(AuthError::Protocol {
                endpoint: "accountLogin",
                detail: "the code was accepted but Apple still asks for a second factor".into(),
            });
        }
        Ok(info)
    }
}

/// Build the sign-in client: Apple's browser User-Agent, `{HOME}` as default Origin/Referer.
pub(crate) fn build_api(opts: &AuthOptions, jar: Arc<CookieJar>) -> Result<AppleClient, AuthError> {
    let mut net = opts.net.clone();
    net.user_agent = APPLE_USER_AGENT.to_string();
    let home = &opts.endpoints.home;
    for (name, value) in [
        (reqwest::header::ORIGIN, home.clone()),
        (reqwest::header::REFERER, format!("{home}/")),
    ] {
        if let Ok(v) = reqwest::header::HeaderValue::from_str(&value) {
            net.default_headers.entry(name).or_insert(v);
        }
    }
    let http =
        crate::net::build_client(&net, Some(jar)).map_err(|e| AuthError::Setup(e.to_string()))?;
    Ok(AppleClient::new(
        http,
        opts.endpoints.clone(),
        opts.retry.clone(),
    ))
}

/// A saved session's tokens and cookies go only to the service that issued them: a run with
/// another `--endpoint` (a proxy, a simulator, a stale `ICLOUDPD_RS_ENDPOINT`) on the same data
/// directory is refused before anything is sent. A session saved before the origin was
/// recorded came from Apple.
fn check_endpoint(
    session: &SessionData,
    opts: &AuthOptions,
    store: &AccountStore,
) -> Result<(), AuthError> {
    let has_tokens = session.session_token.is_some()
        || session.trust_token.is_some()
        || session.pending.is_some();
    if !has_tokens {
        return Ok(());
    }
    let given = &opts.endpoints.auth_root;
    let saved_ok = match &session.auth_root {
        Some(saved) => saved == given,
        None => [Domain::Com, Domain::Cn]
            .iter()
            .any(|d| &super::endpoints::Endpoints::apple(*d).auth_root == given),
    };
    if saved_ok {
        return Ok(());
    }
    Err(AuthError::OtherEndpoint {
        username: opts.username.clone(),
        dir: store.dir().display().to_string(),
        saved: session.auth_root.clone().unwrap_or_else(|| {
            "Apple's servers (a session saved before its server was recorded is taken as \
             Apple's)"
                .to_string()
        }),
        given: given.clone(),
    })
}

/// A signed-in account that still cannot be used for photos.
fn check_usable(info: &AccountInfo, opts: &AuthOptions) -> Result<(), AuthError> {
    if info.adp_enabled {
        return Err(AuthError::AdvancedDataProtection {
            login_command: opts.login_command.clone(),
        });
    }
    if info.ckdatabasews_url.is_none() {
        return Err(AuthError::Protocol {
            endpoint: "accountLogin",
            detail:
                "the account has no iCloud Photos service (no ckdatabasews URL); sign in once at \
                     https://www.icloud.com to finish setting up iCloud"
                    .into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_normalized() {
        assert_eq!(normalize_code("123 456").expect("ok"), "123456");
        assert_eq!(normalize_code("054-321\n").expect("ok"), "054321");
        assert!(matches!(
            normalize_code("12345"),
            Err(AuthError::InvalidCodeFormat { given_digits: 5 })
        ));
        assert!(normalize_code("").is_err());
    }
}

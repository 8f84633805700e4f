//! `icloudpd-rs login`: sign in once (password, two-factor code), save the session and trust,
//! so that later runs need neither. Headless: `--request-code`, then `--submit-code CODE`.

use super::exit;
use super::global::GlobalArgs;
use super::prompter::TerminalPrompter;
use crate::auth::{AccountSession, AuthError, Authenticator, CodeRequest, SecondFactor};

/// Arguments of `login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub global: GlobalArgs,

    /// Headless sign-in, step 1: sign in and have a verification code sent, then exit.
    #[arg(long, conflicts_with = "submit_code")]
    pub request_code: bool,

    /// Headless sign-in, step 2: submit the 6-digit code received after --request-code.
    #[arg(long, value_name = "CODE", value_parser = six_digit_code)]
    pub submit_code: Option<String>,

    /// Use a code sent by SMS to a trusted phone number instead of one shown on a device.
    #[arg(long)]
    pub sms: bool,
}

/// Run `login`; returns the exit code.
pub fn run(args: LoginArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("icloudpd-rs: cannot start: {e}");
            return exit::FAILURE;
        }
    };
    // Known before signing in, to leave no folder behind for a mistyped Apple ID.
    let account = super::context::AccountContext::new(&args.global).ok();
    match runtime.block_on(login(&args)) {
        Ok(()) => exit::OK,
        Err(e) => {
            let text = match &args.global.password {
                Some(p) => p.redact(&e.to_string()),
                None => e.to_string(),
            };
            eprintln!("icloudpd-rs: {text}");
            if let Some(account) = &account {
                account.forget_if_new();
            }
            if e.exits_as_sign_in_failure() {
                exit::AUTH
            } else {
                exit::FAILURE
            }
        }
    }
}

async fn login(args: &LoginArgs) -> Result<(), AuthError> {
    let opts = args.global.auth_options()?;
    let username = opts.username.clone();
    let method = if args.sms {
        SecondFactor::Sms
    } else {
        SecondFactor::TrustedDevice
    };
    let mut prompter = TerminalPrompter;
    if args.request_code {
        match Authenticator::request_code(opts, &mut prompter, method).await? {
            CodeRequest::AlreadySignedIn(session) => {
                println!("Already signed in as {username}; no verification code is needed.");
                print_trust(&session).await;
            }
            CodeRequest::Sent { destination } => {
                println!("A verification code was sent to {destination}.");
                println!(
                    "Now run: {} --submit-code CODE",
                    args.global.login_command()
                );
            }
        }
        return Ok(());
    }
    let session = match &args.submit_code {
        Some(code) => Authenticator::submit_code(opts, code).await?,
        None => Authenticator::login(opts, &mut prompter, method).await?,
    };
    println!("Signed in as {username}.");
    print_trust(&session).await;
    Ok(())
}

/// A `--submit-code` value: bad input, refused before anything is sent to Apple (a code that
/// cannot be right would spend one of the sign-in's attempts).
fn six_digit_code(value: &str) -> Result<String, String> {
    crate::auth::flow::normalize_code(value).map_err(|e| e.to_string())
}

async fn print_trust(session: &AccountSession) {
    let summary = session.summary().await;
    match summary.trust_expires_estimate {
        Some(until) if summary.trusted => println!(
            "This computer is trusted until about {} (Apple asks for a new code after that).",
            until.format("%Y-%m-%d")
        ),
        _ if summary.trusted => println!("This computer is trusted."),
        _ => {}
    }
}

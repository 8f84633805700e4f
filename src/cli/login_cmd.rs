//! `icloudpd-rs login`: sign in once (password, two-factor code), save the session and trust,
//! so that later runs need neither. Headless: `--request-code`, then `--submit-code CODE`.

use std::io::{BufRead, IsTerminal, Write};

use super::exit;
use super::global::GlobalArgs;
use crate::auth::{
    AccountSession, AuthError, Authenticator, CodeRequest, Password, Prompter, SecondFactor,
    TrustedPhone, password::prompt_hidden,
};

/// Arguments of `login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub global: GlobalArgs,

    /// Headless sign-in, step 1: sign in and have a verification code sent, then exit.
    #[arg(long, conflicts_with = "submit_code")]
    pub request_code: bool,

    /// Headless sign-in, step 2: submit the code received after --request-code.
    #[arg(long, value_name = "CODE")]
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
            if e.is_authentication_problem() {
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

/// Prompts on the terminal; without one, reads codes from standard input and never asks for a
/// password.
struct TerminalPrompter;

impl TerminalPrompter {
    fn read_line() -> std::io::Result<Option<String>> {
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            return Ok(None);
        }
        Ok(Some(line.trim().to_string()))
    }
}

impl Prompter for TerminalPrompter {
    fn code(&mut self, prompt: &str) -> std::io::Result<Option<String>> {
        if std::io::stdin().is_terminal() {
            eprint!("{prompt}");
            std::io::stderr().flush()?;
        } else {
            eprintln!("Reading the verification code from standard input.");
        }
        Self::read_line()
    }

    fn password(&mut self, prompt: &str) -> std::io::Result<Option<Password>> {
        if !std::io::stdin().is_terminal() {
            return Ok(None);
        }
        prompt_hidden(prompt).map(Some)
    }

    fn choose_phone(&mut self, phones: &[TrustedPhone]) -> std::io::Result<Option<usize>> {
        if !std::io::stdin().is_terminal() {
            return Ok(None);
        }
        eprintln!("Trusted phone numbers:");
        for (i, p) in phones.iter().enumerate() {
            eprintln!("  {}: {}", i + 1, p.number);
        }
        loop {
            eprint!("Send the SMS to which number [1-{}]? ", phones.len());
            std::io::stderr().flush()?;
            let Some(answer) = Self::read_line()? else {
                return Ok(None);
            };
            match answer.parse::<usize>() {
                Ok(n) if (1..=phones.len()).contains(&n) => return Ok(Some(n - 1)),
                _ => eprintln!("Please type a number between 1 and {}.", phones.len()),
            }
        }
    }

    fn notice(&mut self, message: &str) {
        eprintln!("{message}");
    }

    fn can_answer(&mut self) -> bool {
        std::io::stdin().is_terminal() || !stdin_at_end()
    }
}

/// True when standard input has already ended (e.g. `/dev/null`, a closed pipe); never blocks.
/// Data that is already there stays buffered for the next read.
fn stdin_at_end() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    if ready <= 0 || fd.revents & (libc::POLLIN | libc::POLLHUP) == 0 {
        return false;
    }
    std::io::stdin()
        .lock()
        .fill_buf()
        .map(|b| b.is_empty())
        .unwrap_or(true)
}

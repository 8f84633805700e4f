//! The person at the terminal, for a sign-in: the password without echo, a verification
//! code, a phone number to send it to. Without a terminal, codes are read from standard input
//! (`login`) and a password is never asked.

use std::io::{BufRead, IsTerminal, Write};

use crate::auth::{Password, Prompter, TrustedPhone, password::prompt_hidden};

/// Prompts on the terminal; without one, reads codes from standard input and never asks for a
/// password.
pub(super) struct TerminalPrompter;

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

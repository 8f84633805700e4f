//! The Apple ID password: a type that never shows itself, the sources it is read from (in the
//! order `--password`/`ICLOUD_PASSWORD`, `--password-file`, `--password-command`, terminal
//! prompt; an empty `--password` counts as none), and redaction of any text that could echo it
//! back.
//!
//! The password never leaves this process: SRP sends only proofs derived from it, and nothing
//! here writes it to disk or to a log.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

/// Longest time a `--password-command` may run.
pub const PASSWORD_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Replacement text for a redacted password.
pub const REDACTED: &str = "<redacted>";

/// A password held in memory only, wiped on drop; Debug and Display print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wrap a password.
    pub fn new(s: impl Into<String>) -> Self {
        Password(Zeroizing::new(s.into()))
    }

    /// The clear text, for the SRP computation only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the password replaced by `<redacted>`. A password too
    /// short to be an Apple Account password (those have 8 characters or more) is left: it
    /// is likely a word of the message itself, and marking where it occurs would show it
    /// ("<redacted> password" for the password "wrong").
    pub fn redact(&self, text: &str) -> String {
        if self.0.chars().count() < MIN_REDACTED_LEN {
            return text.to_string();
        }
        text.replace(self.0.as_str(), REDACTED)
    }
}

/// Apple Account passwords have at least 8 characters; shorter ones are not looked for.
const MIN_REDACTED_LEN: usize = 6;

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl std::str::FromStr for Password {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Password::new(s))
    }
}

/// Why a password could not be obtained. Messages never contain the password or the output of
/// a password command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("cannot read the password file {path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("the password file {path} is empty")]
    EmptyFile { path: PathBuf },
    #[error("the password command could not be started: {detail}")]
    CommandStart { detail: String },
    #[error("the password command failed ({status}); its output is not shown")]
    CommandFailed { status: String },
    #[error(
        "the password command printed no password on its first line (the first line is the password)"
    )]
    CommandEmpty,
    #[error("the password command did not finish within {} s and was stopped", .0.as_secs())]
    CommandTimeout(Duration),
}

/// Where the password may come from, tried in this order.
#[derive(Debug, Clone, Default)]
pub struct PasswordSources {
    /// `-p/--password` or `ICLOUD_PASSWORD`.
    pub literal: Option<Password>,
    /// `--password-file`: its first line.
    pub file: Option<PathBuf>,
    /// `--password-command`: run by `sh -c`, first line of its standard output.
    pub command: Option<String>,
}

impl PasswordSources {
    /// Only a literal password.
    pub fn literal(password: impl Into<String>) -> Self {
        PasswordSources {
            literal: Some(Password::new(password)),
            ..Default::default()
        }
    }

    /// True when some non-interactive source is configured.
    pub fn any(&self) -> bool {
        self.given_literal().is_some() || self.file.is_some() || self.command.is_some()
    }

    /// The literal password, unless it is empty: `-p ""` or an empty `ICLOUD_PASSWORD` (a
    /// variable left blank in a service file) count as not given, so that the next source is
    /// used and no sign-in that Apple can only refuse is sent (refusals lead to throttling).
    fn given_literal(&self) -> Option<&Password> {
        self.literal.as_ref().filter(|p| !p.expose().is_empty())
    }

    /// The password from the first configured non-interactive source, `None` if none is.
    pub async fn resolve(&self) -> Result<Option<Password>, PasswordError> {
        if let Some(p) = self.given_literal() {
            return Ok(Some(p.clone()));
        }
        if let Some(path) = &self.file {
            return read_password_file(path).map(Some);
        }
        if let Some(cmd) = &self.command {
            return run_password_command(cmd, PASSWORD_COMMAND_TIMEOUT)
                .await
                .map(Some);
        }
        Ok(None)
    }
}

/// First line of `s` without its line ending.
fn first_line(s: &str) -> &str {
    s.split('\n').next().unwrap_or("").trim_end_matches('\r')
}

fn read_password_file(path: &Path) -> Result<Password, PasswordError> {
    let bytes = std::fs::read(path).map_err(|e| PasswordError::File {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let bytes = Zeroizing::new(bytes);
    let text = std::str::from_utf8(&bytes).map_err(|_| PasswordError::File {
        path: path.to_path_buf(),
        detail: "not UTF-8 text".into(),
    })?;
    warn_if_readable_by_others(path);
    let line = first_line(text);
    if line.is_empty() {
        return Err(PasswordError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(Password::new(line))
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the password file is readable by other users; consider chmod 600"
        );
    }
}

/// Run `sh -c command` with no input, wait at most `timeout`, return the first output line.
pub async fn run_password_command(
    command: &str,
    timeout: Duration,
) -> Result<Password, PasswordError> {
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| PasswordError::CommandStart {
            detail: e.to_string(),
        })?;
    let mut out = child.stdout.take();
    let run = async {
        let mut stdout = Vec::new();
        if let Some(out) = out.as_mut() {
            tokio::io::AsyncReadExt::read_to_end(out, &mut stdout).await?;
        }
        Ok::<_, std::io::Error>((child.wait().await?, stdout))
    };
    let (status, stdout) = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            return Err(PasswordError::CommandStart {
                detail: e.to_string(),
            });
        }
        Err(_) => {
            // What the shell started (a hung `gpg`, a pinentry) would outlive it, so its
            // descendants are killed while it still holds them, then the shell (kill_on_drop).
            // The command keeps our process group, not one of its own: a pinentry in another
            // group could not read the terminal.
            if let Some(shell) = child.id() {
                kill_descendants(shell);
            }
            return Err(PasswordError::CommandTimeout(timeout));
        }
    };
    let stdout = Zeroizing::new(stdout);
    if !status.success() {
        return Err(PasswordError::CommandFailed {
            status: status.to_string(),
        });
    }
    let text = String::from_utf8_lossy(&stdout);
    let line = first_line(&text);
    if line.is_empty() {
        return Err(PasswordError::CommandEmpty);
    }
    Ok(Password::new(line))
}

/// SIGKILL every living descendant of `pid` (found through `/proc`; a process that detached
/// itself, such as a `gpg-agent` daemon, is no longer one and is left alone).
fn kill_descendants(pid: u32) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let parents: Vec<(u32, u32)> = entries
        .flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`, where comm may hold spaces and parentheses.
            let after_comm = &stat[stat.rfind(')')? + 1..];
            let parent = after_comm.split_whitespace().nth(1)?.parse().ok()?;
            Some((child, parent))
        })
        .collect();
    let mut family = vec![pid];
    let mut i = 0;
    while i < family.len() {
        let parent = family[i];
        family.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    for &descendant in &family[1..] {
        if let Ok(descendant) = i32::try_from(descendant) {
            // SAFETY: kill(2) with a pid read from /proc; a process gone since is ESRCH.
            unsafe { libc::kill(descendant, libc::SIGKILL) };
        }
    }
}

/// Read a line from the terminal without echo (the password prompt). Fails when stdin is not
/// a terminal.
pub fn prompt_hidden(prompt: &str) -> std::io::Result<Password> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(std::io::Error::other("standard input is not a terminal"));
    }
    let mut stderr = std::io::stderr();
    write!(stderr, "{prompt}")?;
    stderr.flush()?;
    let echo = EchoOff::new(libc::STDIN_FILENO)?;
    let mut line = Zeroizing::new(String::new());
    let read = stdin.lock().read_line(&mut line);
    // ECHONL already echoed the newline the user typed.
    drop(echo);
    if read? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no password entered",
        ));
    }
    Ok(Password::new(first_line(&line)))
}

/// Terminal echo switched off until dropped. While it is off, a signal that ends the process
/// (SIGINT, SIGTERM, SIGHUP, SIGQUIT) puts the saved settings back first: Drop never runs
/// when such a signal kills the process, and a shell left with echo off looks broken.
struct EchoOff {
    fd: i32,
    saved: libc::termios,
    /// Dispositions in place before ours, put back exactly on drop (the program installs its
    /// own handlers later, and an ignored SIGHUP under `nohup` must stay ignored).
    previous: Vec<(libc::c_int, libc::sigaction)>,
    /// One prompt at a time: the handler reads a single saved state.
    _exclusive: std::sync::MutexGuard<'static, ()>,
}

/// The signals whose default action ends the process and that a user sends at a prompt.
const FATAL_AT_PROMPT: [libc::c_int; 4] =
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

static ECHO_OFF_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The terminal settings to restore, where a signal handler can read them: written before
/// the handlers are installed, read only while `armed`.
struct SavedTerminal {
    armed: std::sync::atomic::AtomicBool,
    fd: std::sync::atomic::AtomicI32,
    termios: std::cell::UnsafeCell<std::mem::MaybeUninit<libc::termios>>,
}

// SAFETY: `termios` is written only under ECHO_OFF_LOCK while `armed` is false (no handler
// reads it then), and read by the handler only after `armed` was set with Release ordering.
unsafe impl Sync for SavedTerminal {}

static SAVED_TERMINAL: SavedTerminal = SavedTerminal {
    armed: std::sync::atomic::AtomicBool::new(false),
    fd: std::sync::atomic::AtomicI32::new(-1),
    termios: std::cell::UnsafeCell::new(std::mem::MaybeUninit::uninit()),
};

/// Restore the terminal, then die of `signal` as if no handler had been installed (the exit
/// status a shell expects: 128 + signal). Only async-signal-safe calls.
extern "C" fn restore_terminal_and_die(signal: libc::c_int) {
    use std::sync::atomic::Ordering;
    // SAFETY: tcsetattr, sigaction and raise are async-signal-safe; the termios is complete
    // once `armed` reads true (see SavedTerminal).
    unsafe {
        if SAVED_TERMINAL.armed.load(Ordering::Acquire) {
            let fd = SAVED_TERMINAL.fd.load(Ordering::Relaxed);
            let termios = (*SAVED_TERMINAL.termios.get()).as_ptr();
            libc::tcsetattr(fd, libc::TCSANOW, termios);
        }
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(signal, &default, std::ptr::null_mut());
        // Blocked while this handler runs; delivered, with the default action, when it returns.
        libc::raise(signal);
    }
}

impl EchoOff {
    fn new(fd: i32) -> std::io::Result<Self> {
        use std::sync::atomic::Ordering;
        let exclusive = ECHO_OFF_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: termios is a plain C struct; tcgetattr fills it or fails.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: not armed, so no handler reads it; the lock keeps other prompts out.
        unsafe { (*SAVED_TERMINAL.termios.get()).write(saved) };
        SAVED_TERMINAL.fd.store(fd, Ordering::Relaxed);
        SAVED_TERMINAL.armed.store(true, Ordering::Release);
        // From here on, Drop disarms and puts back whatever was installed.
        let mut guard = EchoOff {
            fd,
            saved,
            previous: Vec::new(),
            _exclusive: exclusive,
        };
        guard.catch_fatal_signals()?;
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: fd is a terminal (tcgetattr succeeded) and `quiet` a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(guard)
    }

    /// Install [`restore_terminal_and_die`] for each of [`FATAL_AT_PROMPT`] not ignored,
    /// remembering the previous disposition.
    fn catch_fatal_signals(&mut self) -> std::io::Result<()> {
        // SAFETY: sigaction with valid, zero-initialised structs; the handler only makes
        // async-signal-safe calls.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = restore_terminal_and_die as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            for signal in FATAL_AT_PROMPT {
                libc::sigaddset(&mut action.sa_mask, signal);
            }
            for signal in FATAL_AT_PROMPT {
                let mut previous: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, std::ptr::null(), &mut previous) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Ignored (`nohup`, a parent's choice): it would not end the process.
                if previous.sa_sigaction == libc::SIG_IGN {
                    continue;
                }
                if libc::sigaction(signal, &action, &mut previous) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                self.previous.push((signal, previous));
            }
        }
        Ok(())
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `new` on the same descriptor, then the
        // dispositions sigaction returned when ours were installed.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
            for (signal, previous) in self.previous.drain(..).rev() {
                libc::sigaction(signal, &previous, std::ptr::null_mut());
            }
        }
        SAVED_TERMINAL
            .armed
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_formats_itself() {
        let p = Password::new("hunter2-secret");
        assert_eq!(format!("{p}"), REDACTED);
        assert_eq!(format!("{p:?}"), REDACTED);
        let sources = PasswordSources::literal("hunter2-secret");
        assert!(!format!("{sources:?}").contains("hunter2"));
        assert_eq!(
            p.redact("x hunter2-secret y hunter2-secret"),
            "x <redacted> y <redacted>"
        );
        assert_eq!(Password::new("").redact("abc"), "abc");
        // Too short to be an Apple password: a word of the message, not marked.
        assert_eq!(
            Password::new("wrong").redact("wrong password for e@x.com"),
            "wrong password for e@x.com"
        );
    }

    #[tokio::test]
    async fn sources_are_tried_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\r\nsecond line\n").expect("write");
        let mut sources = PasswordSources {
            literal: Some(Password::new("literal")),
            file: Some(file.clone()),
            command: Some("echo from-command".into()),
        };
        assert_eq!(
            sources.resolve().await.expect("ok").expect("some").expose(),
            "literal"
        );
        sources.literal = None;
        assert_eq!(
            sources.resolve().await.expect("ok").expect("some").expose(),
            "from-file"
        );
        sources.file = None;
        assert_eq!(
            sources.resolve().await.expect("ok").expect("some").expose(),
            "from-command"
        );
        sources.command = None;
        assert!(sources.resolve().await.expect("ok").is_none());
    }

    /// `-p ""` or `ICLOUD_PASSWORD=`: not a password, the next source is used.
    #[tokio::test]
    async fn an_empty_literal_is_no_password() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").expect("write");
        let mut sources = PasswordSources {
            literal: Some(Password::new("")),
            file: Some(file),
            command: Some("echo from-command".into()),
        };
        assert_eq!(
            sources.resolve().await.expect("ok").expect("some").expose(),
            "from-file"
        );
        sources.file = None;
        assert_eq!(
            sources.resolve().await.expect("ok").expect("some").expose(),
            "from-command"
        );
        sources.command = None;
        assert!(!sources.any());
        assert!(sources.resolve().await.expect("ok").is_none());
    }

    #[tokio::test]
    async fn command_failures_do_not_show_output() {
        let err = run_password_command("echo leaked-secret; exit 3", Duration::from_secs(10))
            .await
            .expect_err("non-zero exit");
        assert!(
            matches!(err, PasswordError::CommandFailed { .. }),
            "{err:?}"
        );
        assert!(!err.to_string().contains("leaked-secret"));
        let err = run_password_command("true", Duration::from_secs(10))
            .await
            .expect_err("no output");
        assert_eq!(err, PasswordError::CommandEmpty);
    }

    #[tokio::test]
    async fn command_is_bounded_in_time_and_leaves_no_process_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        // The shell starts a child of its own (a hung `gpg` in real life) and waits for it.
        let command = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let err = run_password_command(&command, Duration::from_millis(300))
            .await
            .expect_err("timeout");
        assert_eq!(
            err,
            PasswordError::CommandTimeout(Duration::from_millis(300))
        );
        let sleep_pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("the command wrote its child's pid")
            .trim()
            .parse()
            .expect("a pid");
        let stat = format!("/proc/{sleep_pid}/stat");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        // Gone, or a zombie waiting for its parent (also killed) to be reaped by init.
        while std::fs::read_to_string(&stat).is_ok_and(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        }) {
            assert!(
                std::time::Instant::now() < deadline,
                "the command's child still runs"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The echo guard on a pseudo-terminal: echo off while it lives, then the terminal and
    /// every signal disposition exactly as they were (a handler of the program's own, an
    /// ignored signal left ignored). The binary dying of each signal at the prompt is tested in
    /// tests/auth/cli.rs.
    #[test]
    fn echo_off_puts_back_the_terminal_and_the_signal_dispositions() {
        extern "C" fn program_handler(_: libc::c_int) {}
        fn disposition(signal: libc::c_int) -> libc::sigaction {
            // SAFETY: queries only.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                assert_eq!(libc::sigaction(signal, std::ptr::null(), &mut action), 0);
                action
            }
        }
        fn set(signal: libc::c_int, action: &libc::sigaction) {
            // SAFETY: a valid action; nothing in this test process sends these signals.
            assert_eq!(
                unsafe { libc::sigaction(signal, action, std::ptr::null_mut()) },
                0
            );
        }
        fn echo_on(fd: i32) -> bool {
            // SAFETY: tcgetattr on an open terminal.
            let mut t: libc::termios = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::tcgetattr(fd, &mut t) }, 0);
            t.c_lflag & libc::ECHO != 0
        }
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty fills two descriptors, closed at the end.
        let opened = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(opened, 0, "{}", std::io::Error::last_os_error());
        let original = FATAL_AT_PROMPT.map(disposition);
        // SIGTERM handled by the program, SIGHUP ignored (nohup); SIGINT, SIGQUIT as they are.
        // SAFETY: zeroed sigaction structs filled field by field.
        let (handled, ignored) = unsafe {
            let mut handled: libc::sigaction = std::mem::zeroed();
            handled.sa_sigaction = program_handler as extern "C" fn(libc::c_int) as usize;
            handled.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut handled.sa_mask);
            libc::sigaddset(&mut handled.sa_mask, libc::SIGUSR1);
            let mut ignored: libc::sigaction = std::mem::zeroed();
            ignored.sa_sigaction = libc::SIG_IGN;
            (handled, ignored)
        };
        set(libc::SIGTERM, &handled);
        set(libc::SIGHUP, &ignored);
        let before = FATAL_AT_PROMPT.map(disposition);

        assert!(echo_on(slave));
        let echo = EchoOff::new(slave).expect("echo off");
        assert!(!echo_on(slave));
        let ours = restore_terminal_and_die as extern "C" fn(libc::c_int) as usize;
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT] {
            assert_eq!(disposition(signal).sa_sigaction, ours, "signal {signal}");
        }
        assert_eq!(disposition(libc::SIGHUP).sa_sigaction, libc::SIG_IGN);
        drop(echo);

        assert!(echo_on(slave));
        assert!(
            !SAVED_TERMINAL
                .armed
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        for (signal, (now, before)) in FATAL_AT_PROMPT
            .into_iter()
            .zip(FATAL_AT_PROMPT.map(disposition).iter().zip(&before))
        {
            assert_eq!(now.sa_sigaction, before.sa_sigaction, "signal {signal}");
            // glibc adds SA_RESTORER (its return trampoline) to every action it installs, so a
            // default never set by anyone comes back with it; that flag changes nothing.
            const SA_RESTORER: libc::c_int = 0x0400_0000;
            assert_eq!(
                now.sa_flags & !SA_RESTORER,
                before.sa_flags & !SA_RESTORER,
                "signal {signal}"
            );
            // SAFETY: membership tests on valid sets.
            unsafe {
                assert_eq!(
                    libc::sigismember(&now.sa_mask, libc::SIGUSR1),
                    libc::sigismember(&before.sa_mask, libc::SIGUSR1),
                    "signal {signal}"
                );
            }
        }
        for (signal, action) in FATAL_AT_PROMPT.into_iter().zip(&original) {
            set(signal, action);
        }
        // SAFETY: the descriptors openpty returned, closed once.
        unsafe {
            libc::close(slave);
            libc::close(master);
        }
    }

    #[test]
    fn empty_or_missing_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        assert!(matches!(
            read_password_file(&empty),
            Err(PasswordError::EmptyFile { .. })
        ));
        assert!(matches!(
            read_password_file(&dir.path().join("missing")),
            Err(PasswordError::File { .. })
        ));
    }
}

//! The command line: parse flags, wire the modules, print progress and summaries. No business
//! logic lives here.

/// `println!` and `eprintln!` that never panic: a run whose terminal closed (SIGHUP, a dropped
/// ssh session) or whose output pipe went away still finishes, records and cleans up.
macro_rules! outln {
    ($($arg:tt)*) => {{
        let _ = std::io::Write::write_fmt(
            &mut std::io::stdout(),
            format_args!("{}\n", format_args!($($arg)*)),
        );
    }};
}
macro_rules! errln {
    ($($arg:tt)*) => {{
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr(),
            format_args!("{}\n", format_args!($($arg)*)),
        );
    }};
}

pub mod args;
mod catalog_cmd;
pub mod config;
pub mod context;
mod demo_cmd;
pub mod global;
mod login_cmd;
pub mod mount_cmd;
mod progress;
mod prompter;
mod sim_cmd;
mod state_cmd;
pub mod sync_cmd;

use clap::{Parser, Subcommand};

/// Exit codes shared by every command.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Failure (bad input, I/O, server errors).
    pub const FAILURE: i32 = 1;
    /// Partial success: some items failed.
    pub const PARTIAL: i32 = 2;
    /// Authentication needed or refused.
    pub const AUTH: i32 = 3;
}

/// How runs end, for `--help`.
const EXIT_HELP: &str = "Exit codes: 0 ok, 1 failure (bad input, disk, server), 2 partial (some \
files failed; see `status --failed`), 3 authentication needed (run `login`). A sync stopped by a \
signal exits with 128 + its number (130 for Ctrl-C, 143 for SIGTERM), as shells expect: files in \
flight get 10 s to finish, what is done is recorded, the next run resumes the rest; a second \
signal quits at once (finished files not yet recorded are adopted by the next run). A mount \
unmounts on a signal and exits 0, or 130 when a second signal stopped it while in use.";

/// What `sync` does to files already in the folder, for `sync --help`.
const SYNC_HELP: &str = "Files already there: a file recorded as downloaded is skipped without \
being read; an unknown file at a planned path with exactly the planned size is adopted, as \
icloudpd does (any other file in the way is reported, never overwritten); after `reset-state` \
each recorded file is read back and kept only if its SHA-256 is the one recorded. A photo edited \
in iCloud gets its new file; the file it replaces (its original under --size adjusted, an older \
copy of the edit) is removed once the new one is on disk, and only if its bytes are still the \
ones downloaded. Nothing else is ever deleted unless --auto-delete is given.

Deletions (--auto-delete, --delete-after-download, --keep-icloud-recent-days) are asked about \
first on a terminal; without one (cron, systemd) they need --yes, or the run is refused at the \
start with exit code 1.

Exit codes: 0 ok, 1 failure (or a deletion refused for want of --yes), 2 partial, 3 sign-in \
refused (run `icloudpd-rs login`, or wait when Apple is throttling sign-ins), 128 + N when stopped by signal N (130 Ctrl-C, 143 SIGTERM; the next run \
resumes).";

/// Your iCloud Photos library as ordinary files.
#[derive(Debug, Parser)]
#[command(name = "icloudpd-rs", version, about, long_about = None, after_help = EXIT_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How much to log on standard error (default info; `RUST_LOG` gives finer control).
    #[arg(long, global = true, value_enum, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,
}

/// `--log-level` values (icloudpd's, plus warn and trace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download the library into a folder tree, resumably (the default: `icloudpd-rs -u ME
    /// -d DIR` means `icloudpd-rs sync -u ME -d DIR`).
    #[command(after_help = SYNC_HELP)]
    Sync(Box<sync_cmd::SyncArgs>),
    /// Download again the files whose last attempt failed (the sync's flags, without its
    /// dry run, watching and deleting).
    RetryFailed(Box<sync_cmd::EngineArgs>),
    /// Adopt a folder written by the Python icloudpd or by hand: match files by path, name
    /// and size, record them as downloaded, download nothing (the sync's flags, without its
    /// dry run, watching and deleting).
    #[command(mut_arg("directory", |a| a.help("The folder the files are in")))]
    ImportExisting(Box<sync_cmd::EngineArgs>),
    /// Check that the files recorded as downloaded are on disk, whole (and with --checksums,
    /// unchanged).
    Verify(state_cmd::VerifyArgs),
    /// Forget what was downloaded into a folder. Files stay; the next sync reads each one
    /// back and keeps it only if its SHA-256 is the one recorded at download (a changed file
    /// is reported, never overwritten), and downloads what is missing.
    ResetState(state_cmd::ResetStateArgs),
    /// Try it all without an Apple account: a simulated library, mounted and mirrored, with
    /// things to try. Ctrl-C cleans everything up.
    Demo(demo_cmd::DemoArgs),
    /// Show the library as a folder tree (FUSE): the same tree `sync` writes, plus albums and
    /// smart folders; bytes are fetched on read and cached. Runs until Ctrl-C or `fusermount3 -u`.
    Mount(Box<mount_cmd::MountArgs>),
    /// Run the iCloud simulator (a local fake of Apple's servers) until interrupted.
    Sim(crate::sim::SimConfig),
    /// Sign in to iCloud once (password, two-factor code) and save the session for later runs.
    Login(login_cmd::LoginArgs),
    /// Bring the local catalog up to date with iCloud (full listing first, then changes only).
    Refresh(catalog_cmd::RefreshArgs),
    /// List albums or libraries from the catalog (no network).
    #[command(subcommand)]
    List(catalog_cmd::ListWhat),
    /// Summarise the catalog, downloads and session (no network).
    Status(catalog_cmd::StatusArgs),
    /// Print a shell completion script (e.g. `icloudpd-rs completions bash >
    /// ~/.local/share/bash-completion/completions/icloudpd-rs`).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// Parse the command line, run the command, return the process exit code.
pub fn main() -> i32 {
    let given: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Options before the command (`icloudpd-rs --data-dir D status`, as `git -C D status`):
    // when the line as given does not parse, the same words with the command first may.
    let parsed =
        parse(with_default_command(given.clone())).or_else(|first| match commands_first(&given) {
            Some(reordered) => parse(reordered),
            None => Err(first),
        });
    let (cli, notes) = match parsed {
        Ok(parsed) => parsed,
        Err(ParseError::Config(message)) => {
            eprintln!("icloudpd-rs: {message}");
            return exit::FAILURE;
        }
        Err(ParseError::Clap(e)) => {
            let code = if e.use_stderr() {
                exit::FAILURE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    init_logging(cli.log_level);
    for note in &notes {
        tracing::debug!("{note}");
    }
    if matches!(
        cli.command,
        Command::List(_) | Command::Status(_) | Command::Verify(_) | Command::Completions { .. }
    ) {
        stop_quietly_when_the_reader_goes();
    }
    match cli.command {
        Command::Sync(args) => sync_cmd::run(*args),
        Command::RetryFailed(args) => state_cmd::retry_failed(*args),
        Command::ImportExisting(args) => state_cmd::import_existing(*args),
        Command::Verify(args) => state_cmd::verify(args),
        Command::ResetState(args) => state_cmd::reset_state(args),
        Command::Demo(args) => demo_cmd::run(args),
        Command::Mount(args) => mount_cmd::run(*args),
        Command::Sim(config) => sim_cmd::run(config),
        Command::Login(args) => login_cmd::run(args),
        Command::Refresh(args) => catalog_cmd::refresh_cmd(args),
        Command::List(what) => catalog_cmd::list_cmd(what),
        Command::Status(args) => catalog_cmd::status_cmd(args),
        Command::Completions { shell } => completions(shell),
    }
}

/// `completions SHELL`: the script clap_complete generates, with the bash one repaired.
///
/// clap_complete's bash script breaks on a hyphenated binary name (clap-rs/clap#6421, still
/// open): its dispatch loop names a subcommand `icloudpd__rs__subcmd__sync` while its case
/// labels read `icloudpd__subcmd__rs__subcmd__sync`, so nothing after a subcommand completes
/// (`icloudpd-rs sync --skip-v<TAB>`). Writing the binary's part of the labels as the loop
/// does makes them match. A clap_complete that fixes the bug no longer produces the wrong
/// form, and the replacement then changes nothing.
fn completions(shell: clap_complete::Shell) -> i32 {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "icloudpd-rs", &mut script);
    if shell == clap_complete::Shell::Bash {
        script = String::from_utf8_lossy(&script)
            .replace("icloudpd__subcmd__rs", "icloudpd__rs")
            .into_bytes();
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A reader that goes away ends the process by SIGPIPE (see main).
    let _ = out.write_all(&script);
    let _ = out.flush();
    exit::OK
}

/// `NO_COLOR` set to anything but the empty string turns colours off (no-color.org).
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Commands that print listings stop quietly when their reader goes away (`| head`), as Unix
/// tools do: Rust ignores SIGPIPE, so the next print would panic instead. Long-running
/// commands keep ignoring it (their sockets and pipes report EPIPE as an error to handle).
fn stop_quietly_when_the_reader_goes() {
    // SAFETY: restores the default disposition of one signal; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The bare form (`icloudpd-rs --username ME --directory DIR`, as icloudpd users type it):
/// options without a command mean `sync`.
fn with_default_command(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let first = argv.get(1).and_then(|a| a.to_str()).unwrap_or("");
    let is_option = first.starts_with('-');
    let asks_for_help = matches!(first, "-h" | "--help" | "-V" | "--version");
    if is_option && !asks_for_help {
        argv.insert(1, "sync".into());
    }
    argv
}

/// `icloudpd-rs --data-dir D status`, `icloudpd-rs list --data-dir D albums`: the command
/// line with its commands first and every other word after them, in order; `None` when that
/// changes nothing.
fn commands_first(argv: &[std::ffi::OsString]) -> Option<Vec<std::ffi::OsString>> {
    let (program, words) = argv.split_first()?;
    let mut level = <Cli as clap::CommandFactory>::command();
    let (mut commands, mut rest) = (Vec::new(), Vec::new());
    for word in words {
        let name = word.to_string_lossy();
        let sub = (!name.starts_with('-'))
            .then(|| level.find_subcommand(word).cloned())
            .flatten();
        match sub {
            Some(sub) => {
                commands.push(word.clone());
                level = sub;
            }
            None => rest.push(word.clone()),
        }
    }
    let reordered: Vec<_> = std::iter::once(program.clone())
        .chain(commands)
        .chain(rest)
        .collect();
    (reordered != argv).then_some(reordered)
}

enum ParseError {
    /// The config file (`--config`) is unusable.
    Config(String),
    Clap(clap::Error),
}

/// The command line, with the config file's settings merged in, parsed; and the notes the
/// merge left for the log.
fn parse(argv: Vec<std::ffi::OsString>) -> Result<(Cli, Vec<String>), ParseError> {
    let merged = config::merge_config_file(&<Cli as clap::CommandFactory>::command(), argv)
        .map_err(ParseError::Config)?;
    let cli = Cli::try_parse_from(merged.argv).map_err(ParseError::Clap)?;
    Ok((cli, merged.notes))
}

/// Logs go to stderr (above `sync`'s progress bar when one is shown); `RUST_LOG` overrides
/// the default level.
///
/// fuser's own lines are for debugging fuser: unless `RUST_LOG` names fuser, only its warnings
/// are shown (its info lines repeat what the mount says: "Unmounting ..."), and none from its
/// session, which warns whenever its final unmount finds the filesystem already unmounted, as
/// after every `fusermount3 -u` (its own comment says this is not necessarily an error); the
/// mount checks the outcome itself. Nor its "Failed to send FUSE reply" errors: the kernel
/// refuses a reply to a request that was interrupted (a reader killed mid-read) or to a
/// connection already gone (after a lazy unmount); neither is something the user can act on.
/// Nor cookie values (see below), unless `RUST_LOG` names `cookie_store`.
fn init_logging(level: Option<LogLevel>) {
    // The flag, given on this command line, wins over the environment.
    let user = match level {
        Some(level) => Some(level.directive().to_string()),
        None => std::env::var("RUST_LOG").ok(),
    };
    let mut filter = user
        .as_deref()
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let named = |krate: &str| user.as_deref().is_some_and(|v| v.contains(krate));
    let mut quiet = Vec::new();
    if !named("fuser") {
        quiet.extend(["fuser=warn", "fuser::session=error", "fuser::reply=off"]);
    }
    // cookie_store logs every cookie it stores, value included, at debug: the web session
    // itself. A debug log attached to a bug report must not hand it over.
    if !named("cookie_store") {
        quiet.push("cookie_store=info");
    }
    for directive in quiet {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress::LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && !no_color())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::commands_first;

    fn line(words: &[&str]) -> Vec<std::ffi::OsString> {
        words.iter().map(Into::into).collect()
    }

    #[test]
    fn commands_sharing_syncs_flags_do_not_offer_those_they_refuse() {
        use clap::CommandFactory;
        let mut cli = super::Cli::command();
        for name in ["retry-failed", "import-existing"] {
            let help = cli
                .find_subcommand_mut(name)
                .unwrap()
                .render_long_help()
                .to_string();
            for refused in [
                "--dry-run",
                "--auto-delete",
                "--watch-with-interval",
                "--yes",
            ] {
                assert!(!help.contains(refused), "{name} offers {refused}");
            }
            assert!(help.contains("--recent"), "{name}");
        }
        let sync = cli.find_subcommand_mut("sync").unwrap().render_long_help();
        assert!(sync.to_string().contains("--auto-delete"));
    }

    #[test]
    fn options_before_the_command_move_after_it() {
        let reordered = |words: &[&str]| {
            commands_first(&line(words)).map(|w| {
                w.iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            reordered(&["icloudpd-rs", "--data-dir", "my data", "status"]).unwrap(),
            ["icloudpd-rs", "status", "--data-dir", "my data"]
        );
        assert_eq!(
            reordered(&["icloudpd-rs", "-u", "me", "mount", "/m"]).unwrap(),
            ["icloudpd-rs", "mount", "-u", "me", "/m"]
        );
        // A command group's own command comes first too, wherever it was.
        assert_eq!(
            reordered(&[
                "icloudpd-rs",
                "-u",
                "me",
                "list",
                "--data-dir",
                "d",
                "albums"
            ])
            .unwrap(),
            [
                "icloudpd-rs",
                "list",
                "albums",
                "-u",
                "me",
                "--data-dir",
                "d"
            ]
        );
        assert_eq!(
            reordered(&["icloudpd-rs", "list", "--data-dir", "d", "libraries"]).unwrap(),
            ["icloudpd-rs", "list", "libraries", "--data-dir", "d"]
        );
        // The bare form means sync; a command given first is not this mistake.
        assert_eq!(reordered(&["icloudpd-rs", "-u", "me", "--bogus"]), None);
        assert_eq!(reordered(&["icloudpd-rs", "status", "-u", "me"]), None);
    }
}

//! The command line: parse flags, wire the modules, print progress and summaries. No business
//! logic lives here.

pub mod args;
mod catalog_cmd;
pub mod config;
pub mod context;
pub mod global;
mod login_cmd;
mod sim_cmd;

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

/// Your iCloud Photos library as ordinary files.
#[derive(Debug, Parser)]
#[command(name = "icloudpd-rs", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
}

/// Parse the command line, run the command, return the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::FAILURE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    init_logging();
    match cli.command {
        Command::Sim(config) => sim_cmd::run(config),
        Command::Login(args) => login_cmd::run(args),
        Command::Refresh(args) => catalog_cmd::refresh_cmd(args),
        Command::List(what) => catalog_cmd::list_cmd(what),
        Command::Status(args) => catalog_cmd::status_cmd(args),
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the default level.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

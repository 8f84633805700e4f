//! Options shared by every command that talks to iCloud (flattened into each of them): who
//! signs in, with which password source, where state lives, which servers to use.

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::{
    AuthError, AuthOptions, Domain, Endpoints, Password, PasswordSources, default_data_dir,
};

/// Account, password, data directory and server options.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Apple ID (email address or phone number); optional when the data dir holds one account.
    #[arg(short = 'u', long, env = "ICLOUD_USERNAME", value_name = "APPLE_ID")]
    pub username: Option<String>,

    /// Password (prefer --password-file or --password-command: command lines are visible to
    /// other users).
    #[arg(
        short = 'p',
        long,
        env = "ICLOUD_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub password: Option<Password>,

    /// Read the password from the first line of this file.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Run this shell command and use the first line it prints as the password (30 s limit).
    #[arg(long, value_name = "COMMAND")]
    pub password_command: Option<String>,

    /// iCloud domain: com, or cn for accounts of mainland China.
    #[arg(long, value_enum, default_value_t = Domain::Com)]
    pub domain: Domain,

    /// Where sessions and catalogs are kept [default: $XDG_DATA_HOME/icloudpd-rs or
    /// ~/.local/share/icloudpd-rs].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Use this server for everything instead of Apple's (the simulator, a test proxy).
    #[arg(long, env = "ICLOUDPD_RS_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,

    /// Give up on a request after this many seconds without data.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,

    /// The accounts with a saved session in the data dir, looked up once when no `-u` is given.
    #[arg(skip)]
    saved_accounts: std::sync::OnceLock<Vec<String>>,
}

impl GlobalArgs {
    /// The Apple ID, or the error telling how to give one.
    pub fn username(&self) -> Result<&str, AuthError> {
        if let Some(u) = self
            .username
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            return Ok(u);
        }
        // No -u: the account signed in to before, when there is exactly one.
        let data_dir = self.data_dir()?;
        let saved = self
            .saved_accounts
            .get_or_init(|| crate::auth::saved_accounts(&data_dir));
        match saved.as_slice() {
            [] => Err(AuthError::NoSavedAccount {
                data_dir: data_dir.display().to_string(),
                exists: data_dir.is_dir(),
            }),
            [only] => Ok(only),
            several => Err(AuthError::WhichAccount {
                data_dir: data_dir.display().to_string(),
                accounts: several.join(", "),
            }),
        }
    }

    /// The data directory root.
    pub fn data_dir(&self) -> Result<PathBuf, AuthError> {
        match &self.data_dir {
            Some(d) => Ok(d.clone()),
            None => default_data_dir().ok_or_else(|| AuthError::Storage {
                path: PathBuf::from("~/.local/share/icloudpd-rs"),
                detail: "neither XDG_DATA_HOME nor HOME is set; use --data-dir".into(),
            }),
        }
    }

    /// Where the sign-in calls go.
    pub fn endpoints(&self) -> Result<Endpoints, AuthError> {
        match &self.endpoint {
            Some(url) => {
                Endpoints::custom(url, self.domain).map_err(|e| AuthError::Setup(e.to_string()))
            }
            None => Ok(Endpoints::apple(self.domain)),
        }
    }

    /// The password sources, in their order of precedence.
    pub fn password_sources(&self) -> PasswordSources {
        PasswordSources {
            literal: self.password.clone(),
            file: self.password_file.clone(),
            command: self.password_command.clone(),
        }
    }

    /// The `login` command line to suggest in messages, with the options that locate this
    /// account's session.
    pub fn login_command(&self) -> String {
        self.command_line("login")
    }

    /// `icloudpd-rs SUBCOMMAND` with the options that locate this account (its Apple ID,
    /// domain, data folder and endpoint), for messages that suggest a command.
    pub fn command_line(&self, subcommand: &str) -> String {
        let mut cmd = format!("icloudpd-rs {subcommand}");
        if let Ok(u) = self.username() {
            cmd.push_str(&format!(" -u {}", shell_word(u)));
        }
        if self.domain != Domain::Com {
            cmd.push_str(&format!(" --domain {}", self.domain));
        }
        if let Some(d) = &self.data_dir {
            // Absolute, so that the command also works from another folder (cron, a script).
            let d = std::path::absolute(d).unwrap_or_else(|_| d.clone());
            cmd.push_str(&format!(" --data-dir {}", shell_word(&d.to_string_lossy())));
        }
        if let Some(e) = &self.endpoint {
            cmd.push_str(&format!(" --endpoint {}", shell_word(e)));
        }
        cmd
    }

    /// Everything the sign-in needs.
    pub fn auth_options(&self) -> Result<AuthOptions, AuthError> {
        let username = self.username()?;
        let mut opts = AuthOptions::new(username, self.password_sources(), self.data_dir()?);
        opts.endpoints = self.endpoints()?;
        opts.net.read_timeout = Duration::from_secs(self.timeout);
        opts.login_command = self.login_command();
        Ok(opts)
    }
}

/// Quote a word for a POSIX shell when it needs it.
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        global: GlobalArgs,
    }

    #[test]
    fn login_command_names_the_session_location() {
        let p = Probe::try_parse_from([
            "x",
            "-u",
            "j doe@example.com",
            "--data-dir",
            "/d",
            "--endpoint",
            "http://127.0.0.1:1",
            "-p",
            "secret-pw",
        ])
        .expect("parse");
        let cmd = p.global.login_command();
        assert_eq!(
            cmd,
            "icloudpd-rs login -u 'j doe@example.com' --data-dir /d --endpoint http://127.0.0.1:1"
        );
        assert!(
            !format!("{p:?}").contains("secret-pw"),
            "Debug shows the password"
        );
        let opts = p.global.auth_options().expect("options");
        assert_eq!(opts.endpoints.setup, "http://127.0.0.1:1/setup/ws/1");
        assert_eq!(opts.data_dir, PathBuf::from("/d"));
    }

    #[test]
    fn a_relative_data_folder_is_suggested_absolute() {
        let p = Probe::try_parse_from(["x", "-u", "a@b.com", "--data-dir", "state"]).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            p.global.login_command(),
            format!(
                "icloudpd-rs login -u a@b.com --data-dir {}",
                shell_word(&cwd.join("state").to_string_lossy())
            )
        );
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_word("a@b.com"), "a@b.com");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}

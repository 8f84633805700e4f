//! What every account command needs: the account's directory, its catalog, a signed-in session,
//! an async runtime, and errors turned into messages and exit codes.

use std::path::PathBuf;

use super::exit;
use super::global::GlobalArgs;
use crate::auth::session_store::AccountStore;
use crate::auth::{AccountSession, AuthError, AuthOptions, Authenticator};
use crate::catalog::{Catalog, CatalogError};

/// File name of the catalog inside the account directory.
pub const CATALOG_FILE: &str = "catalog.sqlite";

/// An error of a command, with the exit code it maps to.
#[derive(Debug)]
pub struct CommandError {
    pub message: String,
    pub code: i32,
    /// SQLite found the catalog damaged ([`CatalogError::damage`]): [`report`] names the file
    /// and what to do, as the checks made when opening do.
    catalog_damage: Option<String>,
    /// Worth another try later (Apple throttling sign-ins): a mount with a catalog then
    /// mounts what it knows.
    pub transient: bool,
}

impl CommandError {
    /// A failure (exit code 1).
    pub fn failure(message: impl Into<String>) -> Self {
        CommandError::failure_or_auth(message.into(), false)
    }

    /// An authentication problem (exit code 3) when `auth_problem`, else a failure.
    fn failure_or_auth(message: String, auth_problem: bool) -> Self {
        CommandError {
            message,
            code: if auth_problem {
                exit::AUTH
            } else {
                exit::FAILURE
            },
            catalog_damage: None,
            transient: false,
        }
    }
}

impl From<AuthError> for CommandError {
    fn from(e: AuthError) -> Self {
        CommandError {
            transient: e.is_transient(),
            ..CommandError::failure_or_auth(e.to_string(), e.exits_as_sign_in_failure())
        }
    }
}

impl From<CatalogError> for CommandError {
    fn from(e: CatalogError) -> Self {
        CommandError {
            catalog_damage: e.damage(),
            ..CommandError::failure(e.to_string())
        }
    }
}

impl From<crate::refresh::RefreshError> for CommandError {
    fn from(e: crate::refresh::RefreshError) -> Self {
        CommandError::failure_or_auth(e.to_string(), e.exits_as_sign_in_failure())
    }
}

/// One account's files and sign-in options.
pub struct AccountContext {
    pub global: GlobalArgs,
    pub auth: AuthOptions,
    /// `<data dir>/<sanitised Apple ID>`: session, cookies, catalog.
    pub dir: PathBuf,
    /// The outermost of `dir` and its parents that did not exist before this run (the data
    /// folder too, on a first run): `None` for an account this data folder already holds.
    made_from: Option<PathBuf>,
}

impl AccountContext {
    /// Resolve the account from the global options (username, data dir, endpoint).
    pub fn new(global: &GlobalArgs) -> Result<Self, CommandError> {
        let auth = global.auth_options()?;
        let dir = AccountStore::new(&global.data_dir()?, global.username()?)
            .dir()
            .to_path_buf();
        let made_from = dir
            .ancestors()
            .take_while(|d| {
                !d.as_os_str().is_empty()
                    && std::fs::symlink_metadata(d)
                        .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            })
            .last()
            .map(PathBuf::from);
        Ok(AccountContext {
            global: global.clone(),
            auth,
            dir,
            made_from,
        })
    }

    /// A run that failed before signing in, for an account this data folder never held (a
    /// mistyped Apple ID, a wrong password, no network), leaves no folder behind. Only the
    /// folders this run created are removed: the account's, if it holds nothing but the empty
    /// catalog, cache and locks a run makes before it signs in, then its parents, while empty.
    pub(crate) fn forget_if_new(&self) {
        const MADE_BEFORE_SIGN_IN: [&str; 7] = [
            CATALOG_FILE,
            "catalog.sqlite-wal",
            "catalog.sqlite-shm",
            "catalog.sqlite-journal",
            "catalog.sqlite.lock",
            "auth.lock",
            "cache",
        ];
        let Some(made_from) = &self.made_from else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let only_made_before_sign_in = entries.flatten().all(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| MADE_BEFORE_SIGN_IN.contains(&n))
        });
        if !only_made_before_sign_in {
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::debug!(error = %e, dir = %self.dir.display(), "could not remove the new account folder");
            return;
        }
        let parents = self.dir.ancestors().skip(1);
        for parent in parents.take_while(|p| p.starts_with(made_from)) {
            if std::fs::remove_dir(parent).is_err() {
                break;
            }
        }
        tracing::debug!(dir = %made_from.display(), "nothing was kept: the folders this run made are removed");
    }

    /// The catalog's path.
    pub fn catalog_path(&self) -> PathBuf {
        self.dir.join(CATALOG_FILE)
    }

    /// Open the catalog as its writer, creating the account directory (0700) if needed.
    pub fn open_catalog(&self) -> Result<Catalog, CommandError> {
        create_private_dir(&self.dir)?;
        Ok(Catalog::open(self.catalog_path())?)
    }

    /// Open an existing catalog for reading; a clear error when there is none yet.
    pub fn open_catalog_read_only(&self) -> Result<Catalog, CommandError> {
        let path = self.catalog_path();
        if !path.exists() {
            return Err(CommandError::failure(format!(
                "no catalog yet for {} (run `icloudpd-rs refresh` or `icloudpd-rs sync` first)",
                self.auth.username
            )));
        }
        match Catalog::open_read_only(&path) {
            // A catalog of an older icloudpd-rs: migrated here when this process may (the
            // writer's open does it, with its backup), so that `status` after an upgrade
            // does not send the user to `sync` first. Where it may not (a read-only folder,
            // a running writer of the older build), the error says what to run.
            Err(e @ CatalogError::NeedsMigration { .. }) => match Catalog::open(&path) {
                Ok(writer) => {
                    drop(writer);
                    Ok(Catalog::open_read_only(path)?)
                }
                Err(_) => Err(e.into()),
            },
            other => Ok(other?),
        }
    }

    /// Sign in: the saved session, or the configured password; on a terminal, as icloudpd
    /// does, the password and a verification code may be asked for. Without one (cron, a
    /// service), nothing is asked and a needed code is an error naming `login`.
    pub async fn session(&self) -> Result<AccountSession, CommandError> {
        Ok(self.sign_in().await?)
    }

    /// [`AccountContext::session`], with the sign-in's own error.
    pub async fn sign_in(&self) -> Result<AccountSession, crate::auth::AuthError> {
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            let mut prompter = super::prompter::TerminalPrompter;
            let method = crate::auth::SecondFactor::TrustedDevice;
            return Authenticator::login(self.auth.clone(), &mut prompter, method).await;
        }
        Authenticator::resume(self.auth.clone()).await
    }

    /// Redact the password from a message.
    pub fn redact(&self, text: &str) -> String {
        match &self.global.password {
            Some(p) => p.redact(text),
            None => text.to_string(),
        }
    }
}

/// Create `dir` (and parents) with mode 0700 for the last component.
pub(crate) fn create_private_dir(dir: &std::path::Path) -> Result<(), CommandError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CommandError::failure(format!("cannot create {}: {e}", dir.display())))
}

/// A multi-threaded runtime for a command.
pub fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::failure(format!("cannot start the async runtime: {e}")))
}

/// Print an error (redacted) and return its exit code.
pub fn report(ctx: Option<&AccountContext>, e: CommandError) -> i32 {
    if let Some(ctx) = ctx {
        ctx.forget_if_new();
    }
    let text = match ctx {
        Some(ctx) => match e.catalog_damage {
            Some(detail) => CatalogError::Corrupt {
                path: ctx.catalog_path(),
                detail,
            }
            .to_string(),
            None => ctx.redact(&e.message),
        },
        None => e.message,
    };
    eprintln!("icloudpd-rs: {text}");
    e.code
}

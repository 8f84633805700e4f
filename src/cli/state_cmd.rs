//! The download-state commands: `verify [--checksums]`, `reset-state --yes`, and the two that
//! run the engine with the sync's flags, `retry-failed` and `import-existing`.

use std::path::PathBuf;

use super::context::{self, AccountContext, CommandError};
use super::exit;
use super::global::GlobalArgs;
use super::sync_cmd::{self, Action, EngineArgs, SyncArgs};
use crate::catalog::{DownloadState, DownloadStateKind, DownloadUpdate};

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The download folder to check (default: the account's only one).
    #[arg(short = 'd', long, value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// Also read every file and compare its SHA-256 with the one recorded (slow).
    #[arg(long)]
    pub checksums: bool,
    /// Mark the missing and damaged files as failed, so the next sync fetches them again
    /// (replacing the damaged ones).
    #[arg(long)]
    pub repair: bool,
}

/// Arguments of `reset-state`: forget what was downloaded. The next sync verifies each file
/// recorded before (size and SHA-256 read back): one that still matches is kept without a
/// download (renamed if the layout changed), one that changed is reported as failed and left
/// as it is (never overwritten: move it away to get iCloud's copy), a missing one is
/// downloaded.
#[derive(Debug, clap::Args)]
pub struct ResetStateArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Only this download folder (default: every folder of the account).
    #[arg(short = 'd', long, value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// Really forget the download state.
    #[arg(long)]
    pub yes: bool,
}

/// `retry-failed`.
pub fn retry_failed(args: EngineArgs) -> i32 {
    sync_cmd::run_action(without_sync_only(args), Action::RetryFailed)
}

/// `import-existing`.
pub fn import_existing(args: EngineArgs) -> i32 {
    sync_cmd::run_action(without_sync_only(args), Action::ImportExisting)
}

/// The sync's arguments with none of its own options (no dry run, watching or deleting).
fn without_sync_only(common: EngineArgs) -> SyncArgs {
    SyncArgs {
        common,
        sync: Default::default(),
    }
}

/// One problem `verify` found.
#[derive(Debug)]
enum Problem {
    Missing,
    Size {
        recorded: u64,
        found: u64,
    },
    Content,
    Unreadable(String),
    /// A symbolic link, a folder, ...: something the user put there.
    NotAFile,
}

/// What `verify` prints, and what `status --failed` shows after `--repair`.
impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing => f.write_str("missing"),
            Problem::NotAFile => f.write_str("not a regular file (a symbolic link or a folder)"),
            Problem::Size { recorded, found } => {
                write!(f, "size differs: recorded {recorded} bytes, found {found}")
            }
            Problem::Content => f.write_str("content differs from the recorded SHA-256"),
            Problem::Unreadable(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

/// `verify`.
pub fn verify(args: VerifyArgs) -> i32 {
    let ctx = match AccountContext::new(&args.global) {
        Ok(c) => c,
        Err(e) => return context::report(None, e),
    };
    match run_verify(&ctx, &args) {
        Ok(code) => code,
        Err(e) => context::report(Some(&ctx), e),
    }
}

fn run_verify(ctx: &AccountContext, args: &VerifyArgs) -> Result<i32, CommandError> {
    let catalog = ctx.open_catalog_read_only()?;
    let (root_id, root) = match args.directory.as_deref() {
        Some(dir) => {
            let root = sync_cmd::download_folder(Some(dir))?;
            let id = catalog.root_id(&root)?.ok_or_else(|| {
                CommandError::failure(format!(
                    "{} is not a download folder of this account (nothing was synced there)",
                    root.display()
                ))
            })?;
            (id, root)
        }
        // No -d: the account's one download folder, when it has one.
        None => match catalog.roots()?.as_slice() {
            [only] => (only.id, only.path.clone()),
            [] => {
                return Err(CommandError::failure(
                    "nothing was downloaded for this account yet: no folder to verify",
                ));
            }
            several => {
                let list: Vec<String> = several
                    .iter()
                    .map(|r| r.path.display().to_string())
                    .collect();
                return Err(CommandError::failure(format!(
                    "this account downloads into several folders ({}): choose one with -d DIR",
                    list.join(", ")
                )));
            }
        },
    };
    let mut checked = 0u64;
    let mut problems: Vec<(crate::catalog::VersionKey, String, Problem)> = Vec::new();
    let mut records = Vec::new();
    for record in catalog.downloads(root_id, DownloadStateKind::Downloaded) {
        let record = record?;
        if let DownloadState::Downloaded {
            rel_path,
            size,
            sha256,
            at_ms,
        } = record.state
        {
            records.push((record.version, rel_path, size, sha256, at_ms));
        }
    }
    // A path recorded for two versions (a folder removed by hand, then synced with another
    // `--size`) holds the file written last: the older record is stale, not a damaged file.
    let mut owner: std::collections::HashMap<&str, (i64, crate::catalog::VersionKey)> =
        std::collections::HashMap::new();
    for (version, rel_path, _, _, at_ms) in &records {
        let entry = owner.entry(rel_path.as_str()).or_insert((*at_ms, *version));
        if (*at_ms, *version) > *entry {
            *entry = (*at_ms, *version);
        }
    }
    let stale: Vec<(crate::catalog::VersionKey, String)> = records
        .iter()
        .filter(|(version, rel_path, ..)| owner[rel_path.as_str()].1 != *version)
        .map(|(version, rel_path, ..)| (*version, rel_path.clone()))
        .collect();
    drop(owner);
    let stale_versions: std::collections::HashSet<_> = stale.iter().map(|(v, _)| *v).collect();
    for (version, rel_path, size, sha256, _) in records {
        if stale_versions.contains(&version) {
            continue;
        }
        checked += 1;
        let path = root.join(&rel_path);
        // Not followed: a link put in a file's place is in the way for sync, not our file.
        let problem = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Problem::Missing),
            Err(e) => Some(Problem::Unreadable(e.to_string())),
            Ok(m) if !m.is_file() => Some(Problem::NotAFile),
            Ok(m) if m.len() != size => Some(Problem::Size {
                recorded: size,
                found: m.len(),
            }),
            Ok(_) if args.checksums => match hash(&path) {
                Ok(found) if found == sha256 => None,
                Ok(_) => Some(Problem::Content),
                Err(e) => Some(Problem::Unreadable(e.to_string())),
            },
            Ok(_) => None,
        };
        if let Some(p) = problem {
            println!("{rel_path}: {p}");
            problems.push((version, rel_path, p));
        }
    }
    drop(catalog);
    for (_, rel_path) in &stale {
        println!(
            "{rel_path}: an older record (the file there was written for another version since)"
        );
    }
    let missing = problems
        .iter()
        .filter(|(_, _, p)| matches!(p, Problem::Missing))
        .count();
    println!(
        "{checked} files checked{}: {missing} missing, {} damaged",
        if args.checksums {
            " (with checksums)"
        } else {
            ""
        },
        problems.len() - missing
    );
    if !stale.is_empty() {
        println!(
            "{} older records of files now written for another version{}",
            stale.len(),
            if args.repair {
                ": forgotten"
            } else {
                " (`--repair` forgets them)"
            }
        );
        if args.repair {
            let forget: Vec<DownloadUpdate> = stale
                .iter()
                .map(|(version, _)| DownloadUpdate::Forget { version: *version })
                .collect();
            ctx.open_catalog()?
                .apply_download_updates(root_id, &forget)?;
        }
    }
    if problems.is_empty() {
        return Ok(exit::OK);
    }
    if args.repair {
        let mut writer = ctx.open_catalog()?;
        let updates: Vec<DownloadUpdate> = problems
            .iter()
            .map(|(version, _, p)| DownloadUpdate::Failed {
                version: *version,
                error: format!("verify: {p}"),
            })
            .collect();
        writer.apply_download_updates(root_id, &updates)?;
        println!(
            "{} files marked for download by the next sync",
            updates.len()
        );
    } else {
        let checksums = if args.checksums { " --checksums" } else { "" };
        eprintln!(
            "icloudpd-rs: run `{} -d {}{checksums} --repair` to fetch them again at the next sync",
            args.global.command_line("verify"),
            super::global::shell_word(&root.to_string_lossy()),
        );
    }
    Ok(exit::FAILURE)
}

fn hash(path: &std::path::Path) -> std::io::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// `reset-state`.
pub fn reset_state(args: ResetStateArgs) -> i32 {
    let ctx = match AccountContext::new(&args.global) {
        Ok(c) => c,
        Err(e) => return context::report(None, e),
    };
    let result = (|| -> Result<(), CommandError> {
        if !args.yes {
            return Err(CommandError::failure(
                "reset-state forgets what was downloaded (files stay on disk; the next sync \
                 reads each one and keeps it if its SHA-256 is still the one recorded when it \
                 was downloaded, reports the ones that changed and downloads the rest); add \
                 --yes to do it",
            ));
        }
        let mut catalog = ctx.open_catalog()?;
        let root = match &args.directory {
            Some(d) => {
                let root = sync_cmd::download_folder(Some(d))?;
                Some(catalog.root_id(&root)?.ok_or_else(|| {
                    CommandError::failure(format!(
                        "{} is not a download folder of this account",
                        root.display()
                    ))
                })?)
            }
            None => None,
        };
        let n = catalog.reset_downloads(root)?;
        println!(
            "{n} download states reset; no file was touched (the next sync checks every file \
             against its recorded SHA-256)"
        );
        Ok(())
    })();
    match result {
        Ok(()) => exit::OK,
        Err(e) => context::report(Some(&ctx), e),
    }
}

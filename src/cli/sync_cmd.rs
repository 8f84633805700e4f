//! `sync` (also the bare `icloudpd-rs -u ME -d DIR`, as icloudpd users type it): flags, the
//! progress bar, the summary line, `--report-json`, `--watch-with-interval`, signals and the
//! notification script around [`crate::mirror::Mirror`].

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::args::{LayoutArgs, MetadataArgs, SelectionArgs};
use super::context::{self, AccountContext, CommandError};
use super::exit;
use super::global::GlobalArgs;
use super::progress::{self, ProgressLine};
use crate::auth::{AccountSession, AuthError};
use crate::catalog::{Catalog, CatalogError};
use crate::fetch::FetchConfig;
use crate::mirror::notify::{self, Event, Figures};
use crate::mirror::{
    self, Mirror, MirrorConfig, MirrorError, RunMode, RunOutcome, RunReport, signals, watch,
};
use crate::refresh::{LibrarySelector, RefreshOptions};

/// Arguments of `sync`: those it shares with `retry-failed` and `import-existing`, and its own.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub common: EngineArgs,
    #[command(flatten)]
    pub sync: SyncOnlyArgs,
}

/// The flags `sync` shares with `retry-failed` and `import-existing`: what decides the plan
/// and how the run goes.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The folder to download into (created when missing).
    #[arg(short = 'd', long, value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// Read settings from this TOML file: keys are the long flag names (`threads_num = 4`);
    /// one file serves sync, retry-failed, import-existing and mount (keys only another of
    /// them takes are skipped); flags and environment variables win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub selection: SelectionArgs,
    #[command(flatten)]
    pub layout: LayoutArgs,
    #[command(flatten)]
    pub metadata: MetadataArgs,
    #[command(flatten)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// How files are transferred.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Transfer")]
pub struct TransferArgs {
    /// Parallel downloads.
    #[arg(long, value_name = "N", default_value_t = mirror::DEFAULT_THREADS as u64,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub threads_num: u64,
    /// Suffix of partial files (hidden, beside their destination, resumed by the next run).
    #[arg(long, value_name = "SUFFIX", default_value = ".icloudpd-rs.part")]
    pub temp_suffix: String,
}

/// How the run behaves.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Run")]
pub struct RunArgs {
    /// As icloudpd: bring the catalog up to date and print the albums and smart folders
    /// (`refresh`, then `list albums`); nothing is downloaded.
    #[arg(short = 'l', long)]
    pub list_albums: bool,
    /// As icloudpd: bring the catalog up to date and print the libraries (`refresh`, then
    /// `list libraries`); nothing is downloaded.
    #[arg(long)]
    pub list_libraries: bool,
    /// List the library in full instead of following the change feed.
    #[arg(long)]
    pub no_incremental: bool,
    /// Forget the stored sync tokens first (then list in full).
    #[arg(long)]
    pub reset_sync_token: bool,
    /// No progress bar (it is only shown on a terminal anyway).
    #[arg(long)]
    pub no_progress_bar: bool,
    /// Write the run's report (counts, bytes, skip reasons, failures) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
    /// Run this program on 2fa-needed, sync-complete and sync-failed, with the figures in
    /// its environment (ICLOUDPD_RS_EVENT, ICLOUDPD_RS_DOWNLOADED, ...).
    #[arg(long, value_name = "PROGRAM")]
    pub notification_script: Option<PathBuf>,
}

/// The options of `sync` alone (`retry-failed` and `import-existing` do not take them, and
/// skip them in a config file).
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Run")]
pub struct SyncOnlyArgs {
    /// Show what would be downloaded (planned paths on stdout); change no file, no download
    /// state and nothing in iCloud.
    #[arg(long)]
    pub dry_run: bool,
    /// Print only the full paths of the files that would be downloaded, as icloudpd does
    /// (implies --dry-run; --dry-run prints them relative to the download folder).
    #[arg(long)]
    pub only_print_filenames: bool,
    /// Run again every SECONDS (incremental refresh each cycle) until stopped.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub watch_with_interval: Option<u64>,
    #[command(flatten)]
    pub deletion: DeletionArgs,
}

/// Deleting local files and iCloud photos. Each deletion is asked about first; where there
/// is no terminal to ask on (cron, systemd), `--yes` is needed, or the run is refused.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Deletion")]
pub struct DeletionArgs {
    /// Delete local files of photos that are in Recently Deleted or gone from iCloud (asks
    /// first; needs --yes when not run from a terminal).
    #[arg(long)]
    pub auto_delete: bool,
    /// Move photos older than N days to Recently Deleted in iCloud once every version is
    /// downloaded and verified (0 = every downloaded photo; asks first; needs --yes when not
    /// run from a terminal).
    #[arg(long, value_name = "N", conflicts_with = "delete_after_download")]
    pub keep_icloud_recent_days: Option<u32>,
    /// Move each photo to Recently Deleted in iCloud once it is downloaded and verified
    /// (icloudpd's flag; the same as --keep-icloud-recent-days 0; unlike icloudpd, it asks
    /// first, and needs --yes when not run from a terminal).
    #[arg(long)]
    pub delete_after_download: bool,
    /// Do not ask before deleting (needed to delete when not run from a terminal: cron,
    /// systemd).
    #[arg(long)]
    pub yes: bool,
}

/// What a run of the engine is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `sync`.
    Sync,
    /// `retry-failed`: download again only the files that failed (no refresh).
    RetryFailed,
    /// `import-existing`: adopt files already in the folder, download nothing.
    ImportExisting,
}

/// `sync`.
pub fn run(args: SyncArgs) -> i32 {
    run_action(args, Action::Sync)
}

/// `sync`, `retry-failed` or `import-existing` (they share the flags that decide the plan).
pub fn run_action(args: SyncArgs, action: Action) -> i32 {
    let ctx = match AccountContext::new(&args.common.global) {
        Ok(c) => c,
        Err(e) => return context::report(None, e),
    };
    if args.common.run.list_albums || args.common.run.list_libraries {
        // As icloudpd, `--list-libraries` lists every library, whatever `--library` says.
        let libraries = if args.common.run.list_libraries {
            LibrarySelector::All
        } else {
            LibrarySelector::parse(&args.common.selection.library)
        };
        return match super::catalog_cmd::refresh_and_list(
            &ctx,
            libraries,
            args.common.run.list_albums,
        ) {
            Ok(()) => exit::OK,
            Err(e) => context::report(Some(&ctx), e),
        };
    }
    match run_sync(&ctx, &args, action) {
        Ok(code) => code,
        Err(e) => context::report(Some(&ctx), e),
    }
}

/// The download folder as an absolute path.
pub fn download_folder(directory: Option<&Path>) -> Result<PathBuf, CommandError> {
    let dir = directory.ok_or_else(|| {
        CommandError::failure("no download folder: give it with -d/--directory DIR")
    })?;
    std::path::absolute(dir)
        .map_err(|e| CommandError::failure(format!("download folder {}: {e}", dir.display())))
}

/// The engine's options from the flags (everything checked before any network access).
pub fn mirror_config(args: &SyncArgs, mode: RunMode) -> Result<MirrorConfig, CommandError> {
    let root = download_folder(args.common.directory.as_deref())?;
    let selection = args
        .common
        .selection
        .selection()
        .map_err(|e| CommandError::failure(e.to_string()))?;
    let policy = args
        .common
        .layout
        .policy(&args.common.selection)
        .map_err(|e| CommandError::failure(e.to_string()))?;
    let suffix = &args.common.transfer.temp_suffix;
    if suffix.is_empty() || suffix.contains('/') || suffix.contains('\0') || suffix.len() > 64 {
        return Err(CommandError::failure(format!(
            "invalid --temp-suffix {suffix:?}: give a short name ending such as .part"
        )));
    }
    let fetch = FetchConfig {
        temp_suffix: suffix.clone(),
        stall_timeout: Duration::from_secs(args.common.global.timeout),
        ..FetchConfig::default()
    };
    Ok(MirrorConfig {
        root,
        policy,
        selection,
        threads: args.common.transfer.threads_num as usize,
        fetch,
        metadata: args.common.metadata.options(),
        mode,
        on_planned: None,
        deletion: mirror::DeletionOptions {
            auto_delete: args.sync.deletion.auto_delete,
            keep_icloud_recent_days: args.sync.deletion.keep_icloud_recent_days,
            delete_after_download: args.sync.deletion.delete_after_download,
            confirm: None,
        },
        on_deletion: None,
    })
}

fn run_sync(ctx: &AccountContext, args: &SyncArgs, action: Action) -> Result<i32, CommandError> {
    let dry_run = args.sync.dry_run || args.sync.only_print_filenames;
    let mode = match action {
        Action::Sync if dry_run => RunMode::DryRun,
        Action::Sync => RunMode::Download,
        Action::RetryFailed => RunMode::RetryFailed,
        Action::ImportExisting => RunMode::ImportExisting,
    };
    let mut config = mirror_config(args, mode)?;
    if config.deletion.auto_delete && config.deletion.in_icloud() {
        return Err(CommandError::failure(
            "--auto-delete cannot be combined with --delete-after-download or \
             --keep-icloud-recent-days: it would delete the local copies of the photos they \
             move to Recently Deleted",
        ));
    }
    if !args.sync.deletion.yes {
        // A cron or systemd run that could never delete would look like one that deleted:
        // refused before any work, as a bad command line is.
        if config.deletion.any() && !dry_run && !can_ask() {
            return Err(unconfirmed(args));
        }
        config.deletion.confirm = Some(confirmation());
    }
    if let Some(path) = &args.common.run.report_json {
        check_report_path(path)?;
    }
    if dry_run {
        // icloudpd's flag prints where each file would go, folder included.
        let prefix = args.sync.only_print_filenames.then(|| config.root.clone());
        config.on_planned = Some(Arc::new(move |path: &str| match &prefix {
            Some(root) => progress::suspend(|| outln!("{}", root.join(path).display())),
            None => progress::suspend(|| outln!("{path}")),
        }));
        if !args.sync.only_print_filenames {
            // Part of the plan, which goes to standard output.
            config.on_deletion = Some(Arc::new(|line: &str| {
                progress::suspend(|| outln!("{line}"))
            }));
        }
    }
    let show_progress = !args.common.run.no_progress_bar
        && !args.sync.only_print_filenames
        && std::io::stderr().is_terminal();
    let refresh = RefreshOptions {
        libraries: LibrarySelector::parse(&args.common.selection.library),
        full: args.common.run.no_incremental,
        reset_sync_token: args.common.run.reset_sync_token,
        ..RefreshOptions::default()
    };
    let rt = context::runtime()?;
    let mut catalog = open_writer(ctx)?;
    let root = config.root.clone();
    let mirror = Mirror::new(config);
    let notifier = Notifier {
        script: args.common.run.notification_script.clone(),
        username: ctx.auth.username.clone(),
        directory: root.display().to_string(),
        stopper: mirror.stopper(),
    };
    rt.block_on(async {
        // Signed in before our signal handling starts: Ctrl-C at a password or code prompt
        // ends the run at once, as at any prompt.
        let session = match ctx.sign_in().await {
            Ok(s) => s,
            Err(e) => {
                notifier.auth_failure(&e);
                if let Some(path) = &args.common.run.report_json {
                    let outcome = RunOutcome::Failed {
                        error: e.to_string(),
                    };
                    let report = mirror::Counters::default().report(Duration::ZERO, outcome);
                    if let Err(err) = write_report(path, &report) {
                        errln!("icloudpd-rs: {err}");
                    }
                }
                return Err(e.into());
            }
        };
        let received = signals::install(mirror.stopper(), signals::GRACE)
            .map_err(|e| CommandError::failure(format!("cannot handle signals: {e}")))?;
        let mut refresh = refresh;
        loop {
            let bar = show_progress.then(|| ProgressLine::start(mirror.live_counters()));
            let refreshing = (action != Action::RetryFailed).then_some(&refresh);
            let result = mirror.run(&session, &mut catalog, refreshing).await;
            if let Some(bar) = bar {
                bar.finish();
            }
            // A retry with other flags than the failed sync's plans none of its failures.
            let failed_outside_plan = match (&result, action) {
                (Ok(report), Action::RetryFailed) if report.total == 0 => {
                    failed_in(&catalog, &root)
                }
                _ => 0,
            };
            let cycle = Cycle {
                action,
                root: &root,
                failed_outside_plan,
            };
            let code = finish_cycle(&mirror, &result, args, &notifier, &received, &cycle);
            if let Err(e) = &result
                && e.is_authentication_problem()
            {
                return Ok(code);
            }
            let Some(interval) = args.sync.watch_with_interval else {
                return Ok(code);
            };
            if !watch::pause(Duration::from_secs(interval), &mirror.stopper()).await {
                return Ok(received.exit_code().unwrap_or(code));
            }
            keep_alive(&session).await;
            // Later cycles follow the change feed.
            refresh.full = false;
            refresh.reset_sync_token = false;
        }
    })
}

/// Deletions are confirmed on a terminal; without one (cron) they need `--yes`, checked
/// before the run starts.
fn confirmation() -> mirror::Confirm {
    Arc::new(|question: &str| progress::suspend(|| ask(question)))
}

/// Whether there is a terminal to ask on (and to read the answer from).
fn can_ask() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The refusal of a run that would have to ask before deleting, with nowhere to ask.
fn unconfirmed(args: &SyncArgs) -> CommandError {
    let deletion = &args.sync.deletion;
    let what = if deletion.auto_delete {
        "--auto-delete deletes files"
    } else if deletion.delete_after_download {
        "--delete-after-download moves photos to Recently Deleted in iCloud"
    } else {
        "--keep-icloud-recent-days moves photos to Recently Deleted in iCloud"
    };
    let in_file = if args.common.config.is_some() {
        " (`yes = true` in the config file)"
    } else {
        ""
    };
    // Bad input, as a flag clap refuses: exit code 1.
    CommandError::failure(format!(
        "{what} without asking only with --yes (there is no terminal to ask on): add \
         --yes{in_file} to let this run delete, or run it from a terminal to be asked"
    ))
}

/// Ask on the terminal; "no" without one (a terminal gone since the run started).
fn ask(question: &str) -> bool {
    {
        if !can_ask() {
            errln!("icloudpd-rs: {question} Not without --yes when not run from a terminal.");
            return false;
        }
        eprint!("{question} [y/N] ");
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
    }
}

/// Open the catalog as its writer, explaining the lock when another sync holds it.
fn open_writer(ctx: &AccountContext) -> Result<Catalog, CommandError> {
    context::create_private_dir(&ctx.dir)?;
    Catalog::open(ctx.catalog_path()).map_err(|e| match e {
        CatalogError::Locked { .. } => {
            CommandError::failure(format!("this sync did not start: {e}"))
        }
        e => e.into(),
    })
}

/// Nothing to do between cycles: the session is kept alive by the next refresh, which
/// signs in again by itself when Apple expired it meanwhile.
async fn keep_alive(session: &AccountSession) {
    let _ = session.persist().await;
}

/// What a cycle's outcome is printed with.
struct Cycle<'a> {
    action: Action,
    root: &'a Path,
    /// Failed files of the folder that a `retry-failed` run did not plan (other flags).
    failed_outside_plan: u64,
}

/// Failed files (of photos still in iCloud) recorded in the download folder `root`.
fn failed_in(catalog: &Catalog, root: &Path) -> u64 {
    let status = catalog
        .root_id(root)
        .ok()
        .flatten()
        .and_then(|id| catalog.status(Some(id)).ok());
    status.map_or(0, |s| s.failed)
}

/// Print the outcome of one run, write its report, notify; returns the exit code.
fn finish_cycle(
    mirror: &Mirror,
    result: &Result<RunReport, MirrorError>,
    args: &SyncArgs,
    notifier: &Notifier,
    received: &signals::Received,
    cycle: &Cycle,
) -> i32 {
    let Cycle {
        action,
        root,
        failed_outside_plan,
    } = *cycle;
    let dry_run = args.sync.dry_run || args.sync.only_print_filenames;
    match result {
        Ok(report) => {
            let code = match &report.outcome {
                // The failures are still there: not a success.
                RunOutcome::Complete if failed_outside_plan > 0 => exit::PARTIAL,
                RunOutcome::Complete => exit::OK,
                RunOutcome::Partial => exit::PARTIAL,
                RunOutcome::Interrupted => received.exit_code().unwrap_or(exit::FAILURE),
                RunOutcome::Failed { .. } => exit::FAILURE,
            };
            let line = report.summary_line();
            if dry_run {
                if !args.sync.only_print_filenames {
                    errln!(
                        "dry run: {} file(s) would be downloaded, {} already in {} ({} total)",
                        report
                            .skip_reasons
                            .get(&mirror::SkipReason::DryRun)
                            .copied()
                            .unwrap_or(0),
                        report.skipped
                            - report
                                .skip_reasons
                                .get(&mirror::SkipReason::DryRun)
                                .copied()
                                .unwrap_or(0),
                        root.display(),
                        report.total
                    );
                }
            } else {
                if action == Action::ImportExisting {
                    let adopted = report
                        .skip_reasons
                        .get(&mirror::SkipReason::Adopted)
                        .copied()
                        .unwrap_or(0);
                    let missing = report.total - report.skipped - report.failed;
                    outln!(
                        "{adopted} adopted, {} already recorded, {missing} not found ({} total)",
                        report.skipped - adopted,
                        report.total
                    );
                } else if action == Action::RetryFailed
                    && report.total == 0
                    && failed_outside_plan > 0
                {
                    errln!(
                        "icloudpd-rs: nothing to retry with these flags, but {failed_outside_plan} \
                         file(s) failed in {} (`icloudpd-rs status --failed` lists them): run \
                         retry-failed with the flags of the sync that failed them (e.g. its \
                         --size, --album, filters)",
                        root.display()
                    );
                } else if action == Action::RetryFailed && report.total == 0 {
                    outln!("nothing to retry: no file failed in {}", root.display());
                } else {
                    outln!("{line}");
                }
                if report.deleted_local + report.deleted_in_icloud > 0 {
                    outln!(
                        "{} local file(s) deleted, {} photo(s) moved to Recently Deleted in iCloud",
                        report.deleted_local,
                        report.deleted_in_icloud
                    );
                }
                for f in report.failures.iter().take(10) {
                    errln!("icloudpd-rs: failed: {}: {}", f.path, f.error);
                }
                if report.failed > 10 {
                    errln!(
                        "icloudpd-rs: ... and {} more (see `icloudpd-rs status --failed`)",
                        report.failed - 10
                    );
                }
                // A complete or partial run tried every file of its plan.
                let untried = match report.outcome {
                    RunOutcome::Complete | RunOutcome::Partial => 0,
                    _ => report.not_tried(),
                };
                match (&report.outcome, untried) {
                    (RunOutcome::Interrupted, 0) => errln!(
                        "icloudpd-rs: interrupted; the next run resumes where this one stopped"
                    ),
                    (RunOutcome::Interrupted, n) => errln!(
                        "icloudpd-rs: interrupted with {n} file(s) not tried; the next run \
                         resumes where this one stopped"
                    ),
                    (_, 0) => {}
                    (_, n) => errln!(
                        "icloudpd-rs: {n} file(s) not tried (the run stopped early); the next \
                         run tries them"
                    ),
                }
            }
            let mut code = code;
            if let Some(path) = &args.common.run.report_json
                && let Err(e) = write_report(path, report)
            {
                errln!("icloudpd-rs: {e}");
                // Whoever reads the report finds none: not a success.
                if code == exit::OK {
                    code = exit::FAILURE;
                }
            }
            if !dry_run {
                let event = if code == exit::OK {
                    Event::SyncComplete
                } else {
                    Event::SyncFailed
                };
                notifier.send(event, Some(report), code, &line);
            }
            code
        }
        Err(e) => {
            let code = if e.exits_as_sign_in_failure() {
                exit::AUTH
            } else {
                exit::FAILURE
            };
            errln!("icloudpd-rs: {e}");
            let counters = mirror.counters();
            let partial = counters.report(
                Duration::ZERO,
                RunOutcome::Failed {
                    error: e.to_string(),
                },
            );
            if !dry_run && partial.downloaded + partial.failed > 0 {
                outln!("{}", partial.summary_line());
                let untried = partial.not_tried();
                if untried > 0 {
                    errln!("icloudpd-rs: {untried} file(s) not tried; the next run tries them");
                }
            }
            if let Some(path) = &args.common.run.report_json
                && let Err(err) = write_report(path, &partial)
            {
                errln!("icloudpd-rs: {err}");
            }
            let event = if is_two_factor(e) {
                Event::TwoFactorNeeded
            } else {
                Event::SyncFailed
            };
            notifier.send(event, Some(&partial), code, &e.to_string());
            code
        }
    }
}

fn is_two_factor(e: &MirrorError) -> bool {
    let auth = match e {
        MirrorError::Auth(a) => a,
        MirrorError::Refresh(crate::refresh::RefreshError::Auth(a)) => a,
        _ => return false,
    };
    matches!(auth, AuthError::TwoFactorRequired { .. })
}

/// A report that could not be written at the end would be found out only after the whole
/// run: its folder must exist now.
fn check_report_path(path: &Path) -> Result<(), CommandError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if parent.is_dir() && !path.is_dir() {
        return Ok(());
    }
    let problem = if path.is_dir() {
        format!("{} is a directory", path.display())
    } else {
        format!("its folder {} does not exist", parent.display())
    };
    Err(CommandError::failure(format!(
        "--report-json {}: {problem}",
        path.display()
    )))
}

/// Write the report atomically (temp file + rename).
fn write_report(path: &Path, report: &RunReport) -> Result<(), String> {
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| format!("cannot encode the report: {e}"))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text + "\n")
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write the report to {}: {e}", path.display()))
}

/// Runs `--notification-script`, if any.
struct Notifier {
    script: Option<PathBuf>,
    username: String,
    directory: String,
    /// Stopped by a signal: the script is told to stop too.
    stopper: mirror::Stopper,
}

impl Notifier {
    fn send(&self, event: Event, report: Option<&RunReport>, exit_code: i32, message: &str) {
        let Some(script) = &self.script else { return };
        let figures = Figures {
            username: &self.username,
            directory: &self.directory,
            report,
            exit_code,
            message,
        };
        let stopping = || self.stopper.is_stopped();
        if let Err(e) = notify::run_script(script, event, &figures, &stopping) {
            errln!("icloudpd-rs: notification script: {e}");
        }
    }

    fn auth_failure(&self, e: &AuthError) {
        let event = if matches!(e, AuthError::TwoFactorRequired { .. }) {
            Event::TwoFactorNeeded
        } else {
            Event::SyncFailed
        };
        let code = if e.exits_as_sign_in_failure() {
            exit::AUTH
        } else {
            exit::FAILURE
        };
        self.send(event, None, code, &e.to_string());
    }
}

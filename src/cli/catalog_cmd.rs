//! `refresh`, `list albums`, `list libraries` and `status`: the catalog commands. Only
//! `refresh` uses the network.

use std::io::IsTerminal;

use super::context::{self, AccountContext, CommandError};
use super::exit;
use super::global::GlobalArgs;
use crate::refresh::{self, LibrarySelector, NoSink, RefreshMode, RefreshOptions};

/// Arguments of `refresh`.
#[derive(Debug, clap::Args)]
pub struct RefreshArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Library: "primary" (default), "shared", "all", or a zone name.
    #[arg(long, value_name = "NAME", default_value = "primary")]
    pub library: String,
    /// List everything again instead of following the change feed.
    #[arg(long)]
    pub full: bool,
    /// Forget the stored sync tokens first.
    #[arg(long)]
    pub reset_sync_token: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `list` shows.
#[derive(Debug, clap::Subcommand)]
pub enum ListWhat {
    /// Albums and folders of the catalog (run `refresh` first).
    Albums(ListArgs),
    /// Libraries of the catalog (personal and shared).
    Libraries(ListArgs),
}

/// Arguments of `list albums` / `list libraries`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Print JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Print the status document as JSON.
    #[arg(long)]
    pub json: bool,
    /// Download counts for this download folder only.
    #[arg(short = 'd', long = "directory", value_name = "DIR")]
    pub directory: Option<std::path::PathBuf>,
    /// List the files whose last download failed, with the error.
    #[arg(long)]
    pub failed: bool,
}

/// `refresh`.
pub fn refresh_cmd(args: RefreshArgs) -> i32 {
    let ctx = match AccountContext::new(&args.global) {
        Ok(c) => c,
        Err(e) => return context::report(None, e),
    };
    match run_refresh(&ctx, &args) {
        Ok(()) => exit::OK,
        Err(e) => context::report(Some(&ctx), e),
    }
}

fn run_refresh(ctx: &AccountContext, args: &RefreshArgs) -> Result<(), CommandError> {
    let rt = context::runtime()?;
    let mut catalog = ctx.open_catalog()?;
    let options = RefreshOptions {
        libraries: LibrarySelector::parse(&args.library),
        full: args.full,
        reset_sync_token: args.reset_sync_token,
        progress: true,
        ..RefreshOptions::default()
    };
    let report = rt.block_on(async {
        let session = ctx.session().await?;
        Ok::<_, CommandError>(
            refresh::refresh(&session, &mut catalog, &options, &mut NoSink).await?,
        )
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
        return Ok(());
    }
    for lib in &report.libraries {
        let how = match &lib.mode {
            RefreshMode::Full { reason } => format!("listed in full ({reason})"),
            RefreshMode::Incremental => "changes applied".to_string(),
            RefreshMode::Unchanged => "unchanged".to_string(),
        };
        // A feed's album counts are changes, a full listing's are the albums listed.
        let albums = match lib.mode {
            RefreshMode::Incremental => format!(
                "{} albums changed, {} album memberships changed",
                lib.albums, lib.memberships
            ),
            _ => format!("{} albums", lib.albums),
        };
        println!(
            "{}: {how}: {} seen, {} added, {} changed, {} removed, {} skipped, {albums} ({:.1}s)",
            lib.library.zone,
            lib.seen,
            lib.added,
            lib.changed,
            lib.removed,
            lib.skipped,
            lib.elapsed.as_secs_f64()
        );
    }
    Ok(())
}

/// `list albums` / `list libraries`.
pub fn list_cmd(what: ListWhat) -> i32 {
    let (args, albums) = match &what {
        ListWhat::Albums(a) => (a, true),
        ListWhat::Libraries(a) => (a, false),
    };
    let ctx = match AccountContext::new(&args.global) {
        Ok(c) => c,
        Err(e) => return context::report(None, e),
    };
    match print_list(&ctx, albums, args.json, true) {
        Ok(()) => exit::OK,
        Err(e) => context::report(Some(&ctx), e),
    }
}

/// icloudpd's `--list-albums` / `--list-libraries`: bring the catalog up to date, then list.
pub(super) fn refresh_and_list(
    ctx: &AccountContext,
    libraries: LibrarySelector,
    albums: bool,
) -> Result<(), CommandError> {
    let rt = context::runtime()?;
    let mut catalog = ctx.open_catalog()?;
    let options = RefreshOptions {
        libraries,
        ..RefreshOptions::default()
    };
    rt.block_on(async {
        let session = ctx.session().await?;
        refresh::refresh(&session, &mut catalog, &options, &mut NoSink).await?;
        Ok::<_, CommandError>(())
    })?;
    drop(catalog);
    print_list(ctx, albums, false, false)
}

/// The albums (and, in text, the smart folders `--album` also takes) or the libraries of the
/// catalog.
///
/// `offline`: the catalog was not refreshed for this listing, so it may not know every library.
fn print_list(
    ctx: &AccountContext,
    albums: bool,
    json: bool,
    offline: bool,
) -> Result<(), CommandError> {
    {
        let catalog = ctx.open_catalog_read_only()?;
        let libraries = catalog.libraries()?;
        if offline && !albums && libraries.len() <= 1 {
            // A refresh of the primary library (the default) does not look for others.
            errln!(
                "Listed: the libraries refreshed so far (`icloudpd-rs refresh --library all` \
                 looks for shared libraries)"
            );
        }
        for lib in libraries {
            if !albums {
                if json {
                    // The same fields as `status --json` gives each library.
                    println!("{}", serde_json::to_value(&lib).unwrap_or_default());
                } else {
                    // What `--library` takes, what the mount calls it, and its size.
                    let photos =
                        catalog.count_assets(lib.id, crate::catalog::AssetFilter::AllPhotos)?;
                    println!(
                        "{}\t{}\t{}\t{photos} photos and videos",
                        lib.library.zone,
                        lib.library.database,
                        crate::view::names::library_name(&lib.library.zone)
                    );
                }
                continue;
            }
            if !json && lib.library.zone == crate::model::Library::primary().zone {
                // As icloudpd lists them, first: every name `--album` takes besides the albums,
                // as the mount names its folders.
                use crate::catalog::{AssetFilter, SmartFolder};
                let all = catalog.count_assets(lib.id, AssetFilter::AllPhotos)?;
                println!("All Photos\t{all}\tsmart folder");
                for folder in SmartFolder::ALL {
                    let assets = catalog.count_assets(lib.id, AssetFilter::Smart(folder))?;
                    println!("{}\t{assets}\tsmart folder", folder.album_name());
                }
            }
            // Deleted albums stay in the catalog (their record may come back) but are gone for
            // the user, as in the mount and in `sync --album`.
            let counts = catalog.album_member_counts(lib.id)?;
            for entry in catalog
                .albums(lib.id)?
                .into_iter()
                .filter(|e| !e.album.deleted)
            {
                let path = entry.path.join("/");
                let assets = counts.get(&entry.album.id).copied().unwrap_or(0);
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"id": entry.album.id, "name": entry.album.name, "path": path,
                            "folder": entry.album.is_folder, "assets": assets,
                            "library": lib.library.zone})
                    );
                } else if entry.album.is_folder {
                    println!("{path}/");
                } else {
                    println!("{path}\t{assets}");
                }
            }
        }
    }
    Ok(())
}

/// `status`.
pub fn status_cmd(args: StatusArgs) -> i32 {
    let ctx = match AccountContext::new(&args.global) {
        Ok(c) => c,
        Err(e) => return context::report(None, e),
    };
    let result = (|| -> Result<(), CommandError> {
        let session = crate::auth::read_summary(&ctx.global.data_dir()?, &ctx.auth.username)?;
        // Nothing listed yet: what there is of a session is worth showing (signed in with
        // `login`, waiting for a code, or not signed in at all).
        if !ctx.catalog_path().exists() && !args.failed && args.directory.is_none() {
            print_no_catalog(session.as_ref(), args.json);
            return Ok(());
        }
        let catalog = ctx.open_catalog_read_only()?;
        let root = match &args.directory {
            // Resolved as `sync -d` resolves it, so a relative path names the same folder.
            Some(d) => {
                let dir = super::sync_cmd::download_folder(Some(d))?;
                Some(catalog.root_id(&dir)?.ok_or_else(|| {
                    CommandError::failure(format!(
                        "{} is not a download folder of this catalog",
                        dir.display()
                    ))
                })?)
            }
            None => None,
        };
        if args.failed {
            return print_failed(&catalog, root, args.json);
        }
        let status = catalog.status(root)?;
        if args.json {
            let mut doc = serde_json::to_value(&status).unwrap_or_default();
            doc["session"] = serde_json::to_value(&session).unwrap_or_default();
            println!("{doc}");
            return Ok(());
        }
        print_status(&status, session.as_ref());
        Ok(())
    })();
    match result {
        Ok(()) => exit::OK,
        Err(e) => context::report(Some(&ctx), e),
    }
}

/// `status --failed`: one line (or JSON object) per failed file of one root or of all roots.
fn print_failed(
    catalog: &crate::catalog::Catalog,
    root: Option<crate::catalog::RootId>,
    json: bool,
) -> Result<(), CommandError> {
    use crate::catalog::{DownloadState, DownloadStateKind};
    let mut count = 0u64;
    for r in catalog.roots()? {
        if root.is_some_and(|id| id != r.id) {
            continue;
        }
        for record in catalog.downloads(r.id, DownloadStateKind::Failed) {
            let record = record?;
            // A photo gone from iCloud has nothing left to retry (`status` does not count it).
            if record.asset_gone {
                continue;
            }
            let DownloadState::Failed {
                attempts,
                last_error,
                at_ms,
                previous_path,
            } = &record.state
            else {
                continue;
            };
            count += 1;
            let asset = catalog.asset(record.asset)?;
            let name = asset
                .as_ref()
                .and_then(|a| a.asset.filename.clone())
                .unwrap_or_else(|| "(no name)".into());
            // Where the file goes: the path its last attempt was to write, else the file it
            // replaces (`verify --repair`). Failures recorded by an older icloudpd-rs (catalog
            // schema 6 and before) may name neither: the photo's name stands in until the next
            // attempt.
            let path = record.planned_path.as_ref().or(previous_path.as_ref());
            let shown = match path {
                Some(path) => format!("{path} ({})", record.kind.as_str()),
                None => format!("{name} ({}, path not recorded)", record.kind.as_str()),
            };
            let id = asset
                .as_ref()
                .map(|a| a.asset.id.clone())
                .unwrap_or_default();
            let when = chrono::DateTime::from_timestamp_millis(*at_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"folder": r.path, "path": path, "filename": name, "asset_id": id,
                        "version": record.kind.as_str(), "attempts": attempts,
                        "error": last_error, "at": when})
                );
            } else {
                println!(
                    "{}\t{shown}\t{attempts} attempt(s), last {when}: {last_error}",
                    r.path.display(),
                );
            }
        }
    }
    if !json {
        println!("{count} failed file(s); `icloudpd-rs retry-failed` tries them again");
    }
    Ok(())
}

fn print_status(status: &crate::catalog::Status, session: Option<&crate::auth::SessionSummary>) {
    let doc = serde_json::to_value(status).unwrap_or_default();
    let n = |k: &str| doc.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    println!("Catalog: {}", status.catalog.display());
    println!(
        "Assets: {}  versions: {}  albums: {}",
        n("assets"),
        n("versions"),
        n("albums")
    );
    println!(
        "Downloaded: {}  pending: {}  failed: {}",
        n("downloaded"),
        n("pending"),
        n("failed")
    );
    if let Some(last) = status
        .last_refresh
        .and_then(chrono::DateTime::from_timestamp_millis)
    {
        let local = last.with_timezone(&chrono::Local);
        println!("Last refresh: {}", local.format("%Y-%m-%d %H:%M:%S %:z"));
    }
    for run in &status.last_syncs {
        println!("{}", last_sync_line(run));
    }
    print_unusable(&status.unusable_records);
    print_session(session);
    if std::io::stdout().is_terminal() && n("failed") > 0 {
        println!("Run `icloudpd-rs status --failed` to see what failed.");
    }
}

/// The records iCloud sent that could not become files: a count and the first few reasons
/// (`status --json` lists them all).
fn print_unusable(records: &[crate::model::Skipped]) {
    const SHOWN: usize = 5;
    if records.is_empty() {
        return;
    }
    println!(
        "Not usable: {} record(s) iCloud sent could not become files:",
        records.len()
    );
    for r in records.iter().take(SHOWN) {
        println!("  {}: {}", r.record_name, r.reason);
    }
    if records.len() > SHOWN {
        println!(
            "  ... and {} more (`icloudpd-rs status --json` lists them all)",
            records.len() - SHOWN
        );
    }
}

/// `Last sync into /photos: interrupted 2026-11-30 10:12 (182 downloaded) — run sync again to
/// finish`: how the last run into a folder ended, and what to do about it. The time is when
/// it ended, or when it started for a run still going or killed (its end is unknown).
fn last_sync_line(run: &crate::catalog::SyncRunRecord) -> String {
    use crate::catalog::SyncOutcome;
    let local = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_default()
    };
    let when = match run.ended {
        Some(ended) => local(ended),
        None => format!("(started {})", local(run.started)),
    };
    let mut counts = vec![format!("{} downloaded", run.downloaded)];
    // A run that failed reported no counts: its downloads are counted from the catalog, what
    // it skipped is unknown (a "0 skipped" would be wrong).
    if run.ended.is_some() && run.outcome != SyncOutcome::Failed {
        counts.push(format!("{} skipped", run.skipped));
    }
    if run.failed > 0 {
        counts.push(format!("{} failed", run.failed));
    }
    let hint = match run.outcome {
        SyncOutcome::Complete => String::new(),
        SyncOutcome::Running => " — still going".to_string(),
        SyncOutcome::Interrupted => " — run sync again to finish".to_string(),
        SyncOutcome::Partial => {
            " — `icloudpd-rs status --failed` lists the failures, `retry-failed` tries them again"
                .to_string()
        }
        SyncOutcome::Failed => format!(
            ": {} — run sync again to finish",
            run.error.as_deref().unwrap_or("unknown error")
        ),
    };
    let what = match run.mode.as_str() {
        "import_existing" => "import-existing",
        "retry_failed" => "retry-failed",
        _ => "sync",
    };
    format!(
        "Last {what} into {}: {} {when} ({}){hint}",
        run.root.display(),
        run.outcome.as_str(),
        counts.join(", ")
    )
}

/// `status` of an account not listed yet (signed in or not): zero counts, no catalog.
fn print_no_catalog(session: Option<&crate::auth::SessionSummary>, json: bool) {
    if json {
        // The document of an empty catalog, with no catalog file to name.
        let mut doc = serde_json::to_value(crate::catalog::Status::default()).unwrap_or_default();
        doc["catalog"] = serde_json::Value::Null;
        doc["session"] = serde_json::to_value(session).unwrap_or_default();
        println!("{doc}");
        return;
    }
    println!("Catalog: none yet (`icloudpd-rs refresh`, `sync` or `mount` lists the library)");
    print_session(session);
}

/// The session lines of `status`.
fn print_session(session: Option<&crate::auth::SessionSummary>) {
    match session {
        Some(s) => {
            let state = if s.code_pending {
                "waiting for the two-factor code (run `icloudpd-rs login --submit-code CODE`)"
            } else if s.advanced_data_protection {
                "refused: Advanced Data Protection is on, and Apple gives no web access to the \
                 photos (turn on \"Access iCloud Data on the Web\" on an Apple device)"
            } else if s.two_factor == Some(true) && !s.signed_in && !s.trusted {
                "signed out: Apple asks for a two-factor code (run `icloudpd-rs login`)"
            } else if s.signed_in {
                "signed in"
            } else {
                "signed out (the next run signs in again)"
            };
            println!("Session: {} {state}", s.username);
            match (s.trusted, s.trust_expires_estimate) {
                (true, Some(expiry)) => println!(
                    "Two-factor trust: established {}, expected to expire around {}",
                    s.trust_established_at
                        .map(|t| t.format("%Y-%m-%d").to_string())
                        .unwrap_or_default(),
                    expiry.format("%Y-%m-%d")
                ),
                (true, None) => println!("Two-factor trust: yes"),
                (false, _) if s.two_factor == Some(false) => {
                    println!(
                        "Two-factor trust: not needed (the account has no two-factor authentication)"
                    )
                }
                (false, _) => {
                    println!("Two-factor trust: none (a code may be asked at the next sign-in)")
                }
            }
        }
        None => println!("Session: not signed in (run `icloudpd-rs login`)"),
    }
}

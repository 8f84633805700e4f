//! `mount`: the library as a FUSE filesystem. Checks the mountpoint and FUSE before anything
//! slow, signs in without prompting, brings the catalog up to date (a first mount lists the
//! library in full, with progress), mounts, and keeps the tree in step with iCloud (and the
//! `--mirror` folder filled) in the background until SIGINT, SIGTERM, SIGHUP or
//! `fusermount3 -u`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::args::{LayoutArgs, MountOnlyArgs, SelectionArgs, parse_bytes};
use super::context::{self, AccountContext, CommandError};
use super::exit;
use super::global::GlobalArgs;
use crate::cache::{BlockCache, CacheConfig};
use crate::catalog::{Catalog, CatalogError};
use crate::fetch::FetchConfig;
use crate::mirror::{MetadataOptions, Mirror, MirrorConfig, RunMode};
use crate::mount::{self, BlockFetcher, CachedSource, FetcherConfig, MountOptions, Namespace};
use crate::refresh::{self, LibrarySelector, RefreshOptions};
use crate::view::live::{self, CatalogAccess, LiveOptions};
use crate::view::{
    self, CatalogLocator, LibrarySource, MirrorLink, MirrorRoot, SessionSlot, UrlBroker, UrlSink,
    ViewConfig, ViewCounts,
};

/// Parallel downloads of the background mirror (it yields to reads anyway).
const MIRROR_THREADS: usize = 4;
/// How long a shutdown waits for the mirror's files in flight before dropping them (their
/// partial files are resumed by the next run).
const MIRROR_GRACE: Duration = Duration::from_secs(10);

/// Arguments of `mount`.
#[derive(Debug, Clone, clap::Args)]
pub struct MountArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub mount: MountOnlyArgs,
    /// Read settings from this TOML file, as `sync --config` does (one file serves sync,
    /// retry-failed, import-existing and mount: keys only another of them takes are skipped);
    /// flags and environment variables win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Show an XMP sidecar `NAME.xmp` beside every file (dates, title, keywords, place,
    /// favourite), rendered from the catalog; with --mirror, the mirror writes them too.
    #[arg(long)]
    pub xmp_sidecar: bool,
    /// Longest a read waits for the network, in seconds; past it the read fails with EIO
    /// (listing and cached files never wait).
    #[arg(long, value_name = "SECONDS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub read_timeout: u64,
    #[command(flatten)]
    pub selection: SelectionArgs,
    #[command(flatten)]
    pub layout: LayoutArgs,
    /// The FUSE device (tests point it elsewhere).
    #[arg(long, hide = true, default_value = "/dev/fuse")]
    pub fuse_device: PathBuf,
}

/// What a running mount tells whoever started it.
#[derive(Debug)]
pub struct Ready<'a> {
    /// The mounted directory (canonical).
    pub mountpoint: &'a Path,
    /// The mirror folder, if any.
    pub mirror: Option<&'a Path>,
    /// What the tree holds.
    pub counts: ViewCounts,
    /// XMP sidecars among `counts.date_tree_files` (`--xmp-sidecar`), which are not photos.
    pub sidecars: usize,
    /// Names the views got.
    pub names: &'a view::TopNames,
}

/// `mount`.
pub fn run(args: MountArgs) -> i32 {
    let ctx = match AccountContext::new(&args.global) {
        Ok(c) => c,
        Err(e) => return context::report(None, e),
    };
    let rt = match mount_runtime() {
        Ok(rt) => rt,
        Err(e) => return context::report(Some(&ctx), e),
    };
    match serve(&rt, &ctx, &args, print_ready) {
        Ok(()) => exit::OK,
        Err(e) => context::report(Some(&ctx), e),
    }
}

/// The runtime of a mount: reads waiting for the network, the refresh and the mirror.
pub fn mount_runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_name("mount-io")
        .enable_all()
        .build()
        .map_err(|e| CommandError::failure(format!("cannot start the async runtime: {e}")))
}

fn print_ready(ready: &Ready<'_>) {
    eprintln!(
        "icloudpd-rs: {} in the date tree, {} albums{}; mounted at {} \
         (Ctrl-C or `fusermount3 -u {}` to unmount)",
        ready.date_tree(),
        ready.counts.albums,
        match ready.mirror {
            Some(m) => format!(", mirroring into {}", m.display()),
            None => String::new(),
        },
        ready.mountpoint.display(),
        ready.mountpoint.display(),
    );
}

impl Ready<'_> {
    /// "N files" of the date tree, "N files and M XMP sidecars" with sidecars.
    pub fn date_tree(&self) -> String {
        let files = self.counts.date_tree_files.saturating_sub(self.sidecars);
        match self.sidecars {
            0 => format!("{files} files"),
            n => format!("{files} files and {n} XMP sidecars"),
        }
    }
}

fn failure(e: impl std::fmt::Display) -> CommandError {
    CommandError::failure(e.to_string())
}

/// Mount and serve until unmounted; `on_ready` runs once the filesystem is up.
pub fn serve(
    rt: &tokio::runtime::Runtime,
    ctx: &AccountContext,
    args: &MountArgs,
    on_ready: impl FnOnce(&Ready<'_>),
) -> Result<(), CommandError> {
    // Everything that can be refused without the network is checked first.
    let selection = args.selection.selection().map_err(failure)?;
    // The view drops `--until-found` without a mirror: refused rather than silently ignored.
    if args.selection.until_found.is_some() && args.mount.mirror.is_none() {
        return Err(CommandError::failure(
            "--until-found needs --mirror DIR on a mount (it counts the mirror's downloads); \
             add --mirror DIR or drop --until-found",
        ));
    }
    let policy = args.layout.policy(&args.selection).map_err(failure)?;
    let cache_size = parse_bytes(&args.mount.cache_size)
        .map_err(|e| CommandError::failure(format!("--cache-size {e}")))?;
    if args.mount.poll_interval == 0 {
        return Err(CommandError::failure(
            "--poll-interval must be at least 1 second",
        ));
    }
    let mut opts = MountOptions::new(&args.mount.mountpoint);
    opts.allow_other = args.mount.allow_other;
    opts.fuse_device = args.fuse_device.clone();
    opts.runtime = Some(rt.handle().clone());
    let mountpoint = mount::preflight(&opts).map_err(failure)?;
    let mirror_dir = match &args.mount.mirror {
        Some(dir) => Some(mirror_folder(dir, &mountpoint)?),
        None => None,
    };
    // The cache's lock first: a second mount of the account stops here, before the catalog.
    let cache_dir = args
        .mount
        .cache_dir
        .clone()
        .unwrap_or_else(|| ctx.dir.join("cache"));
    outside_mountpoint("the data folder (--data-dir)", &ctx.dir, &mountpoint)?;
    outside_mountpoint("the cache folder (--cache-dir)", &cache_dir, &mountpoint)?;
    let cache = BlockCache::open(&CacheConfig::new(&cache_dir, cache_size)).map_err(failure)?;

    let mut access = open_catalog(ctx, mirror_dir.is_some())?;
    let has_catalog = !access.catalog().libraries()?.is_empty();
    // Offline with a catalog: mount what is known and sign in later; a sign-in that needs
    // the user always stops here.
    let session = match rt.block_on(ctx.session()) {
        Ok(s) => Some(s),
        Err(e) if (e.code == exit::AUTH && !e.transient) || !has_catalog => return Err(e),
        Err(e) => {
            eprintln!(
                "icloudpd-rs: {}; mounting the catalog as it is (cached and mirrored files \
                 read, others fail until iCloud is back)",
                ctx.redact(&e.message)
            );
            None
        }
    };
    let slot = SessionSlot::new(ctx.auth.clone(), session.clone());
    let broker = UrlBroker::new(slot.clone());
    let refresh_opts = RefreshOptions {
        libraries: refresh_scope(&selection.libraries),
        progress: true,
        ..RefreshOptions::default()
    };
    if let (CatalogAccess::Writer(catalog), Some(session)) = (&mut access, &session) {
        first_refresh(rt, session, catalog, &refresh_opts, &broker)?;
    }

    let mirror_root = match (&mirror_dir, &mut access) {
        (Some(dir), CatalogAccess::Writer(catalog)) => Some(MirrorRoot {
            id: catalog.register_root(dir)?,
            path: dir.clone(),
        }),
        (Some(_), CatalogAccess::Follower(_)) => {
            return Err(CommandError::failure(
                "--mirror needs this account's catalog, which another icloudpd-rs process is \
                 using; stop it or mount without --mirror",
            ));
        }
        (None, _) => None,
    };
    let view_cfg = ViewConfig {
        policy: policy.clone(),
        selection: selection.clone(),
        xmp_sidecar: args.xmp_sidecar,
        mirror_root: mirror_root.as_ref().map(|r| r.id),
    };
    let started = std::time::Instant::now();
    let built = view::build(access.catalog(), &view_cfg).map_err(failure)?;
    tracing::info!(
        files = built.entries.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "tree built from the catalog"
    );

    let mut fetcher_cfg = FetcherConfig {
        total_timeout: Duration::from_secs(args.read_timeout),
        ..FetcherConfig::default()
    };
    fetcher_cfg.fetch.stall_timeout = fetcher_cfg
        .fetch
        .stall_timeout
        .min(Duration::from_secs(args.read_timeout.div_ceil(2)));
    // The CDN wants no cookies: a client of its own works before any sign-in.
    let http = crate::net::build_client(&ctx.auth.net, None).map_err(failure)?;
    let fetcher = BlockFetcher::new(http, Arc::new(cache), fetcher_cfg);
    let stores = fetcher.clone();
    let locator = Arc::new(CatalogLocator::new(
        ctx.catalog_path(),
        broker.clone(),
        mirror_root.clone(),
    ));
    let mirror = mirror_dir.as_ref().map(|root| {
        Arc::new(Mirror::new(MirrorConfig {
            root: root.clone(),
            policy: policy.clone(),
            selection: selection.clone(),
            threads: MIRROR_THREADS,
            fetch: FetchConfig {
                stall_timeout: Duration::from_secs(args.global.timeout),
                ..FetchConfig::default()
            },
            metadata: MetadataOptions {
                set_exif_datetime: false,
                xmp_sidecar: args.xmp_sidecar,
            },
            mode: RunMode::Download,
            on_planned: None,
            // The mirror never deletes: a background copy is no place for surprises.
            deletion: Default::default(),
            on_deletion: None,
        }))
    });
    locator.set_neighbours(built.neighbours);
    let source = LibrarySource::new(
        CachedSource::new(locator.clone(), fetcher),
        mirror
            .as_ref()
            .zip(mirror_dir.as_ref())
            .map(|(m, root)| MirrorLink {
                mirror: m.clone(),
                root: root.clone(),
            }),
    );
    let sidecars = built
        .entries
        .iter()
        .take(built.counts.date_tree_files)
        .filter(|e| matches!(view::ids::kind_of(e.file), view::ids::FileKind::Sidecar(_)))
        .count();
    let (ns, skipped) = Namespace::new(built.entries, &built.extra_dirs);
    for s in skipped.iter().take(5) {
        tracing::warn!(path = %s.path, reason = ?s.reason, "not shown");
    }
    let mut handle = mount::mount(Arc::new(ns), Arc::new(source), opts).map_err(failure)?;
    handle.catch_signals();

    let stop = CancellationToken::new();
    let changed = Arc::new(Notify::new());
    let mirror_task = match (&mirror, &access) {
        (Some(m), CatalogAccess::Writer(catalog)) => {
            let companion = catalog.companion_writer()?;
            Some(on_thread("mount-mirror", rt, {
                let (m, slot, changed, stop) =
                    (m.clone(), slot.clone(), changed.clone(), stop.clone());
                move || live::mirror_loop(m, slot, companion, changed, stop)
            })?)
        }
        _ => None,
    };
    let stopping = match &access {
        CatalogAccess::Writer(catalog) => catalog.stopping_notice(),
        CatalogAccess::Follower(_) => None,
    };
    let follower = on_thread("mount-refresh", rt, {
        let follower = live::Follower {
            session: slot.clone(),
            access,
            updater: handle.updater(),
            broker,
            locator: locator.clone(),
            opts: LiveOptions {
                poll_interval: Duration::from_secs(args.mount.poll_interval),
                refresh: refresh_opts,
                view: view_cfg,
            },
            stop: stop.clone(),
            changed,
        };
        move || live::follow(follower)
    })?;

    on_ready(&Ready {
        mountpoint: handle.mountpoint(),
        mirror: mirror_dir.as_deref(),
        counts: built.counts,
        sidecars,
        names: &built.names,
    });
    let outcome = handle.run_until_signal();
    let forced = matches!(outcome, Err(mount::MountError::ForcedStop));
    let result = outcome.map_err(|e| {
        let mut e = failure(e);
        if forced {
            e.code = mount::session::FORCED_EXIT_CODE;
        }
        e
    });

    // Unmounted: stop the background work, letting the mirror finish the files in flight. A
    // sync started meanwhile waits for this process instead of failing on the catalog.
    if let Some(notice) = &stopping {
        notice.announce();
    }
    stop.cancel();
    if let Some(m) = &mirror {
        m.stopper().stop();
    }
    let _ = follower.join();
    if let Some(task) = mirror_task {
        // Told twice to stop: the files in flight are dropped at once (resumed next time).
        let grace = if forced { Duration::ZERO } else { MIRROR_GRACE };
        let deadline = std::time::Instant::now() + grace;
        while !task.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !task.is_finished()
            && let Some(m) = &mirror
        {
            m.stopper().abort();
        }
        let _ = task.join();
    }
    if let Some(session) = slot.current() {
        let _ = rt.block_on(session.persist());
    }
    // Every block fetched goes into the cache before the process ends.
    stores.flush_stores();
    result
}

/// Run `fut` to its end on a thread of its own (the catalog's futures are not `Send`).
fn on_thread<F: std::future::Future<Output = ()>>(
    name: &str,
    rt: &tokio::runtime::Runtime,
    make: impl FnOnce() -> F + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, CommandError> {
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || handle.block_on(make()))
        .map_err(|e| CommandError::failure(format!("cannot start the {name} thread: {e}")))
}

/// Which libraries the mount refreshes: the personal and shared ones (the views show the
/// libraries the root does not), or the one zone asked for.
fn refresh_scope(selected: &LibrarySelector) -> LibrarySelector {
    match selected {
        LibrarySelector::Zone(z) if z != "PrimarySync" && !z.starts_with("SharedSync-") => {
            LibrarySelector::Zone(z.clone())
        }
        _ => LibrarySelector::All,
    }
}

/// Refuse a folder the mount writes in (`what`) that lies inside the mountpoint: it would be
/// created there, and then hidden by the mount (which needs an empty directory anyway).
fn outside_mountpoint(what: &str, dir: &Path, mountpoint: &Path) -> Result<(), CommandError> {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let resolved = abs.canonicalize().unwrap_or_else(|_| abs.clone());
    if abs.starts_with(mountpoint) || resolved.starts_with(mountpoint) {
        return Err(CommandError::failure(format!(
            "{what} {} is inside the mountpoint {}: choose a folder outside it",
            abs.display(),
            mountpoint.display()
        )));
    }
    Ok(())
}

/// The mirror folder: absolute, created if missing, and not inside the mount.
fn mirror_folder(dir: &Path, mountpoint: &Path) -> Result<PathBuf, CommandError> {
    let abs = std::path::absolute(dir)
        .map_err(|e| CommandError::failure(format!("mirror folder {}: {e}", dir.display())))?;
    let nested = |p: &Path| p.starts_with(mountpoint) || mountpoint.starts_with(p);
    let refuse = |p: &Path| {
        CommandError::failure(format!(
            "the mirror folder {} and the mountpoint {} must not contain each other",
            p.display(),
            mountpoint.display()
        ))
    };
    // Checked before creating anything, and again once symbolic links are resolved.
    if nested(&abs) {
        return Err(refuse(&abs));
    }
    std::fs::create_dir_all(&abs).map_err(|e| {
        CommandError::failure(format!(
            "cannot create the mirror folder {}: {e}",
            abs.display()
        ))
    })?;
    let canonical = abs
        .canonicalize()
        .map_err(|e| CommandError::failure(format!("mirror folder {}: {e}", abs.display())))?;
    if nested(&canonical) {
        return Err(refuse(&canonical));
    }
    Ok(canonical)
}

/// The catalog as its writer, or as a follower of the process that holds it (not with a
/// mirror, which records its downloads in the catalog).
fn open_catalog(ctx: &AccountContext, mirror: bool) -> Result<CatalogAccess, CommandError> {
    context::create_private_dir(&ctx.dir)?;
    match Catalog::open(ctx.catalog_path()) {
        Ok(c) => Ok(CatalogAccess::Writer(c)),
        Err(CatalogError::Locked { holder, .. }) => {
            let holder = holder.map(|h| format!(" ({h})")).unwrap_or_default();
            if mirror {
                return Err(CommandError::failure(format!(
                    "--mirror needs this account's catalog, which another icloudpd-rs \
                     process{holder} is using; stop it or mount without --mirror"
                )));
            }
            // Not an error: say who writes the catalog and what this mount does about it.
            eprintln!(
                "icloudpd-rs: another icloudpd-rs process{holder} is updating this account's \
                 catalog; the mount shows the library as that process leaves it and follows its \
                 changes"
            );
            Ok(CatalogAccess::Follower(Catalog::open_read_only(
                ctx.catalog_path(),
            )?))
        }
        Err(e) => Err(e.into()),
    }
}

/// The refresh before mounting. A catalog that already has a library is mounted even when
/// iCloud cannot be reached (with a warning); a sign-in problem always stops.
fn first_refresh(
    rt: &tokio::runtime::Runtime,
    session: &crate::auth::AccountSession,
    catalog: &mut Catalog,
    opts: &RefreshOptions,
    broker: &Arc<UrlBroker>,
) -> Result<(), CommandError> {
    let had_data = !catalog.libraries()?.is_empty();
    if !had_data {
        eprintln!("icloudpd-rs: first mount: listing the library (this happens once)");
    }
    let mut sink = UrlSink(broker.clone());
    match rt.block_on(refresh::refresh(session, catalog, opts, &mut sink)) {
        Ok(_) => Ok(()),
        // Bad input (a library iCloud does not have) is not a network problem to ride out.
        Err(e)
            if e.is_authentication_problem()
                || !had_data
                || matches!(e, refresh::RefreshError::NoSuchLibrary(_)) =>
        {
            Err(e.into())
        }
        Err(e) => {
            eprintln!(
                "icloudpd-rs: cannot bring the catalog up to date ({e}); mounting it as it is"
            );
            Ok(())
        }
    }
}

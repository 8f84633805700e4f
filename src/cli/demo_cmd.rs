//! `demo`: the whole product in one command, without an Apple account. Starts the simulator
//! in-process with a synthetic library, signs in to it, mounts it (mirroring into a temporary
//! folder) and prints what to try. Ctrl-C unmounts, stops the simulator and removes every
//! temporary folder; so do SIGTERM and SIGHUP (a closed terminal), at any moment.
//!
//! Every message is written with its error ignored (`errln!`): after a SIGHUP the terminal is
//! gone, writing to it fails (EIO, or EPIPE for a pipe), and `eprintln!` would panic on that
//! before the demo folders are removed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use clap::Parser;

use super::context::{AccountContext, CommandError};
use super::exit;
use super::mount_cmd::{self, MountArgs, Ready};
use crate::auth::Password;
use crate::refresh::{self, NoSink, RefreshOptions};
use crate::sim::{Sim, SimConfig};

/// Arguments of `demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where to mount (an empty directory, created if missing) [default: a new temporary
    /// folder].
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: Option<PathBuf>,
    /// Photos and videos in the simulated library.
    #[arg(long, default_value_t = 3000)]
    pub assets: usize,
    /// File sizes relative to real ones (photos 1-8 MB, videos 10 MB-2 GB); the default keeps
    /// a library of 3000 around 270 MB.
    #[arg(long, default_value_t = 0.005)]
    pub size_scale: f64,
    /// Seconds between checks for new photos.
    #[arg(long, default_value_t = 5)]
    pub poll_interval: u64,
    /// Added latency of every simulated Apple answer, in milliseconds (a real CDN: ~20).
    #[arg(long, default_value_t = 0)]
    pub latency: u64,
    /// Do not mirror the library into a temporary folder.
    #[arg(long)]
    pub no_mirror: bool,
}

/// Where the demo is in its life, for the early signal handler.
const STARTING: u8 = 0;
const MOUNTING: u8 = 1;
const INTERRUPTED_WHILE_MOUNTING: u8 = 2;
const MOUNTED: u8 = 3;

/// Temporary folders of the demo, removed on every way out but a kill -9 (explicitly, and
/// when dropped, so a panic still removes them).
struct Scratch {
    base: PathBuf,
    /// Folders the demo created for a mountpoint the user named, the mountpoint last
    /// (removed too, deepest first).
    created: Vec<PathBuf>,
}

impl Scratch {
    fn clean(&self) {
        if let Err(e) = std::fs::remove_dir_all(&self.base)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            errln!("icloudpd-rs: could not remove {}: {e}", self.base.display());
        }
        for dir in self.created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.clean();
    }
}

/// `demo`.
pub fn run(args: DemoArgs) -> i32 {
    let scratch = match make_scratch(&args) {
        Ok(s) => Arc::new(s),
        Err(e) => return report(e),
    };
    let result = demo(&args, &scratch);
    // Removed before anything more is written (the terminal may be gone).
    scratch.clean();
    match result {
        Ok(()) => exit::OK,
        Err(e) => report(e),
    }
}

/// `context::report` for the demo (no account to forget or redact), never failing on a
/// terminal that is gone.
fn report(e: CommandError) -> i32 {
    errln!("icloudpd-rs: {}", e.message);
    e.code
}

fn make_scratch(args: &DemoArgs) -> Result<Scratch, CommandError> {
    use std::os::unix::fs::DirBuilderExt;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let base = std::env::temp_dir().join(format!(
        "icloudpd-rs-demo-{}-{:x}",
        std::process::id(),
        stamp & 0xffff_ffff
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&base)
        .map_err(|e| CommandError::failure(format!("cannot create {}: {e}", base.display())))?;
    let mut scratch = Scratch {
        base,
        created: Vec::new(),
    };
    if let Some(m) = &args.mountpoint {
        // Each missing folder is created, and noted, so that all of them go at the end. From
        // the absolute path: the ancestors of a bare `dmnt` end with an empty path, which no
        // mkdir can create.
        let abs = std::path::absolute(m).map_err(|e| {
            CommandError::failure(format!("cannot create the mountpoint {}: {e}", m.display()))
        })?;
        let missing: Vec<&Path> = abs.ancestors().take_while(|a| !a.exists()).collect();
        for dir in missing.into_iter().rev() {
            std::fs::create_dir(dir).map_err(|e| {
                CommandError::failure(format!("cannot create the mountpoint {}: {e}", m.display()))
            })?;
            scratch.created.push(dir.to_path_buf());
        }
        // Refused now, not after the library is generated and listed.
        crate::mount::preflight(&crate::mount::MountOptions::new(m))
            .map_err(|e| CommandError::failure(e.to_string()))?;
    }
    Ok(scratch)
}

fn demo(args: &DemoArgs, scratch: &Arc<Scratch>) -> Result<(), CommandError> {
    let rt = mount_cmd::mount_runtime()?;
    let phase = Arc::new(AtomicU8::new(STARTING));
    watch_early_interrupts(&rt, phase.clone(), scratch.clone())?;

    errln!(
        "icloudpd-rs demo: generating a simulated iCloud library of {} photos and videos...",
        args.assets
    );
    let sim = rt
        .block_on(Sim::start(SimConfig {
            assets: args.assets,
            size_scale: args.size_scale,
            latency: args.latency,
            // Fast sign-in: the demo is about the files, not about password hashing.
            iterations: 1000,
            ..SimConfig::default()
        }))
        .map_err(|e| CommandError::failure(format!("the simulator did not start: {e}")))?;
    let result = demo_with(args, scratch, &rt, &sim, &phase);
    rt.block_on(sim.shutdown());
    result
}

fn demo_with(
    args: &DemoArgs,
    scratch: &Scratch,
    rt: &tokio::runtime::Runtime,
    sim: &Sim,
    phase: &Arc<AtomicU8>,
) -> Result<(), CommandError> {
    let mountpoint = match &args.mountpoint {
        Some(m) => m.clone(),
        None => {
            let m = scratch.base.join("iCloudPhotos");
            std::fs::create_dir(&m).map_err(|e| {
                CommandError::failure(format!("cannot create {}: {e}", m.display()))
            })?;
            m
        }
    };
    let mirror = scratch.base.join("mirror");
    let mut argv: Vec<String> = vec![
        "demo".into(),
        mountpoint.display().to_string(),
        "-u".into(),
        sim.account().username.clone(),
        "--endpoint".into(),
        sim.endpoint().to_string(),
        "--data-dir".into(),
        scratch.base.join("data").display().to_string(),
        "--poll-interval".into(),
        args.poll_interval.to_string(),
        "--cache-dir".into(),
        scratch.base.join("cache").display().to_string(),
    ];
    if !args.no_mirror {
        argv.extend(["--mirror".into(), mirror.display().to_string()]);
    }
    let mut mount_args = parse_mount_args(&argv)?;
    mount_args.global.password = Some(Password::new(sim.account().password.clone()));
    let ctx = AccountContext::new(&mount_args.global)?;

    errln!("icloudpd-rs demo: signing in and listing the library...");
    {
        let session = rt.block_on(ctx.session())?;
        let mut catalog = ctx.open_catalog()?;
        let opts = RefreshOptions {
            progress: true,
            ..RefreshOptions::default()
        };
        rt.block_on(refresh::refresh(&session, &mut catalog, &opts, &mut NoSink))?;
    }

    if phase
        .compare_exchange(STARTING, MOUNTING, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return Ok(());
    }
    let endpoint = sim.endpoint().to_string();
    let show_mirror = !args.no_mirror;
    mount_cmd::serve(rt, &ctx, &mount_args, |ready| {
        print_guide(
            ready,
            &scratch.base,
            &endpoint,
            show_mirror,
            args.poll_interval,
        );
        let before = phase.swap(MOUNTED, Ordering::SeqCst);
        if before == INTERRUPTED_WHILE_MOUNTING {
            // A signal came while mounting: hand it to the mount, which now catches it.
            // SAFETY: raising a signal in our own process.
            unsafe {
                libc::raise(libc::SIGINT);
            }
        }
    })?;
    errln!("icloudpd-rs demo: unmounted; stopping the simulator and removing the demo folders");
    Ok(())
}

/// `MountArgs` from a command line (so every default is the real command's).
fn parse_mount_args(argv: &[String]) -> Result<MountArgs, CommandError> {
    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        mount: MountArgs,
    }
    Probe::try_parse_from(argv)
        .map(|p| p.mount)
        .map_err(|e| CommandError::failure(format!("demo: {e}")))
}

/// Until the mount catches signals itself: SIGINT, SIGTERM or SIGHUP while starting cleans up
/// and exits with 128 + the signal; one while mounting is handed to the mount once it is up
/// (which unmounts, and the demo then cleans up as on Ctrl-C).
fn watch_early_interrupts(
    rt: &tokio::runtime::Runtime,
    phase: Arc<AtomicU8>,
    scratch: Arc<Scratch>,
) -> Result<(), CommandError> {
    use tokio::signal::unix::{SignalKind, signal};
    let _guard = rt.enter();
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| CommandError::failure(format!("cannot catch Ctrl-C: {e}")))?;
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| CommandError::failure(format!("cannot catch SIGTERM: {e}")))?;
    let mut hup = signal(SignalKind::hangup())
        .map_err(|e| CommandError::failure(format!("cannot catch SIGHUP: {e}")))?;
    rt.spawn(async move {
        loop {
            let signo = tokio::select! {
                _ = int.recv() => libc::SIGINT,
                _ = term.recv() => libc::SIGTERM,
                _ = hup.recv() => libc::SIGHUP,
            };
            match phase.compare_exchange(
                STARTING,
                INTERRUPTED_WHILE_MOUNTING,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    // Nothing is mounted yet.
                    errln!("icloudpd-rs demo: interrupted; removing the demo folders");
                    scratch.clean();
                    std::process::exit(128 + signo);
                }
                Err(MOUNTING) => phase.store(INTERRUPTED_WHILE_MOUNTING, Ordering::SeqCst),
                Err(_) => {} // the mount handles it
            }
        }
    });
    Ok(())
}

fn print_guide(ready: &Ready<'_>, scratch: &Path, endpoint: &str, mirror: bool, poll: u64) {
    let m = shell_quote(ready.mountpoint);
    let year = newest_year(ready.mountpoint).unwrap_or_else(|| "2024".into());
    let sample = first_file(&ready.mountpoint.join(&year))
        .map(|f| shell_quote(&f))
        .unwrap_or_else(|| format!("{m}/{year}/*/*/*"));
    // Copies go into the demo folder: nothing is left behind in /tmp.
    let s = shell_quote(scratch);
    let tries: Vec<(String, String)> = vec![
        (
            format!("ls {m}"),
            "the date tree `icloudpd-rs sync` writes, and the views".into(),
        ),
        (
            format!("ls {m}/Albums {m}/'Media Types'/Videos"),
            "albums and smart folders".into(),
        ),
        (
            format!("find {m} -type f | wc -l"),
            "every file, listed from the local catalog".into(),
        ),
        (
            format!("du -sh {m}/{year}"),
            "exact sizes before a byte is downloaded".into(),
        ),
        (
            format!("cp -r {m}/{year} {s}/copy-{year}"),
            "bytes fetched on read, cached on disk".into(),
        ),
        (
            format!("rsync -a {m}/{year}/ {s}/rsync-{year}/"),
            "twice: the second run copies nothing".into(),
        ),
        (
            format!("getfattr -d {sample}"),
            "iCloud metadata as extended attributes (getfattr: package attr)".into(),
        ),
        (
            format!("xdg-open {m}"),
            "browse it in a file manager".into(),
        ),
        (
            format!("curl -X POST {endpoint}/_sim/mutate -d '{{\"op\":\"add\",\"count\":5}}'"),
            format!("new photos appear within {poll} s"),
        ),
    ];
    let mut text = format!(
        "\niCloud Photos, simulated (no Apple account involved): {} in the date tree, {} albums.\n\n  Mounted at: {}\n",
        ready.date_tree(),
        ready.counts.albums,
        ready.mountpoint.display()
    );
    if let (true, Some(d)) = (mirror, ready.mirror) {
        text.push_str(&format!(
            "  Mirror:     {} (filled in the background; finished files are read from it)\n",
            d.display()
        ));
    }
    text.push_str(&format!(
        "  Demo data:  {} (removed when the demo stops)\n",
        scratch.display()
    ));
    text.push_str("\nTry, in another terminal:\n");
    for (cmd, why) in tries {
        text.push_str(&format!("  {cmd}\n      # {why}\n"));
    }
    text.push_str(
        "\nCtrl-C stops everything: unmounts, stops the simulator, removes the demo folders.\n",
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// The newest year folder at the top of the mount (for the examples).
fn newest_year(mountpoint: &Path) -> Option<String> {
    std::fs::read_dir(mountpoint)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()))
        .max()
}

/// The first file (in name order) under `dir`, depth first.
fn first_file(dir: &Path) -> Option<std::path::PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    entries.into_iter().find_map(|e| match e.file_type() {
        Ok(t) if t.is_dir() => first_file(&e.path()),
        Ok(_) => Some(e.path()),
        Err(_) => None,
    })
}

fn shell_quote(p: &Path) -> String {
    super::global::shell_word(&p.to_string_lossy())
}

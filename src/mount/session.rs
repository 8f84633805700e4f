//! Mounting and unmounting: checks that explain what is wrong before anything is mounted,
//! the fuser session and its threads, live updates with their kernel invalidations, signals.
//!
//! Lifecycle: [`mount`] checks the mountpoint and the FUSE device, mounts (the INIT handshake
//! happens inside), and runs the session on its own threads. The returned [`MountHandle`]
//! applies updates, and ends with [`MountHandle::unmount`], [`MountHandle::wait`] (until
//! someone runs `fusermount3 -u`), or [`MountHandle::run_until_signal`] (SIGINT / SIGTERM
//! unmount cleanly; an external unmount also ends it). If anything fails after the kernel
//! mount, the session is dropped and fuser unmounts: a failed `mount` leaves nothing mounted.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use fuser::{INodeNo, MountOption, Notifier, SessionACL, SessionUnmounter};

use super::core::{CoreConfig, FsCore};
use super::fuse::{AdapterCounters, FuseFs, Ttls};
use super::namespace::{Entry, Invalidation, Namespace, Skipped};
use super::source::ContentSource;

/// Kernel readahead asked for, in KiB: a sequential reader's requests arrive in 1 MiB pieces
/// (the FUSE maximum) instead of 128 KiB ones, an eighth of the round trips through the
/// daemon. Peeks are unaffected (the first readahead of a file stays small, see `read`).
pub const READ_AHEAD_KB: u32 = 1024;

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Where (an existing, empty directory).
    pub mountpoint: PathBuf,
    /// Let other users (and root) in (`allow_other`); non-root users need `user_allow_other`
    /// in `/etc/fuse.conf`. Off: the mount is private to the mounting user.
    pub allow_other: bool,
    /// Source name shown by `mount` and `df`.
    pub fs_name: String,
    /// Filesystem subtype (shown as `fuse.<subtype>`).
    pub subtype: String,
    /// FUSE worker threads (at least 4).
    pub threads: usize,
    /// How long the kernel trusts attributes.
    pub attr_ttl: Duration,
    /// How long the kernel trusts names.
    pub entry_ttl: Duration,
    /// How long the kernel remembers that a name does not exist.
    pub negative_ttl: Duration,
    /// Use kernel passthrough for mirrored files when the kernel and privileges allow it.
    pub passthrough: bool,
    /// Kernel readahead of the mount in KiB (the kernel's default is 128), set when the
    /// daemon may (root): larger reads mean fewer round trips through the daemon.
    pub read_ahead_kb: Option<u32>,
    /// Core settings (owner, read-ahead).
    pub core: CoreConfig,
    /// Runtime for reads that wait for the network; `None` starts a private one.
    pub runtime: Option<tokio::runtime::Handle>,
    /// The FUSE device (only tests change it).
    pub fuse_device: PathBuf,
}

impl MountOptions {
    /// Defaults for mounting at `mountpoint`.
    pub fn new(mountpoint: impl Into<PathBuf>) -> Self {
        MountOptions {
            mountpoint: mountpoint.into(),
            allow_other: false,
            fs_name: "icloudpd-rs".into(),
            subtype: "icloudpd-rs".into(),
            threads: 8,
            // The catalog is authoritative and every change is pushed as an invalidation, so
            // the kernel may keep what it learnt for long.
            attr_ttl: Duration::from_secs(24 * 3600),
            entry_ttl: Duration::from_secs(24 * 3600),
            negative_ttl: Duration::from_secs(3600),
            passthrough: true,
            read_ahead_kb: Some(READ_AHEAD_KB),
            core: CoreConfig::default(),
            runtime: None,
            fuse_device: PathBuf::from("/dev/fuse"),
        }
    }
}

/// Why mounting or unmounting failed. Messages name the fix.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mountpoint {0} does not exist: create it first (mkdir -p {0})")]
    MissingMountpoint(PathBuf),
    #[error("mountpoint {0} is not a directory: mount on an empty directory")]
    NotADirectory(PathBuf),
    #[error(
        "mountpoint {0} is not empty: mount on an empty directory \
         (the mount would hide what is there)"
    )]
    NotEmpty(PathBuf),
    #[error(
        "{path} is already a mount point ({fstype}): unmount it first \
         (fusermount3 -u {path}) or choose another directory"
    )]
    AlreadyMounted { path: PathBuf, fstype: String },
    #[error(
        "{0} is a stale FUSE mount (Transport endpoint is not connected): a previous mount \
         ended without unmounting; clear it with `fusermount3 -u {0}` (as root: umount -l {0}) \
         and mount again"
    )]
    StaleMount(PathBuf),
    #[error("no permission to mount on {0}: use a directory you own")]
    NoPermission(PathBuf),
    #[error(
        "{0} does not exist: FUSE is not available; load it (modprobe fuse) or, in a container, \
         run with --device /dev/fuse --cap-add SYS_ADMIN"
    )]
    NoFuseDevice(PathBuf),
    #[error(
        "no permission to open {0}: FUSE access is restricted on this system \
         (check the device's group and mode, or ask your administrator)"
    )]
    FuseDeviceDenied(PathBuf),
    #[error("fusermount3 is not installed: install the fuse3 package (apt install fuse3)")]
    NoFusermount,
    #[error(
        "--allow-other needs `user_allow_other` in /etc/fuse.conf for non-root users: add that \
         line (as root) or mount without --allow-other"
    )]
    AllowOtherNotPermitted,
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("mounting on {path} failed: {source}")]
    Mount { path: PathBuf, source: io::Error },
    #[error("unmounting {path} failed: {source}")]
    Unmount { path: PathBuf, source: io::Error },
    #[error("the filesystem session ended with an error: {0}")]
    Session(io::Error),
}

/// Check that `path` can be mounted on: exists, is an empty directory, is not already (or
/// stale-) mounted, and is ours to use. Returns its canonical form.
pub fn check_mountpoint(path: &Path) -> Result<PathBuf, MountError> {
    let p = path.to_path_buf();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return Err(match e.raw_os_error() {
                Some(libc::ENOENT) => MountError::MissingMountpoint(p),
                Some(libc::ENOTCONN) => MountError::StaleMount(p),
                Some(libc::EACCES) | Some(libc::EPERM) => MountError::NoPermission(p),
                _ => MountError::Io {
                    op: "stat",
                    path: p,
                    source: e,
                },
            });
        }
    };
    if !meta.is_dir() {
        return Err(MountError::NotADirectory(p));
    }
    let canonical = path.canonicalize().map_err(|source| MountError::Io {
        op: "resolve",
        path: p.clone(),
        source,
    })?;
    if let Some(fstype) = mounted_fstype(&canonical) {
        return Err(MountError::AlreadyMounted {
            path: canonical,
            fstype,
        });
    }
    let mut listing = std::fs::read_dir(&canonical).map_err(|e| match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => MountError::NoPermission(canonical.clone()),
        _ => MountError::Io {
            op: "list",
            path: canonical.clone(),
            source: e,
        },
    })?;
    if listing.next().is_some() {
        return Err(MountError::NotEmpty(canonical));
    }
    if !is_root() && !may_write(&canonical) {
        return Err(MountError::NoPermission(canonical));
    }
    Ok(canonical)
}

/// Every check [`mount`] makes before mounting (mountpoint, FUSE device, mount helper,
/// `allow_other`), so a command can refuse bad input before it does anything slow. Returns the
/// canonical mountpoint.
pub fn preflight(opts: &MountOptions) -> Result<PathBuf, MountError> {
    let mountpoint = check_mountpoint(&opts.mountpoint)?;
    check_fuse(opts)?;
    Ok(mountpoint)
}

/// Check the FUSE device, the mount helper and `allow_other` permission.
fn check_fuse(opts: &MountOptions) -> Result<(), MountError> {
    let dev = &opts.fuse_device;
    match OpenOptions::new().read(true).write(true).open(dev) {
        Ok(_) => {}
        Err(e) => {
            return Err(match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
                    MountError::NoFuseDevice(dev.clone())
                }
                Some(libc::EACCES) | Some(libc::EPERM) => MountError::FuseDeviceDenied(dev.clone()),
                _ => MountError::Io {
                    op: "open",
                    path: dev.clone(),
                    source: e,
                },
            });
        }
    }
    if !is_root() {
        if !in_path("fusermount3") && !in_path("fusermount") {
            return Err(MountError::NoFusermount);
        }
        if opts.allow_other && !fuse_conf_allows_other(Path::new("/etc/fuse.conf")) {
            return Err(MountError::AllowOtherNotPermitted);
        }
    }
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn may_write(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

fn in_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(bin).is_file()))
}

/// Whether `/etc/fuse.conf` (or `path`) has an uncommented `user_allow_other` line.
pub(crate) fn fuse_conf_allows_other(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| {
        text.lines()
            .any(|l| l.split('#').next().unwrap_or("").trim() == "user_allow_other")
    })
}

/// The filesystem type mounted exactly at `path`, from `/proc/self/mountinfo`.
fn mounted_fstype(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo_fstype(&info, path)
}

pub(crate) fn mountinfo_fstype(info: &str, path: &Path) -> Option<String> {
    let want = path.as_os_str().as_bytes();
    info.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let mount_point = unescape_mountinfo(fields.get(4)?);
        if mount_point != want {
            return None;
        }
        let dash = fields.iter().position(|f| *f == "-")?;
        fields.get(dash + 1).map(|s| s.to_string())
    })
}

/// Undo the octal escapes (`\040` for space...) of mountinfo paths.
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Whether kernel passthrough may be used: it needs CAP_SYS_ADMIN in the initial user
/// namespace (the kernel checks it when a backing file is registered).
fn passthrough_allowed() -> bool {
    is_root()
        && std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
}

enum Event {
    Ended(io::Result<()>),
    Signal(&'static str),
}

/// A live mount.
pub struct MountHandle {
    mountpoint: PathBuf,
    core: Arc<FsCore>,
    unmounter: Mutex<SessionUnmounter>,
    events_tx: mpsc::Sender<Event>,
    events_rx: Mutex<mpsc::Receiver<Event>>,
    session_thread: Option<JoinHandle<()>>,
    inval_tx: InvalSender,
    inval_thread: Option<JoinHandle<()>>,
    rt_handle: tokio::runtime::Handle,
    runtime: Option<tokio::runtime::Runtime>,
    counters: Arc<AdapterCounters>,
    catching_signals: bool,
}

type InvalSender = Arc<Mutex<Option<mpsc::Sender<Vec<Invalidation>>>>>;

/// Applies live updates to a mount from anywhere ([`MountHandle::updater`]).
#[derive(Clone)]
pub struct Updater {
    core: Arc<FsCore>,
    inval_tx: InvalSender,
}

impl std::fmt::Debug for Updater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updater").finish_non_exhaustive()
    }
}

impl Updater {
    /// Show `entries` + `extra_dirs` from now on (see [`MountHandle::apply`]).
    pub fn apply(&self, entries: Vec<Entry>, extra_dirs: &[String]) -> Vec<Skipped> {
        let update = self.core.namespace().apply(entries, extra_dirs);
        if !update.invalidations.is_empty()
            && let Some(tx) = self
                .inval_tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
        {
            let _ = tx.send(update.invalidations);
        }
        update.skipped
    }

    /// The filesystem core.
    pub fn core(&self) -> &Arc<FsCore> {
        &self.core
    }
}

/// What the kernel-facing side of a mount has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountStats {
    /// Kernel passthrough was negotiated (mirrored files are read by the kernel directly).
    pub passthrough: bool,
    /// Opens served in passthrough mode.
    pub passthrough_opens: u64,
    /// Opens served by the daemon.
    pub cached_opens: u64,
    /// Reads answered at once (local file or cache).
    pub reads_inline: u64,
    /// Reads that waited for the network.
    pub reads_async: u64,
    /// Total time those reads waited, in microseconds.
    pub reads_async_wait_us: u64,
    /// Reads answered EIO.
    pub read_errors: u64,
}

impl std::fmt::Debug for MountHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountHandle")
            .field("mountpoint", &self.mountpoint)
            .finish_non_exhaustive()
    }
}

/// Mount `ns` at `opts.mountpoint`, reading file bytes from `source`.
pub fn mount(
    ns: Arc<Namespace>,
    source: Arc<dyn ContentSource>,
    opts: MountOptions,
) -> Result<MountHandle, MountError> {
    let mountpoint = check_mountpoint(&opts.mountpoint)?;
    check_fuse(&opts)?;
    let (runtime, rt_handle) = match &opts.runtime {
        Some(h) => (None, h.clone()),
        None => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .thread_name("mount-io")
                .enable_all()
                .build()
                .map_err(|source| MountError::Io {
                    op: "start runtime for",
                    path: mountpoint.clone(),
                    source,
                })?;
            let h = rt.handle().clone();
            (Some(rt), h)
        }
    };
    let core = Arc::new(FsCore::new(ns, source, opts.core.clone()));
    let ttls = Ttls {
        attr: opts.attr_ttl,
        entry: opts.entry_ttl,
        negative: opts.negative_ttl,
    };
    let counters = Arc::new(AdapterCounters::default());
    let fs = FuseFs::new(
        core.clone(),
        rt_handle.clone(),
        ttls,
        opts.passthrough && passthrough_allowed(),
        counters.clone(),
    );
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::FSName(opts.fs_name.clone()),
        MountOption::Subtype(opts.subtype.clone()),
    ];
    config.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(opts.threads.max(4));
    config.clone_fd = true;
    let mut session =
        fuser::Session::new(fs, &mountpoint, &config).map_err(|source| MountError::Mount {
            path: mountpoint.clone(),
            source,
        })?;
    let unmounter = session.unmount_callable();
    let notifier = session.notifier();
    let (events_tx, events_rx) = mpsc::channel();
    let tx = events_tx.clone();
    let session_thread = std::thread::Builder::new()
        .name("fuse-session".into())
        .spawn(move || {
            let res = session.run();
            let _ = tx.send(Event::Ended(res));
        })
        .map_err(|source| MountError::Io {
            op: "start session thread for",
            path: mountpoint.clone(),
            source,
        })?;
    let (inval_tx, inval_rx) = mpsc::channel::<Vec<Invalidation>>();
    let inval_thread = std::thread::Builder::new()
        .name("fuse-invalidate".into())
        .spawn(move || {
            for batch in inval_rx {
                send_invalidations(&notifier, batch);
            }
        })
        .map_err(|source| MountError::Io {
            op: "start invalidation thread for",
            path: mountpoint.clone(),
            source,
        })?;
    if let Some(kb) = opts.read_ahead_kb {
        raise_read_ahead(&mountpoint, kb);
    }
    tracing::info!(mountpoint = %mountpoint.display(), "mounted");
    Ok(MountHandle {
        mountpoint,
        core,
        unmounter: Mutex::new(unmounter),
        events_tx,
        events_rx: Mutex::new(events_rx),
        session_thread: Some(session_thread),
        inval_tx: Arc::new(Mutex::new(Some(inval_tx))),
        inval_thread: Some(inval_thread),
        rt_handle,
        runtime,
        counters,
        catching_signals: false,
    })
}

/// Set the readahead of the mount's backing device (`/sys/class/bdi/MAJOR:MINOR`). Only root
/// may; otherwise the kernel's default stays (not an error).
fn raise_read_ahead(mountpoint: &Path, kb: u32) {
    use std::os::unix::fs::MetadataExt;
    if !is_root() {
        return;
    }
    let dev = match std::fs::metadata(mountpoint) {
        Ok(m) => m.dev(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot stat the mount to tune its readahead");
            return;
        }
    };
    let path = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    if let Err(e) = std::fs::write(&path, kb.to_string()) {
        tracing::debug!(error = %e, path, "cannot raise the mount's readahead");
    }
}

/// Send invalidations one by one; the kernel not knowing an entry is not an error.
fn send_invalidations(notifier: &Notifier, batch: Vec<Invalidation>) {
    for inv in batch {
        let res = match &inv {
            Invalidation::Entry { parent, name } => {
                notifier.inval_entry(INodeNo(*parent), OsStr::from_bytes(name))
            }
            Invalidation::Delete {
                parent,
                child,
                name,
            } => notifier
                .delete(INodeNo(*parent), INodeNo(*child), OsStr::from_bytes(name))
                .or_else(|_| notifier.inval_entry(INodeNo(*parent), OsStr::from_bytes(name))),
            Invalidation::Inode { ino } => notifier.inval_inode(INodeNo(*ino), 0, 0),
        };
        if let Err(e) = res {
            tracing::debug!(error = %e, invalidation = ?inv, "kernel invalidation failed");
        }
    }
}

impl MountHandle {
    /// The mounted directory (canonical).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The filesystem core (statistics, direct calls in tests).
    pub fn core(&self) -> &Arc<FsCore> {
        &self.core
    }

    fn next_event(&self) -> Result<Event, mpsc::RecvError> {
        self.events_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recv()
    }

    /// Counters of the kernel-facing side.
    pub fn stats(&self) -> MountStats {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.counters;
        MountStats {
            passthrough: c.passthrough_on.load(Relaxed),
            passthrough_opens: c.passthrough_opens.load(Relaxed),
            cached_opens: c.cached_opens.load(Relaxed),
            reads_inline: c.reads_inline.load(Relaxed),
            reads_async: c.reads_async.load(Relaxed),
            reads_async_wait_us: c.reads_async_wait_us.load(Relaxed),
            read_errors: c.read_errors.load(Relaxed),
        }
    }

    /// The runtime serving reads.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.rt_handle
    }

    /// Show `entries` + `extra_dirs` from now on; the kernel's caches are invalidated from a
    /// separate thread. Returns the refused entries.
    pub fn apply(&self, entries: Vec<Entry>, extra_dirs: &[String]) -> Vec<Skipped> {
        self.updater().apply(entries, extra_dirs)
    }

    /// A handle that applies updates from another thread or task for as long as the mount
    /// lives (after the unmount, updates change nothing).
    pub fn updater(&self) -> Updater {
        Updater {
            core: self.core.clone(),
            inval_tx: self.inval_tx.clone(),
        }
    }

    /// Unmount now and wait for the session to end.
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.do_unmount()?;
        self.finish()
    }

    /// Block until the filesystem is unmounted from outside (`fusermount3 -u`).
    pub fn wait(self) -> Result<(), MountError> {
        loop {
            match self.next_event() {
                Ok(Event::Ended(res)) => return self.finish_with(res),
                Ok(Event::Signal(_)) => continue,
                Err(_) => return self.finish(),
            }
        }
    }

    /// From now on, SIGINT and SIGTERM end [`MountHandle::run_until_signal`] instead of the
    /// process (called by it; call it earlier to close the window between mounting and
    /// waiting).
    pub fn catch_signals(&mut self) {
        if self.catching_signals {
            return;
        }
        let signals = {
            let _guard = self.rt_handle.enter();
            use tokio::signal::unix::{SignalKind, signal};
            let int = signal(SignalKind::interrupt());
            let term = signal(SignalKind::terminate());
            match (int, term) {
                (Ok(i), Ok(t)) => Some((i, t)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot catch signals; stop with fusermount3 -u");
                    None
                }
            }
        };
        if let Some((mut int, mut term)) = signals {
            let tx = self.events_tx.clone();
            self.rt_handle.spawn(async move {
                let name = tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                };
                let _ = tx.send(Event::Signal(name));
            });
            self.catching_signals = true;
        }
    }

    /// Block until SIGINT or SIGTERM (then unmount) or an external unmount; `Ok` in both cases.
    pub fn run_until_signal(mut self) -> Result<(), MountError> {
        self.catch_signals();
        match self.next_event() {
            Ok(Event::Ended(res)) => self.finish_with(res),
            Ok(Event::Signal(name)) => {
                tracing::info!(signal = name, "unmounting");
                if self.do_unmount()? {
                    self.finish()
                } else {
                    // Lazily detached while busy: the session ends when the last user leaves
                    // or when this process exits; do not wait for it.
                    Ok(())
                }
            }
            Err(_) => self.finish(),
        }
    }

    /// Unmount; `Ok(false)` when the mount was busy and had to be detached lazily.
    fn do_unmount(&mut self) -> Result<bool, MountError> {
        let res = self
            .unmounter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unmount();
        match res {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                tracing::warn!(
                    mountpoint = %self.mountpoint.display(),
                    "the mount is busy (a process uses it); detaching it lazily"
                );
                lazy_unmount(&self.mountpoint).map_err(|source| MountError::Unmount {
                    path: self.mountpoint.clone(),
                    source,
                })?;
                Ok(false)
            }
            Err(source) => Err(MountError::Unmount {
                path: self.mountpoint.clone(),
                source,
            }),
        }
    }

    fn finish(mut self) -> Result<(), MountError> {
        let res = loop {
            match self.next_event() {
                Ok(Event::Ended(res)) => break res,
                Ok(Event::Signal(_)) => continue,
                Err(_) => break Ok(()),
            }
        };
        self.finish_with_inner(res)
    }

    fn finish_with(mut self, res: io::Result<()>) -> Result<(), MountError> {
        self.finish_with_inner(res)
    }

    fn finish_with_inner(&mut self, res: io::Result<()>) -> Result<(), MountError> {
        if let Some(t) = self.session_thread.take() {
            let _ = t.join();
        }
        self.inval_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = self.inval_thread.take() {
            let _ = t.join();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        tracing::info!(mountpoint = %self.mountpoint.display(), "unmounted");
        res.map_err(MountError::Session)
    }
}

impl Drop for MountHandle {
    fn drop(&mut self) {
        if self.session_thread.is_some() {
            let _ = self
                .unmounter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .unmount();
        }
        self.inval_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn lazy_unmount(path: &Path) -> io::Result<()> {
    if is_root() {
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
            return Ok(());
        }
        return Err(io::Error::last_os_error());
    }
    let status = std::process::Command::new("fusermount3")
        .args(["-u", "-z", "--"])
        .arg(path)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "fusermount3 -uz exited with {status}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_parsing_handles_escapes_and_finds_the_type() {
        let info = "22 1 0:21 / / rw,relatime - ext4 /dev/vda rw\n\
                    40 22 0:35 / /tmp/my\\040photos rw,nosuid - fuse.icloudpd-rs icloudpd-rs rw\n";
        assert_eq!(
            mountinfo_fstype(info, Path::new("/tmp/my photos")).as_deref(),
            Some("fuse.icloudpd-rs")
        );
        assert_eq!(
            mountinfo_fstype(info, Path::new("/")).as_deref(),
            Some("ext4")
        );
        assert_eq!(mountinfo_fstype(info, Path::new("/tmp")), None);
    }

    #[test]
    fn fuse_conf_needs_an_uncommented_user_allow_other() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fuse.conf");
        std::fs::write(&p, "# user_allow_other\nmount_max = 1000\n").unwrap();
        assert!(!fuse_conf_allows_other(&p));
        std::fs::write(&p, "mount_max = 1000\n  user_allow_other  \n").unwrap();
        assert!(fuse_conf_allows_other(&p));
        assert!(!fuse_conf_allows_other(&dir.path().join("missing")));
    }

    #[test]
    fn mountpoint_problems_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            check_mountpoint(&missing),
            Err(MountError::MissingMountpoint(_))
        ));
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            check_mountpoint(&file),
            Err(MountError::NotADirectory(_))
        ));
        let full = dir.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("a"), b"x").unwrap();
        assert!(matches!(
            check_mountpoint(&full),
            Err(MountError::NotEmpty(_))
        ));
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert_eq!(
            check_mountpoint(&empty).unwrap(),
            empty.canonicalize().unwrap()
        );
        assert!(matches!(
            check_mountpoint(Path::new("/proc")),
            Err(MountError::AlreadyMounted { .. })
        ));
        let msg = MountError::StaleMount(PathBuf::from("/m")).to_string();
        assert!(msg.contains("fusermount3 -u /m"), "{msg}");
    }

    #[test]
    fn missing_fuse_device_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = MountOptions::new(dir.path());
        opts.fuse_device = dir.path().join("no-such-device");
        let err = check_fuse(&opts).unwrap_err();
        assert!(matches!(err, MountError::NoFuseDevice(_)));
        assert!(err.to_string().contains("modprobe fuse"));
    }
}

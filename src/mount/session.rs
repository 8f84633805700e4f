//! The mounted session: mounting, the fuser session and its threads, signals, unmounting.
//!
//! Lifecycle: [`mount`] checks the mountpoint and the FUSE device
//! ([`super::preflight`](mod@super::preflight)), mounts (the INIT handshake happens inside),
//! and runs the session on its own threads. The returned [`MountHandle`] applies updates
//! ([`super::updater`]), and ends with
//! [`MountHandle::unmount`], [`MountHandle::wait`] (until someone runs `fusermount3 -u`), or
//! [`MountHandle::run_until_signal`] (SIGINT / SIGTERM unmount cleanly; an external unmount
//! also ends it). If anything fails after the kernel mount, the session is dropped and fuser
//! unmounts: a failed `mount` leaves nothing mounted.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use fuser::{MountOption, SessionACL, SessionUnmounter};

use super::core::FsCore;
use super::error::MountError;
use super::fuse::{AdapterCounters, FuseFs, Ttls};
use super::namespace::{Entry, Namespace, Skipped};
use super::options::MountOptions;
use super::preflight::{is_root, mounted_fstype, passthrough_allowed, preflight};
use super::source::ContentSource;
use super::updater::{InvalSender, Updater, spawn_invalidator};

/// How long an unmounted session may take to end before we say why we still wait.
const WAIT_NOTICE: Duration = Duration::from_secs(5);

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
    let mountpoint = preflight(&opts)?;
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
    // The tree is built: whatever the listing and the build freed goes back to the system.
    crate::memory::release_free_memory();
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
        opts.direct_io_cold,
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
    let (inval_tx, inval_thread) =
        spawn_invalidator(notifier).map_err(|source| MountError::Io {
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
        Updater::new(self.core.clone(), self.inval_tx.clone())
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

    /// From now on, SIGINT, SIGTERM and SIGHUP (a closed terminal) end
    /// [`MountHandle::run_until_signal`] instead of the process (called by it; call it earlier
    /// to close the window between mounting and waiting).
    pub fn catch_signals(&mut self) {
        if self.catching_signals {
            return;
        }
        let signals = {
            let _guard = self.rt_handle.enter();
            use tokio::signal::unix::{SignalKind, signal};
            [
                (SignalKind::interrupt(), "SIGINT"),
                (SignalKind::terminate(), "SIGTERM"),
                (SignalKind::hangup(), "SIGHUP"),
            ]
            .into_iter()
            .map(|(kind, name)| signal(kind).map(|s| (s, name)))
            .collect::<io::Result<Vec<_>>>()
        };
        match signals {
            Ok(signals) => {
                for (mut signal, name) in signals {
                    let tx = self.events_tx.clone();
                    // Every signal is passed on: a second one stops waiting for busy users.
                    self.rt_handle.spawn(async move {
                        while signal.recv().await.is_some() {
                            if tx.send(Event::Signal(name)).is_err() {
                                break;
                            }
                        }
                    });
                }
                self.catching_signals = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot catch signals; stop with fusermount3 -u");
            }
        }
    }

    /// Block until SIGINT, SIGTERM or SIGHUP (then unmount) or an external unmount; `Ok` in
    /// both cases. A mount still in use when the signal comes (a shell inside it, a copy under
    /// way) is detached at once and served until its last user lets go, as `umount -l` does;
    /// a second signal stops serving it: [`MountError::ForcedStop`], after which the process
    /// should exit with [`FORCED_EXIT_CODE`] (it does by itself after [`FORCED_EXIT_GRACE`]).
    pub fn run_until_signal(mut self) -> Result<(), MountError> {
        self.catch_signals();
        let result = self.serve_until_signal();
        // Unmounted: what is left is winding down (the mirror's files in flight, the cache's
        // last stores), which a busy machine can stretch. A signal now ends the process at
        // once, as shells expect of a second Ctrl-C (nothing caught it any more: it did
        // nothing).
        default_signals();
        result
    }

    fn serve_until_signal(mut self) -> Result<(), MountError> {
        match self.next_event() {
            Ok(Event::Ended(res)) => self.finish_with(res),
            Ok(Event::Signal(name)) => {
                tracing::info!(signal = name, "unmounting");
                let detached_lazily = !self.do_unmount()?;
                match self.wait_for_end(detached_lazily) {
                    Some(res) => self.finish_with(res),
                    // The process exits next, closing the connection: the remaining users get
                    // I/O errors, which the second signal asked for.
                    None => Err(MountError::ForcedStop),
                }
            }
            Err(_) => self.finish(),
        }
    }

    /// Waits for the session to end after an unmount. A signal stops waiting (`None`), and
    /// the process then ends within [`FORCED_EXIT_GRACE`] whatever its threads are doing.
    fn wait_for_end(&self, detached_lazily: bool) -> Option<io::Result<()>> {
        if detached_lazily {
            tracing::warn!(
                mountpoint = %self.mountpoint.display(),
                "programs still use the mount: it is detached, and they can go on reading until they let go; send the signal again (Ctrl-C) to stop at once (they then get I/O errors)"
            );
        }
        let mut waited = Duration::ZERO;
        loop {
            let event = self
                .events_rx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .recv_timeout(WAIT_NOTICE);
            match event {
                Ok(Event::Ended(res)) => return Some(res),
                Ok(Event::Signal(name)) => {
                    tracing::warn!(
                        signal = name,
                        "stopping without waiting for the mount's users"
                    );
                    force_exit_after(FORCED_EXIT_GRACE);
                    return None;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    waited += WAIT_NOTICE;
                    if !detached_lazily && waited == WAIT_NOTICE {
                        // Unmounted here, yet the kernel keeps the connection: another mount
                        // namespace (a container, `unshare -m`, a service with a private /tmp)
                        // holds a copy of the mount.
                        tracing::warn!(
                            mountpoint = %self.mountpoint.display(),
                            "the filesystem is still mounted in another mount namespace (a container or a service started while it was mounted); waiting for it to be unmounted there; send the signal again (Ctrl-C) to stop at once"
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Some(Ok(())),
            }
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
        tracing::debug!(adapter = ?self.stats(), "kernel request statistics");
        // The session's own unmount-on-drop reports failures only as a log line of fuser's
        // (silenced by default: it also fires after every `fusermount3 -u`); check the result.
        if let Some(fstype) = mounted_fstype(&self.mountpoint).filter(|t| t.starts_with("fuse")) {
            tracing::warn!(
                mountpoint = %self.mountpoint.display(),
                fstype,
                "a filesystem is still mounted here after the session ended; run fusermount3 -u {}",
                self.mountpoint.display()
            );
            return res.map_err(MountError::Session);
        }
        tracing::info!(mountpoint = %self.mountpoint.display(), "unmounted");
        match res {
            // Once unmounted, the kernel ends the connection: reading it then fails with ENODEV
            // or, after a lazy detach whose last user let go, ECONNABORTED. Both are the end.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENODEV | libc::ECONNABORTED)) => {
                tracing::debug!(error = %e, "the kernel closed the FUSE connection");
                Ok(())
            }
            res => res.map_err(MountError::Session),
        }
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

/// How long a process told twice to stop may take to wind down before it exits anyway.
pub const FORCED_EXIT_GRACE: Duration = Duration::from_secs(5);

/// The exit code of a process told twice to stop, whichever way it ends: that of a shell's
/// interrupted command, since the mount's users were cut off rather than let go.
pub const FORCED_EXIT_CODE: i32 = 130;

/// Exit with [`FORCED_EXIT_CODE`] after `grace` unless the process has ended by then: the
/// second signal means "stop at once", and threads stuck in a request (a bug, a hung disk) must
/// not keep the process alive. Nothing is lost: files and the catalog are written to survive a
/// kill.
fn force_exit_after(grace: Duration) {
    let _ = std::thread::Builder::new()
        .name("forced-exit".into())
        .spawn(move || {
            std::thread::sleep(grace);
            tracing::warn!("still stopping after the second signal; exiting now");
            std::process::exit(FORCED_EXIT_CODE);
        });
}

/// The default disposition (end the process) for the signals the mount caught.
fn default_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: resetting a signal to its default disposition.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
        }
    }
}

//! The thin fuser adapter: converts kernel requests into [`FsCore`] calls and answers them.
//! All fuser types and all errno mapping live here.
//!
//! Metadata requests are answered inline on the FUSE worker thread (the core answers from
//! memory). A read is polled once inline (cache and local hits complete there); if it must wait
//! for the network it is handed to the tokio runtime and answered from the task, so a slow read
//! never holds a worker that `ls` needs.
//!
//! Passthrough: when the kernel offers `FUSE_PASSTHROUGH` and the process may use it (root in
//! the initial user namespace), a file whose content is a complete local file is opened in
//! passthrough mode, so the kernel reads the mirrored file directly. The kernel refuses mixing
//! passthrough and cached opens of one inode (`ETXTBSY`), so the mode is decided per inode
//! while it has open handles.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fuser::{
    BackingId, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLseek, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use super::attr::Attr;
use super::core::{FsCore, FsError, XattrReply};
use super::namespace::Kind;

/// Background requests the kernel may queue (fuser's default is 16; 64 measured best by
/// mountpoint-s3 for paged sequential reads).
const MAX_BACKGROUND: u16 = 64;

/// Kernel cache lifetimes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ttls {
    pub attr: Duration,
    pub entry: Duration,
    pub negative: Duration,
}

/// Counters of what the adapter did (shared with the mount handle).
#[derive(Debug, Default)]
pub(crate) struct AdapterCounters {
    /// Passthrough was negotiated with the kernel.
    pub passthrough_on: AtomicBool,
    pub passthrough_opens: AtomicU64,
    pub cached_opens: AtomicU64,
    /// Reads answered on the FUSE thread (cache or local hits).
    pub reads_inline: AtomicU64,
    /// Reads that waited for the network on the runtime.
    pub reads_async: AtomicU64,
    /// Total time those reads waited, in microseconds.
    pub reads_async_wait_us: AtomicU64,
    pub read_errors: AtomicU64,
}

#[derive(Default)]
struct InodeMode {
    cached_opens: u32,
    passthrough_opens: u32,
    backing: Weak<BackingId>,
}

pub(crate) struct FuseFs {
    core: Arc<FsCore>,
    rt: tokio::runtime::Handle,
    ttls: Ttls,
    passthrough_wanted: bool,
    /// Files not complete in the cache are opened with FOPEN_DIRECT_IO (see
    /// [`super::MountOptions::direct_io_cold`]); cleared at INIT when the kernel cannot `mmap`
    /// such files shared.
    direct_io_cold: bool,
    counters: Arc<AdapterCounters>,
    modes: Mutex<HashMap<u64, InodeMode>>,
    backing_of_fh: Mutex<HashMap<u64, Arc<BackingId>>>,
    /// The kernel can do without OPENDIR (Linux >= 5.1): see `opendir`.
    no_opendir: bool,
}

impl FuseFs {
    pub fn new(
        core: Arc<FsCore>,
        rt: tokio::runtime::Handle,
        ttls: Ttls,
        passthrough: bool,
        direct_io_cold: bool,
        counters: Arc<AdapterCounters>,
    ) -> Self {
        FuseFs {
            core,
            rt,
            ttls,
            passthrough_wanted: passthrough,
            direct_io_cold,
            counters,
            modes: Mutex::new(HashMap::new()),
            backing_of_fh: Mutex::new(HashMap::new()),
            no_opendir: false,
        }
    }

    /// Shared flag telling whether passthrough was negotiated (set during INIT).
    pub fn passthrough_active(&self) -> bool {
        self.counters.passthrough_on.load(Ordering::Relaxed)
    }

    /// Decide how open `fh` of `ino` is served and count it, in one step with the other opens
    /// of the inode: the kernel fails an open (EIO) whose mode differs from that of the opens
    /// it already holds. Passthrough (the backing returned) when nothing is open in cached
    /// mode and either passthrough opens are live (this one joins them, even if its own
    /// handle reads remotely: the bytes are the same) or `local` offers a file to back it;
    /// otherwise cached (`None`).
    fn choose_io_mode(
        &self,
        ino: u64,
        fh: u64,
        local: bool,
        reply: &ReplyOpen,
    ) -> Option<Arc<BackingId>> {
        let mut modes = lock(&self.modes);
        let mode = modes.entry(ino).or_default();
        let backing = if !self.passthrough_active() || mode.cached_opens > 0 {
            None
        } else if let Some(b) = mode.backing.upgrade() {
            Some(b)
        } else if local {
            match self.core.with_local_file(fh, |f| reply.open_backing(f)) {
                Some(Ok(b)) => {
                    let b = Arc::new(b);
                    mode.backing = Arc::downgrade(&b);
                    Some(b)
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, ino, "passthrough refused; serving reads ourselves");
                    None
                }
                None => None,
            }
        } else {
            None
        };
        match backing {
            Some(b) => {
                mode.passthrough_opens += 1;
                lock(&self.backing_of_fh).insert(fh, b.clone());
                Some(b)
            }
            None => {
                mode.cached_opens += 1;
                None
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn errno(e: &FsError) -> Errno {
    match e {
        FsError::Read(err) => tracing::warn!(error = %err, "read failed (EIO)"),
        FsError::NotFound | FsError::NoAttr | FsError::NotSupported | FsError::Range { .. } => {}
        other => tracing::debug!(error = %other, "request refused"),
    }
    Errno::from_i32(e.errno())
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
    }
}

fn fuse_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.mtime,
        crtime: a.mtime,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: a.blksize,
        flags: 0,
    }
}

/// The attributes of a cached negative entry (node id 0).
fn negative_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 0,
        flags: 0,
    }
}

fn reply_read(reply: ReplyData, res: Result<Bytes, FsError>, counters: &AdapterCounters) {
    match res {
        Ok(data) => reply.data(&data),
        Err(e) => {
            counters.read_errors.fetch_add(1, Ordering::Relaxed);
            reply.error(errno(&e))
        }
    }
}

fn wants_write(flags: OpenFlags) -> bool {
    flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for (flag, name) in [
            (InitFlags::FUSE_DO_READDIRPLUS, "readdirplus"),
            (InitFlags::FUSE_PARALLEL_DIROPS, "parallel dirops"),
        ] {
            if config.add_capabilities(flag).is_err() {
                tracing::info!("the kernel does not offer {name}");
            }
        }
        let _ = config.set_max_background(MAX_BACKGROUND);
        // Without FUSE_DIRECT_IO_ALLOW_MMAP (Linux < 6.6) a shared mmap of a direct-I/O file
        // fails (ENODEV): image viewers and players mmap, so those kernels keep the page cache.
        if self.direct_io_cold
            && config
                .add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP)
                .is_err()
        {
            tracing::debug!(
                "the kernel cannot mmap direct-I/O files; cold files use the page cache"
            );
            self.direct_io_cold = false;
        }
        self.no_opendir = config
            .capabilities()
            .contains(InitFlags::FUSE_NO_OPENDIR_SUPPORT);
        if self.passthrough_wanted {
            if config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
                && config.set_max_stack_depth(1).is_ok()
            {
                self.counters.passthrough_on.store(true, Ordering::Relaxed);
                tracing::debug!("passthrough enabled for mirrored files");
            } else {
                tracing::info!(
                    "the kernel does not offer passthrough; mirrored files are read by the daemon"
                );
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.core.lookup(parent.0, name.as_bytes()) {
            Ok(Some(attr)) => reply.entry_with_ttls(
                &self.ttls.attr,
                &self.ttls.entry,
                &fuse_attr(&attr),
                Generation(0),
            ),
            // Node id 0 with a TTL: the kernel caches the absence (an ENOENT error would not be).
            Ok(None) => reply.entry(&self.ttls.negative, &negative_attr(), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.core.getattr(ino.0, fh.map(|f| f.0)) {
            Ok(attr) => reply.attr(&self.ttls.attr, &fuse_attr(&attr)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.core.opendir(ino.0, wants_write(flags)) {
            // ENOSYS tells the kernel this filesystem needs no opendir: it stops sending
            // OPENDIR and RELEASEDIR (two round trips per directory of a `find`) and keeps
            // listings in its page cache, as FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE would; updates
            // invalidate them.
            Ok(()) if self.no_opendir => reply.error(Errno::ENOSYS),
            Ok(()) => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let res = self.core.readdir(ino.0, offset, |e| {
            reply.add(
                INodeNo(e.ino),
                e.cookie,
                file_type(e.kind),
                OsStr::from_bytes(e.name),
            )
        });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let ttl = self.ttls.attr.min(self.ttls.entry);
        let res = self.core.readdir(ino.0, offset, |e| {
            reply.add(
                INodeNo(e.ino),
                e.cookie,
                OsStr::from_bytes(e.name),
                &ttl,
                &fuse_attr(&e.attr),
                Generation(0),
            )
        });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let opened = match self.core.open(ino.0, wants_write(flags)) {
            Ok(o) => o,
            Err(e) => return reply.error(errno(&e)),
        };
        // Content never changes under an inode: keep the page cache across opens.
        let mut fopen = FopenFlags::FOPEN_KEEP_CACHE;
        // A file still coming from the CDN: replies go straight to the reader's buffer, and
        // the reader's reads come to us as it makes them (see `MountOptions::direct_io_cold`).
        // The kernel's 1 MiB readahead kept at most two requests in flight and left the daemon
        // idle a third of a cold read (trace of the benchmark's 376 MiB read: 0.22 s of 0.62 s
        // with no read outstanding; 0.13 s with direct I/O, and the reader's CPU halved).
        if self.direct_io_cold && !opened.local {
            fopen |= FopenFlags::FOPEN_DIRECT_IO;
        }
        if let Some(backing) = self.choose_io_mode(ino.0, opened.fh, opened.local, &reply) {
            self.counters
                .passthrough_opens
                .fetch_add(1, Ordering::Relaxed);
            // The kernel refuses passthrough opens with any flag outside
            // FOPEN_PASSTHROUGH_MASK (KEEP_CACHE included: the page cache is the backing
            // file's anyway), failing the open with EIO.
            return reply.opened_passthrough(
                FileHandle(opened.fh),
                FopenFlags::FOPEN_NOFLUSH,
                &backing,
            );
        }
        self.counters.cached_opens.fetch_add(1, Ordering::Relaxed);
        reply.opened(FileHandle(opened.fh), fopen);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        tracing::trace!(offset, size, "read arrives");
        let mut fut = self.core.read(fh.0, offset, size);
        // Poll once here, inside the runtime's context (timers, spawns): cached and local reads
        // complete at once and are answered from this thread.
        let _guard = self.rt.enter();
        let mut cx = Context::from_waker(Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(res) => {
                self.counters.reads_inline.fetch_add(1, Ordering::Relaxed);
                reply_read(reply, res, &self.counters);
                tracing::trace!(offset, "read answered inline");
            }
            Poll::Pending => {
                self.counters.reads_async.fetch_add(1, Ordering::Relaxed);
                let counters = self.counters.clone();
                let started = std::time::Instant::now();
                self.rt.spawn(async move {
                    let res = fut.await;
                    let waited = started.elapsed().as_micros() as u64;
                    counters
                        .reads_async_wait_us
                        .fetch_add(waited, Ordering::Relaxed);
                    tracing::trace!(offset, size, us = waited, "read waited");
                    reply_read(reply, res, &counters)
                });
            }
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let passthrough = lock(&self.backing_of_fh).remove(&fh.0).is_some();
        {
            let mut modes = lock(&self.modes);
            if let Some(mode) = modes.get_mut(&ino.0) {
                if passthrough {
                    mode.passthrough_opens = mode.passthrough_opens.saturating_sub(1);
                } else {
                    mode.cached_opens = mode.cached_opens.saturating_sub(1);
                }
                if mode.cached_opens == 0 && mode.passthrough_opens == 0 {
                    modes.remove(&ino.0);
                }
            }
        }
        self.core.release(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.core.statfs();
        reply.statfs(
            s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.core.getxattr(ino.0, name.as_bytes(), size) {
            Ok(XattrReply::Size(n)) => reply.size(n),
            Ok(XattrReply::Data(d)) => reply.data(&d),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.core.listxattr(ino.0, size) {
            Ok(XattrReply::Size(n)) => reply.size(n),
            Ok(XattrReply::Data(d)) => reply.data(&d),
            Err(e) => reply.error(errno(&e)),
        }
    }

    // Everything that would modify: EROFS (the `ro` mount option makes the VFS answer most of
    // these before they reach us; these are for the rest).

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _m: u32,
        _u: u32,
        _r: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _t: &std::path::Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _np: INodeNo,
        _nn: &OsStr,
        _f: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(&self, _req: &Request, _i: INodeNo, _np: INodeNo, _nn: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _m: u32,
        _u: u32,
        _f: i32,
        reply: fuser::ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    /// No ioctl applies (`lsattr` asks for inode flags): "not a typewriter", quietly (fuser's
    /// default logs a warning for each call).
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    /// `SEEK_DATA`/`SEEK_HOLE`: ENOSYS makes the kernel answer them itself from then on (every
    /// file is data, no holes), which is right here; only fuser's warning is left out.
    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: ReplyLseek,
    ) {
        reply.error(Errno::ENOSYS);
    }
}

//! Live updates of a mounted tree: swap the namespace, then tell the kernel what to forget,
//! from a thread of its own (never from inside a filesystem request, which could deadlock).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use fuser::{INodeNo, Notifier};

use super::core::FsCore;

/// An update of at least this many entries frees enough (the old tree, the entry list) to be
/// worth handing the pages back to the system afterwards.
const TRIM_AFTER_ENTRIES: usize = 10_000;
use super::namespace::{Entry, Invalidation, Skipped};

/// The way to the invalidation thread; `None` once the mount has ended.
pub(super) type InvalSender = Arc<Mutex<Option<mpsc::Sender<Vec<Invalidation>>>>>;

/// Applies live updates to a mount from anywhere ([`super::MountHandle::updater`]).
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
    pub(super) fn new(core: Arc<FsCore>, inval_tx: InvalSender) -> Self {
        Updater { core, inval_tx }
    }

    /// Show `entries` + `extra_dirs` from now on (see [`super::MountHandle::apply`]).
    pub fn apply(&self, entries: Vec<Entry>, extra_dirs: &[String]) -> Vec<Skipped> {
        let big = entries.len() >= TRIM_AFTER_ENTRIES;
        let update = self.core.namespace().apply(entries, extra_dirs);
        if big {
            // A refresh's entries and the replaced tree are freed now: give the pages back.
            crate::memory::release_free_memory();
        }
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

/// Start the thread that passes batches of invalidations to the kernel; it ends when the
/// sender is dropped.
pub(super) fn spawn_invalidator(
    notifier: Notifier,
) -> io::Result<(mpsc::Sender<Vec<Invalidation>>, JoinHandle<()>)> {
    let (inval_tx, inval_rx) = mpsc::channel::<Vec<Invalidation>>();
    let thread = std::thread::Builder::new()
        .name("fuse-invalidate".into())
        .spawn(move || {
            for batch in inval_rx {
                send_invalidations(&notifier, batch);
            }
        })?;
    Ok((inval_tx, thread))
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

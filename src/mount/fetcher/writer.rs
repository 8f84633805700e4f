//! The threads that store fetched blocks into the cache, off the readers' way.
//!
//! One thread does the stores, in order. A task per block on tokio's blocking pool let a dozen
//! threads write into the same block file at once: they queued on the file's inode lock, and on
//! a loaded machine spun on it. Readers never wait for a store: they get the bytes from the
//! transfer.
//!
//! That thread runs under `SCHED_IDLE`: it only takes CPU time nobody else wants. A cold read
//! is a chain of short steps (the reader's `read`, the FUSE request, the reply) that each wait
//! for a core; on two cores shared with the network work, stores running at the same priority
//! delayed those steps. Measured on a 376 MiB cold read: 8% less wall time (median of six
//! interleaved pairs, 0.344 s against 0.374 s), and the machine still had idle time for the
//! stores. The price is a queue: a busy machine leaves the stores waiting. Past
//! [`OVERFLOW_AT`] queued blocks a second thread, at normal priority, takes them too, so the
//! memory held stays bounded; and [`CacheWriter::flush`] runs what is left at the caller's
//! priority (an unmount must not leave fetched blocks out of the cache).
//!
//! An unprivileged thread can lower its own priority but never raise it back
//! (`RLIMIT_NICE`), hence two threads rather than one that changes its policy. The
//! verification a store starts once a file is complete runs on a thread of its own spawned
//! from there, so it usually inherits the idle priority too: background work as well.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A store of one block into the cache.
pub(super) type Store = Box<dyn FnOnce() + Send>;

/// Queued stores (about 1 MiB of fetched bytes each) beyond which the normal-priority thread
/// helps.
const OVERFLOW_AT: usize = 64;

/// How long [`CacheWriter::flush`] waits for a store a thread is still running.
const FLUSH_WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Pending {
    stores: VecDeque<Store>,
    /// Stores being run by a thread.
    running: usize,
    /// The writer is gone: threads end once the queue is empty.
    closed: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Signalled on every change of `pending`.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Stores fetched blocks on background threads (see the module documentation).
pub(super) struct CacheWriter {
    /// `None` when no thread could be started: stores then go to tokio's blocking pool.
    shared: Option<Arc<Shared>>,
}

impl CacheWriter {
    pub(super) fn start() -> CacheWriter {
        let shared = Arc::new(Shared::default());
        let spawn = |name: &str, overflow: bool| {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || work(&shared, overflow))
        };
        match spawn("cache-writer", false).and_then(|_| spawn("cache-overflow", true)) {
            Ok(_) => CacheWriter {
                shared: Some(shared),
            },
            Err(e) => {
                tracing::debug!(error = %e, "no cache writer thread; storing on the blocking pool");
                CacheWriter { shared: None }
            }
        }
    }

    /// Queue `store` (or, without threads, run it on tokio's blocking pool).
    pub(super) fn run(&self, store: Store) {
        let Some(shared) = &self.shared else {
            tokio::task::spawn_blocking(store);
            return;
        };
        shared.lock().stores.push_back(store);
        shared.changed.notify_all();
    }

    /// Runs every queued store on the calling thread, and waits (boundedly) for the ones
    /// the threads are running. Stores queued meanwhile are run too.
    pub(super) fn flush(&self) {
        let Some(shared) = &self.shared else {
            return;
        };
        let deadline = Instant::now() + FLUSH_WAIT;
        let mut pending = shared.lock();
        loop {
            if let Some(store) = pending.stores.pop_front() {
                drop(pending);
                store();
                pending = shared.lock();
            } else if pending.running == 0 {
                return;
            } else {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    tracing::warn!("a block is still being stored into the cache; not waiting");
                    return;
                }
                pending = shared
                    .changed
                    .wait_timeout(pending, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }
}

impl Drop for CacheWriter {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.lock().closed = true;
            shared.changed.notify_all();
        }
    }
}

/// A writer thread: the idle-priority one takes every store, the overflow one only while more
/// than [`OVERFLOW_AT`] wait.
fn work(shared: &Shared, overflow: bool) {
    if !overflow {
        lower_priority();
    }
    let mut pending = shared.lock();
    loop {
        let due = !overflow || pending.stores.len() > OVERFLOW_AT;
        if let Some(store) = due.then(|| pending.stores.pop_front()).flatten() {
            pending.running += 1;
            drop(pending);
            store();
            pending = shared.lock();
            pending.running -= 1;
            shared.changed.notify_all();
        } else if pending.closed && pending.stores.is_empty() {
            return;
        } else {
            pending = shared
                .changed
                .wait(pending)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Puts the calling thread under `SCHED_IDLE` (a failure only costs the gain).
fn lower_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `sched_setscheduler` on the calling thread (0) with a valid parameter block.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "cache writer left at normal priority"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn flush_runs_every_queued_store_before_returning() {
        let writer = CacheWriter::start();
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..200 {
            let done = done.clone();
            writer.run(Box::new(move || {
                std::thread::sleep(Duration::from_micros(50));
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        writer.flush();
        assert_eq!(done.load(Ordering::SeqCst), 200);
    }

    #[test]
    fn the_overflow_thread_keeps_the_queue_bounded_when_the_idle_one_is_stuck() {
        let writer = CacheWriter::start();
        // The idle-priority thread takes this store (the queue is short) and is held in it.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Mutex::new(held);
        writer.run(Box::new(move || {
            let _ = held.lock().unwrap().recv();
        }));
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..OVERFLOW_AT + 50 {
            let done = done.clone();
            writer.run(Box::new(move || {
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        // The overflow thread brings the queue down to the bound.
        let shared = writer.shared.clone().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.lock().stores.len() > OVERFLOW_AT && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(shared.lock().stores.len() <= OVERFLOW_AT);
        release.send(()).unwrap();
        writer.flush();
        assert_eq!(done.load(Ordering::SeqCst), OVERFLOW_AT + 50);
    }
}

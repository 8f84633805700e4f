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
//! delayed those steps. Measured on a 376 MiB cold read: 6.5% less wall time and 12% less
//! CPU time (medians of six interleaved runs, 0.359 s against 0.384 s), and the machine still
//! had idle time for the stores. The queue is lock-free: with a mutex, a sender could wait for
//! the idle thread to be scheduled again (half the gain was lost that way).
//!
//! A store is two steps: the idle thread only writes the block's bytes to its file, touching
//! no lock that a reader takes, and hands the index update (the block table, evictions, the
//! journal) to the normal-priority thread. An idle thread preempted while it held the table
//! stalled every reader of a busy machine for seconds (priority inversion), and the unmount
//! waited for it as long.
//!
//! The price is a queue: a busy machine leaves the stores waiting. Past [`OVERFLOW_AT`] queued
//! blocks a second thread, at normal priority, takes them too, so the memory held stays
//! bounded; and [`CacheWriter::flush`] runs what is left at the caller's priority (an unmount
//! must not leave fetched blocks out of the cache).
//!
//! An unprivileged thread can lower its own priority but never raise it back
//! (`RLIMIT_NICE`), hence two threads rather than one that changes its policy. A store that
//! completes a file starts its verification through the normal-priority thread
//! ([`CacheWriter::at_normal_priority`]): a thread spawned by the idle one would inherit its
//! priority, and a verification starved by a busy machine leaves the file served block by
//! block instead of from its block file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

/// A store of one block into the cache.
pub(super) type Store = Box<dyn FnOnce() + Send>;

/// Queued stores (about 1 MiB of fetched bytes each) beyond which the normal-priority thread
/// helps.
const OVERFLOW_AT: usize = 64;

/// How long [`CacheWriter::flush`] waits for the stores the threads are running.
const FLUSH_WAIT: Duration = Duration::from_secs(10);

/// Stores fetched blocks on background threads (see the module documentation).
pub(super) struct CacheWriter {
    /// `None` when no thread could be started: stores then go to tokio's blocking pool.
    threads: Option<Threads>,
}

struct Threads {
    /// A lock-free queue: a sender never waits for the idle-priority thread (a lock it held
    /// while descheduled would stall the transfers).
    queue: Sender<Store>,
    /// Its other end, shared by both threads and [`CacheWriter::flush`].
    pending: Arc<Pending>,
    /// Work for the normal-priority thread ([`CacheWriter::at_normal_priority`]).
    jobs: Sender<Store>,
    /// Its other end, shared with [`CacheWriter::flush`], and the jobs queued or running.
    normal: Arc<Jobs>,
    /// The idle thread's kernel id, once it runs (0 before).
    idle_tid: Arc<std::sync::atomic::AtomicI32>,
    /// The writer is gone: the overflow thread ends.
    closed: Arc<AtomicBool>,
    overflow: Thread,
}

/// The receiving side of the queue.
struct Pending {
    taken: Receiver<Store>,
    /// Stores queued or running.
    outstanding: AtomicUsize,
}

impl Pending {
    /// Runs a store taken from the queue.
    fn run(&self, store: Store) {
        store();
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The normal-priority jobs: the second step of every store (the index), verifications.
struct Jobs {
    taken: Receiver<Store>,
    outstanding: AtomicUsize,
}

impl Jobs {
    fn run(&self, job: Store) {
        job();
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
    }

    /// Runs the jobs queued now.
    fn drain(&self) {
        while let Ok(job) = self.taken.try_recv() {
            self.run(job);
        }
    }
}

impl CacheWriter {
    pub(super) fn start() -> CacheWriter {
        let (queue, taken) = crossbeam_channel::unbounded::<Store>();
        let (jobs, job_rx) = crossbeam_channel::unbounded::<Store>();
        let pending = Arc::new(Pending {
            taken,
            outstanding: AtomicUsize::new(0),
        });
        let normal = Arc::new(Jobs {
            taken: job_rx,
            outstanding: AtomicUsize::new(0),
        });
        let closed = Arc::new(AtomicBool::new(false));
        let idle_tid = Arc::new(std::sync::atomic::AtomicI32::new(0));
        let idle = {
            let (pending, idle_tid) = (pending.clone(), idle_tid.clone());
            std::thread::Builder::new()
                .name("cache-writer".into())
                .spawn(move || {
                    // SAFETY: gettid has no preconditions.
                    idle_tid.store(unsafe { libc::gettid() }, Ordering::Release);
                    lower_priority();
                    // Ends when the writer (the only sender) is gone and the queue is empty.
                    for store in pending.taken.iter() {
                        pending.run(store);
                    }
                })
        };
        let overflow = idle.and_then(|_| {
            let (pending, normal, closed) = (pending.clone(), normal.clone(), closed.clone());
            std::thread::Builder::new()
                .name("cache-overflow".into())
                .spawn(move || help(&pending, &normal, &closed))
        });
        match overflow {
            Ok(overflow) => CacheWriter {
                threads: Some(Threads {
                    queue,
                    pending,
                    jobs,
                    normal,
                    idle_tid,
                    closed,
                    overflow: overflow.thread().clone(),
                }),
            },
            Err(e) => {
                tracing::debug!(error = %e, "no cache writer thread; storing on the blocking pool");
                CacheWriter { threads: None }
            }
        }
    }

    /// Queue `store` (or, without threads, run it on tokio's blocking pool).
    pub(super) fn run(&self, store: Store) {
        let Some(t) = &self.threads else {
            tokio::task::spawn_blocking(store);
            return;
        };
        t.pending.outstanding.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = t.queue.send(store) {
            // Only when both threads are gone; run it here rather than lose the block.
            t.pending.run(e.into_inner());
            return;
        }
        if t.queue.len() > OVERFLOW_AT {
            t.overflow.unpark();
        }
    }

    /// Runs `job` on the normal-priority thread (or here, without threads). A thread it
    /// spawns runs at normal priority too, where one spawned by a store would inherit the idle
    /// one.
    pub(super) fn at_normal_priority(&self, job: Store) {
        let Some(t) = &self.threads else {
            return job();
        };
        t.normal.outstanding.fetch_add(1, Ordering::AcqRel);
        match t.jobs.send(job) {
            Ok(()) => t.overflow.unpark(),
            Err(e) => t.normal.run(e.into_inner()),
        }
    }

    /// Runs every queued store on the calling thread, and waits (boundedly) for the ones the
    /// threads are running.
    pub(super) fn flush(&self) {
        let Some(t) = &self.threads else {
            return;
        };
        // The end: the idle thread must finish its store and exit, which it can take long to
        // be given the CPU for on a busy machine (a minute seen). Back at normal priority if
        // allowed (root, or an RLIMIT_NICE that permits it; otherwise nothing changes).
        let tid = t.idle_tid.load(Ordering::Acquire);
        if tid != 0 {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: sched_setscheduler on a thread of this process, valid parameter block.
            unsafe { libc::sched_setscheduler(tid, libc::SCHED_OTHER, &param) };
        }
        let deadline = Instant::now() + FLUSH_WAIT;
        // A store's first step queues its second: both queues, until neither holds work.
        loop {
            while let Ok(store) = t.pending.taken.try_recv() {
                t.pending.run(store);
            }
            t.normal.drain();
            if t.pending.outstanding.load(Ordering::Acquire) == 0
                && t.normal.outstanding.load(Ordering::Acquire) == 0
            {
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!("a block is still being stored into the cache; not waiting");
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for CacheWriter {
    fn drop(&mut self) {
        if let Some(t) = &self.threads {
            t.closed.store(true, Ordering::Release);
            t.overflow.unpark();
        }
    }
}

/// The normal-priority thread: sleeps until the queue passes [`OVERFLOW_AT`], then takes
/// stores until it is back under; runs the jobs it is given.
fn help(pending: &Pending, jobs: &Jobs, closed: &AtomicBool) {
    while !closed.load(Ordering::Acquire) {
        std::thread::park();
        jobs.drain();
        while pending.taken.len() > OVERFLOW_AT {
            match pending.taken.try_recv() {
                Ok(store) => pending.run(store),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
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
    use std::sync::Mutex;

    #[test]
    fn flush_runs_every_queued_store_before_returning() {
        let writer = CacheWriter::start();
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..200 {
            let done = done.clone();
            writer.run(Box::new(move || {
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
        let (started, has_started) = std::sync::mpsc::channel::<()>();
        let (held, started) = (Mutex::new(held), Mutex::new(started));
        writer.run(Box::new(move || {
            started.lock().unwrap().send(()).unwrap();
            let _ = held.lock().unwrap().recv();
        }));
        has_started.recv_timeout(Duration::from_secs(30)).unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..OVERFLOW_AT + 50 {
            let done = done.clone();
            writer.run(Box::new(move || {
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        // The normal-priority one brings the queue down to the bound.
        let queue = writer.threads.as_ref().unwrap().queue.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        while queue.len() > OVERFLOW_AT && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(queue.len() <= OVERFLOW_AT);
        release.send(()).unwrap();
        writer.flush();
        assert_eq!(done.load(Ordering::SeqCst), OVERFLOW_AT + 50);
    }

    #[test]
    fn stores_run_at_idle_priority_and_jobs_at_normal_priority() {
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let writer = CacheWriter::start();
        let (tx, rx) = std::sync::mpsc::channel();
        let store_tx = tx.clone();
        writer.run(Box::new(move || {
            store_tx.send(("store", policy())).unwrap()
        }));
        writer.at_normal_priority(Box::new(move || {
            // What a store's verification does: spawn a thread from here.
            std::thread::spawn(move || tx.send(("job", policy())).unwrap());
        }));
        let mut got: Vec<_> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        got.sort();
        assert_eq!(
            got,
            [("job", libc::SCHED_OTHER), ("store", libc::SCHED_IDLE)]
        );
    }
}

//! The one task that records download results in the catalog.
//!
//! Workers never touch SQLite: they send [`DownloadUpdate`]s here. A dedicated thread owns a
//! writer connection (a companion of the refresh's, under the same lock) and commits what has
//! arrived in small batches — at most [`MAX_BATCH`] updates or [`MAX_DELAY`] after the first
//! one — so state is flushed as work completes without a transaction per file.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::catalog::{AssetKey, Catalog, CatalogError, DownloadUpdate, RootId};

use crate::memory::Trimmer;

/// Most updates committed in one transaction.
pub const MAX_BATCH: usize = 256;
/// Longest a result waits before it is committed.
pub const MAX_DELAY: Duration = Duration::from_millis(200);

enum Message {
    Update(DownloadUpdate),
    /// Forget an orphaned file's record (committed with the next batch).
    ForgetOrphan(i64),
    /// This asset was moved to Recently Deleted by this run (committed with the next batch).
    MovedToTrash(AssetKey),
    /// Commit everything sent before, then answer.
    Flush(tokio::sync::oneshot::Sender<()>),
    /// Commit everything sent before and stop (other handles may still exist).
    Close,
}

/// Sends results to the writer thread (cheap to clone).
#[derive(Clone)]
pub struct StateHandle {
    tx: Sender<Message>,
    error: Arc<Mutex<Option<String>>>,
}

/// The writer thread; [`StateWriter::close`] commits the rest and stops it.
pub struct StateWriter {
    handle: StateHandle,
    thread: Option<JoinHandle<()>>,
}

impl StateWriter {
    /// Start the thread on `catalog` (a writer handle) for `root`.
    pub fn spawn(catalog: Catalog, root: RootId) -> std::io::Result<StateWriter> {
        let (tx, rx) = mpsc::channel();
        let error = Arc::new(Mutex::new(None));
        let thread_error = error.clone();
        let thread = std::thread::Builder::new()
            .name("catalog-writer".into())
            .spawn(move || run(catalog, root, rx, thread_error))?;
        Ok(StateWriter {
            handle: StateHandle { tx, error },
            thread: Some(thread),
        })
    }

    /// A handle to send results with.
    pub fn handle(&self) -> StateHandle {
        self.handle.clone()
    }

    /// Commit what is pending and stop; the first commit error, if any happened.
    pub fn close(mut self) -> Result<(), String> {
        let error = self.handle.error.clone();
        let _ = self.handle.tx.send(Message::Close);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        match error.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl StateHandle {
    /// Queue an update (committed within [`MAX_DELAY`]).
    pub fn send(&self, update: DownloadUpdate) {
        if self.tx.send(Message::Update(update)).is_err() {
            tracing::error!("the catalog writer stopped; a download result was not recorded");
        }
    }

    /// Forget the record of an orphaned file (see `catalog::OrphanedFile`).
    pub fn forget_orphan(&self, id: i64) {
        if self.tx.send(Message::ForgetOrphan(id)).is_err() {
            tracing::error!("the catalog writer stopped; an orphaned file's record was kept");
        }
    }

    /// Record that this run moved `asset` to Recently Deleted (so that `--auto-delete` keeps
    /// its local copy).
    pub fn moved_to_trash(&self, asset: AssetKey) {
        if self.tx.send(Message::MovedToTrash(asset)).is_err() {
            tracing::error!(
                "the catalog writer stopped; a photo moved to Recently Deleted was not recorded"
            );
        }
    }

    /// Wait until everything sent so far is committed.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Message::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn run(
    mut catalog: Catalog,
    root: RootId,
    rx: Receiver<Message>,
    error: Arc<Mutex<Option<String>>>,
) {
    let mut batch: Vec<DownloadUpdate> = Vec::with_capacity(MAX_BATCH);
    let mut waiting: Vec<tokio::sync::oneshot::Sender<()>> = Vec::new();
    let mut orphans: Vec<i64> = Vec::new();
    let mut trashed: Vec<AssetKey> = Vec::new();
    let mut first_at: Option<Instant> = None;
    let trimmer = Trimmer::default();
    loop {
        let timeout = match first_at {
            Some(t) => MAX_DELAY.saturating_sub(t.elapsed()),
            None => Duration::from_secs(3600),
        };
        let (closed, commit_now) = match rx.recv_timeout(timeout) {
            Ok(Message::Update(u)) => {
                batch.push(u);
                first_at.get_or_insert_with(Instant::now);
                (false, batch.len() >= MAX_BATCH)
            }
            Ok(Message::ForgetOrphan(id)) => {
                orphans.push(id);
                first_at.get_or_insert_with(Instant::now);
                (false, false)
            }
            Ok(Message::MovedToTrash(asset)) => {
                trashed.push(asset);
                first_at.get_or_insert_with(Instant::now);
                (false, false)
            }
            Ok(Message::Flush(done)) => {
                waiting.push(done);
                (false, true)
            }
            Ok(Message::Close) => (true, true),
            Err(RecvTimeoutError::Timeout) => (false, true),
            Err(RecvTimeoutError::Disconnected) => (true, true),
        };
        if commit_now {
            if !batch.is_empty() {
                if let Err(e) = commit(&mut catalog, root, &batch) {
                    tracing::error!(error = %e, "could not record download results");
                    let mut slot = error.lock().unwrap_or_else(|e| e.into_inner());
                    slot.get_or_insert_with(|| e.to_string());
                }
                batch.clear();
                // Results arrive as files finish: a natural beat to hand back what the
                // finished transfers freed.
                trimmer.maybe_trim();
            }
            if !orphans.is_empty() {
                if let Err(e) = catalog.forget_orphaned_files(&orphans) {
                    tracing::error!(error = %e, "could not forget removed files");
                    let mut slot = error.lock().unwrap_or_else(|e| e.into_inner());
                    slot.get_or_insert_with(|| e.to_string());
                }
                orphans.clear();
            }
            if !trashed.is_empty() {
                if let Err(e) = catalog.record_moved_to_trash(&trashed) {
                    tracing::error!(error = %e, "could not record photos moved to Recently Deleted");
                    let mut slot = error.lock().unwrap_or_else(|e| e.into_inner());
                    slot.get_or_insert_with(|| e.to_string());
                }
                trashed.clear();
            }
            first_at = None;
            for w in waiting.drain(..) {
                let _ = w.send(());
            }
        }
        if closed {
            return;
        }
    }
}

/// Commit a batch, retrying once after a pause when SQLite was busy for too long.
fn commit(
    catalog: &mut Catalog,
    root: RootId,
    batch: &[DownloadUpdate],
) -> Result<(), CatalogError> {
    match catalog.apply_download_updates(root, batch) {
        Ok(_) => Ok(()),
        Err(CatalogError::Sqlite { .. }) => {
            std::thread::sleep(Duration::from_millis(500));
            catalog.apply_download_updates(root, batch).map(|_| ())
        }
        Err(e) => Err(e),
    }
}

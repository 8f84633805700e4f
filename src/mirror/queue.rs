//! Coordination between the producers of work (the listing, the planner), the workers and a
//! foreground user of the same files (the mount):
//!
//! - [`Transfers`]: the single-flight registry. A version is transferred at most once at a
//!   time; anyone can watch a transfer's state to wait for it instead of starting another.
//! - [`PriorityGate`]: foreground reads raise it; background workers start no new file while
//!   it is raised.
//! - [`PathClaims`]: the destination paths taken in this run, so two versions never write
//!   the same path.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::catalog::VersionKey;

use super::version_set::VersionSet;

/// Where a transfer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferState {
    /// Waiting for a worker (or for its download URL).
    Queued,
    /// A worker is fetching it.
    Running,
    /// Complete on disk at this path (relative to the root).
    Done { rel_path: String },
    /// Failed (the error is recorded in the catalog); the file is absent or partial.
    Failed { error: String },
}

#[derive(Default)]
struct Registry {
    active: HashMap<VersionKey, Arc<watch::Sender<TransferState>>>,
    /// Finished and failed versions: one bit per version key (every file of a first sync).
    done: VersionSet,
    failed: VersionSet,
}

/// The single-flight registry of one run (cheap to clone; clones share it).
#[derive(Clone, Default)]
pub struct Transfers {
    inner: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for Transfers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.lock();
        f.debug_struct("Transfers")
            .field("active", &r.active.len())
            .field("done", &r.done.len())
            .field("failed", &r.failed.len())
            .finish()
    }
}

impl Transfers {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take `version` for a transfer; `None` if it is queued, running, done or failed in this
    /// run already.
    pub fn claim(&self, version: VersionKey) -> Option<TransferHandle> {
        let mut r = self.lock();
        if r.active.contains_key(&version) || r.done.contains(version) || r.failed.contains(version)
        {
            return None;
        }
        let (tx, _) = watch::channel(TransferState::Queued);
        r.active.insert(version, Arc::new(tx));
        Some(TransferHandle {
            transfers: self.clone(),
            version,
            finished: false,
        })
    }

    /// Take a version that failed in this run for another attempt (the second pass).
    pub fn reclaim_failed(&self, version: VersionKey) -> Option<TransferHandle> {
        let removed = self.lock().failed.remove(version);
        if removed { self.claim(version) } else { None }
    }

    /// True when `version` is queued, running, done or failed in this run.
    pub fn is_known(&self, version: VersionKey) -> bool {
        let r = self.lock();
        r.active.contains_key(&version) || r.done.contains(version) || r.failed.contains(version)
    }

    /// True when `version` completed in this run.
    pub fn is_done(&self, version: VersionKey) -> bool {
        self.lock().done.contains(version)
    }

    /// Watch a queued or running transfer (`None` when there is none): the receiver sees
    /// `Running`, then `Done` or `Failed`.
    pub fn watch(&self, version: VersionKey) -> Option<watch::Receiver<TransferState>> {
        self.lock().active.get(&version).map(|tx| tx.subscribe())
    }

    /// Versions that failed in this run.
    pub fn failed(&self) -> Vec<VersionKey> {
        self.lock().failed.to_sorted_vec()
    }

    /// Transfers queued or running.
    pub fn active(&self) -> usize {
        self.lock().active.len()
    }
}

/// The right to transfer one version; report how it ended with [`TransferHandle::finish`].
/// Dropped unfinished (cancelled), the version is released without an outcome.
#[derive(Debug)]
pub struct TransferHandle {
    transfers: Transfers,
    version: VersionKey,
    finished: bool,
}

impl TransferHandle {
    /// The version being transferred.
    pub fn version(&self) -> VersionKey {
        self.version
    }

    /// A worker started on it.
    pub fn running(&self) {
        if let Some(tx) = self.transfers.lock().active.get(&self.version) {
            tx.send_replace(TransferState::Running);
        }
    }

    /// Record the outcome and wake the watchers.
    pub fn finish(mut self, state: TransferState) {
        self.finished = true;
        let mut r = self.transfers.lock();
        match &state {
            TransferState::Done { .. } => {
                r.done.insert(self.version);
            }
            TransferState::Failed { .. } => {
                r.failed.insert(self.version);
            }
            TransferState::Queued | TransferState::Running => {}
        }
        if let Some(tx) = r.active.remove(&self.version) {
            tx.send_replace(state);
        }
    }
}

impl Drop for TransferHandle {
    fn drop(&mut self) {
        if !self.finished {
            let mut r = self.transfers.lock();
            if let Some(tx) = r.active.remove(&self.version) {
                tx.send_replace(TransferState::Failed {
                    error: "cancelled".into(),
                });
            }
        }
    }
}

/// Background work waits while foreground work (a mount read) is in flight.
#[derive(Debug, Clone)]
pub struct PriorityGate {
    foreground: Arc<watch::Sender<usize>>,
}

impl Default for PriorityGate {
    fn default() -> Self {
        PriorityGate {
            foreground: Arc::new(watch::channel(0).0),
        }
    }
}

impl PriorityGate {
    /// Raise the gate until the guard is dropped (guards nest).
    pub fn foreground(&self) -> ForegroundGuard {
        self.foreground.send_modify(|n| *n += 1);
        ForegroundGuard {
            gate: self.foreground.clone(),
        }
    }

    /// Wait until no foreground work is in flight.
    pub async fn background_turn(&self) {
        let mut rx = self.foreground.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// True while foreground work is in flight.
    pub fn is_raised(&self) -> bool {
        *self.foreground.borrow() > 0
    }
}

/// Keeps the [`PriorityGate`] raised while alive.
#[derive(Debug)]
pub struct ForegroundGuard {
    gate: Arc<watch::Sender<usize>>,
}

impl Drop for ForegroundGuard {
    fn drop(&mut self) {
        self.gate.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Destination paths written in this run, compared ignoring case (the layout's rule), kept as
/// 64-bit hashes grouped by directory. A directory's claims are dropped once the planner is
/// done with it ([`PathClaims::close_dir`]): names only collide within a directory, and after
/// its turn nothing new is planned there (the second pass takes back paths it had; the end of
/// the run asks the catalog, where every finished file is recorded). So a first sync holds
/// the claims of the listing's early downloads and of one directory, not of every file.
#[derive(Debug, Clone, Default)]
pub struct PathClaims {
    inner: Arc<Mutex<HashMap<u64, HashMap<u64, VersionKey>>>>,
}

fn hash_lowercase(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.to_lowercase().hash(&mut h);
    h.finish()
}

/// (directory hash, path hash) of a relative path.
fn path_hashes(rel_path: &str) -> (u64, u64) {
    let dir = rel_path.rfind('/').map_or("", |i| &rel_path[..i]);
    (hash_lowercase(dir), hash_lowercase(rel_path))
}

impl PathClaims {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, HashMap<u64, VersionKey>>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claim `rel_path` for `version`; `Err(owner)` when another version holds it.
    pub fn claim(&self, rel_path: &str, version: VersionKey) -> Result<(), VersionKey> {
        let (dir, path) = path_hashes(rel_path);
        let mut map = self.lock();
        let claims = map.entry(dir).or_default();
        match claims.get(&path) {
            Some(owner) if *owner != version => Err(*owner),
            _ => {
                claims.insert(path, version);
                Ok(())
            }
        }
    }

    /// The version that claimed `rel_path` in this run, if any (and its directory is open).
    pub fn owner(&self, rel_path: &str) -> Option<VersionKey> {
        let (dir, path) = path_hashes(rel_path);
        self.lock().get(&dir)?.get(&path).copied()
    }

    /// Give up a claim (the file moved away or was never written).
    pub fn release(&self, rel_path: &str, version: VersionKey) {
        let (dir, path) = path_hashes(rel_path);
        let mut map = self.lock();
        if let Some(claims) = map.get_mut(&dir)
            && claims.get(&path) == Some(&version)
        {
            claims.remove(&path);
            if claims.is_empty() {
                map.remove(&dir);
            }
        }
    }

    /// Forget every claim in directory `dir` (relative to the root, no trailing slash; `""`
    /// for the root itself): the planner is done with it.
    pub fn close_dir(&self, dir: &str) {
        self.lock()
            .remove(&hash_lowercase(dir.trim_end_matches('/')));
    }

    /// Claims held (all directories).
    pub fn len(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }

    /// True when no path is claimed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_transferred_once_and_watchers_see_the_outcome() {
        let t = Transfers::default();
        let v = VersionKey(7);
        let h = t.claim(v).expect("first claim");
        assert!(t.claim(v).is_none(), "single flight");
        let mut rx = t.watch(v).expect("watchable");
        h.running();
        assert_eq!(*rx.borrow_and_update(), TransferState::Running);
        h.finish(TransferState::Done {
            rel_path: "a.JPG".into(),
        });
        assert_eq!(
            *rx.borrow(),
            TransferState::Done {
                rel_path: "a.JPG".into()
            }
        );
        assert!(t.is_done(v) && t.claim(v).is_none() && t.watch(v).is_none());
    }

    #[test]
    fn failures_are_kept_for_the_second_pass_and_cancellations_released() {
        let t = Transfers::default();
        let (a, b) = (VersionKey(1), VersionKey(2));
        t.claim(a).unwrap().finish(TransferState::Failed {
            error: "503".into(),
        });
        assert!(t.claim(a).is_none());
        assert_eq!(t.failed(), vec![a]);
        assert!(t.reclaim_failed(a).is_some());
        drop(t.claim(b).unwrap());
        assert!(!t.is_known(b), "a cancelled claim leaves nothing behind");
    }

    #[test]
    fn paths_are_claimed_once_ignoring_case() {
        let c = PathClaims::default();
        assert!(c.claim("2024/IMG_1.JPG", VersionKey(1)).is_ok());
        assert!(c.claim("2024/IMG_1.JPG", VersionKey(1)).is_ok());
        assert_eq!(c.claim("2024/img_1.jpg", VersionKey(2)), Err(VersionKey(1)));
        c.release("2024/IMG_1.jpg", VersionKey(1));
        assert!(c.claim("2024/img_1.jpg", VersionKey(2)).is_ok());
    }

    #[test]
    fn a_closed_directory_forgets_its_claims_only() {
        let c = PathClaims::default();
        c.claim("2024/01/IMG_1.JPG", VersionKey(1)).unwrap();
        c.claim("2024/01/IMG_2.JPG", VersionKey(2)).unwrap();
        c.claim("2024/02/IMG_1.JPG", VersionKey(3)).unwrap();
        c.claim("IMG_9.JPG", VersionKey(9)).unwrap();
        assert_eq!(c.owner("2024/02/img_1.jpg"), Some(VersionKey(3)));
        c.close_dir("2024/01/");
        assert_eq!(c.owner("2024/01/IMG_1.JPG"), None);
        assert_eq!(c.owner("2024/02/IMG_1.JPG"), Some(VersionKey(3)));
        assert_eq!(c.len(), 2);
        c.close_dir("");
        assert_eq!(c.owner("IMG_9.JPG"), None);
        assert_eq!(c.owner("2024/02/IMG_1.JPG"), Some(VersionKey(3)));
        c.release("2024/02/IMG_1.JPG", VersionKey(3));
        assert!(c.is_empty());
    }

    #[tokio::test]
    async fn background_waits_for_foreground() {
        let gate = PriorityGate::default();
        let guard = gate.foreground();
        assert!(gate.is_raised());
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.background_turn().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(guard);
        waiter.await.unwrap();
        assert!(!gate.is_raised());
    }
}

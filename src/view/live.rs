//! Keeping a mount in step with iCloud while it is mounted: the catalog is refreshed every
//! poll interval (incremental: one call when nothing changed), the view is rebuilt when
//! something did and applied to the mount (which pushes the kernel invalidations), and the
//! background mirror is woken to fetch what is new.
//!
//! When another icloudpd-rs process holds the catalog (a `sync` running in cron), the mount
//! does not refresh: it follows that process's commits instead ([`CatalogAccess::Follower`]),
//! until a poll finds the catalog free: it is then its writer, as if it had started first.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::locator::CatalogLocator;
use super::session_slot::SessionSlot;
use super::urls::{UrlBroker, UrlSink};
use super::{ViewConfig, build};
use crate::catalog::Catalog;
use crate::mirror::{Mirror, RunOutcome};
use crate::mount::Updater;
use crate::refresh::{self, RefreshMode, RefreshOptions};

/// Pause before the mirror tries again after a run that left failures.
const MIRROR_RETRY: Duration = Duration::from_secs(300);

/// How the mount reaches the catalog.
pub enum CatalogAccess {
    /// This process is the catalog's writer: it refreshes.
    Writer(Catalog),
    /// Another process writes it: follow its commits.
    Follower(Catalog),
}

impl CatalogAccess {
    /// The handle (either kind).
    pub fn catalog(&self) -> &Catalog {
        match self {
            CatalogAccess::Writer(c) | CatalogAccess::Follower(c) => c,
        }
    }
}

/// Settings of [`follow`].
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Time between refreshes.
    pub poll_interval: Duration,
    /// Which libraries to refresh.
    pub refresh: RefreshOptions,
    /// What the mount shows.
    pub view: ViewConfig,
}

/// What [`follow`] works with.
pub struct Follower {
    /// The session (signed in again when the mount started offline).
    pub session: SessionSlot,
    pub access: CatalogAccess,
    /// Applies new trees to the mount.
    pub updater: Updater,
    /// Takes the URLs each refresh lists.
    pub broker: Arc<UrlBroker>,
    /// Takes the listing order of each new tree.
    pub locator: Arc<CatalogLocator>,
    pub opts: LiveOptions,
    /// Ends the loop.
    pub stop: CancellationToken,
    /// Notified after each applied change (the mirror waits on it).
    pub changed: Arc<Notify>,
}

/// One incremental refresh of `catalog`: whether it changed anything; `None` when `stop` came
/// first (a sign-in to iCloud may wait up to the network timeout).
async fn refresh_once(
    session: &SessionSlot,
    catalog: &mut Catalog,
    refresh: &RefreshOptions,
    broker: &Arc<UrlBroker>,
    stop: &CancellationToken,
) -> Option<bool> {
    let session = tokio::select! {
        s = session.get() => s,
        _ = stop.cancelled() => return None,
    };
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot refresh the catalog; trying again at the next poll");
            return Some(false);
        }
    };
    let mut sink = UrlSink(broker.clone());
    let outcome = tokio::select! {
        r = refresh::refresh(&session, catalog, refresh, &mut sink) => r,
        _ = stop.cancelled() => return None,
    };
    Some(match outcome {
        Ok(report) => report
            .libraries
            .iter()
            .any(|l| l.mode != RefreshMode::Unchanged),
        Err(e) => {
            if e.is_authentication_problem() {
                tracing::warn!(error = %e, "iCloud wants a new sign-in; the mount shows the catalog as it is (run `icloudpd-rs login`)");
            } else {
                tracing::warn!(error = %e, "catalog refresh failed; trying again at the next poll");
            }
            false
        }
    })
}

/// Refresh, rebuild and apply every poll interval until `stop`.
pub async fn follow(f: Follower) {
    let Follower {
        session,
        mut access,
        updater,
        broker,
        locator,
        opts,
        stop,
        changed,
    } = f;
    let mut last_version = access.catalog().data_version().ok();
    let mut refresh = opts.refresh.clone();
    refresh.full = false;
    refresh.reset_sync_token = false;
    refresh.progress = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(opts.poll_interval) => {}
            _ = stop.cancelled() => return,
        }
        // The process that held the catalog when the mount started (a sync run by cron, the
        // first of two mounts) has ended: the mount is its writer from now on, as when it
        // starts first, and refreshes it.
        if let CatalogAccess::Follower(catalog) = &access
            && let Ok(writer) = Catalog::open(catalog.path())
        {
            tracing::info!("the catalog is free again: the mount refreshes it from now on");
            access = CatalogAccess::Writer(writer);
        }
        let stale = match &mut access {
            CatalogAccess::Writer(catalog) => {
                match refresh_once(&session, catalog, &refresh, &broker, &stop).await {
                    Some(changed) => changed,
                    None => return,
                }
            }
            CatalogAccess::Follower(catalog) => {
                let now = catalog.data_version().ok();
                let moved = now != last_version;
                last_version = now;
                moved
            }
        };
        if !stale {
            continue;
        }
        // This loop runs on a thread of its own (the catalog handle is not `Sync`), so the
        // synchronous build blocks nothing else.
        let built = build(access.catalog(), &opts.view);
        match built {
            Ok(view) => {
                locator.set_neighbours(view.neighbours);
                let files = view.entries.len();
                let skipped = updater.apply(view.entries, &view.extra_dirs);
                tracing::info!(
                    files,
                    skipped = skipped.len(),
                    "mount updated from the catalog"
                );
                for s in skipped.iter().take(5) {
                    tracing::warn!(path = %s.path, reason = ?s.reason, "not shown");
                }
                changed.notify_one();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot rebuild the mount's tree; keeping the current one")
            }
        }
    }
}

/// Run the mirror until `stop`: a run at once, then one after each change (or after a pause
/// when the last run left failures).
pub async fn mirror_loop(
    mirror: Arc<Mirror>,
    session: SessionSlot,
    mut catalog: Catalog,
    changed: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        if stop.is_cancelled() {
            return;
        }
        let run = match session.get().await {
            Ok(s) => Some(mirror.run(&s, &mut catalog, None).await),
            Err(e) => {
                tracing::debug!(error = %e, "the mirror waits for a sign-in");
                None
            }
        };
        let retry = match run
            .unwrap_or_else(|| Err(crate::mirror::MirrorError::State("not signed in".into())))
        {
            Ok(report) => {
                tracing::info!("mirror: {}", report.summary_line());
                !matches!(report.outcome, RunOutcome::Complete)
            }
            Err(e) => {
                tracing::warn!(error = %e, "mirror run failed");
                true
            }
        };
        let pause = async {
            if retry {
                tokio::time::sleep(MIRROR_RETRY).await
            } else {
                std::future::pending::<()>().await
            }
        };
        tokio::select! {
            _ = changed.notified() => {}
            _ = pause => {}
            _ = stop.cancelled() => return,
        }
    }
}

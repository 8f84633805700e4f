//! Pages stored in one long transaction, committed every few seconds instead of once each.
//!
//! A commit writes every page it changed to the WAL; the `(library_id, record_id)` index takes
//! assets in random order, so each commit of a page batch rewrote most of its leaf pages:
//! a 100,000-asset first listing wrote ~5 times the catalog's size. A caller that needs nothing
//! committed until its run ends (a plain `refresh` or a mount's listing: nobody reads the
//! assets back meanwhile) stores its pages here, and the leaves are written once per commit of
//! many pages. Durability is the same as for any unfinished run: a crash loses the uncommitted
//! pages, and the run (never completed, so its token is not stored) is listed again.
//!
//! Every other write first commits the open transaction ([`Catalog::commit_batched`] from
//! `write_tx`), so nothing else ever runs inside it.

use std::time::{Duration, Instant};

use super::assets::{PageCounts, store_page};
use super::error::{Result, SqlContext};
use super::{Catalog, RunId};
use crate::model::{Asset, Skipped};

/// Assets stored in the open transaction before it is committed.
const COMMIT_ASSETS: u64 = 25_000;
/// The open transaction is committed at the latest this long after it began.
const COMMIT_AGE: Duration = Duration::from_secs(2);

/// The transaction [`Catalog::upsert_page_batched`] keeps open.
#[derive(Debug)]
pub(super) struct OpenBatch {
    assets: u64,
    began: Instant,
}

impl Catalog {
    /// [`Catalog::upsert_page`], without a commit of its own: the page joins an open
    /// transaction that is committed once it holds enough assets or is old enough, or before
    /// any other write. For callers that read nothing back until the run ends.
    pub fn upsert_page_batched<'a>(
        &mut self,
        run: RunId,
        assets: impl IntoIterator<Item = &'a Asset>,
        skipped: &[Skipped],
    ) -> Result<PageCounts> {
        self.require_writer("storing a page")?;
        // Nothing is looked up by record id before the run ends: the load can go without that
        // index too (see `bulk.rs`). Dropped before the first page's transaction, so a page
        // given up later never brings it back behind the load's back.
        self.uncheck_bulk_load(run)?;
        if self.batched.is_none() {
            self.conn
                .execute_batch("BEGIN IMMEDIATE")
                .ctx("storing a page")?;
            self.batched = Some(OpenBatch {
                assets: 0,
                began: Instant::now(),
            });
        }
        let bulk = self.bulk_inserts(run);
        let counts = match store_page(&self.conn, bulk, run, assets, skipped) {
            Ok(counts) => counts,
            Err(e) => {
                // Nothing of a failed page may be committed: give up the whole batch (the
                // run fails with this error, and is listed again).
                self.batched = None;
                if let Err(rollback) = self.conn.execute_batch("ROLLBACK") {
                    tracing::warn!(error = %rollback, "could not roll back a failed page");
                }
                return Err(e);
            }
        };
        let due = self.batched.as_mut().is_some_and(|b| {
            b.assets += counts.seen;
            b.assets >= COMMIT_ASSETS || b.began.elapsed() >= COMMIT_AGE
        });
        if due {
            self.commit_batched()?;
        }
        Ok(counts)
    }

    /// Commits the pages [`Catalog::upsert_page_batched`] stored since the last commit.
    pub fn commit_batched(&mut self) -> Result<()> {
        if self.batched.take().is_none() {
            return Ok(());
        }
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            // SQLite may leave the transaction open after a failed COMMIT: end it.
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e).ctx("storing pages");
        }
        Ok(())
    }
}

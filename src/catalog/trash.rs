//! The assets this tool moved to Recently Deleted itself (`--delete-after-download`,
//! `--keep-icloud-recent-days`): they left iCloud so that the local copy is the one kept, so
//! `--auto-delete` (which removes the local files of photos deleted in iCloud) must not take
//! that copy too, even in a later run with other flags.

use std::collections::HashSet;

use rusqlite::params;

use super::error::{Result, SqlContext};
use super::{AssetKey, Catalog, now_ms};

impl Catalog {
    /// Records that these assets were moved to Recently Deleted by this tool.
    pub fn record_moved_to_trash(&mut self, assets: &[AssetKey]) -> Result<()> {
        let tx = self.write_tx("recording photos moved to Recently Deleted")?;
        let now = now_ms();
        for &asset in assets {
            tx.prepare_cached(
                "INSERT INTO moved_to_trash (asset_key, moved_ms) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![asset, now]))
            .ctx("recording photos moved to Recently Deleted")?;
        }
        tx.commit()
            .ctx("recording photos moved to Recently Deleted")
    }

    /// The assets this tool moved to Recently Deleted.
    pub fn moved_to_trash(&self) -> Result<HashSet<AssetKey>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT asset_key FROM moved_to_trash")
            .ctx("listing photos moved to Recently Deleted")?;
        let keys = stmt
            .query_map([], |r| r.get(0))
            .ctx("listing photos moved to Recently Deleted")?
            .collect::<rusqlite::Result<HashSet<AssetKey>>>()
            .ctx("listing photos moved to Recently Deleted")?;
        Ok(keys)
    }
}

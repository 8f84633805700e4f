//! Files written for versions that their asset lost (an edit reverted in iCloud: the
//! adjusted version disappears). The version goes with its download state, but its file is
//! still on disk: its path, size and SHA-256 are kept here so that the sync engine can remove
//! it once the asset's remaining files are in place, and only if its bytes are still ours.

use std::collections::HashMap;

use rusqlite::Connection;

use super::error::{Result, SqlContext};
use super::queries::{KEY_BATCH, in_list};
use super::{AssetKey, Catalog, RootId, VersionKey};

/// A file written for a version its asset no longer has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanedFile {
    /// Row id (to forget it once handled).
    pub id: i64,
    /// The version kind it held (`adjusted`, ...).
    pub kind: String,
    /// Where it was written, relative to the root.
    pub rel_path: String,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// Before `version` is removed from its asset: keep the files written for it, in every root.
pub(super) fn keep_files_of(tx: &Connection, version: VersionKey) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO orphaned_downloads (root_id, asset_key, kind, rel_path, size, sha256)
         SELECT d.root_id, v.asset_key, v.kind, d.rel_path, d.size, d.sha256
         FROM downloads d JOIN versions v ON v.version_key = d.version_key
         WHERE d.version_key = ?1 AND d.rel_path IS NOT NULL AND d.sha256 IS NOT NULL
           AND d.size IS NOT NULL",
    )
    .and_then(|mut s| s.execute([version]))
    .ctx("keeping a removed version's files")?;
    Ok(())
}

impl Catalog {
    /// The orphaned files of `assets` in `root`, by asset.
    pub fn orphaned_files(
        &self,
        root: RootId,
        assets: &[AssetKey],
    ) -> Result<HashMap<AssetKey, Vec<OrphanedFile>>> {
        let mut out: HashMap<AssetKey, Vec<OrphanedFile>> = HashMap::new();
        if assets.is_empty() {
            return Ok(out);
        }
        for chunk in assets.chunks(KEY_BATCH) {
            let (marks, mut params) = in_list(chunk.iter().map(|k| k.0));
            params.push(root.0);
            let sql = format!(
                "SELECT asset_key, orphan_id, kind, rel_path, size, sha256 FROM orphaned_downloads
                 WHERE asset_key IN ({marks}) AND root_id = ? ORDER BY orphan_id"
            );
            let mut stmt = self
                .conn
                .prepare_cached(&sql)
                .ctx("reading orphaned files")?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                    let sha: Vec<u8> = r.get(5)?;
                    Ok((
                        r.get::<_, AssetKey>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        sha,
                    ))
                })
                .ctx("reading orphaned files")?;
            for row in rows {
                let (asset, id, kind, rel_path, size, sha) = row.ctx("reading orphaned files")?;
                let Ok(sha256) = <[u8; 32]>::try_from(sha.as_slice()) else {
                    continue;
                };
                out.entry(asset).or_default().push(OrphanedFile {
                    id,
                    kind,
                    rel_path,
                    size: u64::try_from(size).unwrap_or(0),
                    sha256,
                });
            }
        }
        Ok(out)
    }

    /// Forget orphaned files (removed, or left to the user).
    pub fn forget_orphaned_files(&mut self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let tx = self.write_tx("forgetting orphaned files")?;
        {
            let mut stmt = tx
                .prepare_cached("DELETE FROM orphaned_downloads WHERE orphan_id = ?1")
                .ctx("forgetting orphaned files")?;
            for id in ids {
                stmt.execute([id]).ctx("forgetting orphaned files")?;
            }
        }
        tx.commit().ctx("forgetting orphaned files")
    }
}

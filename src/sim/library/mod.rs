//! The synthetic photo library: deterministic generation from the seed, per-index ordered
//! vectors (all photos, smart folders, hidden, recently deleted, albums), a per-zone change
//! log with sync tokens, and mutations.

use super::SimConfig;

/// The library of every zone, behind its own locks.
pub struct LibraryState {}

impl LibraryState {
    /// Generate the library for a configuration.
    pub fn generate(_config: &SimConfig) -> Self {
        LibraryState {}
    }

    /// The asset id (CPLMaster recordName) of an asset key, if it exists.
    pub fn asset_id(&self, _asset_key: u64) -> Option<String> {
        None
    }
}

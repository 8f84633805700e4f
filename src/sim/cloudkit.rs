//! The CloudKit Photos database endpoints (`/database/1/com.apple.photos.cloud/production/...`),
//! rendering the synthetic library as CPLMaster / CPLAsset / CPLAlbum records.

use axum::Router;

use super::SharedState;

/// Routes under `/database/1/com.apple.photos.cloud/production/{private,shared}`.
pub fn router() -> Router<SharedState> {
    Router::new()
}

//! The simulator's own API under `/_sim/` (never in Apple's URL space): manifest, stats,
//! mutations, faults.

use axum::Router;

use super::SharedState;

/// Routes under `/_sim/`.
pub fn router() -> Router<SharedState> {
    Router::new()
}

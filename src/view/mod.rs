//! The catalog as the mount shows it: which files sit at which paths ([`build`]), and where
//! their bytes come from ([`LibrarySource`]).
//!
//! The mount core (`crate::mount`) knows nothing of the catalog; this module is the bridge.
//!
//! # The tree
//! - The root holds the date tree `sync -d DIR` writes with the same flags: the sync engine's
//!   own plan ([`crate::mirror::TreeIndex`]), so paths, names, sizes and mtimes agree.
//! - Beside it, the views ([`names`]): `Albums/` (user albums in their folders), `Favorites/`,
//!   `Media Types/` (Videos, Live Photos, Screenshots, Bursts, Panoramas, Slo-mo, Time-lapse),
//!   `Hidden/`, `Recently Deleted/`, and `Libraries/` (the date tree of every library the
//!   root does not show). Album and smart-folder listings are flat, named by
//!   [`crate::layout::plan_flat`]. A view name taken by the date tree gets a suffix.
//! - A version shown at several paths is one inode (hard links); see [`ids`].
//! - With `--xmp-sidecar`, every file has a `NAME.xmp` beside it, rendered from the catalog.
//!
//! # The bytes
//! [`LibrarySource`] serves sidecars from memory and everything else through
//! [`crate::mount::CachedSource`] with [`CatalogLocator`]: the file the mirror completed (per
//! the catalog's download state) when there is one, else the block cache filled from the CDN
//! with URLs from [`UrlBroker`] (`records/lookup`, cached until they expire, re-authenticating
//! when the session expired).

mod build;
pub mod ids;
pub mod live;
mod locator;
pub mod names;
pub mod neighbours;
pub mod session_slot;
mod urls;
mod views;

pub use locator::{CatalogLocator, LibrarySource, MirrorLink, MirrorRoot};
pub use names::TopNames;
pub use session_slot::SessionSlot;
pub use urls::{UrlBroker, UrlBrokerStats, UrlSink};

use crate::catalog::{Catalog, CatalogError, RootId};
use crate::layout::LayoutPolicy;
use crate::mirror::{Selection, SelectionError};
use crate::mount::Entry;

/// What the view shows.
#[derive(Debug, Clone)]
pub struct ViewConfig {
    /// Folder template, versions, names: the same policy `sync` uses.
    pub policy: LayoutPolicy,
    /// The selection flags (`--library`, `--album`, `--skip-videos`, ...). The date tree is
    /// exactly the selection; the views show their whole contents filtered by the per-asset
    /// flags (kind, dates, `--filename-exclude`).
    pub selection: Selection,
    /// Show a `NAME.xmp` sidecar beside every file.
    pub xmp_sidecar: bool,
    /// The mirror's download root, when there is one (`--until-found` counts from it).
    pub mirror_root: Option<RootId>,
}

/// Counts of what a view holds (for the start-up summary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewCounts {
    /// Paths in the date tree (sidecars included).
    pub date_tree_files: usize,
    /// Paths in the views.
    pub view_files: usize,
    /// User albums shown.
    pub albums: usize,
    /// Other libraries shown under `Libraries/`.
    pub libraries: usize,
}

/// The mount's contents, ready for [`crate::mount::Namespace::new`] / `MountHandle::apply`.
#[derive(Debug)]
pub struct LibraryView {
    /// Every file path.
    pub entries: Vec<Entry>,
    /// Directories shown even when empty (views, albums).
    pub extra_dirs: Vec<String>,
    /// The names the views got.
    pub names: TopNames,
    /// What it holds.
    pub counts: ViewCounts,
    /// Which photos are listed next to which (URL lookups are batched along it).
    pub neighbours: neighbours::NeighbourOrder,
}

/// Why the view could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Selection(#[from] SelectionError),
}

/// Build the view of `catalog` for `cfg`.
pub fn build(catalog: &Catalog, cfg: &ViewConfig) -> Result<LibraryView, ViewError> {
    build::Builder::new(catalog, cfg).build()
}

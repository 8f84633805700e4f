//! icloudpd-rs: your iCloud Photos library as ordinary files, by download (`sync`) or as a
//! FUSE filesystem (`mount`), plus the iCloud simulator (`sim`) everything is tested against.
//!
//! Data flows one way: `auth` -> `cloudkit` -> `catalog` -> `layout` -> `mirror` / `mount`.

pub mod cache;
pub mod cli;
pub mod fetch;
pub mod model;
pub mod mount;
pub mod sim;

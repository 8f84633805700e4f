//! icloudpd-rs: your iCloud Photos library as ordinary files, by download (`sync`) or as a
//! FUSE filesystem (`mount`), plus the iCloud simulator (`sim`) everything is tested against.
//!
//! Data flows one way: `auth` -> `cloudkit` -> `catalog` -> `layout` -> `mirror` / `mount`.

pub mod auth;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod cloudkit;
pub mod fetch;
pub mod layout;
mod lock_file;
mod memory;
pub mod metadata;
pub mod mirror;
pub mod model;
pub mod mount;
pub mod net;
pub mod refresh;
mod rename;
pub mod sim;
pub mod view;

//! Integration tests of the sync area, one binary (one link of the crate) for all.

#[path = "../catalog/support/mod.rs"]
mod catalog_support;
mod support;

mod basic;
mod crash;
mod delete;
mod edits;
mod failed;
mod faults;
mod fetch_download;
mod folders;
mod in_the_way;
mod input;
mod layout;
mod metadata;
mod operation;
mod plan;
mod reconcile;
mod state;
mod usage;

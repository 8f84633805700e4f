//! Integration tests of the catalog area, one binary (one link of the crate) for all.

mod support;

mod albums;
mod assets;
mod batched;
mod bench;
mod bulk;
mod cli;
mod crash;
mod downloads;
mod names_shown;
mod open;
mod read_only;
mod refresh;
mod runs;
mod views;

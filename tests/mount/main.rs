//! Integration tests of the mount area, one binary (one link of the crate) for all.

mod core_support;
mod support;

mod bench;
mod core_bench;
mod demo;
mod fs_core;
mod fuse;
mod input;
mod live;
mod reads;
mod tree;

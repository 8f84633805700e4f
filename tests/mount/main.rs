//! Integration tests of the mount area, one binary (one link of the crate) for all.

mod core_support;
mod fuse_support;
mod support;

mod bench;
mod bench_measure;
mod core_bench;
mod demo;
mod demo_paths;
mod fs_core;
mod fuse;
mod fuse_lifecycle;
mod fuse_reads;
mod input;
mod live;
mod live_counts;
mod reads;
mod stop_forced;
mod tree;

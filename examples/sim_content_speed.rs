//! Measure how fast the simulator generates file content in-process (no HTTP), per format:
//! the ceiling the CDN can reach. `cargo run --release --example sim_content_speed [MB]`.

use std::time::Instant;

use icloudpd_rs::sim::content::{FileBytes, Format, Resource};

fn main() {
    let mb: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let size = mb << 20;
    let mut buf = vec![0u8; 128 * 1024];
    for format in [
        Format::Mov,
        Format::Heic,
        Format::Jpeg,
        Format::Png,
        Format::Dng,
    ] {
        let res = Resource {
            asset_key: 1,
            rendition: 0,
            generation: 0,
            size,
            format,
        };
        let bytes = FileBytes::new(1, &res);
        let started = Instant::now();
        let mut off = 0;
        let mut check = 0u8;
        while off < size {
            let n = bytes.fill(off, &mut buf);
            check ^= buf[n - 1];
            off += n as u64;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{format:?}: {mb} MiB in {secs:.3} s = {:.2} GB/s (check {check})",
            size as f64 / secs / 1e9
        );
    }
}

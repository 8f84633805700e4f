//! Print a signed CDN URL for a synthetic file, for benchmarks and manual checks.
//!
//! Starts a simulator (on `--listen`, default an ephemeral loopback port), prints the URL of one
//! file on stdout, then serves until killed:
//! `cargo run --release --example sim_cdn_url -- --format mov --size 2000000000`
//! Options: `--format jpeg|heic|png|mov|mp4|dng|cr2`, `--size BYTES`, `--listen ADDR`,
//! `--bandwidth BYTES_PER_SEC`, `--ttl SECS`.
//!
//! `--sign-bench N` first times N calls of `download_url` and reports the rate on stderr.
//!
//! `--baseline` instead serves SIZE bytes from a fixed in-memory buffer with the least possible
//! HTTP/1.1 (no generation, no framework): the loopback limit the CDN is compared with.

use std::io::Write;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use icloudpd_rs::sim::cdn::{self, UrlParts};
use icloudpd_rs::sim::content::{Format, Resource};
use icloudpd_rs::sim::{Sim, SimConfig};

fn parse_format(s: &str) -> Option<Format> {
    Some(match s {
        "jpeg" | "jpg" => Format::Jpeg,
        "heic" => Format::Heic,
        "png" => Format::Png,
        "mov" => Format::Mov,
        "mp4" => Format::Mp4,
        "dng" => Format::Dng,
        "cr2" => Format::Cr2,
        _ => return None,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = SimConfig {
        assets: 1,
        ..SimConfig::default()
    };
    let mut format = Format::Mov;
    let mut size: u64 = 2_000_000_000;
    let mut baseline = false;
    let mut sign_bench: u64 = 0;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--format" => {
                format = parse_format(&value).ok_or_else(|| format!("unknown format {value}"))?
            }
            "--size" => size = value.parse()?,
            "--listen" => config.listen = value.parse()?,
            "--bandwidth" => config.cdn_bandwidth = Some(value.parse()?),
            "--ttl" => config.url_ttl = value.parse()?,
            "--sign-bench" => sign_bench = value.parse()?,
            "--baseline" => baseline = value == "1" || value == "true",
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    if baseline {
        return serve_baseline(config.listen, size).await;
    }
    let sim = Sim::start(config).await?;
    let res = Resource {
        asset_key: 1,
        rendition: 0,
        generation: 0,
        size,
        format,
    };
    let parts = UrlParts {
        file_checksum: "AY6c+BsE0jjaXx9tmVGJM1D2VcEO",
        reference_checksum: "AfUMnLhKAW8bwnMCwMMXLMKCslue",
        wrapping_key: "Aj375aJi6sEmqgJPj64+7Q==",
        zone: "PrimarySync",
    };
    if sign_bench > 0 {
        let started = std::time::Instant::now();
        let mut total = 0usize;
        for key in 0..sign_bench {
            let r = Resource {
                asset_key: key,
                ..res
            };
            total += cdn::download_url(sim.state(), &r, &parts).len();
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "urls_signed_per_s={:.0} (mean length {} bytes)",
            sign_bench as f64 / secs,
            total as u64 / sign_bench
        );
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", cdn::download_url(sim.state(), &res, &parts))?;
    out.flush()?;
    drop(out);
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}

/// Serve `size` bytes per request from one 4 MiB buffer, over bare tokio TCP.
async fn serve_baseline(listen: SocketAddr, size: u64) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("http://{}/baseline", listener.local_addr()?);
    std::io::stdout().flush()?;
    let buf: &'static [u8] = Box::leak(vec![0x5Au8; 4 << 20].into_boxed_slice());
    loop {
        let (mut tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let mut req = Vec::new();
            let mut chunk = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&chunk[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {size}\r\nConnection: close\r\n\r\n"
            );
            if tcp.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut left = size;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                if tcp.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                left -= n as u64;
            }
        });
    }
}

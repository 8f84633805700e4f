//! `icloudpd-rs sim`: run the simulator until SIGINT/SIGTERM.

use std::io::Write;

use super::exit;
use crate::sim::{Sim, SimConfig};

/// Start the simulator, print the ready line on stdout, serve until interrupted.
pub fn run(config: SimConfig) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::FAILURE;
        }
    };
    rt.block_on(async move {
        let sim = match Sim::start(config).await {
            Ok(sim) => sim,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::FAILURE;
            }
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", sim.ready_line());
        let _ = out.flush();
        drop(out);
        wait_for_signal().await;
        tracing::info!("shutting down");
        sim.shutdown().await;
        exit::OK
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#!/usr/bin/env bash
# Enumeration benchmark of the CloudKit client against the in-process simulator.
#
#   scripts/bench-cloudkit.sh              # ASSETS=100000 PARALLELISM=6, release build
#
# Prints key=value lines (see examples/cloudkit_walk_bench.rs):
#   raw_transfer_s / raw_assets_per_s   every page of All Photos fetched, bodies read, not parsed:
#                                       the limit set by the simulator and loopback HTTP
#   walk_s / walk_assets_per_s          the client's streaming walk of the same index
#   walk_vs_raw                         walk time / raw time (1.0 = parsing costs nothing)
# The simulator runs in the same process and shares the CPU with the client.
set -euo pipefail
cd "$(dirname "$0")/.."

ASSETS=${ASSETS:-100000}
PARALLELISM=${PARALLELISM:-6}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

cargo build --quiet --release --example cloudkit_walk_bench
"$CARGO_TARGET_DIR/release/examples/cloudkit_walk_bench" "$ASSETS" "$PARALLELISM"

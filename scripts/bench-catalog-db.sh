#!/usr/bin/env bash
# Catalog write/read throughput at library scale (default 100,000 assets, ~3.75 versions each,
# pages of 100), compared with raw SQLite inserts of the same rows.
#
#   scripts/bench-catalog-db.sh [ASSETS] [DIR]
#
# DIR defaults to a temporary directory; pass a directory on the disk you care about.
set -euo pipefail
cd "$(dirname "$0")/.."
export CATALOG_BENCH_ASSETS="${1:-100000}"
if [[ -n "${2:-}" ]]; then export CATALOG_BENCH_DIR="$2"; fi
exec cargo test --release --test catalog -- --ignored --nocapture --test-threads 1 bench::

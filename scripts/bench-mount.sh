#!/usr/bin/env bash
# Mount benchmarks, reported as ratios against a reference measured in the same run.
#
#   scripts/bench-mount.sh
#       The real `icloudpd-rs mount` against the iCloud simulator (see tests/mount/bench.rs):
#       a BENCH_ASSETS-asset library (default 100000) for first/later mount time, memory,
#       `ls -lR`, `find` and `du` against the same tree of local files; a BENCH_DATA_ASSETS-asset
#       library (default 1000) at real file sizes with BENCH_LATENCY_MS (default 20) before every
#       answer for cold, block-cached and mirrored reads and the thumbnail pattern, against plain
#       HTTP requests of the same URLs and direct disk reads. BENCH_SKIP_METADATA=1 or
#       BENCH_SKIP_DATA=1 runs one half. Needs root or fusermount3, and /dev/fuse.
#
#   scripts/bench-mount.sh --core
#       The filesystem core alone with a synthetic library served by a local test CDN
#       (tests/mount/core_bench.rs). Knobs: BENCH_FILES, BENCH_BIG_MIB (512), BENCH_CDN_LATENCY_MS (0),
#       BENCH_DIR (where to build; default the system temp dir).
#
#   scripts/bench-mount.sh --mount MOUNT --local LOCAL [--file RELPATH]
#       An existing mount (e.g. `icloudpd-rs mount`) against an equivalent local tree (e.g. the
#       output of `icloudpd-rs sync -d LOCAL` with the same layout): `ls -lR` and `find` of
#       both, and a sequential read of RELPATH from both (cold for the mount unless cached).
set -euo pipefail
cd "$(dirname "$0")/.."

now() { date +%s%N; }
seconds() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "inf"; else printf "%.2f", a / b }'; }

timed() { # timed CMD... -> nanoseconds on stdout, command output discarded
  local t0 t1
  t0=$(now)
  "$@" >/dev/null 2>&1
  t1=$(now)
  echo $((t1 - t0))
}

external() {
  local mount="" local_tree="" file=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --mount) mount="$2"; shift 2 ;;
      --local) local_tree="$2"; shift 2 ;;
      --file) file="$2"; shift 2 ;;
      *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
  done
  [ -d "$mount" ] && [ -d "$local_tree" ] || { echo "need --mount DIR and --local DIR" >&2; exit 2; }
  printf '%-40s %10s %10s %8s  %s\n' measurement mount local ratio target
  local l m
  timed ls -lR "$local_tree" >/dev/null
  l=$(timed ls -lR "$local_tree"); m=$(timed ls -lR "$mount")
  printf '%-40s %9ss %9ss %7sx  %s\n' "ls -lR (mount first run)" "$(seconds "$m")" "$(seconds "$l")" "$(ratio "$m" "$l")" "<= 2x time"
  m=$(timed ls -lR "$mount")
  printf '%-40s %9ss %9ss %7sx  %s\n' "ls -lR (again)" "$(seconds "$m")" "$(seconds "$l")" "$(ratio "$m" "$l")" "<= 2x time"
  timed find "$local_tree" >/dev/null
  l=$(timed find "$local_tree"); m=$(timed find "$mount")
  printf '%-40s %9ss %9ss %7sx  %s\n' "find" "$(seconds "$m")" "$(seconds "$l")" "$(ratio "$m" "$l")" "<= 2x time"
  if [ -n "$file" ]; then
    timed cat "$local_tree/$file" >/dev/null
    l=$(timed cat "$local_tree/$file"); m=$(timed cat "$mount/$file")
    printf '%-40s %9ss %9ss %7sx  %s\n' "sequential read of $file" "$(seconds "$m")" "$(seconds "$l")" "$(ratio "$l" "$m")" ">= 0.9x throughput if mirrored/cached"
  fi
}

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
source scripts/lib/page-reporting.sh
if [ "${1:-}" = "--core" ]; then
  exec cargo test --release --test mount -- --ignored --nocapture --test-threads=1 core_bench::bench_mount
fi
if [ $# -gt 0 ]; then
  external "$@"
  exit 0
fi
cargo test --release --test mount --no-run --quiet
trap restore_freed_pages EXIT
hold_freed_pages
cargo test --release --test mount -- --ignored --nocapture --test-threads=1 bench::bench_real_mount

#!/usr/bin/env bash
# Sync benchmark against the simulator on loopback (release build).
#
#   scripts/bench-sync.sh
#   ASSETS=1000 SCALE=0.05 THREADS=8 LATENCY=0 BANDWIDTH=4000000 scripts/bench-sync.sh
#
# Prints key=value lines:
#   throughput.curl_mbps      curl --parallel --parallel-max THREADS over the same URLs
#                             (files written to disk, no fsync): the physical limit here
#   throughput.sync_mbps      `icloudpd-rs sync --threads-num THREADS` of the same files
#                             (catalog already refreshed; includes planning, URL lookups,
#                             validation, fsync + rename, recording)
#   throughput.sync_vs_curl   ratio of the two (target >= 0.90)
#   first_download.after_signin_ms  a first sync of a BIG-asset library: time from sign-in to
#                             the first transfer starting (target < 1000: streaming, not
#                             enumerate-then-download)
#   first_download.after_start_ms   the same from process start
#   memory.rss_small_kb / memory.rss_big_kb / memory.big_vs_small
#                             peak RSS of a whole first sync of SMALL and BIG libraries
#   noop.big_s                a second sync of the BIG library (nothing to download)
set -euo pipefail
cd "$(dirname "$0")/.."

ASSETS=${ASSETS:-1000}
SCALE=${SCALE:-0.05}
THREADS=${THREADS:-8}
LATENCY=${LATENCY:-20}
BANDWIDTH=${BANDWIDTH:-}
SMALL=${SMALL:-10000}
BIG=${BIG:-100000}
TINY_SCALE=${TINY_SCALE:-0.0002}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

cargo build --quiet --release --bin icloudpd-rs --example sync_bench_urls
BIN="$CARGO_TARGET_DIR/release/icloudpd-rs"
URLS="$CARGO_TARGET_DIR/release/examples/sync_bench_urls"

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# Start a simulator; sets $endpoint, $user, $ICLOUD_PASSWORD.
start_sim() {
    local out="$tmp/sim.$RANDOM"
    "$BIN" sim --iterations 1000 "$@" >"$out" 2>"$out.log" &
    pids+=($!)
    for _ in $(seq 600); do
        [ -s "$out" ] && break
        sleep 0.1
    done
    endpoint=$(sed -n 's/.*"endpoint":"\([^"]*\)".*/\1/p' "$out")
    user=$(sed -n 's/.*"username":"\([^"]*\)".*/\1/p' "$out")
    ICLOUD_PASSWORD=$(sed -n 's/.*"password":"\([^"]*\)".*/\1/p' "$out")
    export ICLOUD_PASSWORD
    [ -n "$endpoint" ] || { echo "simulator did not start" >&2; exit 1; }
}

stop_sims() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    pids=()
}

account() { echo -u "$user" --endpoint "$endpoint" --data-dir "$1"; }
now() { date +%s.%N; }
mbps() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.1f", b / t / 1e6 }'; }

echo "# throughput: $ASSETS assets, size scale $SCALE, $THREADS parallel, latency ${LATENCY}ms, per-connection bandwidth ${BANDWIDTH:-unlimited}"
sim_args=(--assets "$ASSETS" --size-scale "$SCALE" --latency "$LATENCY")
[ -n "$BANDWIDTH" ] && sim_args+=(--cdn-bandwidth "$BANDWIDTH")
start_sim "${sim_args[@]}"
data="$tmp/data"
# shellcheck disable=SC2046
"$BIN" refresh $(account "$data") >/dev/null 2>&1
"$URLS" "$endpoint" "$user" "$data" >"$tmp/urls.txt"
files=$(wc -l <"$tmp/urls.txt")
bytes=$(awk '{ s += $1 } END { print s }' "$tmp/urls.txt")
echo "# $files files, $bytes bytes"

best_curl=""
best_sync=""
for rep in 1 2; do
    mkdir -p "$tmp/curl$rep"
    awk -v d="$tmp/curl$rep" '{ printf "url = \"%s\"\noutput = \"%s/%d\"\n", $2, d, NR }' \
        "$tmp/urls.txt" >"$tmp/curl.cfg"
    t0=$(now)
    curl -s --no-progress-meter -g --parallel --parallel-max "$THREADS" -K "$tmp/curl.cfg"
    t1=$(now)
    got=$(du -sb "$tmp/curl$rep" | cut -f1)
    rm -rf "$tmp/curl$rep"
    c=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    if [ -z "$best_curl" ] || awk -v a="$c" -v b="$best_curl" 'BEGIN { exit !(a < b) }'; then
        best_curl=$c
    fi

    t0=$(now)
    # shellcheck disable=SC2046
    "$BIN" sync $(account "$data") -d "$tmp/photos$rep" --threads-num "$THREADS" \
        --no-progress-bar >"$tmp/sync.out" 2>"$tmp/sync.err"
    t1=$(now)
    rm -rf "$tmp/photos$rep"
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    if [ -z "$best_sync" ] || awk -v a="$s" -v b="$best_sync" 'BEGIN { exit !(a < b) }'; then
        best_sync=$s
    fi
    echo "# run $rep: curl ${c}s ($got bytes), sync ${s}s: $(cat "$tmp/sync.out")"
done
curl_rate=$(mbps "$bytes" "$best_curl")
sync_rate=$(mbps "$bytes" "$best_sync")
echo "throughput.curl_mbps=$curl_rate"
echo "throughput.sync_mbps=$sync_rate"
echo "throughput.sync_vs_curl=$(awk -v a="$sync_rate" -v b="$curl_rate" 'BEGIN { printf "%.2f", a / b }')"
stop_sims

# A whole first sync of a library of $1 tiny files; prints "rss_kb first_after_signin_ms
# first_after_start_ms seconds".
first_sync() {
    start_sim --assets "$1" --size-scale "$TINY_SCALE"
    local d="$tmp/d$1"
    t0=$(now)
    # shellcheck disable=SC2046
    RUST_LOG=info /usr/bin/time -f '%M' -o "$tmp/rss" "$BIN" sync $(account "$d") \
        -d "$tmp/p$1" --threads-num "$THREADS" --no-progress-bar >"$tmp/o$1" 2>"$tmp/e$1" &
    local pid=$!
    local first_ms=""
    while kill -0 "$pid" 2>/dev/null; do
        if [ -z "$first_ms" ] && grep -qs "first download started" "$tmp/e$1"; then
            first_ms=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
        fi
        sleep 0.02
    done
    wait "$pid"
    t1=$(now)
    local after
    after=$(sed -n 's/.*first download started.*after_ms=\([0-9]*\).*/\1/p' "$tmp/e$1" | head -1)
    t2=$(now)
    # shellcheck disable=SC2046
    "$BIN" sync $(account "$d") -d "$tmp/p$1" --no-progress-bar >/dev/null 2>&1
    t3=$(now)
    echo "$(cat "$tmp/rss") ${after:-?} ${first_ms:-?} $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') $(awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.2f", b - a }')"
    echo "# $1 assets: $(cat "$tmp/o$1")" >&2
    rm -rf "$tmp/p$1" "$d"
    stop_sims
}

echo "# first sync of $SMALL and $BIG assets (size scale $TINY_SCALE)"
read -r rss_small _ _ secs_small noop_small < <(first_sync "$SMALL")
read -r rss_big after_big start_big secs_big noop_big < <(first_sync "$BIG")
echo "first_download.after_signin_ms=$after_big"
echo "first_download.after_start_ms=$start_big"
echo "first_sync.small_s=$secs_small"
echo "first_sync.big_s=$secs_big"
echo "memory.rss_small_kb=$rss_small"
echo "memory.rss_big_kb=$rss_big"
echo "memory.big_vs_small=$(awk -v a="$rss_big" -v b="$rss_small" 'BEGIN { printf "%.2f", a / b }')"
echo "noop.small_s=$noop_small"
echo "noop.big_s=$noop_big"

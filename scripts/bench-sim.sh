#!/usr/bin/env bash
# Benchmark of the iCloud simulator (release build), printing figures against the targets:
#
#   library   generation of 100,000 assets well under 1 s
#   listing   >= 20,000 asset records/s served over loopback (parallel paging of the whole
#             All Photos index with a session from /_sim/session, like kei's 20 fetchers)
#   memory    RSS under 300 MiB with 1,000,000 assets (after start and after a full paging pass)
#   cdn       >= 1 GB/s (section owned by the CDN work; see below)
#
# Usage: scripts/bench-sim.sh            (env: ASSETS=100000 BIG_ASSETS=1000000 PARALLEL=20
#                                              SKIP_BIG=1 to skip the 1,000,000-asset run)
# Needs: cargo, curl >= 7.66 (--parallel).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ASSETS=${ASSETS:-100000}
BIG_ASSETS=${BIG_ASSETS:-1000000}
PARALLEL=${PARALLEL:-20}
BASE=/database/1/com.apple.photos.cloud/production/private

echo "building release binary..." >&2
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
BIN=$CARGO_TARGET_DIR/release/icloudpd-rs

TMP=$(mktemp -d)
SIM_PID=""
cleanup() {
    if [ -n "$SIM_PID" ]; then
        kill "$SIM_PID" 2>/dev/null || true
        wait "$SIM_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# start_sim ASSETS: start a simulator, wait for its ready line, set ENDPOINT and READY_S.
start_sim() {
    local t0
    t0=$(now)
    RUST_LOG=info "$BIN" sim --assets "$1" --size-scale 0.001 >"$TMP/ready" 2>"$TMP/sim.log" &
    SIM_PID=$!
    for _ in $(seq 1 1200); do
        [ -s "$TMP/ready" ] && break
        kill -0 "$SIM_PID" 2>/dev/null || { cat "$TMP/sim.log" >&2; echo "simulator died" >&2; exit 1; }
        sleep 0.05
    done
    READY_S=$(elapsed "$t0" "$(now)")
    ENDPOINT=$(sed -n 's/.*"endpoint":"\([^"]*\)".*/\1/p' "$TMP/ready")
    [ -n "$ENDPOINT" ] || { echo "no ready line" >&2; exit 1; }
    GEN_MS=$(sed -n 's/.*library generated.*elapsed_ms=\([0-9]*\).*/\1/p' "$TMP/sim.log" | head -1)
}

stop_sim() {
    kill "$SIM_PID" 2>/dev/null || true
    wait "$SIM_PID" 2>/dev/null || true
    SIM_PID=""
}

rss_mib() { ps -o rss= -p "$SIM_PID" | awk '{ printf "%.0f", $1 / 1024 }'; }

# page_pass: page the whole All Photos index, PARALLEL requests in flight; sets PASS_S, COUNT,
# BYTES and checks every answer was a 200 with a full page.
page_pass() {
    curl -s -X POST "$ENDPOINT/_sim/session" | sed -n 's/.*"cookie":"\(.*\)"}.*/\1/p' | sed 's/\\"/"/g' \
        | sed 's/^/Cookie: /' >"$TMP/cookie"
    local count_body='{"batch":[{"resultsLimit":1,"query":{"filterBy":{"fieldName":"indexCountID","fieldValue":{"type":"STRING_LIST","value":["CPLAssetByAssetDateWithoutHiddenOrDeleted"]},"comparator":"IN"},"recordType":"HyperionIndexCountLookup"},"zoneWide":true,"zoneID":{"zoneName":"PrimarySync"}}]}'
    COUNT=$(curl -s -H @"$TMP/cookie" -d "$count_body" "$ENDPOINT$BASE/internal/records/query/batch?remapEnums=true&getCurrentSyncToken=true" \
        | sed -n 's/.*"itemCount":{"value":\([0-9]*\).*/\1/p')
    [ -n "$COUNT" ] || { echo "count failed" >&2; exit 1; }
    mkdir -p "$TMP/bodies"
    : >"$TMP/curl.cfg"
    local rank=0
    while [ "$rank" -lt "$COUNT" ]; do
        printf '{"query":{"filterBy":[{"fieldName":"startRank","fieldValue":{"type":"INT64","value":%d},"comparator":"EQUALS"},{"fieldName":"direction","fieldValue":{"type":"STRING","value":"ASCENDING"},"comparator":"EQUALS"}],"recordType":"CPLAssetAndMasterByAssetDateWithoutHiddenOrDeleted"},"resultsLimit":200,"zoneID":{"zoneName":"PrimarySync"}}' \
            "$rank" >"$TMP/bodies/$rank.json"
        [ "$rank" -gt 0 ] && echo next >>"$TMP/curl.cfg"
        printf 'url = "%s%s/records/query?remapEnums=true&getCurrentSyncToken=true"\nheader = "@%s"\nheader = "Content-Type: text/plain"\ndata-binary = "@%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code} %%{size_download}\\n"\n' \
            "$ENDPOINT" "$BASE" "$TMP/cookie" "$TMP/bodies/$rank.json" >>"$TMP/curl.cfg"
        rank=$((rank + 100))
    done
    local t0
    t0=$(now)
    curl -s --no-progress-meter --parallel --parallel-max "$PARALLEL" -K "$TMP/curl.cfg" >"$TMP/codes"
    PASS_S=$(elapsed "$t0" "$(now)")
    local bad
    bad=$(awk '$1 != 200' "$TMP/codes" | wc -l)
    [ "$bad" -eq 0 ] || { echo "$bad requests failed" >&2; exit 1; }
    BYTES=$(awk '{ s += $2 } END { print s }' "$TMP/codes")
}

echo "== library and listing: $ASSETS assets, $PARALLEL parallel fetchers =="
start_sim "$ASSETS"
echo "library generation: ${GEN_MS} ms (start to ready line: ${READY_S} s)   target: well under 1000 ms"
page_pass
awk -v n="$COUNT" -v s="$PASS_S" -v b="$BYTES" 'BEGIN {
    printf "full paging pass: %d assets (%d records) in %.2f s = %.0f assets/s, %.0f records/s, %.0f MB/s of JSON   target: >= 20000 records/s\n",
        n, 2 * n, s, n / s, 2 * n / s, b / s / 1e6 }'
stop_sim

if [ "${SKIP_BIG:-0}" != "1" ]; then
    echo "== memory: $BIG_ASSETS assets =="
    start_sim "$BIG_ASSETS"
    echo "library generation: ${GEN_MS} ms; RSS after start: $(rss_mib) MiB   target: < 300 MiB"
    page_pass
    awk -v n="$COUNT" -v s="$PASS_S" 'BEGIN { printf "full paging pass: %d assets in %.2f s = %.0f records/s\n", n, s, 2 * n / s }'
    echo "RSS after a full paging pass: $(rss_mib) MiB   target: < 300 MiB"
    stop_sim
fi

# ---------------------------------------------------------------------------------------------
# == CDN (owned by the sim-cdn work) ==
# Target: >= 1 GB/s of file bytes over loopback. The CDN work measures it in its own script;
# run it here when present so one command gives every simulator figure.
# ---------------------------------------------------------------------------------------------
if [ -x "$ROOT/scripts/bench-sim-cdn.sh" ]; then
    echo "== cdn (scripts/bench-sim-cdn.sh) =="
    "$ROOT/scripts/bench-sim-cdn.sh"
else
    echo "== cdn: scripts/bench-sim-cdn.sh not present (section owned by the CDN work) =="
fi

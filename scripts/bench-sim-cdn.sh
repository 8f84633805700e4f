#!/usr/bin/env bash
# CDN section of the simulator benchmark: how fast the simulator serves file bytes.
#
#   scripts/bench-sim-cdn.sh            # SIZE=2000000000 (a 2 GB video), release build
#
# Prints, as key=value lines:
#   content.<format>_gbps     in-process generation speed (no HTTP): the CDN's ceiling
#   cdn.single_file_gbps      one large MOV fetched with curl over loopback (HTTP/1.1)
#   loopback.baseline_gbps    as many bytes from a bare tokio TCP server writing one in-memory
#                             buffer to the same curl: the loopback + client limit
#   cdn.vs_loopback           ratio of the two
#   cdn.range_requests_per_s  1 MiB Range GETs, one keep-alive connection (mount-like access)
#   cdn.urls_signed_per_s     download_url calls per second (the library signs one per rendition)
#   cdn.bandwidth_limit_ratio measured / configured rate under --cdn-bandwidth (~1.0 expected)
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${SIZE:-2000000000}
RANGES=${RANGES:-300}
REPS=${REPS:-3}                   # large downloads are repeated; the best run counts
LIMIT=${LIMIT:-20000000}          # bytes/s for the bandwidth check
LIMITED_SIZE=${LIMITED_SIZE:-40000000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN="$CARGO_TARGET_DIR/release/examples"

cargo build --quiet --release --example sim_cdn_url --example sim_content_speed

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# Start the example simulator; sets $url to a signed URL of one file.
start_sim() {
    local out="$tmp/url.$RANDOM"
    "$BIN/sim_cdn_url" "$@" >"$out" &
    pids+=($!)
    for _ in $(seq 100); do
        [ -s "$out" ] && break
        sleep 0.1
    done
    url=$(cat "$out")
    [ -n "$url" ] || { echo "simulator did not print a URL" >&2; exit 1; }
}

# Best of $REPS downloads of a URL: "bytes seconds" of the fastest.
best_fetch() {
    for _ in $(seq "$REPS"); do
        curl -g -s -o /dev/null -w '%{size_download} %{time_total}\n' "$1"
    done | sort -k2 -g | head -1
}

gbps() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.2f", b / t / 1e9 }'; }

echo "# in-process content generation (1 GiB per format)"
"$BIN/sim_content_speed" 1024 | while read -r fmt _ _ _ _ _ _ rate _; do
    echo "content.${fmt%:}_gbps=$rate" | tr '[:upper:]' '[:lower:]'
done

echo "# one large file over loopback HTTP (curl -g: keep \${f} literal)"
start_sim --format mov --size "$SIZE"
cdn_url=$url
read -r bytes secs < <(best_fetch "$url")
[ "$bytes" = "$SIZE" ] || { echo "short download: $bytes of $SIZE" >&2; exit 1; }
cdn=$(gbps "$bytes" "$secs")
echo "cdn.single_file_gbps=$cdn"

echo "# loopback limit: the same number of bytes from a bare tokio server (fixed buffer)"
start_sim --baseline 1 --size "$SIZE"
read -r bytes secs < <(best_fetch "$url")
base=$(gbps "$bytes" "$secs")
echo "loopback.baseline_gbps=$base"
echo "cdn.vs_loopback=$(awk -v a="$cdn" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"

echo "# $RANGES Range GETs of 1 MiB at spread offsets, one connection"
cfg="$tmp/ranges.curl"
: >"$cfg"
for i in $(seq 0 $((RANGES - 1))); do
    start=$(( (i * 7919 % 1000) * (SIZE / 1000) ))
    [ "$i" -gt 0 ] && echo next >>"$cfg"
    printf 'url = "%s"\nrange = "%d-%d"\noutput = "/dev/null"\ngloboff\nwrite-out = "%%{http_code}\\n"\n' \
        "$cdn_url" "$start" $((start + 1048575)) >>"$cfg"
done
t0=$(date +%s.%N)
curl -s -K "$cfg" | sort | uniq -c | sed 's/^/#   status /'
t1=$(date +%s.%N)
echo "cdn.range_requests_per_s=$(awk -v n="$RANGES" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')"

echo "# URL signing"
start_sim --format jpeg --size 1000000 --sign-bench 200000 2>"$tmp/sign"
sleep 0.5
echo "cdn.$(grep -o 'urls_signed_per_s=[0-9]*' "$tmp/sign")"

echo "# bandwidth limit: $LIMITED_SIZE bytes at $LIMIT bytes/s"
start_sim --format mp4 --size "$LIMITED_SIZE" --bandwidth "$LIMIT"
read -r bytes secs < <(curl -g -s -o /dev/null -w '%{size_download} %{time_total}\n' "$url")
echo "cdn.bandwidth_limit_ratio=$(awk -v b="$bytes" -v t="$secs" -v l="$LIMIT" 'BEGIN { printf "%.2f", b / t / l }')"

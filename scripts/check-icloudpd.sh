#!/usr/bin/env bash
# Fidelity check: the unmodified Python icloudpd (from PyPI) signs in to the simulator (with
# two-factor), lists albums and downloads photos whose bytes equal the simulator's manifest.
# The simulator is reached exactly as Apple would be: real host names over TLS, in a private
# network namespace. Needs root. Usage: scripts/check-icloudpd.sh [--assets N]
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS=300
RECENT=60
while [ $# -gt 0 ]; do
  case "$1" in
    --assets) ASSETS=$2; shift 2 ;;
    --recent) RECENT=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 1 ;;
  esac
done

CACHE="${ICLOUDPD_RS_PEERS:-$HOME/.cache/icloudpd-rs-peers}"
if [ ! -x "$CACHE/icloudpd/bin/icloudpd" ]; then
  mkdir -p "$CACHE"
  python3 -m venv "$CACHE/icloudpd"
  "$CACHE/icloudpd/bin/pip" install -q icloudpd
fi
cargo build --release -q

source scripts/lib/apple-net.sh
apple_net_setup
apple_sim_start --assets "$ASSETS" --seed 11 --size-scale 0.002 --two-factor
W="$APPLE_WORK"
ICLOUDPD=("$CACHE/icloudpd/bin/icloudpd" --username "$SIM_USER" --password "$SIM_PASS"
  --cookie-directory "$W/cookies" --no-progress-bar)

echo "== icloudpd: sign in with two-factor, list albums"
printf '%s\n' "$SIM_CODE" | in_ns_bundled "${ICLOUDPD[@]}" --list-albums > "$W/albums.txt" 2> "$W/icloudpd-albums.log" || {
  cat "$W/icloudpd-albums.log" >&2; echo "FAIL: icloudpd could not list albums" >&2; exit 1; }
cat "$W/albums.txt"

echo "== icloudpd: download the $RECENT most recent assets"
in_ns_bundled "${ICLOUDPD[@]}" -d "$W/photos" --recent "$RECENT" > "$W/icloudpd-dl.log" 2>&1 || {
  tail -30 "$W/icloudpd-dl.log" >&2; echo "FAIL: icloudpd download failed" >&2; exit 1; }

sim_admin_get manifest > "$W/manifest.jsonl"
python3 - "$W/manifest.jsonl" "$W/photos" "$W/albums.txt" <<'PY'
import hashlib, json, os, sys
manifest, root, albums_file = sys.argv[1:4]
by_hash = {}
album_names = set()
for line in open(manifest):
    e = json.loads(line)
    by_hash.setdefault(e["sha256"], []).append(e)
    album_names.update(e.get("albums") or [])
files = []
for d, _, names in os.walk(root):
    for n in names:
        p = os.path.join(d, n)
        files.append((p, hashlib.sha256(open(p, "rb").read()).hexdigest()))
bad = [p for p, h in files if h not in by_hash]
listed = open(albums_file).read()
missing_albums = [a for a in album_names if a and a not in listed]
print(f"{len(files)} files downloaded, {len(bad)} not matching the manifest; "
      f"{len(album_names)} albums with assets, {len(missing_albums)} of them not listed")
if not files or bad:
    for p in bad[:10]:
        print("  bad:", p)
    sys.exit(1)
PY
echo "PASS: icloudpd signed in, listed albums and downloaded correct bytes"

#!/usr/bin/env bash
# The demo: a simulated iCloud library (no Apple account needed), signed in, mounted as a FUSE
# filesystem and mirrored in the background. Installs fuse3 if missing (as root). Ctrl-C stops
# everything and cleans up. Extra arguments go to `icloudpd-rs demo` (e.g. a mountpoint).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v fusermount3 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing fuse3..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null
  else
    echo "note: fuse3 is not installed (sudo apt-get install fuse3); mounting may fail" >&2
  fi
fi
cargo build --release --quiet --bin icloudpd-rs
exec target/release/icloudpd-rs demo "$@"

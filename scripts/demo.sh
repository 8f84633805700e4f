#!/usr/bin/env bash
# The demo: a simulated iCloud library (no Apple account needed), signed in, mounted as a FUSE
# filesystem and mirrored in the background. Installs fuse3 (and attr) if missing (as root). Ctrl-C stops
# everything and cleans up. Extra arguments go to `icloudpd-rs demo` (e.g. a mountpoint).
set -euo pipefail
cd "$(dirname "$0")/.."
# A Rust toolchain is the one thing not installed here (rustup installs it for the user).
[ -x "$HOME/.cargo/bin/cargo" ] && PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null 2>&1 || {
  echo "error: cargo not found: install a Rust toolchain (https://rustup.rs), then run this again" >&2
  exit 1
}
# fuse3 to mount; attr for the `getfattr` the demo suggests.
missing=()
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
command -v getfattr >/dev/null 2>&1 || missing+=(attr)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]}..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: ${missing[*]} not installed (sudo apt-get install ${missing[*]}); fuse3 is needed to mount" >&2
  fi
fi
cargo build --release --quiet --bin icloudpd-rs
exec target/release/icloudpd-rs demo "$@"

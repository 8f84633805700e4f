#!/usr/bin/env bash
# The test suite, exactly as CI runs it. Installs what a fresh machine lacks (as root), then runs
# every test: unit, simulator integration and real FUSE mounts (which need /dev/fuse).
set -euo pipefail
cd "$(dirname "$0")/.."
# A Rust toolchain is the one thing not installed here (rustup installs it for the user).
[ -x "$HOME/.cargo/bin/cargo" ] && PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null 2>&1 || {
  echo "error: cargo not found: install a Rust toolchain (https://rustup.rs), then run this again" >&2
  exit 1
}

missing=()
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
command -v rsync >/dev/null 2>&1 || missing+=(rsync)
# getfattr and curl: the demo suggests them, and its test runs every suggestion (tests/mount/demo.rs).
command -v getfattr >/dev/null 2>&1 || missing+=(attr)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# Independent readers for the metadata checks (tests/metadata/tools.rs).
command -v exiftool >/dev/null 2>&1 || missing+=(libimage-exiftool-perl)
command -v heif-convert >/dev/null 2>&1 || missing+=(libheif-examples)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "warning: missing ${missing[*]} (install them; mount tests need fuse3)" >&2
  fi
fi

cargo test --all-targets "$@"
# The examples in the documentation compile and run too (--all-targets leaves them out).
cargo test --doc "$@"

# shellcheck shell=bash
# Run unmodified iCloud clients against the simulator as if it were Apple: a throwaway CA and
# certificate for Apple's host names, a private network namespace, and a private mount namespace
# in which /etc/hosts points those names at 127.0.0.1; the simulator listens there on port 443
# with TLS.
#
# Every command runs in the same pair of namespaces (`ip netns exec` would make a fresh mount
# namespace per command, so a FUSE mount made by one command would be invisible to the next).
# FUSE mounts made there never appear on the host, and vanish with the namespace.
#
# Usage (as root), from a script that has `set -euo pipefail`:
#   source scripts/lib/apple-net.sh
#   apple_net_setup            # CA, certificate, namespaces; registers cleanup on exit
#   apple_sim_start --assets 500 --seed 7 --size-scale 0.01   # extra simulator flags
#   in_ns some-client ...      # run a command inside the namespaces (trusts the CA)
#   "${APPLE_NSENTER[@]}" cmd & pid=$!   # the same, backgrounded: $! is cmd's own pid
# Variables set: APPLE_NS, APPLE_WORK, APPLE_CA (PEM), APPLE_NSENTER, SIM_PID, SIM_USER,
# SIM_PASS, SIM_CODE, SIM_ADMIN (URL of the simulator's /_sim/ API, reachable inside).

APPLE_HOSTS=(idmsa.apple.com setup.icloud.com www.icloud.com p01-ckdatabasews.icloud.com cvws.icloud-content.com)

# Cleanup on exit (registered by apple_net_setup); returns RC (default: the status it found).
apple_net_cleanup() {
  local rc=${1:-$?}
  set +e # a failing step must not skip the others
  if [ -n "${SIM_PID:-}" ]; then kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; fi
  if [ -n "${APPLE_NS:-}" ]; then
    # Stop anything still running in the namespace, then remove it.
    local pids
    pids=$(ip netns pids "$APPLE_NS" 2>/dev/null || true)
    [ -n "$pids" ] && kill $pids 2>/dev/null || true
    sleep 0.2
    pids=$(ip netns pids "$APPLE_NS" 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    ip netns del "$APPLE_NS" 2>/dev/null || true
    rm -rf "/etc/netns/$APPLE_NS"
  fi
  if [ -n "${APPLE_MNTNS_DIR:-}" ] && [ -d "$APPLE_MNTNS_DIR" ]; then
    # With no process left in it and its pinning bind mount gone, the mount namespace (and any
    # FUSE mount still in it) is released.
    umount "$APPLE_MNTNS_DIR/mnt" 2>/dev/null || umount -l "$APPLE_MNTNS_DIR/mnt" 2>/dev/null || true
    umount "$APPLE_MNTNS_DIR" 2>/dev/null || umount -l "$APPLE_MNTNS_DIR" 2>/dev/null || true
    rm -rf "$APPLE_MNTNS_DIR"
  fi
  if [ -n "${APPLE_WORK:-}" ] && [ -z "${KEEP_WORK:-}" ]; then rm -rf "$APPLE_WORK"; fi
  return $rc
}

apple_net_setup() {
  if [ "$(id -u)" != 0 ]; then echo "error: this needs root (network namespaces)" >&2; return 1; fi
  APPLE_NS="icloudsim-$$"
  APPLE_WORK=$(mktemp -d /tmp/icloudsim.XXXXXX)
  trap apple_net_cleanup EXIT
  trap 'exit 130' INT TERM
  local d="$APPLE_WORK/tls"
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=icloudpd-rs test CA" \
    -keyout "$d/ca.key" -out "$d/ca.pem" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  local san
  san=$(printf 'DNS:%s,' "${APPLE_HOSTS[@]}")
  san="${san}DNS:*.icloud.com,DNS:*.icloud-content.com,DNS:*.apple.com"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=idmsa.apple.com" -keyout "$d/server.key" \
    -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$san" > "$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" 2>/dev/null
  APPLE_CA="$d/ca.pem"
  # The client trusts the system store plus this CA (as with a TLS-inspecting proxy).
  cat /etc/ssl/certs/ca-certificates.crt "$APPLE_CA" > "$d/bundle.pem" 2>/dev/null || cp "$APPLE_CA" "$d/bundle.pem"

  ip netns add "$APPLE_NS"
  ip netns exec "$APPLE_NS" ip link set lo up
  mkdir -p "/etc/netns/$APPLE_NS"
  {
    echo "127.0.0.1 localhost"
    for h in "${APPLE_HOSTS[@]}"; do echo "127.0.0.1 $h"; done
  } > "/etc/netns/$APPLE_NS/hosts"

  # A persistent mount namespace (pinned by a bind mount of its ns file) whose /etc/hosts is the
  # one above. Mounts of the host propagate into it, not out of it.
  APPLE_MNTNS_DIR="/run/icloudsim-$$"
  mkdir -p "$APPLE_MNTNS_DIR"
  mount --bind "$APPLE_MNTNS_DIR" "$APPLE_MNTNS_DIR"
  mount --make-private "$APPLE_MNTNS_DIR"
  touch "$APPLE_MNTNS_DIR/mnt"
  unshare --mount="$APPLE_MNTNS_DIR/mnt" --propagation slave \
    mount --bind "/etc/netns/$APPLE_NS/hosts" /etc/hosts
  APPLE_NSENTER=(nsenter --net="/run/netns/$APPLE_NS" --mount="$APPLE_MNTNS_DIR/mnt" env
    SSL_CERT_FILE="$APPLE_WORK/tls/bundle.pem"
    REQUESTS_CA_BUNDLE="$APPLE_WORK/tls/bundle.pem"
    CURL_CA_BUNDLE="$APPLE_WORK/tls/bundle.pem")
}

# Run a command in the namespaces with the test CA trusted by Python requests, Go, curl and us.
in_ns() {
  "${APPLE_NSENTER[@]}" "$@"
}

# Run a PyInstaller-bundled client (PyPI's icloudpd) in the namespace. Some of its requests
# bypass REQUESTS_CA_BUNDLE and use the certifi bundle it unpacks into $TMPDIR/_MEI*/ at start,
# so the test CA is appended to that copy as soon as it appears (before the first request).
in_ns_bundled() {
  local tmp="$APPLE_WORK/pyi-tmp.$RANDOM" owner=$BASHPID
  mkdir -p "$tmp"
  (
    for _ in $(seq 1 3000); do
      kill -0 "$owner" 2>/dev/null || break
      for f in "$tmp"/_MEI*/certifi/cacert.pem; do
        if [ -f "$f" ] && ! grep -q "icloudpd-rs test CA" "$f.done" 2>/dev/null; then
          { echo; echo "# icloudpd-rs test CA"; cat "$APPLE_CA"; } >> "$f" && echo "icloudpd-rs test CA" > "$f.done"
        fi
      done
      sleep 0.01
    done
  ) &
  local watcher=$!
  local rc=0
  TMPDIR="$tmp" in_ns "$@" || rc=$?
  kill "$watcher" 2>/dev/null || true
  wait "$watcher" 2>/dev/null || true
  rm -rf "$tmp"
  return $rc
}

# Start the simulator on 127.0.0.1:443 in the namespace; extra arguments go to `sim`.
apple_sim_start() {
  local bin="${ICLOUDPD_RS_BIN:-${CARGO_TARGET_DIR:-target}/release/icloudpd-rs}"
  # nsenter starts the command in / (the namespace's root), not here.
  [[ $bin = /* ]] || bin="$PWD/$bin"
  local ready="$APPLE_WORK/sim.ready"
  "${APPLE_NSENTER[@]}" "$bin" sim --listen 127.0.0.1:443 \
    --tls-cert "$APPLE_WORK/tls/server.pem" --tls-key "$APPLE_WORK/tls/server.key" --apple-hosts \
    "$@" > "$ready" 2> "$APPLE_WORK/sim.log" &
  SIM_PID=$!
  local i
  for i in $(seq 1 300); do
    [ -s "$ready" ] && break
    if ! kill -0 "$SIM_PID" 2>/dev/null; then cat "$APPLE_WORK/sim.log" >&2; return 1; fi
    sleep 0.1
  done
  [ -s "$ready" ] || { echo "error: simulator did not start" >&2; return 1; }
  SIM_USER=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["username"])' "$ready")
  SIM_PASS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["password"])' "$ready")
  SIM_CODE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("two_factor_code",""))' "$ready")
  SIM_ADMIN="https://setup.icloud.com/_sim"
}

# GET a /_sim/ endpoint from inside the namespace.
sim_admin_get() {
  in_ns curl -fsS "$SIM_ADMIN/$1"
}

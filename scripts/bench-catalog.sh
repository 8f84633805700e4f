#!/usr/bin/env bash
# Catalog benchmark: `icloudpd-rs refresh` of a simulated library into a fresh catalog, against
# a plain loop of the same page requests in the same run, with peak memory, and an unchanged
# refresh. Targets (issue 4): 100k assets in < 10 s and within 1.5x of the plain loop; peak RSS
# < 100 MiB at 100k, growing < 20% from 10k to 100k; unchanged refresh < 0.5 s.
#
#   scripts/bench-catalog.sh [SIZES...]     # default: 10000 100000
#
# BENCH_LATENCY_MS (default 0) delays every simulator answer, as Apple's servers do (by far
# more): at 0 the plain loop is bound by the simulator's CPU, on the same two cores as the
# refresh, so the ratio measures the refresh's CPU; with a delay it measures the pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000 100000)
PARALLELISM=6
LATENCY=${BENCH_LATENCY_MS:-0}

cargo build --quiet --release --bin icloudpd-rs --example raw_pages
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release/icloudpd-rs
RAW=$TARGET/release/examples/raw_pages
WORK=$(mktemp -d)
SIM_PID=
source scripts/lib/page-reporting.sh
cleanup() { [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null; rm -rf "$WORK"; restore_freed_pages; }
trap cleanup EXIT
hold_freed_pages

field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

printf '| assets | refresh s | plain loop s | ratio | peak RSS MiB | unchanged refresh s |\n|---|---|---|---|---|---|\n' > "$WORK/table"
for n in "${SIZES[@]}"; do
  "$BIN" sim --assets "$n" --seed 2 --size-scale 0.001 --iterations 1000 --latency "$LATENCY" > "$WORK/ready" 2> "$WORK/sim.log" &
  SIM_PID=$!
  for _ in $(seq 1 200); do [ -s "$WORK/ready" ] && break; sleep 0.05; done
  ep=$(field "$WORK/ready" endpoint); user=$(field "$WORK/ready" username); pass=$(field "$WORK/ready" password)
  cookie=$(curl -fsS -X POST "$ep/_sim/session" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cookie"])')
  raw=$("$RAW" "$ep" "$cookie" "$PARALLELISM" | sed -n 's/^raw_s=//p')
  data="$WORK/data-$n"
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$BIN" refresh -u "$user" -p "$pass" --endpoint "$ep" --data-dir "$data" > /dev/null 2> "$WORK/refresh.log"
  read -r wall rss_kb < "$WORK/time"
  /usr/bin/time -f '%e' -o "$WORK/time2" "$BIN" refresh -u "$user" -p "$pass" --endpoint "$ep" --data-dir "$data" > /dev/null 2>> "$WORK/refresh.log"
  unchanged=$(cat "$WORK/time2")
  ratio=$(python3 -c "print(f'{$wall/$raw:.2f}')")
  rss=$(python3 -c "print(f'{$rss_kb/1024:.1f}')")
  echo "| $n | $wall | $raw | $ratio | $rss | $unchanged |" >> "$WORK/table"
  echo "$n $rss" >> "$WORK/rss"
  kill "$SIM_PID"; wait "$SIM_PID" 2>/dev/null || true; SIM_PID=
done
echo "simulator latency: $LATENCY ms per answer"
cat "$WORK/table"
if [ "$(wc -l < "$WORK/rss")" -ge 2 ]; then
  python3 - "$WORK/rss" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
(n0, r0), (n1, r1) = rows[0], rows[-1]
print(f"peak RSS growth {n0} -> {n1} assets: {100 * (float(r1) / float(r0) - 1):.0f}%")
PY
fi

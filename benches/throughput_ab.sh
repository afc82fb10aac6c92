#!/bin/bash
# Side-by-side A/B of two warren binaries on scripts/compare.sh scenarios
# (default s1, s3, s6a), runs alternating old/new so both see the same
# machine noise. Loadgen and broker share the machine's cores, as in
# PERF.md. Prints every run and the medians.
#
#   OLD=/path/to/old/warren NEW=target/release/warren ROUNDS=5 benches/throughput_ab.sh
#
# Needs `cargo build --release -p loadgen` (LOADGEN= to use another one).
set -u
cd "$(dirname "$0")/.."
OLD=${OLD:?set OLD to the baseline warren binary}
NEW=${NEW:-target/release/warren}
LOADGEN=${LOADGEN:-target/release/warren-loadgen}
ROUNDS=${ROUNDS:-5}
SCENARIOS=${SCENARIOS:-"s1 s3 s6a"}
OUT=${OUT:-/tmp/warren-ab}
rm -rf "$OUT"; mkdir -p "$OUT"
for ((i = 1; i <= ROUNDS; i++)); do
  for v in old new; do
    bin=$OLD; [[ $v == new ]] && bin=$NEW
    WORK=$OUT/$v WARREN=$bin LOADGEN=$LOADGEN APPEND=1 NO_PERF_UPDATE=1 RUNS=1 \
      DURATION=${DURATION:-5} WARMUP=${WARMUP:-1} DRAIN=${DRAIN:-20} BROKERS=warren \
      SCENARIOS="$SCENARIOS" scripts/compare.sh >/dev/null 2>>"$OUT/log"
  done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
out = sys.argv[1]
rows = {}
for v in ("old", "new"):
    for l in open(f"{out}/{v}/results.jsonl"):
        d = json.loads(l); r = d.get("results") or {}
        rows.setdefault((d["scenario"], v), []).append(
            (r.get("publish_rate"), r.get("consume_rate"), (r.get("latency") or {}).get("p50_us")))
for s in sorted({k[0] for k in rows}):
    for v in ("old", "new"):
        runs = rows.get((s, v), [])
        fmt = lambda x: "-" if x is None else f"{x/1000:.0f}k"
        print(f"{s} {v}: deliveries/s " + " ".join(fmt(r[1]) for r in runs)
              + f" | median {fmt(statistics.median([r[1] or 0 for r in runs]))}"
              + " | p50 latency ms " + " ".join("-" if r[2] is None else f"{r[2]/1000:.1f}" for r in runs))
PY

#!/usr/bin/env bash
# Anatomy of s1 runs (1 publisher, 1 consumer, 16 B, no-ack): for each run,
# where the publisher connection, the consumer connection and the queue
# landed (shard of each, from the management API while the run is going),
# the CPU time each broker shard thread and each load-generator thread used
# over the run (from /proc, in ms), and the run's publish and delivery
# rates. Shows whether a bad run (deliveries far below publishes) follows
# from placement or from how the OS shares the 2 cores.
#
#   benches/s1_anatomy.sh            # 6 runs of 5 s, 2 shards
#   RUNS=10 SHARDS=2 benches/s1_anatomy.sh
#   SIZE=16384 benches/s1_anatomy.sh   # s2b: 16 KiB bodies
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-6}
SHARDS=${SHARDS:-2}
DUR=${DUR:-5}
WARREN=${WARREN:-$ROOT/target/release/warren}
LOADGEN=${LOADGEN:-$ROOT/target/release/warren-loadgen}
EXTRA=${EXTRA:-}
PORT=5791
MPORT=15791
WORK=$(mktemp -d)
trap 'pkill -f "warren --port $PORT" 2>/dev/null || true; rm -rf "$WORK"' EXIT

cpu_ms() { # pid -> "tid:name:ms ..."
  local pid=$1 out=""
  for t in /proc/"$pid"/task/*; do
    local tid=${t##*/} name ticks
    name=$(tr ' ' '_' <"$t/comm")
    ticks=$(awk '{print $14+$15}' "$t/stat")
    out+="$tid:$name:$((ticks * 1000 / $(getconf CLK_TCK))) "
  done
  echo "$out"
}

for run in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/data"
  "$WARREN" --port $PORT --mgmt-port $MPORT --shards "$SHARDS" --data-dir "$WORK/data" $EXTRA \
    >"$WORK/broker.log" 2>&1 &
  bpid=$!
  for _ in $(seq 50); do curl -sf -u guest:guest localhost:$MPORT/api/overview >/dev/null && break; sleep 0.1; done
  "$LOADGEN" throughput --uri "amqp://guest:guest@127.0.0.1:$PORT/%2f" -x 1 -y 1 -s "${SIZE:-16}" \
    -z "$DUR" --warmup 1 --drain-timeout 5 --json >"$WORK/run.json" 2>"$WORK/lg.err" &
  lpid=$!
  sleep 1.5
  b0=$(cpu_ms $bpid); l0=$(cpu_ms $lpid)
  conns=$(curl -s -u guest:guest "localhost:$MPORT/api/connections" |
    python3 -c 'import json,sys
cs=json.load(sys.stdin); p=max(cs,key=lambda c:c["recv_oct"]); k=max(cs,key=lambda c:c["send_oct"])
print("pub:sh%d con:sh%d" % (p["shard"], k["shard"]))')
  queue=$(curl -s -u guest:guest "localhost:$MPORT/api/queues" |
    python3 -c 'import json,sys; print(" ".join("q:sh%d" % q["shard"] for q in json.load(sys.stdin)))')
  sleep "$((DUR - 1))"
  b1=$(cpu_ms $bpid); l1=$(cpu_ms $lpid)
  wait $lpid || true
  rates=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print("publish %.0fk/s consume %.0fk/s p50 %.1f ms" % (r["publish_rate"]/1e3, r["consume_rate"]/1e3, r["latency"]["p50_us"]/1e3))' "$WORK/run.json" 2>/dev/null || echo "no result: $(tail -1 "$WORK/lg.err")")
  diff=$(python3 - "$b0" "$b1" "$l0" "$l1" <<'EOF'
import sys
def parse(s): return {t.split(":")[0]: (t.split(":")[1], int(t.split(":")[2])) for t in s.split()}
out=[]
for a, b, who in ((sys.argv[1], sys.argv[2], "broker"), (sys.argv[3], sys.argv[4], "loadgen")):
    a, b = parse(a), parse(b)
    parts = ["%s=%d" % (b[t][0], b[t][1] - a.get(t, ("", 0))[1]) for t in b if b[t][1] - a.get(t, ("", 0))[1] > 20]
    out.append(who + "[" + " ".join(parts) + "]")
print(" ".join(out))
EOF
)
  echo "run $run: $conns $queue | $rates | cpu ms over $((DUR - 1))s: $diff"
  kill $bpid; wait $bpid 2>/dev/null || true
done

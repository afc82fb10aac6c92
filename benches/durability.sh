#!/usr/bin/env bash
# Durability benchmarks (issue 3): persistent publish with confirms, the
# broker's resident memory while it holds a large persistent backlog, and
# the time to recover that backlog after kill -9.
#
#   benches/durability.sh [BACKLOG_MESSAGES]   (default 1000000)
#   SECS=40 benches/durability.sh 5000000      (publish the backlog over 40 s)
#
# Prints one line per measurement; PERF.md quotes its output.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
SHARDS=${SHARDS:-2}
cargo build --release --bin warren && cargo build --release -p loadgen
W=target/release/warren
LG=target/release/warren-loadgen
DIR=$(mktemp -d /tmp/warren-dur.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT

start() {
    local t0 t1
    : > "$DIR/out"
    t0=$(date +%s.%N)
    "$W" --bind 127.0.0.1 --port 0 --mgmt-port 0 --mgmt-bind 127.0.0.1 --shards "$SHARDS" \
        --data-dir "$DIR/data" > "$DIR/out" 2> "$DIR/err" &
    PID=$!
    until [ "$(wc -l < "$DIR/out")" -ge 2 ]; do sleep 0.01; done
    t1=$(date +%s.%N)
    PORT=$(head -1 "$DIR/out" | grep -o '[0-9]*$')
    MPORT=$(sed -n 2p "$DIR/out" | grep -o '[0-9]*$')
    STARTUP=$(echo "$t1 - $t0" | bc)
}
rss_mib() { echo $(( $(grep VmRSS /proc/"$PID"/status | awk '{print $2}') / 1024 )); }
queued() {
    curl -s -u guest:guest "127.0.0.1:$MPORT/api/queues?columns=messages" |
        python3 -c 'import json,sys; print(sum(q["messages"] for q in json.load(sys.stdin)))'
}

start
URI="amqp://guest:guest@127.0.0.1:$PORT/%2f"
echo "== persistent 1 KiB, confirms 256 in flight, prefetch 1000, ack every 100, 2 pub / 2 cons"
"$LG" throughput --uri "$URI" -x 2 -y 2 --queues 2 -s 1024 -p -c 256 -q 1000 -a 100 -z 10 2>&1 |
    grep -E "^publish|^confirm latency|^checks|^confirmed|^loadgen CPU" || true

echo "== backlog: publishing $N persistent 1 KiB messages with confirms, no consumers"
# Two publishers at a fixed rate for SECS seconds (default 20). If the broker
# cannot sustain N/SECS msg/s with confirms, fewer than N are published (the
# line below says how many are held): raise SECS, e.g. SECS=40 for 5M.
SECS=${SECS:-20}
RATE=$(( N / SECS / 2 + 1 ))
"$LG" throughput --uri "$URI" -x 2 -y 0 --queues 2 -s 1024 -p -c 256 -r "$RATE" -z "$SECS" --warmup 0 --keep \
    --queue-pattern "backlog-%d" 2>&1 | grep -E "^publish|checks" || true
sleep 6   # let the sync task shed cold pages
HELD=$(queued)
echo "backlog held: $HELD messages; broker RSS $(rss_mib) MiB; store $(du -sm "$DIR/data" | cut -f1) MiB on disk"

kill -9 "$PID"; wait "$PID" 2>/dev/null || true
start
echo "recovery after kill -9: ready in ${STARTUP}s; messages back: $(queued) (held before: $HELD); RSS $(rss_mib) MiB"

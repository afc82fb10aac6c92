#!/usr/bin/env bash
# How fast the management API lists many queues: QUEUES transient queues
# are declared on Warren (2 shards) and on RabbitMQ (a private node started
# by scripts/compare.sh), then GET /api/queues?page=1&page_size=100 (one
# UI page) and GET /api/queues (everything) are timed RUNS times each,
# interleaved Warren, RabbitMQ, Warren, ... Prints every run and the medians
# (seconds); the numbers go to PERF.md.
#
#   QUEUES=10000 RUNS=7 scripts/listing-bench.sh
#
# Needs: python3 with pika, curl, rabbitmq-server (apt).
set -euo pipefail
cd "$(dirname "$0")/.."
QUEUES=${QUEUES:-10000}
RUNS=${RUNS:-7}
WORK=${WORK:-/tmp/warren-listing-bench}
rm -rf "$WORK" && mkdir -p "$WORK"
cargo build --release --quiet --bin warren

target/release/warren --bind 127.0.0.1 --port 5693 --mgmt-port 15693 --mgmt-bind 127.0.0.1 \
    --shards 2 --data-dir "$WORK/data" >"$WORK/warren.out" 2>"$WORK/warren.err" &
pid=$!
export RABBIT_MGMT_PORT=15694 BROKERS=rabbitmq WORK
rabbit_uri=$(scripts/compare.sh start rabbitmq | tail -1)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; scripts/compare.sh stop rabbitmq >/dev/null 2>&1 || true' EXIT
rabbit_port=$(sed -n 's/.*:\([0-9]*\)\/.*/\1/p' <<<"$rabbit_uri")
for _ in $(seq 1 100); do grep -q "management listening" "$WORK/warren.out" 2>/dev/null && break; sleep 0.1; done

declare_queues() {
    python3 - "$1" "$QUEUES" <<'PY'
import sys, pika
c = pika.BlockingConnection(pika.ConnectionParameters(host="127.0.0.1", port=int(sys.argv[1])))
ch = c.channel()
for i in range(int(sys.argv[2])):
    ch.queue_declare("lq.%06d" % i)
c.close()
PY
}
declare_queues 5693
declare_queues "$rabbit_port"
sleep 6 # RabbitMQ's statistics arrive every 5 s

time_get() { curl -s -o /dev/null -w "%{time_total}" -u guest:guest "http://127.0.0.1:$1$2"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A t
for run in $(seq 1 "$RUNS"); do
    for b in warren:15693 rabbitmq:15694; do
        name=${b%%:*} port=${b##*:}
        page=$(time_get "$port" "/api/queues?page=1&page_size=100")
        all=$(time_get "$port" "/api/queues")
        echo "run $run $name page=${page}s all=${all}s"
        t[$name.page]+="$page "
        t[$name.all]+="$all "
    done
done
for k in warren.page rabbitmq.page warren.all rabbitmq.all; do
    echo "median $k: $(tr ' ' '\n' <<<"${t[$k]}" | grep . | median)s"
done

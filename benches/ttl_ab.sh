#!/bin/bash
# What a queue TTL costs: s1 (16 B, 1 publisher, 1 consumer, no-ack) on one
# warren binary with and without `x-message-ttl` (10 min, so nothing
# expires), runs alternating, 2 shards, loadgen and broker on the same cores.
#
#   ROUNDS=5 benches/ttl_ab.sh        # needs cargo build --release --bins -p loadgen
set -u
cd "$(dirname "$0")/.."
W=${WARREN:-target/release/warren}
LG=${LOADGEN:-target/release/warren-loadgen}
D=$(mktemp -d)
"$W" --bind 127.0.0.1 --port 5791 --no-mgmt --shards 2 --data-dir "$D" >"$D/out.log" 2>&1 &
P=$!
sleep 1.5
for ((i = 1; i <= ${ROUNDS:-5}; i++)); do
  for v in plain ttl; do
    extra=(); [[ $v == ttl ]] && extra=(--message-ttl 600000)
    r=$("$LG" throughput --uri amqp://guest:guest@127.0.0.1:5791/%2f -x 1 -y 1 -s 16 -z 5 --warmup 1 \
        --drain-timeout 20 --json "${extra[@]}" 2>/dev/null \
        | python3 -c 'import json,sys; d=json.load(sys.stdin)["results"]; print("%.0f %.0f" % (d["publish_rate"], d["consume_rate"]))')
    echo "run $i $v: publish/deliver msg/s $r"
  done
done
kill $P; wait $P 2>/dev/null; rm -rf "$D"

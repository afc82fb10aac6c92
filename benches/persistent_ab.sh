#!/bin/bash
# Side-by-side A/B of two warren binaries (OLD=..., NEW=...) on persistent
# 1 KiB messages with confirms (256 in flight), 2 publishers / 2 consumers,
# 2 shards, 10 s per run, runs alternating. Needs `cargo build --release -p loadgen`.
# persistent 1 KiB, confirms 256 in flight, 2 pub / 2 cons, 10 s; old vs new alternating
LG=${LG:-target/release/warren-loadgen}
for run in ${RUNS:-1 2 3 4 5}; do
 for b in old new; do
  if [ $b = old ]; then W=${OLD:?set OLD to the baseline binary}; else W=${NEW:-target/release/warren}; fi
  rm -rf /tmp/pb; mkdir -p /tmp/pb
  $W --bind 127.0.0.1 --port 5790 --mgmt-port 0 --mgmt-bind 127.0.0.1 --shards 2 --data-dir /tmp/pb > /tmp/pb.out 2>/tmp/pb.err &
  P=$!; sleep 1.5
  R=$($LG throughput --uri amqp://guest:guest@127.0.0.1:5790/%2f -x 2 -y 2 --queues 2 -s 1024 -p -c 256 -q 1000 -a 100 -z 10 2>&1 | grep -E "^publish|^confirm latency" | tr '\n' ' ')
  echo "run $run $b: $R"
  kill $P; wait $P 2>/dev/null
 done
done

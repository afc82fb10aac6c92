#!/usr/bin/env bash
# What TLS costs: s1 (16 B) and s2a (1 KiB), one publisher and one
# consumer, against one Warren over plain AMQP and over AMQPS, runs
# interleaved (plain, TLS, plain, TLS, ...) so both see the same machine.
# Prints each run and the medians; the numbers go to PERF.md.
#
#   RUNS=5 DURATION=5 scripts/tls-bench.sh
#
# Needs: openssl (certificates are made in $WORK), cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-5}
WORK=${WORK:-/tmp/warren-tls-bench}
PORT=${PORT:-5692}
TLS_PORT=${TLS_PORT:-5691}
rm -rf "$WORK" && mkdir -p "$WORK"

# A CA and a server certificate for 127.0.0.1 signed by it.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" \
    -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$WORK/ext.cnf"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/ext.cnf" -out "$WORK/server.pem" 2>/dev/null

cargo build --release --quiet --bin warren
cargo build --release --quiet -p loadgen
target/release/warren --bind 127.0.0.1 --port "$PORT" --no-mgmt \
    --tls-port "$TLS_PORT" --tls-cert-file "$WORK/server.pem" --tls-key-file "$WORK/server.key" \
    --data-dir "$WORK/data" >"$WORK/warren.out" 2>"$WORK/warren.err" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q amqps "$WORK/warren.out" 2>/dev/null && break; sleep 0.1; done

lg=target/release/warren-loadgen
declare -A results
for run in $(seq 1 "$RUNS"); do
    for scenario in s1 s2a; do
        size=16; [[ $scenario == s2a ]] && size=1024
        for mode in plain tls; do
            if [[ $mode == plain ]]; then
                uri="amqp://guest:guest@127.0.0.1:$PORT/%2f"; extra=()
            else
                uri="amqps://guest:guest@127.0.0.1:$TLS_PORT/%2f"; extra=(--cacert "$WORK/ca.pem")
            fi
            json=$("$lg" throughput --uri "$uri" "${extra[@]}" -x 1 -y 1 -s "$size" \
                -z "$DURATION" --warmup 1 --drain-timeout 20 --json 2>/dev/null | tail -1)
            deliver=$(python3 -c 'import json,sys; j=json.loads(sys.argv[1])["results"]; print(int(j["consume_rate"]))' "$json")
            publish=$(python3 -c 'import json,sys; j=json.loads(sys.argv[1])["results"]; print(int(j["publish_rate"]))' "$json")
            echo "run $run $scenario $mode: publish $publish/s deliver $deliver/s"
            results[$scenario.$mode]+="$deliver "
        done
    done
done
for scenario in s1 s2a; do
    p=$(python3 -c 'import statistics,sys; print(int(statistics.median(map(int,sys.argv[1].split()))))' "${results[$scenario.plain]}")
    t=$(python3 -c 'import statistics,sys; print(int(statistics.median(map(int,sys.argv[1].split()))))' "${results[$scenario.tls]}")
    python3 -c 'import sys; p,t=int(sys.argv[2]),int(sys.argv[3]); print("%s median deliveries/s: plain %d, tls %d (tls/plain %.2f)" % (sys.argv[1],p,t,t/p))' "$scenario" "$p" "$t"
done

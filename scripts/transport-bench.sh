#!/usr/bin/env bash
# What the transport costs: s1 (16 B) and s2a (1 KiB), one publisher and
# one consumer, against one Warren over plain TCP, over TLS (AMQPS) and
# over its Unix domain socket, runs interleaved (tcp, tls, unix, tcp, ...)
# so all three see the same machine. Prints each run and the medians; the
# numbers go to PERF.md.
#
#   RUNS=5 DURATION=5 scripts/transport-bench.sh
#
# Needs: openssl (certificates are made in $WORK), cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-5}
WORK=${WORK:-/tmp/warren-transport-bench}
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
    --unix-socket "$WORK/amqp.sock" --data-dir "$WORK/data" >"$WORK/warren.out" 2>"$WORK/warren.err" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q "unix socket" "$WORK/warren.out" 2>/dev/null && break; sleep 0.1; done

lg=target/release/warren-loadgen
declare -A results
for run in $(seq 1 "$RUNS"); do
    for scenario in s1 s2a; do
        size=16; [[ $scenario == s2a ]] && size=1024
        for mode in tcp tls unix; do
            case $mode in
            tcp) uri="amqp://guest:guest@127.0.0.1:$PORT/%2f"; extra=() ;;
            tls) uri="amqps://guest:guest@127.0.0.1:$TLS_PORT/%2f"; extra=(--cacert "$WORK/ca.pem") ;;
            unix) uri="amqp://guest:guest@127.0.0.1:$PORT/%2f"; extra=(--unix "$WORK/amqp.sock") ;;
            esac
            json=$("$lg" throughput --uri "$uri" "${extra[@]}" -x 1 -y 1 -s "$size" \
                -z "$DURATION" --warmup 1 --drain-timeout 20 --json 2>/dev/null | tail -1)
            deliver=$(python3 -c 'import json,sys; j=json.loads(sys.argv[1])["results"]; print(int(j["consume_rate"]))' "$json")
            publish=$(python3 -c 'import json,sys; j=json.loads(sys.argv[1])["results"]; print(int(j["publish_rate"]))' "$json")
            echo "run $run $scenario $mode: publish $publish/s deliver $deliver/s"
            results[$scenario.$mode]+="$deliver "
        done
    done
done
median() { python3 -c 'import statistics,sys; print(int(statistics.median(map(int,sys.argv[1].split()))))' "$1"; }
for scenario in s1 s2a; do
    p=$(median "${results[$scenario.tcp]}")
    t=$(median "${results[$scenario.tls]}")
    u=$(median "${results[$scenario.unix]}")
    python3 -c 'import sys; n,p,t,u=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4]); print("%s median deliveries/s: tcp %d, tls %d (%.2fx tcp), unix %d (%.2fx tcp)" % (n,p,t,t/p,u,u/p))' "$scenario" "$p" "$t" "$u"
done

#!/usr/bin/env bash
# What the transport costs: s1 (16 B) and s2a (1 KiB) throughput, and s5a
# / s5b latency (256 B at a fixed 1k / 10k msg/s), one publisher and one
# consumer, against one Warren over plain TCP, over TLS (AMQPS) and over its
# Unix domain socket, runs interleaved (tcp, tls, unix, tcp, ...) so all
# three see the same machine. Prints each run and the medians; the numbers
# go to PERF.md.
#
#   RUNS=5 DURATION=5 scripts/transport-bench.sh
#   SCENARIOS="s5a s5b" MODES="tcp unix" RUNS=5 scripts/transport-bench.sh
#
# Needs: openssl (certificates are made in $WORK), cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
SCENARIOS=${SCENARIOS:-"s1 s2a"}
MODES=${MODES:-"tcp tls unix"}
SHARDS=${SHARDS:-2}
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
target/release/warren --shards "$SHARDS" --bind 127.0.0.1 --port "$PORT" --no-mgmt \
    --tls-port "$TLS_PORT" --tls-cert-file "$WORK/server.pem" --tls-key-file "$WORK/server.key" \
    --unix-socket "$WORK/amqp.sock" --data-dir "$WORK/data" >"$WORK/warren.out" 2>"$WORK/warren.err" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q "unix socket" "$WORK/warren.out" 2>/dev/null && break; sleep 0.1; done

lg=target/release/warren-loadgen
declare -A results
for run in $(seq 1 "$RUNS"); do
    for scenario in $SCENARIOS; do
        case $scenario in
        s1) what=(throughput -s 16) ;;
        s2a) what=(throughput -s 1024) ;;
        s5a) what=(latency -s 256 -r 1000) ;;
        s5b) what=(latency -s 256 -r 10000) ;;
        *) echo "unknown scenario $scenario" >&2; exit 2 ;;
        esac
        for mode in $MODES; do
            case $mode in
            tcp) uri="amqp://guest:guest@127.0.0.1:$PORT/%2f"; extra=() ;;
            tls) uri="amqps://guest:guest@127.0.0.1:$TLS_PORT/%2f"; extra=(--cacert "$WORK/ca.pem") ;;
            unix) uri="amqp://guest:guest@127.0.0.1:$PORT/%2f"; extra=(--unix "$WORK/amqp.sock") ;;
            esac
            json=$("$lg" "${what[@]}" --uri "$uri" "${extra[@]}" -x 1 -y 1 \
                -z "$DURATION" --warmup 1 --drain-timeout 20 --json 2>/dev/null | tail -1)
            # Throughput: deliveries/s. Latency: p50 and p99 in us, and the
            # loadgen's own lag behind its schedule at p99 (it shares the cores).
            line=$(python3 -c '
import json, sys
j = json.loads(sys.argv[1])["results"]
if sys.argv[2] == "throughput":
    print("%d publish %d/s deliver %d/s" % (j["consume_rate"], j["publish_rate"], j["consume_rate"]))
else:
    lag = (j.get("publisher_lag") or {}).get("p99_us")
    print("%d p50 %d us p99 %d us (loadgen lag p99 %s us)" % (j["latency"]["p50_us"], j["latency"]["p50_us"], j["latency"]["p99_us"], "-" if lag is None else int(lag)))
' "$json" "${what[0]}")
            echo "run $run $scenario $mode: ${line#* }"
            results[$scenario.$mode]+="${line%% *} "
            [[ ${what[0]} == latency ]] && results[$scenario.$mode.p99]+="$(sed 's/.* p99 \([0-9]*\) us (loadgen.*/\1/' <<<"$line") "
        done
    done
done
median() { python3 -c 'import statistics,sys; print(int(statistics.median(map(int,sys.argv[1].split()))))' "$1"; }
for scenario in $SCENARIOS; do
    out="$scenario medians:"
    for mode in $MODES; do
        if [[ -n ${results[$scenario.$mode.p99]:-} ]]; then
            out+=" $mode p50 $(median "${results[$scenario.$mode]}") us p99 $(median "${results[$scenario.$mode.p99]}") us;"
        else
            out+=" $mode $(median "${results[$scenario.$mode]}") deliveries/s;"
        fi
    done
    echo "$out"
done

#!/usr/bin/env bash
# Side-by-side comparison of Warren, RabbitMQ and garagemq with warren-loadgen.
#
#   scripts/compare.sh                 # all brokers, all scenarios, 3 runs each
#   RUNS=1 DURATION=5 scripts/compare.sh
#   BROKERS="warren rabbitmq" SCENARIOS="s1 s5" scripts/compare.sh
#   scripts/compare.sh start rabbitmq  # just start one (prints its URI); `stop` to stop
#   scripts/compare.sh table [results.jsonl]  # redo the PERF.md table from saved results
#   RUN_TIMEOUT=1800 SCENARIOS=s11 ...  # seconds one loadgen run may take (s11's 10M backlog)
#   SHARDS=1 WARREN_ARGS="--no-pin" ...  # Warren's shard count and extra options
#
# Each broker runs on a private port and data directory under $WORK, is
# started fresh for every scenario (for every run in the s7 memory scenarios)
# and stopped afterwards. Results: one JSON
# line per run in $WORK/results.jsonl; medians go into PERF.md between the
# compare markers (set NO_PERF_UPDATE=1 to leave PERF.md alone).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/warren-compare}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
DRAIN=${DRAIN:-20}
SHARDS=${SHARDS:-$(nproc)}
BROKERS=${BROKERS:-"warren rabbitmq garagemq"}
SCENARIOS=${SCENARIOS:-"s1 s2a s2b s2c s3 s4 s5a s5b s5c s6a s6b s7a s7b s8"}
LOADGEN=${LOADGEN:-"$ROOT/target/release/warren-loadgen"}
WARREN=${WARREN:-"$ROOT/target/release/warren"}
RABBIT_PORT=${RABBIT_PORT:-5682}
GARAGE_PORT=${GARAGE_PORT:-5683}

mkdir -p "$WORK"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

log() { echo "[compare $(date +%H:%M:%S)] $*" >&2; }

ensure_tools() {
  if [[ ! -x $LOADGEN || ! -x $WARREN || ${REBUILD:-0} == 1 ]]; then
    (cd "$ROOT" && cargo build --release --bin warren && cargo build --release -p loadgen) >&2 || exit 1
  fi
  for b in $BROKERS; do
    case $b in
      rabbitmq)
        if [[ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
          log "installing rabbitmq-server"
          apt-get update -qq >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server >&2
          # The package may start a system instance on 5672; we use our own.
        fi ;;
      garagemq)
        if [[ ! -x /usr/bin/garagemq ]]; then
          if apt-cache policy garagemq 2>/dev/null | grep -q Candidate:.*[0-9]; then
            log "installing garagemq"
            DEBIAN_FRONTEND=noninteractive apt-get install -y garagemq >&2
          else
            log "garagemq is not in the configured apt repositories: skipping it"
          fi
        fi ;;
    esac
  done
}

wait_port() { # port timeout
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# ---- per-broker start/stop; each prints the URI on stdout ----

start_warren() {
  local d=$WORK/warren; rm -rf "$d"; mkdir -p "$d"
  local extra=()
  # Keep the management listener (0.0.0.0:15672 by default) out of the way.
  "$WARREN" --help 2>/dev/null | grep -q -- --no-mgmt && extra+=(--no-mgmt)
  : >"$d/out.log"
  # WARREN_ARGS: more options for Warren (e.g. "--no-pin"), split on spaces.
  # shellcheck disable=SC2206
  extra+=(${WARREN_ARGS:-})
  "$WARREN" --port 0 --shards "$SHARDS" --bind 127.0.0.1 --data-dir "$d/data" "${extra[@]}" >"$d/out.log" 2>&1 &
  echo $! >"$d/pid"
  local i port=""
  for ((i = 0; i < 100; i++)); do
    port=$(sed -n 's/.*warren listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$d/out.log" | head -1)
    [[ -n $port ]] && break
    sleep 0.1
  done
  [[ -n $port ]] || { log "warren did not start"; cat "$d/out.log" >&2; return 1; }
  echo "amqp://guest:guest@127.0.0.1:$port/%2f"
}
stop_warren() {
  local d=$WORK/warren
  [[ -f $d/pid ]] && kill "$(cat "$d/pid")" 2>/dev/null
  sleep 0.5; [[ -f $d/pid ]] && kill -9 "$(cat "$d/pid")" 2>/dev/null; rm -f "$d/pid"
}

rabbit_env() {
  local d=$WORK/rabbitmq
  export HOME=$d/home RABBITMQ_NODENAME=warrencmp@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT=$RABBIT_PORT RABBITMQ_DIST_PORT=$((RABBIT_PORT + 20000)) \
    RABBITMQ_MNESIA_BASE=$d/mnesia RABBITMQ_LOG_BASE=$d/log RABBITMQ_PID_FILE=$d/pid \
    RABBITMQ_CONF_ENV_FILE=$d/rabbitmq-env.conf RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf \
    RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    RABBITMQ_ADVANCED_CONFIG_FILE=$d/advanced.config
}
start_rabbitmq() {
  local d=$WORK/rabbitmq; rm -rf "$d"; mkdir -p "$d/home" "$d/log"
  : >"$d/rabbitmq-env.conf"
  printf 'loopback_users = none\nlisteners.tcp.default = 127.0.0.1:%s\n' "$RABBIT_PORT" >"$d/rabbitmq.conf"
  echo '[].' >"$d/enabled_plugins"; echo '[].' >"$d/advanced.config"
  # RABBIT_MGMT_PORT=15682 also starts the management plugin there, to ask
  # the reference what the HTTP API answers.
  if [ -n "${RABBIT_MGMT_PORT:-}" ]; then
    echo '[rabbitmq_management].' >"$d/enabled_plugins"
    printf 'management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %s\n' "$RABBIT_MGMT_PORT" >>"$d/rabbitmq.conf"
  fi
  ( rabbit_env; /usr/lib/rabbitmq/bin/rabbitmq-server >"$d/out.log" 2>&1 & echo $! >"$d/launcher.pid" )
  ( rabbit_env; timeout 90 /usr/lib/rabbitmq/bin/rabbitmqctl -q wait "$d/pid" >/dev/null 2>&1 ) || {
    log "rabbitmq did not start"; tail -20 "$d/out.log" >&2; return 1; }
  wait_port "$RABBIT_PORT" 30 || return 1
  echo "amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f"
}
stop_rabbitmq() {
  local d=$WORK/rabbitmq
  ( rabbit_env; timeout 60 /usr/lib/rabbitmq/bin/rabbitmqctl -q stop "$d/pid" >/dev/null 2>&1 )
  [[ -f $d/pid ]] && kill -9 "$(cat "$d/pid")" 2>/dev/null
  rm -f "$d/pid"
}

start_garagemq() {
  [[ -x /usr/bin/garagemq ]] || return 1
  local d=$WORK/garagemq; rm -rf "$d"; mkdir -p "$d/db"
  cat >"$d/config.yaml" <<EOF
proto: amqp-rabbit
users:
  - username: guest
    password: 084e0343a0486ff05530df6c705c8bb4
tcp:
  ip: 127.0.0.1
  port: $GARAGE_PORT
  nodelay: false
  readBufSize: 196608
  writeBufSize: 196608
admin:
  ip: 127.0.0.1
  port: $((GARAGE_PORT + 10000))
queue:
  shardSize: 8192
  maxMessagesInRam: 131072
db:
  defaultPath: $d/db
  engine: badger
vhost:
  defaultPath: /
security:
  passwordCheck: md5
connection:
  channelsMax: 4096
  frameMaxSize: 65536
EOF
  (cd "$d" && exec /usr/bin/garagemq --config "$d/config.yaml" --log-level error >"$d/out.log" 2>&1) &
  echo $! >"$d/pid"
  wait_port "$GARAGE_PORT" 30 || { log "garagemq did not start"; tail "$d/out.log" >&2; return 1; }
  echo "amqp://guest:guest@127.0.0.1:$GARAGE_PORT/%2f"
}
stop_garagemq() {
  local d=$WORK/garagemq
  [[ -f $d/pid ]] && kill "$(cat "$d/pid")" 2>/dev/null
  sleep 0.5; [[ -f $d/pid ]] && kill -9 "$(cat "$d/pid")" 2>/dev/null; rm -f "$d/pid"
}

# ---- scenarios: name -> loadgen arguments ----
scenario_args() {
  local T="-z $DURATION --warmup $WARMUP --drain-timeout $DRAIN"
  case $1 in
    s1) echo "throughput $T -x 1 -y 1 -s 16" ;;
    s1p) echo "throughput $T -x 1 -y 1 -s 16 --max-priority 10" ;;
    s1t) echo "throughput $T -x 1 -y 1 -s 16 --message-ttl 600000" ;;
    s2a) echo "throughput $T -x 1 -y 1 -s 1024" ;;
    s2b) echo "throughput $T -x 1 -y 1 -s 16384" ;;
    s2c) echo "throughput $T -x 1 -y 1 -s 1048576" ;;
    s3) echo "throughput $T -x 4 -y 4 --queues 4 -s 16" ;;
    s4) echo "throughput $T -x 1 -y 1 -s 1024 -p -c 256 -q 1000 -a 100" ;;
    s5a) echo "latency $T -x 1 -y 1 -s 256 -r 1000" ;;
    s5b) echo "latency $T -x 1 -y 1 -s 256 -r 10000" ;;
    s5c) echo "latency $T -x 1 -y 1 -s 256 -r 50000" ;;
    # The same with the queue declared client-local by the consumer's
    # connection (Warren places it on that connection's shard).
    s5al) echo "latency $T -x 1 -y 1 -s 256 -r 1000 --queue-locator client-local" ;;
    s5bl) echo "latency $T -x 1 -y 1 -s 256 -r 10000 --queue-locator client-local" ;;
    s5cl) echo "latency $T -x 1 -y 1 -s 256 -r 50000 --queue-locator client-local" ;;
    s6a) echo "throughput $T -x 1 -y 10 --queues 10 --fanout -s 64" ;;
    s6b) echo "throughput $T -x 1 -y 10 --queues 10 --topic-bindings 1000 -s 64" ;;
    s7a) echo "connections -n 1000 --hold 3" ;;
    s7b) echo "connections -n 10000 --hold 5" ;;
    s8) echo "churn -z $DURATION" ;;
    s9a) echo "rpc -z $DURATION --warmup $WARMUP -x 1 -y 1 -s 64" ;;
    s9b) echo "rpc -z $DURATION --warmup $WARMUP -x 16 -y 1 -s 64" ;;
    s10) echo "dead-letter --messages 1000000 -s 16 -q 1000 -a 100" ;;
    s10p) echo "dead-letter --messages 200000 -s 16 -q 1000 -a 100 -p" ;;
    s11) echo "backlog --messages ${BACKLOG_MESSAGES:-10000000} -s 1024 -c 256 --drain-timeout $DRAIN" ;;
    *) log "unknown scenario $1"; return 1 ;;
  esac
}

run_all() {
  ensure_tools
  local out=$WORK/results.jsonl
  [[ ${APPEND:-0} == 1 ]] || : >"$out"
  for b in $BROKERS; do
    [[ $b == garagemq && ! -x /usr/bin/garagemq ]] && continue
    for s in $SCENARIOS; do
      local args; args=$(scenario_args "$s") || continue
      # Memory scenarios (s7*) get a fresh broker for every run: a broker
      # that already held 10,000 connections reuses that memory, and the
      # second and third runs would measure (almost) no growth.
      local fresh=0; [[ $s == s7* || ${FRESH:-0} == 1 ]] && fresh=1
      local uri
      for ((r = 1; r <= RUNS; r++)); do
        if ((r == 1 || fresh)); then
          log "$b: starting for $s"
          uri=$(start_"$b") || { stop_"$b"; continue 2; }
          sleep 1
        fi
        log "$b $s run $r/$RUNS: warren-loadgen $args"
        # shellcheck disable=SC2086
        local line; line=$(timeout "${RUN_TIMEOUT:-$((DURATION + WARMUP + DRAIN + 120))}" "$LOADGEN" $args --uri "$uri" --json --label "$b" 2>"$WORK/$b-$s-$r.log")
        local rc=$?
        tail -4 "$WORK/$b-$s-$r.log" >&2
        if [[ -n $line ]]; then
          python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["broker_name"]=sys.argv[2]; d["scenario"]=sys.argv[3]; d["run"]=int(sys.argv[4]); d["exit"]=int(sys.argv[5]); print(json.dumps(d))' \
            "$line" "$b" "$s" "$r" "$rc" >>"$out"
        else
          echo "{\"broker_name\":\"$b\",\"scenario\":\"$s\",\"run\":$r,\"exit\":$rc,\"results\":null}" >>"$out"
        fi
        if ((fresh && r < RUNS)); then stop_"$b"; sleep 1; fi
      done
      stop_"$b"
      sleep 1
    done
  done
  [[ ${NO_PERF_UPDATE:-0} == 1 ]] || make_table "$out" "$ROOT/PERF.md"
}

# ---- medians -> markdown table in PERF.md ----
make_table() {
  python3 - "$1" "$2" <<'PY'
import json, statistics, sys, os, datetime
res, perf = sys.argv[1], sys.argv[2]
runs = [json.loads(l) for l in open(res) if l.strip()]
by = {}
for r in runs:
    by.setdefault((r["scenario"], r["broker_name"]), []).append(r)
def med(s, b, f):
    vals = []
    for r in by.get((s, b), []):
        x = r.get("results")
        if not x: continue
        try: v = f(x)
        except (KeyError, TypeError): v = None
        if v is not None: vals.append(v)
    return statistics.median(vals) if vals else None
def issues(s, b):
    out = []
    for r in by.get((s, b), []):
        x = r.get("results") or {}
        if r.get("exit", 0) != 0: out.append("exit %d" % r["exit"])
        for k in ("missing", "duplicated", "reordered", "lost_confirmed", "dropped"):
            if x.get(k): out.append("%s %s" % (k, x[k]))
        if x.get("error"): out.append(str(x["error"])[:80])
        if x.get("drained") is False: out.append("not drained")
        if (r.get("params") or {}).get("confirm") and x.get("confirmed", 0) < x.get("published", 0):
            out.append("unconfirmed %d of %d" % (x["published"] - x["confirmed"], x["published"]))
    return sorted(set(out))
brokers = [b for b in ("warren", "rabbitmq", "garagemq") if any(k[1] == b for k in by)]
rate = lambda x: x["consume_rate"]
p99 = lambda x: x["latency"]["p99_us"]
p50 = lambda x: x["latency"]["p50_us"]
cp99 = lambda x: x["confirm_latency"]["p99_us"]
lag99 = lambda x: x["publisher_lag"]["p99_us"]
rss = lambda x: (x["broker_rss_after_bytes"] - x["broker_rss_before_bytes"]) / 1048576
# (scenario, label, getter, unit, higher_is_better, target ratio to RabbitMQ
# or None, absolute target (op, value) or None). The targets are issue 14's
# goals (and, for s2a/s6a/s6b, the 5x of the first performance issue).
rows = [
  ("s1", "1 pub/1 cons, 16 B, no-ack: deliveries/s", rate, "msg/s", True, None, (">=", 2e6)),
  ("s2a", "1 pub/1 cons, 1 KiB: deliveries/s", rate, "msg/s", True, 5, None),
  ("s2b", "1 pub/1 cons, 16 KiB: deliveries/s", rate, "msg/s", True, 3, None),
  ("s2c", "1 pub/1 cons, 1 MiB: deliveries/s", rate, "msg/s", True, 3, None),
  ("s3", "4 pubs/4 cons/4 queues, 16 B: deliveries/s", rate, "msg/s", True, 5, None),
  ("s4", "persistent 1 KiB, confirms 256, qos 1000, ack/100: deliveries/s", rate, "msg/s", True, 5, None),
  ("s4", "persistent 1 KiB: confirm latency p99", cp99, "us", False, 3, None),
] + [
  # Latency at fixed rates (256 B): p99 and p50 against issue 14's goals, and
  # the loadgen's own lag; the *l variants declare the queue client-local.
  row
  for (s, what) in (("s5a", "@1k msg/s"), ("s5b", "@10k msg/s"), ("s5c", "@50k msg/s"),
                    ("s5al", "@1k msg/s, queue client-local"), ("s5bl", "@10k msg/s, queue client-local"),
                    ("s5cl", "@50k msg/s, queue client-local"))
  for row in [
    (s, "latency %s, 256 B: p99" % what, p99, "us", False, 5, ("<=", 200)),
    (s, "latency %s, 256 B: p50" % what, p50, "us", False, None, ("<=", 60)),
  ] + ([(s, "latency %s: the loadgen's own lag behind schedule, p99" % what, lag99, "us", False, None, None)]
       if not s.endswith("l") else [])
] + [
  ("s6a", "fanout to 10 queues, 64 B: deliveries/s", rate, "msg/s", True, 5, None),
  ("s6b", "topic, 1,000 bindings, 10 queues, 64 B: deliveries/s", rate, "msg/s", True, 5, None),
  ("s7a", "1,000 idle connections: time to open", lambda x: x["open_s"], "s", False, None, None),
  ("s7a", "1,000 idle connections: broker RSS growth", rss, "MiB", False, None, None),
  ("s7b", "10,000 idle connections: time to open", lambda x: x["open_s"], "s", False, None, None),
  ("s7b", "10,000 idle connections: broker RSS growth", rss, "MiB", False, 5, None),
  ("s8", "queue declare+bind+delete cycles/s", lambda x: x["queue_cycles_per_s"], "/s", True, None, None),
  ("s8", "connection open+channel+close cycles/s", lambda x: x["conn_cycles_per_s"], "/s", True, 3, None),
  ("s9a", "direct reply-to RPC, 1 requester: round trips/s", lambda x: x["round_trips_per_s"], "/s", True, None, None),
  ("s9a", "direct reply-to RPC, 1 requester: p99", p99, "us", False, None, None),
  ("s9b", "direct reply-to RPC, 16 requesters: round trips/s", lambda x: x["round_trips_per_s"], "/s", True, None, None),
  ("s9b", "direct reply-to RPC, 16 requesters: p99", p99, "us", False, None, None),
  ("s10", "1M transient messages nacked into a dead-letter queue (other shard): dead letters/s", lambda x: x["dead_letter_rate"], "/s", True, None, None),
  ("s10p", "200k persistent messages nacked into a durable dead-letter queue (other shard): dead letters/s", lambda x: x["dead_letter_rate"], "/s", True, None, None),
  ("s11", "transient 1 KiB backlog, no consumer, confirms 256: publishes/s", lambda x: x["publish_rate"], "/s", True, None, None),
  ("s11", "transient 1 KiB backlog: peak broker RSS while building", lambda x: x["rss_peak_fill"] / 1048576, "MiB", False, None, None),
  ("s11", "transient 1 KiB backlog: drain rate (1 consumer, no-ack)", lambda x: x["drain_rate"], "/s", True, None, None),
]
def values(s, b, f):
    out = []
    for r in sorted(by.get((s, b), []), key=lambda r: r.get("run", 0)):
        x = r.get("results")
        try: out.append(f(x) if x else None)
        except (KeyError, TypeError): out.append(None)
    return out
def fmt(v, unit):
    if v is None: return "-"
    if unit == "msg/s" or unit == "/s":
        return "%.2fM" % (v / 1e6) if v >= 1e6 else ("%.1fk" % (v / 1e3) if v >= 1e4 else "%.0f" % v)
    if unit == "us": return "%.0f us" % v if v < 1e4 else "%.1f ms" % (v / 1e3)
    if unit == "MiB": return "%.1f MiB" % v
    return "%.2f %s" % (v, unit)
def ratio(w, o):
    if w is None or o is None or o == 0: return "-"
    return "%.2fx" % (w / o)
hdr = ["scenario", "metric", "unit"] + [b for b in brokers]
if "rabbitmq" in brokers: hdr.append("Warren/RabbitMQ")
if "garagemq" in brokers: hdr.append("Warren/garagemq")
hdr += ["target", "met?"]
lines = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
for (s, label, g, unit, hib, tgt, absolute) in rows:
    if not any((s, b) in by for b in brokers): continue
    v = {b: med(s, b, g) for b in brokers}
    cells = [s, label, unit] + [fmt(v[b], unit) for b in brokers]
    if "rabbitmq" in brokers: cells.append(ratio(v.get("warren"), v.get("rabbitmq")))
    if "garagemq" in brokers: cells.append(ratio(v.get("warren"), v.get("garagemq")))
    t, met = "", ""
    w, r = v.get("warren"), v.get("rabbitmq")
    oks = []
    if tgt:
        t = (">= %dx RabbitMQ" % tgt) if hib else ("<= 1/%d of RabbitMQ" % tgt)
        if w is not None and r:
            oks.append((w >= tgt * r) if hib else (w * tgt <= r))
    if absolute:
        op, lim = absolute
        t = (t + ", " if t else "") + "%s %s" % (op, fmt(lim, unit))
        if w is not None:
            oks.append(w >= lim if op == ">=" else w <= lim)
    if oks:
        met = "yes" if all(oks) else "**no**"
    cells += [t, met]
    lines.append("| " + " | ".join(cells) + " |")
# Every run of every row, in run order: a median hides a bad run.
every = ["| scenario | metric | " + " | ".join(brokers) + " |", "|" + "---|" * (2 + len(brokers))]
for (s, label, g, unit, hib, tgt, absolute) in rows:
    if not any((s, b) in by for b in brokers): continue
    every.append("| %s | %s | %s |" % (s, label, " | ".join(
        ", ".join(fmt(x, unit) for x in values(s, b, g)) or "-" for b in brokers)))
# Issue 14's "no bad runs": the slowest run at least 80% of the median, and
# in every run deliveries within 10% of publishes.
stable = ["| scenario | broker | slowest / median | widest gap between publishes and deliveries | met? |", "|---|---|---|---|---|"]
for s in ("s1", "s2b", "s3"):
    for b in brokers:
        rs = [r.get("results") for r in by.get((s, b), [])]
        if not rs: continue
        got = [x["consume_rate"] for x in rs if x]
        gaps = [abs(x["publish_rate"] - x["consume_rate"]) / x["publish_rate"] for x in rs if x and x.get("publish_rate")]
        if not got or len(got) < len(rs):
            stable.append("| %s | %s | %d of %d runs completed | - | **no** |" % (s, b, len(got), len(rs)))
            continue
        lo = min(got) / statistics.median(got)
        gap = max(gaps) if gaps else 0.0
        stable.append("| %s | %s | %.2f | %.1f%% | %s |" % (s, b, lo, 100 * gap, "yes" if lo >= 0.8 and gap <= 0.10 else "**no**"))
notes = []
for s in sorted({k[0] for k in by}):
    for b in brokers:
        i = issues(s, b)
        if i: notes.append("- %s on %s: %s" % (s, b, "; ".join(i)))
n = max(len(v) for v in by.values())
meta = next((r for r in runs if r.get("host")), {})
host = meta.get("host", {})
vers = {}
for r in runs:
    br = r.get("broker") or {}
    if br.get("product"): vers[r["broker_name"]] = "%s %s" % (br["product"], br["version"])
block = ["<!-- compare:begin -->",
  "Table written by `scripts/compare.sh` on %s: medians of %d run(s) per cell; host %s x %s cores; %s." % (
    datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), n, host.get("cpu_model", "?"), host.get("cores", "?"),
    ", ".join("%s = %s" % kv for kv in vers.items())),
  "Throughput rows count deliveries to consumers per second (a fanout to 10 queues counts 10 per publish).",
  ""] + lines + [""]
if len(stable) > 2:
    block += ["No bad runs (issue 14): the slowest run against the median, and the widest publish/delivery gap of any run.", ""] + stable + [""]
block += ["Every run, in order:", ""] + every + [""]
if notes: block += ["Check failures and errors seen in individual runs:", ""] + notes + [""]
block.append("<!-- compare:end -->")
text = open(perf).read() if os.path.exists(perf) else "# Performance\n\n"
a, b = text.find("<!-- compare:begin -->"), text.find("<!-- compare:end -->")
if a >= 0 and b > a:
    text = text[:a] + "\n".join(block) + text[b + len("<!-- compare:end -->"):]
else:
    text = text.rstrip() + "\n\n" + "\n".join(block) + "\n"
open(perf, "w").write(text)
print("\n".join(block))
PY
}

case ${1:-run} in
  start) ensure_tools; start_"$2" ;;
  stop) stop_"$2" ;;
  run) run_all ;;
  table) make_table "${2:-$WORK/results.jsonl}" "$ROOT/PERF.md" ;;
  *) echo "usage: $0 [run | start BROKER | stop BROKER]" >&2; exit 2 ;;
esac

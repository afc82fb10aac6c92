"""Warren's Prometheus endpoint (`/metrics` on the management port), parsed
with the Prometheus project's own text-format parser
(prometheus_client.parser.text_string_to_metric_families).

Each test starts its own warren (with 1 and with 2 shards) because it needs
the management port; skipped against an external broker (the metric
families are Warren's own).
"""

import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.request

import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import WARREN_BIN, EXTERNAL_URL
from helpers import eventually

pytestmark = pytest.mark.skipif(EXTERNAL_URL is not None, reason="Warren's own metrics")

LINE_RE = re.compile(r"^warren (?:management )?listening on (\S+):(\d+)\s*$")

# family -> (type, label names), as parsed (counters lose their _total).
GLOBAL = ["received", "received_confirm", "routed", "unroutable_dropped", "unroutable_returned",
          "confirmed", "delivered", "delivered_consume_manual_ack", "delivered_consume_auto_ack",
          "delivered_get_manual_ack", "delivered_get_auto_ack", "get_empty", "redelivered",
          "acknowledged"]

EXPECTED = {
    "warren_queue_messages_ready": ("gauge", {"vhost", "queue"}),
    "warren_queue_messages_unacked": ("gauge", {"vhost", "queue"}),
    "warren_queue_consumers": ("gauge", {"vhost", "queue"}),
    "warren_queue_messages_published": ("counter", {"vhost", "queue"}),
    "warren_queue_messages_delivered": ("counter", {"vhost", "queue"}),
    "warren_queue_messages_acked": ("counter", {"vhost", "queue"}),
    "warren_queue_messages_expired": ("counter", {"vhost", "queue"}),
    "warren_queue_messages_dead_lettered": ("counter", {"vhost", "queue"}),
    "warren_connections": ("gauge", set()),
    "warren_channels": ("gauge", set()),
    "warren_consumers": ("gauge", set()),
    "warren_messages_published": ("counter", set()),
    "warren_shard_mailbox_depth": ("gauge", {"shard", "to"}),
    "warren_shard_busy_seconds": ("counter", {"shard"}),
    "warren_shard_loop_utilisation": ("gauge", {"shard"}),
    "warren_store_bytes": ("gauge", {"shard"}),
    "warren_store_segments": ("gauge", {"shard"}),
    "warren_process_resident_memory_bytes": ("gauge", set()),
    "warren_disk_alarm": ("gauge", set()),
    "warren_memory_used_bytes": ("gauge", set()),
    "warren_memory_limit_bytes": ("gauge", set()),
    "warren_memory_alarm": ("gauge", set()),
    "rabbitmq_alarms_memory_used_watermark": ("gauge", set()),
    "rabbitmq_resident_memory_limit_bytes": ("gauge", set()),
    # RabbitMQ's names for its aggregated endpoint, as Grafana's
    # RabbitMQ-Overview dashboard queries them (rabbitmq_prometheus 3.10-3.12).
    "rabbitmq_identity_info": ("unknown", {"rabbitmq_node", "rabbitmq_cluster", "rabbitmq_cluster_permanent_id"}),
    "rabbitmq_build_info": ("unknown", {"rabbitmq_version", "prometheus_plugin_version", "prometheus_client_version",
                                        "erlang_version", "product_name", "product_version"}),
    "rabbitmq_connections": ("gauge", set()),
    "rabbitmq_channels": ("gauge", set()),
    "rabbitmq_consumers": ("gauge", set()),
    "rabbitmq_queues": ("gauge", set()),
    "rabbitmq_queue_messages_ready": ("gauge", set()),
    "rabbitmq_queue_messages_unacked": ("gauge", set()),
    "rabbitmq_connections_opened": ("counter", set()),
    "rabbitmq_connections_closed": ("counter", set()),
    "rabbitmq_channels_opened": ("counter", set()),
    "rabbitmq_channels_closed": ("counter", set()),
    "rabbitmq_queues_declared": ("counter", set()),
    "rabbitmq_queues_created": ("counter", set()),
    "rabbitmq_queues_deleted": ("counter", set()),
    "rabbitmq_process_resident_memory_bytes": ("gauge", set()),
    "rabbitmq_resident_memory_limit_bytes": ("gauge", set()),
    "rabbitmq_alarms_memory_used_watermark": ("gauge", set()),
    "rabbitmq_alarms_free_disk_space_watermark": ("gauge", set()),
    "rabbitmq_disk_space_available_bytes": ("gauge", set()),
    "rabbitmq_process_open_fds": ("gauge", set()),
    "rabbitmq_process_max_fds": ("gauge", set()),
    "rabbitmq_process_open_tcp_sockets": ("gauge", set()),
    "rabbitmq_process_max_tcp_sockets": ("gauge", set()),
    "rabbitmq_global_publishers": ("gauge", {"protocol"}),
    "rabbitmq_global_consumers": ("gauge", {"protocol"}),
    "rabbitmq_channel_consumers": ("gauge", set()),
    "rabbitmq_disk_space_available_limit_bytes": ("gauge", set()),
    **{"rabbitmq_global_messages_%s" % k: ("counter", {"protocol"}) for k in GLOBAL},
    # RabbitMQ's names (rabbitmq_prometheus 3.12+).
    "rabbitmq_global_messages_dead_lettered_rejected": ("counter", {"queue_type", "dead_letter_strategy"}),
    "rabbitmq_global_messages_dead_lettered_expired": ("counter", {"queue_type", "dead_letter_strategy"}),
    "rabbitmq_global_messages_dead_lettered_maxlen": ("counter", {"queue_type", "dead_letter_strategy"}),
    "rabbitmq_global_messages_dead_lettered_delivery_limit": ("counter", {"queue_type", "dead_letter_strategy"}),
}


class Warren:
    """A warren process with its AMQP and management ports."""

    def __init__(self, shards):
        self.dir = tempfile.TemporaryDirectory(prefix="warren-prom-")
        self.proc = subprocess.Popen(
            [WARREN_BIN, "--port", "0", "--bind", "127.0.0.1", "--mgmt-port", "0",
             "--mgmt-bind", "127.0.0.1", "--shards", str(shards), "--data-dir", self.dir.name],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        ports = []
        deadline = time.monotonic() + 30
        while len(ports) < 2:
            assert time.monotonic() < deadline, "warren did not start"
            line = self.proc.stdout.readline().decode()
            assert line, "warren exited before printing its ports"
            m = LINE_RE.match(line)
            if m:
                ports.append(int(m.group(2)))
        self.port, self.mgmt_port = ports
        # Keep draining stdout so the broker never blocks on it.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def metrics(self, path="/metrics"):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.mgmt_port, path), timeout=30) as r:
            assert r.status == 200
            ctype = r.headers["Content-Type"]
            assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
            return r.read().decode()

    def families(self, path="/metrics"):
        text = self.metrics(path)
        return text, {f.name: f for f in text_string_to_metric_families(text)}

    def connect(self):
        return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", self.port))

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.dir.cleanup()


@pytest.fixture(params=[1, 2], ids=["shards=1", "shards=2"])
def warren(request):
    if not os.path.exists(WARREN_BIN):
        pytest.skip("warren binary not built")
    w = Warren(request.param)
    w.shards = request.param
    yield w
    w.stop()


def sample(fams, family, **labels):
    """The value of the sample of `family` with exactly `labels`."""
    for s in fams[family].samples:
        if s.labels == labels and not s.name.endswith("_created"):
            return s.value
    raise AssertionError("no %s%s in %s" % (family, labels, fams[family].samples))


def test_every_family_is_well_formed(warren):
    text, fams = warren.families()
    for name, (kind, labels) in EXPECTED.items():
        assert name in fams, "family %s missing; have %s" % (name, sorted(fams))
        f = fams[name]
        assert f.type == kind, (name, f.type)
        assert f.documentation, "HELP text for " + name
        for s in f.samples:
            assert set(s.labels) == labels, (name, s.labels)
            assert s.value >= 0, (name, s)
    # Every sample line belongs to a family with HELP and TYPE, and no
    # (name, labels) pair appears twice.
    seen = set()
    for f in fams.values():
        for s in f.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in seen, "duplicate sample %s" % (key,)
            seen.add(key)
    declared = re.findall(r"^# TYPE (\S+) ", text, re.M)
    assert len(declared) == len(set(declared)), "a TYPE line repeats"
    # Per-shard families have one sample per shard; the mailbox one per pair.
    shards = {str(i) for i in range(warren.shards)}
    for name in ["warren_shard_busy_seconds", "warren_shard_loop_utilisation",
                 "warren_store_bytes", "warren_store_segments"]:
        assert {s.labels["shard"] for s in fams[name].samples} == shards, name
    pairs = {(s.labels["shard"], s.labels["to"]) for s in fams["warren_shard_mailbox_depth"].samples}
    assert pairs == {(a, b) for a in shards for b in shards}
    assert sample(fams, "warren_process_resident_memory_bytes") > 0
    assert sample(fams, "warren_disk_alarm") == 0
    assert sample(fams, "warren_memory_alarm") == 0
    assert 0 < sample(fams, "warren_memory_used_bytes") < sample(fams, "warren_memory_limit_bytes")
    # No authentication is needed for /metrics (as with RabbitMQ's plugin).


def test_values_follow_the_broker(warren):
    weird = 'we"ird\\queue\nname'  # label escaping: quote, backslash, newline
    queues = ["prom.q%d" % i for i in range(3)] + [weird]
    conn = warren.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    for q in queues:
        ch.queue_declare(q)
        for i in range(3):
            ch.basic_publish("", q, b"m%d" % i)
    # One message of prom.q0 consumed and acked, one left unacked.
    m1 = ch.basic_get("prom.q0")
    ch.basic_ack(m1[0].delivery_tag)
    ch.basic_get("prom.q0")
    ch.basic_consume("prom.q1", lambda *a: None, consumer_tag="prom-c")
    conn.process_data_events(0)

    def settled():
        _, fams = warren.families()
        ok = (sample(fams, "warren_queue_messages_acked", vhost="/", queue="prom.q0") == 1
              and sample(fams, "warren_queue_consumers", vhost="/", queue="prom.q1") == 1)
        return fams if ok else None

    fams = eventually("acks and consumers in /metrics", settled)
    for q in queues:
        assert sample(fams, "warren_queue_messages_published", vhost="/", queue=q) == 3, q
    assert sample(fams, "warren_queue_messages_ready", vhost="/", queue="prom.q0") == 1
    assert sample(fams, "warren_queue_messages_unacked", vhost="/", queue="prom.q0") == 1
    assert sample(fams, "warren_queue_messages_delivered", vhost="/", queue="prom.q0") == 2
    assert sample(fams, "warren_queue_messages_ready", vhost="/", queue="prom.q2") == 3
    # The escaped label comes back exactly.
    assert sample(fams, "warren_queue_messages_ready", vhost="/", queue=weird) == 3
    assert sample(fams, "warren_connections") == 1
    assert sample(fams, "warren_channels") == 1
    assert sample(fams, "warren_consumers") == 1
    assert sample(fams, "warren_messages_published") == 3 * len(queues)
    busy = sum(s.value for s in fams["warren_shard_busy_seconds"].samples)
    assert busy > 0
    conn.close()

    def closed():
        _, fams = warren.families()
        return fams if sample(fams, "warren_connections") == 0 else None

    fams = eventually("connection gone from /metrics", closed)
    assert sample(fams, "warren_channels") == 0
    assert sample(fams, "warren_consumers") == 0
    # The unacked message went back to the queue.
    assert sample(fams, "warren_queue_messages_ready", vhost="/", queue="prom.q0") == 2
    assert sample(fams, "warren_queue_messages_unacked", vhost="/", queue="prom.q0") == 0
    # Counters never go down.
    assert sample(fams, "warren_messages_published") == 3 * len(queues)


def test_expired_and_dead_lettered_messages_are_counted(warren):
    conn = warren.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("prom.dlq")
    ch.queue_declare("prom.ttl", arguments={"x-message-ttl": 50, "x-dead-letter-exchange": "",
                                            "x-dead-letter-routing-key": "prom.dlq"})
    ch.queue_declare("prom.rej", arguments={"x-dead-letter-exchange": "",
                                            "x-dead-letter-routing-key": "prom.dlq"})
    ch.basic_publish("", "prom.ttl", b"expires")
    ch.basic_publish("", "prom.rej", b"rejected")
    m = ch.basic_get("prom.rej")
    ch.basic_reject(m[0].delivery_tag, requeue=False)

    def counted():
        _, fams = warren.families()
        ok = (sample(fams, "warren_queue_messages_expired", vhost="/", queue="prom.ttl") == 1
              and sample(fams, "warren_queue_messages_dead_lettered", vhost="/", queue="prom.ttl") == 1
              and sample(fams, "warren_queue_messages_dead_lettered", vhost="/", queue="prom.rej") == 1
              and sample(fams, "warren_queue_messages_ready", vhost="/", queue="prom.dlq") == 2)
        return fams if ok else None

    fams = eventually("expired and dead-lettered counts", counted)
    assert sample(fams, "warren_queue_messages_expired", vhost="/", queue="prom.rej") == 0
    conn.close()


def test_dead_letter_counters_carry_rabbitmqs_names(warren):
    conn = warren.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("prom.dlq")
    # Rejected without a dead-letter exchange: dropped ("disabled").
    ch.queue_declare("prom.plain")
    ch.basic_publish("", "prom.plain", b"x")
    m = ch.basic_get("prom.plain")
    ch.basic_reject(m[0].delivery_tag, requeue=False)
    # Over the length limit with one: dead-lettered ("at_most_once").
    ch.queue_declare("prom.maxlen", arguments={
        "x-max-length": 1, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "prom.dlq"})
    for i in range(3):
        ch.basic_publish("", "prom.maxlen", b"%d" % i)
    # A quorum queue's poison message (delivery limit 0).
    ch.queue_declare("prom.qq", durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 0})
    ch.basic_publish("", "prom.qq", b"p")
    m = ch.basic_get("prom.qq")
    ch.basic_nack(m[0].delivery_tag, requeue=True)
    conn.process_data_events(0)
    classic = dict(queue_type="rabbit_classic_queue")
    quorum = dict(queue_type="rabbit_quorum_queue")

    def counted():
        _, fams = warren.families()
        got = (
            sample(fams, "rabbitmq_global_messages_dead_lettered_rejected",
                   dead_letter_strategy="disabled", **classic),
            sample(fams, "rabbitmq_global_messages_dead_lettered_maxlen",
                   dead_letter_strategy="at_most_once", **classic),
            sample(fams, "rabbitmq_global_messages_dead_lettered_delivery_limit",
                   dead_letter_strategy="disabled", **quorum),
        )
        return got if got == (1, 2, 1) else None

    eventually("dead-letter counters", counted, timeout=10)


def test_rabbitmqs_node_families_count_what_rabbitmq_counts(warren):
    """The global counters Grafana's RabbitMQ-Overview dashboard plots move
    as RabbitMQ's would for the same operations (deltas, since the broker
    is shared by the module's tests)."""
    def counters():
        _, fams = warren.families()
        out = {k: sample(fams, "rabbitmq_global_messages_" + k, protocol="amqp091") for k in GLOBAL}
        for k in ["connections_opened", "connections_closed", "channels_opened", "channels_closed",
                  "queues_declared", "queues_created", "queues_deleted"]:
            out[k] = sample(fams, "rabbitmq_" + k)
        return out

    _, fams = warren.families()
    ident = fams["rabbitmq_identity_info"].samples[0]
    assert ident.value == 1 and ident.labels["rabbitmq_cluster"] == "warren"
    assert ident.labels["rabbitmq_node"].startswith("warren@")
    before = counters()
    conn = warren.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    q = "prom.rabbit"
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    ch.basic_publish("amq.direct", "nowhere", b"dropped")
    try:
        ch.basic_publish("amq.direct", "nowhere", b"returned", mandatory=True)
    except pika.exceptions.UnroutableError:
        pass
    assert ch.basic_get(q, auto_ack=True)[2] == b"m0"
    m, _, _ = ch.basic_get(q)
    ch.basic_nack(m.delivery_tag, requeue=True)
    m, _, body = ch.basic_get(q)
    assert (body, m.redelivered) == (b"m1", True)
    ch.basic_ack(m.delivery_tag)
    assert ch.basic_get(q, auto_ack=True)[2] == b"m2"
    assert ch.basic_get(q)[0] is None
    ch.basic_publish("", q, b"m3")
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    while not got:
        conn.process_data_events(0.05)
    ch.queue_delete(q)
    conn.close()

    def settled():
        c = counters()
        return c if c["connections_closed"] > before["connections_closed"] else None

    after = eventually("the connection's close counted", settled)
    delta = {k: after[k] - before[k] for k in after}
    assert delta == {
        "received": 6, "received_confirm": 6, "routed": 4, "unroutable_dropped": 1,
        "unroutable_returned": 1, "confirmed": 6, "delivered": 5,
        "delivered_consume_manual_ack": 0, "delivered_consume_auto_ack": 1,
        "delivered_get_manual_ack": 2, "delivered_get_auto_ack": 2, "get_empty": 1,
        "redelivered": 1, "acknowledged": 1,
        "connections_opened": 1, "connections_closed": 1, "channels_opened": 1,
        "channels_closed": 1, "queues_declared": 1, "queues_created": 1, "queues_deleted": 1,
    }



# Families of RabbitMQ's /metrics/per-object with their labels, as RabbitMQ
# 3.10.8 lists them (recorded with rabbitmq_prometheus on a private node);
# counters lose their _total in the parser.
PER_OBJECT = {
    "rabbitmq_queue_messages_ready": ("gauge", {"vhost", "queue"}),
    "rabbitmq_queue_messages_unacked": ("gauge", {"vhost", "queue"}),
    "rabbitmq_queue_messages": ("gauge", {"vhost", "queue"}),
    "rabbitmq_queue_consumers": ("gauge", {"vhost", "queue"}),
    "rabbitmq_queue_messages_published": ("counter", {"vhost", "queue"}),
    "rabbitmq_channel_consumers": ("gauge", {"channel"}),
    "rabbitmq_channel_messages_unacked": ("gauge", {"channel"}),
    "rabbitmq_channel_prefetch": ("gauge", {"channel"}),
    "rabbitmq_channel_messages_published": ("counter", {"channel"}),
    "rabbitmq_channel_messages_confirmed": ("counter", {"channel"}),
    "rabbitmq_channel_messages_unroutable_returned": ("counter", {"channel"}),
    "rabbitmq_channel_messages_delivered": ("counter", {"channel"}),
    "rabbitmq_channel_messages_acked": ("counter", {"channel"}),
    "rabbitmq_connection_incoming_bytes": ("counter", {"channel"}),
    "rabbitmq_connection_outgoing_bytes": ("counter", {"channel"}),
    "rabbitmq_connection_channels": ("gauge", {"channel"}),
}


def test_per_object_families_carry_rabbitmqs_names_and_labels(warren):
    conn = warren.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("po.q")
    ch.basic_publish("", "po.q", b"a")
    ch.basic_publish("", "po.q", b"b")
    ch.basic_qos(prefetch_count=5, global_qos=True)
    ch.basic_consume("po.q", lambda *a: None, consumer_tag="po-c")
    conn.process_data_events(0)

    def settled():
        _, fams = warren.families("/metrics/per-object")
        ok = sample(fams, "rabbitmq_queue_messages_unacked", vhost="/", queue="po.q") == 2
        return fams if ok else None

    fams = eventually("the consumer's deliveries in /metrics/per-object", settled)
    for name, (kind, labels) in PER_OBJECT.items():
        assert name in fams, name
        assert fams[name].type == kind, (name, fams[name].type)
        for s in fams[name].samples:
            if not s.name.endswith("_created"):
                assert set(s.labels) == labels, (name, s.labels)
    assert sample(fams, "rabbitmq_queue_messages_ready", vhost="/", queue="po.q") == 0
    assert sample(fams, "rabbitmq_queue_messages", vhost="/", queue="po.q") == 2
    assert sample(fams, "rabbitmq_queue_consumers", vhost="/", queue="po.q") == 1
    assert sample(fams, "rabbitmq_queue_messages_published", vhost="/", queue="po.q") == 2
    [chan] = [s.labels["channel"] for s in fams["rabbitmq_channel_consumers"].samples]
    assert sample(fams, "rabbitmq_channel_messages_published", channel=chan) == 2
    assert sample(fams, "rabbitmq_channel_messages_confirmed", channel=chan) == 2
    assert sample(fams, "rabbitmq_channel_messages_unacked", channel=chan) == 2
    assert sample(fams, "rabbitmq_channel_prefetch", channel=chan) == 5
    [c] = [s for s in fams["rabbitmq_connection_channels"].samples]
    assert c.value == 1
    assert sample(fams, "rabbitmq_connection_incoming_bytes", channel=c.labels["channel"]) > 0
    # The node-wide families come too, as in RabbitMQ's endpoint, each
    # family once.
    assert "rabbitmq_identity_info" in fams
    text = warren.metrics("/metrics/per-object")
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types)), [t for t in types if types.count(t) > 1]
    # /metrics itself stays aggregated.
    _, plain = warren.families()
    assert "rabbitmq_queue_messages_ready" not in plain or not any(
        "queue" in s.labels for s in plain["rabbitmq_queue_messages_ready"].samples)
    conn.close()


# Every series Grafana's RabbitMQ-Overview dashboard queries, read off the
# dashboard as rabbitmq-server ships it at v3.10.8, v3.12.0 and v3.13.0
# (deps/rabbitmq_prometheus/docker/grafana/dashboards/RabbitMQ-Overview.json;
# the three differ only in rabbitmq_channel_consumers, 3.10-3.12, and
# rabbitmq_global_publishers, 3.13).
DASHBOARD_SERIES = """
rabbitmq_build_info rabbitmq_channel_consumers rabbitmq_channels rabbitmq_channels_closed_total
rabbitmq_channels_opened_total rabbitmq_connections rabbitmq_connections_closed_total
rabbitmq_connections_opened_total rabbitmq_consumers rabbitmq_disk_space_available_bytes
rabbitmq_global_messages_acknowledged_total rabbitmq_global_messages_confirmed_total
rabbitmq_global_messages_delivered_consume_auto_ack_total rabbitmq_global_messages_delivered_consume_manual_ack_total
rabbitmq_global_messages_delivered_get_auto_ack_total rabbitmq_global_messages_delivered_get_manual_ack_total
rabbitmq_global_messages_get_empty_total rabbitmq_global_messages_received_confirm_total
rabbitmq_global_messages_received_total rabbitmq_global_messages_redelivered_total
rabbitmq_global_messages_routed_total rabbitmq_global_messages_unroutable_dropped_total
rabbitmq_global_messages_unroutable_returned_total rabbitmq_global_publishers rabbitmq_identity_info
rabbitmq_process_max_fds rabbitmq_process_max_tcp_sockets rabbitmq_process_open_fds
rabbitmq_process_open_tcp_sockets rabbitmq_process_resident_memory_bytes rabbitmq_queue_messages_ready
rabbitmq_queue_messages_unacked rabbitmq_queues rabbitmq_queues_created_total rabbitmq_queues_declared_total
rabbitmq_queues_deleted_total rabbitmq_resident_memory_limit_bytes
""".split()


def test_every_series_of_the_rabbitmq_overview_dashboard_is_exported(warren):
    text = warren.metrics()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    missing = [n for n in DASHBOARD_SERIES if n not in names]
    assert not missing, missing
    # The dashboard joins every panel on rabbitmq_identity_info's labels.
    _, fams = warren.families()
    ident = [s for s in fams["rabbitmq_identity_info"].samples][0]
    assert ident.labels["rabbitmq_node"] and ident.labels["rabbitmq_cluster"]
    # The version the dashboard shows is the one the API advertises.
    build = [s for s in fams["rabbitmq_build_info"].samples][0]
    assert build.labels["rabbitmq_version"] == "3.13.0"

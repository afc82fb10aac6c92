"""Behaviour that must hold when clients and queues live on different shards.

These need a warren broker started with --shards 2 (connections are placed by
the kernel, so we open connections until we have one on each shard; the shard
is advertised as warren.shard in connection.start).  Queues are declared from
the connection on the shard where we want them to live.
"""

import pika
import pytest
from pika.exceptions import UnroutableError

from helpers import (Consumer, assert_channel_error, get_message, message_count, queue_exists,
                     routed_bodies, settle, wait_message_count, wait_queue_gone, wait_until)


@pytest.fixture
def s0(shards):
    return shards.on_shard(0)


@pytest.fixture
def s1(shards):
    return shards.on_shard(1)


def test_connections_report_distinct_shards(broker, s0, s1):
    if broker.external:
        pytest.skip("external broker has no warren.shard")
    assert s0._impl.server_properties["warren.shard"] == 0
    assert s1._impl.server_properties["warren.shard"] == 1


@pytest.mark.parametrize("home", ["consumer-shard", "publisher-shard"])
def test_publisher_and_consumer_on_different_shards(s0, s1, names, home):
    q = names.queue()
    pub_ch, con_ch = s0.channel(), s1.channel()
    (con_ch if home == "consumer-shard" else pub_ch).queue_declare(q)
    c = Consumer(s1, con_ch, q)
    for i in range(100):
        pub_ch.basic_publish("", q, b"%d" % i)
    c.wait(100)
    assert c.bodies == [b"%d" % i for i in range(100)]
    con_ch.basic_ack(c.deliveries[-1].method.delivery_tag, multiple=True)
    wait_until(s0, lambda: message_count(pub_ch, q) == 0)


def test_cross_shard_publish_preserves_order(s0, s1, names):
    q = names.queue()
    s0.channel().queue_declare(q)
    pub = s1.channel()
    for i in range(1000):
        pub.basic_publish("", q, b"%d" % i)
    con = s0.channel()
    c = Consumer(s0, con, q, auto_ack=True)
    c.wait(1000, timeout=20)
    assert c.bodies == [b"%d" % i for i in range(1000)]


def test_entities_declared_on_one_shard_are_immediately_visible_on_the_other(s0, s1, names):
    x, q = names.exchange(), names.queue()
    a, b = s0.channel(), s1.channel()
    a.exchange_declare(x, "direct")
    b.exchange_declare(x, passive=True)
    a.queue_declare(q)
    b.queue_declare(q, passive=True)
    a.queue_bind(q, x, "k")
    # A binding made on shard 0 routes publishes made on shard 1 right away.
    b.confirm_delivery()
    b.basic_publish(x, "k", b"routed", mandatory=True)
    assert message_count(b, q) == 1


def test_deleted_entities_are_immediately_gone_on_the_other_shard(s0, s1, names):
    x, q = names.exchange(), names.queue()
    a = s0.channel()
    a.exchange_declare(x, "fanout")
    a.queue_declare(q)
    a.exchange_delete(x)
    a.queue_delete(q)
    b = s1.channel()
    assert_channel_error(s1, b, lambda: b.exchange_declare(x, passive=True), 404,
                         "NOT_FOUND - no exchange '%s' in vhost '/'" % x)
    b = s1.channel()
    assert_channel_error(s1, b, lambda: b.queue_declare(q, passive=True), 404,
                         "NOT_FOUND - no queue '%s' in vhost '/'" % q)


def declare_queues_on_both_shards(s0, s1, names, x, binding_keys):
    queues = []
    for shard_conn, tag in ((s0, "s0a"), (s1, "s1a"), (s0, "s0b"), (s1, "s1b")):
        ch = shard_conn.channel()
        q = names.queue(tag)
        ch.queue_declare(q)
        for key in binding_keys[tag]:
            ch.queue_bind(q, x, key)
        queues.append((tag, q))
    return queues


@pytest.mark.parametrize("publisher", [0, 1])
def test_cross_shard_fanout_delivers_once_per_queue(s0, s1, names, publisher):
    x = names.exchange()
    s0.channel().exchange_declare(x, "fanout")
    queues = declare_queues_on_both_shards(
        s0, s1, names, x, {"s0a": [""], "s1a": [""], "s0b": ["a", "b"], "s1b": ["a", "b"]})
    pub_conn = (s0, s1)[publisher]
    pub = pub_conn.channel()
    for i in range(20):
        pub.basic_publish(x, "a", b"%d" % i)
    for tag, q in queues:
        assert routed_bodies(pub_conn, pub, q) == [b"%d" % i for i in range(20)], tag


@pytest.mark.parametrize("publisher", [0, 1])
def test_cross_shard_topic_delivers_once_per_queue(s0, s1, names, publisher):
    x = names.exchange()
    s1.channel().exchange_declare(x, "topic")
    queues = dict(declare_queues_on_both_shards(s0, s1, names, x, {
        "s0a": ["kern.*", "#"],            # overlapping patterns: still one copy
        "s1a": ["*.critical", "kern.#"],
        "s0b": ["user.*"],
        "s1b": ["#.critical", "#"]}))
    pub_conn = (s0, s1)[publisher]
    pub = pub_conn.channel()
    pub.basic_publish(x, "kern.critical", b"kc")
    pub.basic_publish(x, "user.info", b"ui")
    pub.basic_publish(x, "kern.info", b"ki")
    expected = {"s0a": [b"kc", b"ui", b"ki"], "s1a": [b"kc", b"ki"], "s0b": [b"ui"],
                "s1b": [b"kc", b"ui", b"ki"]}
    for tag, q in queues.items():
        assert routed_bodies(pub_conn, pub, q) == expected[tag], tag


def test_confirm_ack_means_enqueued_on_every_shard(s0, s1, names):
    x = names.exchange()
    s0.channel().exchange_declare(x, "fanout")
    queues = declare_queues_on_both_shards(
        s0, s1, names, x, {t: [""] for t in ("s0a", "s1a", "s0b", "s1b")})
    pub = s0.channel()
    pub.confirm_delivery()
    for i in range(10):
        pub.basic_publish(x, "", b"%d" % i)
    # No polling: once confirmed, every queue must already hold the messages.
    for _tag, q in queues:
        assert message_count(pub, q) == 10


def test_mandatory_publish_routed_only_to_other_shard_is_not_returned(s0, s1, names):
    x, q = names.exchange(), names.queue()
    s1.channel().exchange_declare(x, "direct")
    ch1 = s1.channel()
    ch1.queue_declare(q)
    ch1.queue_bind(q, x, "k")
    pub = s0.channel()
    pub.confirm_delivery()
    pub.basic_publish(x, "k", b"ok", mandatory=True)
    with pytest.raises(UnroutableError):
        pub.basic_publish(x, "other", b"bounce", mandatory=True)
    assert message_count(pub, q) == 1


def test_queue_deleted_from_other_shard_cancels_consumer(s0, s1, names):
    q = names.queue()
    ch = s0.channel()
    ch.queue_declare(q)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    c = Consumer(s0, ch, q)
    s1.channel().queue_delete(q)
    wait_until(s0, lambda: cancelled, what="basic.cancel from the broker")
    assert cancelled == [c.tag]
    assert ch.is_open
    assert not queue_exists(s0, q)


def test_queue_deleted_on_its_own_shard_cancels_consumer_on_other_shard(s0, s1, names):
    q = names.queue()
    s0.channel().queue_declare(q)
    ch = s1.channel()
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    c = Consumer(s1, ch, q)
    s0.channel().queue_delete(q)
    wait_until(s1, lambda: cancelled, what="basic.cancel from the broker")
    assert cancelled == [c.tag]


def test_round_robin_across_consumers_on_both_shards(s0, s1, names):
    q = names.queue()
    s0.channel().queue_declare(q)
    c0 = Consumer(s0, s0.channel(), q, auto_ack=True)
    c1 = Consumer(s1, s1.channel(), q, auto_ack=True)
    pub = s0.channel()
    for i in range(10):
        pub.basic_publish("", q, b"%d" % i)
    wait_until([s0, s1], lambda: len(c0.deliveries) + len(c1.deliveries) == 10,
               what="10 deliveries over both shards")
    assert (len(c0.deliveries), len(c1.deliveries)) == (5, 5)


def test_prefetch_honoured_for_consumer_on_other_shard(s0, s1, names):
    q = names.queue()
    pub = s0.channel()
    pub.queue_declare(q)
    for i in range(3):
        pub.basic_publish("", q, b"%d" % i)
    wait_message_count(s0, pub, q, 3)
    ch = s1.channel()
    ch.basic_qos(prefetch_count=1)
    c = Consumer(s1, ch, q)
    c.wait(1)
    settle(s1)
    assert len(c.deliveries) == 1
    assert message_count(pub, q) == 2
    ch.basic_ack(c.deliveries[0].method.delivery_tag)
    c.wait(2)


def test_reject_requeue_across_shards_sets_redelivered(s0, s1, names):
    q = names.queue()
    pub = s0.channel()
    pub.queue_declare(q)
    pub.basic_publish("", q, b"m")
    ch = s1.channel()
    c = Consumer(s1, ch, q)
    (first,) = c.wait(1)
    ch.basic_reject(first.method.delivery_tag, requeue=True)
    second = c.wait(2)[1]
    assert (second.body, second.method.redelivered) == (b"m", True)


def test_exclusive_queue_locked_across_shards(s0, s1, names):
    q = names.queue()
    s0.channel().queue_declare(q, exclusive=True)
    ch = s1.channel()
    e_text = ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost '/'. "
              "It could be originally declared on another connection or the exclusive property value "
              "does not match that of the original declaration." % q)
    assert_channel_error(s1, ch, lambda: ch.queue_declare(q, exclusive=True), 405, e_text)


def test_exclusive_queue_removed_when_owner_on_other_shard_closes(shards, s1, names):
    q = names.queue()
    owner = shards.on_shard(0)
    owner.channel().queue_declare(q, exclusive=True)
    assert queue_exists(s1, q)
    owner.close()
    wait_queue_gone(s1, q)


def test_exclusive_consumer_conflict_across_shards_is_403(s0, s1, names):
    q = names.queue()
    ch0 = s0.channel()
    ch0.queue_declare(q)
    Consumer(s0, ch0, q, exclusive=True)
    ch1 = s1.channel()
    assert_channel_error(s1, ch1, lambda: ch1.basic_consume(q, lambda *a: None), 403,
                         "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q)


def test_auto_delete_queue_on_other_shard_deleted_after_consumer_cancels(s0, s1, names):
    q = names.queue()
    s0.channel().queue_declare(q, auto_delete=True)
    c = Consumer(s1, s1.channel(), q)
    c.cancel()
    wait_queue_gone(s0, q)


def test_tx_commit_across_shards(s0, s1, names):
    q = names.queue()
    obs = s0.channel()
    obs.queue_declare(q)
    tx = s1.channel()
    tx.tx_select()
    tx.basic_publish("", q, b"rolled-back")
    tx.tx_rollback()
    tx.basic_publish("", q, b"committed")
    assert message_count(obs, q) == 0
    tx.tx_commit()
    assert message_count(obs, q) == 1
    assert get_message(s0, obs, q, auto_ack=True).body == b"committed"


def test_unacked_cross_shard_deliveries_requeued_when_consumer_connection_closes(shards, s0, names):
    q = names.queue()
    ch = s0.channel()
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, b"%d" % i)
    consumer_conn = shards.on_shard(1)
    c = Consumer(consumer_conn, consumer_conn.channel(), q)
    c.wait(3)
    consumer_conn.close()
    wait_message_count(s0, ch, q, 3)
    got = [ch.basic_get(q, auto_ack=True) for _ in range(3)]
    assert [b for _m, _p, b in got] == [b"0", b"1", b"2"]
    assert all(m.redelivered for m, _p, _b in got)

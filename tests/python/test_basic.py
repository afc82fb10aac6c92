"""basic class: qos, consume/cancel, publish/return, get, ack/nack/reject, recover."""

import struct

import pika
import pytest

import amqp_raw
from helpers import (Consumer, assert_channel_error, connection_error, get_message, message_count,
                     queue_exists, routed_bodies, settle, wait_message_count, wait_until)


def unknown_tag(n):
    return "PRECONDITION_FAILED - unknown delivery tag %d" % n


def declare_with_messages(conn, ch, q, n, prefix=b"m"):
    ch.queue_declare(q)
    for i in range(n):
        ch.basic_publish("", q, prefix + b"%d" % i)
    wait_message_count(conn, ch, q, n)


# --------------------------------------------------------------------------
# qos


def test_prefetch_1_delivers_one_message_until_it_is_acked(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 3)
    cch = conn.channel()
    cch.basic_qos(prefetch_count=1)
    c = Consumer(conn, cch, q)
    c.wait(1)
    settle(conn)
    assert c.bodies == [b"m0"]
    assert message_count(ch, q) == 2
    cch.basic_ack(c.deliveries[0].method.delivery_tag)
    c.wait(2)
    settle(conn)
    assert c.bodies == [b"m0", b"m1"]
    cch.basic_ack(c.deliveries[1].method.delivery_tag)
    c.wait(3)
    assert c.bodies == [b"m0", b"m1", b"m2"]


def test_prefetch_count_caps_unacked_and_multiple_ack_releases_more(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 10)
    cch = conn.channel()
    cch.basic_qos(prefetch_count=3)
    c = Consumer(conn, cch, q)
    c.wait(3)
    settle(conn)
    assert len(c.deliveries) == 3
    cch.basic_ack(c.deliveries[2].method.delivery_tag, multiple=True)
    c.wait(6)
    settle(conn)
    assert len(c.deliveries) == 6
    assert c.bodies == [b"m%d" % i for i in range(6)]


def test_prefetch_applies_per_consumer_by_default(conn, ch, names):
    q1, q2 = names.queue("1"), names.queue("2")
    declare_with_messages(conn, ch, q1, 3)
    declare_with_messages(conn, ch, q2, 3)
    cch = conn.channel()
    cch.basic_qos(prefetch_count=1)
    c1 = Consumer(conn, cch, q1)
    c2 = Consumer(conn, cch, q2)
    c1.wait(1)
    c2.wait(1)
    settle(conn)
    assert (len(c1.deliveries), len(c2.deliveries)) == (1, 1)


def test_prefetch_does_not_limit_no_ack_consumers(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 5)
    cch = conn.channel()
    cch.basic_qos(prefetch_count=1)
    c = Consumer(conn, cch, q, auto_ack=True)
    c.wait(5)
    assert c.bodies == [b"m%d" % i for i in range(5)]


def test_qos_change_applies_only_to_consumers_started_afterwards(conn, ch, names):
    # RabbitMQ semantics (per_consumer_qos): basic.qos with global=false sets the
    # limit for consumers created after it on the channel.
    q = names.queue()
    declare_with_messages(conn, ch, q, 4)
    cch = conn.channel()
    cch.basic_qos(prefetch_count=1)
    c1 = Consumer(conn, cch, q)
    c1.wait(1)
    cch.basic_qos(prefetch_count=0)
    c2 = Consumer(conn, cch, q)
    c2.wait(3)
    settle(conn)
    assert (len(c1.deliveries), len(c2.deliveries)) == (1, 3)


# --------------------------------------------------------------------------
# consume / cancel


def test_consume_no_ack_receives_all_messages_in_publish_order(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    c = Consumer(conn, conn.channel(), q, auto_ack=True)
    for i in range(50):
        ch.basic_publish("", q, b"%d" % i)
    c.wait(50)
    assert c.bodies == [b"%d" % i for i in range(50)]
    assert [d.method.delivery_tag for d in c.deliveries] == list(range(1, 51))
    assert message_count(ch, q) == 0


def test_delivery_carries_consumer_tag_exchange_and_routing_key(conn, ch, names):
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, "direct")
    ch.queue_declare(q)
    ch.queue_bind(q, x, "rk")
    c = Consumer(conn, conn.channel(), q, consumer_tag="my-tag")
    ch.basic_publish(x, "rk", b"hello")
    (d,) = c.wait(1)
    assert c.tag == "my-tag"
    assert (d.method.consumer_tag, d.method.exchange, d.method.routing_key) == ("my-tag", x, "rk")
    assert (d.method.delivery_tag, d.method.redelivered) == (1, False)


def test_consume_from_missing_queue_is_404(conn, ch, names):
    q = names.queue("missing")
    assert_channel_error(conn, ch, lambda: ch.basic_consume(q, lambda *a: None), 404,
                         "NOT_FOUND - no queue '%s' in vhost '/'" % q)


def test_exclusive_consumer_blocks_other_consumers_with_403(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    Consumer(conn, ch, q, exclusive=True)
    other = conn.channel()
    assert_channel_error(conn, other, lambda: other.basic_consume(q, lambda *a: None), 403,
                         "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q)


def test_exclusive_consume_on_queue_with_consumers_is_403(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    Consumer(conn, ch, q)
    other = conn.channel()
    assert_channel_error(conn, other,
                         lambda: other.basic_consume(q, lambda *a: None, exclusive=True), 403,
                         "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q)


def test_exclusive_consumer_cancel_frees_the_queue(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    c = Consumer(conn, ch, q, exclusive=True)
    c.cancel()
    Consumer(conn, conn.channel(), q)


def test_server_generates_amq_ctag_consumer_tag_when_client_sends_none(broker, names):
    q = names.queue()
    r = broker.raw()
    try:
        r.channel_open(1)
        r.queue_declare(1, q)
        r.basic_consume(1, q, consumer_tag="")
        tag1 = r.expect(amqp_raw.BASIC_CONSUME_OK).args.shortstr()
        r.basic_consume(1, q, consumer_tag="")
        tag2 = r.expect(amqp_raw.BASIC_CONSUME_OK).args.shortstr()
        assert tag1.startswith("amq.ctag-") and tag2.startswith("amq.ctag-")
        assert len(tag1) > len("amq.ctag-")
        assert tag1 != tag2
    finally:
        r.close()


def test_server_generated_consumer_tag_is_used_in_deliveries(broker, conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    r = broker.raw()
    try:
        r.channel_open(1)
        r.basic_consume(1, q, consumer_tag="", no_ack=True)
        tag = r.expect(amqp_raw.BASIC_CONSUME_OK).args.shortstr()
        ch.basic_publish("", q, b"x")
        f = r.expect(amqp_raw.BASIC_DELIVER)
        assert f.args.shortstr() == tag
    finally:
        r.close()


def test_reusing_consumer_tag_on_a_channel_is_530(broker, names):
    q = names.queue()
    r = broker.raw()
    try:
        r.channel_open(1)
        r.queue_declare(1, q)
        r.basic_consume(1, q, consumer_tag="dup")
        r.expect(amqp_raw.BASIC_CONSUME_OK)
        r.basic_consume(1, q, consumer_tag="dup")
        assert r.wait_closed() == (530, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'")
    finally:
        r.close()


def test_same_consumer_tag_on_different_channels_is_fine(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    Consumer(conn, conn.channel(), q, consumer_tag="shared")
    Consumer(conn, conn.channel(), q, consumer_tag="shared")
    assert ch.queue_declare(q, passive=True).method.consumer_count == 2


def test_cancel_stops_deliveries(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    cch = conn.channel()
    c = Consumer(conn, cch, q, auto_ack=True)
    ch.basic_publish("", q, b"before")
    c.wait(1)
    c.cancel()
    ch.basic_publish("", q, b"after")
    wait_message_count(conn, ch, q, 1)
    settle(conn)
    assert c.bodies == [b"before"]
    assert ch.queue_declare(q, passive=True).method.consumer_count == 0


def test_unacked_deliveries_can_be_acked_after_cancel(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 2)
    cch = conn.channel()
    c = Consumer(conn, cch, q)
    c.wait(2)
    c.cancel()
    cch.basic_ack(c.deliveries[1].method.delivery_tag, multiple=True)
    assert cch.is_open
    settle(conn)
    assert cch.is_open
    assert message_count(ch, q) == 0


def test_server_cancels_consumer_when_queue_is_deleted(broker, conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    c = Consumer(conn, ch, q)
    other = broker.connect()
    try:
        other.channel().queue_delete(q)
    finally:
        other.close()
    wait_until(conn, lambda: cancelled, what="basic.cancel from the broker")
    assert cancelled == [c.tag]
    assert ch.is_open
    assert not queue_exists(conn, q)


def test_round_robin_across_two_consumers(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    c1 = Consumer(conn, conn.channel(), q, auto_ack=True)
    c2 = Consumer(conn, conn.channel(), q, auto_ack=True)
    for i in range(10):
        ch.basic_publish("", q, b"%d" % i)
    wait_until(conn, lambda: len(c1.deliveries) + len(c2.deliveries) == 10, what="10 deliveries")
    assert len(c1.deliveries) == 5 and len(c2.deliveries) == 5
    assert sorted(c1.bodies + c2.bodies, key=int) == [b"%d" % i for i in range(10)]
    # Strict alternation: consecutive messages go to different consumers.
    owner = {b: 1 for b in c1.bodies}
    owner.update({b: 2 for b in c2.bodies})
    seq = [owner[b"%d" % i] for i in range(10)]
    assert all(a != b for a, b in zip(seq, seq[1:])), seq


# --------------------------------------------------------------------------
# publish / return


def test_mandatory_unroutable_publish_is_returned_with_312_no_route(conn, ch, names):
    x = names.exchange()
    ch.exchange_declare(x, "direct")
    returned = []
    ch.add_on_return_callback(lambda c, method, props, body: returned.append((method, props, body)))
    ch.basic_publish(x, "nowhere", b"bounce", pika.BasicProperties(message_id="m-1"), mandatory=True)
    wait_until(conn, lambda: returned, what="basic.return")
    method, props, body = returned[0]
    assert (method.reply_code, method.reply_text) == (312, "NO_ROUTE")
    assert (method.exchange, method.routing_key) == (x, "nowhere")
    assert (body, props.message_id) == (b"bounce", "m-1")


def test_mandatory_publish_to_default_exchange_with_unknown_queue_is_returned(conn, ch, names):
    returned = []
    ch.add_on_return_callback(lambda c, method, props, body: returned.append(method))
    q = names.queue("missing")
    ch.basic_publish("", q, b"bounce", mandatory=True)
    wait_until(conn, lambda: returned, what="basic.return")
    assert (returned[0].reply_code, returned[0].reply_text, returned[0].routing_key) == (312, "NO_ROUTE", q)


def test_mandatory_routable_publish_is_not_returned(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    ch.basic_publish("", q, b"ok", mandatory=True)
    assert routed_bodies(conn, ch, q) == [b"ok"]
    assert returned == []


def test_non_mandatory_unroutable_publish_is_dropped_silently(conn, ch, names):
    x = names.exchange()
    ch.exchange_declare(x, "direct")
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    ch.basic_publish(x, "nowhere", b"dropped")
    q = names.queue()
    ch.queue_declare(q)
    assert routed_bodies(conn, ch, q) == []
    assert returned == [] and ch.is_open


def test_publish_immediate_is_540_not_implemented(broker, names):
    r = broker.raw()
    try:
        r.channel_open(1)
        r.send(amqp_raw.method_frame(1, amqp_raw.BASIC_PUBLISH, struct.pack("!H", 0)
                                     + amqp_raw.shortstr("") + amqp_raw.shortstr(names.queue())
                                     + amqp_raw.bits(False, True))
               + amqp_raw.content_frames(1, b"now"))
        assert r.wait_closed() == (540, "NOT_IMPLEMENTED - immediate=true")
    finally:
        r.close()


def test_message_properties_and_headers_round_trip(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    props = pika.BasicProperties(
        content_type="application/json", content_encoding="utf-8",
        headers={"str": "v", "int": 42, "neg": -7, "bool": True, "nested": {"a": "b"},
                 "list": [1, "two"], "big": 2 ** 40},
        delivery_mode=2, priority=3, correlation_id="corr", reply_to="reply-q",
        expiration="600000", message_id="mid", timestamp=1700000000, type="t",
        user_id="guest", app_id="warren-tests")
    ch.basic_publish("", q, b'{"k": 1}', props)
    d = get_message(conn, ch, q, auto_ack=True)
    p = d.properties
    assert d.body == b'{"k": 1}'
    assert (p.content_type, p.content_encoding, p.delivery_mode, p.priority) == (
        "application/json", "utf-8", 2, 3)
    assert (p.correlation_id, p.reply_to, p.expiration, p.message_id) == (
        "corr", "reply-q", "600000", "mid")
    assert (p.timestamp, p.type, p.user_id, p.app_id) == (1700000000, "t", "guest", "warren-tests")
    assert p.headers == {"str": "v", "int": 42, "neg": -7, "bool": True, "nested": {"a": "b"},
                         "list": [1, "two"], "big": 2 ** 40}


def test_publish_with_wrong_user_id_is_406(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    assert_channel_error(
        conn, ch, lambda: ch.basic_publish("", q, b"x", pika.BasicProperties(user_id="mallory")), 406,
        "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'")


@pytest.mark.parametrize("size", [0, 1, 2047, 2048, 131072 - 8, 131072, 1024 * 1024 + 17])
def test_body_sizes_round_trip_including_multi_frame_bodies(conn, ch, names, size):
    q = names.queue()
    ch.queue_declare(q)
    body = bytes((i * 7 + 3) % 256 for i in range(size))
    ch.basic_publish("", q, body)
    c = Consumer(conn, conn.channel(), q, auto_ack=True)
    (d,) = c.wait(1)
    assert len(d.body) == size and d.body == body


def test_many_large_deliveries_in_small_frames_arrive_whole_and_in_order(broker, names):
    # Bodies from 2 KiB up go to the socket as slices of their own buffers
    # (one vectored write for many deliveries); with frame_max 4096 each
    # is cut into several body frames.
    conn = broker.connect(frame_max=4096)
    try:
        ch = conn.channel()
        q = names.queue()
        ch.queue_declare(q)
        bodies = [bytes((i + j) % 251 for j in range(1500 + i * 97)) for i in range(200)]
        for b in bodies:
            ch.basic_publish("", q, b)
        c = Consumer(conn, conn.channel(), q, auto_ack=True)
        got = c.wait(len(bodies))
        assert [d.body for d in got] == bodies
    finally:
        conn.close()


# --------------------------------------------------------------------------
# get


def test_get_returns_message_and_remaining_count(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 3)
    method, _props, body = ch.basic_get(q, auto_ack=True)
    assert body == b"m0"
    assert (method.message_count, method.redelivered, method.exchange, method.routing_key) == (2, False, "", q)
    assert ch.basic_get(q, auto_ack=True)[0].message_count == 1
    assert ch.basic_get(q, auto_ack=True)[0].message_count == 0


def test_get_on_empty_queue_returns_get_empty(ch, names):
    q = names.queue()
    ch.queue_declare(q)
    assert ch.basic_get(q) == (None, None, None)


def test_get_without_ack_then_ack_removes_message(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 1)
    method, _props, _body = ch.basic_get(q, auto_ack=False)
    assert message_count(ch, q) == 0
    ch.basic_ack(method.delivery_tag)
    ch.close()
    ch2 = conn.channel()
    assert message_count(ch2, q) == 0


def test_get_without_ack_is_requeued_when_channel_closes(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 1)
    ch.basic_get(q, auto_ack=False)
    ch.close()
    ch2 = conn.channel()
    wait_message_count(conn, ch2, q, 1)
    method, _props, body = ch2.basic_get(q, auto_ack=True)
    assert (body, method.redelivered) == (b"m0", True)


def test_get_from_missing_queue_is_404(conn, ch, names):
    q = names.queue("missing")
    assert_channel_error(conn, ch, lambda: ch.basic_get(q), 404, "NOT_FOUND - no queue '%s' in vhost '/'" % q)


def test_delivery_tags_are_per_channel_and_count_from_1(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 4)
    a, b = conn.channel(), conn.channel()
    assert a.basic_get(q)[0].delivery_tag == 1
    assert b.basic_get(q)[0].delivery_tag == 1
    assert a.basic_get(q)[0].delivery_tag == 2
    assert b.basic_get(q)[0].delivery_tag == 2


# --------------------------------------------------------------------------
# ack / nack / reject


def test_ack_multiple_acks_everything_up_to_tag(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 5)
    cch = conn.channel()
    c = Consumer(conn, cch, q)
    c.wait(5)
    cch.basic_ack(c.deliveries[2].method.delivery_tag, multiple=True)
    cch.close()
    wait_message_count(conn, ch, q, 2)
    assert [ch.basic_get(q, auto_ack=True)[2] for _ in range(2)] == [b"m3", b"m4"]


def test_ack_tag_0_with_multiple_acks_all_outstanding(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 3)
    cch = conn.channel()
    c = Consumer(conn, cch, q)
    c.wait(3)
    cch.basic_ack(0, multiple=True)
    cch.close()
    ch2 = conn.channel()
    assert message_count(ch2, q) == 0


def test_nack_multiple_with_requeue_redelivers_with_redelivered_flag(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 3)
    cch = conn.channel()
    c = Consumer(conn, cch, q)
    c.wait(3)
    assert [d.method.redelivered for d in c.deliveries] == [False] * 3
    cch.basic_nack(c.deliveries[1].method.delivery_tag, multiple=True, requeue=True)
    c.wait(5)
    again = c.deliveries[3:5]
    assert [d.body for d in again] == [b"m0", b"m1"]
    assert [d.method.redelivered for d in again] == [True, True]
    assert [d.method.delivery_tag for d in again] == [4, 5]


def test_nack_without_requeue_drops_message(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 2)
    cch = conn.channel()
    c = Consumer(conn, cch, q)
    c.wait(2)
    cch.basic_nack(c.deliveries[1].method.delivery_tag, multiple=True, requeue=False)
    settle(conn)
    assert len(c.deliveries) == 2
    cch.close()
    ch2 = conn.channel()
    assert message_count(ch2, q) == 0


def test_reject_with_requeue_redelivers_with_redelivered_flag(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 1)
    cch = conn.channel()
    c = Consumer(conn, cch, q)
    (first,) = c.wait(1)
    cch.basic_reject(first.method.delivery_tag, requeue=True)
    second = c.wait(2)[1]
    assert (second.body, second.method.redelivered) == (b"m0", True)
    cch.basic_ack(second.method.delivery_tag)


def test_reject_without_requeue_drops_message(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 1)
    cch = conn.channel()
    c = Consumer(conn, cch, q)
    (first,) = c.wait(1)
    cch.basic_reject(first.method.delivery_tag, requeue=False)
    cch.close()
    ch2 = conn.channel()
    assert message_count(ch2, q) == 0


def test_requeued_message_goes_back_to_its_original_position(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 3)
    first = ch.basic_get(q)[0]
    ch.basic_get(q)  # m1, left unacked
    ch.basic_reject(first.delivery_tag, requeue=True)
    wait_message_count(conn, ch, q, 2)
    method, _p, body = ch.basic_get(q, auto_ack=True)
    assert (body, method.redelivered) == (b"m0", True)
    assert ch.basic_get(q, auto_ack=True)[2] == b"m2"


def test_ack_of_unknown_delivery_tag_is_406(conn, ch, names):
    assert_channel_error(conn, ch, lambda: ch.basic_ack(99), 406, unknown_tag(99))


def test_double_ack_is_406_unknown_delivery_tag(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 1)
    method = ch.basic_get(q)[0]
    ch.basic_ack(method.delivery_tag)
    assert_channel_error(conn, ch, lambda: ch.basic_ack(method.delivery_tag), 406,
                         unknown_tag(method.delivery_tag))


def test_nack_and_reject_of_unknown_delivery_tag_are_406(conn, names):
    ch = conn.channel()
    assert_channel_error(conn, ch, lambda: ch.basic_nack(7), 406, unknown_tag(7))
    ch = conn.channel()
    assert_channel_error(conn, ch, lambda: ch.basic_reject(8), 406, unknown_tag(8))


def test_ack_of_auto_acked_delivery_is_406(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 1)
    method = ch.basic_get(q, auto_ack=True)[0]
    assert_channel_error(conn, ch, lambda: ch.basic_ack(method.delivery_tag), 406,
                         unknown_tag(method.delivery_tag))


def test_ack_on_another_channel_is_406(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 1)
    method = ch.basic_get(q)[0]
    other = conn.channel()
    assert_channel_error(conn, other, lambda: other.basic_ack(method.delivery_tag), 406,
                         unknown_tag(method.delivery_tag))


# --------------------------------------------------------------------------
# recover


def test_recover_requeue_redelivers_unacked_messages(conn, ch, names):
    q = names.queue()
    declare_with_messages(conn, ch, q, 2)
    cch = conn.channel()
    c = Consumer(conn, cch, q)
    c.wait(2)
    cch.basic_ack(c.deliveries[0].method.delivery_tag)
    cch.basic_recover(requeue=True)
    (again,) = c.wait(3)[2:]
    assert (again.body, again.method.redelivered) == (b"m1", True)
    cch.basic_ack(again.method.delivery_tag)
    settle(conn)
    assert len(c.deliveries) == 3


def test_recover_without_requeue_is_540_not_implemented(conn, ch):
    e = connection_error(conn, lambda: ch.basic_recover(requeue=False))
    assert (e.reply_code, e.reply_text) == (540, "NOT_IMPLEMENTED - requeue=false")


def test_global_qos_limits_unacked_across_all_consumers_of_the_channel(conn, ch, names):
    q1, q2 = names.queue("1"), names.queue("2")
    declare_with_messages(conn, ch, q1, 4)
    declare_with_messages(conn, ch, q2, 4)
    cch = conn.channel()
    cch.basic_qos(prefetch_count=3, global_qos=True)
    c1 = Consumer(conn, cch, q1)
    c2 = Consumer(conn, cch, q2)
    wait_until(conn, lambda: len(c1.deliveries) + len(c2.deliveries) >= 3, what="3 deliveries")
    settle(conn)
    assert len(c1.deliveries) + len(c2.deliveries) == 3
    # Acking everything seen so far lets exactly three more through.
    for c in (c1, c2):
        for d in c.deliveries:
            cch.basic_ack(d.method.delivery_tag)
    wait_until(conn, lambda: len(c1.deliveries) + len(c2.deliveries) >= 6, what="6 deliveries")
    settle(conn)
    assert len(c1.deliveries) + len(c2.deliveries) == 6


def test_global_qos_leaves_messages_beyond_the_limit_ready_in_their_queues(conn, ch, names):
    # RabbitMQ (recorded with scripts/compare.sh): 2 delivered, 8 stay ready,
    # visible to queue.declare and to basic.get on another channel.
    q1, q2 = names.queue("1"), names.queue("2")
    declare_with_messages(conn, ch, q1, 5)
    declare_with_messages(conn, ch, q2, 5)
    cch = conn.channel()
    cch.basic_qos(prefetch_count=2, global_qos=True)
    c1 = Consumer(conn, cch, q1)
    c2 = Consumer(conn, cch, q2)
    wait_until(conn, lambda: len(c1.deliveries) + len(c2.deliveries) >= 2, what="2 deliveries")
    settle(conn)
    assert len(c1.deliveries) + len(c2.deliveries) == 2
    wait_until(conn, lambda: message_count(ch, q1) + message_count(ch, q2) == 8,
               what="8 ready messages")
    # The ready ones are there for others: basic.get takes one, in order.
    other = conn.channel()
    m = get_message(conn, other, q1, auto_ack=True)
    assert not m.method.redelivered
    got = int(m.body[1:])
    # Acking lets the next ones through, none of them marked redelivered.
    for c in (c1, c2):
        for d in c.deliveries:
            cch.basic_ack(d.method.delivery_tag)
    wait_until(conn, lambda: len(c1.deliveries) + len(c2.deliveries) >= 4, what="4 deliveries")
    settle(conn)
    assert len(c1.deliveries) + len(c2.deliveries) == 4
    assert not any(d.method.redelivered for d in c1.deliveries + c2.deliveries)
    # Each queue still delivers in its own order.
    for c, q in ((c1, q1), (c2, q2)):
        bodies = [int(b[1:]) for b in c.bodies]
        assert bodies == sorted(bodies), (q, c.bodies)
    assert got not in [int(b[1:]) for b in c1.bodies]


def test_recover_after_global_qos_redelivers_and_keeps_the_limit(conn, ch, names):
    # RabbitMQ: recover requeues the 2 unacked ones (redelivered=true when
    # they come back), the limit still allows exactly 2 outstanding, every
    # message is delivered and acked once, and no ack is refused.
    q1, q2 = names.queue("1"), names.queue("2")
    declare_with_messages(conn, ch, q1, 5)
    declare_with_messages(conn, ch, q2, 5)
    cch = conn.channel()
    cch.basic_qos(prefetch_count=2, global_qos=True)
    c1 = Consumer(conn, cch, q1)
    c2 = Consumer(conn, cch, q2)
    wait_until(conn, lambda: len(c1.deliveries) + len(c2.deliveries) >= 2, what="2 deliveries")
    cch.basic_recover(requeue=True)
    wait_until(conn, lambda: len(c1.deliveries) + len(c2.deliveries) >= 4, what="redeliveries")
    settle(conn)
    assert len(c1.deliveries) + len(c2.deliveries) == 4
    recovered = [(q, d.body) for q, c in ((q1, c1), (q2, c2)) for d in c.deliveries
                 if d.method.delivery_tag <= 2]
    acked = set()

    def outstanding():
        return [d for d in c1.deliveries + c2.deliveries
                if d.method.delivery_tag > 2 and d.method.delivery_tag not in acked]

    while len(acked) < 10:
        wait_until(conn, outstanding, what="a delivery to ack (%d acked)" % len(acked))
        settle(conn, 0.2)
        pending = outstanding()
        assert len(pending) <= 2, pending
        for d in pending:
            cch.basic_ack(d.method.delivery_tag)
            acked.add(d.method.delivery_tag)
    assert message_count(ch, q1) + message_count(ch, q2) == 0
    got = [(q, d.body) for q, c in ((q1, c1), (q2, c2)) for d in c.deliveries
           if d.method.delivery_tag > 2]
    assert len(got) == 10 and len(set(got)) == 10
    again = {(q, d.body): d.method.redelivered for q, c in ((q1, c1), (q2, c2))
             for d in c.deliveries if d.method.delivery_tag > 2}
    assert all(again[r] for r in recovered), (recovered, again)
    assert cch.is_open

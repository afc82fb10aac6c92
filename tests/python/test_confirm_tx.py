"""Publisher confirms (confirm.select) and transactions (tx.*)."""

import struct

import pika
import pytest
from pika.exceptions import UnroutableError

import amqp_raw
from helpers import (assert_channel_error, get_message, message_count, routed_bodies,
                     wait_message_count)


def raw_confirmed_tags(r, expected, returns=None, timeout=5.0):
    """Read basic.ack frames on channel 1 until all tags in expected are confirmed.

    Returns the order in which things happened as a list of ("ack", tag) /
    ("return", reply_code) entries.  Fails on basic.nack.
    """
    pending = set(expected)
    events = []
    while pending:
        f = r.recv_method(timeout)
        if f.method == amqp_raw.BASIC_ACK:
            tag = f.args.longlong()
            multiple = f.args.octet() & 1
            done = {t for t in pending if t <= tag} if multiple else {tag}
            assert done, "ack for unexpected tag %d (multiple=%d)" % (tag, multiple)
            pending -= done
            events.extend(("ack", t) for t in sorted(done))
        elif f.method == (60, 50):  # basic.return, followed by header + body
            events.append(("return", f.args.short()))
            r.recv_frame(timeout)
            r.recv_frame(timeout)
        elif f.method == amqp_raw.BASIC_NACK:
            raise AssertionError("broker nacked tag %d" % f.args.longlong())
        else:
            raise AssertionError("unexpected frame %r" % f)
    return events


def test_confirm_select_then_every_publish_is_acked_once(broker, names):
    q = names.queue()
    r = broker.raw()
    try:
        r.channel_open(1)
        r.queue_declare(1, q)
        r.confirm_select(1)
        for i in range(200):
            r.publish(1, "", q, b"%d" % i)
        events = raw_confirmed_tags(r, range(1, 201))
        assert sorted(t for _, t in events) == list(range(1, 201))
    finally:
        r.close()


def test_pika_confirm_delivery_publishes_are_confirmed(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    for i in range(50):
        ch.basic_publish("", q, b"%d" % i, pika.BasicProperties(delivery_mode=2))
    assert message_count(ch, q) == 50


def test_confirm_ack_for_unroutable_non_mandatory_publish(conn, ch, names):
    x = names.exchange()
    ch.exchange_declare(x, "direct")
    ch.confirm_delivery()
    ch.basic_publish(x, "nowhere", b"dropped")  # raises if nacked / never confirmed
    assert ch.is_open


def test_mandatory_unroutable_in_confirm_mode_is_returned_then_confirmed(conn, ch, names):
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, "direct")
    ch.queue_declare(q)
    ch.queue_bind(q, x, "routed")
    ch.confirm_delivery()
    with pytest.raises(UnroutableError) as ei:
        ch.basic_publish(x, "nowhere", b"bounce", mandatory=True)
    (returned,) = ei.value.messages
    assert (returned.method.reply_code, returned.method.reply_text) == (312, "NO_ROUTE")
    assert returned.body == b"bounce"
    # The channel keeps confirming afterwards.
    ch.basic_publish(x, "routed", b"fine", mandatory=True)
    assert message_count(ch, q) == 1


def test_basic_return_precedes_the_confirm_ack_on_the_wire(broker, names):
    x = names.exchange()
    r = broker.raw()
    try:
        r.channel_open(1)
        r.send(amqp_raw.method_frame(1, (40, 10), struct.pack("!H", 0) + amqp_raw.shortstr(x)
                                     + amqp_raw.shortstr("direct") + amqp_raw.bits() + amqp_raw.table()))
        r.expect((40, 11))
        r.confirm_select(1)
        r.publish(1, x, "nowhere", b"a", mandatory=True)
        r.publish(1, x, "nowhere", b"b", mandatory=False)
        events = raw_confirmed_tags(r, [1, 2])
        assert events == [("return", 312), ("ack", 1), ("ack", 2)]
    finally:
        r.close()


def test_confirm_select_twice_is_ok_and_keeps_counting(broker, names):
    q = names.queue()
    r = broker.raw()
    try:
        r.channel_open(1)
        r.queue_declare(1, q)
        r.confirm_select(1)
        r.publish(1, "", q, b"one")
        assert raw_confirmed_tags(r, [1]) == [("ack", 1)]
        r.confirm_select(1)
        r.publish(1, "", q, b"two")
        assert raw_confirmed_tags(r, [2]) == [("ack", 2)]
    finally:
        r.close()


def test_confirm_select_on_transactional_channel_is_406(conn, ch):
    ch.tx_select()
    assert_channel_error(conn, ch, ch.confirm_delivery, 406,
                         "PRECONDITION_FAILED - cannot switch from tx to confirm mode")


def test_tx_select_on_confirm_channel_is_406(conn, ch):
    ch.confirm_delivery()
    assert_channel_error(conn, ch, ch.tx_select, 406,
                         "PRECONDITION_FAILED - cannot switch from confirm to tx mode")


def test_tx_rollback_discards_publish_and_commit_delivers(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    observer = conn.channel()
    ch.tx_select()
    ch.basic_publish("", q, b"rolled-back")
    assert message_count(observer, q) == 0
    ch.tx_rollback()
    ch.basic_publish("", q, b"committed")
    assert message_count(observer, q) == 0
    ch.tx_commit()
    assert message_count(observer, q) == 1
    assert get_message(conn, observer, q, auto_ack=True).body == b"committed"


def test_tx_commit_makes_several_publishes_visible_together(conn, ch, names):
    q1, q2 = names.queue("1"), names.queue("2")
    ch.queue_declare(q1)
    ch.queue_declare(q2)
    observer = conn.channel()
    ch.tx_select()
    for i in range(3):
        ch.basic_publish("", q1, b"a%d" % i)
        ch.basic_publish("", q2, b"b%d" % i)
    assert (message_count(observer, q1), message_count(observer, q2)) == (0, 0)
    ch.tx_commit()
    assert (message_count(observer, q1), message_count(observer, q2)) == (3, 3)
    # The channel stays transactional: the next publish waits for the next commit.
    ch.basic_publish("", q1, b"later")
    assert message_count(observer, q1) == 3
    ch.tx_commit()
    assert message_count(observer, q1) == 4


def test_tx_ack_takes_effect_on_commit(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"m")
    wait_message_count(conn, ch, q, 1)
    txch = conn.channel()
    txch.tx_select()
    method = txch.basic_get(q)[0]
    txch.basic_ack(method.delivery_tag)
    txch.tx_commit()
    txch.close()
    assert message_count(ch, q) == 0


def test_tx_rollback_discards_ack(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"m")
    wait_message_count(conn, ch, q, 1)
    txch = conn.channel()
    txch.tx_select()
    method = txch.basic_get(q)[0]
    txch.basic_ack(method.delivery_tag)
    txch.tx_rollback()
    txch.close()  # the still-unacked message goes back to the queue
    wait_message_count(conn, ch, q, 1)
    m, _p, body = ch.basic_get(q, auto_ack=True)
    assert (body, m.redelivered) == (b"m", True)


def test_tx_commit_without_select_is_406(conn, ch):
    assert_channel_error(conn, ch, ch.tx_commit, 406, "PRECONDITION_FAILED - channel is not transactional")


def test_tx_rollback_without_select_is_406(conn, ch):
    assert_channel_error(conn, ch, ch.tx_rollback, 406, "PRECONDITION_FAILED - channel is not transactional")


def test_uncommitted_publishes_are_discarded_when_channel_closes(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    txch = conn.channel()
    txch.tx_select()
    txch.basic_publish("", q, b"never")
    txch.close()
    assert routed_bodies(conn, ch, q) == []

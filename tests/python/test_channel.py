"""channel class: open/close, reuse of channel numbers, channel.flow, cleanup on close."""

import pika
import pytest

from helpers import (Consumer, assert_connection_usable, channel_error, connection_error,
                     message_count, wait_message_count)


def test_channel_open_and_close(conn):
    ch = conn.channel()
    assert ch.is_open
    ch.close()
    assert ch.is_closed
    assert conn.is_open


def test_channel_number_reusable_after_client_close(conn):
    ch = conn.channel(channel_number=1)
    ch.queue_declare("", exclusive=True)
    ch.close()
    again = conn.channel(channel_number=1)
    assert again.channel_number == 1
    ok = again.queue_declare("", exclusive=True)
    assert ok.method.queue.startswith("amq.gen-")


def test_channel_number_reusable_after_broker_closed_it(conn, names):
    ch = conn.channel(channel_number=1)
    e = channel_error(conn, ch, lambda: ch.queue_declare(names.queue("missing"), passive=True))
    assert e.reply_code == 404
    again = conn.channel(channel_number=1)
    assert again.queue_declare("", exclusive=True).method.queue


def test_channel_error_leaves_sibling_channels_working(conn, names):
    chans = [conn.channel() for _ in range(5)]
    victim = chans[2]
    channel_error(conn, victim, lambda: victim.queue_declare(names.queue("missing"), passive=True))
    for c in chans:
        if c is victim:
            assert c.is_closed
        else:
            assert c.is_open
            c.queue_declare("", exclusive=True)


def test_channel_flow_active_true_is_acknowledged(conn):
    ch = conn.channel()
    assert ch.flow(True) is True
    assert_connection_usable(conn)


def test_channel_flow_active_false_is_not_implemented_540(conn):
    ch = conn.channel()
    e = connection_error(conn, lambda: ch.flow(False))
    assert (e.reply_code, e.reply_text) == (540, "NOT_IMPLEMENTED - active=false")


def test_unacked_messages_are_requeued_when_channel_closes(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    consumer_ch = conn.channel()
    c = Consumer(conn, consumer_ch, q)
    c.wait(3)
    assert [d.method.redelivered for d in c.deliveries] == [False] * 3
    consumer_ch.close()
    wait_message_count(conn, ch, q, 3)
    bodies = []
    for _ in range(3):
        method, _props, body = ch.basic_get(q, auto_ack=True)
        assert method.redelivered is True
        bodies.append(body)
    assert bodies == [b"m0", b"m1", b"m2"]


def test_unacked_messages_are_requeued_when_connection_closes(broker, conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"only")
    other = broker.connect()
    c = Consumer(other, other.channel(), q)
    c.wait(1)
    other.close()
    wait_message_count(conn, ch, q, 1)
    method, _props, body = ch.basic_get(q, auto_ack=True)
    assert (body, method.redelivered) == (b"only", True)


def test_acked_messages_are_not_requeued_when_channel_closes(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    consumer_ch = conn.channel()
    c = Consumer(conn, consumer_ch, q)
    first, _second = c.wait(2)
    consumer_ch.basic_ack(first.method.delivery_tag)
    consumer_ch.close()
    wait_message_count(conn, ch, q, 1)
    assert ch.basic_get(q, auto_ack=True)[2] == b"b"
    assert message_count(ch, q) == 0

"""Answers recorded from the real RabbitMQ (3.x, Debian's rabbitmq-server,
run here with scripts/compare.sh start rabbitmq) and expected verbatim from
Warren: declare equivalence, idempotent unbind, basic.qos prefetch-size,
basic.ack of unknown tags with multiple, the queue.bind shortcut, crossing
channel closes.
"""

import pika
import pytest

from helpers import channel_error, connection_error, get_message


def test_only_rabbitmq_equivalence_arguments_must_match_on_redeclare(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 5})
    # Arguments outside RabbitMQ's list may differ.
    ch.queue_declare(q, arguments={"x-message-ttl": 5, "x-custom": 1, "foo": "bar"})


@pytest.mark.parametrize("args, text", [
    ({"x-message-ttl": 10}, "received '10' but current is '5'"),
    ({}, "received none but current is the value '5' of type 'signedint'"),
    ({"x-message-ttl": "abc"}, "received 'abc' but current is '5'"),
])
def test_inequivalent_queue_argument_text_is_rabbitmqs(conn, names, args, text):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q, arguments={"x-message-ttl": 5})
    e = channel_error(conn, ch, lambda: ch.queue_declare(q, arguments=args))
    assert e.reply_code == 406
    assert e.reply_text == (
        "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '%s' in vhost '/': %s"
        % (q, text))


def test_missing_argument_on_the_existing_side_names_the_received_type(conn, names):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q, arguments={"x-message-ttl": 5})
    e = channel_error(conn, ch, lambda: ch.queue_declare(
        q, arguments={"x-message-ttl": 5, "x-dead-letter-exchange": "dlx"}))
    assert e.reply_text == (
        "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue '%s' in vhost "
        "'/': received the value 'dlx' of type 'longstr' but current is none" % q)


def test_only_alternate_exchange_takes_part_in_exchange_equivalence(conn, names):
    x = names.exchange()
    ch = conn.channel()
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": "ae"})
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": "ae", "x-foo": 1})
    e = channel_error(conn, ch, lambda: ch.exchange_declare(
        x, "direct", arguments={"alternate-exchange": "ae2"}))
    assert e.reply_text == (
        "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '%s' in vhost "
        "'/': received 'ae2' but current is 'ae'" % x)


def test_unbind_of_something_already_gone_is_ok(ch, names):
    q, x = names.queue(), names.exchange()
    ch.queue_declare(q)
    ch.exchange_declare(x, "direct")
    ch.queue_unbind(names.queue("gone"), x, "k")
    ch.queue_unbind(q, names.exchange("gone"), "k")
    ch.queue_unbind(q, x, "never-bound")
    ch.exchange_unbind(names.exchange("gone1"), names.exchange("gone2"), "k")
    ch.queue_declare(q, passive=True)


def test_qos_with_a_prefetch_size_is_refused_540_on_the_connection(broker):
    conn = broker.connect()
    ch = conn.channel()
    e = connection_error(conn, lambda: ch.basic_qos(prefetch_size=10))
    assert e.reply_code == 540
    assert e.reply_text == "NOT_IMPLEMENTED - prefetch_size!=0 (10)"


def test_ack_multiple_up_to_an_unknown_tag_settles_nothing(conn, names):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    tags = [get_message(conn, ch, q).method.delivery_tag for _ in range(2)]
    e = channel_error(conn, ch, lambda: ch.basic_ack(tags[-1] + 5, multiple=True))
    assert e.reply_code == 406
    assert e.reply_text == "PRECONDITION_FAILED - unknown delivery tag %d" % (tags[-1] + 5)
    # Nothing was acked: the channel's two deliveries come back.
    other = conn.channel()
    counts = other.queue_declare(q, passive=True).method.message_count
    assert counts == 3


def test_bind_with_empty_queue_and_key_uses_the_last_declared_queue_name(conn, ch, names):
    q, x = names.queue(), names.exchange()
    ch.exchange_declare(x, "direct")
    ch.queue_declare(q)
    ch.queue_bind("", x, "")
    ch.basic_publish(x, q, b"by-name")
    m = get_message(conn, ch, q)
    assert m.body == b"by-name"


def test_crossing_channel_closes_leave_the_connection_working(broker, names):
    import struct
    import amqp_raw
    from amqp_raw import method_frame, shortstr
    c = broker.raw()
    c.channel_open(1)
    c.channel_open(2)
    # Publish to a missing exchange, then close the channel ourselves before
    # reading the server's channel.close (the closes cross on the wire).
    c.publish(1, names.exchange("missing"), "k", b"x")
    c.send(method_frame(1, amqp_raw.CHANNEL_CLOSE,
                        struct.pack("!H", 200) + shortstr("bye") + struct.pack("!HH", 0, 0)))
    f = c.recv_method()
    assert f.method == amqp_raw.CHANNEL_CLOSE and f.channel == 1, f
    assert f.close_reason()[0] == 404
    c.send(method_frame(1, amqp_raw.CHANNEL_CLOSE_OK))
    f = c.recv_method()
    assert f.method == amqp_raw.CHANNEL_CLOSE_OK and f.channel == 1, f
    # The connection and channel 2 keep working.
    name, _, _ = c.queue_declare(2, names.queue())
    assert name

"""Queue arguments and message TTL, with RabbitMQ's answers.

The 406 texts and the TTL behaviour were recorded from RabbitMQ 3.10
(Debian's rabbitmq-server, `scripts/compare.sh start rabbitmq`); the
suite passes against it with WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5682/%2f.
Arguments of features Warren lacks are refused with 540 (Warren only).
"""

import time

import pika
import pytest

from helpers import channel_error, connection_error, message_count


@pytest.mark.parametrize("args, reason", [
    ({"x-message-ttl": "abc"}, "invalid arg 'x-message-ttl' for queue '{q}' in vhost '/': \"expected integer, got longstr\""),
    ({"x-message-ttl": -1}, "invalid arg 'x-message-ttl' for queue '{q}' in vhost '/': {{value_negative,-1}}"),
    ({"x-message-ttl": 2 ** 40}, "invalid arg 'x-message-ttl' for queue '{q}' in vhost '/': {{value_too_large,1099511627776}}"),
    ({"x-expires": 0}, "invalid arg 'x-expires' for queue '{q}' in vhost '/': {{value_zero,0}}"),
    ({"x-expires": -5}, "invalid arg 'x-expires' for queue '{q}' in vhost '/': {{value_negative,-5}}"),
    ({"x-max-length": "abc"}, "invalid arg 'x-max-length' for queue '{q}' in vhost '/': \"expected integer, got longstr\""),
    ({"x-max-length-bytes": -1}, "invalid arg 'x-max-length-bytes' for queue '{q}' in vhost '/': {{value_negative,-1}}"),
    ({"x-overflow": "bad"}, "invalid arg 'x-overflow' for queue '{q}' in vhost '/': invalid_overflow"),
    ({"x-dead-letter-exchange": 5}, "invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue '{q}' in vhost '/'"),
    ({"x-dead-letter-routing-key": "k"}, "invalid arg 'x-dead-letter-routing-key' for queue '{q}' in vhost '/': routing_key_but_no_dlx_defined"),
    ({"x-max-priority": 256}, "invalid arg 'x-max-priority' for queue '{q}' in vhost '/': {{max_value_exceeded,256}}"),
    ({"x-queue-type": "bogus"}, "invalid arg 'x-queue-type' for queue '{q}' in vhost '/': \"unsupported queue type 'bogus'\""),
    ({"x-single-active-consumer": "yes"}, "invalid arg 'x-single-active-consumer' for queue '{q}' in vhost '/': {{unacceptable_type,longstr}}"),
    ({"x-queue-mode": "bad"}, "invalid arg 'x-queue-mode' for queue '{q}' in vhost '/': \"unsupported queue mode 'bad'\""),
    ({"x-queue-type": "quorum"}, "invalid property 'non-durable' for queue '{q}' in vhost '/'"),
    ({"x-overflow": 5}, "invalid arg 'x-overflow' for queue '{q}' in vhost '/': {{unacceptable_type,signedint}}"),
    ({"x-queue-mode": 5}, "invalid arg 'x-queue-mode' for queue '{q}' in vhost '/': {{unacceptable_type,signedint}}"),
    ({"x-queue-type": 5}, "invalid arg 'x-queue-type' for queue '{q}' in vhost '/': {{unacceptable_type,signedint}}"),
    ({"x-dead-letter-exchange": "d", "x-dead-letter-routing-key": 5}, "invalid arg 'x-dead-letter-routing-key' for queue '{q}' in vhost '/': {{unacceptable_type,signedint}}"),
    ({"x-max-priority": -1}, "invalid arg 'x-max-priority' for queue '{q}' in vhost '/': {{value_negative,-1}}"),
    ({"x-expires": 2 ** 40}, "invalid arg 'x-expires' for queue '{q}' in vhost '/': {{value_too_large,1099511627776}}"),
    ({"x-queue-version": 3}, "invalid arg 'x-queue-version' for queue '{q}' in vhost '/': \"unsupported queue version '3'\""),
    ({"x-queue-version": "2"}, "invalid arg 'x-queue-version' for queue '{q}' in vhost '/': \"expected integer, got longstr\""),
    # (RabbitMQ 3.10 also refuses x-delivery-limit on a classic queue with
    # "... of queue type rabbit_classic_queue"; Warren accepts and honours it,
    # see test_quorum.py.)
    ({"x-dead-letter-strategy": "at-least-once"}, "invalid arg 'x-dead-letter-strategy' for queue '{q}' in vhost '/' of queue type rabbit_classic_queue"),
    ({"x-max-age": "1D"}, "invalid arg 'x-max-age' for queue '{q}' in vhost '/' of queue type rabbit_classic_queue"),
])
def test_invalid_queue_arguments_get_rabbitmqs_406_texts(conn, names, args, reason):
    q = names.queue()
    ch = conn.channel()
    e = channel_error(conn, ch, lambda: ch.queue_declare(q, arguments=args))
    assert e.reply_code == 406
    assert e.reply_text == "PRECONDITION_FAILED - " + reason.format(q=q)


@pytest.mark.parametrize("expiration, reason", [
    ("abc", "no_integer"),
    ("", "no_integer"),
    (" 5", "no_integer"),
    ("-1", "{value_negative,-1}"),
    ("1.5", '{leftover_string,".5"}'),
    ("5 ", '{leftover_string," "}'),
])
def test_an_invalid_expiration_closes_the_channel_with_rabbitmqs_text(conn, names, expiration, reason):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q)
    e = channel_error(conn, ch, lambda: ch.basic_publish(
        "", q, b"x", pika.BasicProperties(expiration=expiration)))
    assert e.reply_code == 406
    assert e.reply_text == "PRECONDITION_FAILED - invalid expiration '%s': %s" % (expiration, reason)


@pytest.mark.parametrize("expiration", ["0", "+5", "007", "-0", "99999999999"])
def test_expirations_rabbitmq_accepts_are_accepted(ch, names, expiration):
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x", pika.BasicProperties(expiration=expiration))
    ch.queue_declare(q, passive=True)


def wait_count(ch, q, want, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        n = message_count(ch, q)
        if n == want or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def test_queue_ttl_drops_messages_nobody_took_in_time(ch, names):
    q = names.queue()
    ch.confirm_delivery()
    ch.queue_declare(q, arguments={"x-message-ttl": 300})
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    assert message_count(ch, q) == 3
    assert wait_count(ch, q, 0) == 0
    assert ch.basic_get(q, auto_ack=True)[0] is None


def test_a_message_expiration_applies_to_that_message_only(ch, names):
    q = names.queue()
    ch.confirm_delivery()  # both publishes are in before counting
    ch.queue_declare(q)
    ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="200"))
    ch.basic_publish("", q, b"stays")
    assert wait_count(ch, q, 1) == 1
    method, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"stays"


def test_the_lower_of_queue_ttl_and_expiration_wins(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 60000})
    ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="200"))
    assert wait_count(ch, q, 0) == 0


def test_ttl_zero_reaches_a_waiting_consumer_and_is_dropped_otherwise(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 0})
    ch.basic_publish("", q, b"nobody")
    assert wait_count(ch, q, 0, timeout=1.0) == 0
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    conn.process_data_events(time_limit=0.2)
    ch.basic_publish("", q, b"taken")
    deadline = time.monotonic() + 3
    while not got and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert got == [b"taken"]


def test_a_requeued_message_keeps_its_expiry(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 300})
    ch.basic_publish("", q, b"m")
    method, _, _ = ch.basic_get(q)
    time.sleep(0.5)
    ch.basic_nack(method.delivery_tag, requeue=True)
    assert wait_count(ch, q, 0) == 0


def test_ttl_is_an_equivalence_argument(conn, names):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q, arguments={"x-message-ttl": 1000})
    ch.queue_declare(q, arguments={"x-message-ttl": 1000})
    e = channel_error(conn, ch, lambda: ch.queue_declare(q, arguments={"x-message-ttl": 2000}))
    assert e.reply_text == (
        "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '%s' in vhost '/': "
        "received '2000' but current is '1000'" % q)


@pytest.mark.parametrize("args", [
    {"x-queue-type": "stream"},
    {"x-queue-type": "quorum", "x-dead-letter-strategy": "at-least-once"},
])
def test_arguments_of_features_warren_lacks_are_refused_not_ignored(broker, names, args):
    if broker.external:
        pytest.skip("RabbitMQ implements these")
    conn = broker.connect()
    ch = conn.channel()
    q = names.queue()
    e = connection_error(conn, lambda: ch.queue_declare(q, durable=True, arguments=args))
    assert e.reply_code == 540
    key = list(args)[-1]
    assert e.reply_text.startswith(
        "NOT_IMPLEMENTED - queue argument '%s' is not supported by Warren yet" % key)


def test_storage_hints_and_custom_arguments_are_accepted(ch, names):
    ch.queue_declare(names.queue(), arguments={
        "x-queue-mode": "lazy", "x-queue-version": 2, "x-queue-type": "classic",
        "x-queue-master-locator": "min-masters",
        "x-single-active-consumer": False, "x-custom": 1, "plain": "v"})

"""Length limits (x-max-length, x-max-length-bytes, x-overflow) and queue
expiry (x-expires), with RabbitMQ 3.10's answers (recorded from Debian's
rabbitmq-server via `scripts/compare.sh start rabbitmq`; the suite passes
against it with WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5682/%2f).
"""

import time

import pika
import pytest

from helpers import get_message, message_count


def dlq_for(ch, names):
    dlx, dlq = names.exchange("dlx"), names.queue("dlq")
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    return dlx, dlq


def test_drop_head_keeps_the_newest_and_dead_letters_the_oldest(conn, ch, names):
    dlx, dlq = dlq_for(ch, names)
    q = names.queue()
    ch.confirm_delivery()
    ch.queue_declare(q, arguments={"x-max-length": 2, "x-dead-letter-exchange": dlx})
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    assert message_count(ch, q) == 2
    assert ch.basic_get(q, auto_ack=True)[2] == b"m1"
    d = get_message(conn, ch, dlq, auto_ack=True)
    assert d.body == b"m0"
    assert d.properties.headers["x-death"][0]["reason"] == "maxlen"


def test_max_length_bytes_counts_ready_bodies(ch, names):
    q = names.queue()
    ch.confirm_delivery()
    ch.queue_declare(q, arguments={"x-max-length-bytes": 10})
    for b in [b"12345", b"123456", b"1"]:
        ch.basic_publish("", q, b)
    assert message_count(ch, q) == 2
    assert ch.basic_get(q, auto_ack=True)[2] == b"123456"


def test_unacknowledged_messages_do_not_count_towards_the_limit(conn, ch, names):
    q = names.queue()
    ch.confirm_delivery()
    ch.queue_declare(q, arguments={"x-max-length": 1})
    ch.basic_publish("", q, b"a")
    m = get_message(conn, ch, q)
    ch.basic_publish("", q, b"b")
    assert message_count(ch, q) == 1
    ch.basic_ack(m.method.delivery_tag)


def test_reject_publish_nacks_the_publish_and_keeps_the_queue(ch, names):
    dlx, dlq = dlq_for(ch, names)
    q = names.queue()
    ch.confirm_delivery()
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish",
                                   "x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"a")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"b")
    assert message_count(ch, q) == 1
    assert message_count(ch, dlq) == 0, "reject-publish does not dead-letter"


def test_reject_publish_dlx_nacks_and_dead_letters(conn, ch, names):
    dlx, dlq = dlq_for(ch, names)
    q = names.queue()
    ch.confirm_delivery()
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                                   "x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"a")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"b")
    d = get_message(conn, ch, dlq, auto_ack=True)
    assert d.body == b"b"
    assert d.properties.headers["x-death"][0]["reason"] == "maxlen"


def test_max_length_zero_keeps_nothing(ch, names):
    q = names.queue()
    ch.confirm_delivery()
    ch.queue_declare(q, arguments={"x-max-length": 0})
    ch.basic_publish("", q, b"x")
    assert message_count(ch, q) == 0


def queue_gone(conn, q):
    c = conn.channel()
    try:
        c.queue_declare(q, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404
        return True
    c.close()
    return False


def test_an_unused_queue_expires_and_a_redeclare_restarts_its_period(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-expires": 400})
    ch.basic_publish("", q, b"lost with the queue")
    time.sleep(0.25)
    ch.queue_declare(q, arguments={"x-expires": 400})
    time.sleep(0.25)
    # (A passive declare is a use too: it restarts the period again.)
    assert not queue_gone(conn, q), "the redeclare restarted the period"
    time.sleep(0.9)
    assert queue_gone(conn, q)


def test_a_queue_with_a_consumer_does_not_expire(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-expires": 200})
    ch.basic_consume(q, lambda *a: None, auto_ack=True)
    time.sleep(0.6)
    conn.process_data_events(time_limit=0)
    assert not queue_gone(conn, q)

"""What survives a clean broker restart (SIGTERM, same data dir), as in RabbitMQ.

Durable exchanges, queues and bindings and persistent messages in durable
queues come back; transient entities and non-persistent messages do not.
Only runs against a warren we started ourselves (it restarts the broker).
"""

import pika
import pytest

from helpers import exchange_exists, get_message, message_count, queue_exists, routed_bodies


@pytest.fixture
def restartable(broker):
    if broker.external:
        pytest.skip("cannot restart an external broker")
    return broker


def restart(broker):
    broker.restart()
    return broker.connect()


def test_durable_entities_and_persistent_messages_survive_restart(restartable, names):
    b = restartable
    x, q, tq, tx = names.exchange("durable"), names.queue("durable"), names.queue("transient"), \
        names.exchange("transient")
    conn = b.connect()
    ch = conn.channel()
    ch.exchange_declare(x, "topic", durable=True)
    ch.exchange_declare(tx, "topic", durable=False)
    ch.queue_declare(q, durable=True)
    ch.queue_declare(tq, durable=False)
    ch.queue_bind(q, x, "a.#")
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish(x, "a.b", b"p%d" % i, pika.BasicProperties(delivery_mode=2))
    ch.basic_publish(x, "a.b", b"transient-msg", pika.BasicProperties(delivery_mode=1))
    ch.basic_publish("", tq, b"in-transient-queue", pika.BasicProperties(delivery_mode=2))
    conn.close()

    conn = restart(b)
    try:
        ch = conn.channel()
        assert exchange_exists(conn, x)
        assert not exchange_exists(conn, tx)
        assert not queue_exists(conn, tq)
        assert message_count(ch, q) == 5
        got = [get_message(conn, ch, q, auto_ack=True).body for _ in range(5)]
        assert got == [b"p%d" % i for i in range(5)]
        assert message_count(ch, q) == 0
        # The binding came back too.
        ch.basic_publish(x, "a.c", b"after-restart")
        assert routed_bodies(conn, ch, q) == [b"after-restart"]
    finally:
        conn.close()


def test_acked_messages_stay_acked_and_unacked_come_back_after_restart(restartable, names):
    b = restartable
    q = names.queue()
    conn = b.connect()
    ch = conn.channel()
    ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    for i in range(4):
        ch.basic_publish("", q, b"m%d" % i, pika.BasicProperties(delivery_mode=2))
    first = ch.basic_get(q)[0]
    ch.basic_get(q)  # m1: delivered, never acked
    ch.basic_ack(first.delivery_tag)
    # A synchronous round trip after the ack so it has been processed.
    ch.queue_declare(q, passive=True)
    conn.close()

    conn = restart(b)
    try:
        ch = conn.channel()
        bodies = [get_message(conn, ch, q, auto_ack=True).body for _ in range(3)]
        assert sorted(bodies) == [b"m1", b"m2", b"m3"]
        assert message_count(ch, q) == 0
    finally:
        conn.close()


def test_server_named_and_exclusive_queues_do_not_survive_restart(restartable, names):
    b = restartable
    conn = b.connect()
    ch = conn.channel()
    gen = ch.queue_declare("", exclusive=True).method.queue
    conn.close()
    conn = restart(b)
    try:
        assert not queue_exists(conn, gen)
    finally:
        conn.close()

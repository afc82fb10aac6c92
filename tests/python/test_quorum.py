"""Quorum-type queues on one node and the delivery limit, with RabbitMQ
3.10's answers (recorded from Debian's rabbitmq-server via
`scripts/compare.sh start rabbitmq`; the file passes against it with
WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5682/%2f
WARREN_TEST_IGNORE_SHARDS=1, except the tests marked as Warren's own).
"""

import pika
import pytest

from helpers import assert_channel_error, get_message, settle

Q = {"x-queue-type": "quorum"}


def quorum(ch, names, **extra):
    q = names.queue("qq")
    ch.queue_declare(q, durable=True, arguments=dict(Q, **extra))
    return q


def dlq_for(ch, names):
    dlq = names.queue("dlq")
    ch.queue_declare(dlq)
    return dlq, {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}


def delivery_count(d):
    return (d.properties.headers or {}).get("x-delivery-count")


def test_every_delivery_carries_its_delivery_count(conn, ch, names):
    q = quorum(ch, names)
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"h": 1}))
    counts = []
    for _ in range(3):
        d = get_message(conn, ch, q)
        counts.append((delivery_count(d), d.method.redelivered, d.properties.headers["h"]))
        ch.basic_nack(d.method.delivery_tag, requeue=True)
    assert counts == [(0, False, 1), (1, True, 1), (2, True, 1)]


def test_a_message_requeued_beyond_the_limit_is_dead_lettered(conn, ch, names):
    dlq, dlx = dlq_for(ch, names)
    q = quorum(ch, names, **dict(dlx, **{"x-delivery-limit": 2}))
    ch.basic_publish("", q, b"poison", pika.BasicProperties(headers={"h": 1}))
    seen = []
    for _ in range(3):
        d = get_message(conn, ch, q)
        seen.append(delivery_count(d))
        ch.basic_nack(d.method.delivery_tag, requeue=True)
    assert seen == [0, 1, 2]
    dead = get_message(conn, ch, dlq, auto_ack=True)
    assert dead.body == b"poison"
    h = dead.properties.headers
    assert "x-delivery-count" not in h and h["h"] == 1
    assert h["x-first-death-reason"] == "delivery_limit"
    death = h["x-death"][0]
    assert (death["reason"], death["queue"], death["count"]) == ("delivery_limit", q, 1)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_a_closed_channel_counts_as_a_delivery(conn, ch, names):
    q = quorum(ch, names)
    ch.basic_publish("", q, b"m")
    other = conn.channel()
    get_message(conn, other, q)
    other.close()
    d = get_message(conn, ch, q, auto_ack=True)
    assert (d.method.redelivered, delivery_count(d)) == (True, 1)


def test_without_a_dead_letter_exchange_a_poison_message_is_dropped(conn, ch, names):
    q = quorum(ch, names, **{"x-delivery-limit": 0})
    ch.basic_publish("", q, b"m")
    d = get_message(conn, ch, q)
    ch.basic_reject(d.method.delivery_tag, requeue=True)
    settle(conn)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


@pytest.mark.parametrize("kwargs,prop", [
    (dict(durable=False), "non-durable"),
    (dict(durable=True, exclusive=True), "exclusive-owner"),
    (dict(durable=True, auto_delete=True), "auto-delete"),
])
def test_quorum_queues_refuse_transient_properties(conn, names, kwargs, prop):
    ch = conn.channel()
    q = names.queue("bad")
    assert_channel_error(conn, ch, lambda: ch.queue_declare(q, arguments=Q, **kwargs), 406,
                         "PRECONDITION_FAILED - invalid property '%s' for queue '%s' in vhost '/'"
                         % (prop, q))


@pytest.mark.parametrize("arg,value", [("x-max-priority", 5), ("x-queue-mode", "lazy"),
                                       ("x-queue-version", 2)])
def test_classic_only_arguments_are_refused_on_a_quorum_queue(conn, names, arg, value):
    ch = conn.channel()
    q = names.queue("bad")
    assert_channel_error(
        conn, ch, lambda: ch.queue_declare(q, durable=True, arguments=dict(Q, **{arg: value})),
        406, "PRECONDITION_FAILED - invalid arg '%s' for queue '%s' in vhost '/' of queue type "
        "rabbit_quorum_queue" % (arg, q))


def test_an_unknown_dead_letter_strategy_is_refused(conn, names):
    ch = conn.channel()
    q = names.queue("bad")
    assert_channel_error(
        conn, ch,
        lambda: ch.queue_declare(q, durable=True,
                                 arguments=dict(Q, **{"x-dead-letter-strategy": "foo"})),
        406, "PRECONDITION_FAILED - invalid arg 'x-dead-letter-strategy' for queue '%s' in "
        "vhost '/': invalid_dlx_strategy" % q)


def test_replication_hints_are_accepted(ch, names):
    quorum(ch, names, **{"x-quorum-initial-group-size": 3, "x-ha-policy": "all",
                         "x-single-active-consumer": True})


def test_a_classic_queue_cannot_be_redeclared_as_quorum(conn, names):
    ch = conn.channel()
    q = names.queue("c")
    ch.queue_declare(q, durable=True)
    assert_channel_error(
        conn, ch, lambda: ch.queue_declare(q, durable=True, arguments=Q), 406,
        "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '%s' in vhost '/': "
        "received the value 'quorum' of type 'longstr' but current is none" % q)


def test_a_classic_queue_with_a_delivery_limit_counts_too(broker, conn, ch, names):
    # Warren's own: RabbitMQ 3.10 refuses x-delivery-limit on classic queues.
    if broker.external:
        pytest.skip("RabbitMQ refuses x-delivery-limit on classic queues")
    dlq, dlx = dlq_for(ch, names)
    q = names.queue("classic")
    ch.queue_declare(q, arguments=dict(dlx, **{"x-delivery-limit": 1}))
    ch.basic_publish("", q, b"m")
    seen = []
    for _ in range(2):
        d = get_message(conn, ch, q)
        seen.append(delivery_count(d))
        ch.basic_nack(d.method.delivery_tag, requeue=True)
    assert seen == [0, 1]
    dead = get_message(conn, ch, dlq, auto_ack=True)
    assert dead.properties.headers["x-first-death-reason"] == "delivery_limit"

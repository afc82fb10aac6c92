"""Dead-lettering (x-dead-letter-exchange), with RabbitMQ 3.10's answers.

Recorded from RabbitMQ 3.10 (Debian's rabbitmq-server, `scripts/compare.sh
start rabbitmq`); the suite passes against it with
WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5682/%2f.
"""

import time

import pika

from helpers import get_message, message_count


def setup_dlq(ch, names, kind="fanout"):
    dlx, dlq = names.exchange("dlx"), names.queue("dlq")
    ch.exchange_declare(dlx, kind)
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx, "#" if kind == "topic" else "")
    return dlx, dlq


def test_a_rejected_message_is_dead_lettered_with_x_death(conn, ch, names):
    dlx, dlq = setup_dlq(ch, names)
    src = names.queue("src")
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": dlx,
                                     "x-dead-letter-routing-key": "rk2"})
    ch.basic_publish("", src, b"b", pika.BasicProperties(headers={"h": 1}, delivery_mode=2))
    m = get_message(conn, ch, src)
    ch.basic_reject(m.method.delivery_tag, requeue=False)
    d = get_message(conn, ch, dlq, auto_ack=True)
    assert d.method.exchange == dlx
    assert d.method.routing_key == "rk2"
    assert d.body == b"b"
    assert d.properties.delivery_mode == 2
    h = d.properties.headers
    assert h["h"] == 1
    [death] = h["x-death"]
    assert death["count"] == 1
    assert death["reason"] == "rejected"
    assert death["queue"] == src
    assert death["exchange"] == ""
    assert death["routing-keys"] == [src]
    assert "original-expiration" not in death
    assert (h["x-first-death-reason"], h["x-first-death-queue"], h["x-first-death-exchange"]) == \
        ("rejected", src, "")
    assert message_count(ch, src) == 0


def test_an_expired_message_is_dead_lettered_without_its_expiration(conn, ch, names):
    dlx, dlq = setup_dlq(ch, names)
    src = names.queue("src")
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": dlx, "x-message-ttl": 100})
    ch.basic_publish("", src, b"a", pika.BasicProperties(expiration="50"))
    d = get_message(conn, ch, dlq, auto_ack=True)
    assert d.method.routing_key == src
    assert d.properties.expiration is None
    [death] = d.properties.headers["x-death"]
    assert death["reason"] == "expired"
    assert death["original-expiration"] == "50"


def test_a_second_death_in_the_same_queue_for_the_same_reason_counts(conn, ch, names):
    dlx, dlq = setup_dlq(ch, names)
    src = names.queue("src")
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": dlx})
    ch.basic_publish("", src, b"c")
    ch.basic_nack(get_message(conn, ch, src).method.delivery_tag, requeue=False)
    first = get_message(conn, ch, dlq, auto_ack=True)
    ch.basic_publish("", src, b"c", pika.BasicProperties(headers=first.properties.headers))
    ch.basic_nack(get_message(conn, ch, src).method.delivery_tag, requeue=False)
    again = get_message(conn, ch, dlq, auto_ack=True)
    [death] = again.properties.headers["x-death"]
    assert death["count"] == 2
    assert again.properties.headers["x-first-death-queue"] == src


def test_a_retry_ladder_brings_a_rejected_message_back_after_the_delay(conn, ch, names):
    work, wait = names.queue("work"), names.queue("wait")
    # work --reject--> (default exchange, key=wait) --TTL 200 ms--> back to work
    ch.queue_declare(work, arguments={"x-dead-letter-exchange": "",
                                      "x-dead-letter-routing-key": wait})
    ch.queue_declare(wait, arguments={"x-dead-letter-exchange": "",
                                      "x-dead-letter-routing-key": work,
                                      "x-message-ttl": 200})
    ch.basic_publish("", work, b"job")
    m = get_message(conn, ch, work)
    assert m.method.redelivered is False
    t0 = time.monotonic()
    ch.basic_reject(m.method.delivery_tag, requeue=False)
    back = get_message(conn, ch, work, auto_ack=True, timeout=5)
    assert time.monotonic() - t0 >= 0.15
    deaths = back.properties.headers["x-death"]
    assert [(d["queue"], d["reason"]) for d in deaths] == [(wait, "expired"), (work, "rejected")]


def test_an_expiry_cycle_without_a_rejection_drops_the_message(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": "",
                                   "x-dead-letter-routing-key": q,
                                   "x-message-ttl": 50})
    ch.basic_publish("", q, b"loop")
    time.sleep(0.5)
    assert message_count(ch, q) == 0


def test_a_missing_dead_letter_exchange_drops_the_message(conn, ch, names):
    src = names.queue("src")
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": names.exchange("absent")})
    ch.basic_publish("", src, b"x")
    ch.basic_reject(get_message(conn, ch, src).method.delivery_tag, requeue=False)
    time.sleep(0.2)
    assert message_count(ch, src) == 0

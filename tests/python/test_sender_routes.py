"""Sender-selected distribution (the `CC` and `BCC` headers), with RabbitMQ
3.10's answers (recorded from Debian's rabbitmq-server via
`scripts/compare.sh start rabbitmq`; the file passes against it with
WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5682/%2f
WARREN_TEST_IGNORE_SHARDS=1).
"""

import pika
import pytest

from helpers import assert_channel_error, get_message, routed_bodies


def three_queues(ch, names, kind="direct"):
    x = names.exchange("x")
    ch.exchange_declare(x, kind)
    qs = [names.queue(n) for n in ("a", "b", "c")]
    for q in qs:
        ch.queue_declare(q)
        ch.queue_bind(q, x, q)
    return x, qs


def test_cc_and_bcc_route_to_extra_keys_and_bcc_is_removed(conn, ch, names):
    x, (a, b, c) = three_queues(ch, names)
    ch.basic_publish(x, a, b"m", pika.BasicProperties(
        headers={"CC": [b], "BCC": [c], "other": 1}))
    for q in (a, b, c):
        got = get_message(conn, ch, q, auto_ack=True)
        assert got.body == b"m"
        # The delivered routing key is the publish's own; CC stays, BCC goes.
        assert got.method.routing_key == a
        assert got.properties.headers == {"CC": [b], "other": 1}


def test_each_queue_gets_a_message_once_whatever_the_number_of_keys(conn, ch, names):
    _, (a, b, c) = three_queues(ch, names)
    # The default exchange: CC keys name queues too; a missing one is ignored.
    ch.basic_publish("", a, b"m", pika.BasicProperties(
        headers={"CC": [b, b, a, "no-such-queue"]}))
    assert routed_bodies(conn, ch, a) == [b"m"]
    assert routed_bodies(conn, ch, b) == [b"m"]
    assert routed_bodies(conn, ch, c) == []


def test_a_message_routed_only_by_bcc_is_not_returned_and_keeps_empty_headers(conn, ch, names):
    x, (_, _, c) = three_queues(ch, names)
    ch.confirm_delivery()
    ch.basic_publish(x, "unbound-key", b"m", pika.BasicProperties(headers={"BCC": [c]}),
                     mandatory=True)
    got = get_message(conn, ch, c, auto_ack=True)
    assert got.properties.headers == {}


def test_cc_works_with_topic_patterns(conn, ch, names):
    x = names.exchange("t")
    q = names.queue("t")
    ch.exchange_declare(x, "topic")
    ch.queue_declare(q)
    ch.queue_bind(q, x, "a.*")
    ch.basic_publish(x, "nothing", b"m", pika.BasicProperties(headers={"CC": ["a.b"]}))
    assert routed_bodies(conn, ch, q) == [b"m"]


def test_only_the_exact_header_names_count_and_non_string_elements_are_ignored(
        conn, ch, names):
    x, (a, b, c) = three_queues(ch, names)
    ch.basic_publish(x, a, b"m", pika.BasicProperties(headers={"cc": [b], "CC": [5, c]}))
    assert routed_bodies(conn, ch, a) == [b"m"]
    assert routed_bodies(conn, ch, b) == []
    assert routed_bodies(conn, ch, c) == [b"m"]


@pytest.mark.parametrize("header,value,type_name", [
    ("CC", "q", "longstr"),
    ("BCC", 7, "signedint"),
    ("CC", {"k": "v"}, "table"),
])
def test_a_cc_header_that_is_not_an_array_closes_the_channel_with_406(
        conn, names, header, value, type_name):
    ch = conn.channel()
    q = names.queue("q")
    ch.queue_declare(q)
    assert_channel_error(
        conn, ch,
        lambda: (ch.basic_publish("", q, b"m", pika.BasicProperties(headers={header: value})),
                 ch.queue_declare(q, passive=True)),
        406, 'PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,"%s",%s}'
        % (header, type_name))
    ch2 = conn.channel()
    assert ch2.queue_declare(q, passive=True).method.message_count == 0

"""The x-consistent-hash exchange type, with the answers of RabbitMQ 3.10's
rabbitmq_consistent_hash_exchange plugin (recorded from Debian's
rabbitmq-server with the plugin enabled; the file passes against it with
WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5682/%2f
WARREN_TEST_IGNORE_SHARDS=1). Which queue a given key lands on differs
(Warren hashes with FNV-1a, the plugin with Erlang's phash2): the tests
check the properties, not the mapping.
"""

import pika
import pytest

from helpers import assert_channel_error, message_count

CH = "x-consistent-hash"


def setup(ch, names, weights, args=None):
    x = names.exchange("ch")
    ch.exchange_declare(x, CH, arguments=args)
    qs = []
    for i, w in enumerate(weights):
        q = names.queue("q%d" % i)
        ch.queue_declare(q)
        ch.queue_bind(q, x, str(w))
        qs.append(q)
    return x, qs


def test_messages_split_by_weight_and_each_goes_to_one_queue(conn, ch, names):
    x, (q1, q2) = setup(ch, names, [1, 3])
    ch.confirm_delivery()
    for i in range(4000):
        ch.basic_publish(x, "k%d" % i, b"x")
    a, b = message_count(ch, q1), message_count(ch, q2)
    assert a + b == 4000
    assert 2700 < b < 3300, (a, b)


def test_the_same_routing_key_always_goes_to_the_same_queue(conn, ch, names):
    x, qs = setup(ch, names, [1, 1, 1])
    ch.confirm_delivery()
    for _ in range(60):
        ch.basic_publish(x, "order-42", b"x")
    counts = sorted(message_count(ch, q) for q in qs)
    assert counts == [0, 0, 60]


def test_a_header_can_be_hashed_instead(conn, ch, names):
    x, qs = setup(ch, names, [1, 1], args={"hash-header": "account"})
    ch.confirm_delivery()
    for i in range(40):
        ch.basic_publish(x, "k%d" % i, b"x", pika.BasicProperties(headers={"account": "a-7"}))
    assert sorted(message_count(ch, q) for q in qs) == [0, 40]
    # A message without the header is still routed (RabbitMQ 3.10 too).
    ch.basic_publish(x, "", b"x", mandatory=True)
    assert sum(message_count(ch, q) for q in qs) == 41


def test_a_property_can_be_hashed_instead(conn, ch, names):
    x, qs = setup(ch, names, [1, 1], args={"hash-property": "message_id"})
    ch.confirm_delivery()
    for i in range(30):
        ch.basic_publish(x, "k%d" % i, b"x", pika.BasicProperties(message_id="m-1"))
    assert sorted(message_count(ch, q) for q in qs) == [0, 30]


@pytest.mark.parametrize("key,text", [
    ("abc", 'The binding key must be an integer: <<"abc">>'),
    ("1.5", 'The binding key must be an integer: <<"1.5">>'),
    ("", "The binding key must be an integer: <<>>"),
    ("0", "The binding key must be greater than 0"),
    ("-1", "The binding key must be greater than 0"),
])
def test_a_binding_key_that_is_not_a_positive_integer_is_refused(conn, names, key, text):
    ch = conn.channel()
    x = names.exchange("ch")
    q = names.queue("q")
    ch.exchange_declare(x, CH)
    ch.queue_declare(q)
    assert_channel_error(conn, ch, lambda: ch.queue_bind(q, x, key), 406,
                         "PRECONDITION_FAILED - " + text)


@pytest.mark.parametrize("args,text", [
    ({"hash-header": "h", "hash-property": "message_id"},
     "hash-header and hash-property are mutually exclusive"),
    ({"hash-property": "foo"}, "Unsupported property: foo"),
])
def test_invalid_exchange_arguments_are_refused(conn, names, args, text):
    ch = conn.channel()
    x = names.exchange("bad")
    assert_channel_error(conn, ch, lambda: ch.exchange_declare(x, CH, arguments=args), 406,
                         "PRECONDITION_FAILED - " + text)


def test_property_hashing_spreads_messages_with_one_routing_key(conn, ch, names):
    # Same routing key, different message ids: the choice depends on the
    # property, so no routing decision may be reused between messages.
    x, qs = setup(ch, names, [1, 1], args={"hash-property": "message_id"})
    ch.confirm_delivery()
    for i in range(200):
        ch.basic_publish(x, "same-key", b"x", pika.BasicProperties(message_id="m-%d" % i))
    counts = [message_count(ch, q) for q in qs]
    assert sum(counts) == 200 and min(counts) > 50, counts

"""A binding's `properties_key` in the management API is RabbitMQ's:
`erlang:phash2` of the arguments table as RabbitMQ stores it, for bindings
made over AMQP with every field type pika sends. The expected keys were
recorded from RabbitMQ 3.10.8 (a private node, the same bindings); tools
such as terraform keep the key as the binding's id, so it must not change
when the state moves between brokers."""

import datetime
import decimal
import urllib.parse
import uuid

CASES = [
    ({"x-match": "all", "format": "pdf"}, "~GdXQng"),
    ({"n": 42}, "~Egqc4w"),
    ({"b": True}, "~_sQtSA"),
    ({"neg": -7}, "~_1RGDA"),
    ({"big": 2 ** 40}, "~PAtzfA"),
    ({"t": {"a": "b", "c": 1}}, "~dg5lxA"),
    ({"arr": ["x", 1, True]}, "~EW2eyg"),
    # Sorted by name before hashing, whatever the order on the wire.
    ({"z": "1", "a": "2", "m": "3"}, "~MD4rvA"),
    ({"d": decimal.Decimal("3.14")}, "~YN9Gyg"),
    ({"ts": datetime.datetime(2020, 1, 2, 3, 4, 5)}, "~lQJBeA"),
    ({"bytes": b"\x00\x01"}, "~yYk3zg"),
    ({"v": None}, "~wLtq5A"),
    ({"u": "h\u00e9llo w\u00f6rld"}, "~Hc3cCA"),
]


def test_properties_keys_of_amqp_bindings_are_rabbitmqs(broker, ch):
    x = "pk.h." + uuid.uuid4().hex[:6]
    q = "pk.q." + uuid.uuid4().hex[:6]
    ch.exchange_declare(x, "headers", auto_delete=True)
    # Not exclusive: the HTTP API may not touch an exclusive queue.
    ch.queue_declare(q)
    for i, (args, _) in enumerate(CASES):
        ch.queue_bind(q, x, "amqp key %d" % i, arguments=args)
    path = "/api/bindings/%%2F/e/%s/q/%s" % (x, q)
    got = {b["routing_key"]: b["properties_key"] for b in broker.api("GET", path)}
    for i, (_, suffix) in enumerate(CASES):
        assert got["amqp key %d" % i] == "amqp+key+%d%s" % (i, suffix), (i, CASES[i][0])
    # The key addresses the binding: read one by it (terraform reads its
    # binding resource so), then delete it.
    key = "amqp+key+5" + CASES[5][1]
    got = broker.api("GET", path + "/" + urllib.parse.quote(key, safe="~"))
    assert (got["routing_key"], got["arguments"], got["properties_key"]) == ("amqp key 5", CASES[5][0], key)
    assert got["destination_type"] == "queue" and got["source"] == x and got["destination"] == q
    broker.api("DELETE", path + "/" + urllib.parse.quote(key, safe="~"))
    left = {b["routing_key"] for b in broker.api("GET", path)}
    assert "amqp key 5" not in left and "amqp key 4" in left
    ch.queue_delete(q)

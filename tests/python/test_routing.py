"""Routing semantics of the direct, fanout, topic and headers exchanges and the default exchange."""

import pika
import pytest

from helpers import assert_channel_error, routed_bodies


def setup_queues(ch, names, x, xtype, bindings):
    """bindings: {queue_tag: [(routing_key, arguments), ...]} -> {queue_tag: queue_name}"""
    ch.exchange_declare(x, xtype)
    out = {}
    for tag, binds in bindings.items():
        q = names.queue(tag)
        ch.queue_declare(q)
        for key, args in binds:
            ch.queue_bind(q, x, key, arguments=args)
        out[tag] = q
    return out


def test_direct_exchange_routes_on_exact_key(conn, ch, names):
    x = names.exchange()
    qs = setup_queues(ch, names, x, "direct", {
        "err": [("error", None)], "all": [("error", None), ("info", None), ("warn", None)]})
    for key in ("error", "info", "debug", "warn", "Error", "error.x", ""):
        ch.basic_publish(x, key, key.encode() or b"<empty>")
    assert routed_bodies(conn, ch, qs["err"]) == [b"error"]
    assert routed_bodies(conn, ch, qs["all"]) == [b"error", b"info", b"warn"]


def test_direct_exchange_multiple_bindings_deliver_one_copy(conn, ch, names):
    x = names.exchange()
    qs = setup_queues(ch, names, x, "direct", {"q": [("a", None), ("a", None)]})
    ch.basic_publish(x, "a", b"once")
    assert routed_bodies(conn, ch, qs["q"]) == [b"once"]


def test_fanout_exchange_ignores_routing_key_and_copies_to_every_queue(conn, ch, names):
    x = names.exchange()
    qs = setup_queues(ch, names, x, "fanout", {
        "a": [("", None)], "b": [("some-key", None)], "c": [("x", None), ("y", None)]})
    ch.basic_publish(x, "whatever", b"one")
    ch.basic_publish(x, "", b"two")
    for q in qs.values():
        assert routed_bodies(conn, ch, q) == [b"one", b"two"]


TOPIC_CASES = [
    # (binding key, routing key, matches)
    ("a.b.c", "a.b.c", True),
    ("a.b.c", "a.b", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.c", False),
    ("a.*.c", "a.b.b.c", False),
    ("*", "a", True),
    ("*", "a.b", False),
    ("*", "", False),  # an empty routing key has no words at all
    ("*.b", "b", False),
    ("*.*", "a.b", True),
    ("#", "", True),
    ("#", "a.b.c", True),
    ("a.#", "a", True),
    ("a.#", "a.b.c", True),
    ("a.#", "ab.c", False),
    ("#.c", "c", True),
    ("#.c", "a.b.c", True),
    ("#.c", "a.b.cc", False),
    ("a.#.c", "a.c", True),
    ("a.#.c", "a.b.x.c", True),
    ("a.#.c", "a.b.x.d", False),
    ("#.*", "a", True),
    ("#.*", "", False),
    ("*.#", "a.b", True),
    ("a.*.#", "a", False),
    ("a.*.#", "a.b", True),
    ("#.#", "a.b", True),
    ("kern.*", "kern.critical", True),
    ("*.critical", "kern.critical", True),
    ("*.critical", "a.kern.critical", False),
    ("a..b", "a..b", True),
    ("a.*.b", "a..b", True),
]


@pytest.mark.parametrize("binding,key,matches", TOPIC_CASES,
                         ids=["%s~%s" % (b or "<empty>", k or "<empty>") for b, k, _ in TOPIC_CASES])
def test_topic_exchange_wildcard_matching(conn, ch, names, binding, key, matches):
    x = names.exchange()
    qs = setup_queues(ch, names, x, "topic", {"q": [(binding, None)]})
    ch.basic_publish(x, key, b"msg")
    assert routed_bodies(conn, ch, qs["q"]) == ([b"msg"] if matches else [])


def test_topic_exchange_overlapping_bindings_deliver_one_copy_per_queue(conn, ch, names):
    x = names.exchange()
    qs = setup_queues(ch, names, x, "topic", {
        "q1": [("*.orange.*", None), ("#", None), ("quick.#", None)],
        "q2": [("*.*.rabbit", None), ("lazy.#", None)]})
    ch.basic_publish(x, "quick.orange.rabbit", b"qor")
    ch.basic_publish(x, "lazy.pink.rabbit", b"lpr")
    ch.basic_publish(x, "quick.brown.fox", b"qbf")
    assert routed_bodies(conn, ch, qs["q1"]) == [b"qor", b"lpr", b"qbf"]
    assert routed_bodies(conn, ch, qs["q2"]) == [b"qor", b"lpr"]


def test_topic_unbind_removes_only_that_pattern(conn, ch, names):
    x = names.exchange()
    qs = setup_queues(ch, names, x, "topic", {"q": [("a.*", None), ("*.b", None)]})
    ch.queue_unbind(qs["q"], x, "a.*")
    ch.basic_publish(x, "a.x", b"gone")
    ch.basic_publish(x, "a.b", b"kept")
    assert routed_bodies(conn, ch, qs["q"]) == [b"kept"]


def headers_publish(ch, x, body, headers):
    ch.basic_publish(x, "", body, pika.BasicProperties(headers=headers))


def test_headers_exchange_x_match_all(conn, ch, names):
    x = names.exchange()
    qs = setup_queues(ch, names, x, "headers", {
        "q": [("", {"x-match": "all", "format": "pdf", "type": "report"})]})
    headers_publish(ch, x, b"both", {"format": "pdf", "type": "report"})
    headers_publish(ch, x, b"both+extra", {"format": "pdf", "type": "report", "other": 1})
    headers_publish(ch, x, b"one", {"format": "pdf"})
    headers_publish(ch, x, b"wrong-value", {"format": "pdf", "type": "log"})
    headers_publish(ch, x, b"none", None)
    assert routed_bodies(conn, ch, qs["q"]) == [b"both", b"both+extra"]


def test_headers_exchange_x_match_any(conn, ch, names):
    x = names.exchange()
    qs = setup_queues(ch, names, x, "headers", {
        "q": [("", {"x-match": "any", "format": "pdf", "type": "report"})]})
    headers_publish(ch, x, b"both", {"format": "pdf", "type": "report"})
    headers_publish(ch, x, b"one", {"format": "pdf"})
    headers_publish(ch, x, b"other", {"type": "report", "z": "z"})
    headers_publish(ch, x, b"wrong-values", {"format": "zip", "type": "log"})
    headers_publish(ch, x, b"none", None)
    assert routed_bodies(conn, ch, qs["q"]) == [b"both", b"one", b"other"]


def test_headers_exchange_defaults_to_x_match_all(conn, ch, names):
    x = names.exchange()
    qs = setup_queues(ch, names, x, "headers", {"q": [("", {"a": "1", "b": "2"})]})
    headers_publish(ch, x, b"a-only", {"a": "1"})
    headers_publish(ch, x, b"both", {"a": "1", "b": "2"})
    assert routed_bodies(conn, ch, qs["q"]) == [b"both"]


def test_headers_exchange_matches_typed_values_and_ignores_routing_key(conn, ch, names):
    x = names.exchange()
    qs = setup_queues(ch, names, x, "headers", {"q": [("ignored", {"x-match": "all", "n": 5})]})
    headers_publish(ch, x, b"int-5", {"n": 5})
    headers_publish(ch, x, b"int-6", {"n": 6})
    assert routed_bodies(conn, ch, qs["q"]) == [b"int-5"]


def test_headers_exchange_binding_without_arguments_matches_everything(conn, ch, names):
    x = names.exchange()
    qs = setup_queues(ch, names, x, "headers", {"q": [("", {})]})
    headers_publish(ch, x, b"with", {"k": "v"})
    headers_publish(ch, x, b"without", None)
    assert routed_bodies(conn, ch, qs["q"]) == [b"with", b"without"]


def test_amq_match_and_amq_headers_route_like_headers_exchanges(conn, ch, names):
    for x in ("amq.match", "amq.headers"):
        q = names.queue(x)
        ch.queue_declare(q)
        ch.queue_bind(q, x, arguments={"x-match": "any", "tag": q})
        headers_publish(ch, x, b"hit", {"tag": q})
        headers_publish(ch, x, b"miss", {"tag": "nope"})
        assert routed_bodies(conn, ch, q) == [b"hit"]


def test_predeclared_direct_fanout_topic_exchanges_route(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    ch.queue_bind(q, "amq.direct", q)
    ch.queue_bind(q, "amq.topic", q + ".#")
    ch.queue_bind(q, "amq.fanout")
    ch.basic_publish("amq.direct", q, b"direct")
    ch.basic_publish("amq.topic", q + ".x.y", b"topic")
    ch.basic_publish("amq.fanout", "", b"fanout")
    assert routed_bodies(conn, ch, q) == [b"direct", b"topic", b"fanout"]
    ch.queue_unbind(q, "amq.direct", q)
    ch.queue_unbind(q, "amq.topic", q + ".#")
    ch.queue_unbind(q, "amq.fanout")


def test_default_exchange_routes_by_queue_name(conn, ch, names):
    q1, q2 = names.queue("1"), names.queue("2")
    ch.queue_declare(q1)
    ch.queue_declare(q2)
    ch.basic_publish("", q1, b"for-1")
    ch.basic_publish("", q2, b"for-2")
    ch.basic_publish("", names.queue("missing"), b"for-nobody")
    assert routed_bodies(conn, ch, q1) == [b"for-1"]
    assert routed_bodies(conn, ch, q2) == [b"for-2"]


def test_default_exchange_refuses_queue_bind_with_403(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    assert_channel_error(conn, ch, lambda: ch.queue_bind(q, "", "other-key"), 403,
                         "ACCESS_REFUSED - operation not permitted on the default exchange")


def test_default_exchange_refuses_queue_unbind_with_403(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    assert_channel_error(conn, ch, lambda: ch.queue_unbind(q, "", q), 403,
                         "ACCESS_REFUSED - operation not permitted on the default exchange")

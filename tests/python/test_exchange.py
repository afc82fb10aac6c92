"""exchange class: declare/delete semantics, errors, exchange-to-exchange bindings."""

import pytest

from helpers import (assert_channel_error, assert_connection_usable, channel_error,
                     connection_error, exchange_exists, routed_bodies, wait_until)

EXCHANGE_TYPES = ["direct", "fanout", "topic", "headers"]


def inequivalent(arg, name, received, current):
    return ("PRECONDITION_FAILED - inequivalent arg '%s' for exchange '%s' in vhost '/': "
            "received '%s' but current is '%s'" % (arg, name, received, current))


@pytest.mark.parametrize("xtype", EXCHANGE_TYPES)
def test_declare_each_exchange_type_then_passive_declare_finds_it(conn, ch, names, xtype):
    x = names.exchange(xtype)
    ch.exchange_declare(x, xtype)
    ch.exchange_declare(x, xtype, passive=True)
    assert exchange_exists(conn, x)


@pytest.mark.parametrize("durable,auto_delete,internal", [
    (True, False, False), (False, True, False), (False, False, True), (True, True, True)])
def test_redeclare_with_identical_properties_is_ok(ch, names, durable, auto_delete, internal):
    x = names.exchange()
    for _ in range(2):
        ch.exchange_declare(x, "topic", durable=durable, auto_delete=auto_delete, internal=internal)


def test_passive_declare_ignores_type_and_flags(ch, names):
    x = names.exchange()
    ch.exchange_declare(x, "fanout", durable=True)
    ch.exchange_declare(x, "direct", passive=True, durable=False)


def test_inequivalent_type_redeclare_is_406_and_closes_only_the_channel(conn, ch, names):
    x = names.exchange()
    ch.exchange_declare(x, "direct")
    assert_channel_error(conn, ch, lambda: ch.exchange_declare(x, "fanout"),
                         406, inequivalent("type", x, "fanout", "direct"))


def test_inequivalent_durable_redeclare_is_406(conn, ch, names):
    x = names.exchange()
    ch.exchange_declare(x, "direct", durable=False)
    assert_channel_error(conn, ch, lambda: ch.exchange_declare(x, "direct", durable=True),
                         406, inequivalent("durable", x, "true", "false"))


def test_inequivalent_auto_delete_redeclare_is_406(conn, ch, names):
    x = names.exchange()
    ch.exchange_declare(x, "direct", auto_delete=True)
    assert_channel_error(conn, ch, lambda: ch.exchange_declare(x, "direct", auto_delete=False),
                         406, inequivalent("auto_delete", x, "false", "true"))


def test_inequivalent_internal_redeclare_is_406(conn, ch, names):
    x = names.exchange()
    ch.exchange_declare(x, "direct")
    assert_channel_error(conn, ch, lambda: ch.exchange_declare(x, "direct", internal=True),
                         406, inequivalent("internal", x, "true", "false"))


def test_passive_declare_of_missing_exchange_is_404(conn, ch, names):
    x = names.exchange("missing")
    assert_channel_error(conn, ch, lambda: ch.exchange_declare(x, passive=True),
                         404, "NOT_FOUND - no exchange '%s' in vhost '/'" % x)


def test_unknown_exchange_type_is_503_connection_error(conn, ch, names):
    x = names.exchange()
    e = connection_error(conn, lambda: ch.exchange_declare(x, "x-no-such-type"))
    assert (e.reply_code, e.reply_text) == (503, "COMMAND_INVALID - unknown exchange type 'x-no-such-type'")
    assert conn.is_closed


def test_declaring_amq_prefixed_exchange_is_403(conn, ch, names):
    x = "amq." + names.prefix
    assert_channel_error(conn, ch, lambda: ch.exchange_declare(x, "direct"),
                         403, "ACCESS_REFUSED - exchange name '%s' contains reserved prefix 'amq.*'" % x)
    assert not exchange_exists(conn, x)


@pytest.mark.parametrize("name,xtype", [
    ("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
    ("amq.headers", "headers"), ("amq.match", "headers")])
def test_predeclared_exchange_exists_with_rabbitmq_type(conn, ch, name, xtype):
    ch.exchange_declare(name, passive=True)
    # Redeclaring an existing amq.* exchange with its real properties is fine...
    ch.exchange_declare(name, xtype, durable=True)
    # ...and with another type is an inequivalence, not a reserved-name error.
    wrong = "fanout" if xtype != "fanout" else "direct"
    assert_channel_error(conn, ch, lambda: ch.exchange_declare(name, wrong, durable=True),
                         406, inequivalent("type", name, wrong, xtype))


def test_delete_exchange_then_passive_declare_is_404(conn, ch, names):
    x = names.exchange()
    ch.exchange_declare(x, "fanout")
    ch.exchange_delete(x)
    assert not exchange_exists(conn, x)


def test_delete_missing_exchange_is_ok(conn, ch, names):
    ch.exchange_delete(names.exchange("missing"))
    assert ch.is_open


def test_delete_if_unused_with_queue_binding_is_406(conn, ch, names):
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, "direct")
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")
    assert_channel_error(conn, ch, lambda: ch.exchange_delete(x, if_unused=True),
                         406, "PRECONDITION_FAILED - exchange '%s' in vhost '/' in use" % x)
    assert exchange_exists(conn, x)


def test_delete_if_unused_when_source_of_exchange_binding_is_406(conn, ch, names):
    src, dst = names.exchange("src"), names.exchange("dst")
    ch.exchange_declare(src, "direct")
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(dst, src, "k")
    assert_channel_error(conn, ch, lambda: ch.exchange_delete(src, if_unused=True),
                         406, "PRECONDITION_FAILED - exchange '%s' in vhost '/' in use" % src)


def test_delete_if_unused_without_bindings_succeeds(conn, ch, names):
    x = names.exchange()
    ch.exchange_declare(x, "direct")
    ch.exchange_delete(x, if_unused=True)
    assert not exchange_exists(conn, x)


def test_deleting_exchange_removes_its_bindings(conn, ch, names):
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, "fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, x)
    ch.exchange_delete(x)
    ch.exchange_declare(x, "fanout")
    ch.basic_publish(x, "", b"after-recreate")
    assert routed_bodies(conn, ch, q) == []


def test_auto_delete_exchange_goes_away_when_last_binding_removed(conn, ch, names):
    x, q1, q2 = names.exchange(), names.queue("1"), names.queue("2")
    ch.exchange_declare(x, "direct", auto_delete=True)
    ch.queue_declare(q1)
    ch.queue_declare(q2)
    ch.queue_bind(q1, x, "a")
    ch.queue_bind(q2, x, "b")
    ch.queue_unbind(q1, x, "a")
    assert exchange_exists(conn, x)
    ch.queue_unbind(q2, x, "b")
    wait_until(conn, lambda: not exchange_exists(conn, x), what="auto-delete exchange to vanish")


def test_auto_delete_exchange_without_bindings_stays(conn, ch, names):
    x = names.exchange()
    ch.exchange_declare(x, "direct", auto_delete=True)
    assert exchange_exists(conn, x)


def test_publish_to_internal_exchange_is_403(conn, ch, names):
    x = names.exchange()
    ch.exchange_declare(x, "fanout", internal=True)
    assert_channel_error(conn, ch, lambda: ch.basic_publish(x, "", b"nope"),
                         403, "ACCESS_REFUSED - cannot publish to internal exchange '%s' in vhost '/'" % x)


def test_internal_exchange_receives_via_exchange_binding(conn, ch, names):
    front, inner, q = names.exchange("front"), names.exchange("inner"), names.queue()
    ch.exchange_declare(front, "fanout")
    ch.exchange_declare(inner, "fanout", internal=True)
    ch.exchange_bind(inner, front)
    ch.queue_declare(q)
    ch.queue_bind(q, inner)
    ch.basic_publish(front, "", b"through-internal")
    assert routed_bodies(conn, ch, q) == [b"through-internal"]


def test_publish_to_missing_exchange_is_404(conn, ch, names):
    x = names.exchange("missing")
    assert_channel_error(conn, ch, lambda: ch.basic_publish(x, "k", b"lost"),
                         404, "NOT_FOUND - no exchange '%s' in vhost '/'" % x)


def test_exchange_to_exchange_binding_routes_by_binding_key(conn, ch, names):
    src, dst, q = names.exchange("src"), names.exchange("dst"), names.queue()
    ch.exchange_declare(src, "direct")
    ch.exchange_declare(dst, "fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, dst)
    ch.exchange_bind(dst, src, "match")
    ch.basic_publish(src, "match", b"yes")
    ch.basic_publish(src, "other", b"no")
    ch.basic_publish(dst, "anything", b"direct-to-dst")
    assert routed_bodies(conn, ch, q) == [b"yes", b"direct-to-dst"]


def test_exchange_unbind_stops_routing(conn, ch, names):
    src, dst, q = names.exchange("src"), names.exchange("dst"), names.queue()
    ch.exchange_declare(src, "topic")
    ch.exchange_declare(dst, "fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, dst)
    ch.exchange_bind(dst, src, "a.#")
    ch.basic_publish(src, "a.b", b"bound")
    ch.exchange_unbind(dst, src, "a.#")
    ch.basic_publish(src, "a.b", b"unbound")
    assert routed_bodies(conn, ch, q) == [b"bound"]


def test_exchange_binding_chain_and_diamond_deliver_once_per_queue(conn, ch, names):
    a, b, c, q = names.exchange("a"), names.exchange("b"), names.exchange("c"), names.queue()
    for x in (a, b, c):
        ch.exchange_declare(x, "fanout")
    # a -> b -> c and a -> c: the queue bound to c must still get one copy.
    ch.exchange_bind(b, a)
    ch.exchange_bind(c, b)
    ch.exchange_bind(c, a)
    ch.queue_declare(q)
    ch.queue_bind(q, c)
    ch.queue_bind(q, b)
    ch.basic_publish(a, "", b"once")
    assert routed_bodies(conn, ch, q) == [b"once"]


def test_exchange_binding_cycle_does_not_loop(conn, ch, names):
    a, b, q = names.exchange("a"), names.exchange("b"), names.queue()
    ch.exchange_declare(a, "fanout")
    ch.exchange_declare(b, "fanout")
    ch.exchange_bind(b, a)
    ch.exchange_bind(a, b)
    ch.queue_declare(q)
    ch.queue_bind(q, b)
    ch.basic_publish(a, "", b"cycle")
    assert routed_bodies(conn, ch, q) == [b"cycle"]


def test_exchange_bind_with_missing_source_is_404(conn, ch, names):
    dst, src = names.exchange("dst"), names.exchange("missing")
    ch.exchange_declare(dst, "fanout")
    assert_channel_error(conn, ch, lambda: ch.exchange_bind(dst, src),
                         404, "NOT_FOUND - no exchange '%s' in vhost '/'" % src)


def test_exchange_bind_with_missing_destination_is_404(conn, ch, names):
    src, dst = names.exchange("src"), names.exchange("missing")
    ch.exchange_declare(src, "fanout")
    assert_channel_error(conn, ch, lambda: ch.exchange_bind(dst, src),
                         404, "NOT_FOUND - no exchange '%s' in vhost '/'" % dst)


def test_declare_and_delete_default_exchange_are_403(conn, names):
    ch = conn.channel()
    assert_channel_error(conn, ch, lambda: ch.exchange_declare("", "direct"),
                         403, "ACCESS_REFUSED - operation not permitted on the default exchange")
    ch = conn.channel()
    assert_channel_error(conn, ch, lambda: ch.exchange_delete(""),
                         403, "ACCESS_REFUSED - operation not permitted on the default exchange")

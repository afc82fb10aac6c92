"""queue class: declare (server-named, passive, durable, exclusive, auto-delete), bind, purge, delete."""

import pytest

from helpers import (Consumer, assert_channel_error, channel_error, message_count, queue_exists, routed_bodies,
                     wait_message_count, wait_queue_gone, wait_until)


def no_queue(q):
    return "NOT_FOUND - no queue '%s' in vhost '/'" % q


def locked(q):
    return ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost '/'. "
            "It could be originally declared on another connection or the exclusive property value "
            "does not match that of the original declaration." % q)


def test_server_named_queue_gets_amq_gen_name(ch):
    ok = ch.queue_declare("", exclusive=True)
    assert ok.method.queue.startswith("amq.gen-")
    assert len(ok.method.queue) > len("amq.gen-")
    assert (ok.method.message_count, ok.method.consumer_count) == (0, 0)


def test_server_named_queues_are_unique(ch):
    seen = {ch.queue_declare("", exclusive=True).method.queue for _ in range(20)}
    assert len(seen) == 20


def test_declare_returns_name_and_zero_counts(ch, names):
    q = names.queue()
    ok = ch.queue_declare(q)
    assert (ok.method.queue, ok.method.message_count, ok.method.consumer_count) == (q, 0, 0)


def test_redeclare_with_same_properties_is_ok(ch, names):
    q = names.queue()
    ch.queue_declare(q, durable=True)
    ch.queue_declare(q, durable=True)


def test_declare_ok_reports_ready_messages_and_consumers(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    wait_message_count(conn, ch, q, 3)
    ok = ch.queue_declare(q)
    assert (ok.method.message_count, ok.method.consumer_count) == (3, 0)

    consumer_ch = conn.channel()
    consumer_ch.basic_qos(prefetch_count=1)
    c = Consumer(conn, consumer_ch, q)
    c.wait(1)
    # The unacked delivery no longer counts as ready.
    ok = ch.queue_declare(q, passive=True)
    assert (ok.method.message_count, ok.method.consumer_count) == (2, 1)
    c.cancel()
    ok = ch.queue_declare(q, passive=True)
    assert ok.method.consumer_count == 0


def test_passive_declare_of_missing_queue_is_404(conn, ch, names):
    q = names.queue("missing")
    assert_channel_error(conn, ch, lambda: ch.queue_declare(q, passive=True), 404, no_queue(q))


def test_passive_declare_ignores_flags(ch, names):
    q = names.queue()
    ch.queue_declare(q, durable=True)
    ok = ch.queue_declare(q, passive=True, durable=False, auto_delete=True)
    assert ok.method.queue == q


def test_inequivalent_durable_redeclare_is_406(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q, durable=False)
    assert_channel_error(
        conn, ch, lambda: ch.queue_declare(q, durable=True), 406,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' in vhost '/': "
        "received 'true' but current is 'false'" % q)


def test_inequivalent_auto_delete_redeclare_is_406(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q, auto_delete=True)
    assert_channel_error(
        conn, ch, lambda: ch.queue_declare(q, auto_delete=False), 406,
        "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '%s' in vhost '/': "
        "received 'false' but current is 'true'" % q)


def test_declaring_amq_prefixed_queue_is_403(conn, ch, names):
    q = "amq." + names.prefix
    assert_channel_error(conn, ch, lambda: ch.queue_declare(q), 403,
                         "ACCESS_REFUSED - queue name '%s' contains reserved prefix 'amq.*'" % q)


def test_durable_queue_declared_durable_can_be_redeclared_passively(ch, names):
    q = names.queue()
    ch.queue_declare(q, durable=True)
    assert ch.queue_declare(q, passive=True).method.queue == q


def test_exclusive_queue_declare_from_another_connection_is_405(broker, ch, names):
    q = names.queue()
    ch.queue_declare(q, exclusive=True)
    other = broker.connect()
    try:
        och = other.channel()
        assert_channel_error(other, och, lambda: och.queue_declare(q, exclusive=True), 405, locked(q))
        och = other.channel()
        assert_channel_error(other, och, lambda: och.queue_declare(q, passive=True), 405, locked(q))
    finally:
        other.close()


def test_exclusive_queue_consume_get_purge_delete_from_another_connection_are_405(broker, ch, names):
    q = names.queue()
    ch.queue_declare(q, exclusive=True)
    other = broker.connect()
    try:
        actions = [
            lambda c: c.basic_consume(q, lambda *a: None),
            lambda c: c.basic_get(q),
            lambda c: c.queue_purge(q),
            lambda c: c.queue_delete(q),
        ]
        for action in actions:
            och = other.channel()
            assert_channel_error(other, och, lambda: action(och), 405, locked(q))
    finally:
        other.close()
    assert ch.queue_declare(q, passive=True).method.queue == q


def test_exclusive_queue_usable_from_other_channels_of_same_connection(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q, exclusive=True)
    other_ch = conn.channel()
    other_ch.queue_declare(q, passive=True)
    other_ch.basic_publish("", q, b"x")
    assert routed_bodies(conn, other_ch, q) == [b"x"]


def test_exclusive_queue_deleted_when_owner_connection_closes(broker, conn, names):
    q = names.queue()
    owner = broker.connect()
    owner.channel().queue_declare(q, exclusive=True)
    assert queue_exists(conn, q)
    owner.close()
    wait_queue_gone(conn, q)


def test_auto_delete_queue_survives_until_it_had_a_consumer(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q, auto_delete=True)
    assert queue_exists(conn, q)


def test_auto_delete_queue_deleted_after_last_consumer_cancels(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q, auto_delete=True)
    c1 = Consumer(conn, ch, q)
    c2 = Consumer(conn, conn.channel(), q)
    c1.cancel()
    assert queue_exists(conn, q)
    c2.cancel()
    wait_queue_gone(conn, q)


def test_auto_delete_queue_deleted_when_consumer_channel_closes(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q, auto_delete=True)
    consumer_ch = conn.channel()
    Consumer(conn, consumer_ch, q)
    consumer_ch.close()
    wait_queue_gone(conn, q)


def test_queue_bind_and_unbind_control_routing(conn, ch, names):
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, "direct")
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k1")
    ch.queue_bind(q, x, "k2")
    ch.basic_publish(x, "k1", b"a")
    ch.basic_publish(x, "k2", b"b")
    ch.queue_unbind(q, x, "k1")
    ch.basic_publish(x, "k1", b"c")
    ch.basic_publish(x, "k2", b"d")
    assert routed_bodies(conn, ch, q) == [b"a", b"b", b"d"]


def test_binding_twice_is_idempotent(conn, ch, names):
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, "direct")
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")
    ch.queue_bind(q, x, "k")
    ch.basic_publish(x, "k", b"once")
    assert routed_bodies(conn, ch, q) == [b"once"]


def test_unbind_of_missing_binding_is_ok(ch, names):
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, "direct")
    ch.queue_declare(q)
    ch.queue_unbind(q, x, "never-bound")
    assert ch.is_open


def test_bind_to_missing_exchange_is_404(conn, ch, names):
    x, q = names.exchange("missing"), names.queue()
    ch.queue_declare(q)
    assert_channel_error(conn, ch, lambda: ch.queue_bind(q, x, "k"), 404,
                         "NOT_FOUND - no exchange '%s' in vhost '/'" % x)


def test_bind_missing_queue_is_404(conn, ch, names):
    x, q = names.exchange(), names.queue("missing")
    ch.exchange_declare(x, "direct")
    assert_channel_error(conn, ch, lambda: ch.queue_bind(q, x, "k"), 404, no_queue(q))


def test_purge_returns_number_of_messages_removed(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    for i in range(5):
        ch.basic_publish("", q, b"%d" % i)
    wait_message_count(conn, ch, q, 5)
    assert ch.queue_purge(q).method.message_count == 5
    assert message_count(ch, q) == 0
    assert ch.queue_purge(q).method.message_count == 0


def test_purge_leaves_unacked_messages_alone(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, b"%d" % i)
    wait_message_count(conn, ch, q, 3)
    consumer_ch = conn.channel()
    consumer_ch.basic_qos(prefetch_count=1)
    c = Consumer(conn, consumer_ch, q)
    c.wait(1)
    assert ch.queue_purge(q).method.message_count == 2
    consumer_ch.basic_nack(c.deliveries[0].method.delivery_tag, requeue=True)
    c.wait(2)
    assert c.deliveries[1].body == b"0"
    assert c.deliveries[1].method.redelivered is True


def test_purge_missing_queue_is_404(conn, ch, names):
    q = names.queue("missing")
    assert_channel_error(conn, ch, lambda: ch.queue_purge(q), 404, no_queue(q))


def test_delete_returns_message_count(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    for i in range(4):
        ch.basic_publish("", q, b"%d" % i)
    wait_message_count(conn, ch, q, 4)
    assert ch.queue_delete(q).method.message_count == 4
    assert not queue_exists(conn, q)


def test_delete_missing_queue_is_ok_with_zero_count(ch, names):
    assert ch.queue_delete(names.queue("missing")).method.message_count == 0


def test_delete_if_unused_with_consumer_is_406(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    Consumer(conn, conn.channel(), q)
    assert_channel_error(conn, ch, lambda: ch.queue_delete(q, if_unused=True), 406,
                         "PRECONDITION_FAILED - queue '%s' in vhost '/' in use" % q)
    assert queue_exists(conn, q)


def test_delete_if_empty_with_messages_is_406(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"still here")
    wait_message_count(conn, ch, q, 1)
    assert_channel_error(conn, ch, lambda: ch.queue_delete(q, if_empty=True), 406,
                         "PRECONDITION_FAILED - queue '%s' in vhost '/' not empty" % q)
    assert queue_exists(conn, q)


def test_delete_if_unused_and_if_empty_succeed_on_idle_empty_queue(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q)
    assert ch.queue_delete(q, if_unused=True, if_empty=True).method.message_count == 0
    assert not queue_exists(conn, q)


def test_deleted_queue_loses_its_bindings(conn, ch, names):
    x, q = names.exchange(), names.queue()
    ch.exchange_declare(x, "fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, x)
    ch.basic_publish(x, "", b"before")
    wait_message_count(conn, ch, q, 1)
    ch.queue_delete(q)
    ch.queue_declare(q)
    ch.basic_publish(x, "", b"after")
    assert routed_bodies(conn, ch, q) == []


def test_long_reply_text_is_cut_to_a_shortstr_like_rabbitmq(conn, ch, names):
    # reply-text is a shortstr (max 255 bytes); RabbitMQ keeps the first 252
    # bytes and appends '...'.
    q = "missing-" + "x" * 220
    e = channel_error(conn, ch, lambda: ch.queue_declare(q, passive=True))
    assert e.reply_code == 404
    full = no_queue(q)
    assert len(full) > 255
    assert e.reply_text == full[:252] + "..."

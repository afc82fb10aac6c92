"""Consumer priorities (the `x-priority` consume argument), with RabbitMQ
3.10's answers (recorded from Debian's rabbitmq-server via
`scripts/compare.sh start rabbitmq`; the file passes against it with
WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5682/%2f
WARREN_TEST_IGNORE_SHARDS=1).
"""

import pytest

from helpers import Consumer, assert_channel_error, settle, wait_until


def consumer(conn, q, prefetch, priority=None, arguments=None):
    ch = conn.channel()
    ch.basic_qos(prefetch_count=prefetch)
    args = dict(arguments or {})
    if priority is not None:
        args["x-priority"] = priority
    return Consumer(conn, ch, q, arguments=args)


def bodies(c):
    return [d.body for d in c.deliveries]


def publish(conn, ch, q, items):
    for b in items:
        ch.basic_publish("", q, b)


def test_the_higher_priority_consumer_gets_messages_while_it_has_prefetch_room(broker, conn, ch, names):
    q = names.queue("cp")
    ch.queue_declare(q)
    low = consumer(conn, q, prefetch=10)
    high = consumer(conn, q, prefetch=2, priority=10)
    publish(conn, ch, q, [b"m0", b"m1", b"m2", b"m3", b"m4"])
    wait_until(conn, lambda: len(high.deliveries) + len(low.deliveries) == 5, what="5 deliveries")
    assert bodies(high) == [b"m0", b"m1"]
    assert bodies(low) == [b"m2", b"m3", b"m4"]
    # Room again at the high-priority consumer: new messages go there.
    for d in high.deliveries:
        high.ch.basic_ack(d.method.delivery_tag)
    # The acks travel on the consumer's channel, the next publishes on
    # another: neither broker orders two channels' frames at the queue
    # (RabbitMQ runs a process per channel; Warren may hand a publish to
    # the queue's shard before an ack sent just ahead of it). Wait until
    # the queue has taken the acks, so the room is there.
    import time
    from helpers import mgmt_request
    path = "/api/queues/%%2F/%s" % q
    deadline = time.monotonic() + 10
    while mgmt_request(broker.mgmt_port, "GET", path, None, broker.user, broker.password)[1].get(
            "messages_unacknowledged") != 3:
        assert time.monotonic() < deadline, "the queue never saw the acks"
        conn.process_data_events(0.05)
    publish(conn, ch, q, [b"m5", b"m6"])
    wait_until(conn, lambda: len(high.deliveries) == 4, what="2 more at the high consumer")
    settle(conn)
    assert bodies(high)[2:] == [b"m5", b"m6"]
    assert len(low.deliveries) == 3


def test_consumers_of_the_same_priority_share_round_robin(conn, ch, names):
    q = names.queue("cp")
    ch.queue_declare(q)
    a = consumer(conn, q, prefetch=100, priority=5)
    b = consumer(conn, q, prefetch=100, priority=5)
    low = consumer(conn, q, prefetch=100, priority=1)
    publish(conn, ch, q, [b"%d" % i for i in range(6)])
    wait_until(conn, lambda: len(a.deliveries) + len(b.deliveries) == 6, what="6 deliveries")
    settle(conn)
    assert bodies(a) == [b"0", b"2", b"4"]
    assert bodies(b) == [b"1", b"3", b"5"]
    assert low.deliveries == []


def test_a_negative_priority_ranks_below_no_priority(conn, ch, names):
    q = names.queue("cp")
    ch.queue_declare(q)
    neg = consumer(conn, q, prefetch=100, priority=-5)
    plain = consumer(conn, q, prefetch=100)
    publish(conn, ch, q, [b"a", b"b"])
    wait_until(conn, lambda: len(plain.deliveries) == 2, what="2 deliveries")
    settle(conn)
    assert neg.deliveries == []


def test_the_plain_priority_argument_is_ignored(conn, ch, names):
    q = names.queue("cp")
    ch.queue_declare(q)
    a = consumer(conn, q, prefetch=100, arguments={"priority": "high"})
    b = consumer(conn, q, prefetch=100)
    publish(conn, ch, q, [b"0", b"1"])
    wait_until(conn, lambda: len(a.deliveries) + len(b.deliveries) == 2, what="2 deliveries")
    assert (bodies(a), bodies(b)) == ([b"0"], [b"1"])


@pytest.mark.parametrize("value,type_name", [("abc", "longstr"), (True, "bool"),
                                              ({"a": 1}, "table")])
def test_a_non_integer_x_priority_is_refused_with_rabbitmqs_text(conn, names, value, type_name):
    q = names.queue("cp")
    ch = conn.channel()
    ch.queue_declare(q)
    assert_channel_error(
        conn, ch,
        lambda: ch.basic_consume(q, lambda *a: None, arguments={"x-priority": value}), 406,
        "PRECONDITION_FAILED - invalid arg 'x-priority' for queue '%s' in vhost '/': "
        "\"expected integer, got %s\"" % (q, type_name))

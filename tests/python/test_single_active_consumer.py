"""Single active consumer (`x-single-active-consumer: true`), with RabbitMQ
3.10's answers (recorded from Debian's rabbitmq-server via
`scripts/compare.sh start rabbitmq`; the file passes against it with
WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5682/%2f
WARREN_TEST_IGNORE_SHARDS=1).
"""

from helpers import Consumer, assert_channel_error, settle, wait_until

SAC = {"x-single-active-consumer": True}


def sac_queue(ch, names):
    q = names.queue("sac")
    ch.queue_declare(q, arguments=SAC)
    return q


def consumer(conn, q, prefetch=0, tag=None):
    ch = conn.channel()
    if prefetch:
        ch.basic_qos(prefetch_count=prefetch)
    return Consumer(conn, ch, q, consumer_tag=tag)


def bodies(c):
    return [d.body for d in c.deliveries]


def test_only_the_first_consumer_receives(conn, ch, names):
    q = sac_queue(ch, names)
    first = consumer(conn, q)
    second = consumer(conn, q)
    for i in range(5):
        ch.basic_publish("", q, b"%d" % i)
    first.wait(5)
    settle(conn)
    assert bodies(first) == [b"0", b"1", b"2", b"3", b"4"]
    assert second.deliveries == []


def test_the_next_consumer_takes_over_after_a_cancel(conn, ch, names):
    q = sac_queue(ch, names)
    first = consumer(conn, q)
    second = consumer(conn, q)
    third = consumer(conn, q)
    ch.basic_publish("", q, b"a")
    first.wait(1)
    first.ch.basic_ack(first.deliveries[0].method.delivery_tag)
    first.ch.basic_cancel(first.tag)
    ch.basic_publish("", q, b"b")
    second.wait(1)
    settle(conn)
    assert bodies(second) == [b"b"] and third.deliveries == []


def test_unacked_messages_of_a_closed_active_consumer_go_first_to_the_next(conn, ch, names):
    q = sac_queue(ch, names)
    first = consumer(conn, q, prefetch=2)
    second = consumer(conn, q, prefetch=10)
    for i in range(5):
        ch.basic_publish("", q, b"%d" % i)
    first.wait(2)
    settle(conn)
    assert bodies(first) == [b"0", b"1"] and second.deliveries == []
    first.ch.close()  # requeues 0 and 1
    second.wait(5)
    assert bodies(second) == [b"0", b"1", b"2", b"3", b"4"]
    assert [d.method.redelivered for d in second.deliveries] == [True, True, False, False, False]


def test_an_exclusive_consumer_is_refused_on_a_single_active_consumer_queue(conn, names):
    ch = conn.channel()
    q = sac_queue(ch, names)
    assert_channel_error(
        conn, ch, lambda: ch.basic_consume(q, lambda *a: None, exclusive=True), 403,
        "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q)


def test_a_new_consumer_waits_behind_the_active_one(conn, ch, names):
    q = sac_queue(ch, names)
    first = consumer(conn, q, prefetch=1)
    ch.basic_publish("", q, b"a")
    ch.basic_publish("", q, b"b")
    first.wait(1)
    late = consumer(conn, q, prefetch=10)
    settle(conn)
    # The active consumer is at its prefetch: the message waits for it.
    assert late.deliveries == []
    first.ch.basic_ack(first.deliveries[0].method.delivery_tag)
    wait_until(conn, lambda: len(first.deliveries) == 2, what="b at the active consumer")
    assert bodies(first) == [b"a", b"b"] and late.deliveries == []

"""Several clients at once: nothing lost, nothing duplicated, nobody starved.

Each thread has its own pika connection (pika connections are not shared
between threads).  Message counts are kept small so the tests stay quick.
"""

import threading
import time

import pika
import pytest

from helpers import get_message, message_count, wait_message_count


def run_threads(targets, timeout=30):
    errors = []

    def wrap(fn):
        def inner():
            try:
                fn()
            except BaseException as e:  # noqa: B902 - report anything to the main thread
                errors.append(e)
        return inner

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not [t for t in threads if t.is_alive()], "threads still running after %ss" % timeout
    if errors:
        raise errors[0]


def test_concurrent_publishers_and_consumers_deliver_each_message_exactly_once(broker, names):
    q = names.queue()
    setup = broker.connect()
    setup.channel().queue_declare(q)
    publishers, per_publisher = 4, 250
    total = publishers * per_publisher
    received = []
    lock = threading.Lock()
    done = threading.Event()

    def publisher(p):
        def run():
            c = broker.connect()
            ch = c.channel()
            ch.confirm_delivery()
            for i in range(per_publisher):
                ch.basic_publish("", q, b"%d:%d" % (p, i))
            c.close()
        return run

    def consumer():
        c = broker.connect()
        ch = c.channel()
        ch.basic_qos(prefetch_count=50)

        def on_message(chan, method, _props, body):
            with lock:
                received.append(body)
                if len(received) >= total:
                    done.set()
            chan.basic_ack(method.delivery_tag)

        ch.basic_consume(q, on_message)
        deadline = time.monotonic() + 25
        while not done.is_set() and time.monotonic() < deadline:
            c.process_data_events(time_limit=0.05)
        c.close()

    run_threads([consumer, consumer] + [publisher(p) for p in range(publishers)])
    assert len(received) == total
    assert len(set(received)) == total, "duplicate deliveries"
    # Per-publisher order is kept within what each consumer saw.
    ch = setup.channel()
    assert message_count(ch, q) == 0
    setup.close()


def test_per_publisher_order_is_preserved_with_a_single_consumer(broker, names):
    q = names.queue()
    conn = broker.connect()
    ch = conn.channel()
    ch.queue_declare(q)

    def publisher(p):
        def run():
            c = broker.connect()
            pch = c.channel()
            for i in range(200):
                pch.basic_publish("", q, b"%d:%d" % (p, i))
            pch.queue_declare(q, passive=True)  # round trip: all publishes processed
            c.close()
        return run

    run_threads([publisher(p) for p in range(3)])
    wait_message_count(conn, ch, q, 600)
    seen = {0: [], 1: [], 2: []}
    for _ in range(600):
        body = get_message(conn, ch, q, auto_ack=True).body
        p, i = body.split(b":")
        seen[int(p)].append(int(i))
    for p in seen:
        assert seen[p] == list(range(200)), "publisher %d out of order" % p
    conn.close()


def test_many_connections_with_many_channels_at_once(broker, names):
    conns = []
    try:
        for _ in range(30):
            conns.append(broker.connect())
        chans = [(c, c.channel(), names.queue("q%d" % n))
                 for n, c in enumerate(c for c in conns for _ in range(4))]
        for n, (c, ch, q) in enumerate(chans):
            ch.queue_declare(q)
            ch.basic_publish("", q, b"hello %d" % n)
        for n, (c, ch, q) in enumerate(chans):
            assert get_message(c, ch, q, auto_ack=True).body == b"hello %d" % n
    finally:
        for c in conns:
            if c.is_open:
                c.close()


def test_consumer_that_stops_reading_its_socket_does_not_stall_others(broker, names):
    slow_q, fast_q = names.queue("slow"), names.queue("fast")
    conn = broker.connect()
    ch = conn.channel()
    ch.queue_declare(slow_q)
    ch.queue_declare(fast_q)
    # A no-ack consumer without a prefetch limit that never reads its socket:
    # the broker's writes to it back up far beyond the socket buffers.
    stuck = broker.connect()
    sch = stuck.channel()
    sch.basic_consume(slow_q, lambda *a: None, auto_ack=True)
    for i in range(4000):
        ch.basic_publish("", slow_q, b"x" * 1000)
    for i in range(100):
        ch.basic_publish("", fast_q, b"%d" % i)
    got = [get_message(conn, ch, fast_q, auto_ack=True).body for _ in range(100)]
    assert got == [b"%d" % i for i in range(100)]
    stuck.close()
    conn.close()

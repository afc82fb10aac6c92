"""Hostile or broken clients: bad protocol headers, malformed frames, half frames, vanishing peers.

Every test also checks that the broker keeps serving: a connection opened
before the bad client (on the same shard where the broker is sharded) and a
brand new connection must both still work.
"""

import random
import socket
import struct
import time

import pika
import pytest
from pika.exceptions import ConnectionClosedByBroker

import amqp_raw
from amqp_raw import method_frame, frame, shortstr
from conftest import shard_of
from helpers import Consumer, assert_connection_usable, connection_error, get_message


class Bystander:
    """A healthy client doing round trips next to the bad one."""

    def __init__(self, broker, names):
        self.broker = broker
        self.conn = broker.connect()
        self.shard = shard_of(self.conn)
        self.ch = self.conn.channel()
        self.q = names.queue("bystander")
        self.ch.queue_declare(self.q)
        self.ch.confirm_delivery()
        self.n = 0

    def round_trip(self, count=5):
        for _ in range(count):
            self.n += 1
            self.ch.basic_publish("", self.q, b"b%d" % self.n)
        got = [get_message(self.conn, self.ch, self.q, auto_ack=True).body for _ in range(count)]
        assert got == [b"b%d" % i for i in range(self.n - count + 1, self.n + 1)]

    def check(self):
        """The old connection and a brand new one both work."""
        assert self.conn.is_open
        self.round_trip()
        fresh = self.broker.connect()
        try:
            assert_connection_usable(fresh)
        finally:
            fresh.close()

    def close(self):
        if self.conn.is_open:
            self.conn.close()


@pytest.fixture
def bystander(broker, names):
    b = Bystander(broker, names)
    b.round_trip()
    yield b
    b.close()


def raw_near(shards, bystander, **kw):
    """A handshaken raw client, on the bystander's shard when the broker is sharded."""
    if bystander.shard is None:
        return shards.broker.raw(**kw)
    return shards.raw_on_shard(bystander.shard, **kw)


def read_until_eof(sock, timeout=5.0):
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("broker did not close the connection (got %r)" % data)
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


# --------------------------------------------------------------------------
# protocol header


@pytest.mark.parametrize("header", [
    b"AMQP\x01\x01\x00\x0a",   # AMQP 0-10
    b"AMQP\x00\x01\x00\x00",   # AMQP 1.0
    b"AMQP\x00\x00\x09\x02",   # unknown 0-9 revision
    b"AMQX\x00\x00\x09\x01",   # wrong magic
    b"GET / HT",               # somebody's web browser
    b"\x00\x00\x00\x00\x00\x00\x00\x00",
], ids=["amqp0-10", "amqp1.0", "0-9-2", "bad-magic", "http", "zeros"])
def test_wrong_protocol_header_gets_0_9_1_header_back_and_close(broker, bystander, header):
    s = socket.create_connection((broker.host, broker.port), timeout=5)
    try:
        s.sendall(header)
        assert read_until_eof(s) == b"AMQP\x00\x00\x09\x01"
    finally:
        s.close()
    bystander.check()


def test_half_protocol_header_then_vanish_does_not_block_others(broker, bystander):
    socks = []
    for _ in range(5):
        s = socket.create_connection((broker.host, broker.port), timeout=5)
        s.sendall(b"AMQ")
        socks.append(s)
    bystander.check()
    for s in socks:
        s.close()
    bystander.check()


def test_client_that_never_sends_a_header_does_not_block_others(broker, bystander):
    idle = [socket.create_connection((broker.host, broker.port), timeout=5) for _ in range(5)]
    try:
        bystander.check()
    finally:
        for s in idle:
            s.close()
    bystander.check()


def test_garbage_instead_of_start_ok_closes_connection(broker, bystander):
    r = amqp_raw.RawClient(broker.host, broker.port)
    try:
        r.start()
        r.send(b"\xff" * 64)
        reason = r.wait_closed()
        assert reason is None or reason[0] == 501, reason
    finally:
        r.close()
    bystander.check()


# --------------------------------------------------------------------------
# malformed frames after the handshake


def assert_frame_error(r, code=501, prefix="FRAME_ERROR"):
    reason = r.wait_closed()
    # The broker must drop the connection; if it manages to say why first,
    # it has to be the right error.
    if reason is not None:
        assert reason[0] == code, reason
        assert reason[1].startswith(prefix), reason


def test_oversized_frame_closes_connection_with_501(broker, shards, bystander):
    r = raw_near(shards, bystander)
    try:
        r.send(struct.pack("!BHI", 1, 0, 0xFFFFFF00) + b"x" * 100)
        assert_frame_error(r)
    finally:
        r.close()
    bystander.check()


def test_oversized_body_frame_closes_connection_with_501(broker, shards, bystander):
    r = raw_near(shards, bystander)
    try:
        r.channel_open(1)
        body = b"y" * 200000  # one body frame well over frame_max (131072)
        r.send(method_frame(1, amqp_raw.BASIC_PUBLISH, struct.pack("!H", 0) + shortstr("")
                            + shortstr("nowhere") + amqp_raw.bits())
               + frame(amqp_raw.FRAME_HEADER, 1, struct.pack("!HHQH", 60, 0, len(body), 0))
               + frame(amqp_raw.FRAME_BODY, 1, body))
        assert_frame_error(r)
    finally:
        r.close()
    bystander.check()


def test_bad_frame_end_octet_closes_connection_with_501(broker, shards, bystander):
    r = raw_near(shards, bystander)
    try:
        r.send(struct.pack("!BHI", 1, 1, 10) + b"x" * 10 + b"\x00")
        assert_frame_error(r)
    finally:
        r.close()
    bystander.check()


def test_unknown_frame_type_closes_connection_with_501(broker, shards, bystander):
    r = raw_near(shards, bystander)
    try:
        r.send(frame(7, 0, b"abc"))
        assert_frame_error(r)
    finally:
        r.close()
    bystander.check()


def test_random_garbage_after_handshake_closes_connection(broker, shards, bystander):
    rng = random.Random(1234)
    for _ in range(5):
        r = raw_near(shards, bystander)
        try:
            r.send(bytes(rng.randrange(256) for _ in range(rng.randrange(8, 300))))
            reason = r.wait_closed()
            assert reason is None or 500 <= reason[0] < 600, reason
        finally:
            r.close()
    bystander.check()


def test_method_on_unopened_channel_is_504_channel_error(broker, shards, bystander):
    r = raw_near(shards, bystander)
    try:
        r.send(method_frame(1, amqp_raw.QUEUE_DECLARE,
                            struct.pack("!H", 0) + shortstr("") + amqp_raw.bits() + amqp_raw.table()))
        assert r.wait_closed() == (504, "CHANNEL_ERROR - expected 'channel.open'")
    finally:
        r.close()
    bystander.check()


def test_second_channel_open_is_504_channel_error(broker, shards, bystander):
    r = raw_near(shards, bystander)
    try:
        r.channel_open(1)
        r.send(method_frame(1, amqp_raw.CHANNEL_OPEN, shortstr("")))
        assert r.wait_closed() == (504, "CHANNEL_ERROR - second 'channel.open' seen")
    finally:
        r.close()
    bystander.check()


def test_content_header_without_method_is_505_unexpected_frame(broker, shards, bystander):
    r = raw_near(shards, bystander)
    try:
        r.channel_open(1)
        r.send(frame(amqp_raw.FRAME_HEADER, 1, struct.pack("!HHQH", 60, 0, 5, 0)))
        assert r.wait_closed() == (
            505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead")
    finally:
        r.close()
    bystander.check()


def test_body_frame_without_method_is_505_unexpected_frame(broker, shards, bystander):
    r = raw_near(shards, bystander)
    try:
        r.channel_open(1)
        r.send(frame(amqp_raw.FRAME_BODY, 1, b"orphan"))
        assert r.wait_closed() == (
            505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead")
    finally:
        r.close()
    bystander.check()


def test_method_frame_where_content_header_expected_is_505(broker, shards, bystander):
    r = raw_near(shards, bystander)
    try:
        r.channel_open(1)
        r.send(method_frame(1, amqp_raw.BASIC_PUBLISH, struct.pack("!H", 0) + shortstr("")
                            + shortstr("x") + amqp_raw.bits())
               + method_frame(1, amqp_raw.CHANNEL_OPEN, shortstr("")))
        assert r.wait_closed() == (
            505, "UNEXPECTED_FRAME - expected content header for class 60, "
                 "got non content header frame instead")
    finally:
        r.close()
    bystander.check()


def test_heartbeat_on_nonzero_channel_is_505(broker, shards, bystander):
    r = raw_near(shards, bystander)
    try:
        r.send(frame(amqp_raw.FRAME_HEARTBEAT, 1, b""))
        reason = r.wait_closed()
        assert reason is not None and reason[0] == 505, reason
        assert reason[1].startswith("UNEXPECTED_FRAME"), reason
    finally:
        r.close()
    bystander.check()


@pytest.mark.parametrize("method", [(60, 999), (99, 10)], ids=["unknown-method", "unknown-class"])
def test_unknown_method_closes_connection(broker, shards, bystander, method):
    r = raw_near(shards, bystander)
    try:
        r.channel_open(1)
        r.send(method_frame(1, method, b"\x00" * 8))
        reason = r.wait_closed()
        assert reason is None or 500 <= reason[0] < 600, reason
    finally:
        r.close()
    bystander.check()


def test_truncated_method_arguments_close_connection(broker, shards, bystander):
    r = raw_near(shards, bystander)
    try:
        r.send(frame(amqp_raw.FRAME_METHOD, 0, struct.pack("!HH", 10, 40) + b"\x05/"))
        reason = r.wait_closed()
        assert reason is None or 500 <= reason[0] < 600, reason
    finally:
        r.close()
    bystander.check()


# --------------------------------------------------------------------------
# stalled and vanishing clients


def test_half_a_frame_then_vanish_does_not_disturb_concurrent_publisher_and_consumer(
        broker, shards, bystander, names):
    conn = bystander.conn
    q = names.queue("work")
    pub = conn.channel()
    pub.queue_declare(q)
    pub.confirm_delivery()
    consumer = Consumer(conn, conn.channel(), q, auto_ack=True)

    r = raw_near(shards, bystander)
    r.channel_open(1)
    frames = amqp_raw.publish_frames(1, "", q, b"z" * 2000)
    r.send(frames[:len(frames) // 2])  # stop in the middle of the content

    for i in range(200):
        pub.basic_publish("", q, b"%d" % i)
    consumer.wait(200)
    bystander.check()

    r.abort()  # vanish without a goodbye (TCP RST)
    for i in range(200, 300):
        pub.basic_publish("", q, b"%d" % i)
    consumer.wait(300)
    assert consumer.bodies == [b"%d" % i for i in range(300)]
    bystander.check()


@pytest.mark.parametrize("cut", [1, 3, 6, 7, 12], ids=lambda c: "cut%d" % c)
def test_partial_frame_header_then_close_does_not_disturb_others(broker, shards, bystander, names, cut):
    r = raw_near(shards, bystander)
    r.channel_open(1)
    r.send(method_frame(1, amqp_raw.QUEUE_DECLARE, struct.pack("!H", 0) + shortstr(names.queue())
                        + amqp_raw.bits() + amqp_raw.table())[:cut])
    bystander.check()
    r.close()  # FIN this time
    bystander.check()


def test_many_stalled_clients_do_not_block_the_broker(broker, shards, bystander, names):
    stalled = []
    try:
        for i in range(20):
            r = broker.raw()
            r.channel_open(1)
            frames = amqp_raw.publish_frames(1, "", "q", b"p" * 100)
            r.send(frames[:5 + i])
            stalled.append(r)
        bystander.check()
    finally:
        for r in stalled:
            r.abort()
    bystander.check()


def test_client_vanishing_mid_publish_does_not_enqueue_partial_message(broker, shards, bystander, names):
    q = names.queue()
    bystander.ch.queue_declare(q)
    r = raw_near(shards, bystander)
    r.channel_open(1)
    frames = amqp_raw.publish_frames(1, "", q, b"partial" * 100)
    r.send(frames[:-20])
    r.abort()
    bystander.check()
    bystander.ch.basic_publish("", q, b"marker")
    assert get_message(bystander.conn, bystander.ch, q, auto_ack=True).body == b"marker"


# --------------------------------------------------------------------------
# confirmed messages survive a misbehaving publisher


def confirm_publish_raw(r, q, n, durable=True):
    r.channel_open(1)
    r.confirm_select(1)
    for i in range(n):
        r.publish(1, "", q, b"c%d" % i, delivery_mode=2 if durable else None)
    pending = set(range(1, n + 1))
    while pending:
        f = r.recv_method()
        assert f.method == amqp_raw.BASIC_ACK, f
        tag, multiple = f.args.longlong(), f.args.octet() & 1
        pending -= {t for t in pending if t <= tag} if multiple else {tag}


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "transient"])
def test_confirmed_messages_survive_publisher_sending_garbage(broker, shards, bystander, names, durable):
    q = names.queue()
    bystander.ch.queue_declare(q, durable=durable)
    r = raw_near(shards, bystander)
    try:
        confirm_publish_raw(r, q, 50, durable)
        r.send(b"\x01\x00\x01\xff\xff\xff\xff garbage")
        r.wait_closed()
    finally:
        r.close()
    got = [get_message(bystander.conn, bystander.ch, q, auto_ack=True).body for _ in range(50)]
    assert got == [b"c%d" % i for i in range(50)]
    assert bystander.ch.queue_declare(q, passive=True).method.message_count == 0
    bystander.check()


def test_confirmed_messages_survive_publisher_vanishing(broker, shards, bystander, names):
    q = names.queue()
    bystander.ch.queue_declare(q, durable=True)
    r = raw_near(shards, bystander)
    confirm_publish_raw(r, q, 50)
    r.send(amqp_raw.publish_frames(1, "", q, b"unfinished")[:10])
    r.abort()
    got = [get_message(bystander.conn, bystander.ch, q, auto_ack=True).body for _ in range(50)]
    assert got == [b"c%d" % i for i in range(50)]
    bystander.check()


def test_confirmed_messages_survive_publisher_connection_error(broker, bystander, names):
    q = names.queue()
    bystander.ch.queue_declare(q)
    pub = broker.connect()
    ch = pub.channel()
    ch.confirm_delivery()
    for i in range(30):
        ch.basic_publish("", q, b"p%d" % i)
    e = connection_error(pub, lambda: ch.exchange_declare(names.exchange(), "x-no-such-type"))
    assert e.reply_code == 503
    got = [get_message(bystander.conn, bystander.ch, q, auto_ack=True).body for _ in range(30)]
    assert got == [b"p%d" % i for i in range(30)]
    bystander.check()

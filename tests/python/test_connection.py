"""connection class: handshake, tuning, heartbeats, authentication, vhosts."""

import time

import pika
import pytest
from pika.exceptions import (AuthenticationError, ProbableAccessDeniedError,
                             ProbableAuthenticationError, ConnectionClosedByBroker)

import amqp_raw
from helpers import assert_connection_usable, settle

LOGIN_REFUSED = ("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
                 "For details see the broker logfile.")


def test_connect_open_channel_and_close_cleanly(broker):
    conn = broker.connect()
    assert conn.is_open
    ch = conn.channel()
    assert ch.is_open
    assert_connection_usable(conn)
    conn.close()
    assert conn.is_closed


def test_many_sequential_connections_are_accepted(broker):
    for _ in range(20):
        c = broker.connect()
        c.channel()
        c.close()
    assert_connection_usable(broker.connect())


def test_server_properties_advertise_capabilities_clients_rely_on(conn):
    props = conn._impl.server_properties
    caps = props.get("capabilities", {})
    for cap in ("publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "authentication_failure_close", "per_consumer_qos"):
        assert caps.get(cap) is True, "capability %r missing from %r" % (cap, caps)
    assert props.get("product")


def test_connection_start_offers_plain_and_0_9_1(broker):
    r = amqp_raw.RawClient(broker.host, broker.port)
    try:
        r.start()
        assert r.version == (0, 9)
        assert "PLAIN" in r.mechanisms.split()
        assert "en_US" in r.locales.split()
    finally:
        r.close()


def test_tune_proposes_rabbitmq_default_limits(broker):
    r = amqp_raw.RawClient(broker.host, broker.port)
    try:
        r.start()
        r.start_ok(broker.user, broker.password)
        channel_max, frame_max, heartbeat = r.read_tune()
        assert (channel_max, frame_max, heartbeat) == (2047, 131072, 60)
    finally:
        r.close()


def test_heartbeat_negotiation_accepts_client_value(broker):
    proposed = []

    def choose(_conn, server_value):
        proposed.append(server_value)
        return 7

    conn = broker.connect(heartbeat=choose)
    try:
        assert proposed == [60]
        assert conn._impl.params.heartbeat == 7
        assert_connection_usable(conn)
    finally:
        conn.close()


def test_heartbeat_none_takes_server_proposal(broker):
    conn = broker.connect(heartbeat=None)
    try:
        assert conn._impl.params.heartbeat == 60
    finally:
        conn.close()


def test_heartbeat_zero_disables_heartbeats(broker):
    conn = broker.connect(heartbeat=0)
    try:
        assert conn._impl.params.heartbeat == 0
        assert conn._impl._heartbeat_checker is None
        assert_connection_usable(conn)
    finally:
        conn.close()


def test_connection_with_1s_heartbeat_survives_idle_periods(broker):
    conn = broker.connect(heartbeat=1)
    try:
        # pika sends heartbeats while we pump; the broker must keep the
        # connection open well past 2 heartbeat intervals.
        settle(conn, 3.5)
        assert conn.is_open
        assert_connection_usable(conn)
    finally:
        conn.close()


def test_server_sends_heartbeat_frames_at_negotiated_interval(broker):
    r = broker.raw(heartbeat=1)
    try:
        f = r.recv_frame(timeout=5)
        assert f.type == amqp_raw.FRAME_HEARTBEAT
        assert f.channel == 0
        assert f.payload == b""
    finally:
        r.close()


def test_server_closes_connection_when_client_heartbeats_stop(broker):
    r = broker.raw(heartbeat=1)
    try:
        deadline = time.monotonic() + 15
        with pytest.raises(amqp_raw.Closed):
            while time.monotonic() < deadline:
                r.recv_frame(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        r.close()


def test_wrong_password_is_refused_by_pika(broker):
    with pytest.raises((ProbableAuthenticationError, AuthenticationError)) as ei:
        broker.connect(credentials=pika.PlainCredentials(broker.user, "definitely-wrong"))
    assert "403" in str(ei.value)
    assert LOGIN_REFUSED in str(ei.value)


def test_wrong_password_gets_connection_close_403_access_refused(broker):
    r = amqp_raw.RawClient(broker.host, broker.port)
    try:
        r.start()
        r.start_ok(broker.user, "definitely-wrong")
        assert r.wait_closed() == (403, LOGIN_REFUSED)
    finally:
        r.close()


def test_unknown_user_is_refused_with_403(broker):
    r = amqp_raw.RawClient(broker.host, broker.port)
    try:
        r.start()
        r.start_ok("no-such-user", "guest")
        assert r.wait_closed() == (403, LOGIN_REFUSED)
    finally:
        r.close()


def test_unknown_vhost_is_refused_with_530_by_pika(broker):
    with pytest.raises((ProbableAccessDeniedError, ConnectionClosedByBroker)) as ei:
        broker.connect(virtual_host="no-such-vhost")
    assert "(530) 'NOT_ALLOWED - vhost no-such-vhost not found'" in str(ei.value)


def test_unknown_vhost_gets_connection_close_530_not_allowed(broker):
    r = amqp_raw.RawClient(broker.host, broker.port)
    try:
        r.start()
        r.start_ok(broker.user, broker.password)
        r.read_tune()
        r.tune_ok()
        r.open("no-such-vhost")
        assert r.wait_closed() == (530, "NOT_ALLOWED - vhost no-such-vhost not found")
    finally:
        r.close()


def test_channel_max_negotiated_down_to_client_value(broker):
    conn = broker.connect(channel_max=3)
    try:
        assert conn._impl.params.channel_max == 3
        chans = [conn.channel() for _ in range(3)]
        assert all(c.is_open for c in chans)
        chans[0].close()
        assert_connection_usable(conn)
    finally:
        conn.close()


def test_channel_max_default_negotiates_server_limit(broker):
    conn = broker.connect()
    try:
        assert conn._impl.params.channel_max == 2047
    finally:
        conn.close()


def test_opening_more_channels_than_channel_max_is_530(broker):
    r = broker.raw(channel_max=2)
    try:
        r.channel_open(1)
        r.channel_open(2)
        r.send(amqp_raw.method_frame(3, amqp_raw.CHANNEL_OPEN, amqp_raw.shortstr("")))
        assert r.wait_closed() == (
            530, "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)")
    finally:
        r.close()
    assert_connection_usable(broker.connect())


def test_channel_max_limits_open_channel_count_not_channel_numbers(broker):
    # RabbitMQ counts open channels against channel_max; the channel number
    # itself may be higher.
    r = broker.raw(channel_max=2)
    try:
        r.channel_open(5)
        r.channel_open(2)
        r.send(amqp_raw.method_frame(5, amqp_raw.CHANNEL_CLOSE, b"\x00\xc8" + amqp_raw.shortstr("bye")
                                     + b"\x00\x00\x00\x00"))
        r.expect(amqp_raw.CHANNEL_CLOSE_OK)
        r.channel_open(7)
    finally:
        r.close()


def test_client_initiated_close_gets_close_ok(broker):
    r = broker.raw()
    try:
        r.channel_open(1)
        r.send(amqp_raw.method_frame(0, amqp_raw.CONNECTION_CLOSE,
                                     b"\x00\xc8" + amqp_raw.shortstr("bye") + b"\x00\x00\x00\x00"))
        # The peer that sent connection.close closes the socket once it has
        # close-ok, so the broker only has to answer here.
        r.expect(amqp_raw.CONNECTION_CLOSE_OK)
    finally:
        r.close()

"""Small helpers shared by the test modules (all based on pika's BlockingConnection)."""

import time
import uuid

import pika
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

DELIVERY_TIMEOUT = 5.0


def wait_until(conn, predicate, timeout=DELIVERY_TIMEOUT, what="condition"):
    """Pump pika's I/O loop until predicate() is true; fail after timeout seconds.

    conn may also be a list of connections, which are pumped in turn.
    """
    conns = list(conn) if isinstance(conn, (list, tuple)) else [conn]
    slice_ = 0.05 / len(conns)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        for c in conns:
            c.process_data_events(time_limit=slice_)


def settle(conn, seconds=0.3):
    """Pump the I/O loop for a short while (used only to check that nothing MORE arrives)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)


class Delivery:
    def __init__(self, method, properties, body):
        self.method = method
        self.properties = properties
        self.body = body

    def __repr__(self):
        return "Delivery(%r, tag=%r, redelivered=%r)" % (
            self.body, self.method.delivery_tag, self.method.redelivered)


class Consumer:
    """basic.consume that records deliveries; wait(n) pumps until n have arrived."""

    def __init__(self, conn, ch, queue, auto_ack=False, exclusive=False, consumer_tag=None,
                 arguments=None):
        self.conn = conn
        self.ch = ch
        self.queue = queue
        self.deliveries = []
        self.tag = ch.basic_consume(queue, self._on_message, auto_ack=auto_ack, exclusive=exclusive,
                                    consumer_tag=consumer_tag, arguments=arguments)

    def _on_message(self, ch, method, properties, body):
        self.deliveries.append(Delivery(method, properties, body))

    def wait(self, n, timeout=DELIVERY_TIMEOUT):
        wait_until(self.conn, lambda: len(self.deliveries) >= n, timeout,
                   "%d deliveries from %r (got %d)" % (n, self.queue, len(self.deliveries)))
        return self.deliveries[:n]

    @property
    def bodies(self):
        return [d.body for d in self.deliveries]

    def cancel(self):
        self.ch.basic_cancel(self.tag)


def channel_error(conn, ch, action=None, timeout=DELIVERY_TIMEOUT):
    """Run action (expected to make the broker close ch) and return the ChannelClosedByBroker.

    Works both for synchronous methods (pika raises at once) and for
    asynchronous ones such as basic.publish or basic.ack (we pump the I/O loop
    until the channel.close arrives).
    """
    try:
        if action is not None:
            action()
        wait_until(conn, lambda: ch.is_closed, timeout, "the broker to close the channel")
    except ChannelClosedByBroker as e:
        return e
    reason = getattr(ch, "_closing_reason", None)
    if isinstance(reason, ChannelClosedByBroker):
        return reason
    raise AssertionError("channel closed, but not by the broker: %r" % (reason,))


def reply_text(text):
    """reply-text is a shortstr: RabbitMQ cuts longer texts to 252 bytes plus '...'."""
    raw = text.encode()
    if len(raw) <= 255:
        return text
    return raw[:252].decode("utf-8", "ignore") + "..."


def assert_channel_error(conn, ch, action, code, text):
    e = channel_error(conn, ch, action)
    assert (e.reply_code, e.reply_text) == (code, reply_text(text))
    assert conn.is_open, "a channel error must not close the connection"
    assert_connection_usable(conn)
    return e


def connection_error(conn, action=None, timeout=DELIVERY_TIMEOUT):
    """Run action (expected to make the broker close the connection); return ConnectionClosedByBroker."""
    try:
        if action is not None:
            action()
        wait_until(conn, lambda: conn.is_closed, timeout, "the broker to close the connection")
    except ConnectionClosedByBroker as e:
        return e
    except ChannelClosedByBroker as e:
        raise AssertionError("expected a connection error, got a channel error %r" % (e,))
    reason = getattr(conn._impl, "_error", None)
    if isinstance(reason, ConnectionClosedByBroker):
        return reason
    raise AssertionError("connection closed, but not with connection.close: %r" % (reason,))


def assert_connection_usable(conn):
    """Open a fresh channel and do a synchronous round trip on it."""
    c = conn.channel()
    ok = c.queue_declare("", exclusive=True, auto_delete=True)
    assert ok.method.queue
    c.queue_delete(ok.method.queue)
    c.close()


def routed_bodies(conn, ch, queue, timeout=DELIVERY_TIMEOUT):
    """Return the bodies sitting in queue that ch published before now.

    Publishes a sentinel straight to the queue on the same channel and reads
    with basic.get until the sentinel comes back: per-channel ordering means
    everything routed to the queue by earlier publishes on ch is in front of
    it.  This lets tests check that a message was NOT routed without sleeping.
    """
    sentinel = b"sentinel-" + uuid.uuid4().hex.encode()
    ch.basic_publish("", queue, sentinel)
    got = []
    deadline = time.monotonic() + timeout
    while True:
        method, _props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            if time.monotonic() > deadline:
                raise AssertionError("sentinel never reached %r (got %r)" % (queue, got))
            conn.process_data_events(time_limit=0.01)
            continue
        if body == sentinel:
            return got
        got.append(body)


def get_message(conn, ch, queue, auto_ack=False, timeout=DELIVERY_TIMEOUT):
    """basic.get, retrying until a message is there."""
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=auto_ack)
        if method is not None:
            return Delivery(method, props, body)
        if time.monotonic() > deadline:
            raise AssertionError("no message in %r after %.1fs" % (queue, timeout))
        conn.process_data_events(time_limit=0.01)


def message_count(ch, queue):
    return ch.queue_declare(queue, passive=True).method.message_count


def wait_message_count(conn, ch, queue, n, timeout=DELIVERY_TIMEOUT):
    wait_until(conn, lambda: message_count(ch, queue) == n, timeout,
               "%r to hold %d ready messages" % (queue, n))


def queue_exists(conn, queue):
    c = conn.channel()
    try:
        c.queue_declare(queue, passive=True)
    except ChannelClosedByBroker as e:
        if e.reply_code == 405:  # exclusive queue of another connection: it exists
            return True
        assert e.reply_code == 404, e
        return False
    c.close()
    return True


def exchange_exists(conn, exchange):
    c = conn.channel()
    try:
        c.exchange_declare(exchange, passive=True)
    except ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
        return False
    c.close()
    return True


def wait_queue_gone(conn, queue, timeout=DELIVERY_TIMEOUT):
    wait_until(conn, lambda: not queue_exists(conn, queue), timeout, "queue %r to be deleted" % queue)


def persistent():
    return pika.BasicProperties(delivery_mode=2)


def eventually(what, f, timeout=30, interval=0.05):
    """f()'s first truthy value, polled every `interval` seconds; fails
    after `timeout` seconds naming `what`."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        v = f()
        if v:
            return v
        assert time.monotonic() < deadline, "gave up waiting for " + what
        time.sleep(interval)


def mgmt_request(port, method, path, body=None, user="guest", password="guest", scheme="http", context=None,
                 raw=None):
    """One management API request: (status, JSON body or None), error
    statuses included; `raw` sends those bytes as the body instead of
    `body` as JSON."""
    import base64
    import json
    import urllib.error
    import urllib.request
    req = urllib.request.Request(
        "%s://127.0.0.1:%d%s" % (scheme, port, path), method=method,
        data=raw if raw is not None else (None if body is None else json.dumps(body).encode()),
        headers={"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode(),
                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            data = r.read()
            return r.status, (json.loads(data) if data else None)
    except urllib.error.HTTPError as e:
        data = e.read()
        try:
            return e.code, (json.loads(data) if data else None)
        except ValueError:
            return e.code, data.decode("utf-8", "replace")


def mgmt_api(port, method, path, body=None, user="guest", password="guest", scheme="http", context=None):
    """One management API request as JSON (None for an empty answer);
    raises AssertionError for a non-2xx status."""
    status, data = mgmt_request(port, method, path, body, user, password, scheme, context)
    assert 200 <= status < 300, "%s %s: %s %r" % (method, path, status, data)
    return data


class OwnBroker:
    """Base of the test modules' own brokers (started with flags the shared
    fixture's broker lacks): `proc`, a temporary `dir`, `mgmt_port`."""

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.dir.cleanup()

    def api(self, method, path, body=None):
        return mgmt_api(self.mgmt_port, method, path, body)


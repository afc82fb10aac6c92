"""A deliberately tiny AMQP 0-9-1 wire client for protocol-level tests.

pika hides the wire from us (it generates consumer tags itself, validates
frames before sending them, ...).  Tests that need to send broken or unusual
input, or look at exactly what the broker put on the wire, use this instead.
Only the handful of methods the tests need are encoded.
"""

import socket
import struct
import time

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE

# (class_id, method_id)
CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
QUEUE_DECLARE = (50, 10)
QUEUE_DECLARE_OK = (50, 11)
BASIC_CONSUME = (60, 20)
BASIC_CONSUME_OK = (60, 21)
BASIC_PUBLISH = (60, 40)
BASIC_DELIVER = (60, 60)
BASIC_ACK = (60, 80)
BASIC_NACK = (60, 120)
CONFIRM_SELECT = (85, 10)
CONFIRM_SELECT_OK = (85, 11)


class Closed(Exception):
    """The peer closed the TCP connection."""


# --------------------------------------------------------------------------
# encoding


def shortstr(s):
    if isinstance(s, str):
        s = s.encode()
    assert len(s) < 256
    return struct.pack("!B", len(s)) + s


def longstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!I", len(s)) + s


def table(d=None):
    out = b""
    for key, value in (d or {}).items():
        out += shortstr(key)
        if isinstance(value, bool):
            out += b"t" + struct.pack("!B", int(value))
        elif isinstance(value, int):
            out += b"I" + struct.pack("!i", value)
        elif isinstance(value, dict):
            out += b"F" + table(value)
        else:
            out += b"S" + longstr(value)
    return struct.pack("!I", len(out)) + out


def bits(*flags):
    v = 0
    for i, f in enumerate(flags):
        if f:
            v |= 1 << i
    return struct.pack("!B", v)


def frame(ftype, channel, payload):
    return struct.pack("!BHI", ftype, channel, len(payload)) + payload + bytes([FRAME_END])


def method_frame(channel, method, args=b""):
    return frame(FRAME_METHOD, channel, struct.pack("!HH", *method) + args)


def content_frames(channel, body, frame_max=131072, delivery_mode=None):
    flags = 0
    props = b""
    if delivery_mode is not None:
        flags |= 0x1000
        props += struct.pack("!B", delivery_mode)
    out = frame(FRAME_HEADER, channel, struct.pack("!HHQH", 60, 0, len(body), flags) + props)
    chunk = frame_max - 8
    for i in range(0, len(body), chunk):
        out += frame(FRAME_BODY, channel, body[i:i + chunk])
    return out


def publish_frames(channel, exchange, routing_key, body, mandatory=False, delivery_mode=None):
    args = struct.pack("!H", 0) + shortstr(exchange) + shortstr(routing_key) + bits(mandatory, False)
    return method_frame(channel, BASIC_PUBLISH, args) + content_frames(channel, body, delivery_mode=delivery_mode)


# --------------------------------------------------------------------------
# decoding


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated field")
        v = self.data[self.pos:self.pos + n]
        self.pos += n
        return v

    def unpack(self, fmt):
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))

    def octet(self):
        return self.unpack("!B")[0]

    def short(self):
        return self.unpack("!H")[0]

    def long(self):
        return self.unpack("!I")[0]

    def longlong(self):
        return self.unpack("!Q")[0]

    def shortstr(self):
        return self.take(self.octet()).decode("utf-8", "replace")

    def longstr(self):
        return self.take(self.long())

    def table(self):
        sub = Reader(self.longstr())
        out = {}
        while sub.pos < len(sub.data):
            key = sub.shortstr()
            out[key] = sub.value()
        return out

    def value(self):
        kind = self.take(1)
        if kind == b"t":
            return bool(self.octet())
        if kind == b"b":
            return self.unpack("!b")[0]
        if kind == b"B":
            return self.unpack("!B")[0]
        if kind in (b"s", b"U"):
            return self.unpack("!h")[0]
        if kind == b"u":
            return self.unpack("!H")[0]
        if kind == b"I":
            return self.unpack("!i")[0]
        if kind == b"i":
            return self.unpack("!I")[0]
        if kind in (b"l", b"L"):
            return self.unpack("!q")[0]
        if kind == b"f":
            return self.unpack("!f")[0]
        if kind == b"d":
            return self.unpack("!d")[0]
        if kind == b"D":
            scale = self.octet()
            return self.unpack("!i")[0] / (10 ** scale)
        if kind == b"T":
            return self.unpack("!Q")[0]
        if kind in (b"S", b"x"):
            v = self.longstr()
            try:
                return v.decode()
            except UnicodeDecodeError:
                return v
        if kind == b"F":
            return self.table()
        if kind == b"A":
            sub = Reader(self.longstr())
            items = []
            while sub.pos < len(sub.data):
                items.append(sub.value())
            return items
        if kind == b"V":
            return None
        raise ValueError("unknown field type %r" % kind)


class Frame:
    def __init__(self, ftype, channel, payload):
        self.type = ftype
        self.channel = channel
        self.payload = payload
        self.method = None
        self.args = None
        if ftype == FRAME_METHOD and len(payload) >= 4:
            self.method = struct.unpack("!HH", payload[:4])
            self.args = Reader(payload[4:])

    def __repr__(self):
        return "Frame(type=%d, channel=%d, method=%r, payload=%r)" % (
            self.type, self.channel, self.method, self.payload[:64])

    def close_reason(self):
        """(reply_code, reply_text, class_id, method_id) of a connection/channel close."""
        r = Reader(self.payload[4:])
        return r.short(), r.shortstr(), r.short(), r.short()


# --------------------------------------------------------------------------
# client


class RawClient:
    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.server_properties = None
        self.tune = None

    # -- plumbing ---------------------------------------------------------

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Vanish: reset the TCP connection without any AMQP goodbye."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no data from broker (have %d of %d bytes)" % (len(self.buf), n))
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Closed("connection closed by broker (%d unread bytes: %r)" % (len(self.buf), self.buf[:32]))
            self.buf += chunk

    def recv_exact(self, n, timeout=5.0):
        self._fill(n, time.monotonic() + timeout)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        self._fill(7, deadline)
        ftype, channel, size = struct.unpack("!BHI", self.buf[:7])
        self._fill(7 + size + 1, deadline)
        payload = self.buf[7:7 + size]
        end = self.buf[7 + size]
        self.buf = self.buf[8 + size:]
        if end != FRAME_END:
            raise ValueError("bad frame end from broker: %#x" % end)
        return Frame(ftype, channel, payload)

    def recv_method(self, timeout=5.0, skip_heartbeats=True):
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if f.type == FRAME_HEARTBEAT and skip_heartbeats:
                continue
            return f

    def expect(self, method, timeout=5.0):
        f = self.recv_method(timeout)
        if f.method != method:
            if f.method in (CONNECTION_CLOSE, CHANNEL_CLOSE):
                raise AssertionError("expected %r but broker closed: %r" % (method, f.close_reason()))
            raise AssertionError("expected %r, got %r" % (method, f))
        return f

    def wait_closed(self, timeout=5.0):
        """Read until the broker drops the connection.

        Returns (reply_code, reply_text) of the connection.close the broker sent
        first, or None if it closed the socket without one.  A connection.close
        is answered with close-ok, as a well-behaved client would.
        """
        deadline = time.monotonic() + timeout
        reason = None
        while True:
            try:
                f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            except Closed:
                return reason
            except (ConnectionResetError, BrokenPipeError):
                return reason
            if f.method == CONNECTION_CLOSE and reason is None:
                code, text, _, _ = f.close_reason()
                reason = (code, text)
                try:
                    self.send(method_frame(0, CONNECTION_CLOSE_OK))
                except OSError:
                    return reason

    # -- protocol steps -----------------------------------------------------

    def start(self, header=PROTOCOL_HEADER):
        self.send(header)
        f = self.expect(CONNECTION_START)
        a = f.args
        self.version = (a.octet(), a.octet())
        self.server_properties = a.table()
        self.mechanisms = a.longstr().decode()
        self.locales = a.longstr().decode()
        return f

    def start_ok(self, user="guest", password="guest", capabilities=None):
        caps = {"authentication_failure_close": True, "consumer_cancel_notify": True,
                "publisher_confirms": True, "basic.nack": True}
        if capabilities is not None:
            caps = capabilities
        props = table({"product": "warren raw test client", "capabilities": caps})
        response = b"\x00" + user.encode() + b"\x00" + password.encode()
        self.send(method_frame(0, CONNECTION_START_OK,
                               props + shortstr("PLAIN") + longstr(response) + shortstr("en_US")))

    def read_tune(self):
        f = self.expect(CONNECTION_TUNE)
        self.tune = (f.args.short(), f.args.long(), f.args.short())
        return self.tune

    def tune_ok(self, channel_max=None, frame_max=None, heartbeat=0):
        cm, fm, _ = self.tune
        self.send(method_frame(0, CONNECTION_TUNE_OK, struct.pack(
            "!HIH", cm if channel_max is None else channel_max,
            fm if frame_max is None else frame_max, heartbeat)))

    def open(self, vhost="/"):
        self.send(method_frame(0, CONNECTION_OPEN, shortstr(vhost) + shortstr("") + bits(False)))

    def handshake(self, user="guest", password="guest", vhost="/", heartbeat=0, channel_max=None):
        self.start()
        self.start_ok(user, password)
        self.read_tune()
        self.tune_ok(channel_max=channel_max, heartbeat=heartbeat)
        self.open(vhost)
        self.expect(CONNECTION_OPEN_OK)
        return self

    @property
    def shard(self):
        return (self.server_properties or {}).get("warren.shard")

    def channel_open(self, channel):
        self.send(method_frame(channel, CHANNEL_OPEN, shortstr("")))
        self.expect(CHANNEL_OPEN_OK)

    def confirm_select(self, channel):
        self.send(method_frame(channel, CONFIRM_SELECT, bits(False)))
        self.expect(CONFIRM_SELECT_OK)

    def queue_declare(self, channel, queue, durable=False, exclusive=False, auto_delete=False):
        self.send(method_frame(channel, QUEUE_DECLARE, struct.pack("!H", 0) + shortstr(queue)
                               + bits(False, durable, exclusive, auto_delete, False) + table()))
        f = self.expect(QUEUE_DECLARE_OK)
        return f.args.shortstr(), f.args.long(), f.args.long()

    def basic_consume(self, channel, queue, consumer_tag="", no_ack=False):
        self.send(method_frame(channel, BASIC_CONSUME, struct.pack("!H", 0) + shortstr(queue)
                               + shortstr(consumer_tag) + bits(False, no_ack, False, False) + table()))

    def publish(self, channel, exchange, routing_key, body, **kw):
        self.send(publish_frames(channel, exchange, routing_key, body, **kw))


def connect(host, port, **kw):
    return RawClient(host, port).handshake(**kw)

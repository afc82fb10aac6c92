"""Fixtures for the pika-based compatibility suite.

By default every test runs against a freshly started warren broker, once with
--shards 1 and once with --shards 2.  Setting

    WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5672/

runs the whole suite once against an already running broker instead (that is
how the suite is checked against RabbitMQ); tests that need to know which
shard a connection landed on are skipped then, unless
WARREN_TEST_IGNORE_SHARDS=1 asks to run them on arbitrary connections.
"""

import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse
import uuid

import pika
import pytest

# Show the compared values when an assert inside the shared helpers fails.
pytest.register_assert_rewrite("helpers", "amqp_raw")

import amqp_raw  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
EXTERNAL_URL = os.environ.get("WARREN_TEST_URL")
# With an external broker, run the shard tests anyway on whatever connections we
# get (used to check that their assertions hold on RabbitMQ, which has no shards).
IGNORE_SHARDS = os.environ.get("WARREN_TEST_IGNORE_SHARDS") == "1"
WARREN_BIN = os.environ.get("WARREN_BIN", os.path.join(REPO, "target", "release", "warren"))
READY_RE = re.compile(r"^warren listening on (\S+):(\d+)\s*$")
MGMT_RE = re.compile(r"^warren management listening on (\S+):(\d+)\s*$")
# The management API port of an external broker (WARREN_TEST_URL).
EXTERNAL_MGMT_PORT = int(os.environ.get("WARREN_TEST_MGMT_PORT", "15672"))
READY_TIMEOUT = 30.0


class Broker:
    """A broker under test: either one we started or an external one."""

    def __init__(self, shards=None, data_dir=None, url=None):
        self.shards = shards
        self.data_dir = data_dir
        self.external = url is not None
        self.proc = None
        self.log_path = None
        self.vhost = "/"
        self.user, self.password = "guest", "guest"
        if url is not None:
            u = urllib.parse.urlparse(url)
            self.host = u.hostname or "127.0.0.1"
            self.port = u.port or 5672
            if u.username:
                self.user = urllib.parse.unquote(u.username)
            if u.password:
                self.password = urllib.parse.unquote(u.password)
            path = u.path[1:] if u.path.startswith("/") else u.path
            if path:
                self.vhost = urllib.parse.unquote(path)
        else:
            self.host, self.port = "127.0.0.1", None
        self.mgmt_port = EXTERNAL_MGMT_PORT if url is not None else None

    def __iter__(self):
        yield self.host
        yield self.port

    def __repr__(self):
        if self.external:
            return "Broker(external %s:%s)" % (self.host, self.port)
        return "Broker(warren shards=%s %s:%s)" % (self.shards, self.host, self.port)

    # -- process management (only for a broker we started) ----------------

    def start(self):
        if not os.path.exists(WARREN_BIN):
            raise RuntimeError("warren binary not found at %s (build it with `cargo build --release`"
                               " or set WARREN_BIN)" % WARREN_BIN)
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_path = os.path.join(self.data_dir, "..", "warren-%s.log" % uuid.uuid4().hex[:6])
        self.log_path = os.path.abspath(self.log_path)
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        self.proc = subprocess.Popen(
            [WARREN_BIN, "--port", "0", "--mgmt-port", "0", "--mgmt-bind", "127.0.0.1", "--shards", str(self.shards),
             "--data-dir", self.data_dir, "--bind", "127.0.0.1"],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env)
        log.close()
        ready = threading.Event()
        found = {}

        def pump():
            # Read stdout forever so the broker never blocks on a full pipe.
            with open(self.log_path, "ab") as out:
                for line in iter(self.proc.stdout.readline, b""):
                    if not ready.is_set():
                        text = line.decode("utf-8", "replace")
                        m = READY_RE.match(text)
                        if m:
                            found["host"], found["port"] = m.group(1), int(m.group(2))
                            continue
                        m = MGMT_RE.match(text)
                        if m and "port" in found:
                            found["mgmt_port"] = int(m.group(2))
                            ready.set()
                            continue
                    out.write(b"[stdout] " + line)
                    out.flush()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                rc = self.proc.poll()
                self.stop()
                raise RuntimeError("warren did not print its ready line (exit status %r); log:\n%s"
                                   % (rc, self.log_tail()))
        self.host, self.port = found["host"], found["port"]
        self.mgmt_port = found["mgmt_port"]

    def alive(self):
        return self.external or (self.proc is not None and self.proc.poll() is None)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()

    def restart(self):
        self.stop()
        self.start()

    def log_size(self):
        if not self.log_path or not os.path.exists(self.log_path):
            return 0
        return os.path.getsize(self.log_path)

    def log_tail(self, since=0, limit=20000):
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(since)
            data = f.read()
        if len(data) > limit:
            data = b"[... %d bytes cut ...]\n" % (len(data) - limit) + data[-limit:]
        return data.decode("utf-8", "replace")

    # -- clients ------------------------------------------------------------

    def params(self, **kw):
        kw.setdefault("credentials", pika.PlainCredentials(self.user, self.password))
        kw.setdefault("virtual_host", self.vhost)
        kw.setdefault("connection_attempts", 1)
        kw.setdefault("socket_timeout", 5)
        kw.setdefault("stack_timeout", 15)
        return pika.ConnectionParameters(host=self.host, port=self.port, **kw)

    def connect(self, **kw):
        return pika.BlockingConnection(self.params(**kw))

    def raw(self, **kw):
        """A RawClient that has completed the handshake."""
        kw.setdefault("user", self.user)
        kw.setdefault("password", self.password)
        kw.setdefault("vhost", self.vhost)
        return amqp_raw.connect(self.host, self.port, **kw)

    def api(self, method, path, body=None, user=None, password=None):
        """One management API request to this broker (see helpers.mgmt_api)."""
        from helpers import mgmt_api
        return mgmt_api(self.mgmt_port, method, path, body,
                        user=user or self.user, password=password or self.password)

    def url(self):
        return "amqp://%s:%s@%s:%d/%s" % (self.user, self.password, self.host, self.port,
                                         urllib.parse.quote(self.vhost, safe=""))


def shard_of(conn):
    """The warren.shard a pika BlockingConnection landed on (None if not advertised)."""
    return conn._impl.server_properties.get("warren.shard")


BROKER_PARAMS = ["external"] if EXTERNAL_URL else [1, 2]


@pytest.fixture(scope="session", params=BROKER_PARAMS,
                ids=lambda p: "external" if p == "external" else "shards%d" % p)
def broker_server(request, tmp_path_factory):
    if request.param == "external":
        yield Broker(url=EXTERNAL_URL)
        return
    base = tmp_path_factory.mktemp("warren-shards%d" % request.param)
    b = Broker(shards=request.param, data_dir=str(base / "data"))
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def broker(broker_server, request):
    """The broker under test, checked to be alive before and after the test."""
    if not broker_server.alive():
        # An earlier test killed it; that test was already reported.  Start a
        # fresh one so the rest of the suite still says something useful.
        broker_server.restart()
    request.node._warren_broker = broker_server
    request.node._warren_log_offset = broker_server.log_size()
    yield broker_server
    if not broker_server.alive():
        pytest.fail("warren exited during this test (exit status %r)" % broker_server.proc.poll(),
                    pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    b = getattr(item, "_warren_broker", None)
    if rep.failed and b is not None and not b.external:
        rep.sections.append(("warren log (%s, during this test)" % rep.when,
                             b.log_tail(getattr(item, "_warren_log_offset", 0))))


@pytest.fixture
def conn(broker):
    c = broker.connect()
    yield c
    if c.is_open:
        try:
            c.close()
        except Exception:
            pass


@pytest.fixture
def ch(conn):
    return conn.channel()


class Names:
    """Unique entity names for one test, deleted again afterwards."""

    def __init__(self, broker, test_name):
        self.broker = broker
        # Kept short so that error texts quoting a name stay under 255 bytes
        # (longer reply texts get cut, which has a test of its own).
        short = test_name[5:] if test_name.startswith("test_") else test_name
        self.prefix = "wt.%s.%s" % (short[:20], uuid.uuid4().hex[:6])
        self.queues = []
        self.exchanges = []

    def queue(self, tag="q"):
        name = "%s.%s" % (self.prefix, tag)
        self.queues.append(name)
        return name

    def exchange(self, tag="x"):
        name = "%s.%s" % (self.prefix, tag)
        self.exchanges.append(name)
        return name

    def cleanup(self):
        if not (self.queues or self.exchanges) or not self.broker.alive():
            return
        try:
            c = self.broker.connect()
        except Exception:
            return
        try:
            for q in self.queues:
                try:
                    c.channel().queue_delete(q)
                except Exception:
                    pass
            for x in self.exchanges:
                try:
                    c.channel().exchange_delete(x)
                except Exception:
                    pass
        finally:
            try:
                c.close()
            except Exception:
                pass


@pytest.fixture
def names(broker, request):
    n = Names(broker, request.node.originalname)
    yield n
    n.cleanup()


class ShardConnections:
    """Opens pika connections until they land on the wanted shard."""

    ATTEMPTS = 64

    def __init__(self, broker):
        self.broker = broker
        self.opened = []

    def require_shards(self, n=2):
        if self.broker.external and IGNORE_SHARDS:
            return
        if self.broker.external:
            pytest.skip("external broker: shard placement unknown")
        if (self.broker.shards or 1) < n:
            pytest.skip("needs a broker with at least %d shards" % n)

    def on_shard(self, shard, **kw):
        self.require_shards(shard + 1)
        spare = []
        try:
            for _ in range(self.ATTEMPTS):
                c = self.broker.connect(**kw)
                if self.broker.external and IGNORE_SHARDS:
                    self.opened.append(c)
                    return c
                s = shard_of(c)
                if s is None:
                    c.close()
                    pytest.skip("broker does not advertise warren.shard")
                if s == shard:
                    self.opened.append(c)
                    return c
                spare.append(c)
        finally:
            for c in spare:
                try:
                    c.close()
                except Exception:
                    pass
        pytest.skip("no connection landed on shard %d in %d attempts" % (shard, self.ATTEMPTS))

    def raw_on_shard(self, shard, **kw):
        """A handshaken RawClient on the given shard (any shard if not sharded)."""
        if self.broker.external or (self.broker.shards or 1) < 2:
            return self.broker.raw(**kw)
        for _ in range(self.ATTEMPTS):
            r = self.broker.raw(**kw)
            if r.shard is None or r.shard == shard:
                return r
            r.close()
        pytest.skip("no raw connection landed on shard %d" % shard)

    def close(self):
        for c in self.opened:
            try:
                if c.is_open:
                    c.close()
            except Exception:
                pass


@pytest.fixture
def shards(broker):
    s = ShardConnections(broker)
    yield s
    s.close()

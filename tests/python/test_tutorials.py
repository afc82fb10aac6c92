"""The six classic RabbitMQ pika tutorials, run unchanged (bar the port) against the broker.

The scripts live in tutorials/ and read the broker port from AMQP_PORT; the
host stays 'localhost' as in the tutorials.  Long-running receivers are
started first, the senders are run to completion, and the printed output of
both is checked.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from helpers import settle, wait_until

TUTORIALS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tutorials")
WAIT = 15.0


class Script:
    """A tutorial script running as a subprocess, its output collected line by line."""

    def __init__(self, broker, name, *args):
        self.name = name
        env = dict(os.environ, AMQP_PORT=str(broker.port), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-u", os.path.join(TUTORIALS, name)] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=TUTORIALS)
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self):
        for raw in iter(self.proc.stdout.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def output(self):
        with self.cond:
            return list(self.lines)

    def wait_for(self, text, timeout=WAIT):
        """Wait until a line equal to text has been printed."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while text not in self.lines:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.reader.is_alive():
                    raise AssertionError("%s: %r not printed; output %r (exit status %r)" % (
                        self.name, text, self.lines, self.proc.poll()))
                self.cond.wait(min(remaining, 0.2))

    def finish(self, timeout=WAIT):
        """Wait for a script that ends by itself; return its output lines."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError("%s did not finish; output %r" % (self.name, self.output()))
        self.reader.join(5)
        assert rc == 0, "%s exited with %r; output %r" % (self.name, rc, self.output())
        return self.output()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def run(broker):
    if broker.host not in ("127.0.0.1", "localhost", "::1"):
        pytest.skip("the tutorials connect to localhost")
    started = []

    def start(name, *args):
        s = Script(broker, name, *args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def reset_queue(conn, name, durable=False):
    ch = conn.channel()
    ch.queue_declare(name, durable=durable)
    ch.queue_purge(name)
    ch.close()


def consumer_count(conn, name):
    ch = conn.channel()
    try:
        return ch.queue_declare(name, passive=True).method.consumer_count
    finally:
        ch.close()


def test_tutorial_1_hello_world(conn, run):
    reset_queue(conn, "hello")
    receiver = run("receive.py")
    receiver.wait_for(" [*] Waiting for messages. To exit press CTRL+C")
    out = run("send.py").finish()
    assert out == [" [x] Sent 'Hello World!'"]
    receiver.wait_for(" [x] Received b'Hello World!'")
    settle(conn, 0.3)
    assert receiver.output() == [" [*] Waiting for messages. To exit press CTRL+C",
                                 " [x] Received b'Hello World!'"]


def test_tutorial_2_work_queues_fair_dispatch(conn, run):
    reset_queue(conn, "task_queue", durable=True)
    workers = [run("worker.py"), run("worker.py")]
    wait_until(conn, lambda: consumer_count(conn, "task_queue") == 2, WAIT, "both workers to consume")
    tasks = ["First message.", "Second message.", "Third message.", "Fourth message."]
    for t in tasks:
        assert run("new_task.py", *t.split()).finish() == [" [x] Sent %s" % t]
    wait_until(conn, lambda: sum(sum(1 for l in w.output() if l == " [x] Done") for w in workers) == 4,
               WAIT, "4 tasks done")
    received = [[l[len(" [x] Received "):] for l in w.output() if l.startswith(" [x] Received ")]
                for w in workers]
    assert sorted(received[0] + received[1]) == sorted(tasks)
    # prefetch_count=1 + one-second tasks: both workers must have had work.
    assert received[0] and received[1], received


def test_tutorial_3_publish_subscribe(conn, run):
    receivers = [run("receive_logs.py"), run("receive_logs.py")]
    for r in receivers:
        r.wait_for(" [*] Waiting for logs. To exit press CTRL+C")
    assert run("emit_log.py").finish() == [" [x] Sent info: Hello World!"]
    assert run("emit_log.py", "warning:", "disk", "full").finish() == [" [x] Sent warning: disk full"]
    for r in receivers:
        r.wait_for(" [x] b'warning: disk full'")
        assert r.output() == [" [*] Waiting for logs. To exit press CTRL+C",
                              " [x] b'info: Hello World!'",
                              " [x] b'warning: disk full'"]


def test_tutorial_4_routing(conn, run):
    errors = run("receive_logs_direct.py", "warning", "error")
    infos = run("receive_logs_direct.py", "info")
    for r in (errors, infos):
        r.wait_for(" [*] Waiting for logs. To exit press CTRL+C")
    sent = [("info", "Starting up"), ("debug", "noisy detail"),
            ("warning", "Disk almost full"), ("error", "Run. Run. Or it will explode.")]
    for severity, msg in sent:
        assert run("emit_log_direct.py", severity, *msg.split()).finish() == [
            " [x] Sent %s:%s" % (severity, msg)]
    errors.wait_for(" [x] error:b'Run. Run. Or it will explode.'")
    infos.wait_for(" [x] info:b'Starting up'")
    settle(conn, 0.5)
    assert errors.output()[1:] == [" [x] warning:b'Disk almost full'",
                                   " [x] error:b'Run. Run. Or it will explode.'"]
    assert infos.output()[1:] == [" [x] info:b'Starting up'"]


def test_tutorial_5_topics(conn, run):
    everything = run("receive_logs_topic.py", "#")
    kern = run("receive_logs_topic.py", "kern.*")
    critical = run("receive_logs_topic.py", "*.critical")
    both = run("receive_logs_topic.py", "kern.*", "*.critical")
    receivers = (everything, kern, critical, both)
    for r in receivers:
        r.wait_for(" [*] Waiting for logs. To exit press CTRL+C")
    sent = [("kern.critical", "A critical kernel error"), ("anonymous.info", "Hello World!"),
            ("kern.info", "kernel note"), ("cron.critical", "cron broke"),
            ("kern.critical.extra", "three words")]
    for key, msg in sent:
        assert run("emit_log_topic.py", key, *msg.split()).finish() == [" [x] Sent %s:%s" % (key, msg)]
    expected = {
        "everything": [k for k, _ in sent],
        "kern": ["kern.critical", "kern.info"],
        "critical": ["kern.critical", "cron.critical"],
        "both": ["kern.critical", "kern.info", "cron.critical"],
    }
    lines = {k: [" [x] %s:b'%s'" % (key, dict(sent)[key]) for key in keys] for k, keys in expected.items()}
    for name, r in zip(("everything", "kern", "critical", "both"), receivers):
        r.wait_for(lines[name][-1])
    settle(conn, 0.5)
    for name, r in zip(("everything", "kern", "critical", "both"), receivers):
        assert r.output()[1:] == lines[name], name


def test_tutorial_6_rpc(conn, run):
    reset_queue(conn, "rpc_queue")
    server = run("rpc_server.py")
    server.wait_for(" [x] Awaiting RPC requests")
    out = run("rpc_client.py").finish(timeout=30)
    assert out == [" [x] Requesting fib(30)", " [.] Got 832040"]
    server.wait_for(" [.] fib(30)")

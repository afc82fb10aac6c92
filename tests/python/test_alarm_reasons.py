"""connection.blocked carries RabbitMQ's reason texts. Expected values
were recorded from RabbitMQ 3.10 (a pika publisher blocked after
`rabbitmqctl set_vm_memory_high_watermark 0.0000001` got "low on memory",
after `rabbitmqctl set_disk_free_limit 10000GB` "low on disk").

Each case starts its own broker with the alarm raised from the start.
"""

import os
import subprocess
import tempfile
import time

import pika
import pytest

from conftest import EXTERNAL_URL, WARREN_BIN

pytestmark = pytest.mark.skipif(EXTERNAL_URL is not None, reason="starts its own broker")


@pytest.mark.parametrize("flags,reason", [
    (["--memory-limit", "1"], "low on memory"),
    (["--disk-free-limit", "100000GB"], "low on disk"),
], ids=["memory", "disk"])
@pytest.mark.parametrize("shards", [1, 2])
def test_blocked_reason_is_rabbitmq_text(flags, reason, shards):
    with tempfile.TemporaryDirectory() as d:
        proc = subprocess.Popen(
            [WARREN_BIN, "--bind", "127.0.0.1", "--port", "0", "--no-mgmt", "--shards", str(shards),
             "--data-dir", os.path.join(d, "data"), *flags],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(os.environ, WARREN_LOG="warn"))
        try:
            port = int(proc.stdout.readline().decode().strip().rsplit(":", 1)[1])
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
            got = []
            conn.add_on_connection_blocked_callback(lambda c, m: got.append(m.method.reason))
            ch = conn.channel()
            deadline = time.monotonic() + 15
            while not got and time.monotonic() < deadline:
                ch.basic_publish("", "nowhere", b"x")
                conn.process_data_events(0.2)
            assert got == [reason]
        finally:
            proc.kill()
            proc.wait()

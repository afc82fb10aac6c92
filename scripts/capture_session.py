#!/usr/bin/env python3
"""Record real client sessions as seeds for the `session` fuzz target.

A TCP proxy: listens on LISTEN_PORT, forwards each connection to the broker
at UPSTREAM_PORT, and writes what the client sent after the 8-byte protocol
header to OUT_DIR/<prefix>-<n>, behind one byte that makes the fuzz target
feed it in 4081-byte reads (0xff). Run a client (pika, lapin, ...) against
LISTEN_PORT, then stop the proxy with Ctrl-C.

    scripts/capture_session.py 5699 5672 fuzz/seeds/session lapin
"""
import socket
import sys
import threading

listen_port, upstream_port, out_dir, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
count = 0
lock = threading.Lock()


def pump(src, dst, record):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if record is not None:
                record.extend(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(client):
    global count
    upstream = socket.create_connection(("127.0.0.1", upstream_port))
    record = bytearray()
    back = threading.Thread(target=pump, args=(upstream, client, None))
    back.start()
    pump(client, upstream, record)
    back.join()
    with lock:
        count += 1
        n = count
    if len(record) > 8:
        with open(f"{out_dir}/{prefix}-{n:02d}", "wb") as f:
            f.write(b"\xff" + bytes(record[8:]))


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port))
srv.listen()
try:
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
except KeyboardInterrupt:
    pass

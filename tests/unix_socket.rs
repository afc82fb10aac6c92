//! The Unix domain socket listener (`--unix-socket`, LavinMQ's
//! `unix_path`): the same AMQP over a local socket, dealt out over the
//! shards, sharing every queue with TCP clients; the socket file's mode,
//! a stale file from a dead broker, and removal at a clean stop. No common
//! client library dials a Unix socket, so the Unix side is the test
//! harness's raw AMQP client; the TCP side is lapin.

mod common;
mod mgmt;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, queue, AMQPClass};
use common::*;
use lapin::options::{BasicGetOptions, BasicPublishOptions};
use lapin::BasicProperties;
use mgmt::{eventually, seg, Api};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

fn declare(raw: &mut RawClient, ch: u16, name: &str) {
    raw.send_method(
        ch,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: name.into(),
            ..Default::default()
        })),
    );
    loop {
        match raw.read_frame() {
            Some(AMQPFrame::Method(_, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))) => return,
            Some(_) => continue,
            None => panic!("no queue.declare-ok"),
        }
    }
}

fn publish(raw: &mut RawClient, ch: u16, queue: &str, body: &[u8]) {
    raw.send_method(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: queue.into(),
            mandatory: false,
            immediate: false,
        })),
    );
    raw.send_content(ch, body);
}

/// basic.get with no-ack: the body, or None if the queue was empty.
fn get(raw: &mut RawClient, ch: u16, queue: &str) -> Option<Vec<u8>> {
    raw.send_method(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: queue.into(),
            no_ack: true,
        })),
    );
    loop {
        match raw.read_frame()? {
            AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_))) => return None,
            AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::GetOk(_))) => break,
            _ => continue,
        }
    }
    let mut body = Vec::new();
    let size = match raw.read_frame()? {
        AMQPFrame::Header(_, _, h) => h.body_size as usize,
        other => panic!("expected a content header, got {other:?}"),
    };
    while body.len() < size {
        match raw.read_frame()? {
            AMQPFrame::Body(_, b) => body.extend_from_slice(&b),
            other => panic!("expected a body frame, got {other:?}"),
        }
    }
    Some(body)
}

fn socket_in(dir: &Path) -> String {
    dir.join("amqp.sock").to_str().unwrap().to_string()
}

#[test]
fn unix_socket_clients_share_queues_with_tcp_clients_on_every_shard() {
    for shards in [1usize, 2] {
        let dir = tempfile::tempdir().unwrap();
        let sock = socket_in(dir.path());
        let b = Broker::start_with(shards, &["--unix-socket", &sock]);
        let meta = std::fs::metadata(&sock).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o666);
        // Connections are dealt out round-robin: every shard gets some.
        let mut clients: Vec<RawClient> = (0..2 * shards)
            .map(|_| RawClient::handshake_unix(Path::new(&sock)))
            .collect();
        let mut seen: Vec<usize> = clients.iter().map(|c| c.shard).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, (0..shards).collect::<Vec<_>>(), "shards used");
        let raw = &mut clients[shards - 1];
        raw.open_channel(1);
        let q = format!("unix-{shards}");
        declare(raw, 1, &q);
        for i in 0..100u32 {
            publish(raw, 1, &q, format!("unix {i}").as_bytes());
        }
        rt().block_on(async {
            let conn = connect(&b).await;
            let ch = open_channel(&conn).await;
            for i in 0..100u32 {
                let m = within("basic.get over TCP", async {
                    loop {
                        if let Some(m) = ch
                            .basic_get(&q, BasicGetOptions { no_ack: true })
                            .await
                            .unwrap()
                        {
                            return m;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                })
                .await;
                assert_eq!(m.delivery.data, format!("unix {i}").into_bytes());
            }
            let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
            ch.basic_publish(
                "",
                &q,
                BasicPublishOptions::default(),
                &big,
                BasicProperties::default(),
            )
            .await
            .unwrap();
            let got = loop {
                if let Some(body) = get(raw, 1, &q) {
                    break body;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            };
            assert_eq!(got, big, "a multi-frame body over the Unix socket");
            // Listed, named uniquely, and closable like any connection.
            let api = Api::new(b.mgmt_port);
            let conns = api.get_ok("/api/connections");
            let unix: Vec<&serde_json::Value> = conns
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["name"].as_str().unwrap().starts_with("unix:"))
                .collect();
            assert_eq!(unix.len(), 2 * shards, "{conns}");
            let name = unix[0]["name"].as_str().unwrap().to_string();
            let r = api.delete(&format!("/api/connections/{}", seg(&name)));
            assert_eq!(r.status, 204, "{}", r.text);
            eventually("the closed unix connection leaves the listing", || {
                let now = api.get_ok("/api/connections");
                let gone = !now
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["name"].as_str() == Some(name.as_str()));
                gone.then_some(())
            });
            conn.close(200, "").await.unwrap();
        });
        drop(clients);
    }
}

#[test]
fn unix_socket_mode_stale_file_and_removal_at_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let sock = socket_in(dir.path());
    // A socket file left behind by a broker that died is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(Path::new(&sock).exists());
    let cfg = dir.path().join("warren.toml");
    std::fs::write(&cfg, "unix_socket_mode = 0o600\n").unwrap();
    let mut b = Broker::start_with(
        1,
        &["--unix-socket", &sock, "--config", cfg.to_str().unwrap()],
    );
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let _c = RawClient::handshake_unix(Path::new(&sock));
    b.terminate();
    assert!(!Path::new(&sock).exists(), "socket file left after SIGTERM");
}

/// Start warren on `sock` expecting it to refuse: its stderr.
fn refused_start(dir: &Path, sock: &str) -> String {
    let out = std::process::Command::new(warren_bin())
        .args(["--port", "0", "--no-mgmt", "--unix-socket", sock])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_unix_socket_path_held_by_something_else_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let sock = socket_in(dir.path());
    std::fs::write(&sock, "not a socket").unwrap();
    let err = refused_start(dir.path(), &sock);
    assert!(err.contains("not a socket"), "{err}");
    // A live listener is not taken over either.
    std::fs::remove_file(&sock).unwrap();
    let _live = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let err = refused_start(dir.path(), &sock);
    assert!(err.contains("another process listens"), "{err}");
}

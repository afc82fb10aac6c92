//! Malformed input over raw TCP: the offending connection is refused or
//! closed, and nobody else notices.

mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, queue, AMQPClass};
use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::Connection;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Everything the server sends until it closes the socket.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(STEP)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("server kept the socket open after a bad protocol header; got {out:?}")
            }
            Err(_) => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_protocol_header_is_answered_with_amqp_0_9_1_header_then_closed() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let port = b.port;
        tokio::task::spawn_blocking(move || {
            let headers: [&[u8]; 6] = [
                b"AMQP\x00\x00\x08\x00",
                b"AMQP\x01\x01\x00\x0a",
                b"AMQP\x00\x01\x00\x00",
                b"AMQP\x03\x01\x00\x00",
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                b"\x01\x00\x00\x00\x00\x00\x0c\x00",
            ];
            // Several attempts per header so both shards see each one.
            for h in headers {
                for _ in 0..4 {
                    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    s.write_all(h).unwrap();
                    let got = read_to_close(&mut s);
                    assert_eq!(got, b"AMQP\x00\x00\x09\x01", "reply to header {h:?}");
                }
            }
        })
        .await
        .unwrap();
        // The broker still serves real clients.
        let conn = connect(&b).await;
        assert_connection_usable(&conn).await;
    }
}

/// A lapin client per shard that keeps working throughout.
async fn bystanders(b: &Broker) -> Vec<Connection> {
    let mut v = Vec::new();
    for s in 0..b.shards {
        v.push(connect_on_shard(b, s).await);
    }
    v
}

async fn check_bystanders(conns: &[Connection]) {
    for c in conns {
        assert_connection_usable(c).await;
    }
}

fn frame(kind: u8, channel: u16, payload: &[u8], end: u8) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(end);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_handshake_closes_only_that_connection() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let others = bystanders(&b).await;
        // (description, needs channel 1 open, bytes, acceptable reply codes)
        let cases: Vec<(&str, bool, Vec<u8>, &[u16])> = vec![
            ("unknown frame type", false, frame(9, 0, &[], 0xCE), &[501]),
            ("bad frame-end octet", false, frame(8, 0, &[], 0x00), &[501]),
            (
                "frame larger than frame-max",
                false,
                {
                    let mut v = vec![1, 0, 1];
                    v.extend_from_slice(&10_000_000u32.to_be_bytes());
                    v.extend_from_slice(&[0; 64]);
                    v
                },
                &[501],
            ),
            (
                "unparseable method",
                true,
                frame(1, 1, &[0, 99, 0, 99, 1, 2, 3], 0xCE),
                &[501, 502, 503, 540],
            ),
            (
                "truncated method arguments",
                true,
                frame(1, 1, &[0, 50, 0, 10, 0], 0xCE),
                &[501, 502],
            ),
            (
                // The spec (4.2.7) says 501; RabbitMQ answers 505.
                "heartbeat on a non-zero channel",
                false,
                frame(8, 1, &[], 0xCE),
                &[501, 505],
            ),
            (
                "content body with no publish",
                true,
                frame(3, 1, b"stray", 0xCE),
                &[505],
            ),
            (
                "method on a channel never opened",
                false,
                {
                    let q = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                        queue: "x".into(),
                        passive: false,
                        durable: false,
                        exclusive: false,
                        auto_delete: false,
                        nowait: false,
                        arguments: Default::default(),
                    }));
                    encode_frame(&AMQPFrame::Method(7, q))
                },
                &[504],
            ),
            (
                "random bytes",
                false,
                {
                    let mut x: u32 = 0x1234_5678;
                    (0..512)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 17;
                            x ^= x << 5;
                            (x & 0xff) as u8
                        })
                        .collect()
                },
                &[501, 502, 505],
            ),
        ];
        for (what, open, bytes, codes) in cases {
            eprintln!("case: {what}");
            let port = b.port;
            let bytes2 = bytes.clone();
            let code = tokio::task::spawn_blocking(move || {
                let mut c = RawClient::handshake(port);
                if open {
                    c.open_channel(1);
                }
                c.send_raw(&bytes2);
                c.expect_connection_close()
            })
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(
                codes.contains(&code),
                "{what}: connection.close code {code}, expected one of {codes:?}"
            );
            check_bystanders(&others).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_frames_from_vanishing_clients_do_not_disturb_a_busy_client() {
    const N: usize = 10_000;
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let port = b.port;
        let conn = connect_on_shard(&b, 0).await;
        let ch = confirm_channel(&conn).await;
        // The queue lives on the other shard when there is one.
        let q = queue_on_shard("busy", 1, shards);
        declare_queue(&ch, &q).await;
        let cconn = connect_on_shard(&b, 1).await;
        let cch = open_channel(&cconn).await;
        within("qos", cch.basic_qos(200, BasicQosOptions::default()))
            .await
            .unwrap();
        let mut consumer = within(
            "consume",
            cch.basic_consume(
                &q,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();

        // Misbehaving clients, in a thread, while the good client works.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let q2 = q.clone();
        let vandals = tokio::task::spawn_blocking(move || {
            let mut lingering = Vec::new();
            let mut rounds = 0;
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) || rounds < 10 {
                rounds += 1;
                // 1. Half a method frame, then vanish.
                let mut c = RawClient::handshake(port);
                c.open_channel(1);
                let f = encode_frame(&AMQPFrame::Method(
                    1,
                    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                        exchange: "".into(),
                        routing_key: q2.as_str().into(),
                        mandatory: false,
                        immediate: false,
                    })),
                ));
                c.send_raw(&f[..f.len() / 2]);
                drop(c);
                // 2. A publish with half its body, then vanish.
                let mut c = RawClient::handshake(port);
                c.open_channel(1);
                c.send_raw(&f);
                let body = vec![b'P'; 1000];
                let header = AMQPFrame::Header(
                    1,
                    60,
                    Box::new(amq_protocol::frame::AMQPContentHeader {
                        class_id: 60,
                        body_size: body.len() as u64,
                        properties: Default::default(),
                    }),
                );
                c.send_raw(&encode_frame(&header));
                let bf = encode_frame(&AMQPFrame::Body(1, body[..500].to_vec()));
                c.send_raw(&bf);
                drop(c);
                // 3. Half the protocol header, then vanish.
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                let _ = s.write_all(b"AMQ");
                drop(s);
                // 4. Half a frame, and stay connected (silent) until the end.
                let mut c = RawClient::handshake(port);
                c.send_raw(&f[..5]);
                lingering.push(c);
                std::thread::sleep(Duration::from_millis(20));
            }
            lingering.len()
        });

        let mut pending = Vec::with_capacity(N);
        for i in 0..N {
            pending.push(publish(&ch, "", &q, format!("good-{i}").as_bytes()).await);
        }
        let mut seen = vec![false; N];
        for _ in 0..N {
            let d = next_delivery(&mut consumer, "good delivery").await;
            let body = String::from_utf8_lossy(&d.data).into_owned();
            let i: usize = body
                .strip_prefix("good-")
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("a partial or foreign message was delivered: {body:?}"));
            assert!(!seen[i], "message {i} delivered twice");
            seen[i] = true;
            within("ack", d.acker.ack(BasicAckOptions::default()))
                .await
                .unwrap();
        }
        for (i, c) in pending.into_iter().enumerate() {
            let r = within("confirm", c).await;
            assert!(
                matches!(r, Ok(lapin::publisher_confirm::Confirmation::Ack(None))),
                "message {i}: {r:?}"
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let lingering = within_for(Duration::from_secs(60), "vandals", vandals)
            .await
            .unwrap();
        assert!(lingering >= 10);
        assert_no_delivery(
            &mut consumer,
            Duration::from_millis(300),
            "partial publishes must never be delivered",
        )
        .await;
        assert_eq!(ready_count(&conn, &q).await, 0);
        check_bystanders(&[conn, cconn]).await;
    }
}

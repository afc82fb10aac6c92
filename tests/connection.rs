//! Connection lifecycle as seen by a real client (lapin).

mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{connection, AMQPClass};
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_initiated_connection_close_completes_with_close_ok() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        for i in 0..20 {
            let conn = connect(&b).await;
            let ch = open_channel(&conn).await;
            declare_queue(&ch, "").await;
            let r = within("connection.close", conn.close(200, "bye")).await;
            assert!(
                r.is_ok(),
                "attempt {i}: connection.close should complete cleanly, got {r:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_reports_a_valid_shard_and_all_shards_get_connections() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let mut seen = vec![0; shards];
        let mut conns = Vec::new();
        for _ in 0..40 {
            let (conn, shard) = connect_sniffed(&b).await;
            assert!(shard < shards, "warren.shard {shard} out of range");
            seen[shard] += 1;
            conns.push(conn);
        }
        assert!(
            seen.iter().all(|&n| n > 0),
            "connections should land on every shard: {seen:?}"
        );
        // Connections on different shards see the same definitions.
        let ch = open_channel(&conns[0]).await;
        declare_queue(&ch, "shared").await;
        for conn in &conns {
            let ch = open_channel(conn).await;
            within(
                "passive declare",
                ch.queue_declare(
                    "shared",
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await
            .expect("queue declared on one shard is visible from every shard");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_channels_on_one_connection_work_independently() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let mut chans = Vec::new();
        for i in 0..50 {
            let ch = open_channel(&conn).await;
            let q = declare_queue(&ch, &format!("chan-{i}")).await;
            chans.push((ch, q));
        }
        for (i, (ch, q)) in chans.iter().enumerate() {
            publish(ch, "", q, format!("{i}").as_bytes()).await;
        }
        for (i, (ch, q)) in chans.iter().enumerate() {
            let got = within("get", ch.basic_get(q, BasicGetOptions { no_ack: true }))
                .await
                .unwrap();
            assert_eq!(
                got.expect("message").delivery.data,
                format!("{i}").as_bytes()
            );
        }
        for (ch, _) in chans.iter().step_by(2) {
            within("channel.close", ch.close(200, "bye"))
                .await
                .expect("channel.close");
        }
        for (ch, q) in chans.iter().skip(1).step_by(2) {
            publish(ch, "", q, b"still").await;
            let got = within("get", ch.basic_get(q, BasicGetOptions { no_ack: true }))
                .await
                .unwrap();
            assert_eq!(got.expect("message").delivery.data, b"still");
        }
    }
}

/// Frames until the server closes the socket, and whether it did close.
fn frames_until_closed(c: &mut RawClient) -> (Vec<AMQPFrame>, bool) {
    let mut frames = Vec::new();
    loop {
        match c.next() {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => return (frames, true),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (frames, false)
            }
            Err(_) => return (frames, true),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_that_negotiated_heartbeats_is_disconnected() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let port = b.port;
        let (frames, closed) = tokio::task::spawn_blocking(move || {
            let mut c = RawClient::handshake_with(port, 1);
            frames_until_closed(&mut c)
        })
        .await
        .unwrap();
        assert!(
            closed,
            "a peer silent for two heartbeat intervals must be dropped; got {frames:?}"
        );
        assert!(
            frames.iter().any(|f| matches!(f, AMQPFrame::Heartbeat(0))),
            "the server should send heartbeats before giving up; got {frames:?}"
        );
        let conn = connect(&b).await;
        assert_connection_usable(&conn).await;
    }
}

fn refused(port: u16, mechanism: &str, response: &str, vhost: &str) -> u16 {
    let mut c = RawClient::start(port);
    c.start_ok(mechanism, response);
    match c.next() {
        Ok(Some(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Tune(_))))) => {
            c.tune_ok(2047, 131_072, 0);
            c.open_vhost(vhost);
        }
        Ok(Some(AMQPFrame::Method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(cl)),
        ))) => {
            let (_, closed) = frames_until_closed(&mut c);
            assert!(closed, "socket should close after a refused login");
            return cl.reply_code;
        }
        other => panic!("unexpected reply to start-ok: {other:?}"),
    }
    c.expect_connection_close()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_mechanism_or_vhost_are_refused() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let port = b.port;
        tokio::task::spawn_blocking(move || {
            assert_eq!(
                refused(port, "PLAIN", "\0guest\0wrong", "/"),
                403,
                "wrong password"
            );
            assert_eq!(
                refused(port, "PLAIN", "\0nobody\0guest", "/"),
                403,
                "unknown user"
            );
            assert_eq!(
                refused(port, "PLAIN", "garbage", "/"),
                403,
                "malformed PLAIN response"
            );
            // A mechanism not offered (EXTERNAL on plain TCP) or unknown:
            // RabbitMQ 3.10 closes the socket with no reply, after 3 s
            // (asked of the real broker: no frame, closed after 3.0 s).
            for mechanism in ["EXTERNAL", "FOO"] {
                let mut c = RawClient::start(port);
                c.start_ok(mechanism, "");
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                loop {
                    match c.next() {
                        Ok(None) => break,
                        Ok(Some(f)) => panic!("{mechanism}: a reply where none is due: {f:?}"),
                        Err(e)
                            if std::time::Instant::now() < deadline
                                && matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                        Err(e) => panic!("{mechanism}: socket not closed: {e}"),
                    }
                }
            }
            assert_eq!(
                refused(port, "PLAIN", "\0guest\0guest", "/nope"),
                530,
                "unknown vhost"
            );
        })
        .await
        .unwrap();
        let bad = format!("amqp://guest:wrong@127.0.0.1:{}/%2f", b.port);
        let r = within(
            "bad login",
            Connection::connect(&bad, ConnectionProperties::default()),
        )
        .await;
        assert!(
            r.is_err(),
            "lapin must fail to connect with a wrong password"
        );
        let conn = connect(&b).await;
        assert_connection_usable(&conn).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqplain_login_is_accepted() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let port = b.port;
        tokio::task::spawn_blocking(move || {
            let mut t = FieldTable::default();
            t.insert("LOGIN".into(), AMQPValue::LongString("guest".into()));
            t.insert("PASSWORD".into(), AMQPValue::LongString("guest".into()));
            let (bytes, _) = cookie_factory::gen(
                amq_protocol::types::generation::gen_field_table(&t),
                Vec::new(),
            )
            .unwrap();
            // AMQPLAIN is a field table without its length prefix.
            let response = String::from_utf8(bytes[4..].to_vec()).unwrap();
            let mut c = RawClient::start(port);
            c.start_ok("AMQPLAIN", &response);
            match c.read_frame() {
                Some(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Tune(_)),
                )) => {}
                other => panic!("AMQPLAIN login should be accepted, got {other:?}"),
            }
        })
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_tune_and_channel_numbers_close_the_connection_530() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let port = b.port;
        tokio::task::spawn_blocking(move || {
            eprintln!("case: frame_max below the 4096 minimum");
            let mut c = RawClient::start(port);
            c.start_ok("PLAIN", "\0guest\0guest");
            c.read_frame().expect("tune");
            c.tune_ok(2047, 1024, 0);
            assert_eq!(c.expect_connection_close(), 530, "frame_max below 4096");

            // Channels 1 and 2 within channel_max 2; channel 3 exceeds it
            // both as a number and as a count of open channels.
            eprintln!("case: a channel beyond the negotiated channel_max");
            let mut c = RawClient::start(port);
            c.start_ok("PLAIN", "\0guest\0guest");
            c.read_frame().expect("tune");
            c.tune_ok(2, 131_072, 0);
            c.open_vhost("/");
            c.read_frame().expect("open-ok");
            c.open_channel(1);
            c.open_channel(2);
            c.send_method(
                3,
                AMQPClass::Channel(amq_protocol::protocol::channel::AMQPMethod::Open(
                    amq_protocol::protocol::channel::Open {},
                )),
            );
            assert_eq!(
                c.expect_connection_close(),
                530,
                "third channel with channel_max 2"
            );

            eprintln!("case: channel.open twice, a channel error (504) on the connection");
            let mut c = RawClient::handshake(port);
            c.open_channel(1);
            c.send_method(
                1,
                AMQPClass::Channel(amq_protocol::protocol::channel::AMQPMethod::Open(
                    amq_protocol::protocol::channel::Open {},
                )),
            );
            assert_eq!(c.expect_connection_close(), 504, "second channel.open");
        })
        .await
        .unwrap();
    }
}

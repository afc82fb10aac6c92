//! No message is lost or duplicated when a consumer goes away while
//! deliveries to it are still in flight (possibly in a cross-shard
//! mailbox): channel close, connection close, and an abruptly dropped
//! socket all return every unacked message to the queue exactly once.

mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, AMQPClass};
use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::Connection;
use std::time::Duration;

const N: usize = 20_000;

async fn fill(conn: &Connection, q: &str) {
    let ch = confirm_channel(conn).await;
    declare_queue(&ch, q).await;
    let mut pending = Vec::with_capacity(N);
    for i in 0..N {
        pending.push(publish(&ch, "", q, format!("{i}").as_bytes()).await);
    }
    for c in pending {
        within("confirm", c).await.expect("confirm");
    }
}

/// Wait until all N messages are ready again, then take them all and
/// check each arrives exactly once.
async fn assert_all_back_exactly_once(conn: &Connection, q: &str, acked: &[usize]) {
    let want = (N - acked.len()) as u32;
    let mut ready = 0;
    for _ in 0..400 {
        ready = ready_count(conn, q).await;
        if ready >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ready, want,
        "every unacked message must return to the queue exactly once"
    );
    let ch = open_channel(conn).await;
    let mut seen = vec![false; N];
    for &i in acked {
        seen[i] = true;
    }
    let mut c = within(
        "consume",
        ch.basic_consume(
            q,
            "",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    for _ in 0..want {
        let d = next_delivery(&mut c, "re-consume").await;
        let i: usize = String::from_utf8_lossy(&d.data).parse().unwrap();
        assert!(
            !seen[i],
            "message {i} delivered again after being acked, or twice"
        );
        seen[i] = true;
    }
    assert!(seen.iter().all(|s| *s), "some message was lost");
    assert_no_delivery(
        &mut c,
        Duration::from_millis(200),
        "nothing beyond the N messages",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_deliveries_to_a_closed_channel_are_requeued_not_lost() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        for home in 0..shards {
            let q = queue_on_shard("inflight-ch", home, shards);
            let admin = connect_on_shard(&b, 0).await;
            fill(&admin, &q).await;
            // Consumer on the other shard, unlimited prefetch: thousands of
            // deliveries are in flight when the channel closes.
            let cconn = connect_on_shard(&b, 1).await;
            let ch = open_channel(&cconn).await;
            let mut c = within(
                "consume",
                ch.basic_consume(
                    &q,
                    "",
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .unwrap();
            let mut acked = Vec::new();
            for k in 0..200 {
                let d = next_delivery(&mut c, "first deliveries").await;
                if k % 2 == 0 {
                    acked.push(String::from_utf8_lossy(&d.data).parse::<usize>().unwrap());
                    within("ack", d.acker.ack(BasicAckOptions::default()))
                        .await
                        .unwrap();
                }
            }
            within("channel.close", ch.close(200, "bye"))
                .await
                .expect("channel.close");
            drop(c);
            assert_all_back_exactly_once(&admin, &q, &acked).await;
            let _ = cconn.close(200, "bye").await;
            let _ = admin.close(200, "bye").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_deliveries_to_a_closed_connection_are_requeued_not_lost() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        for home in 0..shards {
            let q = queue_on_shard("inflight-conn", home, shards);
            let admin = connect_on_shard(&b, 0).await;
            fill(&admin, &q).await;
            let cconn = connect_on_shard(&b, 1).await;
            let mut consumers = Vec::new();
            // Several channels consuming at once.
            for _ in 0..3 {
                let ch = open_channel(&cconn).await;
                // Bounded prefetch, so the first consumer cannot take all.
                within("qos", ch.basic_qos(2000, BasicQosOptions::default()))
                    .await
                    .unwrap();
                let c = within(
                    "consume",
                    ch.basic_consume(
                        &q,
                        "",
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    ),
                )
                .await
                .unwrap();
                consumers.push((ch, c));
            }
            for (_, c) in consumers.iter_mut() {
                for _ in 0..50 {
                    next_delivery(c, "first deliveries").await;
                }
            }
            let _ = within("connection.close", cconn.close(200, "bye")).await;
            drop(consumers);
            assert_all_back_exactly_once(&admin, &q, &[]).await;
            let _ = admin.close(200, "bye").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_deliveries_to_a_dropped_socket_are_requeued_not_lost() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        for home in 0..shards {
            let q = queue_on_shard("inflight-raw", home, shards);
            let admin = connect_on_shard(&b, 0).await;
            fill(&admin, &q).await;
            let port = b.port;
            let want_shard = 1 % shards;
            let q2 = q.clone();
            tokio::task::spawn_blocking(move || {
                // A raw consumer on the other shard that reads a few
                // deliveries and then vanishes without any close.
                let mut c = loop {
                    let c = RawClient::handshake(port);
                    if c.shard == want_shard {
                        break c;
                    }
                };
                c.open_channel(1);
                c.send_method(
                    1,
                    AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                        queue: q2.as_str().into(),
                        consumer_tag: "raw".into(),
                        no_local: false,
                        no_ack: false,
                        exclusive: false,
                        nowait: false,
                        arguments: Default::default(),
                    })),
                );
                let mut deliveries = 0;
                while deliveries < 100 {
                    match c.next() {
                        Ok(Some(AMQPFrame::Method(
                            1,
                            AMQPClass::Basic(basic::AMQPMethod::Deliver(_)),
                        ))) => deliveries += 1,
                        Ok(Some(_)) => {}
                        other => panic!("raw consumer: {other:?}"),
                    }
                }
                drop(c);
            })
            .await
            .unwrap();
            assert_all_back_exactly_once(&admin, &q, &[]).await;
            let _ = admin.close(200, "bye").await;
        }
    }
}

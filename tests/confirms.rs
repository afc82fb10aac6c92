//! Publisher confirms.

mod common;

use common::*;
use lapin::options::*;
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_confirms_ack_every_message_from_several_connections() {
    const CONNS: usize = 4;
    const PER_CONN: usize = 10_000;
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let admin = connect(&b).await;
        let ach = open_channel(&admin).await;
        // One queue homed on each shard; every publisher writes to both.
        let queues: Vec<String> = (0..shards)
            .map(|s| queue_on_shard("confirm", s, shards))
            .collect();
        for q in &queues {
            declare_queue(&ach, q).await;
        }
        let mut tasks = Vec::new();
        for i in 0..CONNS {
            // Spread publishers over every shard.
            let conn = connect_on_shard(&b, i).await;
            let queues = queues.clone();
            tasks.push(tokio::spawn(async move {
                let ch = confirm_channel(&conn).await;
                let mut pending = Vec::with_capacity(PER_CONN);
                for n in 0..PER_CONN {
                    let q = &queues[n % queues.len()];
                    pending.push(publish(&ch, "", q, format!("{i}:{n}").as_bytes()).await);
                }
                let mut acked = 0;
                for (n, c) in pending.into_iter().enumerate() {
                    match within_for(Duration::from_secs(60), "publisher confirm", c).await {
                        Ok(Confirmation::Ack(None)) => acked += 1,
                        other => panic!("connection {i} message {n}: expected ack, got {other:?}"),
                    }
                }
                let _ = conn.close(200, "done").await;
                acked
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += within_for(Duration::from_secs(120), "publisher task", t)
                .await
                .expect("publisher task");
        }
        assert_eq!(total, CONNS * PER_CONN);
        // A confirm means the message is in its queue.
        let mut ready = 0;
        for q in &queues {
            ready += ready_count(&admin, q).await as usize;
        }
        assert_eq!(
            ready,
            CONNS * PER_CONN,
            "every confirmed message is enqueued"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_of_fanout_publish_implies_every_routed_queue_has_it() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        within(
            "exchange.declare",
            ch.exchange_declare(
                "fan",
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        let queues: Vec<String> = (0..8).map(|i| format!("fanq-{i}")).collect();
        for q in &queues {
            declare_queue(&ch, q).await;
            within(
                "bind",
                ch.queue_bind(
                    q,
                    "fan",
                    "",
                    QueueBindOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .unwrap();
        }
        if shards > 1 {
            let homes: std::collections::HashSet<usize> =
                queues.iter().map(|q| queue_home(q, shards)).collect();
            assert_eq!(
                homes.len(),
                shards,
                "test queues should be homed on every shard"
            );
        }
        let mut pending = Vec::new();
        for n in 0..500 {
            pending.push(publish(&ch, "fan", "", format!("{n}").as_bytes()).await);
        }
        for c in pending {
            assert_eq!(within("confirm", c).await.unwrap(), Confirmation::Ack(None));
        }
        for q in &queues {
            assert_eq!(ready_count(&conn, q).await, 500, "queue {q}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_cover_unroutable_and_mandatory_returned_messages() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = declare_queue(&ch, "mixed").await;
        let mandatory = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let mut pending = Vec::new();
        for n in 0..300usize {
            let (key, opts) = match n % 3 {
                0 => (q.as_str(), BasicPublishOptions::default()),
                1 => ("nowhere", BasicPublishOptions::default()),
                _ => ("nowhere", mandatory),
            };
            let body = n.to_string();
            let c = within(
                "publish",
                ch.basic_publish("", key, opts, body.as_bytes(), BasicProperties::default()),
            )
            .await
            .unwrap();
            pending.push((n, c));
        }
        // lapin hands each basic.return to whichever confirm completes next
        // (and a multiple-ack completes in hash order), so check the set of
        // returned messages rather than which confirm carried each one.
        let mut returned = Vec::new();
        for (n, c) in pending {
            match within("confirm", c).await.unwrap() {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(r)) => {
                    assert_eq!(r.reply_code, 312, "NO_ROUTE");
                    returned.push(
                        String::from_utf8_lossy(&r.delivery.data)
                            .parse::<usize>()
                            .unwrap_or_else(|_| panic!("returned body {:?}", r.delivery.data)),
                    );
                }
                other => panic!("message {n}: expected ack, got {other:?}"),
            }
        }
        returned.sort();
        let expected: Vec<usize> = (0..300).filter(|n| n % 3 == 2).collect();
        assert_eq!(
            returned, expected,
            "exactly the mandatory unroutable messages are returned, before their acks"
        );
        assert_eq!(ready_count(&conn, &q).await, 100);
    }
}

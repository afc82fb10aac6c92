//! Message and queue lifecycle over lapin: dead letters crossing shards,
//! and TTL and dead-lettering state of durable queues across a `kill -9`.
//! (Exact RabbitMQ answers are checked by the pika suite:
//! tests/python/test_dead_letter.py, test_queue_args.py,
//! test_queue_limits.py.)

mod common;
mod mgmt;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use std::time::Duration;

fn dlx_args(dead_letter_queue: &str, ttl_ms: Option<i64>) -> FieldTable {
    let mut a = FieldTable::default();
    a.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    a.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(dead_letter_queue.into()),
    );
    if let Some(t) = ttl_ms {
        a.insert("x-message-ttl".into(), AMQPValue::LongLongInt(t));
    }
    a
}

fn death_reason(d: &lapin::message::Delivery) -> String {
    let headers = d.properties.headers().clone().unwrap_or_default();
    match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => match a.as_slice().first() {
            Some(AMQPValue::FieldTable(t)) => match t.inner().get("reason") {
                Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into(),
                other => format!("{other:?}"),
            },
            other => format!("{other:?}"),
        },
        other => format!("{other:?}"),
    }
}

/// Rejected and expired messages of a queue homed on one shard arrive in a
/// dead-letter queue homed on the other (with 1 shard: the same one).
async fn dead_letters_reach_a_queue_homed_on_another_shard(shards: usize) {
    let b = start_broker(shards).await;
    let conn = connect(&b).await;
    let ch = open_channel(&conn).await;
    let src = queue_on_shard("dl-src", 0, shards);
    let dlq = queue_on_shard("dl-target", 1, shards);
    declare_queue(&ch, &dlq).await;
    within(
        "declare source",
        ch.queue_declare(
            &src,
            QueueDeclareOptions::default(),
            dlx_args(&dlq, Some(300)),
        ),
    )
    .await
    .unwrap();
    within("publish", publish(&ch, "", &src, b"rejected").await)
        .await
        .unwrap();
    let got = within("get", ch.basic_get(&src, BasicGetOptions::default()))
        .await
        .unwrap()
        .expect("the message");
    within(
        "reject",
        got.delivery.reject(BasicRejectOptions { requeue: false }),
    )
    .await
    .unwrap();
    within("publish", publish(&ch, "", &src, b"expired").await)
        .await
        .unwrap();
    let mut c = within(
        "consume",
        ch.basic_consume(
            &dlq,
            "dl",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    let first = next_delivery(&mut c, "the rejected message").await;
    assert_eq!(
        (first.data.as_slice(), death_reason(&first).as_str()),
        (&b"rejected"[..], "rejected")
    );
    let second = next_delivery(&mut c, "the expired message").await;
    assert_eq!(
        (second.data.as_slice(), death_reason(&second).as_str()),
        (&b"expired"[..], "expired")
    );
    assert_eq!(ready_count(&conn, &src).await, 0);
}

/// Persistent messages in a durable queue with a TTL and a dead-letter
/// queue: after a `kill -9` they come back, and still expire into the
/// dead-letter queue (their journalled deadlines hold).
async fn a_durable_ttl_queue_still_expires_and_dead_letters_after_a_crash(shards: usize) {
    let mut b = start_broker(shards).await;
    let (src, dlq) = (
        queue_on_shard("ttl-src", 0, shards),
        queue_on_shard("ttl-dlq", 1, shards),
    );
    {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        declare_durable(&ch, &dlq).await;
        within(
            "declare durable source",
            ch.queue_declare(
                &src,
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                dlx_args(&dlq, Some(1500)),
            ),
        )
        .await
        .unwrap();
        for i in 0..3u8 {
            let c = publish_with(&ch, "", &src, &[i], persistent()).await;
            within("confirm", c).await.unwrap();
        }
    }
    b.restart();
    let conn = connect(&b).await;
    assert_eq!(
        ready_count(&conn, &src).await,
        3,
        "confirmed messages survive"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ready_count(&conn, &dlq).await < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the recovered messages never expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(ready_count(&conn, &src).await, 0);
    let ch = open_channel(&conn).await;
    let mut c = within(
        "consume",
        ch.basic_consume(
            &dlq,
            "t",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    let d = next_delivery(&mut c, "a dead letter").await;
    assert_eq!(death_reason(&d), "expired");
}

/// A durable priority queue with confirmed persistent messages of mixed
/// priorities, some beyond the in-memory read-ahead: after a `kill -9` they
/// all come back and leave in priority order (FIFO within a priority).
async fn a_durable_priority_queue_recovers_in_priority_order_after_a_crash(shards: usize) {
    let mut b = start_broker(shards).await;
    let q = queue_on_shard("prio-crash", shards - 1, shards);
    let mut args = FieldTable::default();
    args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(3));
    let mut sent: Vec<(u8, u32)> = Vec::new();
    {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        within(
            "declare durable priority queue",
            ch.queue_declare(
                &q,
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args,
            ),
        )
        .await
        .unwrap();
        let mut confirms = Vec::new();
        for i in 0..1500u32 {
            let p = [0u8, 1, 2, 3, 7][(i * 7 % 5) as usize];
            sent.push((p.min(3), i));
            let props = persistent().with_priority(p);
            confirms.push(publish_with(&ch, "", &q, &i.to_be_bytes(), props).await);
        }
        for c in confirms {
            within("confirm", c).await.unwrap();
        }
    }
    b.restart(); // kill -9, then start on the same data directory
    let conn = connect(&b).await;
    let ch = open_channel(&conn).await;
    // Highest priority first, publish order within a priority.
    sent.sort_by_key(|(p, i)| (std::cmp::Reverse(*p), *i));
    let mut got = Vec::new();
    while let Some(m) = within(
        "basic.get",
        ch.basic_get(&q, BasicGetOptions { no_ack: true }),
    )
    .await
    .unwrap()
    {
        got.push(u32::from_be_bytes(m.delivery.data[..4].try_into().unwrap()));
    }
    let want: Vec<u32> = sent.iter().map(|(_, i)| *i).collect();
    assert_eq!(got.len(), want.len(), "every confirmed message came back");
    assert!(got == want, "recovered out of priority order");
}

fn delivery_count(d: &lapin::message::BasicGetMessage) -> Option<i64> {
    let h = d.delivery.properties.headers().clone().unwrap_or_default();
    match h.inner().get("x-delivery-count") {
        Some(AMQPValue::LongLongInt(n)) => Some(*n),
        other => panic!("x-delivery-count: {other:?}"),
    }
}

/// A poison message in a durable quorum queue (`x-delivery-limit` 2):
/// delivered three times (the third still unacked when the broker is
/// killed), it comes back after `kill -9` with its delivery count, and the
/// next requeue dead-letters it (to a queue on the other shard).
async fn a_poison_messages_delivery_count_survives_a_crash(shards: usize) {
    let mut b = start_broker(shards).await;
    let q = queue_on_shard("poison", 0, shards);
    let dlq = queue_on_shard("poison-dlq", 1, shards);
    let mut args = dlx_args(&dlq, None);
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args.insert("x-delivery-limit".into(), AMQPValue::LongInt(2));
    {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        declare_durable(&ch, &dlq).await;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        within("declare", ch.queue_declare(&q, durable, args.clone()))
            .await
            .unwrap();
        let c = publish_with(&ch, "", &q, b"poison", persistent()).await;
        within("confirm", c).await.unwrap();
        for want in 0..3 {
            let d = within("get", ch.basic_get(&q, BasicGetOptions::default()))
                .await
                .unwrap()
                .expect("the message");
            assert_eq!(delivery_count(&d), Some(want));
            if want < 2 {
                d.nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await
                .unwrap();
            }
        }
        // Let the third delivery's journal entry reach the disk (delivery
        // records are written within the 200 ms flush interval).
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    b.restart(); // kill -9, then start on the same data directory
    let conn = connect(&b).await;
    let ch = open_channel(&conn).await;
    let d = within("get", ch.basic_get(&q, BasicGetOptions::default()))
        .await
        .unwrap()
        .expect("the message survived");
    assert!(d.delivery.redelivered);
    assert_eq!(delivery_count(&d), Some(3), "the count survived the crash");
    d.nack(BasicNackOptions {
        requeue: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ready_count(&conn, &dlq).await < 1 {
        assert!(std::time::Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready_count(&conn, &q).await, 0);
}

/// Per-message `expiration` deadlines of persistent messages in a durable
/// queue are journalled: a message whose deadline passed while the broker
/// was down is gone after the restart (dead-lettered), one with time left
/// stays.
async fn message_expiry_deadlines_survive_a_crash(shards: usize) {
    let mut b = start_broker(shards).await;
    let q = queue_on_shard("deadline", 0, shards);
    let dlq = queue_on_shard("deadline-dlq", 1, shards);
    {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        declare_durable(&ch, &dlq).await;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        within(
            "declare",
            ch.queue_declare(&q, durable, dlx_args(&dlq, None)),
        )
        .await
        .unwrap();
        for (body, ms) in [(&b"short"[..], "800"), (&b"long"[..], "600000")] {
            let props = persistent().with_expiration(ms.into());
            let c = publish_with(&ch, "", &q, body, props).await;
            within("confirm", c).await.unwrap();
        }
    }
    b.kill9();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    b.restart();
    let conn = connect(&b).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ready_count(&conn, &dlq).await < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired message never left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready_count(&conn, &q).await, 1, "the long one stays");
    let ch = open_channel(&conn).await;
    let got = within("get", ch.basic_get(&dlq, BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
        .expect("dead letter");
    assert_eq!(got.delivery.data, b"short");
}

/// At-least-once dead-lettering: confirmed persistent messages rejected
/// from a durable queue into a durable dead-letter queue (on another
/// shard with 2) while the broker is killed at some point of the hand-over
/// all come back after the restart, each in its queue or in the
/// dead-letter queue (possibly both: a duplicate, never a loss).
async fn dead_letters_in_flight_survive_a_crash(shards: usize) {
    // A long flush interval leaves the shards' journal writes far apart,
    // so a kill lands between the source's and the target's.
    let mut b = tokio::task::spawn_blocking(move || {
        Broker::start_with(shards, &["--flush-interval-ms", "400"])
    })
    .await
    .unwrap();
    for (round, kill_after_ms) in [100u64, 250, 350, 500, 650, 800].into_iter().enumerate() {
        let q = queue_on_shard(&format!("dl-flight-{round}"), 0, shards);
        let dlq = queue_on_shard(&format!("dl-flight-dlq-{round}"), 1, shards);
        let n = 2000u32;
        {
            let conn = connect(&b).await;
            let ch = confirm_channel(&conn).await;
            declare_durable(&ch, &dlq).await;
            let durable = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            within(
                "declare",
                ch.queue_declare(&q, durable, dlx_args(&dlq, None)),
            )
            .await
            .unwrap();
            let mut confirms = Vec::new();
            for i in 0..n {
                confirms.push(publish_with(&ch, "", &q, &i.to_be_bytes(), persistent()).await);
            }
            for c in confirms {
                within("confirm", c).await.unwrap();
            }
            let mut c = consume(&ch, &q, false).await;
            let mut last = 0;
            for _ in 0..n {
                last = next_delivery(&mut c, "a delivery").await.delivery_tag;
            }
            within(
                "basic.nack",
                ch.basic_nack(
                    last,
                    BasicNackOptions {
                        multiple: true,
                        requeue: false,
                    },
                ),
            )
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
            b.restart(); // kill -9 mid-flight, then start on the same data directory
        }
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let mut seen = std::collections::HashSet::new();
        for queue in [&q, &dlq] {
            while let Some(m) = within(
                "basic.get",
                ch.basic_get(queue, BasicGetOptions { no_ack: true }),
            )
            .await
            .unwrap()
            {
                seen.insert(u32::from_be_bytes(m.delivery.data[..4].try_into().unwrap()));
            }
        }
        let lost: Vec<u32> = (0..n).filter(|i| !seen.contains(i)).collect();
        assert!(
            lost.is_empty(),
            "round {round} (kill after {kill_after_ms} ms): {} confirmed messages lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
    }
}

/// `x-expires` across a crash: a durable queue's unused time before a
/// `kill -9` still counts after the restart (the broker's downtime does
/// not), so it goes sooner than a whole new period after the restart, but
/// not at start-up.
async fn an_idle_queues_expiry_resumes_after_a_crash(shards: usize) {
    let mut b = start_broker(shards).await;
    let q = queue_on_shard("idle-crash", shards - 1, shards);
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongInt(3000));
    {
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        within("declare", ch.queue_declare(&q, durable, args))
            .await
            .unwrap();
    }
    // Unused for 2.2 s; its unused time is saved once a second.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    b.restart(); // kill -9, then start on the same data directory
    let restarted = std::time::Instant::now();
    let port = b.mgmt_port;
    let path = format!("/api/queues/%2F/{}", mgmt::seg(&q));
    let status = move || {
        let path = path.clone();
        tokio::task::spawn_blocking(move || mgmt::Api::new(port).get(&path).status)
    };
    assert_eq!(status().await.unwrap(), 200, "not deleted at start-up");
    while status().await.unwrap() == 200 {
        assert!(
            restarted.elapsed() < Duration::from_millis(2500),
            "its period started again after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

shard_tests!(
    message_expiry_deadlines_survive_a_crash,
    a_poison_messages_delivery_count_survives_a_crash,
    dead_letters_reach_a_queue_homed_on_another_shard,
    a_durable_ttl_queue_still_expires_and_dead_letters_after_a_crash,
    a_durable_priority_queue_recovers_in_priority_order_after_a_crash,
    dead_letters_in_flight_survive_a_crash,
    an_idle_queues_expiry_resumes_after_a_crash
);

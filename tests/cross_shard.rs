//! Cross-shard behaviour: publishers, consumers and queue homes on
//! different shards (connections are placed on a chosen shard by reading
//! `warren.shard` from connection.start; queues by their name's hash).

mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};
use std::collections::HashMap;
use std::time::Duration;

/// Every (publisher shard, consumer shard, queue home) combination.
fn placements(shards: usize) -> Vec<(usize, usize, usize)> {
    let mut v = Vec::new();
    for p in 0..shards {
        for c in 0..shards {
            for h in 0..shards {
                v.push((p, c, h));
            }
        }
    }
    v
}

async fn confirm_all(pending: Vec<lapin::publisher_confirm::PublisherConfirm>) {
    for (n, c) in pending.into_iter().enumerate() {
        let r = within("confirm", c).await;
        assert!(
            matches!(r, Ok(Confirmation::Ack(None))),
            "message {n}: {r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_and_consumer_on_any_shards_round_trip_in_order() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        for (p, c, h) in placements(shards) {
            eprintln!("publisher on {p}, consumer on {c}, queue home {h}");
            let q = queue_on_shard(&format!("rt-{p}{c}"), h, shards);
            let pconn = connect_on_shard(&b, p).await;
            let cconn = connect_on_shard(&b, c).await;
            let pch = confirm_channel(&pconn).await;
            declare_queue(&pch, &q).await;
            let cch = open_channel(&cconn).await;
            within("qos", cch.basic_qos(50, BasicQosOptions::default()))
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
            const N: usize = 2000;
            let mut pending = Vec::new();
            for i in 0..N {
                pending.push(publish(&pch, "", &q, format!("{i}").as_bytes()).await);
            }
            for i in 0..N {
                let d = next_delivery(&mut consumer, "cross-shard delivery").await;
                assert_eq!(
                    d.data,
                    format!("{i}").as_bytes(),
                    "in publish order, exactly once"
                );
                assert!(!d.redelivered);
                within("ack", d.acker.ack(BasicAckOptions::default()))
                    .await
                    .unwrap();
            }
            confirm_all(pending).await;
            assert_no_delivery(&mut consumer, Duration::from_millis(100), "no duplicates").await;
            assert_eq!(ready_count(&pconn, &q).await, 0);
            let _ = pconn.close(200, "bye").await;
            let _ = cconn.close(200, "bye").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_of_a_closed_connection_are_redelivered_to_a_consumer_on_another_shard() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        for h in 0..shards {
            let q = queue_on_shard("orphans", h, shards);
            let first = connect_on_shard(&b, 0).await;
            let second = connect_on_shard(&b, 1).await;
            let ch1 = confirm_channel(&first).await;
            declare_queue(&ch1, &q).await;
            let mut pending = Vec::new();
            for i in 0..100 {
                pending.push(publish(&ch1, "", &q, format!("{i}").as_bytes()).await);
            }
            confirm_all(pending).await;
            let mut c1 = within(
                "consume",
                ch1.basic_consume(
                    &q,
                    "",
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .unwrap();
            // Ack the first 30, leave 70 unacked, then drop the connection.
            for i in 0..100 {
                let d = next_delivery(&mut c1, "first consumer").await;
                if i < 30 {
                    within("ack", d.acker.ack(BasicAckOptions::default()))
                        .await
                        .unwrap();
                }
            }
            let _ = within("close", first.close(200, "bye")).await;
            let ch2 = open_channel(&second).await;
            let mut c2 = within(
                "consume",
                ch2.basic_consume(
                    &q,
                    "",
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .unwrap();
            let mut got = Vec::new();
            for _ in 0..70 {
                let d = next_delivery(&mut c2, "redelivery").await;
                assert!(
                    d.redelivered,
                    "requeued messages must be flagged redelivered"
                );
                got.push(String::from_utf8_lossy(&d.data).parse::<usize>().unwrap());
                within("ack", d.acker.ack(BasicAckOptions::default()))
                    .await
                    .unwrap();
            }
            got.sort();
            assert_eq!(got, (30..100).collect::<Vec<_>>());
            assert_no_delivery(
                &mut c2,
                Duration::from_millis(100),
                "acked ones never come back",
            )
            .await;
            let _ = second.close(200, "bye").await;
        }
    }
}

/// Consume everything from `queues` on `ch` until each has `expect`
/// messages; returns per-queue lists of bodies, failing on extras.
async fn collect(
    ch: &Channel,
    queues: &[String],
    expect: &HashMap<String, usize>,
) -> HashMap<String, Vec<String>> {
    let mut consumers = Vec::new();
    for q in queues {
        let c = within(
            "consume",
            ch.basic_consume(
                q,
                q,
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        consumers.push((q.clone(), c));
    }
    let mut out = HashMap::new();
    for (q, mut c) in consumers {
        let want = expect.get(&q).copied().unwrap_or(0);
        let mut bodies = Vec::with_capacity(want);
        for _ in 0..want {
            let d = next_delivery(&mut c, &format!("delivery for {q}")).await;
            bodies.push(String::from_utf8_lossy(&d.data).into_owned());
        }
        assert_no_delivery(
            &mut c,
            Duration::from_millis(100),
            &format!("extra delivery on {q}"),
        )
        .await;
        out.insert(q, bodies);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_shard_fanout_delivers_once_per_queue() {
    const QUEUES: usize = 16;
    const PER_PUBLISHER: usize = 1000;
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let admin = connect(&b).await;
        let ach = open_channel(&admin).await;
        within(
            "exchange.declare",
            ach.exchange_declare(
                "fan",
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        let queues: Vec<String> = (0..QUEUES).map(|i| format!("fan-{i}")).collect();
        for q in &queues {
            declare_queue(&ach, q).await;
            within(
                "bind",
                ach.queue_bind(
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
        let homes: std::collections::HashSet<usize> =
            queues.iter().map(|q| queue_home(q, shards)).collect();
        assert_eq!(homes.len(), shards, "queues should be homed on every shard");

        // Consumers: half of the queues consumed from each shard.
        let mut consumer_tasks = Vec::new();
        for s in 0..shards {
            let conn = connect_on_shard(&b, s).await;
            let mine: Vec<String> = queues.iter().skip(s).step_by(shards).cloned().collect();
            let expect: HashMap<String, usize> = mine
                .iter()
                .map(|q| (q.clone(), shards * PER_PUBLISHER))
                .collect();
            let ch = open_channel(&conn).await;
            consumer_tasks.push(tokio::spawn(async move {
                let r = collect(&ch, &mine, &expect).await;
                drop(conn);
                r
            }));
        }
        // One publisher per shard, publishing concurrently.
        let mut publishers = Vec::new();
        for s in 0..shards {
            let conn = connect_on_shard(&b, s).await;
            publishers.push(tokio::spawn(async move {
                let ch = confirm_channel(&conn).await;
                let mut pending = Vec::new();
                for i in 0..PER_PUBLISHER {
                    pending.push(publish(&ch, "fan", "", format!("{s}:{i}").as_bytes()).await);
                }
                confirm_all(pending).await;
                let _ = conn.close(200, "bye").await;
            }));
        }
        for p in publishers {
            within_for(Duration::from_secs(60), "publisher", p)
                .await
                .unwrap();
        }
        for t in consumer_tasks {
            let got = within_for(Duration::from_secs(120), "consumer", t)
                .await
                .unwrap();
            for (q, bodies) in got {
                // Exactly once per queue, and per publisher in order.
                let mut next = vec![0usize; shards];
                for body in &bodies {
                    let (p, i) = body.split_once(':').unwrap();
                    let (p, i): (usize, usize) = (p.parse().unwrap(), i.parse().unwrap());
                    assert_eq!(
                        i, next[p],
                        "queue {q}: publisher {p}'s messages out of order or duplicated"
                    );
                    next[p] += 1;
                }
                assert_eq!(next, vec![PER_PUBLISHER; shards], "queue {q}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_shard_topic_delivers_once_per_matching_queue() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let admin = connect(&b).await;
        let ach = open_channel(&admin).await;
        within(
            "exchange.declare",
            ach.exchange_declare(
                "topics",
                ExchangeKind::Topic,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        // Several queues per pattern, homes spread by hash; some queues
        // have overlapping bindings and must still get one copy.
        let patterns: [&[&str]; 6] = [
            &["a.*"],
            &["#"],
            &["a.b.#"],
            &["*.b.*", "a.#"],
            &["x.y"],
            &["#.c", "a.b.c", "*.*.c"],
        ];
        let keys = ["a.b", "a.b.c", "a.x", "x.y", "b.b.c", "a", "z"];
        let mut queues = Vec::new();
        let mut expect = HashMap::new();
        for (pi, pats) in patterns.iter().enumerate() {
            for copy in 0..3 {
                let q = format!("topic-{pi}-{copy}");
                declare_queue(&ach, &q).await;
                for pat in pats.iter() {
                    within(
                        "bind",
                        ach.queue_bind(
                            &q,
                            "topics",
                            pat,
                            QueueBindOptions::default(),
                            FieldTable::default(),
                        ),
                    )
                    .await
                    .unwrap();
                }
                let n = keys
                    .iter()
                    .filter(|k| pats.iter().any(|p| topic_matches(p, k)))
                    .count();
                expect.insert(q.clone(), n * 20 * shards);
                queues.push(q);
            }
        }
        let homes: std::collections::HashSet<usize> =
            queues.iter().map(|q| queue_home(q, shards)).collect();
        assert_eq!(homes.len(), shards);

        let mut publishers = Vec::new();
        for s in 0..shards {
            let conn = connect_on_shard(&b, s).await;
            publishers.push(tokio::spawn(async move {
                let ch = confirm_channel(&conn).await;
                let mut pending = Vec::new();
                for round in 0..20 {
                    for k in keys {
                        pending.push(
                            publish(&ch, "topics", k, format!("{s}:{round}:{k}").as_bytes()).await,
                        );
                    }
                }
                confirm_all(pending).await;
                let _ = conn.close(200, "bye").await;
            }));
        }
        for p in publishers {
            within_for(Duration::from_secs(60), "publisher", p)
                .await
                .unwrap();
        }
        // Consume from a connection on the last shard.
        let conn = connect_on_shard(&b, shards - 1).await;
        let ch = open_channel(&conn).await;
        let got = collect(&ch, &queues, &expect).await;
        for (q, bodies) in got {
            let mut uniq = bodies.clone();
            uniq.sort();
            uniq.dedup();
            assert_eq!(uniq.len(), bodies.len(), "queue {q} got duplicates");
            for body in &bodies {
                let key = body.rsplit(':').next().unwrap();
                let pi: usize = q.split('-').nth(1).unwrap().parse().unwrap();
                assert!(
                    patterns[pi].iter().any(|p| topic_matches(p, key)),
                    "queue {q} got {key} which matches none of {:?}",
                    patterns[pi]
                );
            }
        }
    }
}

/// Reference topic matcher for the expectations above.
fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (Some(&"#"), _) => go(&p[1..], k) || (!k.is_empty() && go(p, &k[1..])),
            (Some(&"*"), Some(_)) => go(&p[1..], &k[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &k[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    go(&p, &k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_deleted_while_consumed_from_another_connection_cancels_the_consumer() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        for (deleter_shard, consumer_shard, h) in placements(shards) {
            eprintln!("deleter on {deleter_shard}, consumer on {consumer_shard}, home {h}");
            let q = queue_on_shard(
                &format!("doomed-{deleter_shard}{consumer_shard}"),
                h,
                shards,
            );
            let cconn = connect_on_shard(&b, consumer_shard).await;
            let dconn = connect_on_shard(&b, deleter_shard).await;
            let cch = open_channel(&cconn).await;
            declare_queue(&cch, &q).await;
            let mut consumer = within(
                "consume",
                cch.basic_consume(
                    &q,
                    "doomed-consumer",
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .unwrap();
            let dch = open_channel(&dconn).await;
            publish(&dch, "", &q, b"last words").await;
            let d = next_delivery(&mut consumer, "before delete").await;
            within("ack", d.acker.ack(BasicAckOptions::default()))
                .await
                .unwrap();

            within(
                "queue.delete",
                dch.queue_delete(&q, QueueDeleteOptions::default()),
            )
            .await
            .expect("queue.delete from the other connection");
            // The server sends basic.cancel: the consumer stream ends.
            match within("consumer stream end after queue.delete", consumer.next()).await {
                None => {}
                Some(other) => panic!("expected the consumer to be cancelled, got {other:?}"),
            }
            // The consumer's channel and connection are still fine.
            assert!(
                cch.status().connected(),
                "consumer channel must stay open, state {:?}",
                cch.status().state()
            );
            let q2 = declare_queue(&cch, "").await;
            publish(&cch, "", &q2, b"alive").await;
            let got = within("get", cch.basic_get(&q2, BasicGetOptions { no_ack: true }))
                .await
                .unwrap();
            assert_eq!(got.expect("message").delivery.data, b"alive");
            let _ = cconn.close(200, "bye").await;
            let _ = dconn.close(200, "bye").await;
        }
    }
}

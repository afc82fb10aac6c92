//! Deadlock freedom of the cross-shard mailboxes under load in both
//! directions at once.
//!
//! With 2 shards: queue A lives on shard 0 and queue B on shard 1. The
//! publisher on shard 0 floods B and the publisher on shard 1 floods A, so
//! publishes cross 0->1 and 1->0 simultaneously. A's consumers sit on shard
//! 1 and B's on shard 0, so deliveries cross the other way, also in both
//! directions, as do acks and confirms. Consumers start slow (prefetch,
//! delayed acks) so both queues back up while the publishers push, then
//! unlimited-prefetch consumers join and everything drains. Every message
//! must arrive exactly once, every publish must be confirmed, and a fresh
//! connection on each shard must be able to declare a queue both while the
//! mailboxes are saturated and afterwards.

mod common;

use common::*;
use lapin::options::*;
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PER_PUBLISHER: usize = 200_000;
const BODY: usize = 200;

struct Tally {
    /// seen[publisher][seq]
    seen: Mutex<Vec<Vec<bool>>>,
    received: AtomicUsize,
    problems: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, body: &[u8], redelivered: bool, expected_publisher: usize) {
        let text = String::from_utf8_lossy(&body[..body.len().min(32)]).into_owned();
        let mut parts = text.split(':');
        let parsed = (
            parts.next().and_then(|p| p.parse::<usize>().ok()),
            parts.next().and_then(|s| s.parse::<usize>().ok()),
        );
        let mut problems = self.problems.lock().unwrap();
        let (Some(p), Some(i)) = parsed else {
            problems.push(format!("unparseable body {text:?}"));
            return;
        };
        if body.len() != BODY {
            problems.push(format!(
                "message {p}:{i} has {} bytes, expected {BODY}",
                body.len()
            ));
        }
        if p != expected_publisher {
            problems.push(format!("message {p}:{i} routed to the wrong queue"));
        }
        if redelivered {
            problems.push(format!(
                "message {p}:{i} flagged redelivered though nothing was requeued"
            ));
        }
        let mut seen = self.seen.lock().unwrap();
        if seen[p][i] {
            problems.push(format!("message {p}:{i} delivered twice"));
        } else {
            seen[p][i] = true;
            self.received.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn body(p: usize, i: usize) -> Vec<u8> {
    let mut b = format!("{p}:{i}:").into_bytes();
    b.resize(BODY, b'x');
    b
}

/// A fresh connection on every shard declares (and uses) a queue.
async fn assert_responsive(b: &Broker, tag: &str) {
    for s in 0..b.shards {
        within_for(
            Duration::from_secs(60),
            &format!("fresh connection on shard {s} ({tag})"),
            async {
                let conn = connect_on_shard(b, s).await;
                let ch = open_channel(&conn).await;
                let q = declare_queue(&ch, &format!("probe-{tag}-{s}")).await;
                let ch = confirm_channel(&conn).await;
                let c = publish(&ch, "", &q, b"probe").await;
                assert!(matches!(c.await, Ok(Confirmation::Ack(None))));
                let got = ch
                    .basic_get(&q, BasicGetOptions { no_ack: true })
                    .await
                    .expect("probe get");
                assert_eq!(got.expect("probe message").delivery.data, b"probe");
                let _ = conn.close(200, "probe done").await;
            },
        )
        .await;
    }
}

/// Consume `queue` on `ch`: slowly (1 ms per ack) while `slow` is set.
fn spawn_consumer(
    ch: lapin::Channel,
    queue: String,
    prefetch: u16,
    expected_publisher: usize,
    tally: Arc<Tally>,
    slow: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use futures_lite::StreamExt;
        if prefetch > 0 {
            ch.basic_qos(prefetch, BasicQosOptions::default())
                .await
                .expect("qos");
        }
        let mut c = ch
            .basic_consume(
                &queue,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        while !done.load(Ordering::Relaxed) {
            let d = match tokio::time::timeout(Duration::from_millis(200), c.next()).await {
                Err(_) => continue,
                Ok(Some(Ok(d))) => d,
                Ok(other) => {
                    tally
                        .problems
                        .lock()
                        .unwrap()
                        .push(format!("consumer on {queue} ended: {other:?}"));
                    return;
                }
            };
            tally.record(&d.data, d.redelivered, expected_publisher);
            if slow.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if let Err(e) = d.acker.ack(BasicAckOptions::default()).await {
                tally
                    .problems
                    .lock()
                    .unwrap()
                    .push(format!("ack failed on {queue}: {e}"));
                return;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturated_mailboxes_in_both_directions_deliver_everything_once_and_stay_responsive() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let last = shards - 1;
        // queues[p] is fed by publisher p; it lives on the shard p does not.
        let queues = [
            queue_on_shard("mbx-a", last, shards),
            queue_on_shard("mbx-b", 0, shards),
        ];
        let publisher_shard = [0, last];
        // Consumers of queues[p] sit on the queue's far side, which is the
        // publisher's own shard: deliveries flow against the publishes.
        let consumer_shard = [0, last];
        if shards == 2 {
            assert_eq!(queue_home(&queues[0], 2), 1);
            assert_eq!(queue_home(&queues[1], 2), 0);
        }
        {
            let conn = connect(&b).await;
            let ch = open_channel(&conn).await;
            for q in &queues {
                declare_queue(&ch, q).await;
            }
            let _ = conn.close(200, "declared").await;
        }

        let tally = Arc::new(Tally {
            seen: Mutex::new(vec![vec![false; PER_PUBLISHER]; 2]),
            received: AtomicUsize::new(0),
            problems: Mutex::new(Vec::new()),
        });
        let slow = Arc::new(AtomicBool::new(true));
        let done = Arc::new(AtomicBool::new(false));

        // Slow consumers first.
        let mut consumer_conns = Vec::new();
        let mut consumers = Vec::new();
        for p in 0..2 {
            let conn = connect_on_shard(&b, consumer_shard[p]).await;
            for _ in 0..2 {
                let ch = open_channel(&conn).await;
                consumers.push(spawn_consumer(
                    ch,
                    queues[p].clone(),
                    100,
                    p,
                    tally.clone(),
                    slow.clone(),
                    done.clone(),
                ));
            }
            consumer_conns.push(conn);
        }

        // Publishers, as fast as the broker lets them.
        let published = Arc::new(AtomicUsize::new(0));
        let mut publishers = Vec::new();
        for p in 0..2 {
            let conn = connect_on_shard(&b, publisher_shard[p]).await;
            let q = queues[p].clone();
            let published = published.clone();
            publishers.push(tokio::spawn(async move {
                let ch = confirm_channel(&conn).await;
                let mut pending = Vec::with_capacity(PER_PUBLISHER);
                for i in 0..PER_PUBLISHER {
                    let c = ch
                        .basic_publish(
                            "",
                            &q,
                            BasicPublishOptions::default(),
                            &body(p, i),
                            Default::default(),
                        )
                        .await
                        .unwrap_or_else(|e| panic!("publisher {p}: publish {i}: {e}"));
                    pending.push(c);
                    published.fetch_add(1, Ordering::Relaxed);
                }
                let mut nacks = 0;
                for (i, c) in pending.into_iter().enumerate() {
                    match c.await {
                        Ok(Confirmation::Ack(None)) => {}
                        Ok(Confirmation::Nack(_)) => nacks += 1,
                        other => panic!("publisher {p}: message {i}: {other:?}"),
                    }
                }
                assert_eq!(nacks, 0, "publisher {p}: nacked publishes");
                (conn, ch)
            }));
        }

        // While both queues back up, the broker must stay responsive.
        let total = 2 * PER_PUBLISHER;
        let t0 = Instant::now();
        while published.load(Ordering::Relaxed) < total / 4 {
            assert!(
                t0.elapsed() < Duration::from_secs(300),
                "publishers made no headway"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "saturated: published {} received {}",
            published.load(Ordering::Relaxed),
            tally.received.load(Ordering::Relaxed)
        );
        assert_responsive(&b, "saturated").await;

        // Drain: consumers speed up and unlimited-prefetch consumers join.
        slow.store(false, Ordering::Relaxed);
        for p in 0..2 {
            let ch = open_channel(&consumer_conns[p]).await;
            consumers.push(spawn_consumer(
                ch,
                queues[p].clone(),
                0,
                p,
                tally.clone(),
                slow.clone(),
                done.clone(),
            ));
        }
        assert_responsive(&b, "draining").await;

        // Wait for everything, failing only if progress stops for a minute.
        let mut last_seen = (0, 0);
        let mut last_change = Instant::now();
        loop {
            let now = (
                published.load(Ordering::Relaxed),
                tally.received.load(Ordering::Relaxed),
            );
            if now.1 >= total {
                break;
            }
            if !tally.problems.lock().unwrap().is_empty() {
                break;
            }
            if now != last_seen {
                last_seen = now;
                last_change = Instant::now();
            }
            assert!(
                last_change.elapsed() < Duration::from_secs(60),
                "no progress for 60 s: published {} of {total}, received {} of {total}",
                now.0,
                now.1
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let problems = tally.problems.lock().unwrap().clone();
        assert!(
            problems.is_empty(),
            "{} problems, first: {:?}",
            problems.len(),
            &problems[..problems.len().min(10)]
        );
        assert_eq!(tally.received.load(Ordering::Relaxed), total);

        let mut publisher_conns = Vec::new();
        for p in publishers {
            publisher_conns.push(
                within_for(Duration::from_secs(120), "publisher confirms", p)
                    .await
                    .expect("publisher"),
            );
        }
        // Nothing extra arrives, and the queues are empty.
        tokio::time::sleep(Duration::from_millis(300)).await;
        done.store(true, Ordering::Relaxed);
        for c in consumers {
            within("consumer task", c).await.expect("consumer task");
        }
        let problems = tally.problems.lock().unwrap().clone();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(tally.received.load(Ordering::Relaxed), total);
        let (conn, _) = &publisher_conns[0];
        for q in &queues {
            assert_eq!(ready_count(conn, q).await, 0, "queue {q} should be empty");
        }
        assert_responsive(&b, "after").await;
    }
}

//! Publisher flow control by queue backlog (`queue::pressure`): one
//! publisher at full speed, one slow consumer (about 1k msg/s) on its own
//! connection. The queue's backlog stays bounded near the flow mark
//! instead of growing for as long as the publisher runs, the publisher's
//! connection is reported in `state: flow`, and the publisher's rate
//! converges to the consumer's (what it published minus what was consumed
//! stays within the bound). Nothing is lost: every message published is
//! delivered once.

mod common;
mod mgmt;

use common::*;
use lapin::options::*;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `queue::pressure::FLOW_HIGH_MESSAGES`, plus one read batch and what is
/// in the mailboxes when the mark is crossed.
const BOUND: u32 = 10_000 + 10_000;
/// Publishes written by the client but not yet read by the broker: the
/// loopback socket's buffers (autotuned to several MiB each way) and
/// lapin's own, about 16 MiB of 512-byte publishes. Without flow control
/// the publisher runs hundreds of thousands ahead in the same time.
const IN_SOCKETS: u32 = 30_000;

async fn a_max_rate_publisher_converges_to_a_slow_consumer(shards: usize) {
    let b = start_broker(shards).await;
    let q = queue_on_shard("flow", shards - 1, shards);
    let setup = connect(&b).await;
    let sch = open_channel(&setup).await;
    declare_queue(&sch, &q).await;
    // The slow consumer: prefetch 20, 10 messages every 10 ms (1k msg/s).
    let cconn = connect(&b).await;
    let cch = open_channel(&cconn).await;
    cch.basic_qos(20, BasicQosOptions::default()).await.unwrap();
    let mut c = consume(&cch, &q, false).await;
    let consumed = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let consumed = consumed.clone();
        tokio::spawn(async move {
            let mut next = 0u32;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while let Some(d) = futures_lite::StreamExt::next(&mut c).await {
                if next.is_multiple_of(10) {
                    tick.tick().await;
                }
                let d = d.expect("delivery");
                let i = u32::from_be_bytes(d.data[..4].try_into().unwrap());
                assert_eq!(i, next, "delivered in order, once");
                next += 1;
                d.acker.ack(BasicAckOptions::default()).await.unwrap();
                consumed.store(next, Ordering::Relaxed);
            }
        })
    };
    // The publisher: its own connection, no confirms, as fast as it can.
    let pconn = connect(&b).await;
    let pch = open_channel(&pconn).await;
    let published = Arc::new(AtomicU32::new(0));
    let publisher = {
        let (published, stop, q) = (published.clone(), stop.clone(), q.clone());
        tokio::spawn(async move {
            let mut body = vec![b'f'; 512];
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                body[..4].copy_from_slice(&i.to_be_bytes());
                drop(publish(&pch, "", &q, &body).await);
                i += 1;
                published.store(i, Ordering::Relaxed);
            }
            pch
        })
    };
    // Sample the backlog and the publisher's state for 6 s.
    let port = b.mgmt_port;
    let mut max_backlog = 0u32;
    let mut saw_flow = false;
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        max_backlog = max_backlog.max(ready_count(&setup, &q).await);
        let conns =
            tokio::task::spawn_blocking(move || mgmt::Api::new(port).get_ok("/api/connections"))
                .await
                .unwrap();
        saw_flow |= conns
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["state"] == "flow");
    }
    stop.store(true, Ordering::Relaxed);
    let (p, k) = (
        published.load(Ordering::Relaxed),
        consumed.load(Ordering::Relaxed),
    );
    assert!(
        max_backlog <= BOUND,
        "backlog reached {max_backlog} (published {p}, consumed {k})"
    );
    assert!(
        p.saturating_sub(k) <= BOUND + IN_SOCKETS,
        "the publisher ran ahead: published {p}, consumed {k}"
    );
    assert!(saw_flow, "the publisher was never reported in flow (published {p}, consumed {k}, max backlog {max_backlog})");
    // Everything published is delivered (the consumer checks the order).
    let pch = within_for(Duration::from_secs(60), "publisher stops", publisher)
        .await
        .unwrap();
    let total = published.load(Ordering::Relaxed);
    drop(pch);
    let deadline = Instant::now() + Duration::from_secs(120);
    while consumed.load(Ordering::Relaxed) < total {
        assert!(
            Instant::now() < deadline && !consumer.is_finished(),
            "consumed {} of {total}",
            consumed.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

shard_tests!(a_max_rate_publisher_converges_to_a_slow_consumer);

/// A queue in flow whose consumer stalls (prefetch full, no acks) holds its
/// publishers until the backlog shrinks some other way: purging it releases
/// them at once.
async fn purging_a_queue_in_flow_releases_its_publishers(shards: usize) {
    let b = start_broker(shards).await;
    let q = queue_on_shard("flowpurge", shards - 1, shards);
    let admin = connect(&b).await;
    let ach = open_channel(&admin).await;
    declare_queue(&ach, &q).await;
    let cconn = connect(&b).await;
    let cch = open_channel(&cconn).await;
    cch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let _stalled = consume(&cch, &q, false).await;
    let pconn = connect(&b).await;
    let pch = open_channel(&pconn).await;
    let published = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (published, stop, q) = (published.clone(), stop.clone(), q.clone());
        tokio::spawn(async move {
            let body = vec![b'p'; 256];
            while !stop.load(Ordering::Relaxed) {
                drop(publish(&pch, "", &q, &body).await);
                published.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // Held: the backlog stops growing past the flow mark.
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n = ready_count(&admin, &q).await;
        if n > 10_000 && n == last {
            break;
        }
        assert!(Instant::now() < deadline, "never held (backlog {n})");
        last = n;
    }
    assert!(last <= BOUND, "backlog {last}");
    within("purge", ach.queue_purge(&q, QueuePurgeOptions::default()))
        .await
        .unwrap();
    // Released: the publisher's messages reach the queue again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ready_count(&admin, &q).await < 1_000 {
        assert!(
            Instant::now() < deadline,
            "publishers still held after the purge"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    within_for(Duration::from_secs(60), "publisher stops", publisher)
        .await
        .unwrap();
}

shard_tests!(purging_a_queue_in_flow_releases_its_publishers);

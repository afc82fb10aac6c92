//! Queues larger than RAM for transient messages: with a 64 MiB memory
//! limit, a non-durable queue takes far more transient message bytes than
//! the limit, the broker pages them to its transient area instead of the
//! heap (memory stays under the limit), and a consumer drains them in
//! order with nothing lost. A restart discards transient pages: a durable
//! queue keeps its persistent message and none of the transient ones, and
//! the page area is empty.

mod common;
mod mgmt;

use common::*;
use lapin::options::*;
use lapin::BasicProperties;
use std::time::Duration;

const LIMIT: u64 = 64 * 1024 * 1024;
const BODY: usize = 4096;
/// 48,000 x 4 KiB = 188 MiB of bodies, about three times the limit.
const COUNT: u32 = 48_000;

/// Bytes of segment files in every shard's transient page area.
fn paged_bytes(b: &Broker) -> u64 {
    let mut total = 0;
    for s in 0..b.shards {
        let dir = b.dir.join(format!("shard-{s}")).join("transient");
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            total += e.metadata().map_or(0, |m| m.len());
        }
    }
    total
}

async fn mem_used(b: &Broker) -> u64 {
    let port = b.mgmt_port;
    tokio::task::spawn_blocking(move || mgmt::Api::new(port).get_ok("/api/nodes")[0].clone())
        .await
        .unwrap()["mem_used"]
        .as_u64()
        .unwrap()
}

/// Publish `n` transient messages numbered from 0 to `queue` with
/// confirms, at most 2,000 unconfirmed at a time.
async fn publish_numbered(ch: &lapin::Channel, queue: &str, n: u32) {
    let mut body = vec![b'p'; BODY];
    let mut pending = std::collections::VecDeque::new();
    for i in 0..n {
        body[..4].copy_from_slice(&i.to_be_bytes());
        body[BODY - 4..].copy_from_slice(&i.to_le_bytes());
        pending.push_back(publish_with(ch, "", queue, &body, BasicProperties::default()).await);
        if pending.len() >= 2000 {
            let c = pending.pop_front().unwrap();
            assert!(within("confirm", c).await.unwrap().is_ack());
        }
    }
    for c in pending {
        assert!(within("confirm", c).await.unwrap().is_ack());
    }
}

async fn a_transient_backlog_larger_than_the_memory_limit_is_paged_and_drained_in_order(
    shards: usize,
) {
    let b = tokio::task::spawn_blocking(move || {
        Broker::start_with(shards, &["--memory-limit", &LIMIT.to_string()])
    })
    .await
    .unwrap();
    let conn = connect(&b).await;
    let ch = confirm_channel(&conn).await;
    declare_queue(&ch, "paged").await;
    within_for(
        Duration::from_secs(120),
        "publish",
        publish_numbered(&ch, "paged", COUNT),
    )
    .await;
    assert_eq!(ready_count(&conn, "paged").await, COUNT);
    let used = mem_used(&b).await;
    assert!(
        used < LIMIT,
        "a backlog of {} MiB kept {used} bytes of heap (limit {LIMIT})",
        (COUNT as usize * BODY) >> 20
    );
    let paged = paged_bytes(&b);
    assert!(
        paged >= (COUNT as u64 * BODY as u64) / 2,
        "only {paged} bytes were paged"
    );
    // Drained in order, every message intact, exactly once.
    let cch = open_channel(&conn).await;
    cch.basic_qos(500, BasicQosOptions::default())
        .await
        .unwrap();
    let mut c = consume(&cch, "paged", false).await;
    for i in 0..COUNT {
        let d = next_delivery(&mut c, "paged delivery").await;
        let got = u32::from_be_bytes(d.data[..4].try_into().unwrap());
        assert_eq!(got, i, "out of order");
        assert_eq!(d.data.len(), BODY);
        assert_eq!(d.data[BODY - 4..], i.to_le_bytes(), "body of {i} intact");
        if i % 100 == 99 {
            d.acker
                .ack(BasicAckOptions { multiple: true })
                .await
                .unwrap();
        }
    }
    assert_no_delivery(&mut c, Duration::from_millis(300), "nothing more").await;
    // Acked pages are deleted with their last message.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while paged_bytes(&b) > 2 * 64 * 1024 * 1024 * shards as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} bytes still paged",
            paged_bytes(&b)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_restart_discards_transient_pages_and_keeps_persistent_messages(shards: usize) {
    let mut b = tokio::task::spawn_blocking(move || {
        Broker::start_with(shards, &["--memory-limit", &LIMIT.to_string()])
    })
    .await
    .unwrap();
    let conn = connect(&b).await;
    let ch = confirm_channel(&conn).await;
    declare_durable(&ch, "mixed").await;
    within_for(
        Duration::from_secs(120),
        "publish",
        publish_numbered(&ch, "mixed", COUNT),
    )
    .await;
    within("confirm", publish(&ch, "", "mixed", b"kept").await)
        .await
        .unwrap();
    let p = publish_with(&ch, "", "mixed", b"durable", persistent()).await;
    assert!(within("confirm", p).await.unwrap().is_ack());
    assert!(paged_bytes(&b) > 0, "the backlog was paged");
    drop(conn);
    tokio::task::block_in_place(|| {
        b.kill9();
        b.restart();
    });
    assert_eq!(
        paged_bytes(&b),
        0,
        "transient pages are discarded at start-up"
    );
    let conn = connect(&b).await;
    let ch = open_channel(&conn).await;
    assert_eq!(ready_count(&conn, "mixed").await, 1);
    let mut c = consume(&ch, "mixed", true).await;
    let d = next_delivery(&mut c, "the persistent message").await;
    assert_eq!(&d.data[..], b"durable");
    assert_no_delivery(&mut c, Duration::from_millis(300), "no transient message").await;
}

/// Messages held in memory when paging is wanted are paged out by the
/// shard's memory check, not only new arrivals: with paging on from the
/// start (`--paging-ratio 0.01`), 10,000 messages go straight to a consumer
/// that does not ack (so nothing is paged: the queue holds none ready);
/// closing its channel requeues them all into the queue's memory, and the
/// next checks move the bodies past the read-ahead to disk. The queue
/// still drains in order, intact.
async fn messages_in_memory_before_pressure_are_paged_out_when_it_begins(shards: usize) {
    let b = tokio::task::spawn_blocking(move || {
        Broker::start_with(
            shards,
            &[
                "--memory-limit",
                &(1u64 << 30).to_string(),
                "--paging-ratio",
                "0.01",
                "--segment-mb",
                "1",
            ],
        )
    })
    .await
    .unwrap();
    let conn = connect(&b).await;
    let ch = confirm_channel(&conn).await;
    declare_queue(&ch, "early").await;
    let cch = open_channel(&conn).await;
    let mut held = consume(&cch, "early", false).await;
    let mut body = vec![b'e'; BODY];
    let mut pending = std::collections::VecDeque::new();
    for i in 0..10_000u32 {
        body[..4].copy_from_slice(&i.to_be_bytes());
        body[BODY - 4..].copy_from_slice(&i.to_le_bytes());
        pending.push_back(publish(&ch, "", "early", &body).await);
        if pending.len() > 100 {
            assert!(within("confirm", pending.pop_front().unwrap())
                .await
                .unwrap()
                .is_ack());
        }
    }
    for c in pending {
        assert!(within("confirm", c).await.unwrap().is_ack());
    }
    for _ in 0..10_000 {
        next_delivery(&mut held, "held delivery").await;
    }
    let before = paged_bytes(&b);
    within("channel.close", cch.close(200, "requeue"))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while paged_bytes(&b) < before + (30 << 20) {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of the requeued bytes were paged out ({before} before)",
            paged_bytes(&b) - before
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dch = open_channel(&conn).await;
    let mut c = consume(&dch, "early", true).await;
    for i in 0..10_000u32 {
        let d = next_delivery(&mut c, "early delivery").await;
        assert_eq!(u32::from_be_bytes(d.data[..4].try_into().unwrap()), i);
        assert_eq!(d.data[BODY - 4..], i.to_le_bytes(), "body of {i} intact");
        assert!(d.redelivered);
    }
}

shard_tests!(
    messages_in_memory_before_pressure_are_paged_out_when_it_begins,
    a_transient_backlog_larger_than_the_memory_limit_is_paged_and_drained_in_order,
    a_restart_discards_transient_pages_and_keeps_persistent_messages
);

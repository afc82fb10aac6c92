//! The memory high watermark over lapin and the management API: with a
//! small `--memory-limit`, publishers of transient messages that no one
//! consumes are told `connection.blocked` and are no longer read from
//! before the broker's memory runs far past the limit; a consumer on
//! another connection keeps being served, the alarm clears as the backlog
//! drains (`connection.unblocked`), and every message published before and
//! after is delivered exactly once.

mod common;
mod mgmt;

use common::*;
use lapin::options::*;
use mgmt::Api;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIMIT: u64 = 64 * 1024 * 1024;

async fn node(port: u16) -> Value {
    tokio::task::spawn_blocking(move || Api::new(port).get_ok("/api/nodes")[0].clone())
        .await
        .unwrap()
}

async fn publishers_are_blocked_at_the_watermark_and_released_as_it_drains(shards: usize) {
    let b = tokio::task::spawn_blocking(move || {
        // Paging only by backlog size (64 MiB per queue), so the heap
        // reaches the watermark quickly; `tests/paging.rs` covers paging.
        Broker::start_with(
            shards,
            &["--memory-limit", &LIMIT.to_string(), "--paging-ratio", "2"],
        )
    })
    .await
    .unwrap();
    let n0 = node(b.mgmt_port).await;
    assert_eq!(n0["mem_limit"], LIMIT);
    assert_eq!(n0["mem_alarm"], false);
    let q = "backlog";
    let publisher = connect(&b).await;
    let ch = confirm_channel(&publisher).await;
    declare_queue(&ch, q).await;
    // One publisher at full speed, confirms collected; it stops once told
    // to (lapin holds a publish while the connection is blocked, so the
    // last one may complete only after the alarm clears).
    let stop = Arc::new(AtomicBool::new(false));
    let task = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut confirms = Vec::new();
            let mut i = 0u32;
            let mut body = vec![b'x'; 1024];
            while !stop.load(Ordering::Relaxed) && i < 512 * 1024 {
                body[..4].copy_from_slice(&i.to_be_bytes());
                let c = ch
                    .basic_publish(
                        "",
                        q,
                        BasicPublishOptions::default(),
                        &body,
                        Default::default(),
                    )
                    .await
                    .expect("basic.publish");
                confirms.push(c);
                i += 1;
            }
            for c in confirms {
                assert!(c.await.expect("confirm").is_ack(), "a publish was nacked");
            }
            (i, ch)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !publisher.status().blocked() {
        assert!(
            Instant::now() < deadline && !task.is_finished(),
            "never blocked"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    // Each shard measures on its own every 50 ms: the management shard
    // may raise its alarm a check after the publisher's shard did.
    let mut n1 = node(b.mgmt_port).await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while n1["mem_alarm"] != true && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        n1 = node(b.mgmt_port).await;
    }
    assert_eq!(n1["mem_alarm"], true);
    let used = n1["mem_used"].as_u64().unwrap();
    assert!(
        used < LIMIT + LIMIT / 4,
        "memory ran to {used} bytes before publishers were blocked (limit {LIMIT})"
    );
    let port = b.mgmt_port;
    let health =
        tokio::task::spawn_blocking(move || Api::new(port).get("/api/health/checks/alarms"))
            .await
            .unwrap();
    assert_eq!(health.status, 503);
    assert_eq!(health.json["alarms"][0]["resource"], "memory");
    let listed = tokio::task::spawn_blocking(move || Api::new(port).get_ok("/api/connections"))
        .await
        .unwrap();
    assert_eq!(listed[0]["state"], "blocked", "{listed}");
    // A consumer on its own connection is served while the alarm holds.
    let consumer_conn = connect(&b).await;
    let cch = open_channel(&consumer_conn).await;
    let mut c = consume(&cch, q, true).await;
    // Everything published is delivered exactly once; meanwhile the
    // backlog drains, the alarm clears, the publisher is unblocked (its
    // held publish goes out) and every publish is confirmed.
    let mut seen = std::collections::HashSet::new();
    let mut total = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut task = Some(task);
    while total.is_none_or(|t| seen.len() < t as usize) {
        assert!(
            Instant::now() < deadline,
            "{} delivered, total {total:?}",
            seen.len()
        );
        if let Some(d) = tokio::time::timeout(
            Duration::from_millis(200),
            futures_lite::StreamExt::next(&mut c),
        )
        .await
        .ok()
        .flatten()
        {
            let d = d.expect("delivery");
            let i = u32::from_be_bytes(d.data[..4].try_into().unwrap());
            assert!(seen.insert(i), "message {i} delivered twice");
        }
        if task.as_ref().is_some_and(|t| t.is_finished()) {
            let (sent, ch) = task.take().unwrap().await.unwrap();
            // Unblocked: new publishes go through.
            assert!(!publisher.status().blocked());
            within("confirm", publish(&ch, "", q, &sent.to_be_bytes()).await)
                .await
                .unwrap();
            total = Some(sent + 1);
        }
    }
    assert_eq!(node(b.mgmt_port).await["mem_alarm"], false);
}

shard_tests!(publishers_are_blocked_at_the_watermark_and_released_as_it_drains);

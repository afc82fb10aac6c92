//! Durability: the real broker process is killed (SIGKILL) or stopped
//! (SIGTERM) and restarted on the same data directory.

mod common;

use common::*;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, ExchangeKind};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

fn body(q: usize, seq: u64) -> Vec<u8> {
    let mut b = format!("q{q}-{seq:010}-").into_bytes();
    // 1 KiB bodies with content derived from the sequence number.
    while b.len() < 1024 {
        b.push(b'a' + (seq % 26) as u8);
    }
    b
}

fn parse(b: &[u8]) -> (usize, u64) {
    let s = std::str::from_utf8(&b[..15.min(b.len())]).expect("utf8 header");
    let mut parts = s.trim_start_matches('q').split('-');
    let q = parts.next().and_then(|x| x.parse().ok()).expect("queue id");
    let seq = parts.next().and_then(|x| x.parse().ok()).expect("seq");
    (q, seq)
}

/// Drain a queue with basic.get (acking); returns (bodies, redelivered flags).
async fn drain(ch: &Channel, q: &str) -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    loop {
        let m = within(
            "basic.get",
            ch.basic_get(q, BasicGetOptions { no_ack: false }),
        )
        .await
        .expect("basic.get");
        let Some(m) = m else { break };
        out.push((m.delivery.data.clone(), m.delivery.redelivered));
        m.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
    }
    out
}

fn run(
    shards: usize,
    f: impl FnOnce(usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(f(shards));
}

async fn kill9_mid_stream_keeps_every_confirmed_message(shards: usize) {
    let mut broker = start_broker(shards).await;
    let queues: Vec<String> = (0..4)
        .map(|i| queue_on_shard(&format!("crash{i}"), i, shards))
        .collect();
    {
        let conn = connect(&broker).await;
        let ch = open_channel(&conn).await;
        for q in &queues {
            declare_durable(&ch, q).await;
        }
    }
    let confirmed: Arc<Mutex<Vec<HashSet<u64>>>> =
        Arc::new(Mutex::new(vec![HashSet::new(); queues.len()]));
    let mut tasks = Vec::new();
    for (i, q) in queues.iter().enumerate() {
        let url = broker.url();
        let q = q.clone();
        let confirmed = confirmed.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(conn) =
                lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await
            else {
                return;
            };
            let Ok(ch) = conn.create_channel().await else {
                return;
            };
            if ch.confirm_select(Default::default()).await.is_err() {
                return;
            }
            let mut seq = 0u64;
            loop {
                // Keep up to 64 publishes in flight, recording confirms.
                let mut inflight = Vec::new();
                for _ in 0..64 {
                    let Ok(p) = ch
                        .basic_publish("", &q, Default::default(), &body(i, seq), persistent())
                        .await
                    else {
                        return;
                    };
                    inflight.push((seq, p));
                    seq += 1;
                }
                for (s, p) in inflight {
                    match p.await {
                        Ok(Confirmation::Ack(_)) => {
                            confirmed.lock().unwrap()[i].insert(s);
                        }
                        _ => return,
                    }
                }
            }
        }));
    }
    // Let a good number of confirms arrive, then kill mid-stream.
    within("confirms before the crash", async {
        loop {
            if confirmed.lock().unwrap().iter().all(|s| s.len() >= 1500) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    broker.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let confirmed = confirmed.lock().unwrap().clone();
    tokio::task::block_in_place(|| broker.restart());
    let conn = connect(&broker).await;
    let ch = open_channel(&conn).await;
    for (i, q) in queues.iter().enumerate() {
        let got = drain(&ch, q).await;
        let mut seen = HashSet::new();
        let mut last = None;
        for (b, _) in &got {
            assert_eq!(b.len(), 1024, "body length intact");
            let (qi, seq) = parse(b);
            assert_eq!(qi, i, "message in the right queue");
            assert_eq!(b, &body(i, seq), "body intact");
            assert!(seen.insert(seq), "queue {q}: message {seq} recovered twice");
            if let Some(l) = last {
                assert!(seq > l, "queue {q}: order kept ({l} then {seq})");
            }
            last = Some(seq);
        }
        let missing: Vec<_> = confirmed[i]
            .iter()
            .filter(|s| !seen.contains(s))
            .take(5)
            .collect();
        assert!(
            missing.is_empty(),
            "queue {q} ({shards} shards): confirmed messages lost after kill -9: {missing:?}"
        );
    }
}

#[test]
fn kill9_mid_stream_keeps_every_confirmed_message_1_shard() {
    run(1, |n| {
        Box::pin(kill9_mid_stream_keeps_every_confirmed_message(n))
    });
}

#[test]
fn kill9_mid_stream_keeps_every_confirmed_message_2_shards() {
    run(2, |n| {
        Box::pin(kill9_mid_stream_keeps_every_confirmed_message(n))
    });
}

async fn definitions_and_unacked_messages_survive_restart(shards: usize) {
    let mut broker = start_broker(shards).await;
    {
        let conn = connect(&broker).await;
        let ch = confirm_channel(&conn).await;
        within(
            "exchange.declare",
            ch.exchange_declare(
                "dur.x",
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        declare_durable(&ch, "dur.q").await;
        declare_queue(&ch, "transient.q").await;
        within(
            "bind",
            ch.queue_bind(
                "dur.q",
                "dur.x",
                "a.#",
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        for i in 0..20u8 {
            let p = publish_with(&ch, "dur.x", "a.b", &[i], persistent()).await;
            assert!(matches!(
                within("confirm", p).await.unwrap(),
                Confirmation::Ack(_)
            ));
        }
        // A transient message in a durable queue is gone after a restart.
        let p = publish_with(
            &ch,
            "dur.x",
            "a.b",
            b"transient",
            BasicProperties::default(),
        )
        .await;
        within("confirm", p).await.unwrap();
        // Take 3: ack one, leave two delivered but unacked.
        let g = ch
            .basic_get("dur.q", BasicGetOptions::default())
            .await
            .unwrap()
            .unwrap();
        g.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        let _u1 = ch
            .basic_get("dur.q", BasicGetOptions::default())
            .await
            .unwrap()
            .unwrap();
        let _u2 = ch
            .basic_get("dur.q", BasicGetOptions::default())
            .await
            .unwrap()
            .unwrap();
        // Make sure the ack reached the broker (a round trip after it) and
        // let the flush interval pass.
        ready_count(&conn, "dur.q").await;
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    }
    tokio::task::block_in_place(|| broker.restart());
    let conn = connect(&broker).await;
    let ch = open_channel(&conn).await;
    let got = drain(&ch, "dur.q").await;
    let bodies: Vec<Vec<u8>> = got.iter().map(|(b, _)| b.clone()).collect();
    let expected: Vec<Vec<u8>> = (1..20u8).map(|i| vec![i]).collect();
    assert_eq!(
        bodies, expected,
        "19 persistent messages back in order, transient one gone"
    );
    assert!(
        got[0].1 && got[1].1,
        "delivered-but-unacked messages come back redelivered"
    );
    assert!(
        !got[2].1,
        "never-delivered messages are not flagged redelivered"
    );
    // The binding survived: routing still works.
    let ch2 = confirm_channel(&conn).await;
    let p = publish_with(&ch2, "dur.x", "a.z", b"after", persistent()).await;
    within("confirm", p).await.unwrap();
    assert_eq!(drain(&ch, "dur.q").await.len(), 1);
    // The transient queue did not survive.
    let r = ch
        .queue_declare(
            "transient.q",
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert_code(r, 404, "transient queue is gone after restart");
}

#[test]
fn definitions_and_unacked_messages_survive_restart_1_shard() {
    run(1, |n| {
        Box::pin(definitions_and_unacked_messages_survive_restart(n))
    });
}

#[test]
fn definitions_and_unacked_messages_survive_restart_2_shards() {
    run(2, |n| {
        Box::pin(definitions_and_unacked_messages_survive_restart(n))
    });
}

#[test]
fn second_broker_on_the_same_data_dir_is_refused() {
    let broker = Broker::start(1);
    let out = std::process::Command::new(warren_bin())
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--shards",
            "1",
            "--data-dir",
        ])
        .arg(&broker.dir)
        .output()
        .expect("run second broker");
    assert!(!out.status.success(), "second broker must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use by another warren"),
        "clear error, got: {err}"
    );
}

async fn acks_before_a_clean_shutdown_are_never_undone(shards: usize) {
    let mut broker = start_broker(shards).await;
    {
        let conn = connect(&broker).await;
        let ch = confirm_channel(&conn).await;
        declare_durable(&ch, "acked.q").await;
        for i in 0..100u32 {
            let p = publish_with(&ch, "", "acked.q", &i.to_be_bytes(), persistent()).await;
            within("confirm", p).await.unwrap();
        }
        for _ in 0..60 {
            let g = ch
                .basic_get("acked.q", BasicGetOptions::default())
                .await
                .unwrap()
                .unwrap();
            g.delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
        }
        ready_count(&conn, "acked.q").await;
    }
    tokio::task::block_in_place(|| {
        broker.terminate();
        broker.restart();
    });
    let conn = connect(&broker).await;
    assert_eq!(ready_count(&conn, "acked.q").await, 40);
}

#[test]
fn acks_before_a_clean_shutdown_are_never_undone_1_shard() {
    run(1, |n| {
        Box::pin(acks_before_a_clean_shutdown_are_never_undone(n))
    });
}

#[test]
fn acks_before_a_clean_shutdown_are_never_undone_2_shards() {
    run(2, |n| {
        Box::pin(acks_before_a_clean_shutdown_are_never_undone(n))
    });
}

//! Durability integrity: every confirmed or committed message survives a
//! restart (SIGTERM or SIGKILL of the real broker process), whatever
//! happened before it: queues deleted and redeclared under the same name,
//! transactions, more durable queues than open files, early crashes.

mod common;

use common::*;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::Channel;

#[derive(Clone, Copy, Debug)]
enum Stop {
    Term,
    Kill,
}

async fn delete(ch: &Channel, name: &str) {
    within(
        "queue.delete",
        ch.queue_delete(name, QueueDeleteOptions::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("delete {name}: {e}"));
}

/// Publish persistent messages `bodies` to `queue` and wait for every confirm.
async fn publish_confirmed(ch: &Channel, queue: &str, bodies: &[String]) {
    for b in bodies {
        let p = publish_with(ch, "", queue, b.as_bytes(), persistent()).await;
        match within("confirm", p).await.expect("confirm") {
            Confirmation::Ack(_) => {}
            other => panic!("publish to {queue} not confirmed: {other:?}"),
        }
    }
}

/// Every message of a queue by basic.get with ack: (body, redelivered).
async fn drain(ch: &Channel, q: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(m) = within(
        "basic.get",
        ch.basic_get(q, BasicGetOptions { no_ack: false }),
    )
    .await
    .unwrap_or_else(|e| panic!("basic.get {q}: {e}"))
    {
        out.push((
            String::from_utf8_lossy(&m.delivery.data).into_owned(),
            m.delivery.redelivered,
        ));
        m.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
    }
    out
}

fn bodies(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

async fn stop_and_restart(b: &mut Broker, stop: Stop) {
    tokio::task::block_in_place(|| {
        match stop {
            Stop::Term => b.terminate(),
            Stop::Kill => b.kill9(),
        }
        b.restart();
    });
}

fn names(got: &[(String, bool)]) -> Vec<String> {
    got.iter().map(|(b, _)| b.clone()).collect()
}

async fn redeclared_queue_keeps_its_confirmed_messages(shards: usize) {
    for stop in [Stop::Term, Stop::Kill] {
        let mut b = start_broker(shards).await;
        {
            let conn = connect(&b).await;
            let ch = confirm_channel(&conn).await;
            declare_durable(&ch, "q").await;
            delete(&ch, "q").await;
            declare_durable(&ch, "q").await;
            publish_confirmed(&ch, "q", &bodies("q", 7)).await;
        }
        stop_and_restart(&mut b, stop).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        assert_eq!(
            names(&drain(&ch, "q").await),
            bodies("q", 7),
            "after {stop:?}"
        );
    }
}

async fn deleting_a_queue_never_destroys_another_queues_messages(shards: usize) {
    for stop in [Stop::Term, Stop::Kill] {
        let mut b = start_broker(shards).await;
        // Both on one shard: they share its store.
        let a = queue_on_shard("a", 0, shards);
        let other = queue_on_shard("b", 0, shards);
        {
            let conn = connect(&b).await;
            let ch = confirm_channel(&conn).await;
            declare_durable(&ch, &a).await;
            publish_confirmed(&ch, &a, &bodies("a-old", 1)).await;
            delete(&ch, &a).await;
            declare_durable(&ch, &a).await;
            publish_confirmed(&ch, &a, &bodies("a-new", 1)).await;
            declare_durable(&ch, &other).await;
            publish_confirmed(&ch, &other, &bodies("b", 10)).await;
        }
        stop_and_restart(&mut b, stop).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        assert_eq!(
            names(&drain(&ch, &other).await),
            bodies("b", 10),
            "after {stop:?}"
        );
        assert_eq!(
            names(&drain(&ch, &a).await),
            bodies("a-new", 1),
            "after {stop:?}"
        );
        // And again: a restart after the start-up rewrite changes nothing.
        stop_and_restart(&mut b, stop).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        assert!(
            drain(&ch, &other).await.is_empty(),
            "acks before restart stay done"
        );
    }
}

async fn tx_commit_ok_means_committed_messages_survive_kill9(shards: usize) {
    let mut b = start_broker(shards).await;
    {
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        declare_durable(&ch, "txq").await;
        within("tx.select", ch.tx_select())
            .await
            .expect("tx.select");
        for body in bodies("tx", 200) {
            publish_with(&ch, "", "txq", body.as_bytes(), persistent()).await;
        }
        within("tx.commit", ch.tx_commit())
            .await
            .expect("tx.commit");
        // kill -9 as soon as commit-ok has arrived.
        tokio::task::block_in_place(|| b.kill9());
    }
    tokio::task::block_in_place(|| b.restart());
    let conn = connect(&b).await;
    let ch = open_channel(&conn).await;
    assert_eq!(names(&drain(&ch, "txq").await), bodies("tx", 200));
}

async fn redelivered_flag_survives_a_kill9_right_after_delivery(shards: usize) {
    let mut b = start_broker(shards).await;
    {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        declare_durable(&ch, "rq").await;
        publish_confirmed(&ch, "rq", &bodies("r", 20)).await;
        let getter = open_channel(&conn).await;
        for i in 0..8 {
            let m = within(
                "get",
                getter.basic_get("rq", BasicGetOptions { no_ack: false }),
            )
            .await
            .expect("get")
            .expect("a message");
            assert_eq!(String::from_utf8_lossy(&m.delivery.data), format!("r-{i}"));
        }
        tokio::task::block_in_place(|| b.kill9());
    }
    tokio::task::block_in_place(|| b.restart());
    let conn = connect(&b).await;
    let ch = open_channel(&conn).await;
    let got = drain(&ch, "rq").await;
    assert_eq!(names(&got), bodies("r", 20), "all 20 back, in order");
    let flags: Vec<bool> = got.iter().map(|(_, r)| *r).collect();
    let want: Vec<bool> = (0..20).map(|i| i < 8).collect();
    assert_eq!(flags, want, "exactly the 8 delivered ones are redelivered");
}

async fn every_shard_serves_the_first_connections_after_start(shards: usize) {
    let mut b = start_broker(shards).await;
    let qs: Vec<String> = (0..shards)
        .map(|s| queue_on_shard("first", s, shards))
        .collect();
    {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        for q in &qs {
            declare_durable(&ch, q).await;
            publish_confirmed(&ch, q, &bodies(q, 300)).await;
        }
    }
    for round in 0..4 {
        tokio::task::block_in_place(|| b.restart());
        // Several connections at once, straight after the banner: each one
        // completes the handshake and reaches queues on every shard.
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let url = b.url();
            let qs = qs.clone();
            tasks.push(tokio::spawn(async move {
                let conn = lapin::Connection::connect(&url, Default::default())
                    .await
                    .expect("handshake right after start");
                let ch = conn.create_channel().await.expect("channel.open");
                for q in &qs {
                    let d = ch
                        .queue_declare(
                            q,
                            QueueDeclareOptions {
                                passive: true,
                                ..Default::default()
                            },
                            FieldTable::default(),
                        )
                        .await
                        .expect("passive declare");
                    assert_eq!(d.message_count(), 300);
                }
            }));
        }
        for t in tasks {
            within("first connections", t)
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
}

shard_tests!(
    redeclared_queue_keeps_its_confirmed_messages,
    deleting_a_queue_never_destroys_another_queues_messages,
    tx_commit_ok_means_committed_messages_survive_kill9,
    redelivered_flag_survives_a_kill9_right_after_delivery,
    every_shard_serves_the_first_connections_after_start,
);

/// More durable queues than the process may open files: every one keeps
/// its confirmed message across restarts, and the broker starts again
/// under the same limit.
#[test]
fn durable_queues_beyond_the_open_file_limit_keep_their_messages() {
    run_async(1, |_| async {
        let mut b = tokio::task::block_in_place(|| Broker::start_with_nofile(1, &[], 1024));
        let n = 1100;
        {
            let conn = connect(&b).await;
            let ch = confirm_channel(&conn).await;
            for i in 0..n {
                let q = format!("fd-{i}");
                declare_durable(&ch, &q).await;
                publish_confirmed(&ch, &q, &[format!("m-{i}")]).await;
            }
        }
        tokio::task::block_in_place(|| b.restart());
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let mut empty = Vec::new();
        for i in 0..n {
            let q = format!("fd-{i}");
            let got = drain(&ch, &q).await;
            if names(&got) != vec![format!("m-{i}")] {
                empty.push(q);
            }
        }
        assert!(
            empty.is_empty(),
            "{} queues lost their message: {:?}",
            empty.len(),
            &empty[..empty.len().min(5)]
        );
    });
}

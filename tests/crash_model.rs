//! Randomized crash test: random sequences of declare / delete / redeclare
//! / purge / publish with confirms / tx commit / get / ack / nack / hold
//! unacked / restart (SIGTERM or kill -9) against the real broker process,
//! with small segments so roll-over and segment deletion happen often.
//!
//! The test keeps its own model of what must survive and checks it after
//! every restart:
//! * every confirmed or committed message not yet acked comes back, in
//!   publish order, with `redelivered` set exactly when it had been
//!   delivered before;
//! * after SIGTERM nothing else comes back (acks and purges before a clean
//!   stop stay done); after kill -9 a message acked or purged since the
//!   previous check may come back (at-least-once), nothing else may;
//! * a queue exists after the restart exactly when its last declare-ok /
//!   delete-ok said so, and never holds a message of an earlier queue of
//!   the same name.
//!
//! `CRASH_OPS` (default 150) operations per shard count, `CRASH_SEED`
//! (default: fixed) picks the sequence; DURABILITY.md records long runs.

mod common;

use common::*;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions, QueueDeleteOptions,
    QueuePurgeOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};

const NAMES: [&str; 4] = ["m0", "m1", "m2", "m3"];

#[derive(Default, Clone, Debug)]
struct QueueModel {
    exists: bool,
    /// Message id -> delivered before (must come back redelivered).
    live: BTreeMap<u64, bool>,
    /// Acked or purged since the last check: may come back after kill -9.
    maybe: BTreeSet<u64>,
}

struct Run {
    rng: StdRng,
    next_id: u64,
    queues: BTreeMap<String, QueueModel>,
    broker: Broker,
    conn: Connection,
    confirm: Channel,
    /// Channel holding unacked deliveries; closing it requeues them.
    holder: Option<Channel>,
    held: Vec<(String, u64)>,
    restarts: (u32, u32),
    ops: u32,
}

fn body(id: u64, rng: &mut StdRng) -> Vec<u8> {
    let mut b = format!("{id}:").into_bytes();
    // Mostly small bodies, sometimes large ones so 1 MiB segments roll.
    let size = if rng.gen_bool(0.1) {
        rng.gen_range(50_000..300_000)
    } else {
        rng.gen_range(0..2000)
    };
    b.resize(b.len() + size, b'a' + (id % 26) as u8);
    b
}

fn id_of(data: &[u8]) -> u64 {
    let end = data.iter().position(|&c| c == b':').expect("id prefix");
    std::str::from_utf8(&data[..end])
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("numeric id")
}

async fn fresh_connection(b: &Broker) -> (Connection, Channel) {
    let conn = connect(b).await;
    let ch = confirm_channel(&conn).await;
    (conn, ch)
}

impl Run {
    /// Ids of `q`'s messages held unacked on the holder channel.
    fn held_in(&self, q: &str) -> BTreeSet<u64> {
        self.held
            .iter()
            .filter(|(h, _)| h == q)
            .map(|(_, id)| *id)
            .collect()
    }

    fn pick(&mut self) -> String {
        NAMES[self.rng.gen_range(0..NAMES.len())].to_string()
    }

    async fn declare(&mut self, q: &str) {
        within(
            "declare",
            self.confirm.queue_declare(
                q,
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("declare {q}: {e}"));
        self.queues.entry(q.to_string()).or_default().exists = true;
    }

    async fn delete(&mut self, q: &str) {
        // Held deliveries of this queue die with it.
        self.release_holder().await;
        within(
            "delete",
            self.confirm.queue_delete(q, QueueDeleteOptions::default()),
        )
        .await
        .unwrap_or_else(|e| panic!("delete {q}: {e}"));
        let m = self.queues.entry(q.to_string()).or_default();
        *m = QueueModel::default();
    }

    async fn purge(&mut self, q: &str) {
        within(
            "purge",
            self.confirm.queue_purge(q, QueuePurgeOptions::default()),
        )
        .await
        .unwrap_or_else(|e| panic!("purge {q}: {e}"));
        let held = self.held_in(q);
        let m = self.queues.get_mut(q).expect("model");
        // Purge removes ready messages only; held (unacked) ones stay.
        let ready: Vec<u64> = m
            .live
            .keys()
            .filter(|id| !held.contains(id))
            .copied()
            .collect();
        for id in ready {
            m.live.remove(&id);
            m.maybe.insert(id);
        }
    }

    async fn publish(&mut self, q: &str, n: usize) {
        for _ in 0..n {
            let id = self.next_id;
            self.next_id += 1;
            let b = body(id, &mut self.rng);
            let p = publish_with(&self.confirm, "", q, &b, persistent()).await;
            match within("confirm", p).await.expect("confirm") {
                Confirmation::Ack(_) => {
                    self.queues
                        .get_mut(q)
                        .expect("model")
                        .live
                        .insert(id, false);
                }
                other => panic!("publish {id} to {q}: {other:?}"),
            }
        }
    }

    async fn tx_publish(&mut self, q: &str, n: usize) {
        let ch = open_channel(&self.conn).await;
        within("tx.select", ch.tx_select())
            .await
            .expect("tx.select");
        let mut ids = Vec::new();
        for _ in 0..n {
            let id = self.next_id;
            self.next_id += 1;
            let b = body(id, &mut self.rng);
            publish_with(&ch, "", q, &b, persistent()).await;
            ids.push(id);
        }
        within("tx.commit", ch.tx_commit())
            .await
            .expect("tx.commit");
        let m = self.queues.get_mut(q).expect("model");
        for id in ids {
            m.live.insert(id, false);
        }
        within("close tx channel", ch.close(200, "done"))
            .await
            .expect("close tx channel");
    }

    /// basic.get one message; it must be the oldest ready one.
    async fn get_one(
        &mut self,
        ch: &Channel,
        q: &str,
    ) -> Option<(u64, lapin::message::BasicGetMessage)> {
        let m = within("get", ch.basic_get(q, BasicGetOptions { no_ack: false }))
            .await
            .unwrap_or_else(|e| panic!("get {q}: {e}"))?;
        let id = id_of(&m.delivery.data);
        let held = self.held_in(q);
        let model = self.queues.get_mut(q).expect("model");
        let want = model.live.iter().find(|(id, _)| !held.contains(id));
        let (want_id, want_redelivered) = want.map(|(a, b)| (*a, *b)).unwrap_or((u64::MAX, false));
        assert_eq!(
            id, want_id,
            "op {}: {q} delivered {id}, model says {want_id} is next",
            self.ops
        );
        assert_eq!(
            m.delivery.redelivered, want_redelivered,
            "op {}: redelivered flag of {id}",
            self.ops
        );
        model.live.insert(id, true);
        Some((id, m))
    }

    async fn get_ack(&mut self, q: &str, k: usize) {
        let ch = self.confirm.clone();
        for _ in 0..k {
            let Some((id, m)) = self.get_one(&ch, q).await else {
                break;
            };
            m.delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .expect("ack");
            let model = self.queues.get_mut(q).expect("model");
            model.live.remove(&id);
            model.maybe.insert(id);
        }
    }

    async fn nack_requeue(&mut self, q: &str) {
        let ch = self.confirm.clone();
        if let Some((_, m)) = self.get_one(&ch, q).await {
            within(
                "nack",
                m.delivery.acker.nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                }),
            )
            .await
            .expect("nack");
        }
    }

    async fn hold(&mut self, q: &str, k: usize) {
        if self.holder.is_none() {
            self.holder = Some(open_channel(&self.conn).await);
        }
        let ch = self.holder.clone().expect("holder");
        for _ in 0..k {
            let Some((id, _m)) = self.get_one(&ch, q).await else {
                break;
            };
            self.held.push((q.to_string(), id));
        }
    }

    /// Close the holder channel: its deliveries go back, redelivered.
    async fn release_holder(&mut self) {
        if let Some(ch) = self.holder.take() {
            // Later gets on this connection reach each queue through the
            // same mailbox after the requeue, so no wait is needed.
            within("close holder", ch.close(200, "release"))
                .await
                .expect("close holder");
        }
        self.held.clear();
    }

    async fn restart(&mut self, kill: bool) {
        if !kill {
            // A synchronous round trip on the connection: every ack sent
            // before it has been read by the broker.
            let existing: Vec<String> = self
                .queues
                .iter()
                .filter(|(_, m)| m.exists)
                .map(|(q, _)| q.clone())
                .collect();
            for q in existing {
                ready_count(&self.conn, &q).await;
            }
        }
        tokio::task::block_in_place(|| {
            if kill {
                self.broker.kill9();
            } else {
                self.broker.terminate();
            }
            self.broker.restart();
        });
        if kill {
            self.restarts.1 += 1;
        } else {
            self.restarts.0 += 1;
        }
        self.holder = None;
        self.held.clear();
        let (conn, ch) = fresh_connection(&self.broker).await;
        self.conn = conn;
        self.confirm = ch;
        self.check(kill).await;
    }

    /// Compare every queue with the model; afterwards the model is what
    /// the broker holds (every message now delivered once more).
    async fn check(&mut self, after_kill: bool) {
        for q in NAMES {
            let model = self.queues.get(q).cloned().unwrap_or_default();
            let ch = open_channel(&self.conn).await;
            let exists = within(
                "passive declare",
                ch.queue_declare(
                    q,
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await
            .is_ok();
            assert_eq!(exists, model.exists, "op {}: queue {q} exists", self.ops);
            if !exists {
                continue;
            }
            let ch = open_channel(&self.conn).await;
            let mut got = Vec::new();
            while let Some(m) = within(
                "check get",
                ch.basic_get(q, BasicGetOptions { no_ack: false }),
            )
            .await
            .expect("check get")
            {
                got.push((id_of(&m.delivery.data), m.delivery.redelivered));
            }
            let ids: Vec<u64> = got.iter().map(|g| g.0).collect();
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            assert_eq!(
                ids, sorted,
                "op {}: {q} comes back in publish order",
                self.ops
            );
            for (id, delivered) in &model.live {
                let g = got.iter().find(|g| g.0 == *id);
                let Some(g) = g else {
                    panic!(
                        "op {}: confirmed message {id} of {q} lost (after {})",
                        self.ops,
                        if after_kill { "kill -9" } else { "SIGTERM" }
                    );
                };
                assert_eq!(
                    g.1, *delivered,
                    "op {}: redelivered flag of {id} in {q}",
                    self.ops
                );
            }
            for (id, _) in &got {
                if model.live.contains_key(id) {
                    continue;
                }
                assert!(
                    after_kill && model.maybe.contains(id),
                    "op {}: {q} returned message {id}, acked/purged before a clean stop or never in this queue",
                    self.ops
                );
            }
            // Requeue everything (now all delivered once).
            within("close check channel", ch.close(200, "checked"))
                .await
                .expect("close");
            let m = self.queues.get_mut(q).expect("model");
            m.live = got.iter().map(|(id, _)| (*id, true)).collect();
            m.maybe.clear();
        }
    }
}

async fn random_operations_never_lose_a_confirmed_message(shards: usize) {
    let ops: u32 = std::env::var("CRASH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261129);
    let broker = tokio::task::block_in_place(|| Broker::start_with(shards, &["--segment-mb", "1"]));
    let (conn, confirm) = fresh_connection(&broker).await;
    let mut r = Run {
        rng: StdRng::seed_from_u64(seed ^ shards as u64),
        next_id: 1,
        queues: BTreeMap::new(),
        broker,
        conn,
        confirm,
        holder: None,
        held: Vec::new(),
        restarts: (0, 0),
        ops: 0,
    };
    for i in 0..ops {
        r.ops = i;
        let q = r.pick();
        let exists = r.queues.get(&q).is_some_and(|m| m.exists);
        let roll = r.rng.gen_range(0..100);
        match roll {
            _ if !exists => r.declare(&q).await,
            0..=5 => r.declare(&q).await,
            6..=10 => r.delete(&q).await,
            11..=13 => r.purge(&q).await,
            14..=38 => {
                let n = r.rng.gen_range(1..40);
                r.publish(&q, n).await
            }
            39..=48 => {
                let n = r.rng.gen_range(1..30);
                r.tx_publish(&q, n).await
            }
            49..=63 => {
                let k = r.rng.gen_range(1..20);
                r.get_ack(&q, k).await
            }
            64..=69 => r.nack_requeue(&q).await,
            70..=79 => {
                let k = r.rng.gen_range(1..5);
                r.hold(&q, k).await
            }
            80..=85 => r.release_holder().await,
            86..=92 => r.restart(true).await,
            _ => r.restart(false).await,
        }
    }
    r.restart(true).await;
    r.restart(false).await;
    eprintln!(
        "crash model: {ops} operations, {} SIGTERM and {} kill -9 restarts, {} messages published, {} shard(s), seed {seed}",
        r.restarts.0, r.restarts.1, r.next_id - 1, shards
    );
}

shard_tests!(random_operations_never_lose_a_confirmed_message);

//! The delayed-message exchange (`x-delayed-message`) over lapin and the
//! management API: confirmed persistent delayed messages of a durable
//! exchange survive `kill -9` and still leave on time and in time order,
//! to a queue on another shard than the exchange's store; the exchange's
//! `messages_delayed` counts them; a deleted exchange's messages do not
//! come back under a re-declared one of the same name. (Routing, header
//! and validation rules are checked by tests/python/test_delayed_message.py.)

mod common;
mod mgmt;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use mgmt::{seg, Api};
use std::time::{Duration, Instant};

async fn declare_delayed(ch: &lapin::Channel, x: &str) {
    let mut args = FieldTable::default();
    args.insert(
        "x-delayed-type".into(),
        AMQPValue::LongString("direct".into()),
    );
    within(
        "exchange.declare x-delayed-message",
        ch.exchange_declare(
            x,
            lapin::ExchangeKind::Custom("x-delayed-message".into()),
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        ),
    )
    .await
    .unwrap();
}

fn delayed(ms: i64, persistent: bool) -> BasicProperties {
    let mut h = FieldTable::default();
    h.insert("x-delay".into(), AMQPValue::LongLongInt(ms));
    let p = BasicProperties::default().with_headers(h);
    if persistent {
        p.with_delivery_mode(2)
    } else {
        p
    }
}

async fn messages_delayed(port: u16, x: &str) -> Option<u64> {
    let path = format!("/api/exchanges/{}/{}", seg("/"), seg(x));
    tokio::task::spawn_blocking(move || Api::new(port).get_ok(&path)["messages_delayed"].as_u64())
        .await
        .unwrap()
}

async fn durable_delayed_messages_survive_a_crash_and_leave_on_time(shards: usize) {
    let mut b = start_broker(shards).await;
    // The exchange's store on the last shard, the queue on the first.
    let x = queue_on_shard("delayed-x", shards - 1, shards);
    let q = queue_on_shard("delayed-target", 0, shards);
    let t0 = Instant::now();
    {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        declare_delayed(&ch, &x).await;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        within(
            "queue.declare",
            ch.queue_declare(&q, durable, FieldTable::default()),
        )
        .await
        .unwrap();
        within(
            "queue.bind",
            ch.queue_bind(
                &q,
                &x,
                "k",
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        let mut confirms = Vec::new();
        for (body, ms, persistent) in [
            (&b"late"[..], 3500, true),
            (b"early", 2500, true),
            (b"transient", 2500, false),
            (b"much-later", 600_000, true),
        ] {
            confirms.push(publish_with(&ch, &x, "k", body, delayed(ms, persistent)).await);
        }
        for c in confirms {
            assert!(within("confirm", c).await.unwrap().is_ack());
        }
        assert_eq!(messages_delayed(b.mgmt_port, &x).await, Some(4));
    }
    b.restart(); // kill -9, then start on the same data directory
    let conn = connect(&b).await;
    let ch = open_channel(&conn).await;
    let mut c = consume(&ch, &q, true).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let d = next_delivery(&mut c, "a released delayed message").await;
        got.push((String::from_utf8_lossy(&d.data).into_owned(), t0.elapsed()));
    }
    assert_eq!(got[0].0, "early");
    assert_eq!(got[1].0, "late");
    assert!(got[0].1 >= Duration::from_millis(2500), "{got:?}");
    assert!(got[1].1 >= Duration::from_millis(3500), "{got:?}");
    // The transient one did not survive; the ten-minute one still waits.
    let quiet = tokio::time::timeout(Duration::from_millis(500), next_delivery(&mut c, "none"));
    assert!(quiet.await.is_err(), "nothing else is due");
    assert_eq!(messages_delayed(b.mgmt_port, &x).await, Some(1));

    // Deleting the exchange drops what waits in it, for good: a new
    // exchange of the same name starts empty, also after another crash.
    within(
        "exchange.delete",
        ch.exchange_delete(&x, Default::default()),
    )
    .await
    .unwrap();
    declare_delayed(&ch, &x).await;
    assert_eq!(messages_delayed(b.mgmt_port, &x).await, Some(0));
    drop(c);
    b.restart();
    assert_eq!(messages_delayed(b.mgmt_port, &x).await, Some(0));
}

shard_tests!(durable_delayed_messages_survive_a_crash_and_leave_on_time);

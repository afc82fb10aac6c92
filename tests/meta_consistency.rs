//! Definitions are consistent across shards: once a declare/bind/delete
//! is answered on one connection, every other connection, whatever its
//! shard, routes accordingly; concurrent declarations agree.

mod common;

use common::*;
use lapin::options::*;
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use std::time::Duration;

async fn publish_mandatory(ch: &Channel, ex: &str, key: &str) -> Confirmation {
    let c = within(
        "publish",
        ch.basic_publish(
            ex,
            key,
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"m",
            BasicProperties::default(),
        ),
    )
    .await
    .expect("publish");
    within("confirm", c).await.expect("confirm")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declare_bind_and_delete_are_visible_to_every_shard_once_answered() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        for (decl_shard, pub_shard) in [(0, 1), (1, 0), (0, 0), (1, 1)] {
            let dconn = connect_on_shard(&b, decl_shard).await;
            let pconn = connect_on_shard(&b, pub_shard).await;
            let dch = open_channel(&dconn).await;
            let pch = confirm_channel(&pconn).await;
            within(
                "exchange.declare",
                dch.exchange_declare(
                    "vis",
                    ExchangeKind::Direct,
                    ExchangeDeclareOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .unwrap();
            for i in 0..100 {
                let q = format!("vis-{decl_shard}{pub_shard}-{i}");
                declare_queue(&dch, &q).await;
                // Declared: the default exchange routes to it everywhere.
                match publish_mandatory(&pch, "", &q).await {
                    Confirmation::Ack(None) => {}
                    other => {
                        panic!("publish right after queue.declare-ok was not routed: {other:?}")
                    }
                }
                within(
                    "bind",
                    dch.queue_bind(
                        &q,
                        "vis",
                        &q,
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    ),
                )
                .await
                .unwrap();
                match publish_mandatory(&pch, "vis", &q).await {
                    Confirmation::Ack(None) => {}
                    other => panic!("publish right after queue.bind-ok was not routed: {other:?}"),
                }
                within(
                    "unbind",
                    dch.queue_unbind(&q, "vis", &q, FieldTable::default()),
                )
                .await
                .unwrap();
                match publish_mandatory(&pch, "vis", &q).await {
                    Confirmation::Ack(Some(r)) => assert_eq!(r.reply_code, 312),
                    other => {
                        panic!("publish right after queue.unbind-ok was still routed: {other:?}")
                    }
                }
                let deleted = within(
                    "delete",
                    dch.queue_delete(&q, QueueDeleteOptions::default()),
                )
                .await
                .unwrap();
                assert_eq!(deleted, 2, "delete-ok counts the two routed messages");
                match publish_mandatory(&pch, "", &q).await {
                    Confirmation::Ack(Some(r)) => assert_eq!(r.reply_code, 312),
                    other => {
                        panic!("publish right after queue.delete-ok was still routed: {other:?}")
                    }
                }
            }
            let _ = dconn.close(200, "bye").await;
            let _ = pconn.close(200, "bye").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_declarations_from_every_shard_agree_on_one_queue() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let mut conns = Vec::new();
        for i in 0..8 {
            conns.push(connect_on_shard(&b, i).await);
        }
        // Everyone declares the same queue and binding at once.
        let mut tasks = Vec::new();
        for (i, conn) in conns.iter().enumerate() {
            let ch = open_channel(conn).await;
            tasks.push(tokio::spawn(async move {
                for round in 0..20 {
                    let q = format!("contended-{round}");
                    ch.queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default())
                        .await
                        .unwrap_or_else(|e| panic!("declarer {i}: {e}"));
                    ch.exchange_declare(
                        "contended-x",
                        ExchangeKind::Fanout,
                        ExchangeDeclareOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("declarer {i}: {e}"));
                    ch.queue_bind(
                        &q,
                        "contended-x",
                        "",
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("declarer {i}: {e}"));
                }
            }));
        }
        for t in tasks {
            within("declarers", t).await.unwrap();
        }
        let ch = confirm_channel(&conns[0]).await;
        let c = publish(&ch, "contended-x", "", b"once").await;
        assert_eq!(within("confirm", c).await.unwrap(), Confirmation::Ack(None));
        for round in 0..20 {
            assert_eq!(
                ready_count(&conns[1], &format!("contended-{round}")).await,
                1,
                "one queue, one binding"
            );
        }

        // Concurrent conflicting declarations: exactly one definition wins,
        // every loser gets 406, and nobody hangs.
        let mut tasks = Vec::new();
        for (i, conn) in conns.iter().enumerate() {
            let ch = open_channel(conn).await;
            tasks.push(tokio::spawn(async move {
                let mut args = FieldTable::default();
                args.insert("x-message-ttl".into(), AMQPValue::LongInt(i as i32 + 1));
                match ch
                    .queue_declare("conflict", QueueDeclareOptions::default(), args)
                    .await
                {
                    Ok(_) => Some(i),
                    Err(e) => {
                        assert_eq!(reply_code(&e), Some(406), "loser {i}: {e}");
                        None
                    }
                }
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            if let Some(i) = within("conflicting declarers", t).await.unwrap() {
                winners.push(i);
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "exactly one conflicting declaration succeeds: {winners:?}"
        );
        for conn in &conns {
            assert_connection_usable(conn).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_resolve_when_the_target_queue_is_deleted_mid_stream() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        for home in 0..shards {
            let q = queue_on_shard("short-lived", home, shards);
            let pconn = connect_on_shard(&b, 0).await;
            let dconn = connect_on_shard(&b, 1).await;
            let pch = confirm_channel(&pconn).await;
            declare_queue(&pch, &q).await;
            let publisher = {
                let q = q.clone();
                tokio::spawn(async move {
                    let mut pending = Vec::new();
                    for i in 0..20_000 {
                        pending.push(publish(&pch, "", &q, format!("{i}").as_bytes()).await);
                    }
                    let mut acked = 0;
                    for c in pending {
                        match within_for(Duration::from_secs(60), "confirm", c).await {
                            Ok(Confirmation::Ack(_)) => acked += 1,
                            other => panic!("unexpected confirm {other:?}"),
                        }
                    }
                    acked
                })
            };
            let dch = open_channel(&dconn).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            within(
                "delete",
                dch.queue_delete(&q, QueueDeleteOptions::default()),
            )
            .await
            .expect("delete");
            let acked = within_for(Duration::from_secs(120), "publisher", publisher)
                .await
                .unwrap();
            assert_eq!(acked, 20_000, "every publish is confirmed, routed or not");
            let _ = pconn.close(200, "bye").await;
            let _ = dconn.close(200, "bye").await;
        }
    }
}

//! Channel-level errors: each closes the offending channel with the right
//! reply code, and the connection (and its other channels) stay usable.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_declare_of_missing_queue_or_exchange_fails_404() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        // A second channel that must survive the others' errors.
        let bystander = open_channel(&conn).await;
        let bq = declare_queue(&bystander, "bystander").await;

        let ch = open_channel(&conn).await;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let r = within(
            "passive queue.declare",
            ch.queue_declare("no-such-queue", passive, FieldTable::default()),
        )
        .await;
        assert_code(r, 404, "passive declare of a missing queue");
        assert_connection_usable(&conn).await;

        let ch = open_channel(&conn).await;
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let r = within(
            "passive exchange.declare",
            ch.exchange_declare(
                "no-such-exchange",
                ExchangeKind::Direct,
                passive,
                FieldTable::default(),
            ),
        )
        .await;
        assert_code(r, 404, "passive declare of a missing exchange");
        assert_connection_usable(&conn).await;

        // Other operations on missing objects are 404 too.
        let ch = open_channel(&conn).await;
        let r = within(
            "get",
            ch.basic_get("no-such-queue", BasicGetOptions::default()),
        )
        .await;
        assert_code(r, 404, "basic.get from a missing queue");
        let ch = open_channel(&conn).await;
        let r = within(
            "consume",
            ch.basic_consume(
                "no-such-queue",
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_code(r.map(|_| ()), 404, "basic.consume from a missing queue");
        let ch = open_channel(&conn).await;
        let r = within(
            "bind",
            ch.queue_bind(
                &bq,
                "no-such-exchange",
                "k",
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_code(r, 404, "queue.bind to a missing exchange");

        // The bystander channel was never affected.
        publish(&bystander, "", &bq, b"ok").await;
        let got = within(
            "get",
            bystander.basic_get(&bq, BasicGetOptions { no_ack: true }),
        )
        .await
        .unwrap();
        assert_eq!(got.expect("message").delivery.data, b"ok");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inequivalent_redeclare_fails_406() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        within(
            "declare",
            ch.queue_declare(
                "plain",
                QueueDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        // Redeclaring with identical properties is fine.
        within(
            "redeclare",
            ch.queue_declare(
                "plain",
                QueueDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("equivalent redeclare");

        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let r = within(
            "redeclare durable",
            ch.queue_declare("plain", durable, FieldTable::default()),
        )
        .await;
        assert_code(r, 406, "queue redeclared with a different durable flag");
        assert_connection_usable(&conn).await;

        let ch = open_channel(&conn).await;
        let mut args = FieldTable::default();
        args.insert("x-message-ttl".into(), AMQPValue::LongInt(10));
        let r = within(
            "redeclare args",
            ch.queue_declare("plain", QueueDeclareOptions::default(), args),
        )
        .await;
        assert_code(r, 406, "queue redeclared with different arguments");
        assert_connection_usable(&conn).await;

        let ch = open_channel(&conn).await;
        within(
            "exchange.declare",
            ch.exchange_declare(
                "ex",
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        let r = within(
            "exchange redeclare",
            ch.exchange_declare(
                "ex",
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_code(r, 406, "exchange redeclared with a different type");
        assert_connection_usable(&conn).await;

        // The originals are untouched.
        let ch = open_channel(&conn).await;
        let q = within(
            "passive",
            ch.queue_declare(
                "plain",
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await
        .expect("queue still exists");
        assert_eq!(q.message_count(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_queue_is_locked_405_for_other_connections_and_dies_with_its_owner() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        for other_shard in 0..shards {
            // Owner on shard 0, intruder on each shard in turn.
            let owner = connect_on_shard(&b, 0).await;
            let intruder = connect_on_shard(&b, other_shard).await;
            let och = open_channel(&owner).await;
            let excl = QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            };
            within(
                "exclusive declare",
                och.queue_declare("mine", excl, FieldTable::default()),
            )
            .await
            .expect("exclusive declare");
            publish(&och, "", "mine", b"private").await;

            let ch = open_channel(&intruder).await;
            let r = within(
                "declare",
                ch.queue_declare("mine", excl, FieldTable::default()),
            )
            .await;
            assert_code(r, 405, "exclusive redeclare from another connection");
            let ch = open_channel(&intruder).await;
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let r = within(
                "passive",
                ch.queue_declare("mine", passive, FieldTable::default()),
            )
            .await;
            assert_code(
                r,
                405,
                "passive declare of another connection's exclusive queue",
            );
            let ch = open_channel(&intruder).await;
            let r = within(
                "consume",
                ch.basic_consume(
                    "mine",
                    "",
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await;
            assert_code(
                r.map(|_| ()),
                405,
                "consume from another connection's exclusive queue",
            );
            let ch = open_channel(&intruder).await;
            let r = within("get", ch.basic_get("mine", BasicGetOptions::default())).await;
            assert_code(r, 405, "get from another connection's exclusive queue");
            let ch = open_channel(&intruder).await;
            let r = within(
                "delete",
                ch.queue_delete("mine", QueueDeleteOptions::default()),
            )
            .await;
            assert_code(r, 405, "delete of another connection's exclusive queue");
            let ch = open_channel(&intruder).await;
            let r = within(
                "purge",
                ch.queue_purge("mine", QueuePurgeOptions::default()),
            )
            .await;
            assert_code(r, 405, "purge of another connection's exclusive queue");
            assert_connection_usable(&intruder).await;

            // The owner still has its message.
            let got = within(
                "owner get",
                och.basic_get("mine", BasicGetOptions { no_ack: true }),
            )
            .await
            .unwrap();
            assert_eq!(got.expect("owner's message").delivery.data, b"private");

            // Publishing to it from elsewhere is allowed (as in RabbitMQ).
            let ch = confirm_channel(&intruder).await;
            let c = publish(&ch, "", "mine", b"from-outside").await;
            within("confirm", c).await.expect("confirm");

            // When the owner goes away, so does the queue.
            // The close result itself is checked in tests/connection.rs.
            let _ = within("owner close", owner.close(200, "bye")).await;
            let mut gone = false;
            for _ in 0..100 {
                let ch = open_channel(&intruder).await;
                let r = within(
                    "passive",
                    ch.queue_declare("mine", passive, FieldTable::default()),
                )
                .await;
                match r {
                    Err(e) if reply_code(&e) == Some(404) => {
                        gone = true;
                        break;
                    }
                    Err(e) if reply_code(&e) == Some(405) => {
                        // Deletion is asynchronous to the owner's close-ok.
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    other => panic!("unexpected result {other:?}"),
                }
            }
            assert!(
                gone,
                "exclusive queue must be deleted when its owner closes"
            );
            assert_connection_usable(&intruder).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_delete_if_unused_or_if_empty_fails_406_and_keeps_the_queue() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let q = declare_queue(&ch, "busy").await;
        for _ in 0..3 {
            publish(&ch, "", &q, b"m").await;
        }
        let consumer_conn = connect(&b).await;
        let cch = open_channel(&consumer_conn).await;
        within("qos", cch.basic_qos(1, BasicQosOptions::default()))
            .await
            .unwrap();
        let _consumer = within(
            "consume",
            cch.basic_consume(
                &q,
                "busy-consumer",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();

        let ch = open_channel(&conn).await;
        let if_unused = QueueDeleteOptions {
            if_unused: true,
            ..Default::default()
        };
        let r = within("delete if-unused", ch.queue_delete(&q, if_unused)).await;
        assert_code(r, 406, "delete if-unused of a queue with a consumer");
        assert_connection_usable(&conn).await;

        let ch = open_channel(&conn).await;
        let if_empty = QueueDeleteOptions {
            if_empty: true,
            ..Default::default()
        };
        let r = within("delete if-empty", ch.queue_delete(&q, if_empty)).await;
        assert_code(r, 406, "delete if-empty of a queue with messages");
        assert_connection_usable(&conn).await;

        // Still there, with its messages (one is with the consumer).
        assert_eq!(ready_count(&conn, &q).await, 2);
        within(
            "cancel",
            cch.basic_cancel("busy-consumer", BasicCancelOptions::default()),
        )
        .await
        .unwrap();
        let _ = within("close consumer", consumer_conn.close(200, "bye")).await;

        // Unused now, and both conditions hold once it is empty.
        let ch = open_channel(&conn).await;
        within("purge", ch.queue_purge(&q, QueuePurgeOptions::default()))
            .await
            .unwrap();
        let opts = QueueDeleteOptions {
            if_unused: true,
            if_empty: true,
            ..Default::default()
        };
        within("delete", ch.queue_delete(&q, opts))
            .await
            .expect("conditional delete of an idle empty queue");
        let r = within(
            "passive",
            ch.queue_declare(
                &q,
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        assert_code(r, 404, "deleted queue");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_delete_if_unused_fails_406_while_bound() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        within(
            "exchange.declare",
            ch.exchange_declare(
                "bound-ex",
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        let q = declare_queue(&ch, "").await;
        within(
            "bind",
            ch.queue_bind(
                &q,
                "bound-ex",
                "",
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        let opts = ExchangeDeleteOptions {
            if_unused: true,
            ..Default::default()
        };
        let r = within(
            "exchange.delete if-unused",
            ch.exchange_delete("bound-ex", opts),
        )
        .await;
        assert_code(r, 406, "exchange delete if-unused while bound");
        assert_connection_usable(&conn).await;
        let ch = open_channel(&conn).await;
        within(
            "unbind",
            ch.queue_unbind(&q, "bound-ex", "", FieldTable::default()),
        )
        .await
        .unwrap();
        within(
            "exchange.delete if-unused",
            ch.exchange_delete("bound-ex", opts),
        )
        .await
        .expect("delete of an unbound exchange");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_to_missing_exchange_closes_channel_404() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let mut errors = channel_errors(&ch);
        // basic.publish has no reply: the error arrives as channel.close.
        let _ = within(
            "publish",
            ch.basic_publish(
                "no-such-exchange",
                "k",
                BasicPublishOptions::default(),
                b"x",
                BasicProperties::default(),
            ),
        )
        .await;
        expect_channel_error(&mut errors, 404, "publish to a missing exchange").await;
        assert_connection_usable(&conn).await;

        // Same in confirm mode: the pending confirm fails with the error.
        let ch = confirm_channel(&conn).await;
        let mut errors = channel_errors(&ch);
        let c = within(
            "publish",
            ch.basic_publish(
                "no-such-exchange",
                "k",
                BasicPublishOptions::default(),
                b"x",
                BasicProperties::default(),
            ),
        )
        .await
        .expect("publish is accepted locally");
        let r = within("confirm", c).await;
        assert!(
            !matches!(r, Ok(lapin::publisher_confirm::Confirmation::Ack(_))),
            "publish to a missing exchange must not be acked, got {r:?}"
        );
        expect_channel_error(
            &mut errors,
            404,
            "confirm-mode publish to a missing exchange",
        )
        .await;
        assert_connection_usable(&conn).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_names_and_internal_exchanges_are_refused_403() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let r = within(
            "declare amq.*",
            ch.exchange_declare(
                "amq.mine",
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_code(r, 403, "exchange with the reserved amq. prefix");
        assert_connection_usable(&conn).await;

        let ch = open_channel(&conn).await;
        let r = within(
            "declare amq.* queue",
            ch.queue_declare(
                "amq.mine",
                QueueDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_code(r, 403, "queue with the reserved amq. prefix");
        assert_connection_usable(&conn).await;

        let ch = open_channel(&conn).await;
        let mut errors = channel_errors(&ch);
        let internal = ExchangeDeclareOptions {
            internal: true,
            ..Default::default()
        };
        within(
            "declare internal",
            ch.exchange_declare(
                "internal-ex",
                ExchangeKind::Fanout,
                internal,
                FieldTable::default(),
            ),
        )
        .await
        .expect("internal exchange declare");
        let _ = within(
            "publish to internal",
            ch.basic_publish(
                "internal-ex",
                "",
                BasicPublishOptions::default(),
                b"x",
                BasicProperties::default(),
            ),
        )
        .await;
        expect_channel_error(&mut errors, 403, "publish to an internal exchange").await;
        assert_connection_usable(&conn).await;
    }
}

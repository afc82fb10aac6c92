//! Queue and consumer semantics: declare-ok counts, server-named and
//! auto-delete queues, purge, prefetch, exclusive consumers, recover,
//! no-ack consumers, message sizes.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declare_ok_reports_message_and_consumer_counts() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = declare_queue(&ch, "counted").await;
        for _ in 0..7 {
            let c = publish(&ch, "", &q, b"m").await;
            within("confirm", c).await.unwrap();
        }
        let cch = open_channel(&conn).await;
        within("qos", cch.basic_qos(2, BasicQosOptions::default()))
            .await
            .unwrap();
        let mut c1 = within(
            "consume",
            cch.basic_consume(
                &q,
                "c1",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        let _c2 = within(
            "consume",
            cch.basic_consume(
                &q,
                "c2",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        next_delivery(&mut c1, "c1").await;
        let r = within(
            "redeclare",
            ch.queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default()),
        )
        .await
        .unwrap();
        assert_eq!(r.consumer_count(), 2);
        // 2 consumers x prefetch 2 hold 4; 3 remain ready.
        assert_eq!(
            r.message_count(),
            3,
            "declare-ok message-count counts ready messages only"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_named_queue_gets_a_generated_name_usable_via_empty_name() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let excl = QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        };
        let q1 = within("declare", ch.queue_declare("", excl, FieldTable::default()))
            .await
            .unwrap();
        let q2 = within("declare", ch.queue_declare("", excl, FieldTable::default()))
            .await
            .unwrap();
        let (n1, n2) = (
            q1.name().as_str().to_string(),
            q2.name().as_str().to_string(),
        );
        assert!(n1.starts_with("amq.gen-"), "generated name {n1}");
        assert_ne!(n1, n2, "generated names are unique");
        publish(&ch, "", &n2, b"to-generated").await;
        let got = within("get", ch.basic_get(&n2, BasicGetOptions { no_ack: true }))
            .await
            .unwrap();
        assert_eq!(got.expect("message").delivery.data, b"to-generated");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_delete_queue_goes_away_when_its_last_consumer_cancels() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let ad = QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        };
        within(
            "declare",
            ch.queue_declare("ephemeral", ad, FieldTable::default()),
        )
        .await
        .unwrap();
        // No consumer yet: it stays.
        assert_eq!(ready_count(&conn, "ephemeral").await, 0);
        let _ca = within(
            "consume",
            ch.basic_consume(
                "ephemeral",
                "a",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        let _cb = within(
            "consume",
            ch.basic_consume(
                "ephemeral",
                "b",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        within(
            "cancel",
            ch.basic_cancel("a", BasicCancelOptions::default()),
        )
        .await
        .unwrap();
        assert_eq!(
            ready_count(&conn, "ephemeral").await,
            0,
            "one consumer left: still there"
        );
        within(
            "cancel",
            ch.basic_cancel("b", BasicCancelOptions::default()),
        )
        .await
        .unwrap();
        let mut gone = false;
        for _ in 0..100 {
            let pch = open_channel(&conn).await;
            let r = within(
                "passive",
                pch.queue_declare(
                    "ephemeral",
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await;
            match r {
                Err(e) if reply_code(&e) == Some(404) => {
                    gone = true;
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(
            gone,
            "auto-delete queue must be deleted after its last consumer is cancelled"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_ready_messages_and_reports_how_many() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        let q = declare_queue(&ch, "purged").await;
        for _ in 0..10 {
            let c = publish(&ch, "", &q, b"m").await;
            within("confirm", c).await.unwrap();
        }
        let held = within("get", ch.basic_get(&q, BasicGetOptions::default()))
            .await
            .unwrap()
            .unwrap();
        let n = within("purge", ch.queue_purge(&q, QueuePurgeOptions::default()))
            .await
            .unwrap();
        assert_eq!(n, 9, "purge-ok counts the ready messages removed");
        assert_eq!(ready_count(&conn, &q).await, 0);
        // The unacked message is not purged: rejecting it brings it back.
        within(
            "reject",
            held.delivery
                .acker
                .reject(BasicRejectOptions { requeue: true }),
        )
        .await
        .unwrap();
        let again = within("get", ch.basic_get(&q, BasicGetOptions { no_ack: true }))
            .await
            .unwrap();
        assert!(
            again
                .expect("requeued message survives purge")
                .delivery
                .redelivered
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_limits_unacked_deliveries_per_consumer() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        for home in 0..shards {
            let conn = connect_on_shard(&b, 0).await;
            let ch = confirm_channel(&conn).await;
            let q = queue_on_shard("prefetched", home, shards);
            declare_queue(&ch, &q).await;
            for i in 0..20 {
                let c = publish(&ch, "", &q, format!("{i}").as_bytes()).await;
                within("confirm", c).await.unwrap();
            }
            let cch = open_channel(&conn).await;
            within("qos", cch.basic_qos(3, BasicQosOptions::default()))
                .await
                .unwrap();
            let mut c = within(
                "consume",
                cch.basic_consume(
                    &q,
                    "",
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .unwrap();
            let mut held = Vec::new();
            for _ in 0..3 {
                held.push(next_delivery(&mut c, "within prefetch").await);
            }
            assert_no_delivery(&mut c, Duration::from_millis(300), "beyond prefetch 3").await;
            assert_eq!(ready_count(&conn, &q).await, 17);
            // Each ack frees exactly one slot.
            let first = held.remove(0);
            within("ack", first.acker.ack(BasicAckOptions::default()))
                .await
                .unwrap();
            let d = next_delivery(&mut c, "after one ack").await;
            assert_eq!(d.data, b"3");
            held.push(d);
            assert_no_delivery(&mut c, Duration::from_millis(200), "still at prefetch").await;
            // A multiple ack frees all three.
            let last = held.pop().unwrap();
            within(
                "ack multiple",
                last.acker.ack(BasicAckOptions { multiple: true }),
            )
            .await
            .unwrap();
            for i in 4..7 {
                let d = next_delivery(&mut c, "after multiple ack").await;
                assert_eq!(d.data, format!("{i}").as_bytes());
            }
            let _ = conn.close(200, "bye").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_consumer_locks_out_other_consumers_with_403() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect_on_shard(&b, 0).await;
        let other = connect_on_shard(&b, 1).await;
        let ch = open_channel(&conn).await;
        let q = declare_queue(&ch, "exclusive-consumer").await;
        let excl = BasicConsumeOptions {
            exclusive: true,
            ..Default::default()
        };
        let _owner = within(
            "exclusive consume",
            ch.basic_consume(&q, "owner", excl, FieldTable::default()),
        )
        .await
        .unwrap();
        let och = open_channel(&other).await;
        let r = within(
            "second consume",
            och.basic_consume(
                &q,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_code(
            r.map(|_| ()),
            403,
            "consume on a queue with an exclusive consumer",
        );
        assert_connection_usable(&other).await;
        // Once the exclusive consumer is gone, others may consume.
        within(
            "cancel",
            ch.basic_cancel("owner", BasicCancelOptions::default()),
        )
        .await
        .unwrap();
        let och = open_channel(&other).await;
        let _second = within(
            "consume after cancel",
            och.basic_consume(
                &q,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("consume after the exclusive consumer left");
        // And an exclusive consume fails while another consumer exists.
        let ch = open_channel(&conn).await;
        let r = within(
            "exclusive consume",
            ch.basic_consume(&q, "", excl, FieldTable::default()),
        )
        .await;
        assert_code(
            r.map(|_| ()),
            403,
            "exclusive consume on a queue that has consumers",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_recover_redelivers_unacked_messages() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let q = declare_queue(&ch, "recovered").await;
        let mut c = within(
            "consume",
            ch.basic_consume(
                &q,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        for i in 0..3 {
            publish(&ch, "", &q, format!("{i}").as_bytes()).await;
        }
        for _ in 0..3 {
            assert!(!next_delivery(&mut c, "first").await.redelivered);
        }
        within(
            "recover",
            ch.basic_recover(BasicRecoverOptions { requeue: true }),
        )
        .await
        .unwrap();
        let mut again = Vec::new();
        for _ in 0..3 {
            let d = next_delivery(&mut c, "after recover").await;
            assert!(d.redelivered);
            again.push(String::from_utf8_lossy(&d.data).into_owned());
            within("ack", d.acker.ack(BasicAckOptions::default()))
                .await
                .unwrap();
        }
        again.sort();
        assert_eq!(again, ["0", "1", "2"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ack_consumer_receives_everything_and_nothing_is_requeued() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let pconn = connect_on_shard(&b, 0).await;
        let cconn = connect_on_shard(&b, 1).await;
        let pch = open_channel(&pconn).await;
        let q = queue_on_shard("autoack", 1, shards);
        declare_queue(&pch, &q).await;
        let cch = open_channel(&cconn).await;
        let opts = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let mut c = within(
            "consume",
            cch.basic_consume(&q, "", opts, FieldTable::default()),
        )
        .await
        .unwrap();
        const N: usize = 5000;
        for i in 0..N {
            publish(&pch, "", &q, format!("{i}").as_bytes()).await;
        }
        for i in 0..N {
            let d = next_delivery(&mut c, "no-ack delivery").await;
            assert_eq!(d.data, format!("{i}").as_bytes());
        }
        let _ = cconn.close(200, "bye").await;
        assert_eq!(
            ready_count(&pconn, &q).await,
            0,
            "no-ack deliveries are settled on send"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_small_and_multi_frame_bodies_round_trip_intact_across_shards() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let pconn = connect_on_shard(&b, 0).await;
        let cconn = connect_on_shard(&b, 1).await;
        let pch = confirm_channel(&pconn).await;
        let q = queue_on_shard("sizes", 1, shards);
        declare_queue(&pch, &q).await;
        let cch = open_channel(&cconn).await;
        let mut c = within(
            "consume",
            cch.basic_consume(
                &q,
                "",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        // Around the 128 KiB frame size and well past it.
        let sizes = [
            0,
            1,
            4088,
            131_063,
            131_064,
            131_065,
            131_072,
            400_000,
            5 * 1024 * 1024 + 3,
        ];
        for (n, &size) in sizes.iter().enumerate() {
            let body: Vec<u8> = (0..size).map(|i| ((i * 31 + n) % 251) as u8).collect();
            let conf = publish(&pch, "", &q, &body).await;
            within("confirm", conf).await.expect("confirm");
            let d = next_delivery(&mut c, &format!("body of {size} bytes")).await;
            assert_eq!(d.data.len(), size, "body length");
            assert!(d.data == body, "body of {size} bytes corrupted");
            within("ack", d.acker.ack(BasicAckOptions::default()))
                .await
                .unwrap();
        }
    }
}

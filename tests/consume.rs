//! Consuming: publish/consume/ack round trips, prefetch, basic.get,
//! nack/reject and requeueing, acknowledgement errors.

mod common;
mod mgmt;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_consume_ack_round_trip_preserves_order_body_and_properties() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let q = declare_queue(&ch, "round-trip").await;
        let mut consumer = within(
            "basic.consume",
            ch.basic_consume(
                &q,
                "c1",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("basic.consume");

        let mut headers = FieldTable::default();
        headers.insert("x-test".into(), AMQPValue::LongString("yes".into()));
        for i in 0..100u32 {
            let props = BasicProperties::default()
                .with_content_type("text/plain".into())
                .with_message_id(format!("id-{i}").into())
                .with_headers(headers.clone());
            publish_with(&ch, "", &q, format!("msg-{i}").as_bytes(), props).await;
        }
        for i in 0..100u32 {
            let d = next_delivery(&mut consumer, "round-trip delivery").await;
            assert_eq!(d.data, format!("msg-{i}").as_bytes(), "order and body");
            assert!(!d.redelivered);
            assert_eq!(d.exchange.as_str(), "");
            assert_eq!(d.routing_key.as_str(), q);
            assert_eq!(
                d.properties.content_type().as_ref().map(|s| s.as_str()),
                Some("text/plain")
            );
            assert_eq!(
                d.properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.as_str().to_string()),
                Some(format!("id-{i}"))
            );
            let h = d.properties.headers().as_ref().expect("headers survive");
            assert_eq!(
                h.inner().get("x-test"),
                Some(&AMQPValue::LongString("yes".into()))
            );
            within("ack", d.acker.ack(BasicAckOptions::default()))
                .await
                .expect("ack");
        }
        // Everything acked: nothing comes back when the consumer goes away.
        within(
            "cancel",
            ch.basic_cancel("c1", BasicCancelOptions::default()),
        )
        .await
        .expect("cancel");
        within("close", ch.close(200, "done"))
            .await
            .expect("channel.close");
        assert_eq!(ready_count(&conn, &q).await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_deliveries_are_requeued_as_redelivered_when_the_channel_closes() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect_on_shard(&b, 0).await;
        let ch = open_channel(&conn).await;
        // The queue on this connection's shard and on the other one.
        for home in 0..shards {
            let q = queue_on_shard("requeue-on-close", home, shards);
            declare_queue(&ch, &q).await;
            for round in 0..20 {
                let cch = open_channel(&conn).await;
                let mut consumer = within(
                    "basic.consume",
                    cch.basic_consume(
                        &q,
                        "",
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    ),
                )
                .await
                .unwrap();
                for i in 0..5 {
                    publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
                }
                for _ in 0..5 {
                    next_delivery(&mut consumer, "first delivery").await;
                }
                within("close consumer channel", cch.close(200, "bye"))
                    .await
                    .unwrap();
                // Once close-ok is in, the messages are back in the queue.
                for i in 0..5 {
                    let got = within("basic.get", ch.basic_get(&q, BasicGetOptions { no_ack: true }))
                        .await
                        .unwrap()
                        .unwrap_or_else(|| {
                            panic!("home {home}, round {round}: message {i} should have been requeued by channel.close-ok")
                        });
                    assert_eq!(
                        got.delivery.data,
                        format!("m{i}").as_bytes(),
                        "requeued in original order"
                    );
                    assert!(
                        got.delivery.redelivered,
                        "requeued message must be flagged redelivered"
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queue_with_prefetch_one_alternates_between_consumers() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let pch = open_channel(&conn).await;
        let q = declare_queue(&pch, "work").await;
        // One consumer on this connection, one on another connection.
        let cha = open_channel(&conn).await;
        let conn2 = connect(&b).await;
        let chb = open_channel(&conn2).await;
        for ch in [&cha, &chb] {
            within("basic.qos", ch.basic_qos(1, BasicQosOptions::default()))
                .await
                .unwrap();
        }
        let mut a = within(
            "consume a",
            cha.basic_consume(
                &q,
                "a",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        let mut bc = within(
            "consume b",
            chb.basic_consume(
                &q,
                "b",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        const N: usize = 10;
        for i in 0..N {
            publish(&pch, "", &q, format!("{i}").as_bytes()).await;
        }
        let mut seen = vec![0u32; N];
        let mut da = next_delivery(&mut a, "a's first").await;
        let mut db = next_delivery(&mut bc, "b's first").await;
        // Both consumers hold one unacked message: the other 8 stay ready.
        assert_eq!(
            ready_count(&conn, &q).await,
            (N - 2) as u32,
            "prefetch 1 must hold back the rest"
        );
        assert_no_delivery(
            &mut a,
            Duration::from_millis(200),
            "a is at its prefetch limit",
        )
        .await;
        let (mut na, mut nb) = (0, 0);
        loop {
            seen[String::from_utf8_lossy(&da.data).parse::<usize>().unwrap()] += 1;
            na += 1;
            within("ack a", da.acker.ack(BasicAckOptions::default()))
                .await
                .unwrap();
            seen[String::from_utf8_lossy(&db.data).parse::<usize>().unwrap()] += 1;
            nb += 1;
            within("ack b", db.acker.ack(BasicAckOptions::default()))
                .await
                .unwrap();
            if na + nb == N {
                break;
            }
            da = next_delivery(&mut a, "a's next").await;
            db = next_delivery(&mut bc, "b's next").await;
        }
        assert_eq!(seen, vec![1; N], "every message delivered exactly once");
        assert_eq!(
            (na, nb),
            (N / 2, N / 2),
            "acking in lockstep splits the work evenly"
        );
        assert_no_delivery(&mut a, Duration::from_millis(100), "queue drained").await;
        assert_eq!(ready_count(&conn, &q).await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_get_returns_messages_with_remaining_count_then_get_empty() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let q = declare_queue(&ch, "getter").await;
        let empty = within("get on empty", ch.basic_get(&q, BasicGetOptions::default()))
            .await
            .unwrap();
        assert!(
            empty.is_none(),
            "basic.get on an empty queue must answer get-empty"
        );
        for i in 0..3 {
            publish(&ch, "", &q, format!("g{i}").as_bytes()).await;
        }
        for i in 0..3u32 {
            let got = within("basic.get", ch.basic_get(&q, BasicGetOptions::default()))
                .await
                .unwrap()
                .expect("a message");
            assert_eq!(got.delivery.data, format!("g{i}").as_bytes());
            assert_eq!(
                got.message_count,
                2 - i,
                "get-ok message-count is the number left"
            );
            assert!(!got.delivery.redelivered);
            within("ack", got.delivery.acker.ack(BasicAckOptions::default()))
                .await
                .unwrap();
        }
        let empty = within(
            "get on drained",
            ch.basic_get(&q, BasicGetOptions::default()),
        )
        .await
        .unwrap();
        assert!(empty.is_none());
        // Acked gets are gone for good, even after the channel closes.
        within("close", ch.close(200, "bye")).await.unwrap();
        assert_eq!(ready_count(&conn, &q).await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_and_reject_with_requeue_redeliver_with_redelivered_flag() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let q = declare_queue(&ch, "nacked").await;
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
        publish(&ch, "", &q, b"bounce").await;
        let d = next_delivery(&mut c, "first").await;
        assert!(!d.redelivered);
        within(
            "nack",
            d.acker.nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            }),
        )
        .await
        .unwrap();
        let d = next_delivery(&mut c, "after nack").await;
        assert_eq!(d.data, b"bounce");
        assert!(d.redelivered, "nack(requeue) must set redelivered");
        within(
            "reject",
            d.acker.reject(BasicRejectOptions { requeue: true }),
        )
        .await
        .unwrap();
        let d = next_delivery(&mut c, "after reject").await;
        assert_eq!(d.data, b"bounce");
        assert!(d.redelivered, "reject(requeue) must set redelivered");
        within("ack", d.acker.ack(BasicAckOptions::default()))
            .await
            .unwrap();
        assert_no_delivery(&mut c, Duration::from_millis(200), "acked").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_multiple_requeues_every_earlier_delivery() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let q = declare_queue(&ch, "nack-multi").await;
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
        for i in 0..5 {
            publish(&ch, "", &q, format!("{i}").as_bytes()).await;
        }
        let mut last = None;
        for _ in 0..5 {
            last = Some(next_delivery(&mut c, "first pass").await);
        }
        let last = last.unwrap();
        within(
            "nack multiple",
            last.acker.nack(BasicNackOptions {
                requeue: true,
                multiple: true,
            }),
        )
        .await
        .unwrap();
        let mut again = Vec::new();
        for _ in 0..5 {
            let d = next_delivery(&mut c, "second pass").await;
            assert!(d.redelivered);
            again.push(String::from_utf8_lossy(&d.data).into_owned());
            within("ack", d.acker.ack(BasicAckOptions::default()))
                .await
                .unwrap();
        }
        again.sort();
        assert_eq!(again, vec!["0", "1", "2", "3", "4"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_without_requeue_discards_the_message() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let q = declare_queue(&ch, "dropped").await;
        publish(&ch, "", &q, b"drop-me").await;
        publish(&ch, "", &q, b"keep-me").await;
        let got = within("get", ch.basic_get(&q, BasicGetOptions::default()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.delivery.data, b"drop-me");
        within(
            "reject",
            got.delivery
                .acker
                .reject(BasicRejectOptions { requeue: false }),
        )
        .await
        .unwrap();
        let got = within("get", ch.basic_get(&q, BasicGetOptions::default()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.delivery.data, b"keep-me");
        within(
            "nack",
            got.delivery.acker.nack(BasicNackOptions {
                requeue: false,
                multiple: false,
            }),
        )
        .await
        .unwrap();
        let none = within("get", ch.basic_get(&q, BasicGetOptions::default()))
            .await
            .unwrap();
        assert!(
            none.is_none(),
            "rejected/nacked without requeue must be discarded"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_consumer_gets_no_more_messages_and_they_stay_ready() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let q = declare_queue(&ch, "cancelled").await;
        let mut c = within(
            "consume",
            ch.basic_consume(
                &q,
                "ctag",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        publish(&ch, "", &q, b"before").await;
        let d = next_delivery(&mut c, "before cancel").await;
        within("ack", d.acker.ack(BasicAckOptions::default()))
            .await
            .unwrap();
        within(
            "cancel",
            ch.basic_cancel("ctag", BasicCancelOptions::default()),
        )
        .await
        .unwrap();
        for i in 0..3 {
            publish(&ch, "", &q, format!("after{i}").as_bytes()).await;
        }
        assert_no_delivery(&mut c, Duration::from_millis(200), "cancelled consumer").await;
        assert_eq!(ready_count(&conn, &q).await, 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_of_unknown_delivery_tag_closes_channel_with_406_and_connection_survives() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        let mut errors = channel_errors(&ch);
        within("bogus ack", ch.basic_ack(4242, BasicAckOptions::default()))
            .await
            .unwrap();
        expect_channel_error(&mut errors, 406, "ack of a never-delivered tag").await;
        assert_connection_usable(&conn).await;

        // Acking the same tag twice is also an unknown tag.
        let ch = open_channel(&conn).await;
        let mut errors = channel_errors(&ch);
        let q = declare_queue(&ch, "double-ack").await;
        publish(&ch, "", &q, b"x").await;
        let got = within("get", ch.basic_get(&q, BasicGetOptions::default()))
            .await
            .unwrap()
            .unwrap();
        let tag = got.delivery.delivery_tag;
        within("ack", ch.basic_ack(tag, BasicAckOptions::default()))
            .await
            .unwrap();
        within("second ack", ch.basic_ack(tag, BasicAckOptions::default()))
            .await
            .unwrap();
        expect_channel_error(&mut errors, 406, "double ack").await;
        assert_connection_usable(&conn).await;
        // The first ack counted: the message is gone.
        assert_eq!(ready_count(&conn, &q).await, 0);
    }
}

/// Single active consumer with the queue on one shard and its consumers on
/// both: only the first receives, the API shows who is active, and when
/// its channel closes the second takes over, its unacked message first.
async fn single_active_consumer_fails_over_across_shards(shards: usize) {
    let b = start_broker(shards).await;
    let q = queue_on_shard("sac", 0, shards);
    let conn_a = connect_on_shard(&b, 1).await;
    let conn_b = connect_on_shard(&b, 0).await;
    let ch = open_channel(&conn_b).await;
    let mut args = FieldTable::default();
    args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
    within(
        "declare",
        ch.queue_declare(&q, QueueDeclareOptions::default(), args),
    )
    .await
    .unwrap();
    let consume = |ch: lapin::Channel, tag: &'static str| {
        let q = q.clone();
        async move {
            within("qos", ch.basic_qos(1, BasicQosOptions::default()))
                .await
                .unwrap();
            within(
                "consume",
                ch.basic_consume(
                    &q,
                    tag,
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .unwrap()
        }
    };
    let ch_a = open_channel(&conn_a).await;
    let mut a = consume(ch_a.clone(), "a").await;
    let mut b_consumer = consume(open_channel(&conn_b).await, "b").await;
    for i in 0..3u8 {
        publish(&ch, "", &q, &[i]).await;
    }
    let first = next_delivery(&mut a, "first at a").await;
    assert_eq!(first.data, [0]);
    assert_no_delivery(&mut b_consumer, Duration::from_millis(300), "b waits").await;
    let port = b.mgmt_port;
    let qname = q.clone();
    let (queue, consumers) = tokio::task::spawn_blocking(move || {
        let api = mgmt::Api::new(port);
        (
            api.get_ok(&format!("/api/queues/%2F/{qname}")),
            api.get_ok("/api/consumers"),
        )
    })
    .await
    .unwrap();
    assert_eq!(queue["single_active_consumer_tag"], "a");
    let status = |tag: &str| {
        consumers
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["consumer_tag"] == tag)
            .map(|c| (c["active"].clone(), c["activity_status"].clone()))
            .unwrap()
    };
    assert_eq!(status("a"), (true.into(), "single_active".into()));
    assert_eq!(status("b"), (false.into(), "waiting".into()));
    within("close a", ch_a.close(200, "bye")).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = next_delivery(&mut b_consumer, "failover").await;
        got.push((d.data[0], d.redelivered));
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    assert_eq!(got, [(0, true), (1, false), (2, false)]);
}

shard_tests!(single_active_consumer_fails_over_across_shards);

/// Consumer delivery timeout: with `--consumer-timeout 1000`, a consumer
/// (on another shard than its queue) that never acks has its channel
/// closed with RabbitMQ's 406 text after about a second, its message is
/// requeued as redelivered, and the connection stays usable; a queue's
/// `x-consumer-timeout` overrides the node's value, for basic.get too.
async fn an_unacked_delivery_past_its_timeout_closes_the_channel(shards: usize) {
    let b = Broker::start_with(shards, &["--consumer-timeout", "1000"]);
    let q = queue_on_shard("ack-timeout", 0, shards);
    let conn = connect_on_shard(&b, 1).await;
    let ch = open_channel(&conn).await;
    declare_queue(&ch, &q).await;
    publish(&ch, "", &q, b"held").await;
    let mut errors = channel_errors(&ch);
    let mut c = within(
        "consume",
        ch.basic_consume(
            &q,
            "t",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let _held = next_delivery(&mut c, "the delivery").await;
    let e = within_for(Duration::from_secs(10), "the timeout", errors.recv())
        .await
        .expect("channel closed");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1000),
        "fired early: {waited:?}"
    );
    assert_reply(
        &e,
        406,
        "delivery acknowledgement on channel 1 timed out. Timeout value used: 1000 ms. This timeout value can be configured, see consumers doc guide to learn more",
    );
    assert_connection_usable(&conn).await;
    let ch2 = open_channel(&conn).await;
    let got = within("get", ch2.basic_get(&q, BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
        .expect("requeued");
    assert!(got.delivery.redelivered);
    // A queue's own timeout wins over the node's: x-consumer-timeout 0 =
    // no timeout, for basic.get as well.
    let q2 = queue_on_shard("no-ack-timeout", 1, shards);
    let mut args = FieldTable::default();
    args.insert("x-consumer-timeout".into(), AMQPValue::LongInt(0));
    within(
        "declare",
        ch2.queue_declare(&q2, QueueDeclareOptions::default(), args),
    )
    .await
    .unwrap();
    publish(&ch2, "", &q2, b"kept").await;
    let mut errors2 = channel_errors(&ch2);
    let _kept = within("get", ch2.basic_get(&q2, BasicGetOptions { no_ack: false }))
        .await
        .unwrap()
        .expect("a message");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        errors2.try_recv().is_err(),
        "no timeout for x-consumer-timeout 0"
    );
}

shard_tests!(an_unacked_delivery_past_its_timeout_closes_the_channel);

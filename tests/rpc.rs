//! RPC over lapin: direct reply-to (`amq.rabbitmq.reply-to`) with the
//! requester and the responder on different shards, and sender-selected
//! distribution (`CC`/`BCC`) to queues homed on both shards. (RabbitMQ's
//! exact answers are checked by the pika suite:
//! tests/python/test_direct_reply_to.py, test_sender_routes.py.)

mod common;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldArray, FieldTable, ShortString};
use lapin::BasicProperties;

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// 20 request/reply round trips, the requester on one shard and the
/// responder on the other (with 1 shard: the same one); each reply arrives
/// on the requester's reply consumer with its correlation id, in order.
async fn direct_replies_cross_shards_in_order(shards: usize) {
    let b = start_broker(shards).await;
    let req_conn = connect_on_shard(&b, 0).await;
    let srv_conn = connect_on_shard(&b, 1).await;
    let req = open_channel(&req_conn).await;
    let srv = open_channel(&srv_conn).await;
    let q = declare_queue(&srv, "rpc-requests").await;
    let mut replies = within(
        "consume reply-to",
        req.basic_consume(
            REPLY_TO,
            "replies",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume on amq.rabbitmq.reply-to");
    let mut requests = within(
        "consume requests",
        srv.basic_consume(
            &q,
            "server",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume");
    for i in 0..20u32 {
        let props = BasicProperties::default()
            .with_reply_to(ShortString::from(REPLY_TO))
            .with_correlation_id(ShortString::from(i.to_string()));
        publish_with(&req, "", &q, format!("req-{i}").as_bytes(), props).await;
        let r = next_delivery(&mut requests, "request").await;
        let address = r
            .properties
            .reply_to()
            .clone()
            .expect("reply_to")
            .to_string();
        assert!(
            address.starts_with("amq.rabbitmq.reply-to."),
            "reply_to rewritten to an address, got {address}"
        );
        r.ack(BasicAckOptions::default()).await.expect("ack");
        let corr = r
            .properties
            .correlation_id()
            .clone()
            .expect("correlation id");
        publish_with(
            &srv,
            "",
            &address,
            format!("reply-{i}").as_bytes(),
            BasicProperties::default().with_correlation_id(corr),
        )
        .await;
        let d = next_delivery(&mut replies, "direct reply").await;
        assert_eq!(d.data, format!("reply-{i}").as_bytes());
        assert_eq!(
            d.properties
                .correlation_id()
                .as_ref()
                .map(|c| c.to_string()),
            Some(i.to_string())
        );
        assert_eq!(d.routing_key.as_str(), address);
    }
}

/// A publish with `CC` and `BCC` reaches the queues their keys name on
/// both shards, each once, and `BCC` is gone from what they deliver.
async fn cc_and_bcc_reach_queues_on_every_shard(shards: usize) {
    let b = start_broker(shards).await;
    let conn = connect(&b).await;
    let ch = confirm_channel(&conn).await;
    let a = queue_on_shard("cc-a", 0, shards);
    let c = queue_on_shard("cc-c", 1, shards);
    declare_queue(&ch, &a).await;
    declare_queue(&ch, &c).await;
    let keys =
        |k: &str| AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(k.into())]));
    let mut h = FieldTable::default();
    h.insert("CC".into(), keys(&a));
    h.insert("BCC".into(), keys(&c));
    let confirm = publish_with(
        &ch,
        "",
        &a,
        b"m",
        BasicProperties::default().with_headers(h),
    )
    .await;
    within("confirm", confirm).await.expect("confirm");
    for q in [&a, &c] {
        let got = within(
            "basic.get",
            ch.basic_get(q, BasicGetOptions { no_ack: true }),
        )
        .await
        .expect("basic.get")
        .unwrap_or_else(|| panic!("{q} got the message"));
        assert_eq!(got.delivery.data, b"m");
        let headers = got
            .delivery
            .properties
            .headers()
            .clone()
            .unwrap_or_default();
        assert!(headers.inner().contains_key("CC"));
        assert!(!headers.inner().contains_key("BCC"));
        assert_eq!(ready_count(&conn, q).await, 0, "{q} got it once");
    }
}

shard_tests!(
    direct_replies_cross_shards_in_order,
    cc_and_bcc_reach_queues_on_every_shard
);

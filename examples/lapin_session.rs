//! A lapin client session touching most of the protocol, for recording
//! fuzz seeds (`scripts/capture_session.py`): declares with arguments,
//! bindings, confirms, publishes with properties and headers, get, consume,
//! ack/nack/reject, qos, tx, unbind, purge, delete, close.
//!
//!     cargo run --release --example lapin_session -- amqp://guest:guest@127.0.0.1:5699/%2f

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

#[tokio::main]
async fn main() -> Result<(), lapin::Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let mut xargs = FieldTable::default();
    xargs.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString("ae".into()),
    );
    ch.exchange_declare(
        "seed.topic",
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await?;
    ch.exchange_declare(
        "seed.headers",
        ExchangeKind::Headers,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    let mut qargs = FieldTable::default();
    qargs.insert("x-custom".into(), AMQPValue::LongLongInt(1000));
    qargs.insert("x-note".into(), AMQPValue::LongString("seed".into()));
    ch.queue_declare("seed.q", QueueDeclareOptions::default(), qargs)
        .await?;
    let tmp = ch
        .queue_declare(
            "",
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    ch.queue_bind(
        "seed.q",
        "seed.topic",
        "a.*.c",
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let mut hargs = FieldTable::default();
    hargs.insert("x-match".into(), AMQPValue::LongString("any".into()));
    hargs.insert("k".into(), AMQPValue::LongString("v".into()));
    ch.queue_bind(
        tmp.name().as_str(),
        "seed.headers",
        "",
        QueueBindOptions::default(),
        hargs,
    )
    .await?;
    ch.exchange_bind(
        "seed.headers",
        "seed.topic",
        "#",
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut headers = FieldTable::default();
    headers.insert("k".into(), AMQPValue::LongString("v".into()));
    headers.insert("n".into(), AMQPValue::LongInt(-5));
    headers.insert("f".into(), AMQPValue::Double(1.5));
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(3)
        .with_correlation_id("c1".into())
        .with_reply_to("r".into())
        .with_expiration("60000".into())
        .with_message_id("m1".into())
        .with_timestamp(1_700_000_000)
        .with_type("t".into())
        .with_user_id("guest".into())
        .with_app_id("seed".into());
    for (i, key) in ["a.b.c", "a.x.c", "z"].iter().enumerate() {
        let body = vec![b'x'; 10 + i * 5000];
        ch.basic_publish(
            "seed.topic",
            key,
            BasicPublishOptions {
                mandatory: i == 2,
                ..Default::default()
            },
            &body,
            props.clone(),
        )
        .await?
        .await?;
    }
    if let Some(m) = ch.basic_get("seed.q", BasicGetOptions::default()).await? {
        m.delivery.ack(BasicAckOptions::default()).await?;
    }
    ch.basic_qos(2, BasicQosOptions::default()).await?;
    let consumer = ch
        .basic_consume(
            tmp.name().as_str(),
            "seed-consumer",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    ch.basic_publish(
        "",
        tmp.name().as_str(),
        BasicPublishOptions::default(),
        b"direct",
        BasicProperties::default(),
    )
    .await?
    .await?;
    ch.basic_publish(
        "",
        tmp.name().as_str(),
        BasicPublishOptions::default(),
        b"direct2",
        BasicProperties::default(),
    )
    .await?
    .await?;
    ch.basic_cancel(consumer.tag().as_str(), BasicCancelOptions::default())
        .await?;
    if let Some(m) = ch
        .basic_get(tmp.name().as_str(), BasicGetOptions::default())
        .await?
    {
        m.delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await?;
    }
    if let Some(m) = ch
        .basic_get(tmp.name().as_str(), BasicGetOptions::default())
        .await?
    {
        m.delivery
            .reject(BasicRejectOptions { requeue: false })
            .await?;
    }
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await?;
    let tx = conn.create_channel().await?;
    tx.tx_select().await?;
    tx.basic_publish(
        "",
        "seed.q",
        BasicPublishOptions::default(),
        b"in tx",
        BasicProperties::default(),
    )
    .await?;
    tx.tx_commit().await?;
    tx.basic_publish(
        "",
        "seed.q",
        BasicPublishOptions::default(),
        b"rolled back",
        BasicProperties::default(),
    )
    .await?;
    tx.tx_rollback().await?;
    tx.close(200, "bye").await?;
    ch.exchange_unbind(
        "seed.headers",
        "seed.topic",
        "#",
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    ch.queue_unbind("seed.q", "seed.topic", "a.*.c", FieldTable::default())
        .await?;
    ch.queue_purge("seed.q", QueuePurgeOptions::default())
        .await?;
    ch.queue_delete("seed.q", QueueDeleteOptions::default())
        .await?;
    ch.exchange_delete("seed.headers", ExchangeDeleteOptions::default())
        .await?;
    ch.exchange_delete("seed.topic", ExchangeDeleteOptions::default())
        .await?;
    ch.close(200, "bye").await?;
    conn.close(200, "bye").await?;
    Ok(())
}

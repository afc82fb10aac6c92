//! Routing: direct, fanout, topic, headers, exchange-to-exchange bindings,
//! and mandatory returns.

mod common;

use common::*;
use lapin::options::*;
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};

async fn exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    within(
        "exchange.declare",
        ch.exchange_declare(
            name,
            kind,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("exchange.declare {name}: {e}"));
}

async fn bind(ch: &Channel, q: &str, ex: &str, key: &str, args: FieldTable) {
    within(
        "queue.bind",
        ch.queue_bind(q, ex, key, QueueBindOptions::default(), args),
    )
    .await
    .unwrap_or_else(|e| panic!("queue.bind {q} to {ex} with {key}: {e}"));
}

/// Publish on a confirm channel and wait for the ack (so routing is done).
async fn send(ch: &Channel, ex: &str, key: &str, body: &str, props: BasicProperties) {
    let c = publish_with(ch, ex, key, body.as_bytes(), props).await;
    let c = within("confirm", c).await.expect("confirm");
    assert!(
        matches!(c, Confirmation::Ack(None)),
        "expected plain ack, got {c:?}"
    );
}

/// Every message currently in `q`, in order (auto-acked gets).
async fn drain(ch: &Channel, q: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = within(
        "basic.get",
        ch.basic_get(q, BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("basic.get")
    {
        out.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_exchange_routes_by_exact_routing_key() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        exchange(&ch, "dx", ExchangeKind::Direct).await;
        for q in ["qa", "qb", "qab"] {
            declare_queue(&ch, q).await;
        }
        bind(&ch, "qa", "dx", "a", FieldTable::default()).await;
        bind(&ch, "qb", "dx", "b", FieldTable::default()).await;
        bind(&ch, "qab", "dx", "a", FieldTable::default()).await;
        bind(&ch, "qab", "dx", "b", FieldTable::default()).await;
        // Binding twice with the same key is idempotent.
        bind(&ch, "qab", "dx", "b", FieldTable::default()).await;
        for k in ["a", "b", "c", "A", "a.b"] {
            send(&ch, "dx", k, k, BasicProperties::default()).await;
        }
        assert_eq!(drain(&ch, "qa").await, ["a"]);
        assert_eq!(drain(&ch, "qb").await, ["b"]);
        assert_eq!(drain(&ch, "qab").await, ["a", "b"]);
        // The default exchange routes by queue name, and amq.direct exists.
        send(&ch, "", "qa", "default", BasicProperties::default()).await;
        bind(&ch, "qb", "amq.direct", "k", FieldTable::default()).await;
        send(&ch, "amq.direct", "k", "amq", BasicProperties::default()).await;
        assert_eq!(drain(&ch, "qa").await, ["default"]);
        assert_eq!(drain(&ch, "qb").await, ["amq"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_exchange_copies_to_every_bound_queue_regardless_of_key() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        exchange(&ch, "fx", ExchangeKind::Fanout).await;
        let queues: Vec<String> = (0..6).map(|i| format!("fan-{i}")).collect();
        for q in &queues {
            declare_queue(&ch, q).await;
            bind(&ch, q, "fx", "ignored", FieldTable::default()).await;
        }
        declare_queue(&ch, "unbound").await;
        send(&ch, "fx", "", "one", BasicProperties::default()).await;
        send(
            &ch,
            "fx",
            "anything.at.all",
            "two",
            BasicProperties::default(),
        )
        .await;
        for q in &queues {
            assert_eq!(drain(&ch, q).await, ["one", "two"], "queue {q}");
        }
        assert!(drain(&ch, "unbound").await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_star_matches_exactly_one_word() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        exchange(&ch, "tx", ExchangeKind::Topic).await;
        declare_queue(&ch, "star").await;
        bind(&ch, "star", "tx", "stock.*.nyse", FieldTable::default()).await;
        declare_queue(&ch, "lead").await;
        bind(&ch, "lead", "tx", "*.error", FieldTable::default()).await;
        for k in [
            "stock.ibm.nyse",
            "stock.nyse",
            "stock.ibm.x.nyse",
            "stock..nyse",
            "stocks.ibm.nyse",
            "app.error",
            "error",
            "a.b.error",
            ".error",
        ] {
            send(&ch, "tx", k, k, BasicProperties::default()).await;
        }
        // `*` matches one word, and an empty word is still a word.
        assert_eq!(drain(&ch, "star").await, ["stock.ibm.nyse", "stock..nyse"]);
        assert_eq!(drain(&ch, "lead").await, ["app.error", ".error"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_hash_matches_zero_or_more_words() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        exchange(&ch, "tx", ExchangeKind::Topic).await;
        for (q, key) in [
            ("tail", "stock.#"),
            ("head", "#.nyse"),
            ("mid", "a.#.z"),
            ("all", "#"),
            ("mixed", "*.#.end"),
        ] {
            declare_queue(&ch, q).await;
            bind(&ch, q, "tx", key, FieldTable::default()).await;
        }
        let keys = [
            "stock",
            "stock.ibm",
            "stock.ibm.nyse",
            "stocks.ibm",
            "nyse",
            "a.z",
            "a.b.c.z",
            "a.z.q",
            "x.end",
            "end",
            "x.y.end",
            "",
        ];
        for k in keys {
            send(&ch, "tx", k, k, BasicProperties::default()).await;
        }
        assert_eq!(
            drain(&ch, "tail").await,
            ["stock", "stock.ibm", "stock.ibm.nyse"]
        );
        assert_eq!(drain(&ch, "head").await, ["stock.ibm.nyse", "nyse"]);
        assert_eq!(drain(&ch, "mid").await, ["a.z", "a.b.c.z"]);
        assert_eq!(drain(&ch, "all").await, keys);
        assert_eq!(drain(&ch, "mixed").await, ["x.end", "x.y.end"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_message_matching_several_bindings_of_one_queue_is_delivered_once() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        exchange(&ch, "tx", ExchangeKind::Topic).await;
        declare_queue(&ch, "multi").await;
        for key in ["a.*", "*.b", "#", "a.b"] {
            bind(&ch, "multi", "tx", key, FieldTable::default()).await;
        }
        send(&ch, "tx", "a.b", "once", BasicProperties::default()).await;
        assert_eq!(drain(&ch, "multi").await, ["once"]);
    }
}

fn table(pairs: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), AMQPValue::LongString((*v).into()));
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_exchange_x_match_all_and_any() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        exchange(&ch, "hx", ExchangeKind::Headers).await;
        for q in ["all", "any", "default"] {
            declare_queue(&ch, q).await;
        }
        let f = [("format", "pdf"), ("type", "report")];
        let mut all = table(&f);
        all.insert("x-match".into(), AMQPValue::LongString("all".into()));
        let mut any = table(&f);
        any.insert("x-match".into(), AMQPValue::LongString("any".into()));
        bind(&ch, "all", "hx", "", all).await;
        bind(&ch, "any", "hx", "", any).await;
        // Without x-match the default is "all".
        bind(&ch, "default", "hx", "", table(&f)).await;

        let msgs: [(&str, Option<FieldTable>); 6] = [
            (
                "both",
                Some(table(&[("format", "pdf"), ("type", "report")])),
            ),
            (
                "both+extra",
                Some(table(&[("format", "pdf"), ("type", "report"), ("x", "y")])),
            ),
            ("format-only", Some(table(&[("format", "pdf")]))),
            (
                "wrong-value",
                Some(table(&[("format", "zip"), ("type", "log")])),
            ),
            ("type-only", Some(table(&[("type", "report")]))),
            ("no-headers", None),
        ];
        for (body, headers) in msgs {
            let mut props = BasicProperties::default();
            if let Some(h) = headers {
                props = props.with_headers(h);
            }
            // The routing key is irrelevant to a headers exchange.
            send(&ch, "hx", "some-key", body, props).await;
        }
        assert_eq!(drain(&ch, "all").await, ["both", "both+extra"]);
        assert_eq!(drain(&ch, "default").await, ["both", "both+extra"]);
        assert_eq!(
            drain(&ch, "any").await,
            ["both", "both+extra", "format-only", "type-only"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_to_exchange_binding_forwards_matching_messages() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        exchange(&ch, "src", ExchangeKind::Topic).await;
        exchange(&ch, "mid", ExchangeKind::Fanout).await;
        exchange(&ch, "dst", ExchangeKind::Direct).await;
        within(
            "exchange.bind",
            ch.exchange_bind(
                "mid",
                "src",
                "a.#",
                ExchangeBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("exchange.bind src->mid");
        within(
            "exchange.bind",
            ch.exchange_bind(
                "dst",
                "mid",
                "",
                ExchangeBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("exchange.bind mid->dst");
        declare_queue(&ch, "from-mid").await;
        bind(&ch, "from-mid", "mid", "", FieldTable::default()).await;
        declare_queue(&ch, "from-dst").await;
        // The routing key is preserved through the chain of exchanges.
        bind(&ch, "from-dst", "dst", "a.x", FieldTable::default()).await;
        for k in ["a.x", "a.y", "b.x"] {
            send(&ch, "src", k, k, BasicProperties::default()).await;
        }
        assert_eq!(drain(&ch, "from-mid").await, ["a.x", "a.y"]);
        assert_eq!(drain(&ch, "from-dst").await, ["a.x"]);

        // After exchange.unbind, nothing flows from src to mid.
        within(
            "exchange.unbind",
            ch.exchange_unbind(
                "mid",
                "src",
                "a.#",
                ExchangeUnbindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("exchange.unbind");
        send(
            &ch,
            "src",
            "a.x",
            "after-unbind",
            BasicProperties::default(),
        )
        .await;
        assert!(drain(&ch, "from-mid").await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_binding_cycle_delivers_once_per_queue() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        exchange(&ch, "e1", ExchangeKind::Fanout).await;
        exchange(&ch, "e2", ExchangeKind::Fanout).await;
        for (d, s) in [("e2", "e1"), ("e1", "e2")] {
            within(
                "exchange.bind",
                ch.exchange_bind(
                    d,
                    s,
                    "",
                    ExchangeBindOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .expect("exchange.bind");
        }
        declare_queue(&ch, "both").await;
        bind(&ch, "both", "e1", "", FieldTable::default()).await;
        bind(&ch, "both", "e2", "", FieldTable::default()).await;
        send(&ch, "e1", "", "m", BasicProperties::default()).await;
        assert_eq!(
            drain(&ch, "both").await,
            ["m"],
            "a cycle must neither loop nor duplicate"
        );
        assert_connection_usable(&conn).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandatory_unroutable_publish_is_returned_with_312_no_route() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        exchange(&ch, "dx", ExchangeKind::Direct).await;
        declare_queue(&ch, "bound").await;
        bind(&ch, "bound", "dx", "yes", FieldTable::default()).await;
        let mandatory = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };

        let confirm = within(
            "publish",
            ch.basic_publish(
                "dx",
                "nowhere",
                mandatory,
                b"lost",
                BasicProperties::default().with_message_id("m1".into()),
            ),
        )
        .await
        .unwrap();
        match within("confirm", confirm).await.unwrap() {
            Confirmation::Ack(Some(ret)) => {
                assert_eq!(ret.reply_code, 312, "NO_ROUTE");
                assert_eq!(ret.delivery.data, b"lost");
                assert_eq!(ret.delivery.exchange.as_str(), "dx");
                assert_eq!(ret.delivery.routing_key.as_str(), "nowhere");
                assert_eq!(
                    ret.delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|s| s.as_str()),
                    Some("m1")
                );
            }
            other => panic!("expected ack with a basic.return, got {other:?}"),
        }

        // Mandatory but routable: plain ack, delivered.
        let confirm = within(
            "publish",
            ch.basic_publish("dx", "yes", mandatory, b"ok", BasicProperties::default()),
        )
        .await
        .unwrap();
        assert_eq!(
            within("confirm", confirm).await.unwrap(),
            Confirmation::Ack(None)
        );
        assert_eq!(drain(&ch, "bound").await, ["ok"]);

        // Not mandatory and unroutable: silently dropped, still acked.
        send(&ch, "dx", "nowhere", "dropped", BasicProperties::default()).await;

        // Mandatory to the default exchange with no such queue: returned too.
        let confirm = within(
            "publish",
            ch.basic_publish(
                "",
                "no-such-queue",
                mandatory,
                b"x",
                BasicProperties::default(),
            ),
        )
        .await
        .unwrap();
        match within("confirm", confirm).await.unwrap() {
            Confirmation::Ack(Some(ret)) => assert_eq!(ret.reply_code, 312),
            other => panic!("expected ack with a basic.return, got {other:?}"),
        }
    }
}

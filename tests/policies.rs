//! Policies and operator policies over the real HTTP API, with their effect
//! checked over AMQP (lapin): applied to future and existing queues without
//! a restart, merged with operator policies and queue arguments as
//! RabbitMQ does, durable across `kill -9`, and refused with RabbitMQ
//! 3.10's texts (recorded from the reference broker).

mod common;
mod mgmt;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use mgmt::{warrenctl_ok, Api};
use serde_json::{json, Value};
use std::time::Duration;

async fn api<T: Send + 'static>(port: u16, f: impl FnOnce(Api) -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(move || f(Api::new(port)))
        .await
        .unwrap()
}

async fn wait_ready(conn: &lapin::Connection, q: &str, want: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n = ready_count(conn, q).await;
        if n == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{q}: {n} ready, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// A policy gives future queues a TTL and dead-letter exchange, limits an
/// existing queue at once, and the API shows it; an operator policy's lower
/// value wins, and a lower queue argument wins over both.
async fn policies_apply_to_new_and_existing_queues(shards: usize) {
    let b = start_broker(shards).await;
    let port = b.mgmt_port;
    let conn = connect(&b).await;
    let ch = confirm_channel(&conn).await;
    let existing = queue_on_shard("pol.existing", 1, shards);
    declare_queue(&ch, &existing).await;
    for i in 0..5u8 {
        within("confirm", publish(&ch, "", &existing, &[i]).await)
            .await
            .unwrap();
    }
    let dlq = queue_on_shard("dead", 0, shards);
    declare_queue(&ch, &dlq).await;
    let d = dlq.clone();
    api(port, move |a| {
        let body = json!({"pattern": "^pol\\.", "apply-to": "queues", "priority": 1,
            "definition": {"max-length": 2, "message-ttl": 300, "dead-letter-exchange": "",
                "dead-letter-routing-key": d}});
        a.expect("PUT", "/api/policies/%2F/limits", Some(&body), &[201]);
        a.expect("PUT", "/api/policies/%2F/limits", Some(&body), &[204]);
    })
    .await;
    // The existing queue was cut to its new limit at once, the oldest
    // dead-lettered (its messages were queued without a TTL and keep none).
    wait_ready(&conn, &existing, 2).await;
    wait_ready(&conn, &dlq, 3).await;
    // A new queue gets the policy; its own lower TTL argument wins.
    let fresh = queue_on_shard("pol.fresh", 0, shards);
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongInt(100));
    within(
        "declare",
        ch.queue_declare(&fresh, QueueDeclareOptions::default(), args),
    )
    .await
    .unwrap();
    let (f, e) = (fresh.clone(), existing.clone());
    let (q, listed) = api(port, move |a| {
        a.expect(
            "PUT",
            "/api/operator-policies/%2F/cap",
            Some(&json!({"pattern": "^pol\\.", "definition": {"max-length": 10, "message-ttl": 200}})),
            &[201],
        );
        (
            a.get_ok(&format!("/api/queues/%2F/{f}")),
            a.get_ok(&format!("/api/queues/%2F/{e}")),
        )
    })
    .await;
    assert_eq!(q["policy"], "limits");
    assert_eq!(q["operator_policy"], "cap");
    assert_eq!(
        q["effective_policy_definition"],
        json!({"max-length": 2, "message-ttl": 200, "dead-letter-exchange": "",
            "dead-letter-routing-key": dlq})
    );
    assert_eq!(listed["policy"], "limits");
    within("confirm", publish(&ch, "", &fresh, b"short").await)
        .await
        .unwrap();
    wait_ready(&conn, &dlq, 4).await;
    // Clearing the policy lifts the limit from the queues.
    api(port, |a| {
        a.expect("DELETE", "/api/policies/%2F/limits", None, &[204]);
        a.expect("DELETE", "/api/policies/%2F/limits", None, &[404]);
        a.expect("DELETE", "/api/operator-policies/%2F/cap", None, &[204]);
    })
    .await;
    for i in 0..4u8 {
        within("confirm", publish(&ch, "", &existing, &[i]).await)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        ready_count(&conn, &existing).await,
        6,
        "no limit, no TTL now"
    );
}

/// A policy's `alternate-exchange` catches unroutable messages; the
/// policy is durable across `kill -9`, and `warrenctl` sets, lists and
/// clears policies with rabbitmqctl's arguments.
async fn policies_survive_a_crash_and_warrenctl_manages_them(shards: usize) {
    let mut b = start_broker(shards).await;
    let port = b.mgmt_port;
    warrenctl_ok(
        port,
        &[
            "set_policy",
            "--apply-to",
            "exchanges",
            "--priority",
            "3",
            "ae",
            "^orders$",
            r#"{"alternate-exchange": "unrouted"}"#,
        ],
    );
    {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        for (x, kind) in [
            ("orders", lapin::ExchangeKind::Direct),
            ("unrouted", lapin::ExchangeKind::Fanout),
        ] {
            within(
                "exchange",
                ch.exchange_declare(
                    x,
                    kind,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await
            .unwrap();
        }
        declare_durable(&ch, "lost-and-found").await;
        within(
            "bind",
            ch.queue_bind(
                "lost-and-found",
                "unrouted",
                "",
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
    }
    b.restart(); // kill -9, then start on the same data directory
    let port = b.mgmt_port;
    let conn = connect(&b).await;
    let ch = confirm_channel(&conn).await;
    within("confirm", publish(&ch, "orders", "nowhere", b"m").await)
        .await
        .unwrap();
    wait_ready(&conn, "lost-and-found", 1).await;
    let listed = warrenctl_ok(port, &["--format", "json", "list_policies"]);
    let v: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(v[0]["name"], "ae");
    assert_eq!(v[0]["apply-to"], "exchanges");
    assert_eq!(v[0]["priority"], 3);
    warrenctl_ok(port, &["clear_policy", "ae"]);
    within("confirm", publish(&ch, "orders", "nowhere", b"m").await)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ready_count(&conn, "lost-and-found").await, 1);
}

/// RabbitMQ's precedence between a queue's arguments and a policy
/// (recorded from RabbitMQ 3.10 with the same declarations): for
/// `max-length` the lower value wins, whoever sets it; for
/// `dead-letter-exchange` and `overflow` the queue's own argument wins.
/// Here the policy's max-length 1 beats the argument's 3, while the
/// argument's dead-letter exchange and `drop-head` beat the policy's
/// `nowhere` and `reject-publish`: three confirmed publishes, one stays,
/// two are dead-lettered into the argument's dead-letter queue.
async fn queue_arguments_and_policies_combine_as_in_rabbitmq(shards: usize) {
    let b = start_broker(shards).await;
    let conn = connect(&b).await;
    let ch = confirm_channel(&conn).await;
    let dlq = queue_on_shard("prec-dead", 0, shards);
    declare_queue(&ch, &dlq).await;
    api(b.mgmt_port, |a| {
        let body = json!({"pattern": "^prec\\.", "apply-to": "queues",
            "definition": {"max-length": 1, "dead-letter-exchange": "nowhere",
                "overflow": "reject-publish"}});
        a.expect("PUT", "/api/policies/%2F/prec", Some(&body), &[201]);
    })
    .await;
    let q = queue_on_shard("prec.q", shards - 1, shards);
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(3));
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(dlq.as_str().into()),
    );
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("drop-head".into()),
    );
    within(
        "declare",
        ch.queue_declare(&q, QueueDeclareOptions::default(), args),
    )
    .await
    .unwrap();
    for i in 0..3u8 {
        let c = within("confirm", publish(&ch, "", &q, &[i]).await)
            .await
            .unwrap();
        assert!(
            c.is_ack(),
            "drop-head (the argument) never refuses a publish"
        );
    }
    wait_ready(&conn, &dlq, 2).await;
    assert_eq!(
        ready_count(&conn, &q).await,
        1,
        "the policy's lower max-length"
    );
}

shard_tests!(
    policies_apply_to_new_and_existing_queues,
    policies_survive_a_crash_and_warrenctl_manages_them,
    queue_arguments_and_policies_combine_as_in_rabbitmq
);

#[test]
fn invalid_policies_get_rabbitmqs_answers() {
    let b = Broker::start(1);
    let a = Api::new(b.mgmt_port);
    let reason = |path: &str, body: Value| {
        let r = a.put(path, &body);
        (
            r.status,
            r.json["reason"].as_str().unwrap_or_default().to_string(),
        )
    };
    // Recorded from RabbitMQ 3.10 (user policies' reasons are HTML-escaped).
    assert_eq!(
        reason("/api/policies/%2F/p", json!({"pattern": ".*", "definition": {"foo": 1, "bar": "x"}})),
        (400, "Validation failed\n\n[{&lt;&lt;\"bar\"&gt;&gt;,&lt;&lt;\"x\"&gt;&gt;},{&lt;&lt;\"foo\"&gt;&gt;,1}] are not recognised policy settings\n".into())
    );
    assert_eq!(
        reason(
            "/api/policies/%2F/p",
            json!({"pattern": ".*", "definition": {"message-ttl": -1}})
        ),
        (
            400,
            "Validation failed\n\n-1 is not a valid message TTL\n".into()
        )
    );
    assert_eq!(
        reason(
            "/api/policies/%2F/p",
            json!({"pattern": ".*", "definition": {}})
        ),
        (400, "Validation failed\n\nno policy provided\n".into())
    );
    assert_eq!(
        reason("/api/policies/%2F/p", json!({"pattern": "x", "definition": {"message-ttl": 1}, "apply-to": "foo"})),
        (400, "Validation failed\n\napply-to 'foo' unrecognised; should be 'queues', 'exchanges' or 'all'\n".into())
    );
    assert_eq!(
        reason("/api/policies/%2F/p", json!({"pattern": "x", "definition": {"message-ttl": 1}, "priority": "3"})),
        (400, "Validation failed\n\npriority should be a number, actually was &lt;&lt;\"3\"&gt;&gt;\n".into())
    );
    assert_eq!(
        reason(
            "/api/policies/%2F/p",
            json!({"pattern": 5, "definition": {"message-ttl": 1}})
        ),
        (
            400,
            "Validation failed\n\npattern should be a binary but was 5\n".into()
        )
    );
    assert_eq!(
        reason(
            "/api/policies/%2F/p",
            json!({"definition": {"message-ttl": 1}})
        ),
        (400, "[{key_missing,pattern}]".into())
    );
    assert_eq!(
        reason("/api/operator-policies/%2F/o", json!({"pattern": "x", "definition": {"dead-letter-exchange": "x"}})),
        (400, "Validation failed\n\n[{<<\"dead-letter-exchange\">>,<<\"x\">>}] are not recognised policy settings\n".into())
    );
    assert_eq!(
        reason(
            "/api/policies/nope/p",
            json!({"pattern": "x", "definition": {"message-ttl": 1}})
        ),
        (404, "vhost_not_found".into())
    );
    // Settings Warren lacks are refused, never stored and ignored.
    let (status, why) = reason(
        "/api/policies/%2F/p",
        json!({"pattern": "x", "definition": {"federation-upstream-set": "all"}}),
    );
    assert_eq!(status, 400);
    assert!(why.contains("not supported by Warren"), "{why}");
    assert_eq!(a.get_ok("/api/policies"), json!([]));
    // Only policymakers set policies; only administrators operator policies.
    a.expect(
        "PUT",
        "/api/users/mgr",
        Some(&json!({"password": "pw", "tags": "management"})),
        &[201],
    );
    a.expect(
        "PUT",
        "/api/users/pm",
        Some(&json!({"password": "pw", "tags": "policymaker"})),
        &[201],
    );
    for u in ["mgr", "pm"] {
        a.expect(
            "PUT",
            &format!("/api/permissions/%2F/{u}"),
            Some(&json!({"configure": ".*", "write": ".*", "read": ".*"})),
            &[201, 204],
        );
    }
    let body = json!({"pattern": "x", "definition": {"message-ttl": 1}});
    let mgr = Api::as_user(b.mgmt_port, "mgr", "pw");
    let r = mgr.put("/api/policies/%2F/m", &body);
    assert_eq!(
        (r.status, r.json["reason"].clone()),
        (401, json!("User not authorised to access object"))
    );
    let pm = Api::as_user(b.mgmt_port, "pm", "pw");
    pm.expect("PUT", "/api/policies/%2F/m", Some(&body), &[201]);
    let r = pm.put("/api/operator-policies/%2F/o", &body);
    assert_eq!(
        (r.status, r.json["reason"].clone()),
        (401, json!("Not administrator user"))
    );
    assert_eq!(mgr.get_ok("/api/policies/%2F")[0]["name"], "m");
}

//! Queue placement: `x-queue-master-locator: client-local` (or the
//! `queue-master-locator` policy key) puts a new queue on the declaring
//! connection's shard, as RabbitMQ puts its master on the client's node;
//! other locators and none place it by its name's hash. Checked over AMQP
//! (lapin) and the HTTP API's `shard` field, across a `kill -9` for a
//! durable queue, and with RabbitMQ 3.10's refusals of unknown locators.

mod common;
mod mgmt;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use mgmt::Api;
use serde_json::json;

async fn api<T: Send + 'static>(port: u16, f: impl FnOnce(Api) -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(move || f(Api::new(port)))
        .await
        .unwrap()
}

fn locator(value: &str) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-master-locator".into(),
        AMQPValue::LongString(value.into()),
    );
    args
}

async fn shard_of(port: u16, queue: &str) -> usize {
    let path = format!("/api/queues/%2F/{queue}");
    let q = api(port, move |a| a.get_ok(&path)).await;
    q["shard"]
        .as_u64()
        .unwrap_or_else(|| panic!("{queue}: no shard in {q}")) as usize
}

async fn declare(ch: &lapin::Channel, q: &str, durable: bool, args: FieldTable) {
    let opts = QueueDeclareOptions {
        durable,
        ..Default::default()
    };
    within("declare", ch.queue_declare(q, opts, args))
        .await
        .unwrap();
}

/// From a connection on each shard: a client-local queue (transient and
/// durable) lives there even when its name hashes elsewhere; a
/// `min-masters` queue stays where its name hashes; a policy's
/// `queue-master-locator: client-local` places like the argument; one
/// declared over the HTTP API (no client connection) is placed by name. The
/// durable one keeps its shard and its confirmed message across `kill -9`.
async fn client_local_queues_live_on_the_declaring_connections_shard(shards: usize) {
    let mut b = start_broker(shards).await;
    let port = b.mgmt_port;
    api(port, |a| {
        let body = json!({"pattern": "^pol\\.", "apply-to": "queues",
            "definition": {"queue-master-locator": "client-local"}});
        a.expect("PUT", "/api/policies/%2F/local", Some(&body), &[201]);
    })
    .await;
    let mut durable_queues = Vec::new();
    for s in 0..shards {
        let elsewhere = (s + 1) % shards;
        let conn = connect_on_shard(&b, s).await;
        let ch = confirm_channel(&conn).await;
        let transient = queue_on_shard(&format!("cl.t{s}"), elsewhere, shards);
        declare(&ch, &transient, false, locator("client-local")).await;
        assert_eq!(shard_of(port, &transient).await, s, "{transient}");
        let durable = queue_on_shard(&format!("cl.d{s}"), elsewhere, shards);
        declare(&ch, &durable, true, locator("client-local")).await;
        assert_eq!(shard_of(port, &durable).await, s, "{durable}");
        let by_name = queue_on_shard(&format!("mm{s}"), elsewhere, shards);
        declare(&ch, &by_name, false, locator("min-masters")).await;
        assert_eq!(shard_of(port, &by_name).await, elsewhere, "{by_name}");
        let by_policy = queue_on_shard(&format!("pol.{s}"), elsewhere, shards);
        declare(&ch, &by_policy, false, FieldTable::default()).await;
        assert_eq!(shard_of(port, &by_policy).await, s, "{by_policy}");
        // The queue's own argument wins over the policy (RabbitMQ's order).
        let arg_wins = queue_on_shard(&format!("pol.mm{s}"), elsewhere, shards);
        declare(&ch, &arg_wins, false, locator("min-masters")).await;
        assert_eq!(shard_of(port, &arg_wins).await, elsewhere, "{arg_wins}");
        // Messages go through the queue on its shard as usual.
        let body = format!("to {durable}");
        within(
            "confirm",
            publish_with(&ch, "", &durable, body.as_bytes(), persistent()).await,
        )
        .await
        .unwrap();
        durable_queues.push((durable, s, body));
        conn.close(200, "").await.ok();
    }
    // Declared over the HTTP API there is no client connection: by name.
    let over_api = queue_on_shard("cl.api", shards - 1, shards);
    let path = format!("/api/queues/%2F/{over_api}");
    api(port, move |a| {
        let body = json!({"arguments": {"x-queue-master-locator": "client-local"}});
        a.expect("PUT", &path, Some(&body), &[201]);
    })
    .await;
    assert_eq!(shard_of(port, &over_api).await, shards - 1, "{over_api}");
    b.restart();
    let port = b.mgmt_port;
    let conn = connect(&b).await;
    let ch = open_channel(&conn).await;
    for (q, s, body) in durable_queues {
        assert_eq!(shard_of(port, &q).await, s, "{q} after kill -9");
        let got = within("get", ch.basic_get(&q, BasicGetOptions { no_ack: true }))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{q}: its confirmed message is gone"));
        assert_eq!(got.delivery.data, body.as_bytes());
    }
}

/// A queue.declare that must be refused; its error.
async fn declare_refused(ch: &lapin::Channel, q: &str, args: FieldTable) -> lapin::Error {
    match ch
        .queue_declare(q, QueueDeclareOptions::default(), args)
        .await
    {
        Err(e) => e,
        Ok(ok) => panic!("{q}: declared, but should have been refused: {ok:?}"),
    }
}

/// An unknown locator is refused, never accepted and ignored: a queue
/// argument with 406 (RabbitMQ 3.10.8 answers 541 INTERNAL_ERROR here, a
/// crash in its locator validation that closes the connection; Warren
/// refuses it like any invalid argument value, on the channel), a policy
/// with RabbitMQ 3.10.8's own 400 text.
async fn unknown_locators_are_refused(shards: usize) {
    let b = start_broker(shards).await;
    let conn = connect(&b).await;
    let ch = open_channel(&conn).await;
    let e = declare_refused(&ch, "bad-locator", locator("balanced")).await;
    assert_reply(
        &e,
        406,
        "invalid arg 'x-queue-master-locator' for queue 'bad-locator' in vhost '/': \"balanced is not a valid master locator\"",
    );
    assert_connection_usable(&conn).await;
    // The locator is an equivalence argument: a redeclare with another
    // value is refused (406), as by RabbitMQ.
    let ch = open_channel(&conn).await;
    declare(&ch, "located", false, locator("client-local")).await;
    let e = declare_refused(&ch, "located", locator("min-masters")).await;
    assert_eq!(reply_code(&e), Some(406), "{e:?}");
    let (status, reason) = api(b.mgmt_port, |a| {
        let body = json!({"pattern": ".*", "definition": {"queue-master-locator": "bogus"}});
        let r = a.put("/api/policies/%2F/bad", &body);
        (
            r.status,
            r.json["reason"].as_str().unwrap_or_default().to_string(),
        )
    })
    .await;
    assert_eq!(
        (status, reason.as_str()),
        (
            400,
            "Validation failed\n\n&lt;&lt;\"bogus\"&gt;&gt; invalid queue-master-locator value\n"
        )
    );
}

shard_tests!(
    client_local_queues_live_on_the_declaring_connections_shard,
    unknown_locators_are_refused
);

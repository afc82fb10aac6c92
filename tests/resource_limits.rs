//! RabbitMQ's resource limits: node `max_connections`, vhost
//! `max-connections` / `max-queues`, user `max-connections` /
//! `max-channels`, set through `/api/vhost-limits`, `/api/user-limits` and
//! warrenctl. Expected codes and texts were recorded from RabbitMQ 3.10
//! (`scripts/compare.sh start rabbitmq`, `rabbitmqctl set_vhost_limits`).
//! With 2 shards the counted connections and channels sit on different
//! shards, so the counts must be summed across shards.

mod common;
mod mgmt;

use common::*;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use mgmt::{warrenctl, warrenctl_ok, Api};
use serde_json::json;

fn url(b: &Broker, user: &str, password: &str, vhost: &str) -> String {
    let vhost = vhost.replace('/', "%2f");
    format!("amqp://{user}:{password}@127.0.0.1:{}/{vhost}", b.port)
}

async fn try_connect(
    b: &Broker,
    user: &str,
    password: &str,
    vhost: &str,
) -> lapin::Result<Connection> {
    within(
        "connect",
        Connection::connect(
            &url(b, user, password, vhost),
            ConnectionProperties::default(),
        ),
    )
    .await
}

/// The connection.close a raw client gets for connection.open (lapin
/// reports a refused open as a bare I/O error, without the reply text).
fn open_refusal(b: &Broker, user: &str, password: &str, vhost: &str) -> String {
    use amq_protocol::frame::AMQPFrame;
    use amq_protocol::protocol::{connection, AMQPClass};
    tokio::task::block_in_place(|| {
        let mut c = RawClient::start(b.port);
        c.start_ok("PLAIN", &format!("\0{user}\0{password}"));
        match c.read_frame() {
            Some(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Tune(_)))) => {}
            other => panic!("expected connection.tune, got {other:?}"),
        }
        c.tune_ok(2047, 131_072, 0);
        c.open_vhost(vhost);
        loop {
            match c.next() {
                Ok(Some(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Close(close)),
                ))) => return format!("{} - {}", close.reply_code, close.reply_text),
                Ok(Some(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)),
                ))) => return "open-ok".into(),
                Ok(Some(_)) => continue,
                other => panic!("no connection.close: {other:?}"),
            }
        }
    })
}

fn refusal_text(e: &lapin::Error) -> String {
    match e {
        lapin::Error::ProtocolError(p) => format!("{} - {}", p.get_id(), p.get_message()),
        other => format!("{other:?}"),
    }
}

/// Vhost `lim` with full permissions for guest, and user `u1`/`p1` with
/// full permissions on `/`.
fn setup(b: &Broker) -> Api {
    let api = Api::new(b.mgmt_port);
    api.expect("PUT", "/api/vhosts/lim", None, &[201, 204]);
    let all = json!({"configure": ".*", "write": ".*", "read": ".*"});
    api.expect("PUT", "/api/permissions/lim/guest", Some(&all), &[201, 204]);
    api.expect(
        "PUT",
        "/api/users/u1",
        Some(&json!({"password": "p1", "tags": ""})),
        &[201, 204],
    );
    api.expect("PUT", "/api/permissions/%2F/u1", Some(&all), &[201, 204]);
    api
}

fn set_limit(api: &Api, kind: &str, owner: &str, name: &str, value: i64) {
    let path = format!("/api/{kind}/{owner}/{name}");
    api.expect("PUT", &path, Some(&json!({ "value": value })), &[204]);
}

async fn vhost_connection_limit_counts_every_shard_and_refuses_with_530(shards: usize) {
    let b = start_broker(shards).await;
    let api = tokio::task::block_in_place(|| setup(&b));
    // One connection per shard first, then the limit: the third must see both.
    let first = connect_on_shard_as(&b, 0, "guest", "guest", "lim").await;
    let second = connect_on_shard_as(&b, 1, "guest", "guest", "lim").await;
    tokio::task::block_in_place(|| set_limit(&api, "vhost-limits", "lim", "max-connections", 2));
    for _ in 0..4 {
        assert_eq!(
            open_refusal(&b, "guest", "guest", "lim"),
            "530 - NOT_ALLOWED - access to vhost 'lim' refused for user 'guest': connection limit (2) is reached"
        );
    }
    // Other vhosts are not limited; a closed connection frees its slot.
    let other = connect(&b).await;
    within("close", first.close(200, "bye")).await.unwrap();
    let third = eventually_connect(&b, "guest", "guest", "lim").await;
    assert_connection_usable(&third).await;
    assert_connection_usable(&second).await;
    assert_connection_usable(&other).await;
    // A negative value lifts the limit.
    tokio::task::block_in_place(|| set_limit(&api, "vhost-limits", "lim", "max-connections", -1));
    try_connect(&b, "guest", "guest", "lim")
        .await
        .expect("no limit any more");
}

/// The connection slot of a closed connection is freed once the broker
/// has seen the close; retry briefly.
async fn eventually_connect(b: &Broker, user: &str, password: &str, vhost: &str) -> Connection {
    for _ in 0..50 {
        if let Ok(c) = try_connect(b, user, password, vhost).await {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no connection to {vhost} as {user} after the slot was freed");
}

async fn user_connection_limit_refuses_with_rabbitmqs_text(shards: usize) {
    let b = start_broker(shards).await;
    let api = tokio::task::block_in_place(|| setup(&b));
    let _a = connect_on_shard_as(&b, 0, "u1", "p1", "/").await;
    let _b = connect_on_shard_as(&b, 1, "u1", "p1", "/").await;
    tokio::task::block_in_place(|| set_limit(&api, "user-limits", "u1", "max-connections", 2));
    assert_eq!(
        open_refusal(&b, "u1", "p1", "/"),
        "530 - NOT_ALLOWED - connection refused for user 'u1': user connection limit (2) is reached"
    );
    // guest is not limited.
    assert_connection_usable(&connect(&b).await).await;
}

async fn user_channel_limit_closes_the_connection_with_530(shards: usize) {
    let b = start_broker(shards).await;
    let api = tokio::task::block_in_place(|| setup(&b));
    tokio::task::block_in_place(|| set_limit(&api, "user-limits", "u1", "max-channels", 3));
    let a = connect_on_shard_as(&b, 0, "u1", "p1", "/").await;
    let c = connect_on_shard_as(&b, 1, "u1", "p1", "/").await;
    let _a1 = open_channel(&a).await;
    let _a2 = open_channel(&a).await;
    let _c1 = open_channel(&c).await;
    let e = within("fourth channel", c.create_channel())
        .await
        .unwrap_err();
    assert_eq!(
        refusal_text(&e),
        "530 - NOT_ALLOWED - number of channels opened for user 'u1' has reached the maximum allowed user limit of (3)"
    );
    assert!(a.status().connected(), "the other connection stays open");
    // The refused connection's channel is released once it is torn down
    // (asynchronously, on its shard): then a new channel fits again.
    for attempt in 0.. {
        let d = try_connect(&b, "u1", "p1", "/").await.expect("connect u1");
        match within("channel after the refused one", d.create_channel()).await {
            Ok(_) => break,
            Err(e) if attempt < 50 => {
                assert_eq!(reply_code(&e), Some(530), "{e:?}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the refused connection's channel was never released: {e:?}"),
        }
    }
    assert!(a.status().connected(), "the other connection stays open");
}

async fn vhost_queue_limit_refuses_new_queues_but_not_redeclares(shards: usize) {
    let b = start_broker(shards).await;
    let api = tokio::task::block_in_place(|| setup(&b));
    tokio::task::block_in_place(|| set_limit(&api, "vhost-limits", "lim", "max-queues", 2));
    let conn = try_connect(&b, "guest", "guest", "lim").await.unwrap();
    let ch = open_channel(&conn).await;
    for q in ["q1", "q2", "q1"] {
        let opts = QueueDeclareOptions::default();
        within("declare", ch.queue_declare(q, opts, FieldTable::default()))
            .await
            .unwrap();
    }
    let e = within(
        "third queue",
        ch.queue_declare("q3", QueueDeclareOptions::default(), FieldTable::default()),
    )
    .await
    .unwrap_err();
    assert_eq!(
        refusal_text(&e),
        "406 - PRECONDITION_FAILED - cannot declare queue 'q3': queue limit in vhost 'lim' (2) is reached"
    );
    // A channel error: the connection and the default vhost are fine.
    assert_connection_usable(&connect(&b).await).await;
    let ch = open_channel(&conn).await;
    within("delete", ch.queue_delete("q2", Default::default()))
        .await
        .unwrap();
    within(
        "declare after delete",
        ch.queue_declare("q3", QueueDeclareOptions::default(), FieldTable::default()),
    )
    .await
    .unwrap();
}

async fn node_max_connections_from_the_config_file_refuses_the_next_one(shards: usize) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("warren.toml");
    std::fs::write(&cfg, "max_connections = 2\n").unwrap();
    let cfg = cfg.to_string_lossy().into_owned();
    let b = tokio::task::block_in_place(|| Broker::start_with(shards, &["--config", &cfg]));
    let _a = connect_on_shard(&b, 0).await;
    let _c = connect_on_shard(&b, 1).await;
    assert_eq!(
        open_refusal(&b, "guest", "guest", "/"),
        "530 - NOT_ALLOWED - connection refused: node connection limit (2) is reached"
    );
}

async fn limits_survive_a_restart_and_travel_in_definitions(shards: usize) {
    let mut b = start_broker(shards).await;
    tokio::task::block_in_place(|| {
        let api = setup(&b);
        set_limit(&api, "vhost-limits", "lim", "max-queues", 7);
        set_limit(&api, "user-limits", "u1", "max-channels", 9);
        b.restart();
        let api = Api::new(b.mgmt_port);
        assert_eq!(
            api.get_ok("/api/vhost-limits"),
            json!([{"vhost": "lim", "value": {"max-queues": 7}}])
        );
        assert_eq!(
            api.get_ok("/api/user-limits/u1"),
            json!([{"user": "u1", "value": {"max-channels": 9}}])
        );
        let defs = api.get_ok("/api/definitions");
        assert_eq!(
            defs["parameters"],
            json!([{"vhost": "lim", "component": "vhost-limits", "name": "limits", "value": {"max-queues": 7}}])
        );
        // Imported into a fresh broker, the limits are back.
        let fresh = Broker::start(shards);
        let api2 = Api::new(fresh.mgmt_port);
        api2.expect("POST", "/api/definitions", Some(&defs), &[200, 201, 204]);
        assert_eq!(
            api2.get_ok("/api/vhost-limits"),
            api.get_ok("/api/vhost-limits")
        );
        assert_eq!(
            api2.get_ok("/api/user-limits"),
            api.get_ok("/api/user-limits")
        );
    });
}

#[test]
fn http_limit_requests_get_rabbitmqs_answers() {
    let b = Broker::start(1);
    let api = setup(&b);
    let bad = api.put("/api/vhost-limits/lim/max-bogus", &json!({"value": 5}));
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.json["reason"],
        "Validation failed\n\nUnrecognised terms [{<<\"max-bogus\">>,5}] in limits\n"
    );
    let missing = api.put("/api/vhost-limits/nope/max-queues", &json!({"value": 5}));
    assert_eq!(
        (missing.status, &missing.json),
        (
            404,
            &json!({"error": "not_found", "reason": "vhost_not_found"})
        )
    );
    let no_value = api.put("/api/vhost-limits/lim/max-queues", &json!({}));
    assert_eq!(
        (no_value.status, &no_value.json["reason"]),
        (400, &json!("[{key_missing,value}]"))
    );
    let not_number = api.put("/api/vhost-limits/lim/max-queues", &json!({"value": "x"}));
    assert_eq!(not_number.status, 400);
    let no_user = api.put("/api/user-limits/nobody/max-channels", &json!({"value": 3}));
    assert_eq!(
        (no_user.status, &no_user.json["reason"]),
        (400, &json!(["no_such_user", "nobody"]))
    );
    let wrong_kind = api.put("/api/user-limits/u1/max-queues", &json!({"value": 3}));
    assert_eq!(
        (wrong_kind.status, &wrong_kind.json["reason"]),
        (
            400,
            &json!("Unrecognised terms [{<<\"max-queues\">>,3}] in user-limits")
        )
    );
    assert_eq!(api.get_ok("/api/vhost-limits"), json!([]));
    // Only administrators see or change limits.
    let plain = Api::as_user(b.mgmt_port, "u1", "p1");
    assert_eq!(plain.get("/api/vhost-limits").status, 401);
    assert_eq!(
        plain
            .put("/api/vhost-limits/lim/max-queues", &json!({"value": 1}))
            .status,
        401
    );
}

#[test]
fn warrenctl_set_vhost_limits_replaces_every_limit_like_rabbitmqctl() {
    let b = Broker::start(1);
    let api = setup(&b);
    let p = b.mgmt_port;
    warrenctl_ok(
        p,
        &[
            "-p",
            "lim",
            "set_vhost_limits",
            r#"{"max-connections": 5, "max-queues": 6}"#,
        ],
    );
    warrenctl_ok(
        p,
        &["-p", "lim", "set_vhost_limits", r#"{"max-queues": 10}"#],
    );
    assert_eq!(
        api.get_ok("/api/vhost-limits/lim"),
        json!([{"vhost": "lim", "value": {"max-queues": 10}}])
    );
    let listed = warrenctl_ok(p, &["-p", "lim", "list_vhost_limits"]);
    assert!(listed.stdout.contains("max-queues"), "{listed:?}");
    warrenctl_ok(p, &["-p", "lim", "clear_vhost_limits"]);
    assert_eq!(api.get_ok("/api/vhost-limits"), json!([]));
    warrenctl_ok(
        p,
        &[
            "set_user_limits",
            "u1",
            r#"{"max-connections": 1, "max-channels": 2}"#,
        ],
    );
    warrenctl_ok(p, &["clear_user_limits", "u1", "max-channels"]);
    assert_eq!(
        api.get_ok("/api/user-limits"),
        json!([{"user": "u1", "value": {"max-connections": 1}}])
    );
    warrenctl_ok(p, &["clear_user_limits", "u1", "all"]);
    assert_eq!(api.get_ok("/api/user-limits"), json!([]));
    let bad = warrenctl(p, &["set_user_limits", "u1", r#"{"max-channels": "two"}"#]);
    assert_eq!(bad.code, 64, "{bad:?}");
    let unknown = warrenctl(p, &["-p", "lim", "set_vhost_limits", r#"{"max-bogus": 1}"#]);
    assert_ne!(unknown.code, 0, "{unknown:?}");
}

shard_tests!(
    vhost_connection_limit_counts_every_shard_and_refuses_with_530,
    user_connection_limit_refuses_with_rabbitmqs_text,
    user_channel_limit_closes_the_connection_with_530,
    vhost_queue_limit_refuses_new_queues_but_not_redeclares,
    node_max_connections_from_the_config_file_refuses_the_next_one,
    limits_survive_a_restart_and_travel_in_definitions,
);

//! Access control over AMQP with a real client (lapin): users created
//! through the management API, per-vhost configure/write/read permission
//! regexes checked on every operation with RabbitMQ's reply codes and texts,
//! refused logins, vhost access and vhost isolation.
//!
//! Not covered: guest refused from a non-loopback address. Every address a
//! test may connect from here is loopback (127.0.0.0/8, ::1), so the refusal
//! itself cannot be provoked without a network namespace; the dual-stack
//! test below checks the other side (IPv4 loopback seen through an IPv6
//! listener still counts as loopback).

mod common;
mod mgmt;

use common::*;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use mgmt::Api;
use serde_json::json;

const USER: &str = "app-user";
const PASS: &str = "app-pass";

fn url(b: &Broker, user: &str, pass: &str, vhost: &str) -> String {
    format!(
        "amqp://{user}:{pass}@127.0.0.1:{}/{}",
        b.port,
        mgmt::seg(vhost)
    )
}

async fn connect_as(b: &Broker, user: &str, pass: &str, vhost: &str) -> Connection {
    within(
        "connect",
        Connection::connect(&url(b, user, pass, vhost), ConnectionProperties::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("{user} connecting to {vhost}: {e}"))
}

/// Admin setup: a user limited to `app.*` in "/", plus objects it may not
/// touch (declared by guest).
async fn setup(b: &Broker) {
    let port = b.mgmt_port;
    tokio::task::spawn_blocking(move || {
        let api = Api::new(port);
        api.expect(
            "PUT",
            &format!("/api/users/{USER}"),
            Some(&json!({"password": PASS, "tags": ""})),
            &[201, 204],
        );
        api.expect(
            "PUT",
            &format!("/api/permissions/%2F/{USER}"),
            Some(&json!({"configure": "^app\\.", "write": "^app\\.", "read": "^app\\."})),
            &[201, 204],
        );
        api.expect(
            "PUT",
            "/api/queues/%2F/other.q",
            Some(&json!({"durable": false})),
            &[201, 204],
        );
        api.expect(
            "PUT",
            "/api/exchanges/%2F/other.x",
            Some(&json!({"type": "direct"})),
            &[201, 204],
        );
    })
    .await
    .unwrap();
}

/// The error must be 403 ACCESS_REFUSED with RabbitMQ's text.
fn assert_refused<T: std::fmt::Debug>(r: Result<T, lapin::Error>, kind: &str, name: &str) {
    let want = format!(
        "ACCESS_REFUSED - access to {kind} '{name}' in vhost '/' refused for user '{USER}'"
    );
    match r {
        Ok(v) => panic!("expected {want:?}, got Ok({v:?})"),
        Err(lapin::Error::ProtocolError(e)) => {
            assert_eq!(e.get_id(), 403, "reply code for {want:?}: {e:?}");
            assert_eq!(e.get_message().as_str(), want);
        }
        Err(e) => panic!("expected {want:?}, got {e:?}"),
    }
}

/// Wait for the server's channel.close after a fire-and-forget method.
async fn assert_channel_refused(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<lapin::Error>,
    kind: &str,
    name: &str,
) {
    let e = within("channel.close", rx.recv())
        .await
        .expect("error stream");
    assert_refused::<()>(Err(e), kind, name);
}

fn qdecl() -> QueueDeclareOptions {
    QueueDeclareOptions::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operation_kind_checks_its_permission() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        setup(&b).await;
        let conn = connect_as(&b, USER, PASS, "/").await;
        let none = FieldTable::default;

        // configure: queue.declare and exchange.declare.
        let ch = open_channel(&conn).await;
        for i in 0..3 {
            // Several names: with 2 shards the homes differ.
            declare_queue(&ch, &format!("app.q{i}")).await;
        }
        within(
            "exchange.declare app.x",
            ch.exchange_declare(
                "app.x",
                ExchangeKind::Topic,
                ExchangeDeclareOptions::default(),
                none(),
            ),
        )
        .await
        .expect("app.x is allowed");
        let r = within("queue.declare x", ch.queue_declare("x", qdecl(), none())).await;
        assert_refused(r, "queue", "x");
        let ch = open_channel(&conn).await;
        let r = within(
            "exchange.declare x.other",
            ch.exchange_declare(
                "x.other",
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                none(),
            ),
        )
        .await;
        assert_refused(r, "exchange", "x.other");
        // bind: write on the queue and read on the exchange.
        let ch = open_channel(&conn).await;
        for i in 0..3 {
            within(
                "queue.bind app.q -> app.x",
                ch.queue_bind(
                    &format!("app.q{i}"),
                    "app.x",
                    "k.#",
                    QueueBindOptions::default(),
                    none(),
                ),
            )
            .await
            .expect("bind within app.*");
        }
        let r = within(
            "bind from other.x",
            ch.queue_bind(
                "app.q0",
                "other.x",
                "k",
                QueueBindOptions::default(),
                none(),
            ),
        )
        .await;
        assert_refused(r, "exchange", "other.x");
        let ch = open_channel(&conn).await;
        let r = within(
            "bind other.q",
            ch.queue_bind("other.q", "app.x", "k", QueueBindOptions::default(), none()),
        )
        .await;
        assert_refused(r, "queue", "other.q");
        let ch = open_channel(&conn).await;
        let r = within(
            "unbind other.q",
            ch.queue_unbind("other.q", "app.x", "k", none()),
        )
        .await;
        assert_refused(r, "queue", "other.q");

        // write: basic.publish checks the exchange.
        let ch = confirm_channel(&conn).await;
        for i in 0..3 {
            publish(&ch, "app.x", "k.1", format!("m{i}").as_bytes())
                .await
                .await
                .expect("confirm of an allowed publish");
        }
        let ch = open_channel(&conn).await;
        let mut errors = channel_errors(&ch);
        let _ = ch
            .basic_publish(
                "other.x",
                "k",
                BasicPublishOptions::default(),
                b"no",
                BasicProperties::default(),
            )
            .await;
        assert_channel_refused(&mut errors, "exchange", "other.x").await;
        // The default exchange is checked as "amq.default".
        let ch = open_channel(&conn).await;
        let mut errors = channel_errors(&ch);
        let _ = ch
            .basic_publish(
                "",
                "app.q0",
                BasicPublishOptions::default(),
                b"no",
                BasicProperties::default(),
            )
            .await;
        assert_channel_refused(&mut errors, "exchange", "amq.default").await;

        // read: basic.get and basic.consume check the queue.
        let ch = open_channel(&conn).await;
        let got = within(
            "basic.get app.q0",
            ch.basic_get("app.q0", BasicGetOptions { no_ack: true }),
        )
        .await
        .expect("get from app.q0");
        assert_eq!(got.expect("a message").delivery.data, b"m0");
        let r = within(
            "basic.get other.q",
            ch.basic_get("other.q", BasicGetOptions { no_ack: true }),
        )
        .await;
        assert_refused(r, "queue", "other.q");
        let ch = open_channel(&conn).await;
        let mut c = within(
            "consume app.q1",
            ch.basic_consume(
                "app.q1",
                "c1",
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                none(),
            ),
        )
        .await
        .expect("consume from app.q1");
        let d = next_delivery(&mut c, "delivery from app.q1").await;
        assert_eq!(d.data, b"m0");
        let ch = open_channel(&conn).await;
        let r = within(
            "consume other.q",
            ch.basic_consume("other.q", "c2", BasicConsumeOptions::default(), none()),
        )
        .await;
        assert_refused(r, "queue", "other.q");
        // queue.purge needs read too.
        let ch = open_channel(&conn).await;
        let r = within(
            "purge other.q",
            ch.queue_purge("other.q", QueuePurgeOptions::default()),
        )
        .await;
        assert_refused(r, "queue", "other.q");

        // configure: deletes.
        let ch = open_channel(&conn).await;
        let r = within(
            "delete other.q",
            ch.queue_delete("other.q", QueueDeleteOptions::default()),
        )
        .await;
        assert_refused(r, "queue", "other.q");
        let ch = open_channel(&conn).await;
        let r = within(
            "delete other.x",
            ch.exchange_delete("other.x", ExchangeDeleteOptions::default()),
        )
        .await;
        assert_refused(r, "exchange", "other.x");
        let ch = open_channel(&conn).await;
        within(
            "delete app.q2",
            ch.queue_delete("app.q2", QueueDeleteOptions::default()),
        )
        .await
        .expect("delete within app.*");
        within(
            "delete app.x",
            ch.exchange_delete("app.x", ExchangeDeleteOptions::default()),
        )
        .await
        .expect("delete app.x");

        // After all those channel errors the connection is still fine, and
        // guest's objects were not touched.
        assert!(conn.status().connected());
        let port = b.mgmt_port;
        tokio::task::spawn_blocking(move || {
            let api = Api::new(port);
            api.get_ok("/api/queues/%2F/other.q");
            api.get_ok("/api/exchanges/%2F/other.x");
            assert_eq!(api.get("/api/queues/%2F/app.q2").status, 404);
        })
        .await
        .unwrap();
        let _ = conn.close(200, "bye").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_changes_apply_to_open_connections() {
    for shards in SHARD_COUNTS {
        let b = start_broker(shards).await;
        setup(&b).await;
        let conn = connect_as(&b, USER, PASS, "/").await;
        let ch = open_channel(&conn).await;
        let r = within(
            "declare",
            ch.queue_declare("late.q", qdecl(), FieldTable::default()),
        )
        .await;
        assert_refused(r, "queue", "late.q");
        let port = b.mgmt_port;
        tokio::task::spawn_blocking(move || {
            Api::new(port).expect(
                "PUT",
                &format!("/api/permissions/%2F/{USER}"),
                Some(&json!({"configure": ".*", "write": ".*", "read": ".*"})),
                &[201, 204],
            );
        })
        .await
        .unwrap();
        let ch = open_channel(&conn).await;
        declare_queue(&ch, "late.q").await;
        let _ = conn.close(200, "bye").await;
    }
}

/// RabbitMQ names the queue first ("amq.gen-...") and then checks configure
/// permission on that name, so a user limited to `app.*` cannot declare a
/// server-named queue (checked against RabbitMQ 3.10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_named_queues_need_configure_permission() {
    for shards in SHARD_COUNTS {
        let b = start_broker(shards).await;
        setup(&b).await;
        let conn = connect_as(&b, USER, PASS, "/").await;
        let ch = open_channel(&conn).await;
        let r = within(
            "queue.declare ''",
            ch.queue_declare("", qdecl(), FieldTable::default()),
        )
        .await;
        match r {
            Err(lapin::Error::ProtocolError(e)) => {
                assert_eq!(e.get_id(), 403);
                let text = e.get_message().as_str();
                assert!(
                    text.starts_with("ACCESS_REFUSED - access to queue 'amq.gen-")
                        && text.ends_with(&format!("' in vhost '/' refused for user '{USER}'")),
                    "{text}"
                );
            }
            other => panic!("server-named queue: expected 403, got {other:?}"),
        }
        let _ = conn.close(200, "bye").await;
    }
}

/// Complete a raw handshake up to connection.open; returns the reply code
/// of the server's connection.close (0 if the vhost was opened).
fn raw_login(port: u16, user: &str, pass: &str, vhost: &str) -> u16 {
    raw_login_text(port, user, pass, vhost).0
}

/// Like [`raw_login`], with the reply text of the connection.close.
fn raw_login_text(port: u16, user: &str, pass: &str, vhost: &str) -> (u16, String) {
    use amq_protocol::frame::AMQPFrame;
    use amq_protocol::protocol::{connection, AMQPClass};
    let mut c = RawClient::start(port);
    c.start_ok("PLAIN", &format!("\0{user}\0{pass}"));
    match c.read_frame() {
        Some(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Tune(_)))) => {}
        Some(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(cl)))) => {
            return (cl.reply_code, cl.reply_text.to_string());
        }
        other => panic!("unexpected reply to start-ok: {other:?}"),
    }
    c.tune_ok(2047, 131_072, 0);
    c.open_vhost(vhost);
    match c.read_frame() {
        Some(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)))) => {
            (0, String::new())
        }
        Some(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(cl)))) => {
            (cl.reply_code, cl.reply_text.to_string())
        }
        other => panic!("unexpected reply to connection.open: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_logins_and_vhosts() {
    for shards in SHARD_COUNTS {
        let b = start_broker(shards).await;
        setup(&b).await;
        let (port, mport) = (b.port, b.mgmt_port);
        tokio::task::spawn_blocking(move || {
            let api = Api::new(mport);
            api.expect(
                "PUT",
                "/api/vhosts/closed-vh",
                Some(&json!({})),
                &[201, 204],
            );
            assert_eq!(raw_login(port, USER, PASS, "/"), 0, "right password");
            assert_eq!(raw_login(port, USER, "wrong", "/"), 403, "wrong password");
            assert_eq!(raw_login(port, "nobody", PASS, "/"), 403, "unknown user");
            assert_eq!(
                raw_login_text(port, USER, PASS, "closed-vh"),
                (
                    530,
                    format!("NOT_ALLOWED - access to vhost 'closed-vh' refused for user '{USER}'")
                ),
                "vhost without permission"
            );
            let (code, text) = raw_login_text(port, USER, "wrong", "/");
            assert_eq!(code, 403);
            assert!(
                text.starts_with("ACCESS_REFUSED - Login was refused"),
                "{text}"
            );
            assert_eq!(
                raw_login(port, USER, PASS, "no-such-vh"),
                530,
                "missing vhost"
            );
            // Deleting the user refuses its next login; a passwordless
            // user (no hash) can never log in with a password.
            api.expect(
                "PUT",
                "/api/users/nopass",
                Some(&json!({"password_hash": "", "tags": ""})),
                &[201, 204],
            );
            api.expect(
                "PUT",
                "/api/permissions/%2F/nopass",
                Some(&json!({"configure": ".*", "write": ".*", "read": ".*"})),
                &[201, 204],
            );
            assert_eq!(raw_login(port, "nopass", "", "/"), 403, "empty password");
            assert_eq!(raw_login(port, "nopass", "x", "/"), 403, "any password");
        })
        .await
        .unwrap();
        // lapin sees the refusal as an error with the 403 text.
        let r = within(
            "lapin bad login",
            Connection::connect(
                &url(&b, USER, "wrong", "/"),
                ConnectionProperties::default(),
            ),
        )
        .await;
        assert!(r.is_err(), "wrong password must not connect");
        // lapin reports a refused vhost as a failed connect too.
        let r = within(
            "lapin closed vhost",
            Connection::connect(
                &url(&b, USER, PASS, "closed-vh"),
                ConnectionProperties::default(),
            ),
        )
        .await;
        assert!(r.is_err(), "vhost without permission must not open");
        // Changing the password through the API takes effect.
        tokio::task::spawn_blocking(move || {
            Api::new(mport).expect(
                "PUT",
                &format!("/api/users/{USER}"),
                Some(&json!({"password": "new-pass", "tags": ""})),
                &[201, 204],
            );
            assert_eq!(raw_login(port, USER, PASS, "/"), 403, "old password");
            assert_eq!(raw_login(port, USER, "new-pass", "/"), 0, "new password");
            Api::new(mport).expect("DELETE", &format!("/api/users/{USER}"), None, &[204]);
            assert_eq!(raw_login(port, USER, "new-pass", "/"), 403, "deleted user");
        })
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vhosts_are_isolated() {
    for shards in SHARD_COUNTS {
        let b = start_broker(shards).await;
        let port = b.mgmt_port;
        tokio::task::spawn_blocking(move || {
            let api = Api::new(port);
            for v in ["vh-a", "vh-b"] {
                api.expect(
                    "PUT",
                    &format!("/api/vhosts/{v}"),
                    Some(&json!({})),
                    &[201, 204],
                );
                api.expect(
                    "PUT",
                    &format!("/api/permissions/{v}/guest"),
                    Some(&json!({"configure": ".*", "write": ".*", "read": ".*"})),
                    &[201, 204],
                );
            }
        })
        .await
        .unwrap();
        let a = connect_as(&b, "guest", "guest", "vh-a").await;
        let bconn = connect_as(&b, "guest", "guest", "vh-b").await;
        let cha = confirm_channel(&a).await;
        let chb = confirm_channel(&bconn).await;
        for i in 0..3 {
            declare_queue(&cha, &format!("iso.q{i}")).await;
        }
        // Invisible from vh-b: a passive declare is 404 there.
        let r = within(
            "passive declare in vh-b",
            chb.queue_declare(
                "iso.q0",
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        assert_code(r, 404, "iso.q0 from vh-b");
        // The same name in vh-b is another queue.
        let chb = confirm_channel(&bconn).await;
        declare_queue(&chb, "iso.q0").await;
        for i in 0..3 {
            publish(&cha, "", &format!("iso.q{i}"), b"in a")
                .await
                .await
                .unwrap();
        }
        publish(&chb, "", "iso.q0", b"in b").await.await.unwrap();
        assert_eq!(ready_count(&a, "iso.q0").await, 1);
        assert_eq!(ready_count(&bconn, "iso.q0").await, 1);
        let got = within(
            "get in vh-b",
            chb.basic_get("iso.q0", BasicGetOptions { no_ack: true }),
        )
        .await
        .unwrap()
        .expect("message in vh-b");
        assert_eq!(got.delivery.data, b"in b");
        // Exchanges too: one declared in vh-a does not exist in vh-b.
        within(
            "exchange in vh-a",
            cha.exchange_declare(
                "iso.x",
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        let mut errors = channel_errors(&chb);
        let _ = chb
            .basic_publish(
                "iso.x",
                "",
                BasicPublishOptions::default(),
                b"x",
                BasicProperties::default(),
            )
            .await;
        expect_channel_error(&mut errors, 404, "iso.x does not exist in vh-b").await;

        // The HTTP API agrees, and a management user sees only its vhosts.
        tokio::task::spawn_blocking(move || {
            let api = Api::new(port);
            let qa = api.get_ok("/api/queues/vh-a");
            assert_eq!(qa.as_array().unwrap().len(), 3, "{qa}");
            let qb = api.get_ok("/api/queues/vh-b");
            assert_eq!(qb.as_array().unwrap().len(), 1, "{qb}");
            assert_eq!(api.get_queue("vh-b", "iso.q0")["messages"], json!(0));
            assert_eq!(api.get("/api/exchanges/vh-b/iso.x").status, 404);
            api.expect(
                "PUT",
                "/api/users/viewer",
                Some(&json!({"password": "v", "tags": "management"})),
                &[201, 204],
            );
            api.expect(
                "PUT",
                "/api/permissions/vh-b/viewer",
                Some(&json!({"configure": "", "write": "", "read": ".*"})),
                &[201, 204],
            );
            let viewer = Api::as_user(port, "viewer", "v");
            let vhosts = viewer.get_ok("/api/vhosts");
            let names: Vec<&str> = vhosts
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v["name"].as_str())
                .collect();
            assert_eq!(names, vec!["vh-b"], "viewer sees only vh-b");
            let qs = viewer.get_ok("/api/queues");
            assert!(
                qs.as_array().unwrap().iter().all(|q| q["vhost"] == "vh-b"),
                "viewer sees only vh-b's queues: {qs}"
            );
            // Deleting a vhost deletes its queues and refuses new connections.
            api.expect("DELETE", "/api/vhosts/vh-a", None, &[204]);
            assert_eq!(api.get("/api/queues/vh-a").status, 404);
        })
        .await
        .unwrap();
        let r = within(
            "connect to deleted vhost",
            Connection::connect(
                &url(&b, "guest", "guest", "vh-a"),
                ConnectionProperties::default(),
            ),
        )
        .await;
        assert!(r.is_err(), "deleted vhost must refuse connections");
        let _ = bconn.close(200, "bye").await;
    }
}

/// With a dual-stack listener (`--bind ::`) an IPv4 loopback client is seen
/// as `::ffff:127.0.0.1`; guest must still count as local there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_is_local_through_a_dual_stack_listener() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(warren_bin())
        .args(["--bind", "::", "--port", "0", "--shards", "1"])
        .args(["--mgmt-bind", "127.0.0.1", "--mgmt-port", "0", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start warren");
    // Keep the pipe open for the broker's later output.
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    for host in ["127.0.0.1", "[::1]"] {
        let r = within(
            "guest over loopback",
            Connection::connect(
                &format!("amqp://guest:guest@{host}:{port}/%2f"),
                ConnectionProperties::default(),
            ),
        )
        .await;
        let ok = r.is_ok();
        if let Ok(c) = r {
            let _ = c.close(200, "bye").await;
        }
        if !ok {
            let _ = child.kill();
            let _ = child.wait();
            panic!("guest refused over {host}");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

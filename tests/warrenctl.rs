//! `warrenctl` run as a process against a running broker: listings with
//! chosen columns in table and JSON form, user and permission management,
//! queue operations, definitions export/import, closing a connection, and
//! the exit codes for a broker that is down and for bad credentials.

mod common;
mod mgmt;

use common::*;
use lapin::{Connection, ConnectionProperties};
use mgmt::{warrenctl, warrenctl_env, warrenctl_ok, Api};
use serde_json::{json, Value};

fn json_out(r: &mgmt::Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

/// Lines of a table split into cells (cells never contain two spaces here).
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

#[test]
fn list_queues_with_columns_as_table_and_json() {
    for shards in SHARD_COUNTS {
        let b = Broker::start(shards);
        let p = b.mgmt_port;
        let api = Api::new(p);
        for (q, n) in [("cli.a", 2), ("cli.b", 0), ("cli.long-queue-name", 1)] {
            warrenctl_ok(p, &["declare_queue", q]);
            for i in 0..n {
                api.publish("/", "", q, &format!("m{i}"));
            }
            api.wait_queue_field("/", q, "messages", n);
        }
        // Default columns.
        let r = warrenctl_ok(p, &["list_queues"]);
        let t = rows(&r.stdout);
        assert_eq!(
            t[0],
            [
                "name",
                "messages_ready",
                "messages_unacknowledged",
                "messages",
                "consumers"
            ],
            "{}",
            r.stdout
        );
        assert_eq!(t.len(), 4, "{}", r.stdout);
        // Chosen columns, aligned: every row has the second column at the
        // same offset.
        let r = warrenctl_ok(p, &["list_queues", "name", "messages", "consumers"]);
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["name", "messages", "consumers"]
        );
        let col = lines[0].find("messages").unwrap();
        for l in &lines[1..] {
            let cell = &l[col..];
            assert!(
                cell.starts_with(|c: char| c.is_ascii_digit()),
                "aligned column in {:?}\n{}",
                l,
                r.stdout
            );
        }
        let t = rows(&r.stdout);
        assert!(
            t.contains(&vec!["cli.a".into(), "2".into(), "0".into()]),
            "{t:?}"
        );
        assert!(t.contains(&vec!["cli.long-queue-name".into(), "1".into(), "0".into()]));
        // Comma-separated columns, nested ones, no headers.
        let r = warrenctl_ok(
            p,
            &["--no-headers", "list_queues", "name,message_stats.publish"],
        );
        let t = rows(&r.stdout);
        assert!(
            t.contains(&vec!["cli.a".into(), "2".into()]),
            "{}",
            r.stdout
        );
        assert!(!r.stdout.starts_with("name"), "no header: {}", r.stdout);
        // JSON: an array of objects with just those fields, nested as in the API.
        let r = warrenctl_ok(
            p,
            &[
                "--format",
                "json",
                "list_queues",
                "name",
                "messages",
                "message_stats.publish",
            ],
        );
        let v = json_out(&r);
        let a = v
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == "cli.a")
            .expect("cli.a");
        assert_eq!(
            a,
            &json!({"name": "cli.a", "messages": 2, "message_stats": {"publish": 2}})
        );
        // `all` in JSON is the API's objects as they are.
        let v = json_out(&warrenctl_ok(
            p,
            &["--format", "json", "list_queues", "all"],
        ));
        assert!(v[0]["arguments"].is_object() && v[0]["durable"].is_boolean());
        // An unknown column is a usage error.
        let r = warrenctl(p, &["list_queues", "name", "mesages"]);
        assert_eq!(r.code, 64, "{r:?}");
        assert!(r.stderr.contains("unknown column 'mesages'"), "{r:?}");
        // Other listings work and have their default columns.
        for (cmd, first) in [
            ("list_exchanges", "name"),
            ("list_bindings", "source"),
            ("list_connections", "name"),
            ("list_channels", "name"),
            ("list_consumers", "queue.name"),
            ("list_users", "name"),
            ("list_vhosts", "name"),
            ("list_permissions", "user"),
        ] {
            let r = warrenctl_ok(p, &[cmd]);
            assert_eq!(
                r.stdout.split_whitespace().next(),
                Some(first),
                "{cmd}: {}",
                r.stdout
            );
        }
        let r = warrenctl_ok(p, &["list_exchanges", "name", "type"]);
        assert!(rows(&r.stdout).contains(&vec!["amq.topic".into(), "topic".into()]));
        let r = warrenctl_ok(p, &["status"]);
        assert!(r.stdout.contains("Warren"), "{}", r.stdout);
        assert!(
            r.stdout.contains(&format!("amqp {}", b.port)),
            "{}",
            r.stdout
        );
        let v = json_out(&warrenctl_ok(p, &["--format", "json", "status"]));
        assert_eq!(v["overview"]["object_totals"]["queues"], json!(3));
    }
}

#[test]
fn users_permissions_and_vhosts() {
    let b = Broker::start(2);
    let p = b.mgmt_port;
    let r = warrenctl_ok(
        p,
        &[
            "add_user",
            "alice",
            "s3cret",
            "--tags",
            "management,monitoring",
        ],
    );
    assert!(r.stdout.contains("Adding user \"alice\""), "{r:?}");
    // Adding it again fails (data error).
    let r = warrenctl(p, &["add_user", "alice", "other"]);
    assert_eq!(r.code, 65, "{r:?}");
    warrenctl_ok(p, &["add_vhost", "team"]);
    assert_eq!(warrenctl(p, &["add_vhost", "team"]).code, 65);
    warrenctl_ok(
        p,
        &[
            "-p",
            "team",
            "set_permissions",
            "alice",
            "^a\\.",
            ".*",
            ".*",
        ],
    );
    let v = json_out(&warrenctl_ok(p, &["--format", "json", "list_users"]));
    let alice = v
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "alice")
        .expect("alice listed");
    assert_eq!(alice["tags"], json!(["management", "monitoring"]));
    let r = warrenctl_ok(p, &["list_users"]);
    assert!(
        rows(&r.stdout).contains(&vec!["alice".into(), "management,monitoring".into()]),
        "{}",
        r.stdout
    );
    let v = json_out(&warrenctl_ok(
        p,
        &["--format", "json", "-p", "team", "list_permissions"],
    ));
    // warrenctl works through the HTTP API, where the user who creates a
    // vhost is granted full permissions on it (as RabbitMQ's API does).
    assert_eq!(
        v,
        json!([{"user": "guest", "vhost": "team", "configure": ".*", "write": ".*", "read": ".*"},
            {"user": "alice", "vhost": "team", "configure": "^a\\.", "write": ".*", "read": ".*"}])
    );
    // Topic permissions, as rabbitmqctl's set/list/clear_topic_permissions.
    warrenctl_ok(
        p,
        &[
            "-p",
            "team",
            "set_topic_permissions",
            "alice",
            "amq.topic",
            "^w\\.",
            "^r\\.",
        ],
    );
    let v = json_out(&warrenctl_ok(
        p,
        &["--format", "json", "-p", "team", "list_topic_permissions"],
    ));
    assert_eq!(
        v,
        json!([{"user": "alice", "exchange": "amq.topic", "write": "^w\\.", "read": "^r\\."}])
    );
    warrenctl_ok(
        p,
        &[
            "-p",
            "team",
            "clear_topic_permissions",
            "alice",
            "amq.topic",
        ],
    );
    let v = json_out(&warrenctl_ok(
        p,
        &["--format", "json", "-p", "team", "list_topic_permissions"],
    ));
    assert_eq!(v, json!([]));
    let v = json_out(&warrenctl_ok(
        p,
        &[
            "--format",
            "json",
            "list_user_permissions",
            "alice",
            "vhost",
        ],
    ));
    assert_eq!(v, json!([{"vhost": "team"}]));
    let r = warrenctl_ok(p, &["list_vhosts"]);
    assert!(
        rows(&r.stdout).contains(&vec!["team".into()]),
        "{}",
        r.stdout
    );

    // The new user works over AMQP in its vhost, within its permissions.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("amqp://alice:s3cret@127.0.0.1:{}/team", b.port);
    rt.block_on(async {
        let c = within(
            "alice connects",
            Connection::connect(&url, ConnectionProperties::default()),
        )
        .await
        .expect("alice logs in to team");
        let ch = open_channel(&c).await;
        declare_queue(&ch, "a.q").await;
        let _ = c.close(200, "bye").await;
    });
    // Through the management API with the new credentials.
    let r = warrenctl_env(
        &[
            "--port",
            &p.to_string(),
            "-p",
            "team",
            "list_queues",
            "name",
        ],
        &[("WARREN_USER", "alice"), ("WARREN_PASSWORD", "s3cret")],
        None,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("a.q"), "{r:?}");
    warrenctl_ok(p, &["authenticate_user", "alice", "s3cret"]);
    assert_eq!(
        warrenctl(p, &["authenticate_user", "alice", "nope"]).code,
        77
    );

    // Tags and password changes keep the rest.
    warrenctl_ok(p, &["set_user_tags", "alice", "administrator"]);
    warrenctl_ok(p, &["authenticate_user", "alice", "s3cret"]);
    warrenctl_ok(p, &["change_password", "alice", "n3w"]);
    assert_eq!(
        warrenctl(p, &["authenticate_user", "alice", "s3cret"]).code,
        77
    );
    warrenctl_ok(p, &["authenticate_user", "alice", "n3w"]);
    let u = Api::new(p).get_ok("/api/users/alice");
    assert_eq!(u["tags"], json!(["administrator"]));

    // Clearing permissions, deleting users and vhosts; missing ones are 2.
    warrenctl_ok(p, &["-p", "team", "clear_permissions", "alice"]);
    let v = json_out(&warrenctl_ok(
        p,
        &["--format", "json", "-p", "team", "list_permissions"],
    ));
    assert!(
        v.as_array().unwrap().iter().all(|p| p["user"] != "alice"),
        "{v}"
    );
    warrenctl_ok(p, &["delete_user", "alice"]);
    let r = warrenctl(p, &["delete_user", "alice"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("user 'alice' not found"), "{r:?}");
    assert_eq!(warrenctl(p, &["change_password", "alice", "x"]).code, 2);
    warrenctl_ok(p, &["delete_vhost", "team"]);
    assert_eq!(warrenctl(p, &["delete_vhost", "team"]).code, 2);
    assert_eq!(warrenctl(p, &["-p", "team", "list_queues"]).code, 2);
}

#[test]
fn delete_and_purge_queues() {
    for shards in SHARD_COUNTS {
        let b = Broker::start(shards);
        let p = b.mgmt_port;
        let api = Api::new(p);
        for i in 0..4 {
            let q = format!("dq{i}");
            warrenctl_ok(p, &["declare_queue", &q, "--durable", "false"]);
            for j in 0..3 {
                api.publish("/", "", &q, &format!("m{j}"));
            }
            api.wait_queue_field("/", &q, "messages", 3);
        }
        assert_eq!(api.get_queue("/", "dq0")["durable"], json!(false));
        for i in 0..4 {
            let q = format!("dq{i}");
            let r = warrenctl_ok(p, &["purge_queue", &q]);
            assert!(
                r.stdout.contains(&format!("Purging queue \"{q}\"")),
                "{r:?}"
            );
            api.wait_queue_field("/", &q, "messages", 0);
        }
        api.publish("/", "", "dq0", "again");
        api.wait_queue_field("/", "dq0", "messages", 1);
        // --if-empty refuses a queue with messages (the broker's 400 -> 65).
        let r = warrenctl(p, &["delete_queue", "dq0", "--if-empty"]);
        assert_eq!(r.code, 65, "{r:?}");
        api.get_queue("/", "dq0");
        for i in 0..4 {
            warrenctl_ok(p, &["-q", "delete_queue", &format!("dq{i}")]);
            assert_eq!(api.get(&format!("/api/queues/%2F/dq{i}")).status, 404);
        }
        let r = warrenctl(p, &["delete_queue", "dq0"]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(
            r.stderr.contains("queue 'dq0' in vhost '/' not found"),
            "{r:?}"
        );
        assert_eq!(warrenctl(p, &["purge_queue", "dq0"]).code, 2);
        // Exchanges and bindings from the command line.
        warrenctl_ok(p, &["declare_exchange", "cx", "topic"]);
        warrenctl_ok(p, &["declare_queue", "cq"]);
        warrenctl_ok(p, &["declare_binding", "cx", "cq", "--routing-key", "a.#"]);
        let r = warrenctl_ok(p, &["publish", "cx", "a.b", "hello"]);
        assert!(r.stdout.contains("routed"), "{r:?}");
        let v = json_out(&warrenctl_ok(
            p,
            &["--format", "json", "get", "cq", "--ack"],
        ));
        assert_eq!(v[0]["payload"], "hello");
        assert_eq!(v[0]["routing_key"], "a.b");
        warrenctl_ok(p, &["delete_exchange", "cx"]);
        assert_eq!(warrenctl(p, &["delete_exchange", "cx"]).code, 2);
    }
}

#[test]
fn export_and_import_definitions() {
    let a = Broker::start(1);
    let b = Broker::start(2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("defs.json");
    let file = file.to_str().unwrap();
    warrenctl_ok(a.mgmt_port, &["add_vhost", "exp"]);
    warrenctl_ok(a.mgmt_port, &["add_user", "bob", "b0b"]);
    warrenctl_ok(
        a.mgmt_port,
        &["-p", "exp", "set_permissions", "bob", ".*", ".*", ".*"],
    );
    warrenctl_ok(a.mgmt_port, &["-p", "exp", "declare_queue", "exp.q"]);
    warrenctl_ok(
        a.mgmt_port,
        &["-p", "exp", "declare_exchange", "exp.x", "fanout"],
    );
    warrenctl_ok(
        a.mgmt_port,
        &["-p", "exp", "declare_binding", "exp.x", "exp.q"],
    );
    let r = warrenctl_ok(a.mgmt_port, &["export_definitions", file]);
    assert!(r.stdout.contains("Exported definitions to"), "{r:?}");
    let defs: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert!(defs["users"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["name"] == "bob"));
    // To standard output too (the default).
    let out = json_out(&warrenctl_ok(a.mgmt_port, &["export_definitions"]));
    assert_eq!(out["queues"], defs["queues"]);

    warrenctl_ok(b.mgmt_port, &["import_definitions", file]);
    let v = json_out(&warrenctl_ok(
        b.mgmt_port,
        &[
            "--format",
            "json",
            "-p",
            "exp",
            "list_bindings",
            "source",
            "destination",
        ],
    ));
    assert!(
        v.as_array()
            .unwrap()
            .contains(&json!({"source": "exp.x", "destination": "exp.q"})),
        "{v}"
    );
    // bob has no management tag: the password check still works.
    warrenctl_ok(b.mgmt_port, &["authenticate_user", "bob", "b0b"]);
    assert_eq!(
        warrenctl(b.mgmt_port, &["authenticate_user", "bob", "bad"]).code,
        77
    );
    // From standard input.
    let c = Broker::start(1);
    let text = std::fs::read_to_string(file).unwrap();
    let r = warrenctl_env(
        &[
            "--port",
            &c.mgmt_port.to_string(),
            "import_definitions",
            "-",
        ],
        &[],
        Some(&text),
    );
    assert_eq!(r.code, 0, "{r:?}");
    Api::new(c.mgmt_port).get_queue("exp", "exp.q");

    // Missing file: 66; not JSON: 65; unwritable output: 73.
    let r = warrenctl(
        b.mgmt_port,
        &["import_definitions", "/nonexistent/defs.json"],
    );
    assert_eq!(r.code, 66, "{r:?}");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{ not json").unwrap();
    let r = warrenctl(b.mgmt_port, &["import_definitions", bad.to_str().unwrap()]);
    assert_eq!(r.code, 65, "{r:?}");
    let r = warrenctl(
        b.mgmt_port,
        &["export_definitions", "/nonexistent/dir/out.json"],
    );
    assert_eq!(r.code, 73, "{r:?}");
}

/// The reply text of the server's connection.close on a raw connection.
fn raw_close_text(c: &mut RawClient) -> (u16, String) {
    use amq_protocol::frame::AMQPFrame;
    use amq_protocol::protocol::{connection, AMQPClass};
    loop {
        match c.next() {
            Ok(Some(AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Close(cl)),
            ))) => return (cl.reply_code, cl.reply_text.to_string()),
            Ok(Some(_)) => continue,
            other => panic!("expected connection.close, got {other:?}"),
        }
    }
}

#[test]
fn close_connection_closes_a_lapin_connection() {
    for shards in SHARD_COUNTS {
        let b = Broker::start(shards);
        let p = b.mgmt_port;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (conn, mut errors) = rt.block_on(async {
            let conn = connect(&b).await;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            conn.on_error(move |e| {
                let _ = tx.send(e);
            });
            (conn, rx)
        });
        let name = mgmt::eventually("the connection is listed", || {
            let v = json_out(&warrenctl_ok(
                p,
                &["--format", "json", "list_connections", "name"],
            ));
            v[0]["name"].as_str().map(String::from)
        });
        let r = warrenctl_ok(p, &["close_connection", &name, "maintenance window"]);
        assert!(r.stdout.contains("Closing connection"), "{r:?}");
        rt.block_on(async {
            // lapin reports the forced close as an error on the connection
            // (the exact error depends on whether it reads connection.close
            // before the socket closes; the raw check below reads the text).
            within("connection closed by the broker", errors.recv())
                .await
                .expect("an error for the closed connection");
            assert!(!conn.status().connected());
        });
        mgmt::eventually("the connection is gone", || {
            let v = json_out(&warrenctl_ok(p, &["--format", "json", "list_connections"]));
            v.as_array().unwrap().is_empty().then_some(())
        });
        let r = warrenctl(p, &["close_connection", &name]);
        assert_eq!(r.code, 2, "{r:?}");

        // The reason (sent as RabbitMQ's X-Reason header) reaches the client
        // in connection.close 320 CONNECTION_FORCED.
        let mut raw = RawClient::handshake(b.port);
        let name = mgmt::eventually("the raw connection is listed", || {
            let v = json_out(&warrenctl_ok(
                p,
                &["--format", "json", "list_connections", "name"],
            ));
            v[0]["name"].as_str().map(String::from)
        });
        warrenctl_ok(p, &["close_connection", &name, "maintenance window"]);
        assert_eq!(
            raw_close_text(&mut raw),
            (320, "CONNECTION_FORCED - maintenance window".to_string())
        );
    }
}

#[test]
fn exit_codes_for_down_broker_bad_credentials_and_usage() {
    // Nothing listens on a port we just bound and released.
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = warrenctl(free, &["list_queues"]);
    assert_eq!(r.code, 69, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "cannot reach Warren management API at http://127.0.0.1:{free}: connection refused"
        )),
        "{r:?}"
    );
    // WARREN_MGMT_URL is used when no --host/--port is given.
    let r = warrenctl_env(
        &["status"],
        &[("WARREN_MGMT_URL", &format!("http://127.0.0.1:{free}"))],
        None,
    );
    assert_eq!(r.code, 69, "{r:?}");

    let b = Broker::start(1);
    let port = b.mgmt_port.to_string();
    let r = warrenctl_env(
        &["--port", &port, "--password", "wrong", "list_queues"],
        &[],
        None,
    );
    assert_eq!(r.code, 77, "{r:?}");
    assert!(
        r.stderr.contains("authentication failed for user 'guest'"),
        "{r:?}"
    );
    let r = warrenctl_env(
        &["--port", &port, "list_queues"],
        &[("WARREN_USER", "nobody"), ("WARREN_PASSWORD", "x")],
        None,
    );
    assert_eq!(r.code, 77, "{r:?}");
    let r = warrenctl_env(
        &["list_vhosts"],
        &[("WARREN_MGMT_URL", &format!("http://127.0.0.1:{port}"))],
        None,
    );
    assert_eq!(r.code, 0, "{r:?}");
    // A management (non-administrator) user may not add users: 77.
    warrenctl_ok(
        b.mgmt_port,
        &["add_user", "mgr", "m", "--tags", "management"],
    );
    let r = warrenctl_env(
        &[
            "--port",
            &port,
            "--user",
            "mgr",
            "--password",
            "m",
            "add_user",
            "x",
            "y",
        ],
        &[],
        None,
    );
    assert_eq!(r.code, 77, "{r:?}");

    // Usage errors: 64; help and version: 0, with the exit codes documented.
    assert_eq!(warrenctl(b.mgmt_port, &["no_such_command"]).code, 64);
    assert_eq!(warrenctl(b.mgmt_port, &["add_user", "only-name"]).code, 64);
    assert_eq!(
        warrenctl(b.mgmt_port, &["--format", "xml", "status"]).code,
        64
    );
    assert_eq!(
        warrenctl(b.mgmt_port, &["declare_queue", "q", "--arguments", "[1]"]).code,
        64
    );
    let h = warrenctl_env(&["--help"], &[], None);
    assert_eq!(h.code, 0);
    for needle in [
        "Exit codes",
        " 69 ",
        " 77 ",
        " 64 ",
        "list_queues",
        "export_definitions",
    ] {
        assert!(
            h.stdout.contains(needle),
            "help mentions {needle:?}: {}",
            h.stdout
        );
    }
    assert_eq!(warrenctl_env(&["--version"], &[], None).code, 0);
}

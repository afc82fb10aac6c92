//! Definitions in RabbitMQ's format: `tests/fixtures/rabbitmq-definitions.json`
//! is a real export from RabbitMQ 3.10 (made by
//! `tests/fixtures/make-rabbitmq-definitions.sh`). Importing it into Warren
//! must create every user (keeping the password hashes, so the users log in
//! with their original passwords), vhost, permission, exchange, queue and
//! binding; Warren's own export must import back into a fresh Warren.

mod common;
mod mgmt;

use common::*;
use lapin::{Connection, ConnectionProperties};
use mgmt::{seg, Api};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const FIXTURE: &str = include_str!("fixtures/rabbitmq-definitions.json");

/// The RabbitMQ export as it was recorded, policy included.
fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("fixture is JSON")
}

fn import(api: &Api, defs: &Value) {
    api.expect("POST", "/api/definitions", Some(defs), &[200, 201, 204]);
}

/// A comparable summary of definitions: one string per object, with only
/// the fields both brokers define (sorted, so order does not matter).
fn summary(d: &Value, section: &str) -> BTreeSet<String> {
    let fields: &[&str] = match section {
        "users" => &["name", "password_hash", "hashing_algorithm", "tags"],
        "vhosts" => &["name"],
        "permissions" => &["user", "vhost", "configure", "write", "read"],
        "exchanges" => &[
            "name",
            "vhost",
            "type",
            "durable",
            "auto_delete",
            "internal",
            "arguments",
        ],
        "queues" => &["name", "vhost", "durable", "auto_delete", "arguments"],
        "bindings" => &[
            "source",
            "vhost",
            "destination",
            "destination_type",
            "routing_key",
            "arguments",
        ],
        _ => unreachable!(),
    };
    d[section]
        .as_array()
        .unwrap_or_else(|| panic!("{section} is an array"))
        .iter()
        .map(|o| {
            let mut m = serde_json::Map::new();
            for f in fields {
                let mut v = o[*f].clone();
                // RabbitMQ exports tags as a list (3.9+) or a comma string.
                if *f == "tags" {
                    if let Value::String(s) = &v {
                        v = json!(s.split(',').filter(|t| !t.is_empty()).collect::<Vec<_>>());
                    }
                }
                m.insert(f.to_string(), v);
            }
            Value::Object(m).to_string()
        })
        .collect()
}

const SECTIONS: [&str; 6] = [
    "users",
    "vhosts",
    "permissions",
    "exchanges",
    "queues",
    "bindings",
];

fn assert_same_definitions(want: &Value, got: &Value, what: &str) {
    for s in SECTIONS {
        let (w, g) = (summary(want, s), summary(got, s));
        let missing: Vec<_> = w.difference(&g).collect();
        let extra: Vec<_> = g.difference(&w).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{what}: {s} differ\n missing: {missing:#?}\n extra: {extra:#?}"
        );
    }
}

async fn login(b: &Broker, user: &str, pass: &str, vhost: &str) -> Result<Connection, String> {
    let url = format!("amqp://{user}:{pass}@127.0.0.1:{}/{}", b.port, seg(vhost));
    within(
        "connect",
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await
    .map_err(|e| e.to_string())
}

/// Everything in the fixture exists in Warren after the import, and works.
fn check_imported(api: &Api) {
    let d = fixture();
    // Users keep their hashes and tags.
    for u in d["users"].as_array().unwrap() {
        let name = u["name"].as_str().unwrap();
        let got = api.get_ok(&format!("/api/users/{}", seg(name)));
        assert_eq!(got["password_hash"], u["password_hash"], "hash of {name}");
        assert_eq!(got["hashing_algorithm"], "rabbit_password_hashing_sha256");
        assert_eq!(got["tags"], u["tags"], "tags of {name}");
    }
    let vhosts = api.get_ok("/api/vhosts");
    for v in ["/", "app-vhost"] {
        assert!(
            vhosts.as_array().unwrap().iter().any(|x| x["name"] == v),
            "vhost {v}: {vhosts}"
        );
    }
    for p in d["permissions"].as_array().unwrap() {
        let got = api.get_ok(&format!(
            "/api/permissions/{}/{}",
            seg(p["vhost"].as_str().unwrap()),
            seg(p["user"].as_str().unwrap())
        ));
        for k in ["configure", "write", "read"] {
            assert_eq!(got[k], p[k], "{k} of {p}");
        }
    }
    for x in d["exchanges"].as_array().unwrap() {
        let got = api.get_ok(&format!(
            "/api/exchanges/{}/{}",
            seg(x["vhost"].as_str().unwrap()),
            seg(x["name"].as_str().unwrap())
        ));
        for k in ["type", "durable", "auto_delete", "internal", "arguments"] {
            assert_eq!(got[k], x[k], "{k} of exchange {}", x["name"]);
        }
    }
    for q in d["queues"].as_array().unwrap() {
        let got = api.get_queue(q["vhost"].as_str().unwrap(), q["name"].as_str().unwrap());
        for k in ["durable", "auto_delete", "arguments"] {
            assert_eq!(got[k], q[k], "{k} of queue {}", q["name"]);
        }
    }
    let mut bindings = api.get_ok("/api/bindings/app-vhost");
    bindings
        .as_array_mut()
        .unwrap()
        .extend(api.get_ok("/api/bindings/%2F").as_array().unwrap().clone());
    let got = summary(&json!({ "bindings": bindings }), "bindings");
    for b in summary(&d, "bindings") {
        assert!(got.contains(&b), "binding {b} missing; have {got:#?}");
    }
}

/// Messages follow the imported bindings (topic, exchange-to-exchange,
/// headers with arguments).
fn check_routing(api: &Api) {
    assert!(api.publish("app-vhost", "app.events", "order.new", "o1"));
    assert!(api.publish("app-vhost", "app.events", "order.eu.fr", "o2"));
    let a = api.post(
        "/api/exchanges/app-vhost/app.headers/publish",
        &json!({"properties": {"headers": {"kind": "audit"}}, "routing_key": "",
            "payload": "h1", "payload_encoding": "string"}),
    );
    assert_eq!(a.json["routed"], json!(true), "{}", a.text);
    let a = api.post(
        "/api/exchanges/app-vhost/app.headers/publish",
        &json!({"properties": {"headers": {"kind": "other"}}, "routing_key": "",
            "payload": "h2", "payload_encoding": "string"}),
    );
    assert_eq!(a.json["routed"], json!(false), "{}", a.text);
    // order.new -> app.orders (order.*) and app.audit (via app.fanout);
    // order.eu.fr -> app.eu-orders (order.eu.#) and app.audit; h1 -> app.audit.
    api.wait_queue_field("app-vhost", "app.orders", "messages", 1);
    api.wait_queue_field("app-vhost", "app.eu-orders", "messages", 1);
    api.wait_queue_field("app-vhost", "app.audit", "messages", 3);
    assert!(api.publish("/", "legacy.direct", "jobs", "j1"));
    api.wait_queue_field("/", "legacy.jobs", "messages", 1);
}

async fn check_logins(b: &Broker) {
    // The imported users log in with the passwords they had in RabbitMQ.
    let c = login(b, "app-user", "app-secret", "app-vhost")
        .await
        .expect("app-user logs in with its RabbitMQ password");
    let _ = c.close(200, "bye").await;
    let c = login(b, "worker", "worker-pass", "app-vhost")
        .await
        .expect("worker logs in");
    let _ = c.close(200, "bye").await;
    let c = login(b, "guest", "guest", "/").await.expect("guest");
    let _ = c.close(200, "bye").await;
    assert!(login(b, "app-user", "wrong", "app-vhost").await.is_err());
    // cert-only has no password hash at all.
    assert!(login(b, "cert-only", "", "/").await.is_err());
    assert!(login(b, "cert-only", "x", "/").await.is_err());
    // monitor has no permission in app-vhost.
    assert!(login(b, "monitor", "monitor-pass", "app-vhost")
        .await
        .is_err());
    let c = login(b, "monitor", "monitor-pass", "/")
        .await
        .expect("monitor logs in to /");
    let _ = c.close(200, "bye").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_export_imports_into_warren() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let mut b = start_broker(shards).await;
        let port = b.mgmt_port;
        tokio::task::spawn_blocking(move || {
            let api = Api::new(port);
            import(&api, &fixture());
            check_imported(&api);
            // The policy came too, and applies to the queues it matches.
            let p = api.get_ok("/api/policies/app-vhost/app-ttl");
            assert_eq!(p["definition"]["message-ttl"], 30000);
            assert_eq!(p["apply-to"], "queues");
            // Importing again changes nothing (and does not fail).
            import(&api, &fixture());
            check_imported(&api);
        })
        .await
        .unwrap();
        check_logins(&b).await;
        // Imported permissions are enforced: app-user may only configure app.*.
        let c = login(&b, "app-user", "app-secret", "app-vhost")
            .await
            .unwrap();
        let ch = open_channel(&c).await;
        declare_queue(&ch, "app.new").await;
        let r = within(
            "declare outside app.*",
            ch.queue_declare(
                "other",
                Default::default(),
                lapin::types::FieldTable::default(),
            ),
        )
        .await;
        assert_code(r, 403, "declare outside the permission regex");
        let _ = c.close(200, "bye").await;

        // Everything is durable: it survives a restart (kill -9 even).
        b.restart();
        let port = b.mgmt_port;
        tokio::task::spawn_blocking(move || {
            let api = Api::new(port);
            check_imported(&api);
            check_routing(&api);
        })
        .await
        .unwrap();
        check_logins(&b).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warren_export_round_trips() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let first = start_broker(shards).await;
        let second = start_broker(3 - shards).await;
        let (p1, p2) = (first.mgmt_port, second.mgmt_port);
        tokio::task::spawn_blocking(move || {
            let a = Api::new(p1);
            import(&a, &fixture());
            // Objects made in Warren itself: a user with a Warren-made hash,
            // a queue with arguments, a binding with arguments.
            a.expect(
                "PUT",
                "/api/users/made-here",
                Some(&json!({"password": "warren-pass", "tags": "monitoring"})),
                &[201, 204],
            );
            a.expect(
                "PUT",
                "/api/permissions/app-vhost/made-here",
                Some(&json!({"configure": "", "write": "", "read": ".*"})),
                &[201, 204],
            );
            a.expect(
                "PUT",
                "/api/queues/app-vhost/made.q",
                Some(&json!({"durable": true, "arguments": {"x-message-ttl": 5}})),
                &[201, 204],
            );
            a.expect(
                "POST",
                "/api/bindings/app-vhost/e/app.headers/q/made.q",
                Some(&json!({"routing_key": "", "arguments": {"x-match": "any", "k": "v"}})),
                &[201],
            );
            // Non-durable things are not exported (as in RabbitMQ).
            a.expect(
                "PUT",
                "/api/queues/app-vhost/transient.q",
                Some(&json!({"durable": false})),
                &[201, 204],
            );
            let export = a.get_ok("/api/definitions");
            for k in [
                "rabbit_version",
                "rabbitmq_version",
                "users",
                "vhosts",
                "permissions",
                "topic_permissions",
                "parameters",
                "global_parameters",
                "policies",
                "queues",
                "exchanges",
                "bindings",
            ] {
                assert!(export.get(k).is_some(), "export has {k}");
            }
            // The export holds everything the fixture had, plus what was
            // made here, and nothing transient.
            let mut want = fixture();
            for (section, extra) in [
                (
                    "permissions",
                    json!({"user": "made-here", "vhost": "app-vhost", "configure": "",
                        "write": "", "read": ".*"}),
                ),
                (
                    "queues",
                    json!({"name": "made.q", "vhost": "app-vhost", "durable": true,
                        "auto_delete": false, "arguments": {"x-message-ttl": 5}}),
                ),
                (
                    "bindings",
                    json!({"source": "app.headers", "vhost": "app-vhost", "destination": "made.q",
                        "destination_type": "queue", "routing_key": "",
                        "arguments": {"x-match": "any", "k": "v"}}),
                ),
            ] {
                want[section].as_array_mut().unwrap().push(extra);
            }
            let made = export["users"]
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["name"] == "made-here")
                .expect("made-here exported")
                .clone();
            want["users"].as_array_mut().unwrap().push(made);
            assert_same_definitions(&want, &export, "Warren's export");

            // Into a fresh Warren (with the other shard count).
            let b2 = Api::new(p2);
            import(&b2, &export);
            let again = b2.get_ok("/api/definitions");
            assert_same_definitions(&export, &again, "re-imported export");
            check_imported(&b2);
            check_routing(&b2);

            // A single vhost's export has no users, vhosts or permissions.
            let one = a.get_ok("/api/definitions/app-vhost");
            assert!(one.get("users").is_none(), "{one}");
            assert!(one["queues"]
                .as_array()
                .unwrap()
                .iter()
                .all(|q| q["vhost"] == "app-vhost"));
            assert!(one["queues"]
                .as_array()
                .unwrap()
                .iter()
                .any(|q| q["name"] == "made.q"));
        })
        .await
        .unwrap();
        // The Warren-made hash works in the second Warren too.
        let c = login(&second, "made-here", "warren-pass", "app-vhost")
            .await
            .expect("made-here logs in after the round trip");
        let _ = c.close(200, "bye").await;
        check_logins(&second).await;
    }
}

#[test]
fn bad_definitions_are_refused() {
    let b = Broker::start(1);
    let api = Api::new(b.mgmt_port);
    let a = api.call(
        "POST",
        "/api/definitions",
        Some(&Value::String("not an object".into())),
    );
    assert!(a.status == 400, "{} {}", a.status, a.text);
    // An unknown hashing algorithm cannot be imported (the user could
    // never log in).
    let d = json!({"users": [{"name": "md5user", "password_hash": "abc",
        "hashing_algorithm": "rabbit_password_hashing_md5", "tags": []}]});
    let a = api.post("/api/definitions", &d);
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.json["reason"]
        .as_str()
        .is_some_and(|r| r.contains("rabbit_password_hashing_md5")));
    // Only administrators may import.
    api.expect(
        "PUT",
        "/api/users/mgr",
        Some(&json!({"password": "m", "tags": "management"})),
        &[201, 204],
    );
    let mgr = Api::as_user(b.mgmt_port, "mgr", "m");
    let a = mgr.post("/api/definitions", &fixture());
    assert_eq!(a.status, 401, "{}", a.text);
    assert_eq!(
        api.get("/api/vhosts/app-vhost").status,
        404,
        "nothing imported"
    );
}

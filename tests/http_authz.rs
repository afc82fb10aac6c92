//! The management API's one authorisation gate, checked route by route for
//! users without the rights, with the status codes and texts the real
//! RabbitMQ 3.10 answers (recorded with `scripts/compare.sh start rabbitmq`
//! and its management plugin).

mod common;
mod mgmt;

use common::*;
use mgmt::Api;
use serde_json::json;

/// A broker with vhost `v`, queues `q` (1 message) and `mine.q`, a
/// `monitoring` user `mon` with no permissions and a `management` user
/// `mgr` allowed only `^mine` in `v`.
fn setup(shards: usize) -> (Broker, Api) {
    let b = Broker::start(shards);
    let admin = Api::new(b.mgmt_port);
    admin.expect("PUT", "/api/vhosts/v", None, &[201, 204]);
    admin.expect(
        "PUT",
        "/api/users/mon",
        Some(&json!({"password": "p", "tags": "monitoring"})),
        &[201, 204],
    );
    admin.expect(
        "PUT",
        "/api/users/mgr",
        Some(&json!({"password": "p", "tags": "management"})),
        &[201, 204],
    );
    admin.expect(
        "PUT",
        "/api/permissions/v/mgr",
        Some(&json!({"configure": "^mine", "write": "^mine", "read": "^mine"})),
        &[201, 204],
    );
    for q in ["q", "mine.q"] {
        admin.expect(
            "PUT",
            &format!("/api/queues/v/{q}"),
            Some(&json!({"durable": true})),
            &[201, 204],
        );
    }
    assert!(admin.publish("v", "amq.default", "q", "x"));
    (b, admin)
}

/// (method, path, body, status, reason) for one user.
type Case = (
    &'static str,
    &'static str,
    Option<serde_json::Value>,
    u16,
    &'static str,
);

fn check(api: &Api, cases: &[Case]) {
    for (method, path, body, status, reason) in cases {
        let a = api.call(method, path, body.as_ref());
        assert_eq!(
            a.status, *status,
            "{} {method} {path}: {}",
            api.user, a.text
        );
        if !reason.is_empty() {
            assert_eq!(a.json["reason"], *reason, "{} {method} {path}", api.user);
        }
    }
}

fn get_body() -> Option<serde_json::Value> {
    Some(json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}))
}

fn publish_body() -> Option<serde_json::Value> {
    Some(
        json!({"properties": {}, "routing_key": "q", "payload": "x", "payload_encoding": "string"}),
    )
}

const NO_VHOST: &str = "User not authorised to access virtual host";

fn users_without_rights_are_refused_on_every_route(shards: usize) {
    let (b, admin) = setup(shards);
    let mon = Api::as_user(b.mgmt_port, "mon", "p");
    check(
        &mon,
        &[
            ("GET", "/api/queues/v/q", None, 401, NO_VHOST),
            ("GET", "/api/queues/v", None, 401, NO_VHOST),
            ("GET", "/api/exchanges/v", None, 401, NO_VHOST),
            ("GET", "/api/bindings/v", None, 401, NO_VHOST),
            ("GET", "/api/queues/v/q/bindings", None, 401, NO_VHOST),
            ("POST", "/api/queues/v/q/get", get_body(), 401, NO_VHOST),
            (
                "POST",
                "/api/exchanges/v/amq.default/publish",
                publish_body(),
                401,
                NO_VHOST,
            ),
            ("DELETE", "/api/queues/v/q/contents", None, 401, NO_VHOST),
            ("DELETE", "/api/queues/v/q", None, 401, NO_VHOST),
            ("PUT", "/api/queues/v/q2", Some(json!({})), 401, NO_VHOST),
            (
                "PUT",
                "/api/exchanges/v/x2",
                Some(json!({"type": "direct"})),
                401,
                NO_VHOST,
            ),
            (
                "POST",
                "/api/bindings/v/e/amq.direct/q/q",
                Some(json!({"routing_key": "k"})),
                401,
                NO_VHOST,
            ),
            ("GET", "/api/users", None, 401, "Not administrator user"),
            ("PUT", "/api/vhosts/v9", None, 401, "Not administrator user"),
            (
                "GET",
                "/api/definitions",
                None,
                401,
                "Not administrator user",
            ),
            (
                "GET",
                "/api/permissions",
                None,
                401,
                "Not administrator user",
            ),
            ("GET", "/api/nodes", None, 200, ""),
            ("GET", "/api/connections", None, 200, ""),
        ],
    );
    // Listings show only vhosts the user may use.
    assert_eq!(mon.get("/api/queues").json, json!([]));
    let mgr = Api::as_user(b.mgmt_port, "mgr", "p");
    check(
        &mgr,
        &[
            ("GET", "/api/queues/v/q", None, 200, ""),
            ("GET", "/api/queues/v", None, 200, ""),
            (
                "POST",
                "/api/queues/v/q/get",
                get_body(),
                401,
                "ACCESS_REFUSED - access to queue 'q' in vhost 'v' refused for user 'mgr'",
            ),
            ("POST", "/api/queues/v/mine.q/get", get_body(), 200, ""),
            (
                "POST",
                "/api/exchanges/v/amq.default/publish",
                publish_body(),
                400,
                "403 ACCESS_REFUSED - access to exchange 'amq.default' in vhost 'v' refused for user 'mgr'",
            ),
            ("DELETE", "/api/queues/v/q/contents", None, 401, "Access refused."),
            ("DELETE", "/api/queues/v/q", None, 401, "Access refused."),
            ("PUT", "/api/queues/v/q2", Some(json!({})), 401, "Access refused."),
            ("PUT", "/api/queues/v/mine.x", Some(json!({})), 201, ""),
            ("PUT", "/api/exchanges/v/x2", Some(json!({"type": "direct"})), 401, "Access refused."),
            // Write on the destination is not enough: read on the source too.
            ("POST", "/api/bindings/v/e/amq.direct/q/mine.q", Some(json!({"routing_key": "k"})), 401, "Access refused."),
            ("GET", "/api/users", None, 401, "Not administrator user"),
            ("GET", "/api/vhosts/v", None, 401, "Not administrator user"),
            ("GET", "/api/nodes", None, 401, "Not monitor user"),
            ("GET", "/api/definitions/v", None, 401, "Not administrator user"),
        ],
    );
    // Nothing was taken, purged or deleted by the refused requests.
    let q = admin.get_queue("v", "q");
    assert_eq!(q["messages"], 1, "{q}");
    assert_eq!(admin.get("/api/queues/v/q2").status, 404);
    assert_eq!(admin.get("/api/exchanges/v/x2").status, 404);
}

#[test]
fn users_without_rights_are_refused_on_every_route_1_shard() {
    users_without_rights_are_refused_on_every_route(1);
}

#[test]
fn users_without_rights_are_refused_on_every_route_2_shards() {
    users_without_rights_are_refused_on_every_route(2);
}

/// A management user sees and closes only its own connections.
#[test]
fn management_users_may_close_only_their_own_connections() {
    run_async(1, |_| async {
        let (b, admin) = tokio::task::block_in_place(|| setup(1));
        let _guest_conn = connect(&b).await;
        let names: Vec<String> = tokio::task::block_in_place(|| {
            let mut v = Vec::new();
            for _ in 0..50 {
                v = admin
                    .get_ok("/api/connections")
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if !v.is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            v.iter()
                .map(|c| c["name"].as_str().unwrap().to_string())
                .collect()
        });
        assert!(!names.is_empty());
        let mgr = Api::as_user(b.mgmt_port, "mgr", "p");
        tokio::task::block_in_place(|| {
            assert_eq!(mgr.get("/api/connections").json, json!([]));
            let path = format!("/api/connections/{}", mgmt::seg(&names[0]));
            assert_eq!(
                mgr.delete(&path).status,
                404,
                "guest's connection is not mgr's"
            );
            assert_eq!(
                admin.get_ok("/api/connections").as_array().unwrap().len(),
                names.len()
            );
        });
    });
}

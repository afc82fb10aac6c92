//! Request bodies and paths read as RabbitMQ 3.10 reads them (answers
//! recorded from the real broker): string booleans honoured, non-JSON
//! refused without creating anything, `+` in a path segment is a plus.

mod common;
mod mgmt;

use common::*;
use mgmt::Api;
use serde_json::json;

fn put_raw(api: &Api, path: &str, body: &str) -> (u16, serde_json::Value) {
    let a = api.call_raw("PUT", path, body);
    (a.status, a.json)
}

#[test]
fn string_booleans_are_honoured_and_bad_bodies_refused() {
    let b = Broker::start(1);
    let api = Api::new(b.mgmt_port);
    // rabbitmqadmin 3.x sends booleans as strings.
    let (s, _) = put_raw(
        &api,
        "/api/queues/%2F/sb",
        r#"{"durable":"false","auto_delete":"true"}"#,
    );
    assert_eq!(s, 201);
    let q = api.get_queue("/", "sb");
    assert_eq!(
        (q["durable"].clone(), q["auto_delete"].clone()),
        (json!(false), json!(true))
    );
    for (body, reason) in [
        ("not json", json!("not_json")),
        ("[1,2]", json!("not_json")),
        (r#"{"durable":"maybe"}"#, json!(["not_boolean", "maybe"])),
        (r#"{"durable":1}"#, json!(["not_boolean", 1])),
    ] {
        let (s, j) = put_raw(&api, "/api/queues/%2F/bad", body);
        assert_eq!(s, 400, "{body}");
        assert_eq!(
            j,
            json!({"error": "bad_request", "reason": reason}),
            "{body}"
        );
        assert_eq!(
            api.get("/api/queues/%2F/bad").status,
            404,
            "nothing created for {body}"
        );
    }
    let (s, j) = put_raw(&api, "/api/exchanges/%2F/bx", "nope");
    assert_eq!((s, j["reason"].clone()), (400, json!("not_json")));
    // An empty body declares with RabbitMQ's defaults (not durable).
    let (s, _) = put_raw(&api, "/api/queues/%2F/empty", "");
    assert_eq!(s, 201);
    assert_eq!(api.get_queue("/", "empty")["durable"], json!(false));
}

#[test]
fn a_plus_in_a_path_names_the_object_with_the_plus() {
    let b = Broker::start(1);
    let api = Api::new(b.mgmt_port);
    for name in ["orders+eu", "orders eu"] {
        api.expect(
            "PUT",
            &format!("/api/queues/%2F/{}", mgmt::seg(name)),
            Some(&json!({"durable": false})),
            &[201],
        );
    }
    // Go's url.PathEscape keeps '+' literal in a path segment.
    assert_eq!(api.delete("/api/queues/%2F/orders+eu").status, 204);
    assert_eq!(
        api.get("/api/queues/%2F/orders%20eu").status,
        200,
        "the other queue is untouched"
    );
    assert_eq!(api.get("/api/queues/%2F/orders%2Beu").status, 404);
}

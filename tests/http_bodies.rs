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

#[test]
fn missing_keys_and_bad_values_get_rabbitmqs_400s() {
    let b = Broker::start(1);
    let api = Api::new(b.mgmt_port);
    api.expect("PUT", "/api/queues/%2F/k", Some(&json!({})), &[201]);
    // Texts recorded from RabbitMQ 3.10.
    for (path, body, reason) in [
        (
            "/api/exchanges/%2F/amq.default/publish",
            json!({}),
            json!("[{key_missing,routing_key},\n {key_missing,properties},\n {key_missing,payload},\n {key_missing,payload_encoding}]"),
        ),
        (
            "/api/exchanges/%2F/amq.default/publish",
            json!({"routing_key": "k", "payload": "x"}),
            json!("[{key_missing,properties},{key_missing,payload_encoding}]"),
        ),
        (
            "/api/exchanges/%2F/amq.default/publish",
            json!({"routing_key": "k", "payload": "x", "payload_encoding": "foo", "properties": {}}),
            json!(["unsupported_encoding", "foo"]),
        ),
        (
            "/api/exchanges/%2F/amq.default/publish",
            json!({"routing_key": "k", "payload": "x", "payload_encoding": "string",
                   "properties": {"delivery_mode": "2"}}),
            json!(["not_int", "delivery_mode"]),
        ),
        (
            "/api/exchanges/%2F/amq.default/publish",
            json!({"routing_key": "k", "payload": "x", "payload_encoding": "string",
                   "properties": {"user_id": "bob"}}),
            json!("406 PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was 'guest'"),
        ),
        (
            "/api/exchanges/%2F/amq.default/publish",
            json!({"routing_key": "k", "payload": "x", "payload_encoding": "string",
                   "properties": {"expiration": "abc"}}),
            json!("406 PRECONDITION_FAILED - invalid expiration 'abc': no_integer"),
        ),
        (
            "/api/queues/%2F/k/get",
            json!({}),
            json!("[{key_missing,ackmode},{key_missing,count},{key_missing,encoding}]"),
        ),
    ] {
        let a = api.post(path, &body);
        assert_eq!(a.status, 400, "{body}: {}", a.text);
        assert_eq!(a.json["reason"], reason, "{body}");
    }
    let a = api.call(
        "PUT",
        "/api/permissions/%2F/guest",
        Some(&json!({"configure": ".*"})),
    );
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(
        a.json["reason"],
        json!("[{key_missing,write},{key_missing,read}]")
    );
    assert_eq!(
        api.get_queue("/", "k")["messages"],
        json!(0),
        "nothing published"
    );
}

#[test]
fn every_published_property_comes_back_and_get_ackmodes_do_what_they_say() {
    let b = Broker::start(1);
    let api = Api::new(b.mgmt_port);
    api.expect("PUT", "/api/queues/%2F/dead", Some(&json!({})), &[201]);
    let args =
        json!({"arguments": {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"}});
    api.expect("PUT", "/api/queues/%2F/p", Some(&args), &[201]);
    let props = json!({"app_id": "a", "type": "t", "timestamp": 5, "message_id": "m",
        "expiration": "60000", "reply_to": "r", "correlation_id": "c", "priority": 3,
        "headers": {"h": 1}, "content_encoding": "gz", "content_type": "text/plain",
        "delivery_mode": 2, "user_id": "guest"});
    for payload in ["one", "two"] {
        let a = api.post(
            "/api/exchanges/%2F/amq.default/publish",
            &json!({"routing_key": 5, "payload": payload, "payload_encoding": "string",
                    "properties": props}),
        );
        assert_eq!(a.json, json!({"routed": false}), "key 5 is the text \"5\"");
        let a = api.post(
            "/api/exchanges/%2F/amq.default/publish",
            &json!({"routing_key": "p", "payload": payload, "payload_encoding": "string",
                    "properties": props}),
        );
        assert_eq!(a.json, json!({"routed": true}));
    }
    api.wait_queue_field("/", "p", "messages_ready", 2);
    // reject_requeue_true puts it back, redelivered.
    let got = api.post(
        "/api/queues/%2F/p/get",
        &json!({"count": "1", "ackmode": "reject_requeue_true", "encoding": "auto"}),
    );
    assert_eq!(got.json[0]["properties"], props, "{}", got.text);
    api.wait_queue_field("/", "p", "messages_ready", 2);
    // reject_requeue_false rejects without requeue: dead-lettered.
    let got = api.post(
        "/api/queues/%2F/p/get",
        &json!({"count": 1, "ackmode": "reject_requeue_false", "encoding": "auto"}),
    );
    assert_eq!(got.json[0]["redelivered"], json!(true), "{}", got.text);
    api.wait_queue_field("/", "p", "messages_ready", 1);
    api.wait_queue_field("/", "dead", "messages_ready", 1);
    // ack_requeue_false removes it.
    let got = api.post(
        "/api/queues/%2F/p/get",
        &json!({"count": 5, "ackmode": "ack_requeue_false", "encoding": "base64"}),
    );
    assert_eq!(got.json.as_array().unwrap().len(), 1, "{}", got.text);
    assert_eq!(got.json[0]["payload_encoding"], json!("base64"));
    api.wait_queue_field("/", "p", "messages_ready", 0);
}

#[test]
fn a_binding_answers_201_with_its_location_and_head_answers_like_get() {
    let b = Broker::start(1);
    let api = Api::new(b.mgmt_port);
    api.expect("PUT", "/api/queues/%2F/bq", Some(&json!({})), &[201]);
    // As RabbitMQ 3.10 answers: the location is relative to the request.
    let a = api.post("/api/bindings/%2F/e/amq.direct/q/bq", &json!({}));
    assert_eq!(a.status, 201);
    assert_eq!(a.location.as_deref(), Some("bq/~"));
    let a = api.post(
        "/api/bindings/%2F/e/amq.direct/q/bq",
        &json!({"routing_key": "a b"}),
    );
    // The key is escaped once more in the location (RabbitMQ 3.10).
    assert_eq!(a.location.as_deref(), Some("bq/a%2Bb"));
    let a = api.post(
        "/api/bindings/%2F/e/amq.direct/q/bq",
        &json!({"routing_key": "a/b", "arguments": {"x": 1}}),
    );
    assert_eq!(a.location.as_deref(), Some("bq/a%252Fb~9nmLZQ"));
    let head = api.call("HEAD", "/api/queues/%2F/bq", None);
    assert_eq!(head.status, 200);
    assert_eq!(head.text, "", "HEAD has no body");
    let announced: usize = head.content_length.unwrap().parse().unwrap();
    assert!(announced > 0, "HEAD announces the GET body's length");
    assert_eq!(api.call("HEAD", "/api/queues/%2F/nope", None).status, 404);
}

#[test]
fn a_per_vhost_definitions_import_lands_in_the_paths_vhost() {
    let b = Broker::start(1);
    let api = Api::new(b.mgmt_port);
    api.expect("PUT", "/api/vhosts/other", None, &[201, 204]);
    let defs = json!({"queues": [{"name": "imported", "durable": true, "auto_delete": false,
        "arguments": {}}], "exchanges": [{"name": "ix", "type": "fanout", "durable": true,
        "auto_delete": false, "internal": false, "arguments": {}}],
        "bindings": [{"source": "ix", "destination": "imported", "destination_type": "queue",
        "routing_key": "", "arguments": {}}]});
    api.expect("POST", "/api/definitions/other", Some(&defs), &[204]);
    assert_eq!(api.get_queue("other", "imported")["durable"], json!(true));
    assert_eq!(
        api.get("/api/exchanges/other/ix").json["type"],
        json!("fanout")
    );
    assert!(api.publish("other", "ix", "", "via the imported binding"));
    // A full import without a vhost is refused as RabbitMQ refuses it.
    let a = api.post("/api/definitions", &json!({"queues": [{"name": "nv"}]}));
    assert_eq!(a.status, 400);
    assert_eq!(a.json["reason"], json!(["no_such_vhost", "undefined"]));
    // Users are not per-vhost: passed over, as RabbitMQ 3.10 does, so a
    // full export imports into one vhost.
    let a = api.post(
        "/api/definitions/other",
        &json!({"users": [{"name": "u", "password": "p", "tags": ""}], "vhosts": [{"name": "nv2"}]}),
    );
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(api.get("/api/users/u").status, 404);
    assert_eq!(api.get("/api/vhosts/nv2").status, 404);
}

#[test]
fn options_and_wrong_methods_answer_from_the_route_table_and_a_second_put_is_204() {
    let b = Broker::start(1);
    let anon = Api::anonymous(b.mgmt_port);
    // As RabbitMQ 3.10 answers, credentials or not.
    let a = anon.call("OPTIONS", "/api/queues/%2F/q1", None);
    assert_eq!(a.status, 200);
    assert_eq!(a.allow.as_deref(), Some("HEAD, GET, PUT, DELETE, OPTIONS"));
    let a = anon.call("PATCH", "/api/queues", None);
    assert_eq!(a.status, 405);
    assert_eq!(a.allow.as_deref(), Some("HEAD, GET, OPTIONS"));
    let api = Api::new(b.mgmt_port);
    let a = api.call("POST", "/api/overview", Some(&json!({})));
    assert_eq!(
        (a.status, a.allow.as_deref()),
        (405, Some("HEAD, GET, OPTIONS"))
    );
    // PUT creates (201), then updates (204), as in RabbitMQ.
    for path in [
        "/api/queues/%2F/again",
        "/api/exchanges/%2F/again",
        "/api/vhosts/again",
    ] {
        let body = json!({"type": "direct"});
        assert_eq!(api.call("PUT", path, Some(&body)).status, 201, "{path}");
        assert_eq!(api.call("PUT", path, Some(&body)).status, 204, "{path}");
    }
    let user = json!({"password": "p", "tags": ""});
    assert_eq!(api.call("PUT", "/api/users/again", Some(&user)).status, 201);
    assert_eq!(api.call("PUT", "/api/users/again", Some(&user)).status, 204);
    let perm = json!({"configure": "", "write": "", "read": ""});
    let p = "/api/permissions/%2F/again";
    assert_eq!(api.call("PUT", p, Some(&perm)).status, 201);
    assert_eq!(api.call("PUT", p, Some(&perm)).status, 204);
}

/// Properties keys of bindings with arguments, as RabbitMQ 3.10.8 computed
/// them for the same bindings (`erlang:phash2` of the stored table;
/// recorded from a private node with pika and the HTTP API), so a key a
/// tool saved on one broker finds the binding on the other.
#[test]
fn binding_properties_keys_with_arguments_are_rabbitmqs() {
    let b = Broker::start(2);
    let api = Api::new(b.mgmt_port);
    api.expect(
        "PUT",
        "/api/exchanges/%2F/pk.h",
        Some(&json!({"type": "headers"})),
        &[201],
    );
    api.expect("PUT", "/api/queues/%2F/pk.q", Some(&json!({})), &[201]);
    let cases = [
        (json!({"x-match": "any", "k": "v"}), "http+0~AIDNeg"),
        (json!({"n": 5}), "http+1~-5qlfw"),
        (json!({"fl": 2.5}), "http+2~t_if0Q"),
        (json!({"b": false}), "http+3~QvGL9Q"),
        (json!({"o": {"y": 1, "x": [1, "a"]}}), "http+4~4RWhuA"),
        (json!({"s": "true"}), "http+5~R68-Pw"),
        (json!({"big": 1152921504606846976u64}), "http+6~0JcFBA"),
        (json!({"e": []}), "http+7~4Kb9ag"),
    ];
    for (i, (args, _)) in cases.iter().enumerate() {
        let r = api.post(
            "/api/bindings/%2F/e/pk.h/q/pk.q",
            &json!({"routing_key": format!("http {i}"), "arguments": args}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let listed = api.get_ok("/api/bindings/%2F/e/pk.h/q/pk.q");
    for (i, (_, want)) in cases.iter().enumerate() {
        let b = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["routing_key"] == format!("http {i}"))
            .unwrap_or_else(|| panic!("binding {i} listed: {listed}"));
        assert_eq!(b["properties_key"], json!(want), "case {i}");
    }
    // The key finds the binding: delete one by RabbitMQ's key.
    api.expect(
        "DELETE",
        "/api/bindings/%2F/e/pk.h/q/pk.q/http%2B4~4RWhuA",
        None,
        &[204],
    );
}

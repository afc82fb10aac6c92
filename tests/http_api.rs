//! Management HTTP API: real HTTP requests against a running broker, checked
//! against what RabbitMQ's management plugin returns (paths, status codes,
//! JSON field names). Rates are sampled every few seconds, so only the shape
//! of `*_details.rate` is checked, never a value.

mod common;
mod mgmt;

use common::*;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use mgmt::{assert_fields, eventually, lookup, seg, Api};
use serde_json::json;

#[test]
fn overview_and_nodes_have_rabbitmq_fields() {
    for shards in SHARD_COUNTS {
        let b = Broker::start(shards);
        let api = Api::new(b.mgmt_port);
        let a = api.get("/api/overview");
        assert_eq!(a.status, 200, "{}", a.text);
        assert!(
            a.content_type.starts_with("application/json"),
            "content type {}",
            a.content_type
        );
        let ov = a.json;
        assert_fields(
            &ov,
            &[
                "management_version",
                "rabbitmq_version",
                "product_name",
                "product_version",
                "cluster_name",
                "node",
                "object_totals.connections",
                "object_totals.channels",
                "object_totals.exchanges",
                "object_totals.queues",
                "object_totals.consumers",
                "queue_totals.messages",
                "queue_totals.messages_ready",
                "queue_totals.messages_unacknowledged",
                "message_stats",
                "listeners",
            ],
            "overview",
        );
        let listeners = ov["listeners"].as_array().expect("listeners array");
        let amqp = listeners
            .iter()
            .find(|l| l["protocol"] == "amqp")
            .expect("an amqp listener");
        assert_eq!(amqp["port"], json!(b.port), "amqp listener port");
        assert_fields(amqp, &["node", "ip_address", "port"], "listener");
        assert!(
            listeners
                .iter()
                .any(|l| l["protocol"] == "http" && l["port"] == json!(b.mgmt_port)),
            "http listener on the management port: {listeners:?}"
        );
        // Seven exchanges per fresh vhost: "" and amq.{direct,fanout,topic,headers,match}
        // (no amq.rabbitmq.trace in Warren): at least the six.
        assert!(ov["object_totals"]["exchanges"].as_u64().unwrap() >= 6);
        assert_eq!(ov["object_totals"]["queues"], json!(0));

        let nodes = api.get_ok("/api/nodes");
        let nodes = nodes.as_array().expect("nodes array");
        assert_eq!(nodes.len(), 1, "one node");
        let n = &nodes[0];
        assert_fields(
            n,
            &[
                "name",
                "type",
                "running",
                "mem_used",
                "uptime",
                "fd_used",
                "disk_free_alarm",
                "mem_alarm",
            ],
            "node",
        );
        assert_eq!(n["running"], json!(true));
        assert_eq!(n["name"], ov["node"], "node name matches the overview");
        let name = n["name"].as_str().unwrap();
        let one = api.get_ok(&format!("/api/nodes/{}", seg(name)));
        assert_eq!(one["name"], n["name"]);

        let who = api.get_ok("/api/whoami");
        assert_eq!(who["name"], "guest");
        assert!(
            who["tags"].to_string().contains("administrator"),
            "whoami tags: {who}"
        );
    }
}

#[test]
fn queues_can_be_declared_inspected_and_deleted() {
    for shards in SHARD_COUNTS {
        let b = Broker::start(shards);
        let api = Api::new(b.mgmt_port);
        for i in 0..4 {
            // Several names so that with 2 shards both homes are exercised.
            let name = format!("http.q{i}");
            let path = format!("/api/queues/%2F/{name}");
            let body = json!({"durable": true, "auto_delete": false,
                "arguments": {"x-message-ttl": 60000, "x-custom": 10}});
            api.expect("PUT", &path, Some(&body), &[201, 204]);
            let q = api.get_ok(&path);
            assert_fields(
                &q,
                &[
                    "name",
                    "vhost",
                    "durable",
                    "auto_delete",
                    "exclusive",
                    "arguments",
                    "node",
                    "state",
                    "type",
                    "messages",
                    "messages_ready",
                    "messages_unacknowledged",
                    "consumers",
                ],
                "queue",
            );
            assert_eq!(q["name"], json!(name));
            assert_eq!(q["vhost"], "/");
            assert_eq!(q["durable"], json!(true));
            assert_eq!(q["exclusive"], json!(false));
            assert_eq!(q["arguments"]["x-message-ttl"], json!(60000));
            assert_eq!(q["arguments"]["x-custom"], json!(10));
            assert_eq!(q["messages"], json!(0));
            // Redeclaring with the same properties is fine; with different
            // ones it is a 400 (PRECONDITION_FAILED: inequivalent arg).
            api.expect("PUT", &path, Some(&body), &[201, 204]);
            let a = api.put(&path, &json!({"durable": false}));
            assert_eq!(a.status, 400, "inequivalent redeclare: {}", a.text);
            assert!(a.json["reason"].as_str().is_some(), "reason: {}", a.text);
        }
        let all = api.get_ok("/api/queues");
        let names: Vec<&str> = all
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|q| q["name"].as_str())
            .collect();
        for i in 0..4 {
            assert!(names.contains(&format!("http.q{i}").as_str()), "{names:?}");
        }
        // The queue is real: a passive declare over AMQP finds it.
        let rt = rt();
        rt.block_on(async {
            let conn = connect(&b).await;
            assert_eq!(ready_count(&conn, "http.q0").await, 0);
        });
        for i in 0..4 {
            let path = format!("/api/queues/%2F/http.q{i}");
            api.expect("DELETE", &path, None, &[204]);
            assert_eq!(api.get(&path).status, 404, "deleted queue is gone");
        }
        // Unknown vhost.
        let a = api.put("/api/queues/no-such-vhost/q", &json!({}));
        assert_eq!(a.status, 404, "{}", a.text);
    }
}

#[test]
fn exchanges_can_be_declared_inspected_and_deleted() {
    let b = Broker::start(1);
    let api = Api::new(b.mgmt_port);
    let list = api.get_ok("/api/exchanges/%2F");
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    for n in ["", "amq.direct", "amq.fanout", "amq.topic", "amq.headers"] {
        assert!(names.contains(&n), "exchange {n:?} listed: {names:?}");
    }
    // The default exchange is "amq.default" in URLs and "" in JSON.
    let d = api.get_ok("/api/exchanges/%2F/amq.default");
    assert_eq!(d["name"], "");
    assert_eq!(d["type"], "direct");

    let path = "/api/exchanges/%2F/http.x";
    api.expect(
        "PUT",
        path,
        Some(
            &json!({"type": "topic", "durable": true, "auto_delete": false,
            "internal": false, "arguments": {"alternate-exchange": "amq.fanout"}}),
        ),
        &[201, 204],
    );
    let x = api.get_ok(path);
    assert_fields(
        &x,
        &[
            "name",
            "vhost",
            "type",
            "durable",
            "auto_delete",
            "internal",
            "arguments",
            "message_stats",
        ],
        "exchange",
    );
    assert_eq!(x["type"], "topic");
    assert_eq!(x["arguments"]["alternate-exchange"], "amq.fanout");
    // Another type for the same name is refused.
    let a = api.put(path, &json!({"type": "fanout"}));
    assert_eq!(a.status, 400, "inequivalent exchange: {}", a.text);
    let a = api.put(
        "/api/exchanges/%2F/http.bad",
        &json!({"type": "no-such-type"}),
    );
    assert!(
        a.status == 400 || a.status == 404,
        "unknown exchange type: {} {}",
        a.status,
        a.text
    );
    api.expect("DELETE", path, None, &[204]);
    assert_eq!(api.get(path).status, 404);
}

#[test]
fn bindings_are_created_listed_and_deleted() {
    for shards in SHARD_COUNTS {
        let b = Broker::start(shards);
        let api = Api::new(b.mgmt_port);
        let q = queue_on_shard("bq", 1, shards);
        api.expect(
            "PUT",
            &format!("/api/queues/%2F/{q}"),
            Some(&json!({"durable": false})),
            &[201, 204],
        );
        api.expect(
            "PUT",
            "/api/exchanges/%2F/bx",
            Some(&json!({"type": "topic"})),
            &[201, 204],
        );
        api.expect(
            "PUT",
            "/api/exchanges/%2F/bx2",
            Some(&json!({"type": "fanout"})),
            &[201, 204],
        );
        api.expect(
            "POST",
            &format!("/api/bindings/%2F/e/bx/q/{q}"),
            Some(&json!({"routing_key": "k.#", "arguments": {}})),
            &[201],
        );
        api.expect(
            "POST",
            "/api/bindings/%2F/e/bx/e/bx2",
            Some(&json!({"routing_key": "other.*"})),
            &[201],
        );
        let bs = api.get_ok(&format!("/api/bindings/%2F/e/bx/q/{q}"));
        let bs = bs.as_array().unwrap();
        assert_eq!(bs.len(), 1, "{bs:?}");
        let bd = &bs[0];
        assert_fields(
            bd,
            &[
                "source",
                "vhost",
                "destination",
                "destination_type",
                "routing_key",
                "arguments",
                "properties_key",
            ],
            "binding",
        );
        assert_eq!(bd["source"], "bx");
        assert_eq!(bd["destination"], json!(q));
        assert_eq!(bd["destination_type"], "queue");
        assert_eq!(bd["routing_key"], "k.#");
        // RabbitMQ's properties_key: the key URL-quoted.
        assert_eq!(bd["properties_key"], "k.%23");

        // The queue's bindings: the default exchange's implicit one, then bx.
        let qb = api.get_ok(&format!("/api/queues/%2F/{q}/bindings"));
        let sources: Vec<&str> = qb
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["source"].as_str())
            .collect();
        assert!(sources.contains(&"") && sources.contains(&"bx"), "{qb}");
        let src = api.get_ok("/api/exchanges/%2F/bx/bindings/source");
        assert_eq!(
            src.as_array().unwrap().len(),
            2,
            "bx has two bindings: {src}"
        );
        let dst = api.get_ok("/api/exchanges/%2F/bx2/bindings/destination");
        assert_eq!(dst.as_array().unwrap().len(), 1, "{dst}");
        assert_eq!(dst[0]["destination_type"], "exchange");
        let ee = api.get_ok("/api/bindings/%2F/e/bx/e/bx2");
        assert_eq!(ee[0]["routing_key"], "other.*");
        let all = api.get_ok("/api/bindings/%2F");
        assert!(all.as_array().unwrap().len() >= 3, "{all}");

        // The binding routes: publish through bx reaches the queue.
        assert!(api.publish("/", "bx", "k.a.b", "routed"));
        api.wait_queue_field("/", &q, "messages", 1);
        assert!(!api.publish("/", "bx", "nomatch", "lost"));

        // Delete it by its properties key, as RabbitMQ's clients do.
        let pk = bd["properties_key"].as_str().unwrap();
        api.expect(
            "DELETE",
            &format!("/api/bindings/%2F/e/bx/q/{q}/{}", seg(pk)),
            None,
            &[204],
        );
        let bs = api.get_ok(&format!("/api/bindings/%2F/e/bx/q/{q}"));
        assert_eq!(bs, json!([]), "binding deleted");
        assert!(!api.publish("/", "bx", "k.a.b", "unbound"));
        let a = api.delete(&format!("/api/bindings/%2F/e/bx/q/{q}/{}", seg(pk)));
        assert_eq!(a.status, 404, "deleting twice: {}", a.text);
        // Bindings that differ only in arguments have different properties
        // keys, and deleting one leaves the other.
        api.expect(
            "PUT",
            "/api/exchanges/%2F/bh",
            Some(&json!({"type": "headers"})),
            &[201, 204],
        );
        for args in [
            json!({"x-match": "all", "a": "1"}),
            json!({"x-match": "all", "b": "2"}),
        ] {
            api.expect(
                "POST",
                &format!("/api/bindings/%2F/e/bh/q/{q}"),
                Some(&json!({"routing_key": "", "arguments": args})),
                &[201],
            );
        }
        let hb = api.get_ok(&format!("/api/bindings/%2F/e/bh/q/{q}"));
        let hb = hb.as_array().unwrap();
        assert_eq!(hb.len(), 2, "{hb:?}");
        assert_ne!(hb[0]["properties_key"], hb[1]["properties_key"]);
        let gone = &hb[0];
        api.expect(
            "DELETE",
            &format!(
                "/api/bindings/%2F/e/bh/q/{q}/{}",
                seg(gone["properties_key"].as_str().unwrap())
            ),
            None,
            &[204],
        );
        let left = api.get_ok(&format!("/api/bindings/%2F/e/bh/q/{q}"));
        assert_eq!(left.as_array().unwrap().len(), 1, "{left}");
        assert_eq!(
            left[0]["arguments"], hb[1]["arguments"],
            "the other one stays"
        );
        // A binding to a missing queue is refused.
        let a = api.post(
            "/api/bindings/%2F/e/bx/q/no-such-queue",
            &json!({"routing_key": "x"}),
        );
        assert!(
            a.status == 404 || a.status == 400,
            "{} {}",
            a.status,
            a.text
        );
    }
}

#[test]
fn publish_get_and_purge_through_the_api() {
    for shards in SHARD_COUNTS {
        let b = Broker::start(shards);
        let api = Api::new(b.mgmt_port);
        let q = queue_on_shard("pq", 1, shards);
        let qpath = format!("/api/queues/%2F/{q}");
        api.expect("PUT", &qpath, Some(&json!({"durable": true})), &[201, 204]);
        for i in 0..3 {
            assert!(api.publish("/", "", &q, &format!("m{i}")), "routed");
        }
        api.wait_queue_field("/", &q, "messages_ready", 3);
        // A binary payload, base64 both ways, with properties.
        let bin: Vec<u8> = vec![0, 159, 146, 150, 255];
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bin);
        let a = api.post(
            "/api/exchanges/%2F/amq.default/publish",
            &json!({"properties": {"delivery_mode": 2, "content_type": "application/octet-stream",
                    "headers": {"h": "v"}},
                "routing_key": q, "payload": b64, "payload_encoding": "base64"}),
        );
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.json, json!({"routed": true}));
        api.wait_queue_field("/", &q, "messages_ready", 4);
        assert!(!api.publish("/", "", "no-such-queue", "x"), "unroutable");
        let a = api.post(
            "/api/exchanges/%2F/no-such-exchange/publish",
            &json!({"properties": {}, "routing_key": "k", "payload": "x", "payload_encoding": "string"}),
        );
        // RabbitMQ says 400 ("404 NOT_FOUND - no exchange ..."), Warren 404.
        assert!(
            a.status == 400 || a.status == 404,
            "{} {}",
            a.status,
            a.text
        );

        // Get two, requeueing them.
        let got = api.post(
            &format!("{qpath}/get"),
            &json!({"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto"}),
        );
        assert_eq!(got.status, 200, "{}", got.text);
        let items = got.json.as_array().expect("array of messages");
        assert_eq!(items.len(), 2);
        for m in items {
            assert_fields(
                m,
                &[
                    "payload",
                    "payload_bytes",
                    "payload_encoding",
                    "redelivered",
                    "exchange",
                    "routing_key",
                    "message_count",
                    "properties",
                ],
                "message",
            );
            assert_eq!(m["routing_key"], json!(q));
            assert_eq!(m["exchange"], "");
            assert_eq!(m["payload_encoding"], "string");
        }
        assert_eq!(items[0]["payload"], "m0");
        assert_eq!(items[0]["payload_bytes"], json!(2));
        assert_eq!(items[1]["payload"], "m1");
        api.wait_queue_field("/", &q, "messages_ready", 4);

        // Get all, removing them; requeued ones come back redelivered.
        let got = api.post(
            &format!("{qpath}/get"),
            &json!({"count": 10, "ackmode": "ack_requeue_false", "encoding": "auto"}),
        );
        let items = got.json.as_array().expect("messages");
        assert_eq!(items.len(), 4, "{}", got.text);
        let payloads: Vec<&str> = items.iter().filter_map(|m| m["payload"].as_str()).collect();
        assert!(
            payloads.contains(&"m0") && payloads.contains(&"m2"),
            "{payloads:?}"
        );
        let redelivered = items
            .iter()
            .filter(|m| m["redelivered"] == json!(true))
            .count();
        assert_eq!(redelivered, 2, "the two requeued messages: {}", got.text);
        let bin_msg = items
            .iter()
            .find(|m| m["payload_encoding"] == "base64")
            .expect("binary payload comes back base64");
        assert_eq!(bin_msg["payload"], json!(b64));
        assert_eq!(bin_msg["payload_bytes"], json!(bin.len()));
        assert_eq!(bin_msg["properties"]["delivery_mode"], json!(2));
        assert_eq!(
            bin_msg["properties"]["content_type"],
            "application/octet-stream"
        );
        assert_eq!(bin_msg["properties"]["headers"]["h"], "v");
        api.wait_queue_field("/", &q, "messages", 0);

        // Purge: DELETE .../contents.
        for i in 0..5 {
            api.publish("/", "", &q, &format!("p{i}"));
        }
        api.wait_queue_field("/", &q, "messages_ready", 5);
        api.expect("DELETE", &format!("{qpath}/contents"), None, &[204]);
        api.wait_queue_field("/", &q, "messages", 0);
        let a = api.delete("/api/queues/%2F/no-such-queue/contents");
        assert_eq!(a.status, 404);
        // Getting from an empty queue gives an empty list.
        let got = api.post(
            &format!("{qpath}/get"),
            &json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}),
        );
        assert_eq!(got.json, json!([]));
    }
}

#[test]
fn connections_channels_and_consumers_are_listed() {
    for shards in SHARD_COUNTS {
        let b = Broker::start(shards);
        let api = Api::new(b.mgmt_port);
        let rt = rt();
        // Connection on shard 0, queue homed on the last shard (another
        // shard when there are two).
        let q = queue_on_shard("cq", shards - 1, shards);
        // Dropping a lapin Consumer cancels it and dropping the last Channel
        // handle closes it: keep all three alive while checking.
        let (conn, ch, _consumer) = rt.block_on(async {
            let conn = connect_on_shard(&b, 0).await;
            let ch = confirm_channel(&conn).await;
            declare_queue(&ch, &q).await;
            within("qos", ch.basic_qos(7, BasicQosOptions::default()))
                .await
                .unwrap();
            let consumer = within(
                "consume",
                ch.basic_consume(
                    &q,
                    "ctag-http",
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .unwrap();
            (conn, ch, consumer)
        });

        let conns = eventually("one connection listed", || {
            let c = api.get_ok("/api/connections");
            (c.as_array().unwrap().len() == 1).then_some(c)
        });
        let c = &conns[0];
        assert_fields(
            c,
            &[
                "name",
                "node",
                "vhost",
                "user",
                "state",
                "type",
                "protocol",
                "host",
                "port",
                "peer_host",
                "peer_port",
                "channels",
                "auth_mechanism",
                "connected_at",
                "frame_max",
                "channel_max",
                "recv_oct",
                "send_oct",
                "recv_oct_details.rate",
                "send_oct_details.rate",
                "client_properties",
            ],
            "connection",
        );
        assert_eq!(c["user"], "guest");
        assert_eq!(c["vhost"], "/");
        assert_eq!(c["port"], json!(b.port));
        assert_eq!(c["peer_host"], "127.0.0.1");
        assert_eq!(c["protocol"], "AMQP 0-9-1");
        assert_eq!(c["channels"], json!(1));
        assert_eq!(c["state"], "running");
        assert!(c["recv_oct"].as_u64().unwrap() > 0);
        // lapin announces itself in client_properties.
        assert!(
            c["client_properties"]["product"].is_string(),
            "client_properties: {}",
            c["client_properties"]
        );
        let cname = c["name"].as_str().unwrap().to_string();
        assert!(
            cname.contains(" -> "),
            "RabbitMQ-style connection name: {cname}"
        );
        let one = api.get_ok(&format!("/api/connections/{}", seg(&cname)));
        assert_eq!(one["name"], json!(cname));

        let chans = api.get_ok("/api/channels");
        let chans = chans.as_array().unwrap();
        assert_eq!(chans.len(), 1, "{chans:?}");
        let chn = &chans[0];
        assert_fields(
            chn,
            &[
                "name",
                "number",
                "node",
                "vhost",
                "user",
                "state",
                "consumer_count",
                "messages_unacknowledged",
                "prefetch_count",
                "global_prefetch_count",
                "confirm",
                "transactional",
                "connection_details.name",
                "connection_details.peer_host",
                "connection_details.peer_port",
                "message_stats",
            ],
            "channel",
        );
        assert_eq!(chn["name"], json!(format!("{cname} (1)")));
        assert_eq!(chn["number"], json!(1));
        assert_eq!(chn["consumer_count"], json!(1));
        assert_eq!(chn["prefetch_count"], json!(7));
        assert_eq!(chn["confirm"], json!(true));
        assert_eq!(chn["transactional"], json!(false));
        assert_eq!(chn["connection_details"]["name"], json!(cname));

        for path in ["/api/consumers", "/api/consumers/%2F"] {
            let cons = eventually("consumer listed", || {
                let v = api.get_ok(path);
                (v.as_array().unwrap().len() == 1).then_some(v)
            });
            let k = &cons[0];
            assert_fields(
                k,
                &[
                    "consumer_tag",
                    "queue.name",
                    "queue.vhost",
                    "channel_details.name",
                    "channel_details.connection_name",
                    "channel_details.number",
                    "channel_details.peer_host",
                    "channel_details.peer_port",
                    "channel_details.user",
                    "channel_details.node",
                    "ack_required",
                    "exclusive",
                    "prefetch_count",
                    "arguments",
                ],
                "consumer",
            );
            assert_eq!(k["consumer_tag"], "ctag-http");
            assert_eq!(k["queue"]["name"], json!(q));
            assert_eq!(k["queue"]["vhost"], "/");
            assert_eq!(k["channel_details"]["connection_name"], json!(cname));
            assert_eq!(k["channel_details"]["number"], json!(1));
            assert_eq!(k["channel_details"]["user"], "guest");
            assert_eq!(k["ack_required"], json!(true));
            assert_eq!(k["prefetch_count"], json!(7));
        }
        let qj = api.get_queue("/", &q);
        assert_eq!(qj["consumers"], json!(1));
        let ov = api.get_ok("/api/overview");
        assert_eq!(ov["object_totals"]["connections"], json!(1));
        assert_eq!(ov["object_totals"]["channels"], json!(1));
        assert_eq!(ov["object_totals"]["consumers"], json!(1));
        assert_eq!(ov["object_totals"]["queues"], json!(1));

        rt.block_on(async {
            let _ = ch.close(200, "bye").await;
            let _ = conn.close(200, "bye").await;
        });
        eventually("connection gone", || {
            let c = api.get_ok("/api/connections");
            c.as_array().unwrap().is_empty().then_some(())
        });
        assert_eq!(api.get_ok("/api/consumers"), json!([]));
        let a = api.get(&format!("/api/connections/{}", seg(&cname)));
        assert_eq!(a.status, 404);
    }
}

/// `message_stats` of queues, exchanges, channels and the overview: the
/// counters RabbitMQ has, each with a `_details.rate` number.
#[test]
fn message_stats_have_rabbitmq_shape() {
    for shards in SHARD_COUNTS {
        let b = Broker::start(shards);
        let api = Api::new(b.mgmt_port);
        let rt = rt();
        let q = queue_on_shard("sq", shards - 1, shards);
        const N: u64 = 5;
        let (conn, _ch, _consumer) = rt.block_on(async {
            let conn = connect_on_shard(&b, 0).await;
            let ch = confirm_channel(&conn).await;
            declare_queue(&ch, &q).await;
            within(
                "bind",
                ch.queue_bind(
                    &q,
                    "amq.direct",
                    "sk",
                    Default::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .unwrap();
            for i in 0..N {
                publish(&ch, "amq.direct", "sk", format!("s{i}").as_bytes())
                    .await
                    .await
                    .expect("confirm");
            }
            let mut c = within(
                "consume",
                ch.basic_consume(
                    &q,
                    "stats",
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .unwrap();
            for _ in 0..N {
                let d = next_delivery(&mut c, "stats delivery").await;
                d.ack(BasicAckOptions::default()).await.unwrap();
            }
            (conn, ch, c)
        });
        let qj = api.wait_queue_field("/", &q, "message_stats.ack", N);
        let ms = &qj["message_stats"];
        for k in [
            "publish",
            "deliver_get",
            "deliver",
            "ack",
            "redeliver",
            "get",
        ] {
            assert!(ms[k].is_u64(), "queue message_stats.{k}: {ms}");
            assert!(
                ms[format!("{k}_details")]["rate"].is_number(),
                "queue message_stats.{k}_details.rate: {ms}"
            );
        }
        assert_eq!(ms["publish"], json!(N));
        assert_eq!(ms["deliver_get"], json!(N));
        assert_eq!(ms["deliver"], json!(N));
        assert_eq!(ms["get"], json!(0));
        assert_eq!(ms["redeliver"], json!(0));

        let x = api.get_ok("/api/exchanges/%2F/amq.direct");
        let xs = &x["message_stats"];
        for k in ["publish_in", "publish_out"] {
            assert!(xs[k].is_u64(), "exchange message_stats.{k}: {xs}");
            assert!(xs[format!("{k}_details")]["rate"].is_number(), "{xs}");
        }
        assert_eq!(xs["publish_in"], json!(N));
        assert_eq!(xs["publish_out"], json!(N));

        let chans = api.get_ok("/api/channels");
        let cs = &chans[0]["message_stats"];
        for k in ["publish", "deliver_get", "ack", "confirm"] {
            assert!(cs[k].is_u64(), "channel message_stats.{k}: {cs}");
            assert!(cs[format!("{k}_details")]["rate"].is_number(), "{cs}");
        }
        assert_eq!(cs["publish"], json!(N));
        assert_eq!(cs["confirm"], json!(N));
        assert_eq!(cs["ack"], json!(N));

        let ov = api.get_ok("/api/overview");
        let os = &ov["message_stats"];
        for k in ["publish", "deliver_get", "ack", "confirm"] {
            assert!(os[k].is_u64(), "overview message_stats.{k}: {os}");
            assert!(os[format!("{k}_details")]["rate"].is_number(), "{os}");
        }
        assert_eq!(os["publish"], json!(N));
        assert_eq!(os["ack"], json!(N));
        assert_eq!(os["confirm"], json!(N));
        let conns = api.get_ok("/api/connections");
        assert!(lookup(&conns[0], "recv_oct_details.rate")
            .unwrap()
            .is_number());
        rt.block_on(async {
            let _ = conn.close(200, "bye").await;
        });
    }
}

#[test]
fn listings_paginate_sort_and_select_columns() {
    let b = Broker::start(2);
    let api = Api::new(b.mgmt_port);
    for i in 0..7 {
        api.expect(
            "PUT",
            &format!("/api/queues/%2F/page-{i}"),
            Some(&json!({"durable": false})),
            &[201, 204],
        );
    }
    api.publish("/", "", "page-3", "x");
    api.wait_queue_field("/", "page-3", "messages", 1);

    let p = api.get_ok("/api/queues/%2F?page=2&page_size=3");
    assert_fields(
        &p,
        &[
            "items",
            "page",
            "page_size",
            "page_count",
            "total_count",
            "item_count",
            "filtered_count",
        ],
        "page",
    );
    assert_eq!(p["page"], json!(2));
    assert_eq!(p["page_size"], json!(3));
    assert_eq!(p["page_count"], json!(3));
    assert_eq!(p["total_count"], json!(7));
    assert_eq!(p["filtered_count"], json!(7));
    assert_eq!(p["item_count"], json!(3));
    assert_eq!(p["items"].as_array().unwrap().len(), 3);
    let last = api.get_ok("/api/queues/%2F?page=3&page_size=3");
    assert_eq!(last["items"].as_array().unwrap().len(), 1);
    assert_eq!(last["item_count"], json!(1));
    // Every queue exactly once across the pages.
    let mut seen: Vec<String> = Vec::new();
    for page in 1..=3 {
        let v = api.get_ok(&format!("/api/queues/%2F?page={page}&page_size=3"));
        seen.extend(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|q| q["name"].as_str().unwrap().to_string()),
        );
    }
    seen.sort();
    let want: Vec<String> = (0..7).map(|i| format!("page-{i}")).collect();
    assert_eq!(seen, want);

    // Sorting.
    let v = api.get_ok("/api/queues/%2F?sort=name&sort_reverse=true&columns=name");
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    let mut rev = names.clone();
    rev.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(names, rev, "sorted by name, reversed");
    let v = api.get_ok("/api/queues/%2F?sort=messages&sort_reverse=true");
    assert_eq!(v[0]["name"], "page-3", "the queue with a message first");

    // Column selection, including a nested one.
    let v = api.get_ok("/api/queues/%2F?columns=name,messages");
    for q in v.as_array().unwrap() {
        let keys: Vec<&String> = q.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 2, "only the chosen columns: {q}");
        assert!(q["name"].is_string() && q["messages"].is_u64(), "{q}");
    }
    let v = api.get_ok("/api/queues/%2F/page-3?columns=name,message_stats.publish");
    // Single objects are not projected by RabbitMQ either; just make sure it works.
    assert_eq!(v["name"], "page-3");
    let v = api.get_ok("/api/queues/%2F?columns=name,message_stats.publish&sort=name");
    let q3 = v
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "page-3")
        .unwrap();
    assert_eq!(q3["message_stats"], json!({"publish": 1}), "{q3}");
    // Out-of-range and invalid pages are 400, as in RabbitMQ.
    let a = api.get("/api/queues/%2F?page=9&page_size=3");
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json["error"], "page_out_of_range");
    let a = api.get("/api/queues/%2F?page=0");
    assert_eq!(a.status, 400, "{}", a.text);
    // An empty listing has page 1 with no items.
    let v = api.get_ok("/api/consumers?page=1");
    let items = if v.is_array() { &v } else { &v["items"] };
    assert_eq!(items.as_array().unwrap().len(), 0);
    // The name filter: total_count counts everything, filtered_count the matches.
    let v = api.get_ok("/api/queues/%2F?page=1&name=page-1");
    assert_eq!(v["total_count"], json!(7));
    assert_eq!(v["filtered_count"], json!(1));
    // Pagination and columns together.
    let v = api.get_ok("/api/queues/%2F?page=1&page_size=2&columns=name");
    assert_eq!(v["items"][0].as_object().unwrap().len(), 1);
    assert_eq!(v["page_count"], json!(4));
}

#[test]
fn bad_credentials_are_401() {
    let b = Broker::start(1);
    for (api, anonymous) in [
        (Api::as_user(b.mgmt_port, "guest", "wrong"), false),
        (Api::as_user(b.mgmt_port, "nobody", "guest"), false),
        (Api::anonymous(b.mgmt_port), true),
    ] {
        for path in ["/api/overview", "/api/queues", "/api/definitions"] {
            let a = api.get(path);
            assert_eq!(a.status, 401, "{} {path}: {}", api.user, a.text);
            // RabbitMQ 3.10: no credentials, an empty body; wrong ones,
            // "not_authorized" (US spelling) "Login failed".
            if anonymous {
                assert_eq!(a.text, "", "anonymous 401 body");
            } else {
                assert_eq!(a.json["error"], "not_authorized", "{}", a.text);
                assert_eq!(a.json["reason"], "Login failed", "{}", a.text);
            }
            assert!(
                a.www_authenticate
                    .as_deref()
                    .is_some_and(|h| h.starts_with("Basic")),
                "WWW-Authenticate header on 401"
            );
        }
    }
    // A user without a management tag cannot use the API; a management
    // user can, but not the administrator-only endpoints.
    let admin = Api::new(b.mgmt_port);
    admin.expect(
        "PUT",
        "/api/users/plain",
        Some(&json!({"password": "p", "tags": ""})),
        &[201, 204],
    );
    admin.expect(
        "PUT",
        "/api/users/mgr",
        Some(&json!({"password": "m", "tags": "management"})),
        &[201, 204],
    );
    let a = Api::as_user(b.mgmt_port, "plain", "p").get("/api/overview");
    assert_eq!(a.status, 401, "{}", a.text);
    let mgr = Api::as_user(b.mgmt_port, "mgr", "m");
    assert_eq!(mgr.get("/api/overview").status, 200);
    let a = mgr.get("/api/users");
    assert_eq!(a.status, 401, "management user listing users: {}", a.text);
    let a = mgr.put("/api/vhosts/x", &json!({}));
    assert_eq!(a.status, 401, "management user adding a vhost: {}", a.text);
}

#[test]
fn health_checks_answer_ok() {
    let b = Broker::start(2);
    let api = Api::new(b.mgmt_port);
    for path in [
        "/api/health/checks/alarms",
        "/api/health/checks/local-alarms",
        "/api/health/checks/virtual-hosts",
        &format!("/api/health/checks/port-listener/{}", b.port),
        "/api/health/checks/protocol-listener/amqp",
        "/api/aliveness-test/%2F",
    ] {
        let v = api.get_ok(path);
        assert_eq!(v["status"], "ok", "{path}: {v}");
    }
    // Unknown vhost.
    assert_eq!(api.get("/api/aliveness-test/no-such-vhost").status, 404);
    // A port or protocol nobody listens on fails the check with 503.
    let a = api.get("/api/health/checks/port-listener/1");
    assert_eq!(a.status, 503, "{}", a.text);
    assert_eq!(a.json["status"], "failed");
    let a = api.get("/api/health/checks/protocol-listener/mqtt");
    assert_eq!(a.status, 503, "{}", a.text);
    // Health checks need credentials too.
    let anon = Api::anonymous(b.mgmt_port);
    assert_eq!(anon.get("/api/health/checks/alarms").status, 401);
    // Unknown API paths are 404 with RabbitMQ's error body.
    let a = api.get("/api/no-such-thing");
    assert_eq!(a.status, 404);
    assert_eq!(a.json["error"], "Object Not Found");
}

/// Things RabbitMQ answers 404 for (checked against RabbitMQ 3.10).
#[test]
fn missing_objects_are_404() {
    let b = Broker::start(1);
    let api = Api::new(b.mgmt_port);
    for (method, path) in [
        ("GET", "/api/queues/%2F/nope"),
        ("DELETE", "/api/queues/%2F/nope"),
        ("DELETE", "/api/queues/%2F/nope/contents"),
        ("GET", "/api/exchanges/%2F/nope"),
        ("DELETE", "/api/exchanges/%2F/nope"),
        ("GET", "/api/queues/no-such-vhost"),
        ("GET", "/api/exchanges/no-such-vhost"),
        ("GET", "/api/bindings/no-such-vhost"),
        ("GET", "/api/consumers/no-such-vhost"),
        ("GET", "/api/vhosts/no-such-vhost"),
        ("GET", "/api/vhosts/no-such-vhost/permissions"),
        ("DELETE", "/api/vhosts/no-such-vhost"),
        ("GET", "/api/users/nope"),
        ("DELETE", "/api/users/nope"),
        ("GET", "/api/permissions/%2F/nope"),
        ("DELETE", "/api/permissions/%2F/nope"),
        ("GET", "/api/connections/nope"),
        ("DELETE", "/api/connections/nope"),
    ] {
        let a = api.call(method, path, None);
        assert_eq!(a.status, 404, "{method} {path}: {}", a.text);
        assert_eq!(a.json["error"], "Object Not Found", "{method} {path}");
    }
}

//! Management API endpoints and query parameters that tools call (KEDA's
//! `use_regex`, Grafana-style dotted sorts, NServiceBus's feature flags,
//! rabbit-hole's per-vhost and per-connection listings), over real HTTP.

mod common;
mod mgmt;

use common::*;
use mgmt::Api;
use serde_json::json;

fn names(v: &serde_json::Value) -> Vec<String> {
    let items = v.get("items").unwrap_or(v);
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn name_filters_are_case_insensitive_and_take_a_regex_when_asked() {
    let b = Broker::start(1);
    let api = Api::new(b.mgmt_port);
    for q in ["Orders.EU", "orders.us", "billing"] {
        api.expect(
            "PUT",
            &format!("/api/queues/%2F/{q}"),
            Some(&json!({})),
            &[201],
        );
    }
    let v = api.get_ok("/api/queues/%2F?page=1&name=ORDERS");
    assert_eq!(names(&v), ["Orders.EU", "orders.us"]);
    // KEDA's queue query: page=1&use_regex=true&name=...
    let v = api.get_ok(
        "/api/queues/%2F?page=1&use_regex=true&pagination=false&name=%5Eorders%5C.(eu%7Cus)%24",
    );
    assert_eq!(names(&v), ["Orders.EU", "orders.us"]);
    // Recorded from RabbitMQ 3.10: an invalid regex, and no filter
    // without paging.
    let a = api.get("/api/queues/%2F?page=1&use_regex=true&name=(");
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json["reason"], json!("Pagination parameters are invalid"));
    assert_eq!(names(&api.get_ok("/api/queues/%2F?name=ORDERS")).len(), 3);
}

#[test]
fn a_dotted_sort_key_reaches_into_objects() {
    let b = Broker::start(1);
    let api = Api::new(b.mgmt_port);
    for (q, n) in [("few", 1), ("many", 3), ("some", 2)] {
        api.expect(
            "PUT",
            &format!("/api/queues/%2F/{q}"),
            Some(&json!({})),
            &[201],
        );
        for _ in 0..n {
            assert!(api.publish("/", "", q, "x"));
        }
        api.wait_queue_field("/", q, "messages", n);
    }
    let v = api.get_ok("/api/queues/%2F?sort=message_stats.publish&sort_reverse=true");
    assert_eq!(names(&v), ["many", "some", "few"]);
}

#[test]
fn feature_flags_parameters_and_scoped_listings_answer_truthfully() {
    let b = Broker::start(1);
    let api = Api::new(b.mgmt_port);
    let flags = api.get_ok("/api/feature-flags");
    let state = |n: &str| {
        flags
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == n)
            .map(|f| f["state"].clone())
    };
    assert_eq!(state("stream_queue"), Some(json!("unavailable")));
    assert_eq!(state("implicit_default_bindings"), Some(json!("enabled")));
    api.expect(
        "PUT",
        "/api/vhost-limits/%2F/max-queues",
        Some(&json!({"value": 50})),
        &[204],
    );
    let p = api.get_ok("/api/parameters/vhost-limits/%2F");
    assert_eq!(p[0]["value"], json!({"max-queues": 50}));
    let a = api.call(
        "PUT",
        "/api/parameters/federation-upstream/%2F/up",
        Some(&json!({"value": {"uri": "amqp://x"}})),
    );
    assert_eq!(
        a.status, 400,
        "refused, never stored and ignored: {}",
        a.text
    );
    assert_eq!(
        api.get_ok("/api/global-parameters")[0]["name"],
        json!("cluster_name")
    );
    // Refused, never stored and ignored (RabbitMQ stores any global
    // parameter; Warren has only its fixed cluster name).
    let a = api.call(
        "PUT",
        "/api/global-parameters/foo",
        Some(&json!({"value": "bar"})),
    );
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(
        api.get_ok("/api/global-parameters")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    api.expect(
        "PUT",
        "/api/users/lonely",
        Some(&json!({"password": "p", "tags": ""})),
        &[201],
    );
    assert_eq!(
        names(&api.get_ok("/api/users/without-permissions")),
        ["lonely"]
    );
    assert_eq!(api.get("/api/nodes/no-such-node/memory").status, 404);
    let node = api.get_ok("/api/nodes")[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let mem = api.get_ok(&format!("/api/nodes/{node}/memory"));
    assert!(mem["memory"]["total"]["rss"].as_u64().unwrap() > 0);
    rt().block_on(async {
        let c = connect(&b).await;
        let _ch = open_channel(&c).await;
        let port = b.mgmt_port;
        tokio::task::spawn_blocking(move || {
            let api = Api::new(port);
            mgmt::eventually("one connection listed", || {
                let n = api
                    .get_ok("/api/vhosts/%2F/connections")
                    .as_array()
                    .unwrap()
                    .len();
                (n == 1).then_some(())
            });
            let conn = api.get_ok("/api/vhosts/%2F/connections")[0]["name"]
                .as_str()
                .unwrap()
                .to_string();
            let chans = api.get_ok(&format!("/api/connections/{}/channels", mgmt::seg(&conn)));
            assert_eq!(chans.as_array().unwrap().len(), 1, "{chans}");
            // One channel by its name, as rabbit-hole's GetChannel reads it.
            let name = chans[0]["name"].as_str().unwrap().to_string();
            let one = api.get_ok(&format!("/api/channels/{}", mgmt::seg(&name)));
            assert_eq!(one["name"], json!(name));
            assert_eq!(api.get("/api/channels/no%20such").status, 404);
            assert_eq!(
                api.get_ok("/api/vhosts/%2F/channels")
                    .as_array()
                    .unwrap()
                    .len(),
                1
            );
        })
        .await
        .unwrap();
        let _ = c.close(200, "bye").await;
    });
}

#[test]
fn nodes_and_overview_carry_the_members_tools_read_with_real_values() {
    let b = Broker::start(1);
    let api = Api::new(b.mgmt_port);
    let node = &api.get_ok("/api/nodes")[0];
    for k in [
        "fd_total",
        "fd_used",
        "sockets_used",
        "sockets_total",
        "disk_free",
        "disk_free_limit",
        "mem_used",
        "mem_limit",
    ] {
        assert!(node[k].as_u64().is_some_and(|v| v > 0), "{k}: {node}");
    }
    assert!(node["fd_used"].as_u64() < node["fd_total"].as_u64());
    assert!(node["os_pid"]
        .as_str()
        .is_some_and(|p| p.parse::<u32>().is_ok()));
    let o = api.get_ok("/api/overview");
    assert_eq!(o["management_version"], o["rabbitmq_version"]);
    assert_eq!(o["disable_stats"], json!(false));
    let types: Vec<&str> = o["exchange_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "direct",
            "fanout",
            "headers",
            "topic",
            "x-consistent-hash",
            "x-delayed-message"
        ]
    );
}

#[test]
fn channels_show_their_global_prefetch_and_returned_messages() {
    let b = Broker::start(1);
    rt().block_on(async {
        let c = connect(&b).await;
        let ch = open_channel(&c).await;
        ch.basic_qos(7, lapin::options::BasicQosOptions { global: true })
            .await
            .unwrap();
        let opts = lapin::options::BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        ch.basic_publish("", "no-such-queue", opts, b"x", Default::default())
            .await
            .unwrap();
        let port = b.mgmt_port;
        tokio::task::spawn_blocking(move || {
            let api = Api::new(port);
            mgmt::eventually("the return counted", || {
                let chans = api.get_ok("/api/channels");
                let ch = &chans[0];
                let returned = ch["message_stats"]["return_unroutable"].as_u64();
                (returned == Some(1)).then(|| ch["global_prefetch_count"].clone())
            });
            assert_eq!(
                api.get_ok("/api/channels")[0]["global_prefetch_count"],
                json!(7)
            );
        })
        .await
        .unwrap();
        let _ = c.close(200, "bye").await;
    });
}

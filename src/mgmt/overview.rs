//! `/api/overview`, `/api/nodes` and `/api/whoami`: the node and its
//! totals, in the shapes RabbitMQ's management plugin returns.

use super::api::node_name;
use super::gather;
use super::http::{Request, Response};
use super::Mgmt;
use crate::defs::users::UserDef;
use serde_json::{json, Value};
use std::rc::Rc;

/// Routes under this resource (`s`: the path segments after `api`,
/// decoded); 404 for any other.
pub async fn route(
    m: &Rc<Mgmt>,
    req: &Request,
    user: &UserDef,
    meth: &str,
    s: &[&str],
) -> Response {
    match (meth, s) {
        ("GET", ["overview"]) => overview(m, req).await,
        ("GET", ["nodes"]) => Response::json(200, &json!([node_json(m).await])),
        ("GET", ["nodes", _]) => Response::json(200, &node_json(m).await),
        // RabbitMQ's breakdown is by Erlang allocator; Warren reports the
        // one number it measures, the resident set (`strategy: rss`).
        ("GET", ["nodes", _, "memory"]) => {
            let rss = super::metrics::rss_bytes();
            Response::json(
                200,
                &json!({"memory": {"total": {"rss": rss, "allocated": rss, "erlang": 0},
                    "strategy": "rss"}}),
            )
        }
        ("GET", ["whoami"]) => Response::json(200, &json!({"name": user.name, "tags": user.tags})),
        _ => Response::error(404, "Object Not Found", "Not Found"),
    }
}

async fn node_json(m: &Mgmt) -> Value {
    json!({"name": node_name(), "type": "disc", "running": true, "mem_used": super::metrics::rss_bytes(),
        "uptime": m.started.elapsed().as_millis() as u64, "processors": m.cx.shard_count(),
        "fd_used": std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0),
        "disk_free_alarm": m.cx.conns.blocked.get(), "mem_alarm": false})
}

async fn overview(m: &Mgmt, _req: &Request) -> Response {
    let snaps = gather(&m.cx).await;
    let t = m.cx.table();
    let (mut ready, mut unacked, mut queues, mut consumers) = (0u64, 0u64, 0u64, 0u64);
    for s in &snaps {
        for q in &s.queues {
            ready += q.ready as u64;
            unacked += q.unacked as u64;
            queues += 1;
        }
        consumers += s.consumers.len() as u64;
    }
    let conns: usize = snaps.iter().map(|s| s.connections.len()).sum();
    let chans: usize = snaps.iter().map(|s| s.channels.len()).sum();
    let c = super::counters(&snaps);
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    Response::json(
        200,
        &json!({
            "management_version": env!("CARGO_PKG_VERSION"), "rabbitmq_version": "3.13.0",
            "product_name": "Warren", "product_version": env!("CARGO_PKG_VERSION"),
            "cluster_name": "warren", "node": node_name(),
            "object_totals": {"connections": conns, "channels": chans, "exchanges": t.exchanges.len() + t.vhosts.len(),
                "queues": queues, "consumers": consumers},
            "queue_totals": {"messages": ready + unacked, "messages_ready": ready, "messages_unacknowledged": unacked},
            "message_stats": m.message_stats("all|||", &[("publish", get("all|||publish")), ("deliver_get", get("all|||deliver_get")),
                ("ack", get("all|||ack")), ("confirm", get("all|||confirm"))]),
            "listeners": [{"node": node_name(), "protocol": "amqp", "ip_address": "::", "port": m.amqp_port},
                          {"node": node_name(), "protocol": "http", "ip_address": "::", "port": m.http_port}],
            "shards": m.cx.shard_count(),
        }),
    )
}

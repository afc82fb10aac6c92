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
        // The one node; another name is 404 (RabbitMQ answers an unknown
        // node's memory so, its node object with a 500 crash report).
        ("GET", ["nodes", n, ..]) if *n != node_name() => Response::not_found(),
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
        _ => Response::not_found(),
    }
}

/// This process's open file descriptors: (all, sockets).
pub(super) fn fds() -> (usize, usize) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return (0, 0);
    };
    let (mut all, mut sockets) = (0, 0);
    for e in dir.flatten() {
        all += 1;
        let link = std::fs::read_link(e.path()).unwrap_or_default();
        if link.to_string_lossy().starts_with("socket:") {
            sockets += 1;
        }
    }
    (all, sockets)
}

/// `/api/nodes/{node}` with the members tools read, real values of this
/// process: `fd_total` and `sockets_total` are the open-file limit
/// (RLIMIT_NOFILE; sockets share it), `disk_free` is free space in the data
/// directory and `disk_free_limit` the configured limit (`crate::disk`;
/// below it the disk alarm blocks publishers), `mem_used` the
/// anonymous resident memory and `mem_limit` the memory high watermark
/// (`crate::memory`), `mem_alarm` whether publishers are blocked by it.
async fn node_json(m: &Mgmt) -> Value {
    let cfg = &m.cx.link.config;
    let (fd_used, sockets_used) = fds();
    let fd_total = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(0, |(soft, _)| soft);
    let disk_free = nix::sys::statvfs::statvfs(&cfg.data_dir)
        .map_or(0, |s| s.blocks_available() * s.fragment_size());
    json!({"name": node_name(), "type": "disc", "running": true, "os_pid": std::process::id().to_string(),
        "mem_used": crate::memory::used_bytes(), "mem_limit": m.cx.conns.memory_limit.get(),
        "mem_alarm": m.cx.conns.memory_alarm.get(), "mem_calculation_strategy": "rss",
        "uptime": m.started.elapsed().as_millis() as u64, "processors": m.cx.shard_count(),
        "fd_used": fd_used, "fd_total": fd_total, "sockets_used": sockets_used, "sockets_total": fd_total,
        "disk_free": disk_free, "disk_free_limit": m.cx.conns.disk_free_limit.get(),
        "disk_free_alarm": m.cx.conns.disk_alarmed(), "rates_mode": "basic", "partitions": []})
}

async fn overview(m: &Mgmt, req: &Request) -> Response {
    let ranges = match super::samples::ranges(|k| super::api::q(req, k)) {
        Ok(r) => r,
        Err(e) => return Response::error(400, "bad_request", e),
    };
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
            // The management API Warren implements is RabbitMQ 3.13's, so
            // tools that gate features on the version see one version.
            "management_version": "3.13.0", "rabbitmq_version": "3.13.0",
            "erlang_version": "none (Warren is written in Rust)", "disable_stats": false,
            "rates_mode": "basic", "exchange_types": [
                {"name": "direct", "description": "AMQP direct exchange", "enabled": true},
                {"name": "fanout", "description": "AMQP fanout exchange", "enabled": true},
                {"name": "headers", "description": "AMQP headers exchange", "enabled": true},
                {"name": "topic", "description": "AMQP topic exchange", "enabled": true},
                {"name": "x-consistent-hash", "description": "Consistent Hashing Exchange", "enabled": true},
                {"name": "x-delayed-message", "description": "Delayed Message Exchange.", "enabled": true}],
            "product_name": "Warren", "product_version": env!("CARGO_PKG_VERSION"),
            "cluster_name": "warren", "node": node_name(),
            "object_totals": {"connections": conns, "channels": chans, "exchanges": t.exchanges.len() + t.vhosts.len(),
                "queues": queues, "consumers": consumers},
            "queue_totals": {"messages": ready + unacked, "messages_ready": ready, "messages_unacknowledged": unacked,
                "messages_details": m.details("all|||messages", ranges.lengths),
                "messages_ready_details": m.details("all|||messages_ready", ranges.lengths),
                "messages_unacknowledged_details": m.details("all|||messages_unacknowledged", ranges.lengths)},
            "message_stats": m.message_stats_over("all|||", &[("publish", get("all|||publish")), ("deliver_get", get("all|||deliver_get")),
                ("ack", get("all|||ack")), ("confirm", get("all|||confirm"))], ranges.msg_rates),
            "listeners": [{"node": node_name(), "protocol": "amqp", "ip_address": "::", "port": m.amqp_port},
                          {"node": node_name(), "protocol": "http", "ip_address": "::", "port": m.http_port}],
            "shards": m.cx.shard_count(),
        }),
    )
}

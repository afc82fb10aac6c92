//! Health checks as RabbitMQ's API has them (`/api/health/checks/...`,
//! `/api/healthchecks/node`, `/api/aliveness-test/{vhost}`), plus Warren's
//! per-shard liveness check.

use super::api::node_name;
use super::http::{Request, Response};
use super::Mgmt;
use crate::bus::Request as ShardReq;
use serde_json::json;
use std::rc::Rc;

/// Routes under this resource (`s`: the path segments after `api`,
/// decoded); 404 for any other.
pub async fn route(m: &Rc<Mgmt>, _req: &Request, meth: &str, s: &[&str]) -> Response {
    match (meth, s) {
        ("GET", ["healthchecks", "node"]) | ("GET", ["health", "checks", "virtual-hosts"]) => {
            Response::json(200, &json!({"status": "ok"}))
        }
        ("GET", ["health", "checks", "alarms"]) | ("GET", ["health", "checks", "local-alarms"]) => {
            // An unresponsive shard is reported like a resource alarm: the
            // node is not healthy (see also `checks/shards`).
            let stalled = stalled_shards(m).await;
            let mut alarms = Vec::new();
            if m.cx.conns.memory_alarm.get() {
                alarms.push(json!({"resource": "memory", "node": node_name()}));
            }
            if m.cx.conns.disk_alarmed() {
                alarms.push(json!({"resource": "disk", "node": node_name()}));
            }
            if !alarms.is_empty() {
                Response::json(
                    503,
                    &json!({"status": "failed", "reason": "resource alarm(s) in effect", "alarms": alarms}),
                )
            } else if !stalled.is_empty() {
                Response::json(
                    503,
                    &json!({"status": "failed", "reason": format!("shards {stalled:?} did not answer within 5 s"), "alarms": []}),
                )
            } else {
                Response::json(200, &json!({"status": "ok"}))
            }
        }
        ("GET", ["health", "checks", "port-listener", port]) => {
            let ports = [m.amqp_port, m.http_port];
            match port.parse::<u16>() {
                Ok(p) if ports.contains(&p) => {
                    Response::json(200, &json!({"status": "ok", "port": p}))
                }
                _ => Response::json(
                    503,
                    &json!({"status": "failed", "reason": "No active listener", "missing": port, "ports": ports}),
                ),
            }
        }
        ("GET", ["health", "checks", "protocol-listener", proto]) => {
            let known = ["amqp", "amqp091", "amqp0-9-1", "amqp0.9.1", "http"];
            if known.contains(&proto.to_ascii_lowercase().as_str()) {
                Response::json(200, &json!({"status": "ok", "protocol": proto}))
            } else {
                Response::json(
                    503,
                    &json!({"status": "failed", "reason": "No active listener", "missing": proto, "protocols": ["amqp", "http"]}),
                )
            }
        }
        // Warren's per-shard liveness check: every shard must answer a
        // request through its mailbox within 5 s (a stalled shard fails it).
        ("GET", ["health", "checks", "shards"]) => {
            let n = m.cx.shard_count();
            let stalled = stalled_shards(m).await;
            if stalled.is_empty() {
                Response::json(200, &json!({"status": "ok", "shards": n}))
            } else {
                Response::json(
                    503,
                    &json!({"status": "failed", "reason": format!("shards {stalled:?} did not answer within 5 s"), "shards": n}),
                )
            }
        }
        ("GET", ["aliveness-test", v]) => {
            if m.cx.table().vhosts.contains(*v) {
                Response::json(200, &json!({"status": "ok"}))
            } else {
                Response::error(404, "Object Not Found", "vhost not found")
            }
        }
        _ => Response::not_found(),
    }
}

/// Shards that do not answer a mailbox request within 5 s (Warren's
/// liveness check). All shards are asked at once; an unanswered request's
/// slot is released when its wait is dropped (`Shard::call`).
async fn stalled_shards(m: &Mgmt) -> Vec<usize> {
    let n = m.cx.shard_count();
    let asks = (0..n).map(|s| {
        m.cx.call(
            crate::ids::ShardId(s),
            ShardReq::QueueStats(crate::ids::QueueId(u64::MAX)),
        )
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut stalled = Vec::new();
    for (s, ask) in asks.collect::<Vec<_>>().into_iter().enumerate() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if glommio::timer::timeout(left, async { Ok(ask.await) })
            .await
            .is_err()
        {
            stalled.push(s);
        }
    }
    stalled
}

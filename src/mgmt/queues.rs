//! `/api/queues`: list, inspect, declare (`PUT`), delete (with
//! `if-unused`/`if-empty`), purge (`DELETE .../contents`), and the queue's
//! bindings.

use super::api::{created_or_updated, done, meta, node_name, q, visible};
use super::body::{self, flag};
use super::gather;
use super::http::{Request, Response};
use super::json::args_to_table;
use super::listing::{list, list_with};
use super::requests::QueueBody;
use super::samples::Ranges;
use super::Mgmt;
use crate::bus::Request as ShardReq;
use crate::defs::users::UserDef;
use crate::ids::ConnId;
use crate::meta::MetaOp;
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
        ("GET", ["queues"]) | ("GET", ["queues", _]) => {
            let ranges = match super::samples::ranges(|k| q(req, k)) {
                Ok(r) => r,
                Err(e) => return Response::error(400, "bad_request", e),
            };
            let vh = s.get(1).copied();
            let snaps = gather(&m.cx).await;
            let node = node_name();
            // Sorted and paged as rows; JSON only for what is answered.
            let mut rows: Vec<&super::stats::QueueInfo> = snaps
                .iter()
                .flat_map(|s| s.queues.iter())
                .filter(|q| vh.is_none_or(|v| v == q.vhost) && visible(m, user, &q.vhost))
                .collect();
            rows.sort_unstable_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
            list_with(req, rows, |q| &q.name, |q| queue_json(m, q, &node, ranges))
        }
        ("GET", ["queues", v, n]) => {
            let ranges = match super::samples::ranges(|k| q(req, k)) {
                Ok(r) => r,
                Err(e) => return Response::error(400, "bad_request", e),
            };
            let snaps = gather(&m.cx).await;
            match snaps
                .iter()
                .flat_map(|s| s.queues.iter())
                .find(|q| q.vhost == *v && q.name == *n)
            {
                Some(qi) => Response::json(200, &queue_json(m, qi, &node_name(), ranges)),
                None => Response::not_found(),
            }
        }
        ("PUT", ["queues", v, n]) => {
            // RabbitMQ 3.10: a missing `durable` is false.
            let b: QueueBody = match body::parse(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let op = MetaOp::QueueDeclare {
                vhost: v.to_string(),
                name: n.to_string(),
                server_named: false,
                passive: false,
                durable: flag(b.durable, false),
                exclusive: false,
                auto_delete: flag(b.auto_delete, false),
                args: args_to_table(b.arguments),
                owner: ConnId(0),
            };
            let status = created_or_updated(m.cx.table().queue(v, n).is_some());
            done(meta(m, op).await, status)
        }
        ("DELETE", ["queues", v, n]) => {
            if m.cx.table().queue(v, n).is_none() {
                return Response::not_found();
            }
            let op = MetaOp::QueueDelete {
                vhost: v.to_string(),
                name: n.to_string(),
                if_unused: q(req, "if-unused").as_deref() == Some("true"),
                if_empty: q(req, "if-empty").as_deref() == Some("true"),
                owner: Some(ConnId(0)),
                only: None,
                if_idle: false,
            };
            done(meta(m, op).await, 204)
        }
        ("DELETE", ["queues", v, n, "contents"]) => {
            let target = m.cx.table().queue(v, n).map(|q| (q.id, q.home));
            let Some((id, home)) = target else {
                return Response::not_found();
            };
            m.cx.call(home, ShardReq::Purge(id)).await;
            Response::no_content()
        }
        ("POST", ["queues", v, n, "get"]) => super::messages::get_messages(m, req, v, n).await,
        ("GET", ["queues", v, n, "bindings"]) => {
            let items = super::bindings::bindings_json(m, Some(v))
                .into_iter()
                .filter(|b| b["destination"] == *n && b["destination_type"] == "queue")
                .collect();
            list(req, items)
        }
        _ => Response::not_found(),
    }
}

/// A queue as the API shows it; `ranges` (`lengths_age`, `msg_rates_age`)
/// add samples to the `*_details` objects.
fn queue_json(m: &Mgmt, q: &super::stats::QueueInfo, node: &str, ranges: Ranges) -> Value {
    let prefix = format!("queue|{}|{}|", q.vhost, q.name);
    let length = |name: &str| m.details(&format!("{prefix}{name}"), ranges.lengths);
    let mut j = json!({
        "name": q.name, "vhost": q.vhost, "durable": q.durable, "auto_delete": q.auto_delete,
        "exclusive": q.exclusive, "arguments": q.arguments, "node": node,
        "type": q.arguments.get("x-queue-type").and_then(Value::as_str).unwrap_or("classic"),
        "state": "running", "messages": q.ready + q.unacked, "messages_ready": q.ready,
        "messages_unacknowledged": q.unacked, "consumers": q.consumers, "shard": q.shard,
        "policy": q.policy, "operator_policy": q.operator_policy,
        "effective_policy_definition": q.effective_policy_definition,
        "messages_details": length("messages"), "messages_ready_details": length("messages_ready"),
        "messages_unacknowledged_details": length("messages_unacknowledged"),
        "message_stats": m.message_stats_over(&prefix, &[
            ("publish", q.stats.publish), ("deliver_get", q.stats.deliver + q.stats.get),
            ("deliver", q.stats.deliver), ("get", q.stats.get), ("ack", q.stats.ack), ("redeliver", q.stats.redeliver),
        ], ranges.msg_rates),
    });
    // RabbitMQ lists the active consumer of a single-active-consumer queue.
    if let Some((_, tag)) = &q.single_active_consumer {
        j["single_active_consumer_tag"] = json!(tag);
    }
    j
}

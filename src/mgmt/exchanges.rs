//! `/api/exchanges`: list, inspect, declare (`PUT`), delete, and the
//! exchange's bindings as source or destination.

use super::api::{created_or_updated, done, meta, q, visible};
use super::body::{self, flag};
use super::gather;
use super::http::{Request, Response};
use super::json::{args_to_table, table_to_json};
use super::listing::list;
use super::requests::ExchangeBody;
use super::stats::ShardSnapshot;
use super::Mgmt;
use crate::defs::users::UserDef;
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
        ("GET", ["exchanges"]) => list(req, exchanges_json(m, &gather(&m.cx).await, None, user)),
        ("GET", ["exchanges", v]) => {
            list(req, exchanges_json(m, &gather(&m.cx).await, Some(v), user))
        }
        ("GET", ["exchanges", v, n]) => {
            let all = exchanges_json(m, &gather(&m.cx).await, Some(v), user);
            match all.into_iter().find(|x| x["name"] == *n) {
                Some(x) => Response::json(200, &x),
                None => Response::not_found(),
            }
        }
        ("PUT", ["exchanges", v, n]) => {
            // RabbitMQ 3.10: a missing `durable` is false.
            let b: ExchangeBody = match body::parse(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let op = MetaOp::ExchangeDeclare {
                vhost: v.to_string(),
                name: n.to_string(),
                kind: b.kind.unwrap_or_else(|| "direct".into()),
                passive: false,
                durable: flag(b.durable, false),
                auto_delete: flag(b.auto_delete, false),
                internal: flag(b.internal, false),
                args: args_to_table(b.arguments),
            };
            let status = created_or_updated(m.cx.table().exchange(v, n).is_some());
            done(meta(m, op).await, status)
        }
        ("DELETE", ["exchanges", v, n]) => {
            if m.cx.table().exchange(v, n).is_none() {
                return Response::not_found();
            }
            let op = MetaOp::ExchangeDelete {
                vhost: v.to_string(),
                name: n.to_string(),
                if_unused: q(req, "if-unused").as_deref() == Some("true"),
            };
            done(meta(m, op).await, 204)
        }
        ("POST", ["exchanges", v, n, "publish"]) => super::messages::publish(m, req, user, v, n),
        ("GET", ["exchanges", v, n, "bindings", dir]) => {
            let key = if *dir == "source" {
                "source"
            } else {
                "destination"
            };
            let items = super::bindings::bindings_json(m, Some(v))
                .into_iter()
                .filter(|b| {
                    b[key] == *n && (key == "source" || b["destination_type"] == "exchange")
                })
                .collect();
            list(req, items)
        }
        _ => Response::not_found(),
    }
}

fn exchanges_json(
    m: &Mgmt,
    snaps: &[ShardSnapshot],
    vhost: Option<&str>,
    user: &UserDef,
) -> Vec<Value> {
    let t = m.cx.table();
    let mut stats: Vec<super::stats::ExchangeCounts> = Vec::new();
    for s in snaps {
        for e in &s.exchanges {
            super::stats::merge_exchange(
                &mut stats,
                &e.vhost,
                &e.name,
                e.publish_in,
                e.publish_out,
            );
        }
    }
    let mut out: Vec<Value> = Vec::new();
    let mut names: Vec<(String, String)> = t.exchanges.keys().cloned().collect();
    for v in &t.vhosts {
        names.push((v.clone(), String::new()));
    }
    names.sort();
    for (v, n) in names {
        if vhost.is_some_and(|x| x != v) || !visible(m, user, &v) {
            continue;
        }
        let (kind, durable, auto_delete, internal, args) = match t.exchange(&v, &n) {
            Some(e) => (
                e.def.kind.as_str(),
                e.def.durable,
                e.def.auto_delete,
                e.def.internal,
                table_to_json(&e.def.args),
            ),
            None => ("direct", true, false, false, json!({})),
        };
        let (i, o) = stats
            .iter()
            .find(|s| s.vhost == v && s.name == n)
            .map(|s| (s.publish_in, s.publish_out))
            .unwrap_or((0, 0));
        let prefix = format!("exchange|{v}|{n}|");
        let mut x = json!({
            "name": n, "vhost": v, "type": kind, "durable": durable, "auto_delete": auto_delete,
            "internal": internal, "arguments": args, "user_who_performed_action": "",
            "message_stats": m.message_stats(&prefix, &[("publish_in", i), ("publish_out", o)]),
        });
        // The delayed-message plugin's `messages_delayed` (its `info/2`).
        if kind == "x-delayed-message" {
            let delayed: u64 = snaps
                .iter()
                .flat_map(|s| &s.delayed)
                .filter(|(dv, dx, _)| *dv == v && *dx == n)
                .map(|(_, _, c)| u64::from(*c))
                .sum();
            x["messages_delayed"] = json!(delayed);
        }
        out.push(x);
    }
    out
}

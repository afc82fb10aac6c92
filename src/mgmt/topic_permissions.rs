//! `/api/topic-permissions` and the per-user and per-vhost listings of
//! them: RabbitMQ's topic permissions (`defs::users::TopicPermissionDef`),
//! administrators only (the gate, `gate.rs`). Shapes, statuses and texts
//! as RabbitMQ 3.10's `rabbit_mgmt_wm_topic_permission` answers them
//! (recorded from a running node in `tests/python/test_topic_permissions.py`).

use super::api::{created_or_updated, done, meta};
use super::body;
use super::http::{Request, Response};
use super::listing::list;
use super::requests::TopicPermissionBody;
use super::Mgmt;
use crate::defs::users::TopicPermissionDef;
use crate::meta::MetaOp;
use serde_json::{json, Value};
use std::rc::Rc;

fn topic_json(p: &TopicPermissionDef) -> Value {
    json!({"user": p.user, "vhost": p.vhost, "exchange": p.exchange, "write": p.write, "read": p.read})
}

/// Every topic permission, sorted by user, vhost and exchange.
pub(super) fn all(m: &Mgmt) -> Vec<Value> {
    let t = m.cx.table();
    t.topic_permissions
        .defs()
        .into_iter()
        .map(topic_json)
        .collect()
}

/// Routes of this file (`s` without "api"); None when `s` is not one.
pub async fn route(m: &Rc<Mgmt>, req: &Request, meth: &str, s: &[&str]) -> Option<Response> {
    Some(match (meth, s) {
        ("GET", ["topic-permissions"]) => list(req, all(m)),
        ("GET", ["users", u, "topic-permissions"]) => {
            if !m.cx.table().users.contains_key(*u) {
                return Some(Response::not_found());
            }
            list(
                req,
                all(m).into_iter().filter(|p| p["user"] == *u).collect(),
            )
        }
        ("GET", ["vhosts", v, "topic-permissions"]) => list(
            req,
            all(m).into_iter().filter(|p| p["vhost"] == *v).collect(),
        ),
        // RabbitMQ 3.10 answers `.../{exchange}` with every topic
        // permission of the user on the vhost, as without the exchange.
        ("GET", ["topic-permissions", v, u, ..]) if s.len() <= 4 => {
            let items: Vec<Value> = all(m)
                .into_iter()
                .filter(|p| p["vhost"] == *v && p["user"] == *u)
                .collect();
            // RabbitMQ: 404 while the user has none on the vhost.
            if items.is_empty() {
                Response::not_found()
            } else {
                Response::json(200, &Value::Array(items))
            }
        }
        // RabbitMQ serves `.../{exchange}` with the same handler: the
        // exchange comes from the body either way.
        ("PUT", ["topic-permissions", v, u, rest @ ..]) if rest.len() <= 1 => {
            let b: TopicPermissionBody = match body::parse(req) {
                Ok(b) => b,
                Err(r) => return Some(r),
            };
            let (exists, known) = {
                let t = m.cx.table();
                let exists = t.topic_permissions.any(u, v);
                (exists, t.users.contains_key(*u) && t.vhosts.contains(*v))
            };
            if !known {
                return Some(Response::error(
                    400,
                    "bad_request",
                    "vhost_or_user_not_found",
                ));
            }
            let p = TopicPermissionDef {
                user: u.to_string(),
                vhost: v.to_string(),
                exchange: b.exchange,
                write: b.write,
                read: b.read,
            };
            // RabbitMQ's answer names the pattern and the regex engine's
            // complaint (PCRE's there, Rust's regex here).
            if let Err(e) = crate::defs::users::validate_topic_permission(&p) {
                let reason = json!(["invalid_regexp", e.pattern, e.reason]);
                return Some(Response::json(
                    400,
                    &json!({"error": "bad_request", "reason": reason}),
                ));
            }
            // RabbitMQ answers 204 when the user already had topic
            // permissions on the vhost (on any exchange), 201 otherwise.
            done(
                meta(m, MetaOp::TopicPermissionSet(p)).await,
                created_or_updated(exists),
            )
        }
        ("DELETE", ["topic-permissions", v, u, rest @ ..]) if rest.len() <= 1 => {
            let exists = m.cx.table().topic_permissions.any(u, v);
            if !exists {
                return Some(Response::not_found());
            }
            let op = MetaOp::TopicPermissionClear {
                user: u.to_string(),
                vhost: v.to_string(),
                exchange: rest.first().map(|x| x.to_string()),
            };
            done(meta(m, op).await, 204)
        }
        _ => return None,
    })
}

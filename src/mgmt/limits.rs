//! `/api/vhost-limits` and `/api/user-limits`: RabbitMQ's per-vhost
//! (`max-connections`, `max-queues`) and per-user (`max-connections`,
//! `max-channels`) limits. Administrator only (the gate's default).
//!
//! Shapes, statuses and texts are RabbitMQ 3.10's, recorded from the real
//! broker: `GET` lists `[{"vhost": v, "value": {name: n}}]` (`"user"` for
//! user limits), `PUT .../{name}` takes `{"value": n}` (an integer; a
//! negative one means no limit) and answers 204, `DELETE .../{name}` 204
//! whether or not the limit was set.

use super::api::{done, meta};
use super::http::{Request, Response};
use super::listing::list;
use super::requests::LimitBody;
use super::Mgmt;
use crate::defs::limits::{Limits, USER_LIMITS, VHOST_LIMITS};
use crate::meta::MetaOp;
use serde_json::{json, Value};

fn entries(key: &str, all: Vec<(String, Limits)>) -> Vec<Value> {
    all.into_iter()
        .map(|(k, l)| json!({ key: k, "value": l }))
        .collect()
}

/// The `{"value": n}` body of a PUT, or RabbitMQ's 400.
fn value(req: &Request, name: &str) -> Result<i64, Response> {
    let b: LimitBody = super::body::parse(req)?;
    b.value.as_i64().ok_or_else(|| {
        Response::error(
            400,
            "bad_request",
            format!(
                "Validation failed\n\n{name} should be a number, actually was {}\n",
                b.value
            ),
        )
    })
}

fn unrecognised(name: &str, value: i64, what: &str) -> Response {
    Response::error(
        400,
        "bad_request",
        format!("Validation failed\n\nUnrecognised terms [{{<<\"{name}\">>,{value}}}] in {what}\n"),
    )
}

/// Make `wanted` (limit name -> integer) the whole set of `vhost`'s limits:
/// each is validated first (RabbitMQ's 400 texts), then set, and any other
/// limit in force cleared. 404 for a missing vhost.
pub async fn replace_vhost_limits(
    m: &Mgmt,
    vhost: &str,
    wanted: &serde_json::Map<String, Value>,
) -> Result<(), Response> {
    if !m.cx.table().vhosts.contains(vhost) {
        return Err(Response::error(404, "not_found", "vhost_not_found"));
    }
    let mut values = Vec::new();
    for (name, v) in wanted {
        let Some(n) = v.as_i64() else {
            return Err(Response::error(
                400,
                "bad_request",
                format!("Validation failed\n\n{name} should be a number, actually was {v}\n"),
            ));
        };
        if !VHOST_LIMITS.contains(&name.as_str()) {
            return Err(unrecognised(name, n, "limits"));
        }
        values.push((name.clone(), Some(n)));
    }
    let current =
        m.cx.table()
            .vhost_limits
            .get(vhost)
            .cloned()
            .unwrap_or_default();
    values.extend(
        current
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .map(|k| (k.clone(), None)),
    );
    for (name, value) in values {
        let op = MetaOp::VhostLimit {
            vhost: vhost.to_string(),
            name,
            value,
        };
        meta(m, op).await?;
    }
    Ok(())
}

/// Routes under `vhost-limits` and `user-limits`; None for other paths.
pub async fn route(m: &Mgmt, req: &Request, meth: &str, s: &[&str]) -> Option<Response> {
    Some(match (meth, s) {
        ("GET", ["vhost-limits"]) => {
            let all = m.cx.table().vhost_limits.clone().into_iter().collect();
            list(req, entries("vhost", all))
        }
        ("GET", ["vhost-limits", v]) => {
            let t = m.cx.table();
            if !t.vhosts.contains(*v) {
                return Some(Response::not_found());
            }
            let one = t.vhost_limits.get(*v).map(|l| (v.to_string(), l.clone()));
            drop(t);
            list(req, entries("vhost", one.into_iter().collect()))
        }
        ("PUT", ["vhost-limits", v, name]) => {
            let n = match value(req, name) {
                Ok(n) => n,
                Err(r) => return Some(r),
            };
            if !m.cx.table().vhosts.contains(*v) {
                return Some(Response::error(404, "not_found", "vhost_not_found"));
            }
            if !VHOST_LIMITS.contains(name) {
                return Some(unrecognised(name, n, "limits"));
            }
            let op = MetaOp::VhostLimit {
                vhost: v.to_string(),
                name: name.to_string(),
                value: Some(n),
            };
            done(meta(m, op).await, 204)
        }
        ("DELETE", ["vhost-limits", v, name]) => {
            if !m.cx.table().vhosts.contains(*v) {
                return Some(Response::error(404, "not_found", "vhost_not_found"));
            }
            if !VHOST_LIMITS.contains(name) {
                return Some(Response::no_content());
            }
            let op = MetaOp::VhostLimit {
                vhost: v.to_string(),
                name: name.to_string(),
                value: None,
            };
            done(meta(m, op).await, 204)
        }
        ("GET", ["user-limits"]) => {
            let all = m.cx.table().user_limits.clone().into_iter().collect();
            list(req, entries("user", all))
        }
        ("GET", ["user-limits", u]) => {
            let t = m.cx.table();
            if !t.users.contains_key(*u) {
                return Some(Response::not_found());
            }
            let one = t.user_limits.get(*u).map(|l| (u.to_string(), l.clone()));
            drop(t);
            list(req, entries("user", one.into_iter().collect()))
        }
        ("PUT", ["user-limits", u, name]) => {
            let n = match value(req, name) {
                Ok(n) => n,
                Err(r) => return Some(r),
            };
            if !m.cx.table().users.contains_key(*u) {
                return Some(Response::json(
                    400,
                    &json!({"error": "bad_request", "reason": ["no_such_user", u]}),
                ));
            }
            if !USER_LIMITS.contains(name) {
                return Some(Response::error(
                    400,
                    "bad_request",
                    format!("Unrecognised terms [{{<<\"{name}\">>,{n}}}] in user-limits"),
                ));
            }
            let op = MetaOp::UserLimit {
                user: u.to_string(),
                name: name.to_string(),
                value: Some(n),
            };
            done(meta(m, op).await, 204)
        }
        ("DELETE", ["user-limits", u, name]) => {
            if !m.cx.table().users.contains_key(*u) || !USER_LIMITS.contains(name) {
                // RabbitMQ answers 500 for a missing user; nothing to clear.
                return Some(Response::no_content());
            }
            let op = MetaOp::UserLimit {
                user: u.to_string(),
                name: name.to_string(),
                value: None,
            };
            done(meta(m, op).await, 204)
        }
        _ => return None,
    })
}

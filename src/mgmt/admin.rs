//! HTTP API routes for administration: vhosts, users, permissions and
//! health checks; definitions routes call into `definitions`.

use super::api::{done, list, meta, node_name, visible};
use super::body;
use super::definitions::{export, hashing, import};
use super::http::{Request, Response};
use super::requests::{Definitions, PermissionBody, UserBody};
use super::Mgmt;
use crate::bus::Request as ShardReq;
use crate::defs::users::{PermissionDef, UserDef};
use crate::meta::MetaOp;
use serde_json::{json, Value};
use std::rc::Rc;

pub(super) fn user_json(u: &UserDef) -> Value {
    json!({"name": u.name, "password_hash": u.password_hash, "hashing_algorithm": u.hashing_algorithm,
        "tags": u.tags, "limits": {}})
}

fn perm_json(p: &PermissionDef) -> Value {
    json!({"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write, "read": p.read})
}

/// Routes of this file (`s` without "api"); 404 for anything else.
pub async fn route(
    m: &Rc<Mgmt>,
    req: &Request,
    user: &UserDef,
    meth: &str,
    s: &[&str],
) -> Response {
    match (meth, s) {
        ("GET", ["vhosts"]) => {
            let items =
                m.cx.table()
                    .vhosts
                    .iter()
                    .filter(|v| visible(m, user, v) || user.has_tag("monitoring"))
                    .map(|v| json!({"name": v, "tracing": false, "description": "", "tags": []}))
                    .collect();
            list(req, items)
        }
        ("GET", ["vhosts", v]) => {
            if m.cx.table().vhosts.contains(*v) {
                Response::json(
                    200,
                    &json!({"name": v, "tracing": false, "description": "", "tags": []}),
                )
            } else {
                Response::error(404, "Object Not Found", "Not Found")
            }
        }
        ("PUT", ["vhosts", v]) => done(
            meta(
                m,
                MetaOp::VhostAdd {
                    name: v.to_string(),
                },
            )
            .await,
            201,
        ),
        ("DELETE", ["vhosts", v]) => done(
            meta(
                m,
                MetaOp::VhostDelete {
                    name: v.to_string(),
                },
            )
            .await,
            204,
        ),
        ("GET", ["users"]) => list(req, m.cx.table().users.values().map(user_json).collect()),
        ("GET", ["users", name]) => match m.cx.table().users.get(*name) {
            Some(u) => Response::json(200, &user_json(u)),
            None => Response::error(404, "Object Not Found", "Not Found"),
        },
        ("PUT", ["users", name]) => {
            let b: UserBody = match body::parse(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            if let Err(r) = hashing(b.hashing_algorithm.as_deref(), name) {
                return r;
            }
            let op = MetaOp::UserPut {
                name: name.to_string(),
                password: b.password,
                password_hash: b.password_hash,
                tags: b.tags.0,
            };
            done(meta(m, op).await, 201)
        }
        ("DELETE", ["users", name]) => done(
            meta(
                m,
                MetaOp::UserDelete {
                    name: name.to_string(),
                },
            )
            .await,
            204,
        ),
        ("GET", ["users", name, "permissions"]) => {
            let items = perms(m)
                .into_iter()
                .filter(|p| p["user"] == *name)
                .collect();
            list(req, items)
        }
        ("GET", ["vhosts", v, "permissions"]) => {
            let items = perms(m).into_iter().filter(|p| p["vhost"] == *v).collect();
            list(req, items)
        }
        ("GET", ["permissions"]) => list(req, perms(m)),
        ("GET", ["permissions", v, u]) => match perms(m)
            .into_iter()
            .find(|p| p["vhost"] == *v && p["user"] == *u)
        {
            Some(p) => Response::json(200, &p),
            None => Response::error(404, "Object Not Found", "Not Found"),
        },
        ("PUT", ["permissions", v, u]) => {
            let b: PermissionBody = match body::parse(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let p = PermissionDef {
                user: u.to_string(),
                vhost: v.to_string(),
                configure: b.configure,
                write: b.write,
                read: b.read,
            };
            done(meta(m, MetaOp::PermissionSet(p)).await, 201)
        }
        ("DELETE", ["permissions", v, u]) => {
            if !m.cx.table().has_vhost_access(u, v) {
                return Response::error(404, "Object Not Found", "Not Found");
            }
            done(
                meta(
                    m,
                    MetaOp::PermissionClear {
                        user: u.to_string(),
                        vhost: v.to_string(),
                    },
                )
                .await,
                204,
            )
        }
        ("GET", ["definitions"]) => Response::json(200, &export(m, None)),
        ("GET", ["definitions", v]) => Response::json(200, &export(m, Some(v))),
        ("POST", ["definitions"]) => match body::parse::<Definitions>(req) {
            Ok(d) => match import(m, d, None).await {
                Ok(()) => Response::no_content(),
                Err(r) => r,
            },
            Err(r) => r,
        },
        ("POST", ["definitions", v]) => match body::parse::<Definitions>(req) {
            Ok(d) => match import(m, d, Some(v)).await {
                Ok(()) => Response::no_content(),
                Err(r) => r,
            },
            Err(r) => r,
        },
        ("GET", ["healthchecks", "node"]) | ("GET", ["health", "checks", "virtual-hosts"]) => {
            Response::json(200, &json!({"status": "ok"}))
        }
        ("GET", ["health", "checks", "alarms"]) | ("GET", ["health", "checks", "local-alarms"]) => {
            // An unresponsive shard is reported like a resource alarm: the
            // node is not healthy (see also `checks/shards`).
            let stalled = stalled_shards(m).await;
            if m.cx.conns.blocked.get() {
                Response::json(
                    503,
                    &json!({"status": "failed", "reason": "resource alarm(s) in effect", "alarms": [{"resource": "disk", "node": node_name()}]}),
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
        _ => Response::error(404, "Object Not Found", "Not Found"),
    }
}

pub(super) fn perms(m: &Mgmt) -> Vec<Value> {
    let mut v: Vec<Value> =
        m.cx.table()
            .permissions
            .values()
            .map(|p| perm_json(&p.def))
            .collect();
    v.sort_by_key(|p| p.to_string());
    v
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

//! `/api/vhosts`, `/api/users` and `/api/permissions`: virtual hosts,
//! users and their permissions (who may see or change what is decided by
//! the gate, `gate.rs`).

use super::api::{created_or_updated, done, meta, visible};
use super::body;
use super::definitions::hashing;
use super::http::{Request, Response};
use super::listing::list;
use super::requests::{PermissionBody, UserBody, VhostBody};
use super::Mgmt;
use crate::defs::users::{PermissionDef, UserDef};
use crate::meta::MetaOp;
use serde_json::{json, Value};
use std::rc::Rc;

pub(super) fn user_json(u: &UserDef) -> Value {
    json!({"name": u.name, "password_hash": u.password_hash, "hashing_algorithm": u.hashing_algorithm,
        "tags": u.tags, "limits": {}})
}

/// A vhost as the API shows it, with its message counts (`counts`: ready,
/// unacknowledged).
fn vhost_json(t: &crate::routing::RoutingTable, v: &str, counts: Option<&(u64, u64)>) -> Value {
    let meta = t.vhost_metadata.get(v).cloned().unwrap_or_default();
    let (ready, unacked) = counts.copied().unwrap_or_default();
    json!({"name": v, "tracing": false, "description": meta.description, "tags": meta.tags,
        "metadata": {"description": meta.description, "tags": meta.tags}, "default_queue_type": "classic",
        "messages": ready + unacked, "messages_ready": ready, "messages_unacknowledged": unacked})
}

/// Ready and unacknowledged messages per vhost, from every shard.
async fn vhost_counts(m: &Mgmt) -> std::collections::HashMap<String, (u64, u64)> {
    let mut out: std::collections::HashMap<String, (u64, u64)> = Default::default();
    for s in super::gather(&m.cx).await {
        for q in &s.queues {
            let e = out.entry(q.vhost.clone()).or_default();
            e.0 += u64::from(q.ready);
            e.1 += u64::from(q.unacked);
        }
    }
    out
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
            let counts = vhost_counts(m).await;
            let t = m.cx.table();
            let items = t
                .vhosts
                .iter()
                .filter(|v| visible(m, user, v) || user.has_tag("monitoring"))
                .map(|v| vhost_json(&t, v, counts.get(v.as_str())))
                .collect();
            list(req, items)
        }
        ("GET", ["vhosts", v]) => {
            let counts = vhost_counts(m).await;
            let t = m.cx.table();
            if t.vhosts.contains(*v) {
                Response::json(200, &vhost_json(&t, v, counts.get(*v)))
            } else {
                Response::not_found()
            }
        }
        ("PUT", ["vhosts", v]) => {
            let b: VhostBody = match body::parse(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            // Never accepted and ignored: Warren has no firehose tracer
            // and no other default queue type.
            if b.tracing.is_some_and(|t| t.0) {
                return Response::error(
                    400,
                    "bad_request",
                    "tracing (the firehose tracer) is not supported by Warren",
                );
            }
            if let Some(t) = b.default_queue_type.as_deref().filter(|t| *t != "classic") {
                return Response::error(
                    400,
                    "bad_request",
                    format!("default_queue_type '{t}' is not supported by Warren (classic only)"),
                );
            }
            let existed = m.cx.table().vhosts.contains(*v);
            let add = MetaOp::VhostAdd {
                name: v.to_string(),
            };
            if let Err(r) = meta(m, add).await {
                return r;
            }
            // RabbitMQ grants the user who creates a vhost full permissions
            // on it (recorded from 3.10).
            if !existed {
                let p = PermissionDef {
                    user: user.name.clone(),
                    vhost: v.to_string(),
                    configure: ".*".into(),
                    write: ".*".into(),
                    read: ".*".into(),
                };
                if let Err(r) = meta(m, MetaOp::PermissionSet(p)).await {
                    return r;
                }
            }
            // A PUT replaces the description and tags (RabbitMQ 3.10).
            let op = MetaOp::VhostMetadata {
                name: v.to_string(),
                description: b.description.unwrap_or_default(),
                tags: b.tags.map(|t| t.0).unwrap_or_default(),
            };
            done(meta(m, op).await, created_or_updated(existed))
        }
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
        ("GET", ["users", "without-permissions"]) => {
            let t = m.cx.table();
            let users = t.users.values();
            let lonely = users.filter(|u| !t.permissions.values().any(|p| p.def.user == u.name));
            list(req, lonely.map(user_json).collect())
        }
        ("GET", ["users", name]) => match m.cx.table().users.get(*name) {
            Some(u) => Response::json(200, &user_json(u)),
            None => Response::not_found(),
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
            let status = created_or_updated(m.cx.table().users.contains_key(*name));
            done(meta(m, op).await, status)
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
            None => Response::not_found(),
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
            let status = created_or_updated(m.cx.table().has_vhost_access(u, v));
            done(meta(m, MetaOp::PermissionSet(p)).await, status)
        }
        ("DELETE", ["permissions", v, u]) => {
            if !m.cx.table().has_vhost_access(u, v) {
                return Response::not_found();
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
        _ => Response::not_found(),
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

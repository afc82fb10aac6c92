//! `/api/vhosts`, `/api/users` and `/api/permissions`: virtual hosts,
//! users and their permissions (who may see or change what is decided by
//! the gate, `gate.rs`).

use super::api::{created_or_updated, done, meta, visible};
use super::body;
use super::definitions::hashing;
use super::http::{Request, Response};
use super::listing::list;
use super::requests::{PermissionBody, UserBody};
use super::Mgmt;
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
                Response::not_found()
            }
        }
        ("PUT", ["vhosts", v]) => {
            let status = created_or_updated(m.cx.table().vhosts.contains(*v));
            let op = MetaOp::VhostAdd {
                name: v.to_string(),
            };
            done(meta(m, op).await, status)
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

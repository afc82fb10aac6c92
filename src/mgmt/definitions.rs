//! `/api/definitions`: export and import of a broker's (or one vhost's)
//! definitions in RabbitMQ's format, so state moves between RabbitMQ and
//! Warren both ways. Import is typed ([`Definitions`]); a section Warren
//! has nothing for (unknown runtime parameters, policy
//! settings it does not implement) is refused with 400 rather than accepted
//! and ignored. Policies are exported and imported (user policies only, as
//! RabbitMQ exports them).

use super::access::{perms, user_json};
use super::api::meta;
use super::body;
use super::body::flag;
use super::http::Request;
use super::http::Response;
use super::json::{args_to_table, table_to_json};
use super::requests::Definitions;
use super::Mgmt;
use crate::defs::users::HASHING;
use crate::meta::MetaOp;
use serde_json::{json, Value};
use std::rc::Rc;

/// Definitions in RabbitMQ's export format.
pub fn export(m: &Mgmt, vhost: Option<&str>) -> Value {
    let t = m.cx.table();
    let exchanges: Vec<Value> = {
        let mut xs: Vec<_> = t
            .exchanges
            .values()
            .filter(|e| e.def.durable && !e.def.name.starts_with("amq.") && vhost.is_none_or(|v| v == e.def.vhost))
            .map(|e| json!({"name": e.def.name, "vhost": e.def.vhost, "type": e.def.kind.as_str(), "durable": e.def.durable,
                "auto_delete": e.def.auto_delete, "internal": e.def.internal, "arguments": table_to_json(&e.def.args)}))
            .collect();
        xs.sort_by_key(|x| x.to_string());
        xs
    };
    let mut queues: Vec<Value> = t
        .queues
        .values()
        .filter(|q| q.durable && q.exclusive_owner.is_none() && vhost.is_none_or(|v| v == q.vhost))
        .map(|q| json!({"name": q.name, "vhost": q.vhost, "durable": true, "auto_delete": q.auto_delete, "arguments": table_to_json(&q.args)}))
        .collect();
    queues.sort_by_key(|x| x.to_string());
    drop(t);
    let bindings: Vec<Value> = super::bindings::bindings_json(m, vhost)
        .into_iter()
        .filter(|b| b["source"] != "")
        .map(|b| json!({"source": b["source"], "vhost": b["vhost"], "destination": b["destination"],
            "destination_type": b["destination_type"], "routing_key": b["routing_key"], "arguments": b["arguments"]}))
        .collect();
    let t = m.cx.table();
    // Vhost limits and operator policies travel as runtime parameters, as
    // in RabbitMQ's export.
    let mut parameters: Vec<Value> = super::parameters::runtime_parameters(&t)
        .into_iter()
        .filter(|p| vhost.is_none_or(|only| p["vhost"] == only))
        .collect();
    parameters.sort_by_key(|x| x.to_string());
    let mut policies: Vec<Value> = t
        .policies
        .all()
        .filter(|p| !p.operator && vhost.is_none_or(|v| v == p.vhost))
        .map(crate::defs::policy::PolicyDef::to_json)
        .collect();
    policies.sort_by_key(|x| x.to_string());
    let mut out = json!({
        "rabbit_version": "3.13.0", "rabbitmq_version": "3.13.0", "product_name": "Warren",
        "product_version": env!("CARGO_PKG_VERSION"),
        "queues": queues, "exchanges": exchanges, "bindings": bindings, "policies": policies, "parameters": parameters,
    });
    if vhost.is_none() {
        let users = t.users.values().map(|u| {
            let mut j = user_json(u);
            j["limits"] = json!(t.user_limits.get(&u.name).cloned().unwrap_or_default());
            j
        });
        out["users"] = Value::Array(users.collect());
        let vhost = |v: &String| {
            let meta = t.vhost_metadata.get(v).cloned().unwrap_or_default();
            json!({"name": v, "limits": [], "description": meta.description, "tags": meta.tags,
                "metadata": {"description": meta.description, "tags": meta.tags}})
        };
        out["vhosts"] = Value::Array(t.vhosts.iter().map(vhost).collect());
        out["permissions"] = Value::Array(perms(m));
        out["topic_permissions"] = Value::Array(super::topic_permissions::all(m));
        out["global_parameters"] = json!([]);
    }
    out
}

/// A limit's value from a definitions file: an integer, or RabbitMQ's 400.
fn limit_value(name: &str, v: &Value) -> Result<i64, Response> {
    v.as_i64().ok_or_else(|| {
        Response::error(
            400,
            "bad_request",
            format!("Validation failed\n\n{name} should be a number, actually was {v}\n"),
        )
    })
}

/// A hashing algorithm other than Warren's (RabbitMQ's SHA-256 one) is
/// refused: the hash could not be checked at login.
pub fn hashing(algorithm: Option<&str>, user: &str) -> Result<(), Response> {
    match algorithm {
        None => Ok(()),
        Some(a) if a == HASHING => Ok(()),
        Some(a) => Err(Response::error(
            400,
            "bad_request",
            format!("unsupported hashing algorithm {a} for user {user}"),
        )),
    }
}

fn unsupported(what: &str) -> Response {
    Response::error(
        400,
        "bad_request",
        format!("{what} are not supported by Warren"),
    )
}

/// The vhost of an entry: the path's for a per-vhost import, else the
/// entry's own (RabbitMQ's `["no_such_vhost","undefined"]` when missing).
fn vhost_of(only: Option<&str>, own: Option<String>) -> Result<String, Response> {
    match (only, own) {
        (Some(v), _) => Ok(v.to_string()),
        (None, Some(v)) => Ok(v),
        (None, None) => Err(Response::json(
            400,
            &json!({"error": "bad_request", "reason": ["no_such_vhost", "undefined"]}),
        )),
    }
}

/// Import definitions in RabbitMQ's format (users keep their hashes).
/// `only`: the vhost of `POST /api/definitions/{vhost}`, which takes
/// exchanges, queues, bindings, policies and vhost limits into that vhost
/// (users, vhosts and permissions in the file are passed over there, as
/// RabbitMQ does: they are not per-vhost).
/// Objects are created in dependency order; the first refusal stops the
/// import with its answer (what was created before it stays, as in
/// RabbitMQ).
pub async fn import(m: &Mgmt, d: Definitions, only: Option<&str>) -> Result<(), Response> {
    let identity = ["cluster_name", "internal_cluster_id"];
    if let Some(g) = d
        .global_parameters
        .iter()
        .find(|g| !identity.contains(&g.name.as_str()))
    {
        return Err(unsupported(&format!("global parameters ('{}')", g.name)));
    }
    let mut d = d;
    if only.is_some() {
        // As RabbitMQ 3.10 (recorded): a per-vhost import takes what lives
        // in a vhost and leaves the node-wide sections of the file (a full
        // export, say) alone.
        d.users.clear();
        d.vhosts.clear();
        d.permissions.clear();
        d.topic_permissions.clear();
    }
    // Patterns are checked before anything is created, so a file with a
    // pattern Warren cannot compile changes nothing.
    for p in &d.permissions {
        let def = crate::defs::users::PermissionDef {
            user: p.user.clone(),
            vhost: p.vhost.clone(),
            configure: p.configure.clone(),
            write: p.write.clone(),
            read: p.read.clone(),
        };
        if let Err(e) = crate::defs::users::validate_permission(&def) {
            return Err(Response::error(400, "bad_request", e));
        }
    }
    for p in &d.topic_permissions {
        if let Err(e) = crate::defs::users::validate_topic_permission(&topic_def(p)) {
            let reason = json!(["invalid_regexp", e.pattern, e.reason]);
            return Err(Response::json(
                400,
                &json!({"error": "bad_request", "reason": reason}),
            ));
        }
    }
    for v in d.vhosts {
        meta(
            m,
            MetaOp::VhostAdd {
                name: v.name.clone(),
            },
        )
        .await?;
        let md = v.metadata.unwrap_or_default();
        let description = v.description.or(md.description).unwrap_or_default();
        let tags = v.tags.or(md.tags).map(|t| t.0).unwrap_or_default();
        if !description.is_empty() || !tags.is_empty() {
            meta(
                m,
                MetaOp::VhostMetadata {
                    name: v.name,
                    description,
                    tags,
                },
            )
            .await?;
        }
    }
    for u in d.users {
        hashing(u.hashing_algorithm.as_deref(), &u.name)?;
        let op = MetaOp::UserPut {
            name: u.name.clone(),
            password: u.password,
            password_hash: u.password_hash,
            tags: u.tags.0,
        };
        meta(m, op).await?;
        for (limit, value) in &u.limits {
            let op = MetaOp::UserLimit {
                user: u.name.clone(),
                name: limit.clone(),
                value: Some(limit_value(limit, value)?),
            };
            meta(m, op).await?;
        }
    }
    for p in d.parameters {
        if p.component == "operator_policy" {
            let vhost = vhost_of(only, p.vhost)?;
            let body: super::requests::PolicyBody =
                match serde_json::from_value(Value::Object(p.value)) {
                    Ok(b) => b,
                    Err(e) => return Err(Response::error(400, "bad_request", e.to_string())),
                };
            let def = super::policies::from_body(body, &vhost, &p.name, true)?;
            meta(m, MetaOp::PolicySet(def)).await?;
            continue;
        }
        if p.component != "vhost-limits" {
            // Never accepted and ignored: Warren has no other components.
            return Err(Response::error(
                400,
                "bad_request",
                format!(
                    "runtime parameters of component '{}' are not supported",
                    p.component
                ),
            ));
        }
        let vhost = vhost_of(only, p.vhost)?;
        for (limit, value) in &p.value {
            let op = MetaOp::VhostLimit {
                vhost: vhost.clone(),
                name: limit.clone(),
                value: Some(limit_value(limit, value)?),
            };
            meta(m, op).await?;
        }
    }
    for p in d.permissions {
        let def = crate::defs::users::PermissionDef {
            user: p.user,
            vhost: p.vhost,
            configure: p.configure,
            write: p.write,
            read: p.read,
        };
        meta(m, MetaOp::PermissionSet(def)).await?;
    }
    for p in &d.topic_permissions {
        meta(m, MetaOp::TopicPermissionSet(topic_def(p))).await?;
    }
    // Policies first: they apply to the queues and exchanges created next.
    for p in d.policies {
        let vhost = vhost_of(only, p.vhost)?;
        let def = super::policies::from_body(p.body, &vhost, &p.name, false)?;
        meta(m, MetaOp::PolicySet(def)).await?;
    }
    for x in d.exchanges {
        let op = MetaOp::ExchangeDeclare {
            vhost: vhost_of(only, x.vhost)?,
            name: x.name,
            kind: x.kind.unwrap_or_else(|| "direct".into()),
            passive: false,
            durable: flag(x.durable, true),
            auto_delete: flag(x.auto_delete, false),
            internal: flag(x.internal, false),
            args: args_to_table(x.arguments),
        };
        meta(m, op).await?;
    }
    for q in d.queues {
        let op = MetaOp::QueueDeclare {
            vhost: vhost_of(only, q.vhost)?,
            name: q.name,
            server_named: false,
            passive: false,
            durable: flag(q.durable, true),
            exclusive: false,
            auto_delete: flag(q.auto_delete, false),
            args: args_to_table(q.arguments),
            owner: crate::ids::ConnId(0),
        };
        meta(m, op).await?;
    }
    // Exchange-to-exchange bindings may refer to each other: any order works
    // since every exchange exists by now.
    for b in d.bindings {
        let op = MetaOp::Bind {
            vhost: vhost_of(only, b.vhost)?,
            source: b.source,
            dest: b.destination,
            dest_is_queue: b.destination_type.as_deref() != Some("exchange"),
            key: b.routing_key.0,
            args: args_to_table(b.arguments),
            owner: crate::ids::ConnId(0),
            unbind: false,
        };
        meta(m, op).await?;
    }
    Ok(())
}

/// Routes under this resource (`s`: the path segments after `api`,
/// decoded); 404 for any other.
pub async fn route(m: &Rc<Mgmt>, req: &Request, meth: &str, s: &[&str]) -> Response {
    match (meth, s) {
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
        _ => Response::not_found(),
    }
}

fn topic_def(p: &super::requests::TopicPermissionEntry) -> crate::defs::users::TopicPermissionDef {
    crate::defs::users::TopicPermissionDef {
        user: p.user.clone(),
        vhost: p.vhost.clone(),
        exchange: p.exchange.clone(),
        write: p.write.clone(),
        read: p.read.clone(),
    }
}

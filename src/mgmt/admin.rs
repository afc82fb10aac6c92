//! HTTP API routes for administration: vhosts, users, permissions,
//! definitions (export/import in RabbitMQ's format), health checks, and the
//! debugging endpoints that publish to an exchange or get from a queue.

use super::api::{done, list, meta, node_name, visible};
use super::http::{Request, Response};
use super::json::{json_to_table, table_to_json};
use super::Mgmt;
use crate::bus::{Request as ShardReq, Response as ShardResp, ShardMsg};
use crate::defs::users::{PermissionDef, UserDef, HASHING};
use crate::meta::MetaOp;
use crate::queue::Settle;
use amq_protocol::protocol::basic::AMQPProperties;
use base64::Engine;
use serde_json::{json, Value};
use std::rc::Rc;
use std::sync::Arc;

fn tags_of(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

fn user_json(u: &UserDef) -> Value {
    json!({"name": u.name, "password_hash": u.password_hash, "hashing_algorithm": u.hashing_algorithm,
        "tags": u.tags, "limits": {}})
}

fn perm_json(p: &PermissionDef) -> Value {
    json!({"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write, "read": p.read})
}

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
            let b: Value = match serde_json::from_slice(&req.body) {
                Ok(b) => b,
                Err(e) => return Response::error(400, "bad_request", format!("invalid JSON: {e}")),
            };
            let op = MetaOp::UserPut {
                name: name.to_string(),
                password: b["password"].as_str().map(String::from),
                password_hash: b["password_hash"].as_str().map(String::from),
                tags: tags_of(&b["tags"]),
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
            let b: Value = serde_json::from_slice(&req.body).unwrap_or(json!({}));
            let p = PermissionDef {
                user: u.to_string(),
                vhost: v.to_string(),
                configure: b["configure"].as_str().unwrap_or("").to_string(),
                write: b["write"].as_str().unwrap_or("").to_string(),
                read: b["read"].as_str().unwrap_or("").to_string(),
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
        ("POST", ["definitions"]) => match serde_json::from_slice::<Value>(&req.body) {
            Ok(d) if !d.is_object() => {
                Response::error(400, "bad_request", "definitions must be a JSON object")
            }
            Ok(d) => match import(m, &d).await {
                Ok(()) => Response::no_content(),
                Err(r) => r,
            },
            Err(e) => Response::error(400, "bad_request", format!("invalid JSON: {e}")),
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

fn perms(m: &Mgmt) -> Vec<Value> {
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
    let bindings: Vec<Value> = super::api::bindings_json(m, vhost)
        .into_iter()
        .filter(|b| b["source"] != "")
        .map(|b| json!({"source": b["source"], "vhost": b["vhost"], "destination": b["destination"],
            "destination_type": b["destination_type"], "routing_key": b["routing_key"], "arguments": b["arguments"]}))
        .collect();
    let t = m.cx.table();
    // Vhost limits travel as runtime parameters, as in RabbitMQ's export.
    let mut parameters: Vec<Value> = t
        .vhost_limits
        .iter()
        .filter(|(v, _)| vhost.is_none_or(|only| only == v.as_str()))
        .map(
            |(v, l)| json!({"vhost": v, "component": "vhost-limits", "name": "limits", "value": l}),
        )
        .collect();
    parameters.sort_by_key(|x| x.to_string());
    let mut out = json!({
        "rabbit_version": "3.13.0", "rabbitmq_version": "3.13.0", "product_name": "Warren",
        "product_version": env!("CARGO_PKG_VERSION"),
        "queues": queues, "exchanges": exchanges, "bindings": bindings, "policies": [], "parameters": parameters,
    });
    if vhost.is_none() {
        let users = t.users.values().map(|u| {
            let mut j = user_json(u);
            j["limits"] = json!(t.user_limits.get(&u.name).cloned().unwrap_or_default());
            j
        });
        out["users"] = Value::Array(users.collect());
        out["vhosts"] = Value::Array(t.vhosts.iter().map(|v| json!({"name": v, "limits": [], "metadata": {"description": "", "tags": []}})).collect());
        out["permissions"] = Value::Array(perms(m));
        out["topic_permissions"] = json!([]);
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

/// Import definitions in RabbitMQ's format (users keep their hashes).
pub async fn import(m: &Mgmt, d: &Value) -> Result<(), Response> {
    let arr = |k: &str| d[k].as_array().cloned().unwrap_or_default();
    for v in arr("vhosts") {
        if let Some(name) = v["name"].as_str() {
            meta(m, MetaOp::VhostAdd { name: name.into() }).await?;
        }
    }
    for u in arr("users") {
        let Some(name) = u["name"].as_str() else {
            continue;
        };
        let algo = u["hashing_algorithm"].as_str().unwrap_or(HASHING);
        if algo != HASHING {
            return Err(Response::error(
                400,
                "bad_request",
                format!("unsupported hashing algorithm {algo} for user {name}"),
            ));
        }
        let op = MetaOp::UserPut {
            name: name.into(),
            password: u["password"].as_str().map(String::from),
            password_hash: u["password_hash"].as_str().map(String::from),
            tags: tags_of(&u["tags"]),
        };
        meta(m, op).await?;
        for (limit, value) in u["limits"].as_object().into_iter().flatten() {
            let op = MetaOp::UserLimit {
                user: name.into(),
                name: limit.clone(),
                value: Some(limit_value(limit, value)?),
            };
            meta(m, op).await?;
        }
    }
    for p in arr("parameters") {
        let component = p["component"].as_str().unwrap_or("");
        if component != "vhost-limits" {
            // Never accepted and ignored: Warren has no other components.
            return Err(Response::error(
                400,
                "bad_request",
                format!("runtime parameters of component '{component}' are not supported"),
            ));
        }
        let vhost = p["vhost"].as_str().unwrap_or("/");
        for (limit, value) in p["value"].as_object().into_iter().flatten() {
            let op = MetaOp::VhostLimit {
                vhost: vhost.into(),
                name: limit.clone(),
                value: Some(limit_value(limit, value)?),
            };
            meta(m, op).await?;
        }
    }
    for p in arr("permissions") {
        let s = |k: &str| p[k].as_str().unwrap_or("").to_string();
        meta(
            m,
            MetaOp::PermissionSet(PermissionDef {
                user: s("user"),
                vhost: s("vhost"),
                configure: s("configure"),
                write: s("write"),
                read: s("read"),
            }),
        )
        .await?;
    }
    for x in arr("exchanges") {
        let op = MetaOp::ExchangeDeclare {
            vhost: x["vhost"].as_str().unwrap_or("/").into(),
            name: x["name"].as_str().unwrap_or("").into(),
            kind: x["type"].as_str().unwrap_or("direct").into(),
            passive: false,
            durable: x["durable"].as_bool().unwrap_or(true),
            auto_delete: x["auto_delete"].as_bool().unwrap_or(false),
            internal: x["internal"].as_bool().unwrap_or(false),
            args: json_to_table(&x["arguments"]),
        };
        meta(m, op).await?;
    }
    for q in arr("queues") {
        let op = MetaOp::QueueDeclare {
            vhost: q["vhost"].as_str().unwrap_or("/").into(),
            name: q["name"].as_str().unwrap_or("").into(),
            server_named: false,
            passive: false,
            durable: q["durable"].as_bool().unwrap_or(true),
            exclusive: false,
            auto_delete: q["auto_delete"].as_bool().unwrap_or(false),
            args: json_to_table(&q["arguments"]),
            owner: crate::ids::ConnId(0),
        };
        meta(m, op).await?;
    }
    // Exchange-to-exchange bindings may refer to each other: any order works
    // since every exchange exists by now.
    for b in arr("bindings") {
        let op = MetaOp::Bind {
            vhost: b["vhost"].as_str().unwrap_or("/").into(),
            source: b["source"].as_str().unwrap_or("").into(),
            dest: b["destination"].as_str().unwrap_or("").into(),
            dest_is_queue: b["destination_type"].as_str() != Some("exchange"),
            key: b["routing_key"].as_str().unwrap_or("").into(),
            args: json_to_table(&b["arguments"]),
            owner: crate::ids::ConnId(0),
            unbind: false,
        };
        meta(m, op).await?;
    }
    Ok(())
}

/// POST /api/exchanges/vhost/name/publish: route one message like a
/// publisher on this shard would; `routed` says whether any queue took it.
pub fn publish(m: &Mgmt, req: &Request, vhost: &str, exchange: &str) -> Response {
    let b: Value = match serde_json::from_slice(&req.body) {
        Ok(b) => b,
        Err(e) => return Response::error(400, "bad_request", format!("invalid JSON: {e}")),
    };
    let payload = b["payload"].as_str().unwrap_or("");
    let body = if b["payload_encoding"].as_str() == Some("base64") {
        match base64::engine::general_purpose::STANDARD.decode(payload) {
            Ok(v) => v,
            Err(_) => return Response::error(400, "bad_request", "payload is not valid base64"),
        }
    } else {
        payload.as_bytes().to_vec()
    };
    let key = b["routing_key"].as_str().unwrap_or("").to_string();
    let p = &b["properties"];
    let mut props = AMQPProperties::default();
    if let Some(dm) = p["delivery_mode"].as_u64() {
        props = props.with_delivery_mode(dm as u8);
    }
    if let Some(ct) = p["content_type"].as_str() {
        props = props.with_content_type(ct.into());
    }
    if p["headers"].is_object() {
        props = props.with_headers(json_to_table(&p["headers"]));
    }
    let mut expiration_ms = None;
    if let Some(e) = p["expiration"].as_str() {
        match crate::message::parse_expiration(e) {
            Ok(ms) => expiration_ms = Some(ms),
            Err(why) => {
                return Response::error(
                    400,
                    "bad_request",
                    format!("invalid expiration '{e}': {why}"),
                )
            }
        }
        props = props.with_expiration(e.into());
    }
    if !exchange.is_empty() && m.cx.table().exchange(vhost, exchange).is_none() {
        return Response::error(404, "Object Not Found", "Not Found");
    }
    let msg = Arc::new(crate::message::Message {
        exchange: exchange.into(),
        routing_key: key.clone().into(),
        props: crate::codec::encode_properties(&props),
        body: body.into(),
        persistent: *props.delivery_mode() == Some(2),
        expiration_ms,
    });
    let mut dests = Vec::new();
    m.cx.table()
        .route(vhost, exchange, &key, props.headers().as_ref(), &mut dests);
    dests.sort_unstable_by_key(|d| d.1);
    let routed = !dests.is_empty();
    for (qid, home) in dests {
        m.cx.link.outbox.push(
            home,
            ShardMsg::Publish {
                queues: smallvec::smallvec![qid],
                msg: msg.clone(),
                confirm: None,
            },
        );
    }
    Response::json(200, &json!({ "routed": routed }))
}

/// POST /api/queues/vhost/name/get: take up to `count` messages.
pub async fn get_messages(m: &Mgmt, req: &Request, vhost: &str, name: &str) -> Response {
    let b: Value = serde_json::from_slice(&req.body).unwrap_or(json!({}));
    let count = b["count"].as_u64().unwrap_or(1).min(10_000);
    let requeue = b["ackmode"].as_str().unwrap_or("ack_requeue_true") != "ack_requeue_false";
    let truncate = b["truncate"].as_u64().map(|t| t as usize);
    let base64_out = b["encoding"].as_str() == Some("base64");
    let target =
        m.cx.table()
            .queue(vhost, name)
            .map(|q| (q.id, q.home, q.exclusive_owner.is_some()));
    let Some((id, home, _)) = target else {
        return Response::error(404, "Object Not Found", "Not Found");
    };
    let mut out = Vec::new();
    let mut taken = Vec::new();
    for _ in 0..count {
        let got = match m
            .cx
            .call(
                home,
                ShardReq::Get {
                    queue: id,
                    no_ack: !requeue,
                },
            )
            .await
        {
            ShardResp::Got(Some(g)) => g,
            _ => break,
        };
        let props = amq_protocol::protocol::basic::parse_properties(&got.msg.props[..])
            .map(|(_, p)| p)
            .unwrap_or_default();
        let mut payload = got.msg.body.to_vec();
        let bytes = payload.len();
        if let Some(t) = truncate {
            payload.truncate(t);
        }
        let (payload, enc) = match String::from_utf8(payload) {
            Ok(s) if !base64_out => (s, "string"),
            Ok(s) => (
                base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
                "base64",
            ),
            Err(e) => (
                base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
                "base64",
            ),
        };
        let mut pj = json!({});
        if let Some(dm) = props.delivery_mode() {
            pj["delivery_mode"] = json!(dm);
        }
        if let Some(ct) = props.content_type() {
            pj["content_type"] = json!(ct.as_str());
        }
        if let Some(h) = props.headers() {
            pj["headers"] = table_to_json(h);
        }
        out.push(json!({"payload_bytes": bytes, "redelivered": got.redelivered, "exchange": got.msg.exchange.as_str(),
            "routing_key": got.msg.routing_key.as_str(), "message_count": got.remaining, "properties": pj,
            "payload": payload, "payload_encoding": enc}));
        taken.push(got.seq);
    }
    if requeue && !taken.is_empty() {
        m.cx.link.outbox.push(
            home,
            ShardMsg::Settle {
                queue: id,
                seqs: taken,
                how: Settle::Requeue,
            },
        );
    }
    Response::json(200, &Value::Array(out))
}

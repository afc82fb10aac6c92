//! `/api/bindings`: list, create (`POST`, answered with the new binding's
//! `Location`) and delete by properties key, as RabbitMQ's API does.

use super::api::{done, meta};
use super::body::{self};
use super::http::{Request, Response};
use super::json::{args_to_table, json_to_table, table_to_json};
use super::listing::list;
use super::requests::BindingBody;
use super::Mgmt;
use crate::defs::users::UserDef;
use crate::defs::Dest;
use crate::ids::ConnId;
use crate::meta::MetaOp;
use serde_json::{json, Value};
use std::rc::Rc;

/// Routes under this resource (`s`: the path segments after `api`,
/// decoded); 404 for any other.
pub async fn route(
    m: &Rc<Mgmt>,
    req: &Request,
    _user: &UserDef,
    meth: &str,
    s: &[&str],
) -> Response {
    match (meth, s) {
        ("GET", ["bindings"]) => list(req, bindings_json(m, None)),
        ("GET", ["bindings", v]) => list(req, bindings_json(m, Some(v))),
        ("GET", ["bindings", v, "e", src, kind, dst]) => {
            let dtype = if *kind == "q" { "queue" } else { "exchange" };
            let items = bindings_json(m, Some(v))
                .into_iter()
                .filter(|b| {
                    b["source"] == *src
                        && b["destination"] == *dst
                        && b["destination_type"] == dtype
                })
                .collect();
            list(req, items)
        }
        ("POST", ["bindings", v, "e", src, kind, dst]) => {
            let b: BindingBody = match body::parse(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let op = MetaOp::Bind {
                vhost: v.to_string(),
                source: src.to_string(),
                dest: dst.to_string(),
                dest_is_queue: *kind == "q",
                key: b.routing_key.0.clone(),
                args: args_to_table(b.arguments.clone()),
                owner: ConnId(0),
                unbind: false,
            };
            // RabbitMQ answers 201 with the new binding's address relative
            // to the request (`{destination}/{properties_key}`), which
            // terraform keeps as the binding's id.
            let props = properties_key(&b.routing_key.0, &json!(b.arguments.unwrap_or_default()));
            let dest_raw = req.path.rsplit('/').next().unwrap_or_default();
            match done(meta(m, op).await, 201) {
                r if r.status == 201 => r.with_header("Location", format!("{dest_raw}/{props}")),
                refused => refused,
            }
        }
        ("DELETE", ["bindings", v, "e", src, kind, dst, props]) => {
            let dtype = if *kind == "q" { "queue" } else { "exchange" };
            let found = bindings_json(m, Some(v)).into_iter().find(|b| {
                b["source"] == *src
                    && b["destination"] == *dst
                    && b["destination_type"] == dtype
                    && b["properties_key"] == *props
            });
            let Some(b) = found else {
                return Response::not_found();
            };
            let op = MetaOp::Bind {
                vhost: v.to_string(),
                source: src.to_string(),
                dest: dst.to_string(),
                dest_is_queue: *kind == "q",
                key: b["routing_key"].as_str().unwrap_or("").to_string(),
                args: json_to_table(&b["arguments"]),
                owner: ConnId(0),
                unbind: true,
            };
            done(meta(m, op).await, 204)
        }
        _ => Response::not_found(),
    }
}

/// A binding's `properties_key` as RabbitMQ builds it: the routing key
/// URL-quoted (`~` as `%7E`), then `~` and a hash of the arguments if any;
/// `~` alone for an empty key without arguments.
pub fn properties_key(key: &str, args: &Value) -> String {
    use base64::Engine;
    use sha2::Digest;
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    let no_args = args.as_object().is_none_or(|a| a.is_empty());
    if no_args {
        return if out.is_empty() { "~".into() } else { out };
    }
    let digest = sha2::Sha256::digest(args.to_string().as_bytes());
    let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..12]);
    format!("{out}~{hash}")
}

/// Every binding (of `vhost`, or all) in the API's shape, the default
/// exchange's implicit bindings included as RabbitMQ lists them.
pub fn bindings_json(m: &Mgmt, vhost: Option<&str>) -> Vec<Value> {
    let t = m.cx.table();
    let mut out = Vec::new();
    // The implicit default-exchange binding of every queue comes first.
    let mut queues: Vec<_> = t
        .queues
        .values()
        .filter(|q| vhost.is_none_or(|v| v == q.vhost))
        .collect();
    queues.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    for q in queues {
        out.push(json!({"source": "", "vhost": q.vhost, "destination": q.name, "destination_type": "queue",
            "routing_key": q.name, "arguments": {}, "properties_key": properties_key(&q.name, &Value::Null)}));
    }
    let mut xs: Vec<_> = t
        .exchanges
        .iter()
        .filter(|((v, _), _)| vhost.is_none_or(|x| x == v))
        .collect();
    xs.sort_by(|a, b| a.0.cmp(b.0));
    for ((v, src), e) in xs {
        let mut bs: Vec<Value> = e
            .bindings()
            .map(|(d, key, args)| {
                let (dtype, dname) = match d {
                    Dest::Queue(id, _) => ("queue", t.queue_by_id(*id).map(|q| q.name.clone()).unwrap_or_default()),
                    Dest::Exchange(n) => ("exchange", n.clone()),
                };
                let aj = table_to_json(args);
                json!({"source": src, "vhost": v, "destination": dname, "destination_type": dtype,
                    "routing_key": key, "properties_key": properties_key(key, &aj), "arguments": aj})
            })
            .collect();
        bs.sort_by_key(|b| b.to_string());
        out.extend(bs);
    }
    out
}

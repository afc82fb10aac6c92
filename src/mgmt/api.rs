//! HTTP API routes for objects: overview, nodes, connections, channels,
//! consumers, exchanges, queues, bindings (same paths and JSON field names
//! as RabbitMQ's management plugin).

use super::body::{self, flag};
use super::http::{decode_path_segment, Request, Response};
use super::json::{args_to_table, json_to_table, table_to_json};
use super::requests::{BindingBody, ExchangeBody, QueueBody};
use super::stats::ShardSnapshot;
use super::{admin, gather, metrics, Mgmt};
use crate::bus::{Request as ShardReq, Response as ShardResp};
use crate::defs::users::UserDef;
use crate::defs::Dest;
use crate::error::AmqpError;
use crate::ids::ConnId;
use crate::meta::{MetaOp, MetaReply};
use serde_json::{json, Value};
use std::rc::Rc;

/// An AMQP refusal from the authority as RabbitMQ's API answers it: 404
/// for NOT_FOUND, 403 for ACCESS_REFUSED, 400 `bad_request` otherwise, the
/// reason without the "CODE NAME - " prefix.
pub fn amqp_error(e: &AmqpError) -> Response {
    let status = match e.code {
        404 => 404,
        403 => 403,
        405 | 406 => 400,
        _ => 400,
    };
    let reason = e
        .text
        .split_once(" - ")
        .map(|(_, r)| r)
        .unwrap_or(&e.text)
        .to_string();
    Response::error(
        status,
        if status == 404 {
            "Object Not Found"
        } else {
            "bad_request"
        },
        reason,
    )
}

/// The response for a finished change: 201 Created or 204 No Content.
pub fn done(r: Result<MetaReply, Response>, status: u16) -> Response {
    match r {
        Ok(_) if status == 204 => Response::no_content(),
        Ok(_) => Response::json(status, &json!({})),
        Err(r) => r,
    }
}

/// Run a metadata change through the authority (shard 0), as an AMQP
/// declare would; its refusal as [`amqp_error`].
pub async fn meta(m: &Mgmt, op: MetaOp) -> Result<MetaReply, Response> {
    match m.cx.call(m.cx.authority(), ShardReq::Meta(op)).await {
        ShardResp::Meta(Ok(r)) => Ok(r),
        ShardResp::Meta(Err(e)) => Err(amqp_error(&e)),
        _ => Err(Response::error(500, "internal_error", "unexpected reply")),
    }
}

fn q(req: &Request, k: &str) -> Option<String> {
    req.query
        .iter()
        .find(|(a, _)| a == k)
        .map(|(_, v)| v.clone())
}

/// Apply `columns=`, `sort=`, and `page=`/`page_size=` as RabbitMQ does.
pub fn list(req: &Request, mut items: Vec<Value>) -> Response {
    if let Some(sort) = q(req, "sort") {
        items.sort_by(|a, b| {
            let (x, y) = (&a[&sort], &b[&sort]);
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                _ => x.to_string().cmp(&y.to_string()),
            }
        });
        if q(req, "sort_reverse").as_deref() == Some("true") {
            items.reverse();
        }
    }
    let total = items.len();
    if let Some(name) = q(req, "name") {
        items.retain(|i| i["name"].as_str().is_some_and(|n| n.contains(&name)));
    }
    if let Some(cols) = q(req, "columns") {
        let cols: Vec<&str> = cols.split(',').collect();
        items = items.into_iter().map(|i| project(&i, &cols)).collect();
    }
    let Some(page) = q(req, "page") else {
        return Response::json(200, &Value::Array(items));
    };
    let size = q(req, "page_size").map(|p| p.parse::<usize>().ok());
    let (page, size) = match (page.parse::<usize>().ok(), size) {
        (Some(p), None) if p >= 1 => (p, 100),
        (Some(p), Some(Some(s))) if p >= 1 && (1..=500).contains(&s) => (p, s),
        _ => {
            return Response::error(
                400,
                "invalid_pagination_parameters",
                format!("Invalid pagination parameters: page number {page}"),
            )
        }
    };
    let filtered = items.len();
    let page_count = filtered.div_ceil(size);
    if page > 1 && page > page_count {
        return Response::error(
            400,
            "page_out_of_range",
            format!("Page out of range, page: {page} page size: {size}, len: {filtered}"),
        );
    }
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    Response::json(
        200,
        &json!({"filtered_count": filtered, "item_count": slice.len(), "items": slice, "page": page,
                "page_count": page_count, "page_size": size, "total_count": total}),
    )
}

fn project(v: &Value, cols: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for c in cols {
        let mut parts = c.split('.');
        let first = parts.next().unwrap_or("");
        let Some(x) = v.get(first) else { continue };
        match parts.next() {
            None => {
                out.insert(first.to_string(), x.clone());
            }
            Some(sub) => {
                if let Some(y) = x.get(sub) {
                    let e = out.entry(first.to_string()).or_insert_with(|| json!({}));
                    e[sub] = y.clone();
                }
            }
        }
    }
    Value::Object(out)
}

/// May `user` see objects of `vhost` in listings? (The gate's rule.)
pub fn visible(m: &Mgmt, user: &UserDef, vhost: &str) -> bool {
    crate::meta::access::vhost(&m.cx.table(), user, vhost)
}

fn queue_json(m: &Mgmt, q: &super::stats::QueueInfo, node: &str) -> Value {
    let prefix = format!("queue|{}|{}|", q.vhost, q.name);
    json!({
        "name": q.name, "vhost": q.vhost, "durable": q.durable, "auto_delete": q.auto_delete,
        "exclusive": q.exclusive, "arguments": q.arguments, "node": node, "type": "classic",
        "state": "running", "messages": q.ready + q.unacked, "messages_ready": q.ready,
        "messages_unacknowledged": q.unacked, "consumers": q.consumers, "shard": q.shard,
        "message_stats": m.message_stats(&prefix, &[
            ("publish", q.stats.publish), ("deliver_get", q.stats.deliver + q.stats.get),
            ("deliver", q.stats.deliver), ("get", q.stats.get), ("ack", q.stats.ack), ("redeliver", q.stats.redeliver),
        ]),
    })
}

/// This node's name as the API shows it: `warren@<hostname>`.
pub fn node_name() -> String {
    format!(
        "warren@{}",
        std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    )
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
        out.push(json!({
            "name": n, "vhost": v, "type": kind, "durable": durable, "auto_delete": auto_delete,
            "internal": internal, "arguments": args, "user_who_performed_action": "",
            "message_stats": m.message_stats(&prefix, &[("publish_in", i), ("publish_out", o)]),
        }));
    }
    out
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

/// Answer one request: `/metrics`, or an `/api` route after login, the
/// vhost check and the authorisation gate.
pub async fn route(m: &Rc<Mgmt>, req: &Request) -> Response {
    // Percent-decode each segment after splitting (a vhost "/" is "%2F");
    // RabbitMQ names the default exchange "amq.default" in URLs.
    let segs: Vec<String> = req
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_path_segment)
        .collect();
    let segs: Vec<String> = segs
        .into_iter()
        .enumerate()
        .map(|(i, x)| {
            if i == 3 && x == "amq.default" && req.path.starts_with("/api/exchanges/") {
                String::new()
            } else {
                x
            }
        })
        .collect();
    let s: Vec<&str> = segs.iter().map(|x| x.as_str()).collect();
    if s.first() == Some(&"metrics") {
        return metrics::render(m).await;
    }
    if s.first() != Some(&"api") {
        return Response::error(404, "Object Not Found", "Not Found");
    }
    let user = match m.authenticate(req) {
        Ok(u) => u,
        Err(r) => return r,
    };
    // HEAD is answered as GET; hyper leaves the body out.
    let meth = match req.method.as_str() {
        "HEAD" => "GET",
        other => other,
    };
    // RabbitMQ answers 404 for anything under a vhost that does not exist.
    if let [kind, v, rest @ ..] = &s[1..] {
        let scoped = matches!(
            *kind,
            "queues" | "exchanges" | "bindings" | "consumers" | "definitions" | "permissions"
        ) || (*kind == "vhosts" && !rest.is_empty());
        if scoped && !m.cx.table().vhosts.contains(*v) {
            return Response::error(404, "Object Not Found", "Not Found");
        }
    }
    // The one authorisation gate, before any route runs.
    if let Err(r) = super::gate::authorize(&m.cx.table(), &user, meth, &s[1..]) {
        return r;
    }
    match (meth, &s[1..]) {
        ("GET", ["overview"]) => overview(m, req).await,
        ("GET", ["nodes"]) => Response::json(200, &json!([node_json(m).await])),
        ("GET", ["nodes", _]) => Response::json(200, &node_json(m).await),
        ("GET", ["whoami"]) => Response::json(200, &json!({"name": user.name, "tags": user.tags})),
        ("GET", ["connections"]) => {
            let snaps = gather(&m.cx).await;
            let items = snaps
                .iter()
                .flat_map(|s| s.connections.iter())
                .filter(|c| crate::meta::access::connection(&user, &c.user))
                .map(|c| conn_json(m, c))
                .collect();
            list(req, items)
        }
        ("GET", ["connections", name]) => {
            let snaps = gather(&m.cx).await;
            match snaps
                .iter()
                .flat_map(|s| s.connections.iter())
                .find(|c| c.name == *name && crate::meta::access::connection(&user, &c.user))
            {
                Some(c) => Response::json(200, &conn_json(m, c)),
                None => Response::error(404, "Object Not Found", "Not Found"),
            }
        }
        ("DELETE", ["connections", name]) => {
            let snaps = gather(&m.cx).await;
            let Some(c) = snaps
                .iter()
                .flat_map(|s| s.connections.iter())
                .find(|c| c.name == *name && crate::meta::access::connection(&user, &c.user))
            else {
                return Response::error(404, "Object Not Found", "Not Found");
            };
            let reason = req
                .header("x-reason")
                .or_else(|| q(req, "reason"))
                .unwrap_or_else(|| "Closed via management plugin".into());
            m.cx.call(
                crate::ids::ShardId(c.shard),
                ShardReq::CloseConnection(c.name.clone(), reason),
            )
            .await;
            Response::no_content()
        }
        ("GET", ["channels"]) => {
            let snaps = gather(&m.cx).await;
            let items = snaps.iter().flat_map(|s| s.channels.iter()).filter(|c| crate::meta::access::connection(&user, &c.user)).map(|c| {
                let prefix = format!("channel|{}|{} ({})|", c.vhost, c.connection, c.number);
                json!({"name": format!("{} ({})", c.connection, c.number), "number": c.number, "vhost": c.vhost,
                    "user": c.user, "node": node_name(), "state": "running", "consumer_count": c.consumers,
                    "messages_unacknowledged": c.unacked, "prefetch_count": c.prefetch, "global_prefetch_count": 0,
                    "confirm": c.confirm, "transactional": c.tx,
                    "connection_details": {"name": c.connection, "peer_host": c.peer_host, "peer_port": c.peer_port},
                    "message_stats": m.message_stats(&prefix, &[("publish", c.publish), ("deliver_get", c.deliver), ("ack", c.ack), ("confirm", c.confirmed)])})
            }).collect();
            list(req, items)
        }
        ("GET", ["consumers"]) | ("GET", ["consumers", _]) => {
            let vh = s.get(2).copied();
            let snaps = gather(&m.cx).await;
            let items = snaps
                .iter()
                .flat_map(|s| s.consumers.iter())
                .filter(|c| vh.is_none_or(|v| v == c.vhost) && visible(m, &user, &c.vhost))
                .map(|c| json!({"queue": {"name": c.queue, "vhost": c.vhost}, "consumer_tag": c.tag,
                    "channel_details": {"name": format!("{} ({})", c.connection, c.channel), "number": c.channel,
                        "connection_name": c.connection, "peer_host": c.peer_host, "peer_port": c.peer_port,
                        "user": c.user, "node": node_name()},
                    "ack_required": c.ack_required, "exclusive": c.exclusive, "prefetch_count": c.prefetch,
                    "active": true, "activity_status": "up", "arguments": {}}))
                .collect();
            list(req, items)
        }
        ("GET", ["exchanges"]) => list(req, exchanges_json(m, &gather(&m.cx).await, None, &user)),
        ("GET", ["exchanges", v]) => {
            list(req, exchanges_json(m, &gather(&m.cx).await, Some(v), &user))
        }
        ("GET", ["exchanges", v, n]) => {
            let all = exchanges_json(m, &gather(&m.cx).await, Some(v), &user);
            match all.into_iter().find(|x| x["name"] == *n) {
                Some(x) => Response::json(200, &x),
                None => Response::error(404, "Object Not Found", "Not Found"),
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
            done(meta(m, op).await, 201)
        }
        ("DELETE", ["exchanges", v, n]) => {
            if m.cx.table().exchange(v, n).is_none() {
                return Response::error(404, "Object Not Found", "Not Found");
            }
            let op = MetaOp::ExchangeDelete {
                vhost: v.to_string(),
                name: n.to_string(),
                if_unused: q(req, "if-unused").as_deref() == Some("true"),
            };
            done(meta(m, op).await, 204)
        }
        ("POST", ["exchanges", v, n, "publish"]) => super::messages::publish(m, req, &user, v, n),
        ("GET", ["exchanges", v, n, "bindings", dir]) => {
            let key = if *dir == "source" {
                "source"
            } else {
                "destination"
            };
            let items = bindings_json(m, Some(v))
                .into_iter()
                .filter(|b| {
                    b[key] == *n && (key == "source" || b["destination_type"] == "exchange")
                })
                .collect();
            list(req, items)
        }
        ("GET", ["queues"]) | ("GET", ["queues", _]) => {
            let vh = s.get(2).copied();
            let snaps = gather(&m.cx).await;
            let node = node_name();
            let mut items: Vec<Value> = snaps
                .iter()
                .flat_map(|s| s.queues.iter())
                .filter(|q| vh.is_none_or(|v| v == q.vhost) && visible(m, &user, &q.vhost))
                .map(|q| queue_json(m, q, &node))
                .collect();
            items.sort_by(|a, b| {
                (a["vhost"].to_string(), a["name"].to_string())
                    .cmp(&(b["vhost"].to_string(), b["name"].to_string()))
            });
            list(req, items)
        }
        ("GET", ["queues", v, n]) => {
            let snaps = gather(&m.cx).await;
            match snaps
                .iter()
                .flat_map(|s| s.queues.iter())
                .find(|q| q.vhost == *v && q.name == *n)
            {
                Some(qi) => Response::json(200, &queue_json(m, qi, &node_name())),
                None => Response::error(404, "Object Not Found", "Not Found"),
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
            done(meta(m, op).await, 201)
        }
        ("DELETE", ["queues", v, n]) => {
            if m.cx.table().queue(v, n).is_none() {
                return Response::error(404, "Object Not Found", "Not Found");
            }
            let op = MetaOp::QueueDelete {
                vhost: v.to_string(),
                name: n.to_string(),
                if_unused: q(req, "if-unused").as_deref() == Some("true"),
                if_empty: q(req, "if-empty").as_deref() == Some("true"),
                owner: Some(ConnId(0)),
            };
            done(meta(m, op).await, 204)
        }
        ("DELETE", ["queues", v, n, "contents"]) => {
            let target = m.cx.table().queue(v, n).map(|q| (q.id, q.home));
            let Some((id, home)) = target else {
                return Response::error(404, "Object Not Found", "Not Found");
            };
            m.cx.call(home, ShardReq::Purge(id)).await;
            Response::no_content()
        }
        ("POST", ["queues", v, n, "get"]) => super::messages::get_messages(m, req, v, n).await,
        ("GET", ["queues", v, n, "bindings"]) => {
            let items = bindings_json(m, Some(v))
                .into_iter()
                .filter(|b| b["destination"] == *n && b["destination_type"] == "queue")
                .collect();
            list(req, items)
        }
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
                return Response::error(404, "Object Not Found", "Not Found");
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
        _ => match super::limits::route(m, req, meth, &s[1..]).await {
            Some(r) => r,
            None => admin::route(m, req, &user, meth, &s[1..]).await,
        },
    }
}

fn conn_json(m: &Mgmt, c: &super::stats::ConnInfo) -> Value {
    let prefix = format!("connection|{}|{}|", c.vhost, c.name);
    json!({"name": c.name, "node": node_name(), "vhost": c.vhost, "user": c.user, "host": "127.0.0.1",
        "port": c.port, "peer_host": c.peer_host, "peer_port": c.peer_port, "channels": c.channels,
        "state": "running", "type": "network", "protocol": "AMQP 0-9-1", "auth_mechanism": "PLAIN",
        "recv_oct": c.recv_oct, "send_oct": c.send_oct, "frame_max": c.frame_max, "channel_max": c.channel_max,
        "ssl": false, "user_who_performed_action": c.user,
        "recv_oct_details": {"rate": m.rate(&format!("{prefix}recv_oct"))},
        "send_oct_details": {"rate": m.rate(&format!("{prefix}send_oct"))},
        "connected_at": c.connected_at, "client_properties": c.client_properties, "shard": c.shard})
}

async fn node_json(m: &Mgmt) -> Value {
    json!({"name": node_name(), "type": "disc", "running": true, "mem_used": metrics::rss_bytes(),
        "uptime": m.started.elapsed().as_millis() as u64, "processors": m.cx.shard_count(),
        "fd_used": std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0),
        "disk_free_alarm": m.cx.conns.blocked.get(), "mem_alarm": false})
}

async fn overview(m: &Mgmt, _req: &Request) -> Response {
    let snaps = gather(&m.cx).await;
    let t = m.cx.table();
    let (mut ready, mut unacked, mut queues, mut consumers) = (0u64, 0u64, 0u64, 0u64);
    for s in &snaps {
        for q in &s.queues {
            ready += q.ready as u64;
            unacked += q.unacked as u64;
            queues += 1;
        }
        consumers += s.consumers.len() as u64;
    }
    let conns: usize = snaps.iter().map(|s| s.connections.len()).sum();
    let chans: usize = snaps.iter().map(|s| s.channels.len()).sum();
    let c = super::counters(&snaps);
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    Response::json(
        200,
        &json!({
            "management_version": env!("CARGO_PKG_VERSION"), "rabbitmq_version": "3.13.0",
            "product_name": "Warren", "product_version": env!("CARGO_PKG_VERSION"),
            "cluster_name": "warren", "node": node_name(),
            "object_totals": {"connections": conns, "channels": chans, "exchanges": t.exchanges.len() + t.vhosts.len(),
                "queues": queues, "consumers": consumers},
            "queue_totals": {"messages": ready + unacked, "messages_ready": ready, "messages_unacknowledged": unacked},
            "message_stats": m.message_stats("all|||", &[("publish", get("all|||publish")), ("deliver_get", get("all|||deliver_get")),
                ("ack", get("all|||ack")), ("confirm", get("all|||confirm"))]),
            "listeners": [{"node": node_name(), "protocol": "amqp", "ip_address": "::", "port": m.amqp_port},
                          {"node": node_name(), "protocol": "http", "ip_address": "::", "port": m.http_port}],
            "shards": m.cx.shard_count(),
        }),
    )
}

//! `/api/bindings`: list, create (`POST`, answered with the new binding's
//! `Location`) and delete by properties key, as RabbitMQ's API does.

use super::api::{done, meta};
use super::body::{self};
use super::http::{Request, Response};
use super::json::{args_to_table, table_to_json};
use super::listing::list;
use super::phash2::Term;
use super::requests::BindingBody;
use super::Mgmt;
use crate::defs::users::{Access, UserDef};
use crate::defs::Dest;
use crate::ids::ConnId;
use crate::meta::MetaOp;
use amq_protocol::types::{AMQPValue, FieldTable};
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
        ("GET", ["bindings", v, "e", src, kind, dst, props]) => {
            let Some((key, args)) = find(m, v, src, kind, dst, props) else {
                return Response::not_found();
            };
            let dtype = if *kind == "q" { "queue" } else { "exchange" };
            Response::json(
                200,
                &json!({"source": src, "vhost": v, "destination": dst, "destination_type": dtype,
                    "routing_key": key, "arguments": table_to_json(&args), "properties_key": props}),
            )
        }
        ("POST", ["bindings", v, "e", src, kind, dst]) => {
            let b: BindingBody = match body::parse(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            if let Err(r) = topic_read(m, user, v, src, &b.routing_key.0) {
                return r;
            }
            let args = args_to_table(b.arguments);
            // Computed before the table moves into the operation.
            let props = properties_key(&b.routing_key.0, &args);
            let op = MetaOp::Bind {
                vhost: v.to_string(),
                source: src.to_string(),
                dest: dst.to_string(),
                dest_is_queue: *kind == "q",
                key: b.routing_key.0.clone(),
                args,
                owner: ConnId(0),
                unbind: false,
            };
            // RabbitMQ answers 201 with the new binding's address relative
            // to the request (`{destination}/{properties_key}`), which
            // terraform keeps as the binding's id; the key is escaped once
            // more there (`%` as `%25`, `+` as `%2B`; recorded from 3.10).
            let dest_raw = req.path.rsplit('/').next().unwrap_or_default();
            let props = props.replace('%', "%25").replace('+', "%2B");
            match done(meta(m, op).await, 201) {
                r if r.status == 201 => r.with_header("Location", format!("{dest_raw}/{props}")),
                refused => refused,
            }
        }
        ("DELETE", ["bindings", v, "e", src, kind, dst, props]) => {
            let found = find(m, v, src, kind, dst, props);
            let Some((key, args)) = found else {
                return Response::not_found();
            };
            if let Err(r) = topic_read(m, user, v, src, &key) {
                return r;
            }
            let op = MetaOp::Bind {
                vhost: v.to_string(),
                source: src.to_string(),
                dest: dst.to_string(),
                dest_is_queue: *kind == "q",
                key,
                args,
                owner: ConnId(0),
                unbind: true,
            };
            done(meta(m, op).await, 204)
        }
        _ => Response::not_found(),
    }
}

/// The binding from `src` to the queue (`kind` "q") or exchange ("e")
/// `dst` whose properties key is `props`: its routing key and arguments
/// (their AMQP types intact: a table rebuilt from JSON would not match
/// them).
fn find(
    m: &Mgmt,
    v: &str,
    src: &str,
    kind: &str,
    dst: &str,
    props: &str,
) -> Option<(String, FieldTable)> {
    let t = m.cx.table();
    let e = t.exchange(v, src)?;
    let found = e
        .bindings()
        .find(|(d, key, args)| {
            let same_dest = match d {
                Dest::Queue(id, _) => {
                    kind == "q" && t.queue_by_id(*id).is_some_and(|q| q.name == dst)
                }
                Dest::Exchange(n) => kind == "e" && n == dst,
            };
            same_dest && properties_key(key, args) == props
        })
        .map(|(_, key, args)| (key.to_string(), args.clone()));
    found
}

/// The topic read permission for binding from `source` with `key`
/// (`meta::access::topic`, as an AMQP bind checks it); refused as
/// RabbitMQ 3.10's API refuses it: 401 `not_authorised` "Access refused.".
fn topic_read(
    m: &Mgmt,
    user: &UserDef,
    vhost: &str,
    source: &str,
    key: &str,
) -> Result<(), Response> {
    let t = m.cx.table();
    crate::meta::access::topic(&t, &user.name, vhost, Access::Read, source, key)
        .map_err(|_| Response::error(401, "not_authorised", "Access refused."))
}

/// A binding's `properties_key` as RabbitMQ's `rabbit_mgmt_format`
/// builds it: the routing key URL-quoted byte by byte (letters, digits,
/// `.`, `-`, `_` kept, space as `+`, anything else `%XX`, `~` included),
/// then `~` and `args_hash` of the arguments when there are any: the
/// base64url of `erlang:phash2(Args, 1 bsl 32)` over the table as RabbitMQ
/// stores it (`phash2`), so a binding has the same key on both brokers and
/// a key saved by a tool (terraform's binding id) moves with the state.
/// `~` alone for an empty key without arguments.
pub fn properties_key(key: &str, args: &FieldTable) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    if args.inner().is_empty() {
        return if out.is_empty() { "~".into() } else { out };
    }
    format!("{out}~{}", super::phash2::args_hash(&table_term(args)))
}

/// A field table as the Erlang term RabbitMQ stores for it: a list of
/// `{Name, Type, Value}` in name order (RabbitMQ sorts a binding's
/// arguments by name before storing them, `rabbit_misc:sort_field_table`;
/// Warren's tables are kept sorted at every level, so a nested table sent
/// over AMQP out of name order hashes differently from RabbitMQ, which
/// keeps nested tables in wire order).
fn table_term(t: &FieldTable) -> Term<'_> {
    Term::List(
        t.inner()
            .iter()
            .map(|(k, v)| {
                let (ty, val) = value_term(v);
                Term::Tuple(vec![
                    Term::Binary(k.as_str().as_bytes()),
                    Term::Atom(ty),
                    val,
                ])
            })
            .collect(),
    )
}

/// The type atom and value term of one field value, as RabbitMQ's
/// `rabbit_binary_parser` (AMQP) and `rabbit_mgmt_format` (JSON: integers
/// `long`, other numbers `double`) type them.
fn value_term(v: &AMQPValue) -> (&'static str, Term<'_>) {
    match v {
        AMQPValue::Boolean(b) => ("bool", Term::Atom(if *b { "true" } else { "false" })),
        AMQPValue::ShortShortInt(x) => ("byte", Term::Int((*x).into())),
        AMQPValue::ShortShortUInt(x) => ("unsignedbyte", Term::Int((*x).into())),
        AMQPValue::ShortInt(x) => ("short", Term::Int((*x).into())),
        AMQPValue::ShortUInt(x) => ("unsignedshort", Term::Int((*x).into())),
        AMQPValue::LongInt(x) => ("signedint", Term::Int((*x).into())),
        AMQPValue::LongUInt(x) => ("unsignedint", Term::Int((*x).into())),
        AMQPValue::LongLongInt(x) => ("long", Term::Int((*x).into())),
        AMQPValue::Timestamp(x) => ("timestamp", Term::Int((*x).into())),
        AMQPValue::Float(x) => ("float", Term::Float((*x).into())),
        AMQPValue::Double(x) => ("double", Term::Float(*x)),
        AMQPValue::DecimalValue(d) => (
            "decimal",
            Term::Tuple(vec![Term::Int(d.scale.into()), Term::Int(d.value.into())]),
        ),
        AMQPValue::ShortString(s) => ("longstr", Term::Binary(s.as_str().as_bytes())),
        AMQPValue::LongString(s) => ("longstr", Term::Binary(s.as_bytes())),
        AMQPValue::ByteArray(b) => ("binary", Term::Binary(b.as_slice())),
        AMQPValue::FieldArray(a) => (
            "array",
            Term::List(
                a.as_slice()
                    .iter()
                    .map(|x| {
                        let (ty, val) = value_term(x);
                        Term::Tuple(vec![Term::Atom(ty), val])
                    })
                    .collect(),
            ),
        ),
        AMQPValue::FieldTable(t) => ("table", table_term(t)),
        AMQPValue::Void => ("void", Term::Atom("undefined")),
    }
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
            "routing_key": q.name, "arguments": {}, "properties_key": properties_key(&q.name, &FieldTable::default())}));
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
                    "routing_key": key, "properties_key": properties_key(key, args), "arguments": aj})
            })
            .collect();
        bs.sort_by_key(|b| b.to_string());
        out.extend(bs);
    }
    out
}

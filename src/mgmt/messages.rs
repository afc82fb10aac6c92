//! The management API's debugging endpoints for messages, as RabbitMQ's:
//! `POST /api/exchanges/{vhost}/{name}/publish` routes one message like a
//! publisher would, `POST /api/queues/{vhost}/{name}/get` takes messages
//! like `basic.get`. Bodies, answers and refusals are RabbitMQ 3.10's,
//! recorded from the real broker.

use super::body;
use super::http::{Request, Response};
use super::json::{json_to_table, table_to_json};
use super::requests::{GetBody, PublishBody, PublishProperties};
use super::Mgmt;
use crate::bus::{Request as ShardReq, Response as ShardResp, ShardMsg};
use crate::defs::users::{Access, UserDef};
use crate::queue::Settle;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::ShortString;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// An integer property, or RabbitMQ's `["not_int", name]`.
fn int_property(v: &Option<Value>, name: &str, max: u64) -> Result<Option<u64>, Response> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(x) => match x.as_u64() {
            Some(n) if n <= max => Ok(Some(n)),
            _ => Err(Response::json(
                400,
                &json!({"error": "bad_request", "reason": ["not_int", name]}),
            )),
        },
    }
}

fn precondition_failed(text: String) -> Response {
    Response::error(
        400,
        "bad_request",
        format!("406 PRECONDITION_FAILED - {text}"),
    )
}

/// The basic properties of an HTTP publish, every one applied; the
/// expiration in ms when set. `user` is the authenticated user: a
/// `user_id` naming anyone else is refused (RabbitMQ's validated user-id).
fn properties(
    p: PublishProperties,
    user: &UserDef,
) -> Result<(AMQPProperties, Option<u64>), Response> {
    let s = |v: String| ShortString::from(v);
    let mut props = AMQPProperties::default();
    if let Some(dm) = int_property(&p.delivery_mode, "delivery_mode", 255)? {
        props = props.with_delivery_mode(dm as u8);
    }
    if let Some(pr) = int_property(&p.priority, "priority", 255)? {
        props = props.with_priority(pr as u8);
    }
    if let Some(ts) = int_property(&p.timestamp, "timestamp", u64::MAX)? {
        props = props.with_timestamp(ts);
    }
    if let Some(v) = p.content_type {
        props = props.with_content_type(s(v));
    }
    if let Some(v) = p.content_encoding {
        props = props.with_content_encoding(s(v));
    }
    if let Some(h) = p.headers {
        props = props.with_headers(json_to_table(&Value::Object(h)));
    }
    if let Some(v) = p.correlation_id {
        props = props.with_correlation_id(s(v));
    }
    if let Some(v) = p.reply_to {
        props = props.with_reply_to(s(v));
    }
    if let Some(v) = p.message_id {
        props = props.with_message_id(s(v));
    }
    if let Some(v) = p.kind {
        props = props.with_type(s(v));
    }
    if let Some(v) = p.app_id {
        props = props.with_app_id(s(v));
    }
    if let Some(v) = p.user_id {
        if v != user.name {
            return Err(precondition_failed(format!(
                "user_id property set to '{v}' but authenticated user was '{}'",
                user.name
            )));
        }
        props = props.with_user_id(s(v));
    }
    let mut expiration_ms = None;
    if let Some(e) = p.expiration {
        match crate::message::parse_expiration(&e) {
            Ok(ms) => expiration_ms = Some(ms),
            Err(why) => {
                return Err(precondition_failed(format!(
                    "invalid expiration '{e}': {why}"
                )))
            }
        }
        props = props.with_expiration(s(e));
    }
    Ok((props, expiration_ms))
}

/// POST /api/exchanges/{vhost}/{name}/publish: route one message like a
/// publisher on this shard would; `routed` says whether any queue took
/// it. No publisher confirm: the answer comes once the message is handed
/// to the queues' shards.
pub fn publish(m: &Mgmt, req: &Request, user: &UserDef, vhost: &str, exchange: &str) -> Response {
    let b: PublishBody = match body::parse(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let payload = match b.payload_encoding.as_str() {
        "string" => b.payload.into_bytes(),
        "base64" => match base64::engine::general_purpose::STANDARD.decode(&b.payload) {
            Ok(v) => v,
            Err(_) => return Response::error(400, "bad_request", "payload is not valid base64"),
        },
        other => {
            return Response::json(
                400,
                &json!({"error": "bad_request", "reason": ["unsupported_encoding", other]}),
            )
        }
    };
    let (props, expiration_ms) = match properties(b.properties, user) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !exchange.is_empty() && m.cx.table().exchange(vhost, exchange).is_none() {
        return Response::not_found();
    }
    // CC/BCC as for an AMQP publish (`channel::sender_routes`).
    let bcc = match props.headers() {
        Some(h) => match crate::channel::sender_routes::check(h) {
            Ok(b) => b,
            Err(e) => return Response::error(400, "bad_request", e.text.as_str()),
        },
        None => false,
    };
    // Topic permissions as for an AMQP publish (the routing key and any
    // CC/BCC key); refused as RabbitMQ 3.10's API refuses it, 400 with the
    // channel's error.
    {
        let mut keys = vec![b.routing_key.0.as_str()];
        crate::channel::sender_routes::extra_keys(props.headers().as_ref(), &mut keys);
        let t = m.cx.table();
        for k in keys {
            if let Err(e) =
                crate::meta::access::topic(&t, &user.name, vhost, Access::Write, exchange, k)
            {
                let reason = format!("{} {}", e.code, e.text);
                return Response::error(400, "bad_request", reason);
            }
        }
    }
    let route_headers = props.headers().clone();
    let props = if bcc {
        crate::channel::sender_routes::strip_bcc(props)
    } else {
        props
    };
    let key = b.routing_key.0;
    let msg = Arc::new(crate::message::Message {
        exchange: exchange.into(),
        routing_key: key.clone().into(),
        props: crate::codec::encode_properties(&props),
        body: payload.into(),
        persistent: *props.delivery_mode() == Some(2),
        expiration_ms,
        priority: props.priority().unwrap_or(0),
    });
    // A reply to a direct reply-to address goes to the requester's shard
    // (not a queue: `routed` stays false, as for an AMQP mandatory reply).
    if exchange.is_empty() && key.starts_with(crate::channel::reply_to::ADDRESS_PREFIX) {
        crate::channel::reply_to::forward(&m.cx.link, msg);
        return Response::json(200, &json!({ "routed": false }));
    }
    let mut dests = Vec::new();
    let mut keys = vec![key.as_str()];
    crate::channel::sender_routes::extra_keys(route_headers.as_ref(), &mut keys);
    m.cx.table().route_keys(
        vhost,
        exchange,
        &keys,
        route_headers.as_ref(),
        &msg.props,
        &mut dests,
    );
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

/// A message's basic properties as the management API shows them.
fn properties_json(props: &AMQPProperties) -> Value {
    let mut pj = Map::new();
    let mut put = |k: &str, v: Value| {
        pj.insert(k.to_string(), v);
    };
    let text = |v: &ShortString| json!(v.as_str());
    if let Some(v) = props.content_type() {
        put("content_type", text(v));
    }
    if let Some(v) = props.content_encoding() {
        put("content_encoding", text(v));
    }
    if let Some(h) = props.headers() {
        put("headers", table_to_json(h));
    }
    if let Some(v) = props.delivery_mode() {
        put("delivery_mode", json!(v));
    }
    if let Some(v) = props.priority() {
        put("priority", json!(v));
    }
    if let Some(v) = props.correlation_id() {
        put("correlation_id", text(v));
    }
    if let Some(v) = props.reply_to() {
        put("reply_to", text(v));
    }
    if let Some(v) = props.expiration() {
        put("expiration", text(v));
    }
    if let Some(v) = props.message_id() {
        put("message_id", text(v));
    }
    if let Some(v) = props.timestamp() {
        put("timestamp", json!(v));
    }
    if let Some(v) = props.kind() {
        put("type", text(v));
    }
    if let Some(v) = props.user_id() {
        put("user_id", text(v));
    }
    if let Some(v) = props.app_id() {
        put("app_id", text(v));
    }
    Value::Object(pj)
}

/// POST /api/queues/{vhost}/{name}/get: take up to `count` messages
/// (at most 10,000). `ackmode`: `ack_requeue_true` and
/// `reject_requeue_true` put them back (redelivered), `ack_requeue_false`
/// removes them, `reject_requeue_false` rejects them without requeue (so
/// they are dead-lettered when the queue has a dead-letter exchange).
pub async fn get_messages(m: &Mgmt, req: &Request, vhost: &str, name: &str) -> Response {
    let b: GetBody = match body::parse(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let after = match b.ackmode.as_str() {
        "ack_requeue_true" | "reject_requeue_true" => Some(Settle::Requeue),
        "ack_requeue_false" => None,
        "reject_requeue_false" => Some(Settle::Discard),
        other => {
            return Response::json(
                400,
                &json!({"error": "bad_request", "reason": ["unsupported_ackmode", other]}),
            )
        }
    };
    let base64_out = match b.encoding.as_str() {
        "auto" => false,
        "base64" => true,
        other => {
            return Response::json(
                400,
                &json!({"error": "bad_request", "reason": ["unsupported_encoding", other]}),
            )
        }
    };
    let count = b.count.0.min(10_000);
    let truncate = b.truncate.map(|t| t.0 as usize);
    let target = m.cx.table().queue(vhost, name).map(|q| (q.id, q.home));
    let Some((id, home)) = target else {
        return Response::not_found();
    };
    let mut out = Vec::new();
    let mut taken = Vec::new();
    for _ in 0..count {
        let get = ShardReq::Get {
            queue: id,
            no_ack: after.is_none(),
        };
        let got = match m.cx.call(home, get).await {
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
        let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
        let (payload, enc) = match String::from_utf8(payload) {
            Ok(s) if !base64_out => (s, "string"),
            Ok(s) => (b64(s.as_bytes()), "base64"),
            Err(e) => (b64(&e.into_bytes()), "base64"),
        };
        out.push(
            json!({"payload_bytes": bytes, "redelivered": got.redelivered,
            "exchange": got.msg.exchange.as_str(), "routing_key": got.msg.routing_key.as_str(),
            "message_count": got.remaining, "properties": properties_json(&props),
            "payload": payload, "payload_encoding": enc}),
        );
        taken.push(got.seq);
    }
    if let Some(how) = after {
        if !taken.is_empty() {
            let settle = ShardMsg::Settle {
                queue: id,
                seqs: taken,
                how,
            };
            m.cx.link.outbox.push(home, settle);
        }
    }
    Response::json(200, &Value::Array(out))
}

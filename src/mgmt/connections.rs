//! `/api/connections`, `/api/channels` and `/api/consumers`: live AMQP
//! sessions gathered from every shard's snapshot; a connection can be
//! closed (`DELETE`, with RabbitMQ's `X-Reason` header).

use super::api::{node_name, q, visible};
use super::gather;
use super::http::{Request, Response};
use super::listing::list;
use super::Mgmt;
use crate::bus::Request as ShardReq;
use crate::defs::users::UserDef;
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
        ("GET", ["connections"]) | ("GET", ["vhosts", _, "connections"]) => {
            let vh = (s[0] == "vhosts").then(|| s[1]);
            let snaps = gather(&m.cx).await;
            let items = snaps
                .iter()
                .flat_map(|s| s.connections.iter())
                .filter(|c| vh.is_none_or(|v| v == c.vhost))
                .filter(|c| crate::meta::access::connection(user, &c.user))
                .map(|c| conn_json(m, c))
                .collect();
            list(req, items)
        }
        ("GET", ["connections", name]) => {
            let snaps = gather(&m.cx).await;
            match snaps
                .iter()
                .flat_map(|s| s.connections.iter())
                .find(|c| c.name == *name && crate::meta::access::connection(user, &c.user))
            {
                Some(c) => Response::json(200, &conn_json(m, c)),
                None => Response::not_found(),
            }
        }
        ("DELETE", ["connections", name]) => {
            let snaps = gather(&m.cx).await;
            let Some(c) = snaps
                .iter()
                .flat_map(|s| s.connections.iter())
                .find(|c| c.name == *name && crate::meta::access::connection(user, &c.user))
            else {
                return Response::not_found();
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
        ("GET", ["channels"])
        | ("GET", ["channels", _])
        | ("GET", ["vhosts", _, "channels"])
        | ("GET", ["connections", _, "channels"]) => {
            // All channels, a vhost's, one connection's, or one by name.
            let (vh, conn, one) = match s {
                ["vhosts", v, _] => (Some(*v), None, None),
                ["connections", c, _] => (None, Some(*c), None),
                ["channels", name] => (None, None, Some(*name)),
                _ => (None, None, None),
            };
            let snaps = gather(&m.cx).await;
            let items = snaps.iter().flat_map(|s| s.channels.iter())
                .filter(|c| vh.is_none_or(|v| v == c.vhost) && conn.is_none_or(|n| n == c.connection))
                .filter(|c| crate::meta::access::connection(user, &c.user)).map(|c| {
                let prefix = format!("channel|{}|{} ({})|", c.vhost, c.connection, c.number);
                json!({"name": format!("{} ({})", c.connection, c.number), "number": c.number, "vhost": c.vhost,
                    "user": c.user, "node": node_name(), "state": "running", "consumer_count": c.consumers,
                    "messages_unacknowledged": c.unacked, "prefetch_count": c.prefetch, "global_prefetch_count": c.global_prefetch,
                    "confirm": c.confirm, "transactional": c.tx,
                    "connection_details": {"name": c.connection, "peer_host": c.peer_host, "peer_port": c.peer_port},
                    "message_stats": m.message_stats(&prefix, &[("publish", c.publish), ("deliver_get", c.deliver), ("ack", c.ack), ("confirm", c.confirmed), ("return_unroutable", c.returned)])})
            });
            let mut items: Vec<Value> = items.collect();
            if let Some(name) = one {
                return match items.into_iter().find(|c| c["name"] == name) {
                    Some(c) => Response::json(200, &c),
                    None => Response::not_found(),
                };
            }
            items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
            list(req, items)
        }
        ("GET", ["consumers"]) | ("GET", ["consumers", _]) => {
            let vh = s.get(1).copied();
            let snaps = gather(&m.cx).await;
            // Single-active-consumer queues: who is active (RabbitMQ's
            // `active` / `activity_status` `single_active` or `waiting`).
            let sac: std::collections::HashMap<u64, u64> = snaps
                .iter()
                .flat_map(|s| s.queues.iter())
                .filter_map(|q| q.single_active_consumer.as_ref().map(|(c, _)| (q.id, *c)))
                .collect();
            let activity = |c: &crate::bus::stats::ConsumerInfo| match sac.get(&c.queue_id) {
                None => (true, "up"),
                Some(active) if *active == c.id => (true, "single_active"),
                Some(_) => (false, "waiting"),
            };
            let items = snaps
                .iter()
                .flat_map(|s| s.consumers.iter())
                .filter(|c| vh.is_none_or(|v| v == c.vhost) && visible(m, user, &c.vhost))
                .map(|c| json!({"queue": {"name": c.queue, "vhost": c.vhost}, "consumer_tag": c.tag,
                    "channel_details": {"name": format!("{} ({})", c.connection, c.channel), "number": c.channel,
                        "connection_name": c.connection, "peer_host": c.peer_host, "peer_port": c.peer_port,
                        "user": c.user, "node": node_name()},
                    "ack_required": c.ack_required, "exclusive": c.exclusive, "prefetch_count": c.prefetch,
                    "active": activity(c).0, "activity_status": activity(c).1, "arguments": {}}))
                .collect();
            list(req, items)
        }
        _ => Response::not_found(),
    }
}

fn conn_json(m: &Mgmt, c: &super::stats::ConnInfo) -> Value {
    let prefix = format!("connection|{}|{}|", c.vhost, c.name);
    let tls = c.tls.as_ref();
    // RabbitMQ lists these as null on a plain connection.
    let tls_field = |f: fn(&crate::net::tls::TlsInfo) -> Option<String>| tls.and_then(f);
    json!({"ssl_protocol": tls_field(|t| Some(t.protocol.clone())),
        "ssl_cipher": tls_field(|t| Some(t.cipher.clone())),
        "peer_cert_subject": tls_field(|t| t.peer_cert_subject.clone()),
        "peer_cert_issuer": tls_field(|t| t.peer_cert_issuer.clone()),
        "name": c.name, "node": node_name(), "vhost": c.vhost, "user": c.user, "host": "127.0.0.1",
        "port": c.port, "peer_host": c.peer_host, "peer_port": c.peer_port, "channels": c.channels,
        "state": c.state, "type": "network", "protocol": "AMQP 0-9-1", "auth_mechanism": c.auth_mechanism,
        "recv_oct": c.recv_oct, "send_oct": c.send_oct, "frame_max": c.frame_max, "channel_max": c.channel_max,
        "ssl": tls.is_some(), "user_who_performed_action": c.user,
        "recv_oct_details": {"rate": m.rate(&format!("{prefix}recv_oct"))},
        "send_oct_details": {"rate": m.rate(&format!("{prefix}send_oct"))},
        "connected_at": c.connected_at, "client_properties": c.client_properties, "shard": c.shard})
}

//! The management API's router: splits and decodes the path, answers
//! `OPTIONS` and wrong methods (405) from the route table (`methods.rs`),
//! logs the user in, checks the vhost exists, runs the one authorisation
//! gate (`gate.rs`), then hands the request to its resource's file (one
//! per resource: `overview`, `connections`, `exchanges`, `queues`,
//! `bindings`, `definitions`, `health`, `limits`, `access`). Also the
//! helpers those files share. Paths, statuses and JSON field names are
//! RabbitMQ's management plugin's.

use super::http::{decode_path_segment, Request, Response};
use super::{metrics, Mgmt};
use crate::bus::{Request as ShardReq, Response as ShardResp};
use crate::defs::users::UserDef;
use crate::error::AmqpError;
use crate::meta::{MetaOp, MetaReply};
use serde_json::json;
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

/// The status of a `PUT`: 201 Created for a new object, 204 No Content
/// for one that existed (RabbitMQ 3.10's answers, recorded).
pub fn created_or_updated(existed: bool) -> u16 {
    if existed {
        204
    } else {
        201
    }
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

/// The (decoded) value of query parameter `k`, if present.
pub fn q(req: &Request, k: &str) -> Option<String> {
    req.query
        .iter()
        .find(|(a, _)| a == k)
        .map(|(_, v)| v.clone())
}

/// May `user` see objects of `vhost` in listings? (The gate's rule.)
pub fn visible(m: &Mgmt, user: &UserDef, vhost: &str) -> bool {
    crate::meta::access::vhost(&m.cx.table(), user, vhost)
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
    // RabbitMQ's Prometheus endpoints (no credentials, as its plugin).
    match s.as_slice() {
        ["metrics"] => return metrics::render(m, false).await,
        ["metrics", "per-object"] => return metrics::render(m, true).await,
        _ => {}
    }
    // The web UI's files (public, as RabbitMQ's): `/` and `/ui/...`.
    if matches!(req.method.as_str(), "GET" | "HEAD") && s.first() != Some(&"api") {
        if let Some(r) = super::ui::asset(&req.path) {
            return r;
        }
    }
    if s.first() != Some(&"api") {
        return Response::not_found();
    }
    // RabbitMQ answers OPTIONS, and a method the route does not take, from
    // its route table before it looks at credentials.
    let allowed = super::methods::allowed(&s[1..]);
    if let Some(allow) = allowed {
        if req.method == "OPTIONS" {
            return Response::text(200, "text/plain", String::new()).with_header("Allow", allow);
        }
        if !super::methods::permits(allow, &req.method) {
            return Response::text(405, "text/plain", String::new()).with_header("Allow", allow);
        }
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
            return Response::not_found();
        }
    }
    // The one authorisation gate, before any route runs.
    if let Err(r) = super::gate::authorize(&m.cx.table(), &user, meth, &s[1..]) {
        return r;
    }
    let s = &s[1..];
    match s.first().copied().unwrap_or_default() {
        "overview" | "nodes" | "whoami" => super::overview::route(m, req, &user, meth, s).await,
        "connections" | "channels" | "consumers" => {
            super::connections::route(m, req, &user, meth, s).await
        }
        "vhosts" if matches!(s, [_, _, "connections" | "channels"]) => {
            super::connections::route(m, req, &user, meth, s).await
        }
        "parameters" | "global-parameters" | "feature-flags" => {
            super::parameters::route(m, req, meth, s).await
        }
        "exchanges" => super::exchanges::route(m, req, &user, meth, s).await,
        "queues" => super::queues::route(m, req, &user, meth, s).await,
        "bindings" => super::bindings::route(m, req, &user, meth, s).await,
        "definitions" => super::definitions::route(m, req, meth, s).await,
        "health" | "healthchecks" | "aliveness-test" => super::health::route(m, req, meth, s).await,
        "policies" | "operator-policies" => super::policies::route(m, req, &user, meth, s)
            .await
            .unwrap_or_else(Response::not_found),
        _ => match super::limits::route(m, req, meth, s).await {
            Some(r) => r,
            None => match super::topic_permissions::route(m, req, meth, s).await {
                Some(r) => r,
                None => super::access::route(m, req, &user, meth, s).await,
            },
        },
    }
}

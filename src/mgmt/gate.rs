//! The HTTP API's authorisation gate: every route's requirement is decided
//! here, once, before the route runs; routes not listed need the
//! administrator tag (fail closed). Resource permissions go through
//! [`crate::meta::access`], the same gate AMQP methods use.
//!
//! Semantics and texts are RabbitMQ 3.10's, recorded from the real broker
//! (`tests/http_authz.rs`): tags `administrator` (everything, except that
//! operations on queues, exchanges, bindings and messages need resource
//! permissions as over AMQP), `monitoring`
//! (node and all connections/channels, plus what `management` may),
//! `management` and `policymaker` (objects in vhosts where the user has
//! permissions, each operation checked against the configure/write/read
//! regular expressions as over AMQP).

use super::http::Response;
use crate::defs::users::{Access, UserDef};
use crate::meta::access;
use crate::routing::RoutingTable;

/// What one route needs.
enum Need<'a> {
    /// Any user who may log in to the API.
    Login,
    Monitor,
    Admin,
    /// Access to the vhost (a permission entry in it).
    Vhost(&'a str),
    /// The `policymaker` tag and access to the vhost.
    Policymaker(&'a str),
    /// Vhost access plus permission on resources; `style` picks RabbitMQ's
    /// refusal text for the route.
    Resources(&'a str, Vec<(Access, &'static str, &'a str)>, Refusal),
}

#[derive(Clone, Copy)]
enum Refusal {
    /// 401 not_authorised "Access refused."
    Plain,
    /// 401 not_authorised with the AMQP ACCESS_REFUSED text.
    Amqp,
    /// 400 bad_request "403 ACCESS_REFUSED - ..." (publish).
    BadRequest,
}

fn need<'a>(meth: &str, s: &[&'a str]) -> Need<'a> {
    use Access::{Configure, Read, Write};
    match (meth, s) {
        ("GET", ["overview" | "whoami"]) => Need::Login,
        ("GET", ["health" | "healthchecks", ..]) => Need::Login,
        ("GET", ["nodes", ..]) => Need::Monitor,
        // Listings are filtered per object by the route (see `access`).
        (
            "GET",
            ["connections" | "channels" | "consumers" | "exchanges" | "queues" | "bindings"
            | "vhosts"],
        ) => Need::Login,
        ("GET" | "DELETE", ["connections", _]) => Need::Login,
        ("GET", ["connections", _, "channels"]) => Need::Login,
        ("GET", ["vhosts", v, "connections" | "channels"]) => Need::Vhost(v),
        ("GET", ["feature-flags"]) => Need::Login,
        // Policies: listed to anyone (filtered by vhost), set by
        // policymakers with vhost access; operator policies are set by
        // administrators only (the default below).
        ("GET", ["policies" | "operator-policies", ..]) => Need::Login,
        ("PUT" | "DELETE", ["policies", v, _]) => Need::Policymaker(v),
        ("GET", ["exchanges" | "queues" | "bindings" | "consumers", v, ..]) => Need::Vhost(v),
        ("PUT" | "DELETE", ["exchanges", v, n]) => {
            Need::Resources(v, vec![(Configure, "exchange", n)], Refusal::Plain)
        }
        ("POST", ["exchanges", v, n, "publish"]) => {
            Need::Resources(v, vec![(Write, "exchange", n)], Refusal::BadRequest)
        }
        ("PUT" | "DELETE", ["queues", v, n]) => {
            Need::Resources(v, vec![(Configure, "queue", n)], Refusal::Plain)
        }
        ("DELETE", ["queues", v, n, "contents"]) => {
            Need::Resources(v, vec![(Read, "queue", n)], Refusal::Plain)
        }
        ("POST", ["queues", v, n, "get"]) => {
            Need::Resources(v, vec![(Read, "queue", n)], Refusal::Amqp)
        }
        ("POST", ["bindings", v, "e", src, kind, dst])
        | ("DELETE", ["bindings", v, "e", src, kind, dst, _]) => {
            let dest_kind = if *kind == "q" { "queue" } else { "exchange" };
            Need::Resources(
                v,
                vec![(Write, dest_kind, dst), (Read, "exchange", src)],
                Refusal::Plain,
            )
        }
        ("GET", ["aliveness-test", v]) => Need::Resources(
            v,
            vec![
                (Configure, "queue", "aliveness-test"),
                (Write, "queue", "aliveness-test"),
                (Read, "queue", "aliveness-test"),
            ],
            Refusal::Amqp,
        ),
        // vhosts/{v} (and its permissions), users, permissions,
        // definitions, limits, and anything new: administrators only.
        _ => Need::Admin,
    }
}

fn not_authorised(reason: &str) -> Response {
    Response::error(401, "not_authorised", reason)
}

/// Decide whether `user` may run the route `meth s` (`s` without "api").
pub fn authorize(
    table: &RoutingTable,
    user: &UserDef,
    meth: &str,
    s: &[&str],
) -> Result<(), Response> {
    if user.has_tag("administrator") {
        // Administrators pass every check but resource permissions:
        // RabbitMQ performs those operations through a channel as the
        // user, so an administrator without permissions in the vhost is
        // refused like anyone (recorded from 3.10: 401 "Access refused."
        // for a queue PUT after the permissions were cleared).
        // A vhost that does not exist is the route's 404, not a refusal.
        return match need(meth, s) {
            Need::Resources(v, checks, refusal) if table.vhosts.contains(v) => {
                resources(table, user, v, checks, refusal)
            }
            _ => Ok(()),
        };
    }
    match need(meth, s) {
        Need::Login => Ok(()),
        Need::Monitor if user.has_tag("monitoring") => Ok(()),
        Need::Monitor => Err(not_authorised("Not monitor user")),
        Need::Admin => Err(not_authorised("Not administrator user")),
        Need::Vhost(v) => vhost(table, user, v),
        Need::Policymaker(v) if user.has_tag("policymaker") && access::vhost(table, user, v) => {
            Ok(())
        }
        Need::Policymaker(_) => Err(not_authorised("User not authorised to access object")),
        Need::Resources(v, checks, refusal) => {
            vhost(table, user, v)?;
            resources(table, user, v, checks, refusal)
        }
    }
}

/// Every permission `checks` asks of `user` in `v`, refused as `refusal`
/// words it.
fn resources(
    table: &RoutingTable,
    user: &UserDef,
    v: &str,
    checks: Vec<(Access, &'static str, &str)>,
    refusal: Refusal,
) -> Result<(), Response> {
    for (a, kind, name) in checks {
        if let Err(e) = access::resource(table, &user.name, v, a, kind, name) {
            return Err(match refusal {
                Refusal::Plain => not_authorised("Access refused."),
                Refusal::Amqp => not_authorised(&e.text),
                Refusal::BadRequest => {
                    Response::error(400, "bad_request", format!("{} {}", e.code, e.text))
                }
            });
        }
    }
    Ok(())
}

fn vhost(table: &RoutingTable, user: &UserDef, v: &str) -> Result<(), Response> {
    if access::vhost(table, user, v) {
        Ok(())
    } else {
        Err(not_authorised("User not authorised to access virtual host"))
    }
}

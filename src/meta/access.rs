//! The one authorisation gate for resources: every permission decision on
//! an exchange or a queue, from AMQP methods and from the HTTP API alike,
//! is made here, against the user's configure/write/read regular
//! expressions for the vhost (RabbitMQ's access-control model).
//!
//! Never on the hot path per message: `basic.publish` caches its decision
//! per channel and re-checks only when permissions change.

use crate::defs::users::{Access, UserDef};
use crate::error::{AmqpError, AmqpResult};
use crate::routing::RoutingTable;

/// May `user` use `name` (an exchange or queue, `kind`) in `vhost` for
/// `access`? The default exchange is checked as `amq.default`, as RabbitMQ
/// does. Errors: 403 ACCESS_REFUSED with RabbitMQ's text
/// `access to queue 'q' in vhost 'v' refused for user 'u'`.
pub fn resource(
    table: &RoutingTable,
    user: &str,
    vhost: &str,
    access: Access,
    kind: &str,
    name: &str,
) -> AmqpResult<()> {
    let res = if kind == "exchange" && name.is_empty() {
        "amq.default"
    } else {
        name
    };
    if table.permitted(user, vhost, access, res) {
        return Ok(());
    }
    Err(AmqpError::access_refused(format!(
        "access to {kind} '{res}' in vhost '{vhost}' refused for user '{user}'"
    )))
}

/// May `user` see and use `vhost` at all (any permission in it)?
/// Administrators may use every vhost through the HTTP API (RabbitMQ).
pub fn vhost(table: &RoutingTable, user: &UserDef, vhost: &str) -> bool {
    user.has_tag("administrator") || table.has_vhost_access(&user.name, vhost)
}

/// May `user` see (and close) a connection or channel owned by `owner`?
/// RabbitMQ: administrators and monitoring users see all; others their own.
pub fn connection(user: &UserDef, owner: &str) -> bool {
    user.has_tag("administrator") || user.has_tag("monitoring") || user.name == owner
}

/// May `user` publish (`Access::Write`) or bind (`Access::Read`) with
/// `routing_key` on `exchange` in `vhost`? Only topic exchanges carry
/// topic permissions, and a user without one for the exchange is not
/// restricted (RabbitMQ's `check_topic_access`). Errors: 403
/// ACCESS_REFUSED with RabbitMQ 3.10's text `access to topic 'k' in
/// exchange 'x' in vhost 'v' refused for user 'u'`.
pub fn topic(
    table: &RoutingTable,
    user: &str,
    vhost: &str,
    access: Access,
    exchange: &str,
    routing_key: &str,
) -> AmqpResult<()> {
    let Some(p) = table.topic_permission(user, vhost, exchange) else {
        return Ok(());
    };
    let is_topic = table
        .exchange(vhost, exchange)
        .is_some_and(|x| x.def.kind == crate::defs::ExchangeKind::Topic);
    if !is_topic || p.allows(access, routing_key) {
        return Ok(());
    }
    Err(AmqpError::access_refused(format!(
        "access to topic '{routing_key}' in exchange '{exchange}' in vhost '{vhost}' refused for user '{user}'"
    )))
}

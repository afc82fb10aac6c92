//! Enforcing connection and channel limits across shards.
//!
//! Owns: the checks at connection.open (node `max_connections`, vhost and
//! user `max-connections`) and channel.open (user `max-channels`). The
//! counts live with the connections, spread over the shards, so a check
//! asks every shard (`Request::ConnectionCounts`, `Request::UserChannels`);
//! it runs only when a limit is in force, so a broker without limits pays
//! nothing. The new connection (channel) counts itself *before* asking: two
//! racing opens on different shards see each other, so a limit is never
//! exceeded (at worst both are refused). Never on the publish path.

use super::Conn;
use super::Cx;
use crate::bus::{ConnectionCounts, Request, Response};
use crate::defs::limits;
use crate::error::{AmqpError, AmqpResult};
use crate::ids::ShardId;

async fn connection_counts(cx: &Cx, vhost: &str, user: &str) -> ConnectionCounts {
    let mut sum = ConnectionCounts::default();
    for s in 0..cx.shard_count() {
        let req = Request::ConnectionCounts {
            vhost: vhost.to_string(),
            user: user.to_string(),
        };
        if let Response::ConnectionCounts(n) = cx.call(ShardId(s), req).await {
            sum.total += n.total;
            sum.vhost += n.vhost;
            sum.user += n.user;
        }
    }
    sum
}

/// connection.open: admit `conn` (whose vhost and user are set) or refuse
/// it with 530 NOT_ALLOWED and RabbitMQ's text, checking the node limit,
/// then the vhost's, then the user's.
pub async fn admit_connection(cx: &Cx, conn: &Conn, vhost: &str, user: &str) -> AmqpResult<()> {
    let (node, per_vhost, per_user) = {
        let t = cx.table();
        (
            cx.link.config.max_connections,
            limits::in_force(t.vhost_limits.get(vhost), "max-connections"),
            limits::in_force(t.user_limits.get(user), "max-connections"),
        )
    };
    conn.admitted.set(true);
    if node.is_none() && per_vhost.is_none() && per_user.is_none() {
        return Ok(());
    }
    let n = connection_counts(cx, vhost, user).await;
    let refusal = if let Some(l) = node.filter(|l| n.total > *l) {
        Some(limits::node_connections_reached(l))
    } else if let Some(l) = per_vhost.filter(|l| n.vhost > *l) {
        Some(limits::vhost_connections_reached(vhost, user, l))
    } else {
        per_user
            .filter(|l| n.user > *l)
            .map(|l| limits::user_connections_reached(user, l))
    };
    match refusal {
        Some(text) => {
            conn.admitted.set(false);
            Err(AmqpError::not_allowed(text))
        }
        None => Ok(()),
    }
}

/// channel.open, after the channel was added to `conn`: keep it, or take
/// it out again and refuse with 530 NOT_ALLOWED (a connection error, as in
/// RabbitMQ) when the user's `max-channels` is exceeded.
pub async fn admit_channel(cx: &Cx, conn: &Conn, channel: u16) -> AmqpResult<()> {
    let user = conn.state.borrow().user.clone();
    let Some(limit) = limits::in_force(cx.table().user_limits.get(&user), "max-channels") else {
        return Ok(());
    };
    let mut open = 0;
    for s in 0..cx.shard_count() {
        let req = Request::UserChannels { user: user.clone() };
        if let Response::Count(n) = cx.call(ShardId(s), req).await {
            open += n;
        }
    }
    if open > limit {
        conn.state.borrow_mut().channels.remove(&channel);
        return Err(AmqpError::not_allowed(limits::user_channels_reached(
            &user, limit,
        )));
    }
    Ok(())
}

//! Per-vhost and per-user limits (RabbitMQ's `set_vhost_limits` /
//! `set_user_limits`): their names, validation and the refusal texts.
//!
//! Owns no state: the limits live in the routing table (replicated to every
//! shard by `MetaChange::VhostLimitsSet` / `UserLimitsSet`, durable in the
//! definitions log); counting connections and channels across shards is the
//! channel layer's job (`channel::limits`). Never blocks or allocates per
//! message: limits are looked at on connection.open, channel.open and
//! queue.declare only.

use std::collections::BTreeMap;

/// Limit name -> value. A negative value means "no limit" (RabbitMQ's -1);
/// 0 allows nothing. Absent = no limit.
pub type Limits = BTreeMap<String, i64>;

/// Vhost limits RabbitMQ 3.10 knows.
pub const VHOST_LIMITS: [&str; 2] = ["max-connections", "max-queues"];
/// User limits RabbitMQ 3.10 knows.
pub const USER_LIMITS: [&str; 2] = ["max-connections", "max-channels"];

/// The limit `name` in `limits` if one is in force (value >= 0).
pub fn in_force(limits: Option<&Limits>, name: &str) -> Option<u64> {
    limits
        .and_then(|l| l.get(name))
        .and_then(|v| u64::try_from(*v).ok())
}

/// Check a limit name against the known ones; the error is the text the
/// HTTP API answers with (400).
pub fn validate(name: &str, known: &[&str]) -> Result<(), String> {
    if known.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "Validation failed\n\nUnrecognised terms [{name}] in limits (allowed: {})",
            known.join(", ")
        ))
    }
}

/// 530 NOT_ALLOWED text when a vhost's `max-connections` is reached
/// (recorded from RabbitMQ 3.10).
pub fn vhost_connections_reached(vhost: &str, user: &str, limit: u64) -> String {
    format!("access to vhost '{vhost}' refused for user '{user}': connection limit ({limit}) is reached")
}

/// 530 NOT_ALLOWED text when a user's `max-connections` is reached
/// (recorded from RabbitMQ 3.10).
pub fn user_connections_reached(user: &str, limit: u64) -> String {
    format!("connection refused for user '{user}': user connection limit ({limit}) is reached")
}

/// 530 NOT_ALLOWED text when the node-wide `max_connections` is reached.
/// Warren's own text: Debian's RabbitMQ 3.10 accepts `connection_max = 2`
/// but still admitted a fifth connection when tried here, so there is no
/// RabbitMQ answer to mirror.
pub fn node_connections_reached(limit: u64) -> String {
    format!("connection refused: node connection limit ({limit}) is reached")
}

/// 530 NOT_ALLOWED (connection error) text when a user's `max-channels`
/// is reached (recorded from RabbitMQ 3.10).
pub fn user_channels_reached(user: &str, limit: u64) -> String {
    format!(
        "number of channels opened for user '{user}' has reached the maximum allowed user limit of ({limit})"
    )
}

/// 406 PRECONDITION_FAILED text when a vhost's `max-queues` is reached
/// (recorded from RabbitMQ 3.10).
pub fn vhost_queues_reached(queue: &str, vhost: &str, limit: u64) -> String {
    format!("cannot declare queue '{queue}': queue limit in vhost '{vhost}' ({limit}) is reached")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_values_mean_no_limit_and_zero_allows_nothing() {
        let mut l = Limits::new();
        l.insert("max-connections".into(), -1);
        l.insert("max-queues".into(), 0);
        assert_eq!(in_force(Some(&l), "max-connections"), None);
        assert_eq!(in_force(Some(&l), "max-queues"), Some(0));
        assert_eq!(in_force(None, "max-queues"), None);
    }

    #[test]
    fn unknown_limit_names_are_refused() {
        assert!(validate("max-queues", &VHOST_LIMITS).is_ok());
        assert!(validate("max-channels", &VHOST_LIMITS).is_err());
        assert!(validate("max-channels", &USER_LIMITS).is_ok());
    }
}

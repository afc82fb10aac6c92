//! Definitions: the vocabulary of entities (exchanges, queues, bindings,
//! users, permissions, limits) and of the changes the metadata authority
//! broadcasts to every shard's routing table.
//!
//! Leaf vocabulary: data, validation and pure functions only. Must never
//! do I/O or name anything above `ids` (routing, the store, queues, the
//! authority and the management API all build on it).

pub mod limits;
pub mod users;

use crate::ids::{ConnId, QueueId, ShardId};
use amq_protocol::types::FieldTable;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExchangeDef {
    pub vhost: String,
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub args: FieldTable,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueDef {
    pub id: QueueId,
    pub vhost: String,
    pub name: String,
    pub home: ShardId,
    pub durable: bool,
    pub exclusive_owner: Option<ConnId>,
    pub auto_delete: bool,
    pub args: FieldTable,
}

/// Where a binding leads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dest {
    Queue(QueueId, ShardId),
    Exchange(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BindingDef {
    pub vhost: String,
    pub source: String,
    pub dest: Dest,
    /// Destination name (queue or exchange), for listings and errors.
    pub dest_name: String,
    pub key: String,
    pub args: FieldTable,
}

/// One change to the routing table, applied identically on every shard.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MetaChange {
    ExchangeDeclared(ExchangeDef),
    ExchangeDeleted {
        vhost: String,
        name: String,
    },
    QueueDeclared(QueueDef),
    QueueDeleted {
        vhost: String,
        name: String,
        id: QueueId,
    },
    Bound(BindingDef),
    Unbound(BindingDef),
    VhostAdded {
        name: String,
    },
    VhostDeleted {
        name: String,
    },
    UserPut(users::UserDef),
    UserDeleted {
        name: String,
    },
    PermissionSet(users::PermissionDef),
    PermissionCleared {
        user: String,
        vhost: String,
    },
    /// A vhost's limits, all of them (empty = none).
    VhostLimitsSet {
        vhost: String,
        limits: limits::Limits,
    },
    /// A user's limits, all of them (empty = none).
    UserLimitsSet {
        user: String,
        limits: limits::Limits,
    },
}

/// The shard a queue lives on: the vhost-and-name hash modulo the shard
/// count ([`crate::ids::name_hash`], stable across runs and builds), so a
/// durable queue finds its messages again after a restart with the same
/// number of shards.
pub fn queue_home(vhost: &str, name: &str, shards: usize) -> ShardId {
    ShardId((crate::ids::name_hash(vhost, name) % shards as u64) as usize)
}

/// The exchanges every vhost starts with.
pub fn predeclared(vhost: &str) -> Vec<MetaChange> {
    [
        ("amq.direct", ExchangeKind::Direct),
        ("amq.fanout", ExchangeKind::Fanout),
        ("amq.topic", ExchangeKind::Topic),
        ("amq.headers", ExchangeKind::Headers),
        ("amq.match", ExchangeKind::Headers),
    ]
    .into_iter()
    .map(|(name, kind)| {
        MetaChange::ExchangeDeclared(ExchangeDef {
            vhost: vhost.to_string(),
            name: name.to_string(),
            kind,
            durable: true,
            auto_delete: false,
            internal: false,
            args: FieldTable::default(),
        })
    })
    .collect()
}

/// An integer queue argument's value (RabbitMQ accepts every AMQP integer
/// type for its integer arguments); None for any other type.
pub fn arg_integer(v: &amq_protocol::types::AMQPValue) -> Option<i64> {
    use amq_protocol::types::AMQPValue;
    Some(match v {
        AMQPValue::ShortShortInt(n) => i64::from(*n),
        AMQPValue::ShortShortUInt(n) => i64::from(*n),
        AMQPValue::ShortInt(n) => i64::from(*n),
        AMQPValue::ShortUInt(n) => i64::from(*n),
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        AMQPValue::LongLongInt(n) => *n,
        _ => return None,
    })
}

/// A string queue argument's value (long or short string); None for any
/// other type.
pub fn arg_text(v: &amq_protocol::types::AMQPValue) -> Option<String> {
    use amq_protocol::types::AMQPValue;
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// A queue's `x-expires` in ms (validated at declare); None when absent.
pub fn queue_expires(args: &FieldTable) -> Option<u64> {
    let v = arg_integer(args.inner().get("x-expires")?)?;
    u64::try_from(v).ok()
}

/// A queue's `x-message-ttl` in ms (validated at declare:
/// `meta::queue_args`); None when absent.
pub fn message_ttl(args: &FieldTable) -> Option<u64> {
    let v = arg_integer(args.inner().get("x-message-ttl")?)?;
    u64::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_home_is_the_pinned_name_hash_modulo_the_shard_count() {
        assert_eq!(queue_home("/", "orders", 2), ShardId(1));
        assert_eq!(queue_home("/", "orders", 1), ShardId(0));
    }
}

//! Definitions: the vocabulary of entities (exchanges, queues, bindings,
//! users, permissions, limits) and of the changes the metadata authority
//! broadcasts to every shard's routing table.
//!
//! Leaf vocabulary: data, validation and pure functions only. Must never
//! do I/O or name anything above `ids` (routing, the store, queues, the
//! authority and the management API all build on it).

pub mod delayed;
pub mod limits;
pub mod policy;
pub mod users;

use crate::ids::{ConnId, QueueId, ShardId};
use amq_protocol::types::FieldTable;
use serde::{Deserialize, Serialize};

/// An exchange type: the four AMQP 0-9-1 defines (spec §3.1.3), named as
/// in exchange.declare's `type` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExchangeKind {
    /// Routes to the bindings whose key equals the routing key.
    Direct,
    /// Routes to every binding; the routing key is ignored.
    Fanout,
    /// Matches the routing key against dot-separated binding patterns with
    /// `*` (one word) and `#` (zero or more words).
    Topic,
    /// Matches the message's headers against the binding arguments
    /// (`x-match`); the routing key is ignored.
    Headers,
    /// `x-consistent-hash` (RabbitMQ's plugin): one destination per
    /// message, by a hash of its routing key; binding keys are weights.
    ConsistentHash,
    /// `x-delayed-message` (RabbitMQ's community plugin): a message with an
    /// `x-delay` header waits that many ms in the exchange's
    /// [`DelayStore`], then is routed as the `x-delayed-type` argument's
    /// type routes (see [`delayed`]).
    DelayedMessage,
}

impl ExchangeKind {
    /// Parse exchange.declare's `type`; None for an unknown type (the
    /// authority answers 503 COMMAND_INVALID, as RabbitMQ does).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            "x-consistent-hash" => ExchangeKind::ConsistentHash,
            "x-delayed-message" => ExchangeKind::DelayedMessage,
            _ => return None,
        })
    }
    /// The type's name as clients and the HTTP API spell it (`"topic"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
            ExchangeKind::ConsistentHash => "x-consistent-hash",
            ExchangeKind::DelayedMessage => "x-delayed-message",
        }
    }
}

/// An exchange as declared (exchange.declare, a definitions import, or
/// the `amq.*` exchanges every vhost starts with).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExchangeDef {
    /// Virtual host it belongs to.
    pub vhost: String,
    /// Unique within the vhost. Never `""` (the default exchange is
    /// implicit); `amq.*` is reserved for the predeclared ones (403).
    pub name: String,
    /// Its type (routing algorithm).
    pub kind: ExchangeKind,
    /// Recorded in the definitions log, so it survives a restart.
    pub durable: bool,
    /// Deleted once its last binding as a source goes (RabbitMQ).
    pub auto_delete: bool,
    /// Clients cannot basic.publish to it (403 ACCESS_REFUSED); it is
    /// reached through exchange-to-exchange bindings or dead-lettering.
    pub internal: bool,
    /// exchange.declare arguments, kept as given; only `alternate-exchange`
    /// takes part in redeclare equivalence (406 if it differs).
    pub args: FieldTable,
    /// Where an `x-delayed-message` exchange keeps its delayed messages
    /// (assigned by the authority at declare); None for every other type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_store: Option<DelayStore>,
}

impl ExchangeDef {
    /// The type whose rules route its messages: the `x-delayed-type` of a
    /// delayed-message exchange (validated at declare), else its own.
    pub fn routing_kind(&self) -> ExchangeKind {
        match self.kind {
            ExchangeKind::DelayedMessage => {
                delayed::delayed_type(&self.args).unwrap_or(ExchangeKind::Direct)
            }
            k => k,
        }
    }
}

/// The queue-like store of one `x-delayed-message` exchange: its messages
/// wait there, ordered by release time, journalled under `id` in the
/// store of shard `home` when persistent and the exchange is durable. It
/// is not a queue of the vhost: no name, no consumers, not listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelayStore {
    /// Allocated from the queue ids (never reused; keys its journal).
    pub id: QueueId,
    /// The shard that holds the delayed messages and releases them.
    pub home: ShardId,
}

/// A queue as declared; the same on every shard's table, while only its
/// home shard holds the queue itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueDef {
    /// Assigned by the authority, never reused; the store's journal keys
    /// a queue's messages by it, never by name.
    pub id: QueueId,
    /// Virtual host it belongs to.
    pub vhost: String,
    /// Unique within the vhost; `amq.gen-*` when server-named, otherwise
    /// `amq.*` is refused (403).
    pub name: String,
    /// The shard that holds its messages and consumers: [`queue_home`] for
    /// a shared queue, the declaring connection's shard for an exclusive or
    /// `client-local` one (`meta::queue_args::client_local`). Stored with
    /// the definition, so a restart finds it whichever way it was chosen.
    pub home: ShardId,
    /// The definition survives a restart (definitions log) and persistent
    /// messages go to the store; never so for an exclusive queue.
    pub durable: bool,
    /// The connection that declared it exclusive: only it may use it
    /// (others get 405 RESOURCE_LOCKED), and it goes when that connection
    /// closes. None for a shared queue.
    pub exclusive_owner: Option<ConnId>,
    /// Deleted once it has had a consumer and the last one is cancelled
    /// (RabbitMQ: a queue never consumed from stays).
    pub auto_delete: bool,
    /// queue.declare arguments (`x-message-ttl`, `x-max-length`, ...),
    /// validated by `meta::queue_args`; the ones RabbitMQ gives a meaning
    /// must match on a redeclare (406 PRECONDITION_FAILED).
    pub args: FieldTable,
}

/// Where a binding leads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dest {
    /// A queue, by id and home shard (where routed messages are sent).
    Queue(QueueId, ShardId),
    /// Another exchange of the same vhost, by name (exchange.bind, the
    /// RabbitMQ extension); routing continues from it.
    Exchange(String),
}

/// A binding (queue.bind or exchange.bind). Its identity is (source,
/// destination, key, arguments): binding the same four twice is a no-op.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BindingDef {
    /// Virtual host of both ends.
    pub vhost: String,
    /// The source exchange's name (never `""`: the default exchange's
    /// bindings are implicit and binding to it is refused with 403).
    pub source: String,
    /// Where matching messages go.
    pub dest: Dest,
    /// Destination name (queue or exchange), for listings and errors.
    pub dest_name: String,
    /// Binding key: compared with the routing key by direct exchanges, a
    /// `*`/`#` pattern for topic ones, ignored by fanout and headers.
    pub key: String,
    /// Binding arguments: for a headers exchange the headers to match and
    /// `x-match`; otherwise kept only as part of the binding's identity.
    pub args: FieldTable,
}

/// One change to the routing table, applied identically on every shard.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MetaChange {
    /// An exchange was declared (a shard that has it already keeps it).
    ExchangeDeclared(ExchangeDef),
    /// An exchange was deleted, with its bindings as source and as
    /// destination.
    ExchangeDeleted {
        /// Its vhost.
        vhost: String,
        /// Its name.
        name: String,
    },
    /// A queue was declared: every shard adds it to its table, its home
    /// creates it (recovering its stored messages if durable).
    QueueDeclared(QueueDef),
    /// A queue was deleted with its bindings; its home drops its messages
    /// and answers how many it held.
    QueueDeleted {
        /// Its vhost.
        vhost: String,
        /// Its name.
        name: String,
        /// Its id (the home removes the queue and its journal entries by it).
        id: QueueId,
    },
    /// A binding was added.
    Bound(BindingDef),
    /// A binding was removed.
    Unbound(BindingDef),
    /// A vhost was created, with its `amq.*` exchanges ([`predeclared`]).
    VhostAdded {
        /// The vhost's name.
        name: String,
    },
    /// A vhost's description and tags (RabbitMQ's vhost metadata) were
    /// set, replacing any.
    VhostMetadataSet {
        /// The vhost's name.
        name: String,
        /// What it is for (free text).
        description: String,
        /// Its tags.
        tags: Vec<String>,
    },
    /// A vhost was deleted with its exchanges, queues (and their
    /// messages), permissions and limits.
    VhostDeleted {
        /// The vhost's name.
        name: String,
    },
    /// A user was created or replaced (password hash and tags).
    UserPut(users::UserDef),
    /// A user was deleted with its permissions and limits.
    UserDeleted {
        /// The user's name.
        name: String,
    },
    /// A user's permissions on a vhost were set (replacing any).
    PermissionSet(users::PermissionDef),
    /// A user's permissions on a vhost were removed: no access to it.
    PermissionCleared {
        /// The user's name.
        user: String,
        /// The vhost.
        vhost: String,
    },
    /// A vhost's limits, all of them (empty = none).
    VhostLimitsSet {
        /// The vhost (a non-empty set for one the table lacks is ignored).
        vhost: String,
        /// Every limit in force for it.
        limits: limits::Limits,
    },
    /// A policy or operator policy was set (replacing one of that name).
    PolicySet(policy::PolicyDef),
    /// A policy or operator policy was removed.
    PolicyCleared {
        /// Its vhost.
        vhost: String,
        /// Its name.
        name: String,
        /// An operator policy.
        operator: bool,
    },
    /// A user's topic permissions on one exchange were set (replacing
    /// any for that exchange).
    TopicPermissionSet(users::TopicPermissionDef),
    /// A user's topic permissions on a vhost were removed: on one exchange
    /// (`Some`) or on all of them (`None`).
    TopicPermissionCleared {
        /// The user's name.
        user: String,
        /// The vhost.
        vhost: String,
        /// The exchange, or every exchange.
        exchange: Option<String>,
    },
    /// A user's limits, all of them (empty = none).
    UserLimitsSet {
        /// The user (a non-empty set for one the table lacks is ignored).
        user: String,
        /// Every limit in force for it.
        limits: limits::Limits,
    },
}

/// The shard a shared queue lives on unless it asks to be client-local:
/// the vhost-and-name hash modulo the shard count
/// ([`crate::ids::name_hash`], stable across runs and builds). The home
/// chosen is stored with the queue ([`QueueDef::home`]); this is also
/// where a queue whose shard no longer exists is moved (`meta::persist::rehome`).
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
            delay_store: None,
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

/// A queue's `x-max-priority` (validated at declare to 0-255:
/// `meta::queue_args`); None when absent (a plain FIFO queue).
pub fn max_priority(args: &FieldTable) -> Option<u8> {
    let v = arg_integer(args.inner().get("x-max-priority")?)?;
    u8::try_from(v).ok()
}

/// A field table of `pairs`, for unit tests.
#[cfg(test)]
pub fn field_table(pairs: &[(&str, amq_protocol::types::AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
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

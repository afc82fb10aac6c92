//! Definitions of entities (exchanges, queues, bindings) and the changes the
//! metadata authority broadcasts to every shard's routing table.

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
    UserPut(super::users::UserDef),
    UserDeleted {
        name: String,
    },
    PermissionSet(super::users::PermissionDef),
    PermissionCleared {
        user: String,
        vhost: String,
    },
    /// A vhost's limits, all of them (empty = none).
    VhostLimitsSet {
        vhost: String,
        limits: super::limits::Limits,
    },
    /// A user's limits, all of them (empty = none).
    UserLimitsSet {
        user: String,
        limits: super::limits::Limits,
    },
}

//! Metadata: declarations and the authority that serialises them.
//!
//! Owns: the rules for declare/delete/bind/unbind (equivalence checks,
//! reserved names, exclusivity) and their broadcast. Shard 0 is the
//! authority: it executes one [`MetaOp`] at a time, applies the resulting
//! [`defs::MetaChange`]s on every shard, and only then replies, so a
//! `*-ok` means every shard routes by the new table. Never on the publish
//! path.

pub mod authority;
pub mod defs;
pub mod persist;
pub mod users;

use crate::ids::ConnId;
use amq_protocol::types::FieldTable;

#[derive(Debug, Clone)]
pub enum MetaOp {
    ExchangeDeclare {
        vhost: String,
        name: String,
        kind: String,
        passive: bool,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        args: FieldTable,
    },
    ExchangeDelete {
        vhost: String,
        name: String,
        if_unused: bool,
    },
    QueueDeclare {
        vhost: String,
        name: String,
        passive: bool,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        args: FieldTable,
        owner: ConnId,
    },
    QueueDelete {
        vhost: String,
        name: String,
        if_unused: bool,
        if_empty: bool,
        /// None when the broker itself deletes (auto-delete).
        owner: Option<ConnId>,
    },
    Bind {
        vhost: String,
        source: String,
        dest: String,
        dest_is_queue: bool,
        key: String,
        args: FieldTable,
        owner: ConnId,
        unbind: bool,
    },
    ConnectionClosed {
        owner: ConnId,
    },
    VhostAdd {
        name: String,
    },
    VhostDelete {
        name: String,
    },
    /// Create or update a user; `password` is hashed, `password_hash` is
    /// taken as is (definitions import); neither keeps the current one.
    UserPut {
        name: String,
        password: Option<String>,
        password_hash: Option<String>,
        tags: Vec<String>,
    },
    UserDelete {
        name: String,
    },
    PermissionSet(users::PermissionDef),
    PermissionClear {
        user: String,
        vhost: String,
    },
}

#[derive(Debug, Clone)]
pub enum MetaReply {
    Ok,
    QueueDeclared {
        name: String,
        messages: u32,
        consumers: u32,
    },
    Deleted {
        messages: u32,
    },
}

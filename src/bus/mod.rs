//! The bus: what shards say to each other, and this shard's end of it.
//!
//! Owns: the message vocabulary carried by the mailboxes ([`ShardMsg`],
//! [`Request`], [`Response`]; data only), the statistics records shards
//! hand the management API ([`stats`]), and [`Link`]: this shard's id,
//! its copy of the routing table, its outbox and its request slots, the
//! narrow context that the channel, metadata and management layers use
//! instead of the whole shard. Must never: await in a send (sends append
//! to the outbox; see the deadlock argument in `mailbox`), or lock.

pub mod link;
pub mod stats;

pub use link::Link;

use crate::defs::MetaChange;
use crate::error::AmqpError;
use crate::ids::{ConnId, ConsumerId, QueueId, ShardId};
use crate::message::MsgRef;
use crate::meta::{MetaOp, MetaReply};
use crate::queue::{ConsumerSpec, Got, Settle};

/// Who gets a publisher confirm once a queue has taken the message.
#[derive(Clone, Copy, Debug)]
pub struct ConfirmRef {
    pub conn: ConnId,
    pub channel: u16,
    pub seq: u64,
}

#[derive(Debug)]
pub enum Request {
    Meta(MetaOp),
    Apply(MetaChange),
    QueueStats(QueueId),
    Consume(QueueId, ConsumerSpec),
    Cancel(QueueId, ConsumerId),
    Get {
        queue: QueueId,
        no_ack: bool,
    },
    Purge(QueueId),
    /// Management: this shard's statistics.
    Snapshot,
    /// Management: close a connection by name with 320 CONNECTION_FORCED.
    CloseConnection(String, String),
    /// Connection limits: this shard's admitted connections, in all, in
    /// `vhost`, and of `user`.
    ConnectionCounts {
        vhost: String,
        user: String,
    },
    /// Channel limit: channels open on this shard by `user`'s connections.
    UserChannels {
        user: String,
    },
}

/// One shard's share of the connection counts (`Request::ConnectionCounts`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionCounts {
    pub total: u64,
    pub vhost: u64,
    pub user: u64,
}

#[derive(Debug)]
pub enum Response {
    Meta(Result<MetaReply, AmqpError>),
    Applied(u32),
    Stats {
        messages: u32,
        consumers: u32,
    },
    Consumed(Result<(), AmqpError>),
    Cancelled,
    Got(Option<Got>),
    Purged(u32),
    Snapshot(Box<stats::ShardSnapshot>),
    ConnectionCounts(ConnectionCounts),
    Count(u64),
    Done,
    /// The target no longer exists (queue deleted meanwhile).
    Gone,
}

/// Queues on one shard a message goes to; inline up to two (no allocation
/// for the common cases).
pub type QueueList = smallvec::SmallVec<[QueueId; 2]>;

#[derive(Debug)]
pub enum ShardMsg {
    Request {
        id: u64,
        from: ShardId,
        req: Request,
    },
    Response {
        id: u64,
        resp: Response,
    },
    Publish {
        queues: QueueList,
        msg: MsgRef,
        confirm: Option<ConfirmRef>,
    },
    Confirmed(ConfirmRef),
    /// The home shard could not store the message (disk full).
    Nacked(ConfirmRef),
    Deliver {
        consumer: ConsumerId,
        queue: QueueId,
        seq: u64,
        redelivered: bool,
        msg: MsgRef,
    },
    Settle {
        queue: QueueId,
        seqs: Vec<u64>,
        how: Settle,
    },
    Credit {
        queue: QueueId,
        consumer: ConsumerId,
        n: u32,
    },
    /// The consumer's channel is at its channel-wide prefetch: the delivery
    /// goes back to the queue undelivered and the queue pauses the consumer
    /// (see `channel::Handoff::OverLimit`).
    Returned {
        queue: QueueId,
        consumer: ConsumerId,
        seq: u64,
    },
    /// The channel is under its channel-wide prefetch again: the queue may
    /// dispatch to the consumer.
    Resume {
        queue: QueueId,
        consumer: ConsumerId,
    },
    /// Server-sent basic.cancel: the consumer's queue went away.
    ConsumerCancelled {
        consumer: ConsumerId,
    },
}

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
    /// The publishing connection (its shard is encoded in the id).
    pub conn: ConnId,
    /// The publishing channel number.
    pub channel: u16,
    /// Publish sequence number on that channel, from 1: the delivery tag of the
    /// basic.ack / basic.nack (or, on a tx channel, what tx.commit-ok waits for).
    pub seq: u64,
}

impl ConfirmRef {
    /// A confirm owed to the queue home on `shard` for its dead letter
    /// `id` (held until its targets have it), not to a publisher. Channel
    /// 0 never publishes (content travels on channels from 1, AMQP 0-9-1
    /// §4.2.3), so it marks this kind.
    pub fn dead_letter(shard: ShardId, id: u64) -> Self {
        ConfirmRef {
            conn: ConnId::new(shard, 0),
            channel: 0,
            seq: id,
        }
    }

    /// A dead letter's confirm ([`ConfirmRef::dead_letter`]).
    pub fn is_dead_letter(&self) -> bool {
        self.channel == 0
    }
}

/// A question one shard asks another ([`ShardMsg::Request`]); each is answered
/// by exactly one [`Response`], named below.
#[derive(Debug)]
pub enum Request {
    /// A metadata operation (declare, delete, bind, users...), sent to the
    /// authority (shard 0), which runs them one at a time. Answer: `Meta`.
    Meta(MetaOp),
    /// A metadata change decided by the authority (logged first if durable), to
    /// apply to this shard's routing table and queue home; sent to every shard.
    /// Answer: `Applied`.
    Apply(MetaChange),
    /// A queue's counts (queue.declare-ok, passive declare), at its home shard; due
    /// expiries run first and the queue counts as used (x-expires). Also sent with
    /// a queue id that exists nowhere as a FIFO barrier. Answer: `Stats` or `Gone`.
    QueueStats(QueueId),
    /// Whether a queue is still unused for its whole `x-expires` period
    /// (not counting as a use). Answer: `Idle` or `Gone`.
    QueueIdle(QueueId),
    /// Register a consumer at the queue's home shard (basic.consume). Answer:
    /// `Consumed` or `Gone`.
    Consume(QueueId, ConsumerSpec),
    /// Remove a consumer (basic.cancel, channel close); may auto-delete the queue.
    /// Answer: `Cancelled`, whether or not the queue still exists.
    Cancel(QueueId, ConsumerId),
    /// basic.get at the queue's home shard. Answer: `Got` or `Gone`.
    Get {
        /// The queue to take one ready message from.
        queue: QueueId,
        /// Settle on delivery (no unacked entry kept).
        no_ack: bool,
    },
    /// queue.purge: drop the queue's ready messages. Answer: `Purged` or `Gone`.
    Purge(QueueId),
    /// Management: this shard's statistics (due expiries run first). Answer:
    /// `Snapshot`.
    Snapshot,
    /// Management: close a connection by name with 320 CONNECTION_FORCED. The
    /// strings are the name ([`stats::conn_name`]) and the reason, the reply
    /// text after `"CONNECTION_FORCED - "`; sent to the shard that owns the
    /// connection. Answer: `Done`.
    CloseConnection(String, String),
    /// Connection limits: this shard's admitted connections, in all, in
    /// `vhost`, and of `user`; asked of every shard at connection.open when a
    /// connection limit is in force.
    /// Answer: `ConnectionCounts`.
    ConnectionCounts {
        /// The vhost being opened.
        vhost: String,
        /// The user opening it.
        user: String,
    },
    /// Channel limit: channels open on this shard by `user`'s connections;
    /// asked of every shard at channel.open when `max-channels` is in force.
    /// Answer: `Count`.
    UserChannels {
        /// The user whose channels are counted.
        user: String,
    },
}

/// One shard's share of the connection counts (`Request::ConnectionCounts`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionCounts {
    /// Connections admitted and not closed on this shard.
    pub total: u64,
    /// Of those, the ones on the vhost asked about.
    pub vhost: u64,
    /// Of those (all vhosts), the ones of the user asked about.
    pub user: u64,
}

/// The answer to a [`Request`], sent back to the shard that asked.
#[derive(Debug)]
pub enum Response {
    /// Result of a `Meta` request: the reply for the *-ok, or the AMQP error.
    Meta(Result<MetaReply, AmqpError>),
    /// `Apply` done; the number of messages a deleted queue held on this shard (0
    /// for every other change).
    Applied(u32),
    /// Answer to `QueueStats`.
    Stats {
        /// Ready messages (unacked ones not counted, as in queue.declare-ok).
        messages: u32,
        /// Consumers on the queue.
        consumers: u32,
    },
    /// Answer to `QueueIdle`.
    Idle(bool),
    /// Answer to `Consume`: Ok, or 403 ACCESS_REFUSED when an exclusive consumer is
    /// involved (RabbitMQ's "in exclusive use").
    Consumed(Result<(), AmqpError>),
    /// Answer to `Cancel`.
    Cancelled,
    /// Answer to `Get`: the message, or None when the queue has no ready message
    /// (basic.get-empty).
    Got(Option<Got>),
    /// Answer to `Purge`: the number of ready messages removed.
    Purged(u32),
    /// Answer to `Snapshot`: this shard's statistics.
    Snapshot(Box<stats::ShardSnapshot>),
    /// Answer to `ConnectionCounts`.
    ConnectionCounts(ConnectionCounts),
    /// Answer to `UserChannels`: the number of channels.
    Count(u64),
    /// Answer to `CloseConnection` (sent whether or not the name was found here).
    Done,
    /// The target no longer exists (queue deleted meanwhile).
    Gone,
}

/// Queues on one shard a message goes to; inline up to two (no allocation
/// for the common cases).
pub type QueueList = smallvec::SmallVec<[QueueId; 2]>;

/// Everything that travels between shards through the mailboxes, and from a
/// shard to itself through its local outbox (same FIFO order).
#[derive(Debug)]
pub enum ShardMsg {
    /// A request for the receiving shard.
    Request {
        /// Request id, numbered by the sending shard ([`crate::mailbox::Rpc`]).
        id: u64,
        /// The shard that asked, where the `Response` goes.
        from: ShardId,
        /// What is asked.
        req: Request,
    },
    /// The answer to a request this shard sent.
    Response {
        /// The id the request was sent with.
        id: u64,
        /// The answer.
        resp: Response,
    },
    /// A message routed to queues whose home is the receiving shard (one per shard
    /// per publish, whatever the number of queues there).
    Publish {
        /// The destination queues on the receiving shard.
        queues: QueueList,
        /// The message, shared with every other destination.
        msg: MsgRef,
        /// Who to confirm to once every queue here has taken it; None without publisher
        /// confirms or a transaction.
        confirm: Option<ConfirmRef>,
    },
    /// Every queue on the home shard took the message (and, if persistent in a
    /// durable queue, it is on disk): one confirm towards the publisher's
    /// channel, sent to the publisher's shard (its own shard calls
    /// `ConnTable::confirm` directly).
    Confirmed(ConfirmRef),
    /// The home shard did not take the message: the store could not write it
    /// (disk full), or a queue at a `reject-publish` length limit refused it.
    /// The publisher gets basic.nack.
    Nacked(ConfirmRef),
    /// A message from a queue on the sending shard for a consumer on the receiving
    /// shard.
    Deliver {
        /// The consumer it is for.
        consumer: ConsumerId,
        /// The queue it comes from.
        queue: QueueId,
        /// The message's sequence number in its queue (what `Settle` and `Returned`
        /// name; not the delivery tag, which the consumer's channel assigns).
        seq: u64,
        /// The message may have been delivered before (requeued, or delivered
        /// before a restart): basic.deliver's `redelivered`.
        redelivered: bool,
        /// The message.
        msg: MsgRef,
    },
    /// Acks, rejects, nacks or requeues of deliveries of one queue, grouped per
    /// queue (one per queue per settlement).
    Settle {
        /// The queue the deliveries came from.
        queue: QueueId,
        /// Queue sequence numbers of the deliveries (from `Deliver`).
        seqs: Vec<u64>,
        /// Ack, requeue, or discard (dead-lettered if the queue has a dead-letter
        /// exchange).
        how: Settle,
    },
    /// Send-window credit back to a queue: `n` deliveries to the consumer were
    /// written to its socket (or will never be), so the queue may send that many
    /// more.
    Credit {
        /// The queue that sent the deliveries.
        queue: QueueId,
        /// The consumer they were for.
        consumer: ConsumerId,
        /// Deliveries written, in messages.
        n: u32,
        /// Their body bytes.
        bytes: u64,
    },
    /// The consumer's channel is at its channel-wide prefetch: the delivery
    /// goes back to the queue undelivered and the queue pauses the consumer
    /// (see `channel::Handoff::OverLimit`).
    Returned {
        /// The queue that sent the delivery.
        queue: QueueId,
        /// The consumer it was for.
        consumer: ConsumerId,
        /// The message's sequence number in its queue.
        seq: u64,
    },
    /// The channel is under its channel-wide prefetch again: the queue may
    /// dispatch to the consumer.
    Resume {
        /// The paused queue.
        queue: QueueId,
        /// The consumer to resume.
        consumer: ConsumerId,
    },
    /// A direct reply (RabbitMQ's `amq.rabbitmq.reply-to`) for a requester
    /// on the receiving shard; its channel checks the address's nonce.
    DirectReply {
        /// The decoded reply address (the routing key it was published with).
        to: crate::ids::ReplyAddress,
        /// The reply.
        msg: MsgRef,
    },
    /// A queue on the sending shard entered (`on`) or left flow control
    /// (`queue::pressure`): the receiving shard pauses or resumes reading
    /// connections that publish to it.
    QueueFlow {
        /// The queue.
        queue: QueueId,
        /// In flow now.
        on: bool,
    },
    /// The sending shard just took disk space (a new segment file):
    /// measure free space now against `disk_free_limit` rather than at the
    /// next periodic check, so every shard's publishers are paused before
    /// the disk fills.
    CheckDisk,
    /// A connection shard 0 accepted on the Unix socket, for the receiving
    /// shard to serve (shard 0 deals them out round-robin, as the kernel's
    /// SO_REUSEPORT spreads TCP connections).
    AdoptUnix(UnixConnection),
    /// Server-sent basic.cancel: the consumer's queue went away.
    ConsumerCancelled {
        /// The consumer cancelled; its connection sends basic.cancel to the client.
        consumer: ConsumerId,
    },
}

/// An accepted Unix socket connection on its way to the shard that will
/// serve it (glommio's executor-independent handle; it is bound to the
/// receiving shard's executor there).
pub struct UnixConnection(pub glommio::net::AcceptedUnixStream);

impl std::fmt::Debug for UnixConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnixConnection")
    }
}

/// Delivery credit, flow changes and settlements that remove messages
/// (`Credit`; `QueueFlow`; `Settle` with `Ack` or `Discard`) take the
/// urgent lane: they only let a
/// queue deliver again, and none can depend on a message sent before it in
/// the data lane (credit is for deliveries already written, an ack for
/// deliveries already received, after their `basic.consume` or
/// `basic.get` was answered; a delivery that credit lets through to a
/// consumer whose cancel is still on its way comes back as
/// `Handoff::Gone`). A requeue stays in the data lane: a closing channel
/// sends its consumers' cancels first, and the requeue must not overtake
/// them (the queue would redeliver to a consumer that is going away).
impl crate::mailbox::Lane for ShardMsg {
    fn urgent(&self) -> bool {
        match self {
            ShardMsg::Credit { .. }
            | ShardMsg::QueueFlow { .. }
            | ShardMsg::CheckDisk
            | ShardMsg::AdoptUnix(_) => true,
            ShardMsg::Settle { how, .. } => !matches!(how, Settle::Requeue),
            _ => false,
        }
    }
}

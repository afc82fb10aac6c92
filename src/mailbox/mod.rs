//! Mailboxes: the only way shards talk to each other.
//!
//! Between every ordered pair of shards (i -> j) there is one bounded SPSC
//! glommio `shared_channel` carrying *batches* (`Vec<ShardMsg>`), so one
//! cross-core wake-up moves many messages. A shard's traffic to itself takes
//! the same path minus the channel: the local outbox is drained by the same
//! handler, which keeps one FIFO order per (source, destination) pair for
//! publishes, acks, requests and deliveries alike.
//!
//! # Why this cannot deadlock
//!
//! * Each shard runs one *drain* task per inbound mailbox. A drain task only
//!   awaits `recv()` on its own mailbox; handling a message is synchronous
//!   and never awaits a send. Anything it must send elsewhere (deliveries,
//!   confirms, responses) is appended to the shard's local, unbounded
//!   [`Outbox`].
//! * A separate *flusher* task per destination moves outbox batches into the
//!   bounded mailbox and is the only code that awaits a full mailbox. A full
//!   mailbox hands the batch back to it (`Result<(), T>`): that is
//!   backpressure, not an error.
//! * Since every receiver is always being drained, every full mailbox
//!   eventually has room, so every flusher makes progress: no cycle of
//!   waiting tasks can form.
//! * The outbox stays bounded because the producers of *new* work, socket
//!   readers, stop reading while any outbox is above its high-water mark;
//!   work derived from messages (deliveries) is bounded by consumer credit,
//!   and responses by requests.
//!
//! `tests/mailbox_backpressure.rs` saturates both directions at once.

use crate::error::AmqpError;
use crate::ids::{ConnId, ConsumerId, QueueId, ShardId};
use crate::message::MsgRef;
use crate::defs::MetaChange;
use crate::meta::{MetaOp, MetaReply};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Mailbox capacity in batches.
pub const MAILBOX_BATCHES: usize = 256;
/// Readers stop reading sockets while an outbox holds more than this.
pub const OUTBOX_HIGH_WATER: usize = 32 * 1024;

/// Who gets a publisher confirm once a queue has taken the message.
#[derive(Clone, Copy, Debug)]
pub struct ConfirmRef {
    pub conn: ConnId,
    pub channel: u16,
    pub seq: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    Ack,
    Requeue,
    Discard,
}

/// A consumer as registered at its queue's home shard.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    pub id: ConsumerId,
    pub conn: ConnId,
    pub channel: u16,
    pub tag: String,
    pub no_ack: bool,
    pub exclusive: bool,
    pub prefetch: u16,
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
    Snapshot(Box<crate::mgmt::stats::ShardSnapshot>),
    ConnectionCounts(ConnectionCounts),
    Count(u64),
    Done,
    /// The target no longer exists (queue deleted meanwhile).
    Gone,
}

#[derive(Debug)]
pub struct Got {
    pub msg: MsgRef,
    pub seq: u64,
    pub redelivered: bool,
    pub remaining: u32,
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

/// Per-destination queues of messages waiting to be flushed.
pub struct Outbox {
    pending: RefCell<Vec<Vec<ShardMsg>>>,
    /// Wakes the flusher (or the local drain task) for a destination.
    notify: Vec<Notify>,
    /// Wakes readers paused by backpressure.
    pub drained: Notify,
}

impl Outbox {
    pub fn new(shards: usize) -> Self {
        Outbox {
            pending: RefCell::new((0..shards).map(|_| Vec::new()).collect()),
            notify: (0..shards).map(|_| Notify::default()).collect(),
            drained: Notify::default(),
        }
    }

    /// Queue a message for `to`; the flusher is woken once per batch.
    pub fn push(&self, to: ShardId, msg: ShardMsg) {
        let mut p = self.pending.borrow_mut();
        let v = &mut p[to.0];
        v.push(msg);
        if v.len() == 1 {
            self.notify[to.0].notify();
        }
    }

    pub fn take(&self, to: ShardId) -> Vec<ShardMsg> {
        std::mem::take(&mut self.pending.borrow_mut()[to.0])
    }

    pub fn len(&self, to: ShardId) -> usize {
        self.pending.borrow()[to.0].len()
    }

    pub fn over_high_water(&self) -> bool {
        self.pending
            .borrow()
            .iter()
            .any(|v| v.len() > OUTBOX_HIGH_WATER)
    }

    pub fn wait(&self, to: ShardId) -> Wait<'_> {
        self.notify[to.0].wait()
    }
}

/// A single-threaded wake-up: a generation counter plus the wakers of
/// every waiting task. Not a lock: only ever touched from its own shard's
/// thread. A [`Wait`] completes once `notify` has been called after the
/// `Wait` was created, so "check state, then wait" never misses a wake-up.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn notify(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            n: self,
            seen: self.generation.get(),
        }
    }
}

pub struct Wait<'a> {
    n: &'a Notify,
    seen: u64,
}

impl Future for Wait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.n.generation.get() != self.seen {
            Poll::Ready(())
        } else {
            let mut w = self.n.wakers.borrow_mut();
            if !w.iter().any(|x| x.will_wake(cx.waker())) {
                w.push(cx.waker().clone());
            }
            Poll::Pending
        }
    }
}

/// Shared handle type for Rc-held notifies.
pub type NotifyRef = Rc<Notify>;

//! Mailboxes: the transport shards talk to each other through, generic over
//! the message type (the messages themselves are data, in `bus`).
//!
//! Owns: per-destination outboxes ([`Outbox`]), one-shot request/response
//! slots ([`Rpc`]) and the single-threaded wake-up ([`Notify`]). Must
//! never: lock, block, or know what a message means.
//!
//! Between every ordered pair of shards (i -> j) there is one bounded SPSC
//! glommio `shared_channel` carrying *batches* (`Vec<M>`), so one
//! cross-core wake-up moves many messages. A shard's traffic to itself takes
//! the same path minus the channel: the local outbox is drained by the same
//! handler, which keeps one FIFO order per (source, destination) pair and
//! lane: flow-control messages (delivery credit, acks) travel in an urgent
//! lane that is taken first, everything else in the data lane ([`Lane`]).
//!
//! # Why this cannot deadlock
//!
//! * Each shard runs one *drain* task per inbound mailbox. A drain task only
//!   awaits `recv()` on its own mailbox; handling a message is synchronous
//!   and never awaits a send. Anything it must send elsewhere (deliveries,
//!   confirms, responses) is appended to the shard's local, unbounded
//!   [`Outbox`].
//! * A separate *flusher* task per destination moves outbox batches into the
//!   bounded mailbox and is the only code that awaits a full mailbox: its
//!   `send` waits for room (that is backpressure, not an error); the batch
//!   comes back as `Err` only when the receiving shard has gone, and the
//!   flusher then stops.
//! * Since every receiver is always being drained, every full mailbox
//!   eventually has room, so every flusher makes progress: no cycle of
//!   waiting tasks can form.
//! * The outbox stays bounded because the producers of *new* work, socket
//!   readers, stop reading while any outbox is above its high-water mark;
//!   work derived from messages (deliveries) is bounded by consumer credit,
//!   and responses by requests.
//!
//! `tests/mailbox_backpressure.rs` saturates both directions at once.

use crate::ids::ShardId;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Data-lane mailbox capacity in batches.
pub const MAILBOX_BATCHES: usize = 256;
/// Urgent-lane mailbox capacity in batches (credit and acks only).
pub const URGENT_MAILBOX_BATCHES: usize = 64;
/// Readers stop reading sockets while an outbox holds more than this many
/// messages for one destination.
pub const OUTBOX_HIGH_WATER: usize = 32 * 1024;

/// Most messages in one batch (one mailbox slot, one drain turn).
///
/// Why a cap: a batch is a fresh `Vec` that travels to the other shard and
/// is freed there, so its memory never comes back to this shard's heap.
/// Handing the whole pending queue over (up to [`OUTBOX_HIGH_WATER`]
/// messages, megabytes) made every batch a large allocation served from
/// fresh pages, and under a backlog the shard spent half its time zeroing
/// them (page faults on transparent huge pages; PERF.md, issue 14's bad
/// runs). Capped batches are small allocations the allocator reuses, the
/// pending queues keep their capacity, and the receiving drain task yields
/// between batches of bounded size.
pub const MAX_BATCH: usize = 1024;

/// Which of an outbox's two lanes a message travels in.
///
/// Why two lanes: socket readers fill the data lane up to
/// [`OUTBOX_HIGH_WATER`] (publishes) before they pause, and a message behind
/// them waits until all of those are handled. Flow-control messages that
/// let a queue deliver again (delivery credit after a socket write, acks
/// that free prefetch) must not wait there: stuck behind a publish backlog
/// they made a consumer that shares a shard with a busy publisher receive
/// a few percent of the publish rate (issue 14's bad runs; PERF.md). The
/// urgent lane is taken first. Only messages whose effect cannot depend on
/// an earlier message of the data lane may use it.
pub trait Lane {
    /// True for the urgent lane.
    fn urgent(&self) -> bool;
}

/// Per-destination queues of messages waiting to be flushed: an urgent
/// lane and a data lane each (see [`Lane`]); FIFO within each lane. Between
/// two shards each lane has its own SPSC channel and flusher, so urgent
/// messages never wait behind a full data channel either.
pub struct Outbox<M> {
    pending: RefCell<Vec<Lanes<M>>>,
    /// Wakes the local drain task (either lane) for a destination.
    notify: Vec<Notify>,
    /// Wakes a lane's flusher for a destination: `[data, urgent]`.
    lane_notify: Vec<[Notify; 2]>,
    /// Wakes readers paused by backpressure.
    pub drained: Notify,
}

struct Lanes<M> {
    urgent: VecDeque<M>,
    data: VecDeque<M>,
}

impl<M> Lanes<M> {
    fn len(&self) -> usize {
        self.urgent.len() + self.data.len()
    }
}

impl<M: Lane> Outbox<M> {
    /// Empty outboxes for `shards` destinations (indexed by `ShardId`, this
    /// shard's own included).
    pub fn new(shards: usize) -> Self {
        let lanes = (0..shards).map(|_| Lanes {
            urgent: VecDeque::new(),
            data: VecDeque::new(),
        });
        Outbox {
            pending: RefCell::new(lanes.collect()),
            notify: (0..shards).map(|_| Notify::default()).collect(),
            lane_notify: (0..shards).map(|_| Default::default()).collect(),
            drained: Notify::default(),
        }
    }

    /// Queue a message for `to` in its lane; the flusher is woken when the
    /// destination goes from empty to non-empty.
    pub fn push(&self, to: ShardId, msg: M) {
        let mut p = self.pending.borrow_mut();
        let lanes = &mut p[to.0];
        let urgent = msg.urgent();
        let lane = if urgent {
            &mut lanes.urgent
        } else {
            &mut lanes.data
        };
        lane.push_back(msg);
        if lane.len() == 1 {
            self.lane_notify[to.0][urgent as usize].notify();
        }
        if lanes.len() == 1 {
            self.notify[to.0].notify();
        }
    }

    /// Take the oldest messages of one lane queued for `to`, at most
    /// [`MAX_BATCH`], in push order (one batch for that lane's flusher).
    pub fn take_lane(&self, to: ShardId, urgent: bool) -> Vec<M> {
        let mut p = self.pending.borrow_mut();
        let lanes = &mut p[to.0];
        let lane = if urgent {
            &mut lanes.urgent
        } else {
            &mut lanes.data
        };
        let n = lane.len().min(MAX_BATCH);
        let mut batch = Vec::with_capacity(n);
        batch.extend(lane.drain(..n));
        batch
    }

    /// Messages of one lane queued for `to` and not yet taken.
    pub fn lane_len(&self, to: ShardId, urgent: bool) -> usize {
        let p = self.pending.borrow();
        if urgent {
            p[to.0].urgent.len()
        } else {
            p[to.0].data.len()
        }
    }

    /// A wake-up for one lane's flusher to `to`, fired when that lane goes
    /// from empty to non-empty. Create it, re-check [`Outbox::lane_len`],
    /// then await.
    pub fn lane_wait(&self, to: ShardId, urgent: bool) -> Wait<'_> {
        self.lane_notify[to.0][urgent as usize].wait()
    }

    /// Take the oldest messages queued for `to`, at most [`MAX_BATCH`]: the
    /// urgent lane's first, then the data lane's, each in push order (one
    /// batch for the flusher or the local drain task); empty if nothing is
    /// pending. The lanes keep their capacity.
    pub fn take(&self, to: ShardId) -> Vec<M> {
        let mut p = self.pending.borrow_mut();
        let lanes = &mut p[to.0];
        let n = lanes.len().min(MAX_BATCH);
        let mut batch = Vec::with_capacity(n);
        let from_urgent = lanes.urgent.len().min(n);
        batch.extend(lanes.urgent.drain(..from_urgent));
        batch.extend(lanes.data.drain(..n - from_urgent));
        batch
    }

    /// Messages queued for `to` and not yet taken, both lanes (reported per
    /// destination in the shard snapshot).
    pub fn len(&self, to: ShardId) -> usize {
        self.pending.borrow()[to.0].len()
    }

    /// True while any destination's data lane holds more than
    /// [`OUTBOX_HIGH_WATER`] messages; connection readers then stop reading
    /// their sockets until [`Outbox::drained`] fires. (The urgent lane is
    /// bounded by the deliveries and acks it answers.)
    pub fn over_high_water(&self) -> bool {
        self.pending
            .borrow()
            .iter()
            .any(|l| l.data.len() > OUTBOX_HIGH_WATER)
    }

    /// A wake-up for the local drain task, fired when `to`'s lanes go from
    /// empty to non-empty. Create it, re-check [`Outbox::len`], then await.
    pub fn wait(&self, to: ShardId) -> Wait<'_> {
        self.notify[to.0].wait()
    }
}

#[cfg(test)]
mod lane_tests {
    use super::*;

    struct M(u32, bool);
    impl Lane for M {
        fn urgent(&self) -> bool {
            self.1
        }
    }

    #[test]
    fn urgent_messages_overtake_the_data_lane_and_each_lane_keeps_its_order() {
        let o = Outbox::new(1);
        let to = ShardId(0);
        for i in 0..3000 {
            o.push(to, M(i, false));
        }
        o.push(to, M(9001, true));
        o.push(to, M(9002, true));
        assert!(o.len(to) == 3002);
        let first = o.take(to);
        assert_eq!(first.len(), MAX_BATCH);
        assert_eq!((first[0].0, first[1].0, first[2].0), (9001, 9002, 0));
        let mut seen: Vec<u32> = first[2..].iter().map(|m| m.0).collect();
        loop {
            let b = o.take(to);
            if b.is_empty() {
                break;
            }
            assert!(b.len() <= MAX_BATCH);
            seen.extend(b.iter().map(|m| m.0));
        }
        assert_eq!(seen, (0..3000).collect::<Vec<_>>());
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
    /// Wake every task waiting now, and complete every [`Wait`] created before this
    /// call, even one not yet polled.
    pub fn notify(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }
    /// A future that completes at the next [`Notify::notify`] after this call.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            n: self,
            seen: self.generation.get(),
        }
    }
}

/// Future returned by [`Notify::wait`]: ready once the notify's generation has
/// moved past the one seen at creation.
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

/// A one-shot reply slot for a request sent through the mailboxes.
pub struct Slot<R> {
    value: RefCell<Option<R>>,
    ready: Notify,
}

impl<R> Slot<R> {
    /// Wait until the response is in, and take it.
    pub async fn wait(self: Rc<Self>) -> R {
        loop {
            let wait = self.ready.wait();
            if let Some(v) = self.value.borrow_mut().take() {
                return v;
            }
            wait.await;
        }
    }
}

/// Request ids and the slots their responses land in (one per shard;
/// responses `R` come back through the outboxes like everything else).
/// Requests are numbered per shard, so an id names one request of this
/// shard's; the envelope carrying it says which shard asked.
pub struct Rpc<R> {
    pending: RefCell<HashMap<u64, Rc<Slot<R>>>>,
    next: Cell<u64>,
}

impl<R> Default for Rpc<R> {
    fn default() -> Self {
        Rpc {
            pending: RefCell::new(HashMap::new()),
            next: Cell::new(1),
        }
    }
}

impl<R> Rpc<R> {
    /// A new request id and the slot its response will fill.
    pub fn start(&self) -> (u64, Rc<Slot<R>>) {
        let id = self.next.get();
        self.next.set(id + 1);
        let slot = Rc::new(Slot {
            value: RefCell::new(None),
            ready: Notify::default(),
        });
        self.pending.borrow_mut().insert(id, slot.clone());
        (id, slot)
    }

    /// The response to request `id` arrived: fill its slot and wake the
    /// waiter (ignored if the id was forgotten or already answered).
    pub fn answer(&self, id: u64, resp: R) {
        if let Some(slot) = self.pending.borrow_mut().remove(&id) {
            *slot.value.borrow_mut() = Some(resp);
            slot.ready.notify();
        }
    }

    /// Forget request `id` (its waiter gave up); a no-op once answered.
    pub fn forget(&self, id: u64) {
        self.pending.borrow_mut().remove(&id);
    }

    /// Requests still waiting for a response.
    pub fn outstanding(&self) -> usize {
        self.pending.borrow().len()
    }
}

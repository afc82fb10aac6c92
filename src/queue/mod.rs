//! Queues homed on this shard: ready messages, unacked messages, consumers.
//!
//! Owns: message order, round-robin dispatch, prefetch and flow credit per
//! consumer. Must never: block, lock, copy a body (messages are `Arc`s), or
//! call back into a connection for anything but appending a delivery.
//!
//! Credit: a consumer may have at most `prefetch` unacked deliveries (when it
//! acks) and at most [`SEND_WINDOW`] deliveries not yet written to its socket
//! (always). The second bound is what stops a fast queue from flooding a
//! slow consumer's write buffer or its shard's outbox: the consumer's shard
//! returns credit after each socket write.

use crate::defs::QueueDef;
pub mod consumer;
pub mod dead_letter;
mod delayed;
pub mod delivery_count;
pub mod limits;
pub mod pressure;
pub mod ready;
mod stats;

pub use consumer::{QConsumer, SingleActive, SEND_WINDOW, SEND_WINDOW_BYTES};
pub use dead_letter::{DeadLetter, DeadLetterTarget, DeathReason};
pub use delayed::released as delayed_release;
pub use delivery_count::DeliveryCounting;
pub use limits::{LengthLimits, Overflow};
pub use ready::{Entry, Ready};
pub use stats::QueueStats;

use crate::ids::{ConnId, ConsumerId, QueueId, ShardId};
use crate::message::MsgRef;
use crate::store::journal::Recovered;
use crate::store::Position;

/// How a settled delivery leaves the queue (`basic.ack`, `basic.reject` /
/// `basic.nack` with or without `requeue`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// `basic.ack`: the message leaves the queue.
    Ack,
    /// `requeue=true`: back to its original place, marked redelivered.
    Requeue,
    /// `requeue=false`: it leaves the queue; dead-lettered (`rejected`) with a DLX.
    Discard,
}

/// A consumer as registered at its queue's home shard.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    /// Broker-wide id; its shard is the consumer's connection's shard.
    pub id: ConsumerId,
    /// The consumer's connection.
    pub conn: ConnId,
    /// Channel number on that connection.
    pub channel: u16,
    /// Consumer tag (the client's, or a generated `amq.ctag-*`).
    pub tag: String,
    /// basic.consume `no-ack`: a delivery is settled once sent.
    pub no_ack: bool,
    /// basic.consume `exclusive`: the queue's only consumer.
    pub exclusive: bool,
    /// Unacked deliveries allowed (basic.qos `global=false`); 0 = no limit.
    pub prefetch: u16,
    /// The `x-priority` consume argument (0 without it): higher-priority
    /// consumers get messages first (RabbitMQ's consumer priorities).
    pub priority: i64,
}

/// A message taken by `basic.get` (AMQP 0-9-1 basic.get-ok fields).
#[derive(Debug)]
pub struct Got {
    /// The message (shared, not copied).
    pub msg: MsgRef,
    /// Queue sequence number; settled by it unless taken `no_ack`.
    pub seq: u64,
    /// Delivered before (basic.get-ok `redelivered`).
    pub redelivered: bool,
    /// Ready messages left (basic.get-ok `message-count`).
    pub remaining: u32,
}

/// A durable queue keeps at most this many ready messages in memory; the
/// rest are only positions in the store, loaded when they are delivered.
/// A paged queue (see [`Queue::wants_page`]) keeps the same read-ahead.
pub const READ_AHEAD: usize = 1024;

#[derive(Debug)]
struct Unacked {
    msg: MsgRef,
    consumer: Option<ConsumerId>,
    pos: Option<Position>,
    /// The flag it was delivered with (kept for [`Queue::returned`]).
    redelivered: bool,
    /// Kept across a requeue (RabbitMQ keeps a message's expiry).
    expires: u64,
    /// Times delivered, this delivery included.
    deliveries: u32,
}

/// A message's body size for `x-max-length-bytes`, in bytes.
fn body_size(m: &MsgRef) -> u32 {
    u32::try_from(m.body.len()).unwrap_or(u32::MAX)
}

/// A delivery the queue decided on; the shard routes it to the consumer.
pub struct Delivery {
    /// Who gets it.
    pub consumer: ConsumerId,
    /// The consumer's shard (where the delivery is sent).
    pub shard: ShardId,
    /// Queue sequence number (the channel maps it to a delivery tag).
    pub seq: u64,
    /// basic.deliver `redelivered`.
    pub redelivered: bool,
    /// The message (shared, not copied).
    pub msg: MsgRef,
    /// The entry's expiry (ms since the epoch, 0 = never), for a delivery
    /// that comes back undelivered.
    pub expires: u64,
    /// Times the message was delivered before this delivery.
    pub deliveries: u32,
}

/// One queue (see the module documentation); sans-IO.
#[derive(Debug)]
pub struct Queue {
    /// Its definition (name, flags, arguments).
    pub def: QueueDef,
    ready: Ready,
    unacked: crate::ids::IdMap<u64, Unacked>,
    consumers: Vec<QConsumer>,
    rr: usize,
    /// The consumers do not all have the same `x-priority`.
    consumer_priorities: bool,
    /// Some with `x-single-active-consumer: true`.
    single_active: Option<SingleActive>,
    next_seq: u64,
    had_consumer: bool,
    /// Publisher flow control by backlog ([`pressure::Flow`]).
    flow: pressure::Flow,
    /// Counters for the management API (monotonic).
    pub stats: QueueStats,
    /// `x-message-ttl`, in ms (validated at declare).
    ttl: Option<u64>,
    /// `x-max-length` (ready messages) and `x-max-length-bytes` (bytes of
    /// ready bodies), and what happens beyond them (`x-overflow`).
    limits: LengthLimits,
    /// `x-expires`: the queue is deleted after this many ms unused.
    idle_expiry: Option<u64>,
    /// Last use (consume, cancel, get, declare), ms since the epoch.
    last_used: u64,
    /// Delivery counting and `x-delivery-limit` (quorum queues, or asked for).
    counting: DeliveryCounting,
    /// `x-dead-letter-exchange` (and routing key), if set.
    dead_letter: Option<DeadLetterTarget>,
    /// Messages that died since the last [`Queue::take_dead_letters`]
    /// (only collected with a dead-letter exchange).
    dead_letters: Vec<DeadLetter>,
    /// Journal effects decided but not yet applied by the queue home ([`Queue::take_store_ops`]);
    /// empty for queues without stored messages.
    store_ops: Vec<StoreOp>,
    /// The store of a delayed-message exchange (`Queue::delay_store`), not a queue.
    delay: bool,
}

/// A journal effect the queue decided for one of its stored messages; the
/// queue home applies it to the store (the queue itself does no I/O).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// The message left the queue for good (acked, delivered no-ack, purged, or unreadable).
    Ack(Position),
    /// The message was delivered (for the given time, from 1): redelivered
    /// after a crash, with that delivery count.
    Delivered(Position, u32),
}

impl Queue {
    /// An empty queue; TTL, limits and dead-lettering from `def.args`.
    pub fn new(def: QueueDef) -> Self {
        Queue {
            ttl: crate::defs::message_ttl(&def.args),
            dead_letter: DeadLetterTarget::from_args(&def.args),
            counting: DeliveryCounting::from_args(&def.args),
            limits: LengthLimits::from_args(&def.args),
            idle_expiry: crate::defs::queue_expires(&def.args),
            last_used: 0,
            dead_letters: Vec::new(),
            ready: Ready::new(crate::defs::max_priority(&def.args)),
            single_active: matches!(
                def.args.inner().get("x-single-active-consumer"),
                Some(amq_protocol::types::AMQPValue::Boolean(true))
            )
            .then(SingleActive::default),
            def,
            unacked: Default::default(),
            consumers: Vec::new(),
            rr: 0,
            consumer_priorities: false,
            next_seq: 1,
            had_consumer: false,
            flow: pressure::Flow::default(),
            stats: QueueStats::default(),
            store_ops: Vec::new(),
            delay: false,
        }
    }

    /// (Re)read the settings a policy may change (TTL, expiry, length
    /// limits, dead-lettering, delivery limit) from the queue's effective
    /// arguments: its own combined with the policies that apply
    /// (`defs::policy::effective_args`). Messages already queued keep their
    /// expiry; the caller enforces new length limits.
    pub fn configure(&mut self, args: &amq_protocol::types::FieldTable) {
        self.ttl = crate::defs::message_ttl(args);
        self.dead_letter = DeadLetterTarget::from_args(args);
        self.limits = LengthLimits::from_args(args);
        self.idle_expiry = crate::defs::queue_expires(args);
        self.counting = DeliveryCounting::from_args(args);
    }

    /// Count a message that died for `reason` (dead-lettered or dropped).
    fn count_death(&mut self, reason: DeathReason) {
        self.stats.died[usize::from(self.dead_letter.is_some())][reason.index()] += 1;
    }

    /// Messages died since the last [`Queue::take_dead_letters`].
    pub fn has_dead_letters(&self) -> bool {
        !self.dead_letters.is_empty()
    }

    /// Where this queue's dead letters go, if anywhere.
    pub fn dead_letter_target(&self) -> Option<&DeadLetterTarget> {
        self.dead_letter.as_ref()
    }

    /// The messages that died since the last call, in order (the home
    /// re-publishes them to the dead-letter exchange).
    pub fn take_dead_letters(&mut self) -> std::vec::Drain<'_, DeadLetter> {
        self.dead_letters.drain(..)
    }

    /// The journal effects decided since the last call, in order.
    pub fn take_store_ops(&mut self) -> std::vec::Drain<'_, StoreOp> {
        self.store_ops.drain(..)
    }

    /// Its broker-wide id.
    pub fn id(&self) -> QueueId {
        self.def.id
    }
    /// Messages ready for delivery (not counting unacked).
    pub fn message_count(&self) -> u32 {
        self.ready.len() as u32
    }
    /// Messages delivered (or got) and not yet settled.
    pub fn unacked_count(&self) -> u32 {
        self.unacked.len() as u32
    }
    /// Registered consumers.
    pub fn consumer_count(&self) -> u32 {
        self.consumers.len() as u32
    }
    /// The registered consumers, in registration order.
    pub fn consumers(&self) -> impl Iterator<Item = &ConsumerSpec> {
        self.consumers.iter().map(|c| &c.spec)
    }

    /// Enqueue a message (`pos`: where it is stored, for a persistent message in a durable queue)
    /// at `now` (ms since the Unix epoch), which starts its TTL: the lower of the queue's
    /// `x-message-ttl` and the message's `expiration`, as RabbitMQ applies them.
    /// Returns its expiry (ms since the epoch, 0 = never), which the store
    /// journals with a stored message.
    pub fn publish(&mut self, msg: MsgRef, pos: Option<Position>, now: u64) -> u64 {
        self.stats.publish += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        let expires = match self.delay {
            false => self.expiry(msg.expiration_ms, now),
            true => delayed::release_time(&msg, now),
        };
        // Beyond the read-ahead a stored message lives only on disk.
        let keep = pos.is_none() || self.ready.len() < READ_AHEAD;
        let size = body_size(&msg);
        let lane = self.ready.lane_of(msg.priority);
        self.enter(Entry {
            seq,
            msg: keep.then_some(msg),
            pos,
            redelivered: false,
            expires,
            size,
            lane,
            deliveries: 0,
        });
        expires
    }

    /// When a message enqueued at `now` expires (ms since the epoch), or 0
    /// for never. Costs one branch when neither TTL is set.
    fn expiry(&self, message_ttl: Option<u64>, now: u64) -> u64 {
        let ttl = match (self.ttl, message_ttl) {
            (None, None) => return 0,
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(0),
        };
        // 0 means "never": a TTL of 0 at time 0 must still expire.
        now.saturating_add(ttl).max(1)
    }

    /// Over `x-max-length` / `x-max-length-bytes` with `extra` more messages of `extra_bytes`.
    fn over_limits(&self, extra: u64, extra_bytes: u64) -> bool {
        self.limits
            .max_length
            .is_some_and(|m| self.ready.len() as u64 + extra > m)
            || self
                .limits
                .max_length_bytes
                .is_some_and(|m| self.ready.bytes() + extra_bytes > m)
    }

    /// Whether a new message of `size` bytes may be enqueued: false only
    /// for `x-overflow: reject-publish` / `reject-publish-dlx` queues at a
    /// limit (the publisher's confirm is then a `basic.nack`, as RabbitMQ).
    pub fn admits(&self, size: usize) -> bool {
        self.limits.overflow == Overflow::DropHead || !self.over_limits(1, size as u64)
    }

    /// A publish this queue refused ([`Queue::admits`]): with
    /// `reject-publish-dlx` it is dead-lettered (reason `maxlen`).
    pub fn refused(&mut self, msg: MsgRef) {
        if self.limits.overflow == Overflow::RejectPublishDlx {
            self.count_death(DeathReason::MaxLen);
        }
        if self.limits.overflow == Overflow::RejectPublishDlx {
            self.die(Some(msg), None, DeathReason::MaxLen);
        }
    }

    /// `x-overflow: drop-head` (the default): drop (and dead-letter, reason `maxlen`) messages
    /// from the head until the queue is within its limits. Returns how many.
    pub fn enforce_limits(&mut self, load: impl Fn(Position) -> Option<MsgRef>) -> u32 {
        let mut n = 0;
        while self.limits.overflow == Overflow::DropHead && self.over_limits(0, 0) {
            let Some(e) = self.ready.pop_front() else {
                break;
            };
            self.count_death(DeathReason::MaxLen);
            let body = self.dying_body(&e, &load);
            self.die(body, dead_letter::stored(&e), DeathReason::MaxLen);
            n += 1;
        }
        n
    }

    /// The queue was used (consume, cancel, basic.get, declare) at `now`:
    /// its `x-expires` period starts again.
    pub fn touch(&mut self, now: u64) {
        self.last_used = now;
    }

    /// Has `x-expires`.
    pub fn has_idle_expiry(&self) -> bool {
        self.idle_expiry.is_some()
    }

    /// How long it has been unused at `now` (0 while it has consumers), in ms.
    pub fn unused_for(&self, now: u64) -> u64 {
        if self.consumers.is_empty() {
            now.saturating_sub(self.last_used)
        } else {
            0
        }
    }

    /// Unused (no consumers) for its whole `x-expires` period at `now`.
    pub fn idle_expired(&self, now: u64) -> bool {
        self.idle_expiry
            .is_some_and(|x| self.consumers.is_empty() && now >= self.last_used.saturating_add(x))
    }

    /// The queue has `x-message-ttl` (or is a delay store): a publish
    /// needs the time.
    pub fn has_ttl(&self) -> bool {
        self.ttl.is_some() || self.delay
    }

    /// Some ready message has a TTL (the home's expiry tick looks at this queue's head).
    pub fn has_expiring(&self) -> bool {
        self.ready.expiring() > 0
    }

    /// Drop the expired messages at the head of the queue (RabbitMQ
    /// expires from the head: a message with a longer per-message TTL ahead
    /// of a shorter one keeps it waiting). Returns how many.
    /// `load` reads a stored body a dead letter needs.
    pub fn expire(&mut self, now: u64, load: impl Fn(Position) -> Option<MsgRef>) -> u32 {
        let mut n = 0;
        while let Some(e) = self.ready.pop_expired(now) {
            match self.delay {
                false => self.dropped_expired(&e, &load),
                true => self.release(&e, &load),
            }
            n += 1;
        }
        n
    }

    fn dropped_expired(&mut self, e: &Entry, load: &impl Fn(Position) -> Option<MsgRef>) {
        self.stats.expired += 1;
        self.count_death(DeathReason::Expired);
        let body = self.dying_body(e, load);
        self.die(body, dead_letter::stored(e), DeathReason::Expired);
    }

    /// Recovered messages, in their original order, at `now`, with the
    /// expiries and delivery counts the journal kept (a message journalled
    /// without an expiry in a queue with a TTL gets the TTL from recovery).
    /// (Body sizes of recovered messages are not known until they are
    /// loaded: they count 0 bytes towards `x-max-length-bytes`.) A priority
    /// queue reads each message's `priority` with `load` so that it
    /// recovers in priority order; a plain queue reads nothing.
    pub fn recover(
        &mut self,
        items: Vec<Recovered>,
        now: u64,
        load: impl Fn(Position) -> Option<MsgRef>,
    ) {
        // A delay store entry journalled without a time is due now.
        let fallback = if self.delay {
            now.max(1)
        } else {
            self.expiry(None, now)
        };
        let prioritised = self.ready.has_priorities();
        for r in items {
            let seq = self.next_seq;
            self.next_seq += 1;
            let lane = if prioritised {
                load(r.pos).map_or(0, |m| self.ready.lane_of(m.priority))
            } else {
                0
            };
            self.enter(Entry {
                seq,
                msg: None,
                pos: Some(r.pos),
                redelivered: r.deliveries > 0,
                expires: if r.expires != 0 { r.expires } else { fallback },
                size: 0,
                lane,
                deliveries: r.deliveries,
            });
        }
    }

    /// Live stored messages with their delivery counts and expiries, in
    /// queue order, for compaction.
    pub fn live_positions(&self) -> Vec<Recovered> {
        let mut v: Vec<(u64, Recovered)> = self
            .ready
            .iter()
            .filter_map(|e| {
                e.pos.map(|pos| {
                    let deliveries = e.deliveries.max(u32::from(e.redelivered));
                    (
                        e.seq,
                        Recovered {
                            pos,
                            deliveries,
                            expires: e.expires,
                        },
                    )
                })
            })
            .chain(self.unacked.iter().filter_map(|(s, u)| {
                u.pos.map(|pos| {
                    let deliveries = u.deliveries.max(1);
                    (
                        *s,
                        Recovered {
                            pos,
                            deliveries,
                            expires: u.expires,
                        },
                    )
                })
            }))
            .collect();
        v.sort_by_key(|x| x.0);
        v.into_iter().map(|(_, r)| r).collect()
    }

    /// Every position still referenced (queue deletion).
    pub fn all_positions(&self) -> Vec<Position> {
        self.ready
            .iter()
            .filter_map(|e| e.pos)
            .chain(self.unacked.values().filter_map(|u| u.pos))
            .collect()
    }

    /// Settle deliveries by their queue sequence numbers: ack/discard journals an ack for stored
    /// messages; requeue puts them back in their original place, redelivered.
    pub fn settle(&mut self, seqs: &[u64], how: Settle) {
        let mut requeue = Vec::new();
        for seq in seqs {
            let Some(u) = self.unacked.remove(seq) else {
                continue;
            };
            if how != Settle::Requeue {
                self.stats.ack += 1;
            }
            // A requeue past the delivery limit: the message dies instead.
            let over = how == Settle::Requeue && self.counting.exceeded(u.deliveries);
            if over {
                self.stats.ack += 1;
                self.count_death(DeathReason::DeliveryLimit);
            } else if how == Settle::Discard {
                self.count_death(DeathReason::Rejected);
            }
            if how == Settle::Discard || over {
                let why = if over {
                    DeathReason::DeliveryLimit
                } else {
                    DeathReason::Rejected
                };
                let kept = u.pos.map(|pos| Recovered {
                    pos,
                    deliveries: u.deliveries.max(1),
                    expires: u.expires,
                });
                self.die(Some(u.msg.clone()), kept, why);
            } else if let (Some(p), Settle::Ack) = (u.pos, how) {
                self.store_ops.push(StoreOp::Ack(p));
            }
            self.unacked_settled(u.consumer);
            if how == Settle::Requeue && !over {
                requeue.push(Entry {
                    seq: *seq,
                    size: body_size(&u.msg),
                    lane: self.ready.lane_of(u.msg.priority),
                    msg: Some(u.msg),
                    pos: u.pos,
                    redelivered: true,
                    expires: u.expires,
                    deliveries: u.deliveries,
                });
            }
        }
        // Requeued messages go back to their original position (by seq),
        // keeping their expiry.
        requeue.sort_by_key(|e| e.seq);
        for e in requeue.into_iter().rev() {
            self.ready.insert(e);
        }
    }

    /// queue.purge: drop every ready message; returns how many.
    pub fn purge(&mut self) -> u32 {
        let n = self.ready.len() as u32;
        for e in self.ready.take_all() {
            if let Some(p) = e.pos {
                self.store_ops.push(StoreOp::Ack(p));
            }
        }
        n
    }

    /// The message of an entry, from memory or from the store. None (and
    /// the entry is dropped as acked) if the record cannot be read.
    fn materialise(&self, e: &Entry, load: &impl Fn(Position) -> Option<MsgRef>) -> Option<MsgRef> {
        if let Some(m) = &e.msg {
            return Some(m.clone());
        }
        let m = e.pos.and_then(load);
        if m.is_none() {
            tracing::warn!(queue = %self.def.name, pos = ?e.pos, "stored message unreadable; dropped");
        }
        m
    }

    /// Pop the head entry with its message loaded.
    fn pop_ready(
        &mut self,
        now: u64,
        load: &impl Fn(Position) -> Option<MsgRef>,
    ) -> Option<(Entry, MsgRef)> {
        loop {
            let Some(e) = self.ready.pop_front() else {
                // A drained backlog should not keep its peak capacity.
                self.ready.shrink();
                if self.unacked.is_empty() && self.unacked.capacity() > 64 * 1024 {
                    self.unacked.shrink_to(1024);
                }
                return None;
            };
            if e.expired(now) {
                self.dropped_expired(&e, load);
                continue;
            }
            match self.materialise(&e, load) {
                Some(m) => return Some((e, m)),
                None => {
                    if let Some(p) = e.pos {
                        self.store_ops.push(StoreOp::Ack(p));
                    }
                }
            }
        }
    }

    /// basic.get: take the head message (`load` reads a stored body beyond the read-ahead).
    pub fn get(
        &mut self,
        no_ack: bool,
        now: u64,
        load: impl Fn(Position) -> Option<MsgRef>,
    ) -> Option<Got> {
        let (e, msg) = self.pop_ready(now, &load)?;
        self.stats.get += 1;
        let msg = self.hand_out(&e, msg, None, no_ack);
        Some(Got {
            msg,
            seq: e.seq,
            redelivered: e.redelivered,
            remaining: self.ready.len() as u32,
        })
    }

    /// The next delivery for the next consumer with credit, round-robin within the highest
    /// consumer priority that has one ([`consumer::next_consumer`]; `load` reads a stored body
    /// beyond the read-ahead); None when no message is ready or no consumer has credit.
    pub fn next_delivery(
        &mut self,
        now: u64,
        load: impl Fn(Position) -> Option<MsgRef>,
    ) -> Option<Delivery> {
        if self.ready.is_empty() || self.consumers.is_empty() {
            return None;
        }
        let n = self.consumers.len();
        let idx = self.dispatch_target()?;
        self.rr = (idx + 1) % n;
        let (e, msg) = self.pop_ready(now, &load)?;
        self.stats.deliver += 1;
        if e.redelivered {
            self.stats.redeliver += 1;
        }
        let c = &mut self.consumers[idx];
        c.unsent += 1;
        c.unsent_bytes += msg.body.len() as u64;
        if !c.spec.no_ack {
            c.unacked += 1;
        }
        let (id, no_ack) = (c.spec.id, c.spec.no_ack);
        let msg = self.hand_out(&e, msg, Some(id), no_ack);
        Some(Delivery {
            consumer: id,
            shard: id.shard(),
            seq: e.seq,
            redelivered: e.redelivered,
            msg,
            expires: e.expires,
            deliveries: e.deliveries,
        })
    }

    /// Hand entry `e` (its message `msg`) out to `consumer` (None for
    /// basic.get): journal it, keep it unacked unless `no_ack`, and return
    /// the message as delivered (with `x-delivery-count` if the queue
    /// counts deliveries).
    fn hand_out(
        &mut self,
        e: &Entry,
        msg: MsgRef,
        consumer: Option<ConsumerId>,
        no_ack: bool,
    ) -> MsgRef {
        let deliveries = e.deliveries.saturating_add(1);
        if let Some(p) = e.pos {
            self.store_ops.push(if no_ack {
                StoreOp::Ack(p)
            } else {
                StoreOp::Delivered(p, deliveries)
            });
        }
        let counted = |m: MsgRef| {
            if self.counting.counted {
                delivery_count::with_count(&m, e.deliveries)
            } else {
                m
            }
        };
        if no_ack {
            return counted(msg);
        }
        let out = counted(msg.clone());
        self.unacked.insert(
            e.seq,
            Unacked {
                msg,
                consumer,
                pos: e.pos,
                redelivered: e.redelivered,
                expires: e.expires,
                deliveries,
            },
        );
        out
    }

    /// A delivery could not be handed to its consumer (channel gone): put it
    /// back and forget that consumer.
    pub fn undeliverable(&mut self, d: Delivery) {
        self.cancel(d.consumer);
        // Whether it was tracked as unacked or not (no-ack), the client never
        // saw it, so it goes back to the queue. (A no-ack delivery was
        // already released from the store: it comes back in memory only.)
        let (stored, msg) = match self.unacked.remove(&d.seq) {
            Some(u) => {
                self.unacked_settled(u.consumer);
                (u.pos, u.msg)
            }
            None => (None, d.msg),
        };
        self.ready.insert(Entry {
            seq: d.seq,
            size: body_size(&msg),
            lane: self.ready.lane_of(msg.priority),
            msg: Some(msg),
            pos: stored,
            redelivered: d.redelivered,
            expires: d.expires,
            deliveries: d.deliveries,
        });
    }

    /// The consumer's channel is at its channel-wide prefetch and handed
    /// delivery `seq` back unseen: it goes back to its place in the queue
    /// with its redelivered flag unchanged, the consumer's counters are
    /// undone, and the consumer is paused until [`Queue::resume`]. (The
    /// store's journal already saw the delivery: after a crash the message
    /// comes back marked redelivered, which the flag allows.)
    pub fn returned(&mut self, consumer: ConsumerId, seq: u64) {
        let Some(u) = self.unacked.remove(&seq) else {
            return;
        };
        if let Some(c) = self.consumers.iter_mut().find(|c| c.spec.id == consumer) {
            c.unacked = c.unacked.saturating_sub(1);
            c.unsent = c.unsent.saturating_sub(1);
            c.unsent_bytes = c.unsent_bytes.saturating_sub(u.msg.body.len() as u64);
            c.paused = true;
        } else {
            // The consumer has gone (a delivery that crossed its cancel):
            // a single-active-consumer handover may be waiting for it.
            self.unacked_settled(u.consumer);
        }
        self.stats.deliver = self.stats.deliver.saturating_sub(1);
        let redelivered = u.redelivered;
        if redelivered {
            self.stats.redeliver = self.stats.redeliver.saturating_sub(1);
        }
        self.ready.insert(Entry {
            seq,
            size: body_size(&u.msg),
            lane: self.ready.lane_of(u.msg.priority),
            msg: Some(u.msg),
            pos: u.pos,
            redelivered,
            expires: u.expires,
            deliveries: u.deliveries.saturating_sub(1),
        });
    }

    /// The consumer's channel is under its channel-wide prefetch again.
    pub fn resume(&mut self, consumer: ConsumerId) {
        if let Some(c) = self.consumers.iter_mut().find(|c| c.spec.id == consumer) {
            c.paused = false;
        }
    }

    /// Everything the consumers registered here, for server-sent cancels.
    pub fn take_consumers(&mut self) -> Vec<ConsumerSpec> {
        self.consumers.drain(..).map(|c| c.spec).collect()
    }
}

#[cfg(test)]
mod tests;

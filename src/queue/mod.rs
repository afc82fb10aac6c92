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
use crate::ids::{ConnId, ConsumerId, QueueId, ShardId};
use crate::message::MsgRef;
use crate::store::Position;
use std::collections::{HashMap, VecDeque};

/// How a settled delivery leaves the queue (`basic.ack`, `basic.reject` /
/// `basic.nack` with or without `requeue`).
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

/// A message taken by `basic.get` (AMQP 0-9-1 basic.get-ok fields).
#[derive(Debug)]
pub struct Got {
    pub msg: MsgRef,
    pub seq: u64,
    pub redelivered: bool,
    pub remaining: u32,
}

/// Deliveries in flight to one consumer's socket before credit comes back.
pub const SEND_WINDOW: u32 = 2048;
/// A durable queue keeps at most this many ready messages in memory; the
/// rest are only positions in the store, loaded when they are delivered.
pub const READ_AHEAD: usize = 1024;

#[derive(Debug)]
pub struct Entry {
    pub seq: u64,
    /// None when only on disk (beyond the read-ahead, or recovered).
    pub msg: Option<MsgRef>,
    pub pos: Option<Position>,
    pub redelivered: bool,
}

#[derive(Debug)]
pub struct QConsumer {
    pub spec: ConsumerSpec,
    pub unacked: u32,
    pub unsent: u32,
    /// Its channel reached the channel-wide prefetch (`basic.qos
    /// global=true`): no dispatch until the channel resumes it.
    pub paused: bool,
}

impl QConsumer {
    fn has_capacity(&self) -> bool {
        !self.paused
            && self.unsent < SEND_WINDOW
            && (self.spec.no_ack
                || self.spec.prefetch == 0
                || self.unacked < self.spec.prefetch as u32)
    }
}

#[derive(Debug)]
struct Unacked {
    msg: MsgRef,
    consumer: Option<ConsumerId>,
    pos: Option<Position>,
    /// The flag it was delivered with (kept for [`Queue::returned`]).
    redelivered: bool,
}

/// A delivery the queue decided on; the shard routes it to the consumer.
pub struct Delivery {
    pub consumer: ConsumerId,
    pub shard: ShardId,
    pub seq: u64,
    pub redelivered: bool,
    pub msg: MsgRef,
}

#[derive(Debug)]
pub struct Queue {
    pub def: QueueDef,
    ready: VecDeque<Entry>,
    unacked: HashMap<u64, Unacked>,
    consumers: Vec<QConsumer>,
    rr: usize,
    next_seq: u64,
    had_consumer: bool,
    /// Counters for the management API (monotonic).
    pub stats: QueueStats,
    /// Journal effects decided but not yet applied by the queue home
    /// ([`Queue::take_store_ops`]); empty for queues without stored
    /// messages.
    store_ops: Vec<StoreOp>,
}

/// A journal effect the queue decided for one of its stored messages; the
/// queue home applies it to the store (the queue itself does no I/O).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// The message left the queue for good (acked, delivered no-ack,
    /// purged, or unreadable).
    Ack(Position),
    /// The message was delivered once: redelivered after a crash.
    Delivered(Position),
}

#[derive(Debug, Default, Clone, Copy)]
pub struct QueueStats {
    pub publish: u64,
    pub deliver: u64,
    pub get: u64,
    pub ack: u64,
    pub redeliver: u64,
}

impl Queue {
    pub fn new(def: QueueDef) -> Self {
        Queue {
            def,
            ready: VecDeque::new(),
            unacked: HashMap::new(),
            consumers: Vec::new(),
            rr: 0,
            next_seq: 1,
            had_consumer: false,
            stats: QueueStats::default(),
            store_ops: Vec::new(),
        }
    }

    /// The journal effects decided since the last call, in order.
    pub fn take_store_ops(&mut self) -> std::vec::Drain<'_, StoreOp> {
        self.store_ops.drain(..)
    }

    pub fn id(&self) -> QueueId {
        self.def.id
    }
    pub fn message_count(&self) -> u32 {
        self.ready.len() as u32
    }
    pub fn unacked_count(&self) -> u32 {
        self.unacked.len() as u32
    }
    pub fn consumer_count(&self) -> u32 {
        self.consumers.len() as u32
    }
    pub fn consumers(&self) -> impl Iterator<Item = &ConsumerSpec> {
        self.consumers.iter().map(|c| &c.spec)
    }

    /// Enqueue a message; `pos` is set when it is stored for this queue.
    pub fn publish(&mut self, msg: MsgRef, pos: Option<Position>) {
        self.stats.publish += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        // Beyond the read-ahead a stored message lives only on disk.
        let keep = pos.is_none() || self.ready.len() < READ_AHEAD;
        self.ready.push_back(Entry {
            seq,
            msg: keep.then_some(msg),
            pos,
            redelivered: false,
        });
    }

    /// Recovered messages, in their original order.
    pub fn recover(&mut self, items: Vec<(Position, bool)>) {
        for (pos, delivered) in items {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.ready.push_back(Entry {
                seq,
                msg: None,
                pos: Some(pos),
                redelivered: delivered,
            });
        }
    }

    /// Live store positions with their delivered flag, for compaction.
    pub fn live_positions(&self) -> Vec<(Position, bool)> {
        let mut v: Vec<(u64, Position, bool)> = self
            .ready
            .iter()
            .filter_map(|e| e.pos.map(|p| (e.seq, p, e.redelivered)))
            .chain(
                self.unacked
                    .iter()
                    .filter_map(|(s, u)| u.pos.map(|p| (*s, p, true))),
            )
            .collect();
        v.sort_by_key(|x| x.0);
        v.into_iter().map(|(_, p, d)| (p, d)).collect()
    }

    /// Every position still referenced (queue deletion).
    pub fn all_positions(&self) -> Vec<Position> {
        self.ready
            .iter()
            .filter_map(|e| e.pos)
            .chain(self.unacked.values().filter_map(|u| u.pos))
            .collect()
    }

    /// Register a consumer. Errors carry RabbitMQ's texts.
    pub fn consume(&mut self, spec: ConsumerSpec) -> Result<(), crate::error::AmqpError> {
        let exclusive_use = || {
            crate::error::AmqpError::access_refused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                self.def.name, self.def.vhost
            ))
        };
        if spec.exclusive && !self.consumers.is_empty() {
            return Err(exclusive_use());
        }
        if self.consumers.iter().any(|c| c.spec.exclusive) {
            return Err(exclusive_use());
        }
        self.consumers.push(QConsumer {
            spec,
            unacked: 0,
            unsent: 0,
            paused: false,
        });
        self.had_consumer = true;
        Ok(())
    }

    /// Remove a consumer; its unacked messages stay unacked until the
    /// channel settles them (ack or requeue on close), as in RabbitMQ.
    pub fn cancel(&mut self, id: ConsumerId) -> bool {
        let before = self.consumers.len();
        self.consumers.retain(|c| c.spec.id != id);
        if self.rr >= self.consumers.len() {
            self.rr = 0;
        }
        before != self.consumers.len()
    }

    /// True once the last consumer of an auto-delete queue has gone.
    pub fn should_auto_delete(&self) -> bool {
        self.def.auto_delete && self.had_consumer && self.consumers.is_empty()
    }

    pub fn credit(&mut self, id: ConsumerId, n: u32) {
        if let Some(c) = self.consumers.iter_mut().find(|c| c.spec.id == id) {
            c.unsent = c.unsent.saturating_sub(n);
        }
    }

    /// Settle deliveries by their queue sequence numbers: ack/discard
    /// journals an ack for stored messages; requeue puts them back in
    /// their original place, redelivered.
    pub fn settle(&mut self, seqs: &[u64], how: Settle) {
        let mut requeue = Vec::new();
        for seq in seqs {
            let Some(u) = self.unacked.remove(seq) else {
                continue;
            };
            if how != Settle::Requeue {
                self.stats.ack += 1;
            }
            if let (Some(p), false) = (u.pos, how == Settle::Requeue) {
                self.store_ops.push(StoreOp::Ack(p));
            }
            if let Some(cid) = u.consumer {
                if let Some(c) = self.consumers.iter_mut().find(|c| c.spec.id == cid) {
                    c.unacked = c.unacked.saturating_sub(1);
                }
            }
            if how == Settle::Requeue {
                requeue.push(Entry {
                    seq: *seq,
                    msg: Some(u.msg),
                    pos: u.pos,
                    redelivered: true,
                });
            }
        }
        // Requeued messages go back to their original position (by seq).
        requeue.sort_by_key(|e| e.seq);
        for e in requeue.into_iter().rev() {
            let pos = self.ready.partition_point(|x| x.seq < e.seq);
            self.ready.insert(pos, e);
        }
    }

    /// queue.purge: drop every ready message; returns how many.
    pub fn purge(&mut self) -> u32 {
        let n = self.ready.len() as u32;
        for e in self.ready.drain(..) {
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
    fn pop_ready(&mut self, load: &impl Fn(Position) -> Option<MsgRef>) -> Option<(Entry, MsgRef)> {
        loop {
            let Some(e) = self.ready.pop_front() else {
                // A drained backlog should not keep its peak capacity.
                if self.ready.capacity() > 64 * 1024 {
                    self.ready.shrink_to(1024);
                }
                if self.unacked.is_empty() && self.unacked.capacity() > 64 * 1024 {
                    self.unacked.shrink_to(1024);
                }
                return None;
            };
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

    /// basic.get: take the head message (`load` reads a stored body
    /// beyond the read-ahead).
    pub fn get(&mut self, no_ack: bool, load: impl Fn(Position) -> Option<MsgRef>) -> Option<Got> {
        let (e, msg) = self.pop_ready(&load)?;
        self.stats.get += 1;
        if let Some(p) = e.pos {
            self.store_ops.push(if no_ack {
                StoreOp::Ack(p)
            } else {
                StoreOp::Delivered(p)
            });
        }
        if !no_ack {
            self.unacked.insert(
                e.seq,
                Unacked {
                    msg: msg.clone(),
                    consumer: None,
                    pos: e.pos,
                    redelivered: e.redelivered,
                },
            );
        }
        Some(Got {
            msg,
            seq: e.seq,
            redelivered: e.redelivered,
            remaining: self.ready.len() as u32,
        })
    }

    /// The next delivery for the next consumer with credit, round-robin
    /// (`load` reads a stored body beyond the read-ahead); None when no
    /// message is ready or no consumer has credit.
    pub fn next_delivery(&mut self, load: impl Fn(Position) -> Option<MsgRef>) -> Option<Delivery> {
        if self.ready.is_empty() || self.consumers.is_empty() {
            return None;
        }
        let n = self.consumers.len();
        for i in 0..n {
            let idx = (self.rr + i) % n;
            if self.consumers[idx].has_capacity() {
                self.rr = (idx + 1) % n;
                let (e, msg) = self.pop_ready(&load)?;
                self.stats.deliver += 1;
                if e.redelivered {
                    self.stats.redeliver += 1;
                }
                let c = &mut self.consumers[idx];
                c.unsent += 1;
                if c.spec.no_ack {
                    if let Some(p) = e.pos {
                        self.store_ops.push(StoreOp::Ack(p));
                    }
                } else {
                    c.unacked += 1;
                    if let Some(p) = e.pos {
                        self.store_ops.push(StoreOp::Delivered(p));
                    }
                    self.unacked.insert(
                        e.seq,
                        Unacked {
                            msg: msg.clone(),
                            consumer: Some(c.spec.id),
                            pos: e.pos,
                            redelivered: e.redelivered,
                        },
                    );
                }
                return Some(Delivery {
                    consumer: c.spec.id,
                    shard: c.spec.id.shard(),
                    seq: e.seq,
                    redelivered: e.redelivered,
                    msg,
                });
            }
        }
        None
    }

    /// A delivery could not be handed to its consumer (channel gone): put it
    /// back and forget that consumer.
    pub fn undeliverable(&mut self, d: Delivery) {
        self.cancel(d.consumer);
        // Whether it was tracked as unacked or not (no-ack), the client never
        // saw it, so it goes back to the queue. (A no-ack delivery was
        // already released from the store: it comes back in memory only.)
        let stored = self.unacked.remove(&d.seq).and_then(|u| u.pos);
        let at = self.ready.partition_point(|x| x.seq < d.seq);
        self.ready.insert(
            at,
            Entry {
                seq: d.seq,
                msg: Some(d.msg),
                pos: stored,
                redelivered: d.redelivered,
            },
        );
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
            c.paused = true;
        }
        self.stats.deliver = self.stats.deliver.saturating_sub(1);
        let redelivered = u.redelivered;
        if redelivered {
            self.stats.redeliver = self.stats.redeliver.saturating_sub(1);
        }
        let at = self.ready.partition_point(|x| x.seq < seq);
        self.ready.insert(
            at,
            Entry {
                seq,
                msg: Some(u.msg),
                pos: u.pos,
                redelivered,
            },
        );
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
mod tests {
    use super::*;
    use crate::ids::ConnId;
    use crate::message::Message;
    use amq_protocol::types::FieldTable;
    use bytes::Bytes;
    use std::sync::Arc;

    fn q() -> Queue {
        Queue::new(QueueDef {
            id: QueueId(1),
            vhost: "/".into(),
            name: "q".into(),
            home: ShardId(0),
            durable: false,
            exclusive_owner: None,
            auto_delete: false,
            args: FieldTable::default(),
        })
    }
    fn msg(b: &'static str) -> MsgRef {
        Arc::new(Message {
            exchange: "".into(),
            routing_key: "q".into(),
            props: Bytes::from_static(&[0, 0]),
            body: Bytes::from_static(b.as_bytes()),
            persistent: false,
        })
    }
    /// Transient messages are all in memory: nothing is ever loaded.
    fn no_store(_: Position) -> Option<MsgRef> {
        None
    }
    fn pos(off: u32) -> Position {
        Position {
            seg: crate::ids::SegmentId(1),
            off,
        }
    }
    fn consumer(id: u64, prefetch: u16) -> ConsumerSpec {
        ConsumerSpec {
            id: ConsumerId(id),
            conn: ConnId(0),
            channel: 1,
            tag: format!("c{id}"),
            no_ack: false,
            exclusive: false,
            prefetch,
        }
    }

    #[test]
    fn prefetch_limits_unacked_and_round_robin_alternates() {
        let mut q = q();
        for b in ["a", "b", "c", "d", "e"] {
            q.publish(msg(b), None);
        }
        q.consume(consumer(1, 1)).unwrap();
        q.consume(consumer(2, 1)).unwrap();
        let d1 = q.next_delivery(no_store).unwrap();
        let d2 = q.next_delivery(no_store).unwrap();
        assert_eq!((d1.consumer, d2.consumer), (ConsumerId(1), ConsumerId(2)));
        assert!(q.next_delivery(no_store).is_none());
        q.settle(&[d1.seq], Settle::Ack);
        assert_eq!(q.next_delivery(no_store).unwrap().consumer, ConsumerId(1));
    }

    #[test]
    fn requeue_restores_original_order_with_redelivered_flag() {
        let mut q = q();
        for b in ["a", "b", "c"] {
            q.publish(msg(b), None);
        }
        let a = q.get(false, no_store).unwrap();
        let b = q.get(false, no_store).unwrap();
        q.settle(&[b.seq, a.seq], Settle::Requeue);
        let first = q.get(true, no_store).unwrap();
        assert_eq!(&first.msg.body[..], b"a");
        assert!(first.redelivered);
        assert_eq!(&q.get(true, no_store).unwrap().msg.body[..], b"b");
        assert!(!q.get(true, no_store).unwrap().redelivered);
    }

    #[test]
    fn returned_delivery_goes_back_in_place_unmarked_and_pauses_the_consumer() {
        let mut q = q();
        for b in ["a", "b"] {
            q.publish(msg(b), None);
        }
        q.consume(consumer(1, 0)).unwrap();
        let d = q.next_delivery(no_store).unwrap();
        q.returned(d.consumer, d.seq);
        assert_eq!((q.message_count(), q.unacked_count()), (2, 0));
        assert!(
            q.next_delivery(no_store).is_none(),
            "a paused consumer gets nothing"
        );
        q.resume(ConsumerId(1));
        let again = q.next_delivery(no_store).unwrap();
        assert_eq!((&again.msg.body[..], again.redelivered), (&b"a"[..], false));
        assert_eq!(q.stats.deliver, 1);
    }

    #[test]
    fn exclusive_consumer_refuses_others() {
        let mut q = q();
        let mut c = consumer(1, 0);
        c.exclusive = true;
        q.consume(c).unwrap();
        assert_eq!(q.consume(consumer(2, 0)).unwrap_err().code, 403);
    }

    #[test]
    fn stored_messages_journal_delivered_then_ack_and_nothing_for_requeue() {
        let mut q = q();
        q.publish(msg("a"), Some(pos(8)));
        q.publish(msg("b"), Some(pos(16)));
        q.consume(consumer(1, 0)).unwrap();
        let a = q.next_delivery(no_store).unwrap();
        let b = q.next_delivery(no_store).unwrap();
        assert_eq!(
            q.take_store_ops().collect::<Vec<_>>(),
            [StoreOp::Delivered(pos(8)), StoreOp::Delivered(pos(16))]
        );
        q.settle(&[a.seq], Settle::Ack);
        q.settle(&[b.seq], Settle::Requeue);
        assert_eq!(
            q.take_store_ops().collect::<Vec<_>>(),
            [StoreOp::Ack(pos(8))]
        );
        assert_eq!(q.purge(), 1);
        assert_eq!(
            q.take_store_ops().collect::<Vec<_>>(),
            [StoreOp::Ack(pos(16))]
        );
    }

    #[test]
    fn an_unreadable_stored_message_is_dropped_as_acked_and_the_next_one_served() {
        let mut q = q();
        q.recover(vec![(pos(8), false), (pos(16), true)]);
        let body = msg("b");
        let got = q
            .get(true, |p| (p == pos(16)).then(|| body.clone()))
            .unwrap();
        assert_eq!((&got.msg.body[..], got.redelivered), (&b"b"[..], true));
        assert_eq!(
            q.take_store_ops().collect::<Vec<_>>(),
            [StoreOp::Ack(pos(8)), StoreOp::Ack(pos(16))]
        );
    }
}

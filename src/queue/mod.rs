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

use crate::ids::{ConsumerId, QueueId, ShardId};
use crate::mailbox::{ConsumerSpec, Got, Settle};
use crate::message::MsgRef;
use crate::meta::defs::QueueDef;
use std::collections::{HashMap, VecDeque};

/// Deliveries in flight to one consumer's socket before credit comes back.
pub const SEND_WINDOW: u32 = 2048;

#[derive(Debug)]
pub struct Entry {
    pub seq: u64,
    pub msg: MsgRef,
    pub redelivered: bool,
}

#[derive(Debug)]
pub struct QConsumer {
    pub spec: ConsumerSpec,
    pub unacked: u32,
    pub unsent: u32,
}

impl QConsumer {
    fn has_capacity(&self) -> bool {
        self.unsent < SEND_WINDOW
            && (self.spec.no_ack || self.spec.prefetch == 0 || self.unacked < self.spec.prefetch as u32)
    }
}

#[derive(Debug)]
struct Unacked {
    msg: MsgRef,
    consumer: Option<ConsumerId>,
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
        }
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

    pub fn publish(&mut self, msg: MsgRef) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.ready.push_back(Entry { seq, msg, redelivered: false });
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
        self.consumers.push(QConsumer { spec, unacked: 0, unsent: 0 });
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

    pub fn settle(&mut self, seqs: &[u64], how: Settle) {
        let mut requeue = Vec::new();
        for seq in seqs {
            let Some(u) = self.unacked.remove(seq) else { continue };
            if let Some(cid) = u.consumer {
                if let Some(c) = self.consumers.iter_mut().find(|c| c.spec.id == cid) {
                    c.unacked = c.unacked.saturating_sub(1);
                }
            }
            if how == Settle::Requeue {
                requeue.push(Entry { seq: *seq, msg: u.msg, redelivered: true });
            }
        }
        // Requeued messages go back to their original position (by seq).
        requeue.sort_by_key(|e| e.seq);
        for e in requeue.into_iter().rev() {
            let pos = self.ready.partition_point(|x| x.seq < e.seq);
            self.ready.insert(pos, e);
        }
    }

    pub fn purge(&mut self) -> u32 {
        let n = self.ready.len() as u32;
        self.ready.clear();
        n
    }

    /// basic.get: take the head message.
    pub fn get(&mut self, no_ack: bool) -> Option<Got> {
        let e = self.ready.pop_front()?;
        if !no_ack {
            self.unacked.insert(e.seq, Unacked { msg: e.msg.clone(), consumer: None });
        }
        Some(Got { msg: e.msg, seq: e.seq, redelivered: e.redelivered, remaining: self.ready.len() as u32 })
    }

    /// Hand out as many messages as consumers have credit for, round-robin.
    pub fn next_delivery(&mut self) -> Option<Delivery> {
        if self.ready.is_empty() || self.consumers.is_empty() {
            return None;
        }
        let n = self.consumers.len();
        for i in 0..n {
            let idx = (self.rr + i) % n;
            if self.consumers[idx].has_capacity() {
                self.rr = (idx + 1) % n;
                let e = self.ready.pop_front()?;
                let c = &mut self.consumers[idx];
                c.unsent += 1;
                if !c.spec.no_ack {
                    c.unacked += 1;
                    self.unacked.insert(e.seq, Unacked { msg: e.msg.clone(), consumer: Some(c.spec.id) });
                }
                return Some(Delivery {
                    consumer: c.spec.id,
                    shard: c.spec.id.shard(),
                    seq: e.seq,
                    redelivered: e.redelivered,
                    msg: e.msg,
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
        // saw it, so it goes back to the queue.
        self.unacked.remove(&d.seq);
        let pos = self.ready.partition_point(|x| x.seq < d.seq);
        self.ready.insert(pos, Entry { seq: d.seq, msg: d.msg, redelivered: d.redelivered });
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
            q.publish(msg(b));
        }
        q.consume(consumer(1, 1)).unwrap();
        q.consume(consumer(2, 1)).unwrap();
        let d1 = q.next_delivery().unwrap();
        let d2 = q.next_delivery().unwrap();
        assert_eq!((d1.consumer, d2.consumer), (ConsumerId(1), ConsumerId(2)));
        assert!(q.next_delivery().is_none());
        q.settle(&[d1.seq], Settle::Ack);
        assert_eq!(q.next_delivery().unwrap().consumer, ConsumerId(1));
    }

    #[test]
    fn requeue_restores_original_order_with_redelivered_flag() {
        let mut q = q();
        for b in ["a", "b", "c"] {
            q.publish(msg(b));
        }
        let a = q.get(false).unwrap();
        let b = q.get(false).unwrap();
        q.settle(&[b.seq, a.seq], Settle::Requeue);
        let first = q.get(true).unwrap();
        assert_eq!(&first.msg.body[..], b"a");
        assert!(first.redelivered);
        assert_eq!(&q.get(true).unwrap().msg.body[..], b"b");
        assert!(!q.get(true).unwrap().redelivered);
    }

    #[test]
    fn exclusive_consumer_refuses_others() {
        let mut q = q();
        let mut c = consumer(1, 0);
        c.exclusive = true;
        q.consume(c).unwrap();
        assert_eq!(q.consume(consumer(2, 0)).unwrap_err().code, 403);
    }
}

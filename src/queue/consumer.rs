//! A consumer as its queue sees it: its registration, what it holds
//! (unacked, unsent) and the send window that bounds deliveries in flight
//! to its socket. Pure data: no I/O.

use super::{ConsumerSpec, Queue};
use crate::error::AmqpError;
use crate::ids::ConsumerId;

/// Deliveries in flight to one consumer's socket before credit comes back,
/// in messages (see also [`SEND_WINDOW_BYTES`]).
///
/// Why this size: credit comes back after the consumer's connection wrote
/// the deliveries, through its shard's drain and the mailbox; when the
/// queue's shard is busy reading a publisher, that round trip takes a few
/// ms, and the window must cover it or the consumer receives a fraction of
/// the publish rate while the backlog grows (2048 gave 80% and, with the
/// credit stuck behind publishes, under 10%: issue 14's bad runs, PERF.md).
pub const SEND_WINDOW: u32 = 8192;
/// Body bytes in flight to one consumer's socket before credit comes back:
/// the window's bound on the consumer connection's write buffer for large
/// messages (one message always goes out when nothing is in flight).
pub const SEND_WINDOW_BYTES: u64 = 16 * 1024 * 1024;

/// A consumer at its queue, with its credit.
#[derive(Debug)]
pub struct QConsumer {
    /// As registered by basic.consume.
    pub spec: ConsumerSpec,
    /// Deliveries not yet settled (bounded by `spec.prefetch`).
    pub unacked: u32,
    /// Deliveries not yet written to its socket (bounded by [`SEND_WINDOW`]).
    pub unsent: u32,
    /// Body bytes of those deliveries (bounded by [`SEND_WINDOW_BYTES`]).
    pub unsent_bytes: u64,
    /// Its channel reached the channel-wide prefetch (`basic.qos
    /// global=true`): no dispatch until the channel resumes it.
    pub paused: bool,
}

/// The consumer the next delivery goes to, as an index into `consumers`
/// (kept sorted by priority, highest first, registration order within a
/// priority): round-robin from `rr` among the consumers with capacity,
/// and with consumer priorities (`grouped`: not all priorities equal) only
/// within the highest priority that has one, as RabbitMQ's `x-priority`
/// does (lower priorities get messages while the higher ones are at their
/// prefetch). Without priorities this is the plain round-robin scan.
pub fn next_consumer(consumers: &[QConsumer], rr: usize, grouped: bool) -> Option<usize> {
    let n = consumers.len();
    if !grouped {
        return (0..n)
            .map(|i| (rr + i) % n)
            .find(|&i| consumers[i].has_capacity());
    }
    let mut a = 0;
    while a < n {
        let p = consumers[a].spec.priority;
        let b = a + consumers[a..]
            .iter()
            .take_while(|c| c.spec.priority == p)
            .count();
        let len = b - a;
        let start = if (a..b).contains(&rr) { rr - a } else { 0 };
        if let Some(i) = (0..len)
            .map(|i| a + (start + i) % len)
            .find(|&i| consumers[i].has_capacity())
        {
            return Some(i);
        }
        a = b;
    }
    None
}

impl QConsumer {
    /// May the queue hand this consumer another delivery now? (Not
    /// paused, inside the send window, under its prefetch.)
    pub fn has_capacity(&self) -> bool {
        !self.paused
            && self.unsent < SEND_WINDOW
            && self.unsent_bytes < SEND_WINDOW_BYTES
            && (self.spec.no_ack
                || self.spec.prefetch == 0
                || self.unacked < self.spec.prefetch as u32)
    }
}

/// Single active consumer (`x-single-active-consumer: true`): only the
/// first registered consumer receives; when it goes, the next in
/// registration order takes over once the deliveries the old one still
/// held are settled (acked, or requeued by its channel's close), so the
/// requeued messages go out first and the queue's order holds. (RabbitMQ
/// 3.10 hands over at once; with a channel close, as usual, the requeue
/// follows the cancel immediately and the wait is not noticeable.)
#[derive(Debug, Default)]
pub struct SingleActive {
    /// The consumer that was active and still holds this many unsettled
    /// deliveries; no dispatch until they are settled.
    handover: Option<(ConsumerId, u32)>,
}

impl Queue {
    /// Register a consumer. Errors carry RabbitMQ's texts: 403
    /// ACCESS_REFUSED `queue '<q>' in vhost '<v>' in exclusive use` when an
    /// exclusive consumer is involved, and for any exclusive consumer on a
    /// single-active-consumer queue (as RabbitMQ 3.10 answers).
    pub fn consume(&mut self, spec: ConsumerSpec) -> Result<(), AmqpError> {
        let exclusive_use = || {
            AmqpError::access_refused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                self.def.name, self.def.vhost
            ))
        };
        if spec.exclusive && (!self.consumers.is_empty() || self.single_active.is_some()) {
            return Err(exclusive_use());
        }
        if self.consumers.iter().any(|c| c.spec.exclusive) {
            return Err(exclusive_use());
        }
        // Sorted by priority, highest first; registration order within one
        // (a single-active-consumer queue keeps registration order only).
        let at = if self.single_active.is_some() {
            self.consumers.len()
        } else {
            self.consumers
                .iter()
                .position(|c| c.spec.priority < spec.priority)
                .unwrap_or(self.consumers.len())
        };
        self.consumers.insert(
            at,
            QConsumer {
                spec,
                unacked: 0,
                unsent: 0,
                unsent_bytes: 0,
                paused: false,
            },
        );
        self.consumers_changed();
        self.had_consumer = true;
        Ok(())
    }

    /// Remove a consumer; its unacked messages stay unacked until the
    /// channel settles them (ack or requeue on close), as in RabbitMQ.
    pub fn cancel(&mut self, id: ConsumerId) -> bool {
        let Some(i) = self.consumers.iter().position(|c| c.spec.id == id) else {
            return false;
        };
        let c = self.consumers.remove(i);
        if let (0, Some(sac)) = (i, self.single_active.as_mut()) {
            if c.unacked > 0 {
                sac.handover = Some((id, c.unacked));
            }
        }
        if self.rr >= self.consumers.len() {
            self.rr = 0;
        }
        self.consumers_changed();
        true
    }

    fn consumers_changed(&mut self) {
        self.consumer_priorities = self
            .consumers
            .windows(2)
            .any(|w| w[0].spec.priority != w[1].spec.priority);
    }

    /// One of `consumer`'s unacked deliveries was settled (or taken back).
    pub(super) fn unacked_settled(&mut self, consumer: Option<ConsumerId>) {
        let Some(cid) = consumer else { return };
        if let Some(c) = self.consumers.iter_mut().find(|c| c.spec.id == cid) {
            c.unacked = c.unacked.saturating_sub(1);
            return;
        }
        if let Some(sac) = self.single_active.as_mut() {
            if let Some((h, left)) = sac.handover.as_mut() {
                if *h == cid {
                    *left = left.saturating_sub(1);
                    if *left == 0 {
                        sac.handover = None;
                    }
                }
            }
        }
    }

    /// The index of the consumer the next delivery goes to, if any has
    /// capacity ([`next_consumer`]; with single active consumer, only the
    /// first, and nobody during a handover).
    pub(super) fn dispatch_target(&self) -> Option<usize> {
        match &self.single_active {
            Some(sac) if sac.handover.is_some() => None,
            Some(_) => self
                .consumers
                .first()
                .filter(|c| c.has_capacity())
                .map(|_| 0),
            None => next_consumer(&self.consumers, self.rr, self.consumer_priorities),
        }
    }

    /// With `x-single-active-consumer`: the consumer that receives (the
    /// first registered); None for other queues or without consumers.
    pub fn single_active_consumer(&self) -> Option<&ConsumerSpec> {
        self.single_active.as_ref()?;
        self.consumers.first().map(|c| &c.spec)
    }

    /// True once the last consumer of an auto-delete queue has gone.
    pub fn should_auto_delete(&self) -> bool {
        self.def.auto_delete && self.had_consumer && self.consumers.is_empty()
    }

    /// `n` deliveries to consumer `id`, of `bytes` body bytes, were written
    /// to its socket (or will never be).
    pub fn credit(&mut self, id: ConsumerId, n: u32, bytes: u64) {
        if let Some(c) = self.consumers.iter_mut().find(|c| c.spec.id == id) {
            c.unsent = c.unsent.saturating_sub(n);
            c.unsent_bytes = c.unsent_bytes.saturating_sub(bytes);
        }
    }
}

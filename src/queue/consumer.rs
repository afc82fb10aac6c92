//! A consumer as its queue sees it: its registration, what it holds
//! (unacked, unsent) and the send window that bounds deliveries in flight
//! to its socket. Pure data: no I/O.

use super::ConsumerSpec;

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

//! What a queue decides under load: when its next message is paged to disk
//! instead of kept on the heap, and when its backlog asks for publisher
//! flow control. Both are decisions only (the queue is sans-IO): the home
//! shard writes the page (`store::paging`) and tells every shard about
//! flow (`ShardMsg::QueueFlow`).
//!
//! Flow control (RabbitMQ slows publishers with credit flow; this is the
//! same idea measured where it matters, at the queue): a queue that has
//! consumers and whose ready backlog passes [`FLOW_HIGH_MESSAGES`] or
//! [`FLOW_HIGH_BYTES`] is *in flow*; a connection that publishes to a
//! queue in flow is not read from until the queue's backlog is back under
//! [`FLOW_LOW_MESSAGES`] and [`FLOW_LOW_BYTES`] (hysteresis). So a
//! publisher faster than the consumers converges to their rate and the
//! backlog, and with it end-to-end latency, stays bounded. A queue without
//! consumers is never in flow: its backlog is meant to build up (paging and
//! the memory alarm bound what it costs). A connection that itself
//! consumes is never paused by flow (its acks must keep being read, or its
//! own queue could never drain). Must never: allocate, or look at more
//! than the queue's counters.

use super::{Queue, READ_AHEAD};

/// A queue whose ready messages hold this many body bytes (64 MiB) pages
/// every further message to disk even without memory pressure, so one
/// queue's backlog alone never costs more heap than this.
pub const PAGE_AFTER_BYTES: u64 = 64 * 1024 * 1024;

/// Ready messages from which a queue with consumers is in flow.
pub const FLOW_HIGH_MESSAGES: usize = 10_000;
/// Ready body bytes (16 MiB) from which a queue with consumers is in flow.
pub const FLOW_HIGH_BYTES: u64 = 16 * 1024 * 1024;
/// A queue in flow leaves it below this many ready messages...
pub const FLOW_LOW_MESSAGES: usize = FLOW_HIGH_MESSAGES / 2;
/// ...and below this many ready body bytes (8 MiB).
pub const FLOW_LOW_BYTES: u64 = FLOW_HIGH_BYTES / 2;

/// A queue's flow state (see the module documentation).
#[derive(Debug, Default)]
pub struct Flow {
    on: bool,
}

impl Flow {
    /// The next state for a queue with or without `consumers` and a ready
    /// backlog of `messages` / `bytes`; Some(new state) when it changes.
    pub fn update(&mut self, consumers: bool, messages: usize, bytes: u64) -> Option<bool> {
        let next = consumers
            && if self.on {
                messages >= FLOW_LOW_MESSAGES || bytes >= FLOW_LOW_BYTES
            } else {
                messages > FLOW_HIGH_MESSAGES || bytes > FLOW_HIGH_BYTES
            };
        (next != self.on).then(|| {
            self.on = next;
            next
        })
    }

    /// In flow now.
    pub fn on(&self) -> bool {
        self.on
    }
}

impl Queue {
    /// Whether the next message this queue takes should be paged to disk
    /// (`store::paging`) rather than kept on the heap: beyond the
    /// read-ahead, when the node's memory use is past the paging threshold
    /// (`pressure`, `vm_memory_high_watermark_paging_ratio`) or the
    /// backlog's body bytes are past [`PAGE_AFTER_BYTES`].
    pub fn wants_page(&self, pressure: bool) -> bool {
        self.ready.len() >= READ_AHEAD && (pressure || self.ready.bytes() >= PAGE_AFTER_BYTES)
    }

    /// Page out up to `budget` ready messages still held only in memory
    /// past the read-ahead (those that arrived before memory pressure
    /// began): `write` stores a body in the page area and returns its
    /// position (None: the disk cannot take it; the pass stops). Returns
    /// how many were paged. A pass that finds none left marks the queue
    /// clean, so later passes cost nothing until a message enters
    /// resident past the read-ahead again.
    pub fn page_out(
        &mut self,
        budget: usize,
        mut write: impl FnMut(&crate::message::MsgRef) -> Option<crate::store::Position>,
    ) -> usize {
        if !self.ready.resident_tail {
            return 0;
        }
        if self.ready.len() <= READ_AHEAD {
            self.ready.resident_tail = false;
            return 0;
        }
        let mut n = 0;
        let mut exhausted = true;
        for e in self.ready.iter_mut().skip(READ_AHEAD) {
            if e.pos.is_some() {
                continue;
            }
            let Some(m) = e.msg.as_ref() else { continue };
            if n == budget {
                exhausted = false;
                break;
            }
            let Some(p) = write(m) else {
                exhausted = false;
                break;
            };
            e.pos = Some(p);
            e.msg = None;
            n += 1;
        }
        if exhausted {
            self.ready.resident_tail = false;
        }
        n
    }

    /// Re-evaluate flow control after the backlog or the consumers
    /// changed; Some(new state) when publishers must be told.
    pub fn flow_update(&mut self) -> Option<bool> {
        self.flow.update(
            !self.consumers.is_empty(),
            self.ready.len(),
            self.ready.bytes(),
        )
    }

    /// In flow (publishers to it are paused).
    pub fn in_flow(&self) -> bool {
        self.flow.on()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_starts_above_the_high_mark_and_ends_below_the_low_one() {
        let mut f = Flow::default();
        assert_eq!(f.update(true, FLOW_HIGH_MESSAGES, 0), None);
        assert_eq!(f.update(true, FLOW_HIGH_MESSAGES + 1, 0), Some(true));
        assert_eq!(f.update(true, FLOW_LOW_MESSAGES, 0), None, "hysteresis");
        assert_eq!(f.update(true, FLOW_LOW_MESSAGES - 1, 0), Some(false));
        assert_eq!(f.update(true, 10, FLOW_HIGH_BYTES + 1), Some(true));
        assert_eq!(
            f.update(false, 10, FLOW_HIGH_BYTES + 1),
            Some(false),
            "no consumers, no flow"
        );
        assert_eq!(f.update(false, usize::MAX, u64::MAX), None);
    }
}

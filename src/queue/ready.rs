//! A queue's ready messages: one FIFO lane, or one lane per priority level
//! for a priority queue (`x-max-priority`, RabbitMQ's classic priority
//! queue).
//!
//! Owns: the order in which ready messages leave (highest lane first, FIFO
//! within a lane; a requeued message goes back to its place in its lane by
//! queue sequence number), and the counts the queue's limits and expiry
//! need (messages, body bytes, entries with an expiry). A queue without
//! `x-max-priority` has one lane, so a plain queue pays one bounds-checked
//! index per operation and nothing per message. Must never: allocate per
//! message beyond the lane's growth, or look at more than the lanes' heads
//! to find the next message (`top` remembers the highest lane that may
//! hold one, so a pop skips empty lanes once, not every time).

use crate::message::MsgRef;
use crate::store::Position;
use std::collections::{BTreeMap, VecDeque};

/// A ready message.
#[derive(Debug)]
pub struct Entry {
    /// Queue sequence number: the queue's order, and the delivery's id.
    pub seq: u64,
    /// None when only on disk (beyond the read-ahead, or recovered).
    pub msg: Option<MsgRef>,
    /// Where it is stored (a persistent message in a durable queue).
    pub pos: Option<Position>,
    /// Delivered before (requeued, or recovered as delivered).
    pub redelivered: bool,
    /// When it expires, in ms since the Unix epoch; 0 = never (no TTL).
    pub expires: u64,
    /// Body size, in bytes (for `x-max-length-bytes`).
    pub size: u32,
    /// Its priority lane: the message's `priority` property capped at the
    /// queue's `x-max-priority` (0 in a queue without priorities).
    pub lane: u8,
    /// Times delivered before (and come back); see `delivery_count`.
    pub deliveries: u32,
}

impl Entry {
    /// Expired at `now` (ms since the epoch): strictly after its expiry,
    /// so a TTL of 0 still lets a consumer that can take the message now
    /// have it (RabbitMQ).
    pub fn expired(&self, now: u64) -> bool {
        self.expires != 0 && now > self.expires
    }
}

/// The ready messages of one queue (see the module documentation).
#[derive(Debug)]
pub struct Ready {
    lanes: Vec<VecDeque<Entry>>,
    /// A delayed-message exchange's store: entries by (release time,
    /// sequence), so a message with any delay goes in and the next due
    /// comes out in O(log n) (a peer choosing delays cannot make an insert
    /// move the whole backlog). Empty, and never allocated, otherwise.
    timed: BTreeMap<(u64, u64), Entry>,
    /// Highest lane that may be non-empty.
    top: usize,
    len: usize,
    bytes: u64,
    expiring: usize,
    /// An entry held only in memory may sit past the read-ahead (set when
    /// one enters there; cleared by a page-out pass that found none), so a
    /// page-out pass under memory pressure skips queues with nothing to do
    /// instead of walking their whole backlog.
    pub resident_tail: bool,
}

impl Ready {
    /// Ready lists for a queue with `x-max-priority` = `max_priority`
    /// (None: one lane, a plain FIFO queue; RabbitMQ accepts 0-255).
    pub fn new(max_priority: Option<u8>) -> Self {
        let levels = max_priority.map_or(1, |m| usize::from(m) + 1);
        Ready {
            lanes: (0..levels).map(|_| VecDeque::new()).collect(),
            timed: BTreeMap::new(),
            top: 0,
            len: 0,
            bytes: 0,
            expiring: 0,
            resident_tail: false,
        }
    }

    /// The lane of a message with `priority` (RabbitMQ: a missing priority
    /// is 0, one above the maximum counts as the maximum).
    pub fn lane_of(&self, priority: u8) -> u8 {
        priority.min((self.lanes.len() - 1) as u8)
    }

    /// A priority queue (more than one lane).
    pub fn has_priorities(&self) -> bool {
        self.lanes.len() > 1
    }

    /// Ready messages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No ready message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Body bytes of the ready messages.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Ready messages with an expiry.
    pub fn expiring(&self) -> usize {
        self.expiring
    }

    fn entered(&mut self, e: &Entry) {
        self.len += 1;
        if self.len > super::READ_AHEAD && e.pos.is_none() {
            self.resident_tail = true;
        }
        self.bytes += u64::from(e.size);
        if e.expires != 0 {
            self.expiring += 1;
        }
        self.top = self.top.max(usize::from(e.lane));
    }

    fn left(&mut self, e: &Entry) {
        self.len -= 1;
        self.bytes -= u64::from(e.size);
        if e.expires != 0 {
            self.expiring -= 1;
        }
    }

    fn lane_mut(&mut self, lane: u8) -> &mut VecDeque<Entry> {
        let last = self.lanes.len() - 1;
        &mut self.lanes[usize::from(lane).min(last)]
    }

    /// Append a new message at the tail of its lane.
    pub fn push_back(&mut self, e: Entry) {
        self.entered(&e);
        self.lane_mut(e.lane).push_back(e);
    }

    /// Put a message back at its place in its lane (by sequence number):
    /// requeues and undelivered messages keep their original order.
    pub fn insert(&mut self, e: Entry) {
        self.entered(&e);
        let lane = self.lane_mut(e.lane);
        let at = lane.partition_point(|x| x.seq < e.seq);
        lane.insert(at, e);
    }

    /// Put a message at its place by expiry (then sequence): a
    /// delayed-message exchange's store, released in time order (a store
    /// uses only this order, never the lanes).
    pub fn insert_by_expiry(&mut self, e: Entry) {
        self.entered(&e);
        self.timed.insert((e.expires, e.seq), e);
    }

    /// Take the next message: the head of the highest non-empty lane.
    pub fn pop_front(&mut self) -> Option<Entry> {
        if self.len == 0 {
            return None;
        }
        if let Some((_, e)) = self.timed.pop_first() {
            self.left(&e);
            return Some(e);
        }
        while self.top > 0 && self.lanes[self.top].is_empty() {
            self.top -= 1;
        }
        let e = self.lanes[self.top].pop_front()?;
        self.left(&e);
        Some(e)
    }

    /// Take one message whose lane head has expired at `now`, if any (each
    /// lane expires from its head, as RabbitMQ's priority queue does per
    /// priority; a plain queue looks at one head).
    pub fn pop_expired(&mut self, now: u64) -> Option<Entry> {
        if self.expiring == 0 {
            return None;
        }
        if self
            .timed
            .first_key_value()
            .is_some_and(|(_, e)| e.expired(now))
        {
            return self.pop_front();
        }
        let lane = self
            .lanes
            .iter()
            .position(|l| l.front().is_some_and(|e| e.expired(now)))?;
        let e = self.lanes[lane].pop_front()?;
        self.left(&e);
        Some(e)
    }

    /// Every ready message, lane by lane (no particular order across lanes).
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.lanes.iter().flatten().chain(self.timed.values())
    }

    /// Every ready message, mutably, lane by lane, then the delay store's
    /// (for paging bodies out; nothing that changes the counts or order).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.lanes
            .iter_mut()
            .flatten()
            .chain(self.timed.values_mut())
    }

    /// Remove every ready message (queue.purge).
    pub fn take_all(&mut self) -> Vec<Entry> {
        let mut out = Vec::with_capacity(self.len);
        for l in &mut self.lanes {
            out.extend(l.drain(..));
        }
        out.extend(std::mem::take(&mut self.timed).into_values());
        self.len = 0;
        self.bytes = 0;
        self.expiring = 0;
        self.top = 0;
        out
    }

    /// Release a drained backlog's peak capacity (a lane keeps at most
    /// room for 1024 entries once empty).
    pub fn shrink(&mut self) {
        for l in &mut self.lanes {
            if l.is_empty() && l.capacity() > 64 * 1024 {
                l.shrink_to(1024);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, lane: u8) -> Entry {
        Entry {
            seq,
            msg: None,
            pos: None,
            redelivered: false,
            expires: 0,
            size: 1,
            lane,
            deliveries: 0,
        }
    }

    fn order(r: &mut Ready) -> Vec<u64> {
        std::iter::from_fn(|| r.pop_front().map(|e| e.seq)).collect()
    }

    #[test]
    fn higher_lanes_leave_first_and_fifo_within_a_lane() {
        let mut r = Ready::new(Some(5));
        for (seq, p) in [
            (1, 0u8),
            (2, 1),
            (3, 9),
            (4, 5),
            (5, 0),
            (6, 3),
            (7, 5),
            (8, 200),
        ] {
            let lane = r.lane_of(p);
            r.push_back(entry(seq, lane));
        }
        assert_eq!((r.len(), r.bytes()), (8, 8));
        // RabbitMQ 3.10's order for the same publishes (priorities above
        // the maximum count as the maximum).
        assert_eq!(order(&mut r), [3, 4, 7, 8, 6, 2, 1, 5]);
        assert!(r.is_empty() && r.bytes() == 0);
    }

    #[test]
    fn a_requeued_message_goes_back_to_its_place_in_its_lane() {
        let mut r = Ready::new(Some(3));
        r.push_back(entry(1, 1));
        r.push_back(entry(2, 2));
        r.push_back(entry(3, 3));
        let first = r.pop_front().unwrap();
        assert_eq!(first.seq, 3);
        r.push_back(entry(4, 3));
        r.insert(first);
        assert_eq!(order(&mut r), [3, 4, 2, 1]);
    }

    #[test]
    fn a_plain_queue_is_one_fifo_lane() {
        let mut r = Ready::new(None);
        assert_eq!(r.lane_of(255), 0);
        for seq in 1..=4 {
            r.push_back(entry(seq, 0));
        }
        let two = {
            r.pop_front();
            r.pop_front().unwrap()
        };
        r.insert(two);
        assert_eq!(order(&mut r), [2, 3, 4]);
    }

    #[test]
    fn a_delay_store_releases_by_time_whatever_the_insertion_order() {
        let mut r = Ready::new(None);
        for (seq, expires) in [(1, 300), (2, 100), (3, 200), (4, 100)] {
            let mut e = entry(seq, 0);
            e.expires = expires;
            r.insert_by_expiry(e);
        }
        assert!(r.pop_expired(100).is_none(), "due strictly after its time");
        assert_eq!(r.pop_expired(101).map(|e| e.seq), Some(2));
        assert_eq!(r.pop_expired(101).map(|e| e.seq), Some(4));
        assert!(r.pop_expired(101).is_none());
        assert_eq!(r.iter().count(), 2);
        assert_eq!(order(&mut r), [3, 1]);
        assert_eq!((r.len(), r.expiring()), (0, 0));
    }

    #[test]
    fn expiry_looks_at_every_lane_head() {
        let mut r = Ready::new(Some(2));
        let mut e = entry(1, 0);
        e.expires = 10;
        r.push_back(e);
        let mut e = entry(2, 2);
        e.expires = 100;
        r.push_back(e);
        assert_eq!(r.expiring(), 2);
        assert!(r.pop_expired(5).is_none());
        assert_eq!(r.pop_expired(11).map(|e| e.seq), Some(1));
        assert!(r.pop_expired(11).is_none());
        assert_eq!(r.expiring(), 1);
        assert_eq!(r.take_all().len(), 1);
        assert_eq!((r.len(), r.expiring()), (0, 0));
    }
}

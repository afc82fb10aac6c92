//! What every message carries, and what we remember about what arrived.
//!
//! Body layout (little-endian, first 16 bytes, so the smallest body is 16 B):
//! `[0..8)` intended send time in nanoseconds since the run's monotonic
//! origin, `[8..14)` the publisher's sequence number (48 bits), `[14..16)`
//! the publisher id.

use hdrhistogram::Histogram;

pub const STAMP_LEN: usize = 16;
const SEQ_MASK: u64 = (1 << 48) - 1;

pub fn stamp(dst: &mut [u8], t: u64, seq: u64, publisher: u16) {
    dst[0..8].copy_from_slice(&t.to_le_bytes());
    dst[8..14].copy_from_slice(&(seq & SEQ_MASK).to_le_bytes()[..6]);
    dst[14..16].copy_from_slice(&publisher.to_le_bytes());
}

pub fn read_stamp(b: &[u8]) -> Option<(u64, u64, u16)> {
    if b.len() < STAMP_LEN {
        return None;
    }
    let t = u64::from_le_bytes(b[0..8].try_into().ok()?);
    let mut s = [0u8; 8];
    s[..6].copy_from_slice(&b[8..14]);
    Some((t, u64::from_le_bytes(s), u16::from_le_bytes([b[14], b[15]])))
}

/// A growable bitset of sequence numbers.
#[derive(Default, Clone, Debug)]
pub struct Bits {
    words: Vec<u64>,
}

impl Bits {
    /// Set bit `i`; returns whether it was already set.
    pub fn set(&mut self, i: u64) -> bool {
        let w = (i / 64) as usize;
        if w >= self.words.len() {
            self.words.resize((w + 1).max(self.words.len() * 2), 0);
        }
        let m = 1u64 << (i % 64);
        let was = self.words[w] & m != 0;
        self.words[w] |= m;
        was
    }

    pub fn get(&self, i: u64) -> bool {
        self.words
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// OR `other` into self; returns how many bits were set in both.
    pub fn merge(&mut self, other: &Bits) -> u64 {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        let mut both = 0;
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            both += (*a & *b).count_ones() as u64;
            *a |= *b;
        }
        both
    }
}

/// One consumer's view of one publisher's stream.
#[derive(Default, Clone, Debug)]
pub struct Seen {
    pub bits: Bits,
    last: Option<u64>,
    pub count: u64,
    pub dups: u64,
    pub reordered: u64,
    pub redelivered: u64,
}

impl Seen {
    pub fn mark(&mut self, seq: u64, redelivered: bool) {
        self.count += 1;
        if redelivered {
            self.redelivered += 1;
            self.bits.set(seq);
            return;
        }
        if self.bits.set(seq) {
            self.dups += 1;
        }
        if let Some(l) = self.last {
            if seq < l {
                self.reordered += 1;
            }
        }
        self.last = Some(self.last.map_or(seq, |l| l.max(seq)));
    }
}

pub const HIST_MAX_NS: u64 = 3_600_000_000_000;

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("histogram bounds")
}

/// A per-second histogram (swapped out by the reporter) and a whole-run one
/// (only values whose intended time is inside the measured window).
pub struct Hists {
    pub interval: Histogram<u64>,
    pub total: Histogram<u64>,
}

impl Default for Hists {
    fn default() -> Self {
        Hists {
            interval: new_hist(),
            total: new_hist(),
        }
    }
}

impl Hists {
    #[inline]
    pub fn record(&mut self, v: u64, in_window: bool) {
        let v = v.clamp(1, HIST_MAX_NS);
        let _ = self.interval.record(v);
        if in_window {
            let _ = self.total.record(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_in_16_bytes() {
        let mut b = [0u8; 16];
        stamp(&mut b, 123_456_789_012, (1 << 48) - 2, 65_000);
        assert_eq!(
            read_stamp(&b),
            Some((123_456_789_012, (1 << 48) - 2, 65_000))
        );
        assert_eq!(read_stamp(&b[..15]), None);
    }

    #[test]
    fn seen_counts_duplicates_and_reordering_but_not_redeliveries() {
        let mut s = Seen::default();
        for q in [0, 1, 2, 2, 5, 4, 6] {
            s.mark(q, false);
        }
        s.mark(1, true);
        assert_eq!((s.count, s.dups, s.reordered, s.redelivered), (8, 1, 1, 1));
        assert!(s.bits.get(5) && !s.bits.get(3));
    }

    #[test]
    fn merging_bitsets_reports_overlap() {
        let mut a = Bits::default();
        let mut b = Bits::default();
        for i in [1, 64, 1000] {
            a.set(i);
        }
        for i in [64, 2000] {
            b.set(i);
        }
        assert_eq!(a.merge(&b), 1);
        assert!(a.get(2000) && a.get(1) && !a.get(2));
    }
}

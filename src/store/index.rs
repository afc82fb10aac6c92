//! A durable queue's index: an append-only file of 16-byte entries
//! `[kind: u8][0; 3][segment: u32][offset: u32][crc32c of the first 12: u32]`
//! recording where each of its messages lives, which were delivered and
//! which were acked. Replaying it yields the queue's messages in order.
//!
//! Entries are buffered in memory and written at group commit; a torn or
//! corrupt tail entry fails its checksum and the file is truncated there.

use super::Position;
use crate::error::InfraError;
use crate::ids::SegmentId;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const ENTRY: usize = 16;
const ENQ: u8 = 1;
const DEL: u8 = 2;
const ACK: u8 = 3;
/// Rewrite the file once it holds this many more entries than live ones.
const COMPACT_SLACK: u64 = 1 << 20;

pub struct QueueIndex {
    pub path: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// Entries in the file (and buffer), and live (enqueued, unacked) ones.
    entries: u64,
    live: u64,
}

/// What replay found: live positions in publish order, with a flag for
/// those that had been delivered (they come back redelivered).
pub struct Replay {
    pub live: Vec<(Position, bool)>,
}

fn io(path: &Path, source: std::io::Error) -> InfraError {
    InfraError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn encode(kind: u8, pos: Position, out: &mut Vec<u8>) {
    let mut e = [0u8; ENTRY];
    e[0] = kind;
    e[4..8].copy_from_slice(&(pos.seg.0 as u32).to_le_bytes());
    e[8..12].copy_from_slice(&pos.off.to_le_bytes());
    let crc = crc32c::crc32c(&e[..12]);
    e[12..16].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&e);
}

impl QueueIndex {
    /// Open (creating if needed) and replay the index at `path`.
    pub fn open(path: PathBuf) -> Result<(QueueIndex, Replay), InfraError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(|e| io(&path, e))?;
        let mut order: BTreeMap<u64, (Position, bool)> = BTreeMap::new();
        let mut by_pos: std::collections::HashMap<Position, u64> = std::collections::HashMap::new();
        let mut n = 0u64;
        let mut valid_end = 0usize;
        for (i, e) in data.chunks(ENTRY).enumerate() {
            if e.len() < ENTRY
                || crc32c::crc32c(&e[..12]) != u32::from_le_bytes([e[12], e[13], e[14], e[15]])
            {
                tracing::warn!(file = %path.display(), offset = i * ENTRY, "torn or corrupt index entry: truncating here");
                break;
            }
            valid_end = (i + 1) * ENTRY;
            let pos = Position {
                seg: SegmentId(u32::from_le_bytes([e[4], e[5], e[6], e[7]]) as u64),
                off: u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
            };
            match e[0] {
                ENQ => {
                    order.insert(n, (pos, false));
                    by_pos.insert(pos, n);
                }
                DEL => {
                    if let Some(k) = by_pos.get(&pos) {
                        if let Some(v) = order.get_mut(k) {
                            v.1 = true;
                        }
                    }
                }
                ACK => {
                    if let Some(k) = by_pos.remove(&pos) {
                        order.remove(&k);
                    }
                }
                _ => {}
            }
            n += 1;
        }
        if valid_end < data.len() {
            file.set_len(valid_end as u64).map_err(|e| io(&path, e))?;
        }
        let live: Vec<(Position, bool)> = order.into_values().collect();
        let idx = QueueIndex {
            path,
            file,
            buf: Vec::new(),
            entries: n,
            live: live.len() as u64,
        };
        Ok((idx, Replay { live }))
    }

    pub fn enqueue(&mut self, pos: Position) {
        encode(ENQ, pos, &mut self.buf);
        self.entries += 1;
        self.live += 1;
    }
    pub fn delivered(&mut self, pos: Position) {
        encode(DEL, pos, &mut self.buf);
        self.entries += 1;
    }
    pub fn ack(&mut self, pos: Position) {
        encode(ACK, pos, &mut self.buf);
        self.entries += 1;
        self.live = self.live.saturating_sub(1);
    }

    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Write buffered entries to the file (page cache); durable after sync.
    pub fn write_pending(&mut self) -> Result<(), InfraError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.buf);
        self.buf.clear();
        r.map_err(|e| io(&self.path, e))
    }

    pub fn sync_handle(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }

    pub fn needs_compaction(&self) -> bool {
        self.entries > self.live * 2 + COMPACT_SLACK
    }

    /// Rewrite the file with only `live` entries (write, fsync, rename).
    pub fn compact(&mut self, live: &[(Position, bool)]) -> Result<(), InfraError> {
        self.write_pending()?;
        let tmp = self.path.with_extension("compact");
        let mut out = Vec::with_capacity(live.len() * ENTRY * 2);
        for (p, delivered) in live {
            encode(ENQ, *p, &mut out);
            if *delivered {
                encode(DEL, *p, &mut out);
            }
        }
        let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(&out).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io(&self.path, e))?;
        self.file = OpenOptions::new()
            .append(true)
            .read(true)
            .open(&self.path)
            .map_err(|e| io(&self.path, e))?;
        self.entries = (out.len() / ENTRY) as u64;
        self.live = live.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(seg: u64, off: u32) -> Position {
        Position {
            seg: SegmentId(seg),
            off,
        }
    }

    #[test]
    fn replay_returns_unacked_in_order_with_delivered_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.idx");
        let (mut idx, r) = QueueIndex::open(path.clone()).unwrap();
        assert!(r.live.is_empty());
        for i in 0..5 {
            idx.enqueue(p(1, i * 100));
        }
        idx.delivered(p(1, 100));
        idx.ack(p(1, 0));
        idx.ack(p(1, 300));
        idx.write_pending().unwrap();
        drop(idx);
        let (_, r) = QueueIndex::open(path).unwrap();
        assert_eq!(
            r.live,
            vec![(p(1, 100), true), (p(1, 200), false), (p(1, 400), false)]
        );
    }

    #[test]
    fn torn_tail_entry_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.idx");
        let (mut idx, _) = QueueIndex::open(path.clone()).unwrap();
        idx.enqueue(p(1, 0));
        idx.enqueue(p(1, 8));
        idx.write_pending().unwrap();
        drop(idx);
        // Simulate a partial write of a third entry.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[1, 0, 0, 0, 1]).unwrap();
        let (_, r) = QueueIndex::open(path.clone()).unwrap();
        assert_eq!(r.live.len(), 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
    }

    #[test]
    fn compaction_keeps_only_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.idx");
        let (mut idx, _) = QueueIndex::open(path.clone()).unwrap();
        for i in 0..100 {
            idx.enqueue(p(1, i));
        }
        for i in 0..99 {
            idx.ack(p(1, i));
        }
        idx.compact(&[(p(1, 99), true)]).unwrap();
        idx.enqueue(p(2, 0));
        idx.write_pending().unwrap();
        drop(idx);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * ENTRY as u64);
        let (_, r) = QueueIndex::open(path).unwrap();
        assert_eq!(r.live, vec![(p(1, 99), true), (p(2, 0), false)]);
    }
}

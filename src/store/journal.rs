//! The shard's queue journal: one append-only file, `queues.journal`, that
//! records for every durable queue homed on this shard where each of its
//! messages lives, which were delivered and which were acked.
//!
//! Entry (32 bytes, little endian):
//! `[kind: u8][0; 3][offset: u32][queue: u64][segment: u64][count: u32][crc32c of bytes 0..28: u32]`
//!
//! `count` is used by `DEL`: how many times the message has been delivered
//! (journals written before it existed hold 0 there, read as 1), so a
//! poison message's delivery count survives a restart. In an `ENQ` entry
//! the three bytes after `kind` and the `count` field hold the message's
//! expiry (ms since the epoch, 56 bits; 0 = none), so a TTL deadline
//! survives a restart too.
//!
//! Kinds: `ENQ`/`DEL`/`ACK` (queue, position), `DROP` (queue deleted: forget
//! every entry of that queue so far) and `SEG` (segment number created:
//! segment numbers are never reused, even after every segment file was
//! deleted, so a stale position can never name a newer record).
//!
//! Why one file per shard instead of one per queue: queue identities are
//! the authority's [`QueueId`]s, never names, so a deleted queue and a new
//! queue of the same name cannot share entries; one descriptor serves any
//! number of queues (no per-queue open file to run out of); and a group
//! commit syncs one journal however many queues it touched.
//!
//! Writes: entries are buffered and written with `pwrite` at the known good
//! length. A failed write (disk full) keeps the buffer and cuts the file
//! back, so the next attempt retries the same bytes at the same place and
//! no entry is ever dropped or torn in the middle of the file.
//! Must never: panic on a bad file, or lose a buffered entry on an error.

use super::Position;
use crate::error::InfraError;
use crate::ids::{QueueId, SegmentId};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Size of one journal entry, in bytes.
pub const ENTRY: usize = 32;
const ENQ: u8 = 1;
const DEL: u8 = 2;
const ACK: u8 = 3;
const DROP: u8 = 4;
const SEG: u8 = 5;
/// Rewrite the journal once it holds this many more entries than live ones.
const COMPACT_SLACK: u64 = 1 << 20;

/// The journal's file name in the shard's store directory.
pub const FILE_NAME: &str = "queues.journal";

/// One live message of a durable queue, as recovered (or compacted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// Where its record is.
    pub pos: Position,
    /// Times delivered (0 = never; it is recovered redelivered otherwise).
    pub deliveries: u32,
    /// Its expiry, ms since the epoch (0 = none, or written before expiries
    /// were journalled).
    pub expires: u64,
}

/// One durable queue's live messages, in publish order.
pub type Live = Vec<Recovered>;

/// What replaying the journal found.
#[derive(Default)]
pub struct Replay {
    /// Live messages per queue, in publish order.
    pub queues: HashMap<QueueId, Live>,
    /// Highest segment number the journal has seen created (0 = none).
    pub max_segment: u64,
}

/// The open journal with its buffer of entries not yet written.
pub struct Journal {
    /// `<shard dir>/queues.journal`.
    pub path: PathBuf,
    file: Arc<File>,
    /// Bytes of the file known to hold whole, written entries.
    len: u64,
    buf: Vec<u8>,
    /// Entries in the file and buffer, and live (enqueued, unacked) ones.
    entries: u64,
    live: u64,
    /// Set while a compacted copy is being written: entries stay buffered
    /// (they go into the new file, never into the one being replaced).
    pub compacting: bool,
}

fn io(path: &Path, source: std::io::Error) -> InfraError {
    InfraError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn encode(kind: u8, queue: u64, seg: u64, off: u32, out: &mut Vec<u8>) {
    encode_counted(kind, queue, seg, off, 0, out)
}

fn encode_counted(kind: u8, queue: u64, seg: u64, off: u32, count: u32, out: &mut Vec<u8>) {
    encode_full(kind, queue, seg, off, count, 0, out)
}

/// An `ENQ` entry with the message's expiry (56 bits: `high` bytes 1..4,
/// low 32 bits in `count`).
fn encode_enqueue(queue: u64, pos: Position, expires: u64, out: &mut Vec<u8>) {
    // 2^56 ms is two million years: later deadlines are stored as that.
    let expires = expires.min(0xff_ffff_ffff_ffff);
    let low = (expires & 0xffff_ffff) as u32;
    let high = ((expires >> 32) & 0xff_ffff) as u32;
    encode_full(ENQ, queue, pos.seg.0, pos.off, low, high, out)
}

fn encode_full(kind: u8, queue: u64, seg: u64, off: u32, count: u32, high: u32, out: &mut Vec<u8>) {
    let mut e = [0u8; ENTRY];
    e[0] = kind;
    e[1..4].copy_from_slice(&high.to_le_bytes()[..3]);
    e[4..8].copy_from_slice(&off.to_le_bytes());
    e[8..16].copy_from_slice(&queue.to_le_bytes());
    e[16..24].copy_from_slice(&seg.to_le_bytes());
    e[24..28].copy_from_slice(&count.to_le_bytes());
    let crc = crc32c::crc32c(&e[..28]);
    e[28..32].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&e);
}

/// Per-queue replay state: entries by position (a queue's positions only
/// grow, so this stays sorted and lookups are binary searches).
#[derive(Default)]
struct QueueReplay {
    /// (position, state, expiry): state is `LIVE`, a delivery count, or `GONE`.
    items: Vec<(Position, u32, u64)>,
    dead: usize,
}

const LIVE: u32 = 0;
const GONE: u32 = u32::MAX;

impl QueueReplay {
    fn find(&self, pos: Position) -> Option<usize> {
        self.items.binary_search_by(|(p, _, _)| p.cmp(&pos)).ok()
    }
    fn enq(&mut self, pos: Position, expires: u64) {
        match self.items.last() {
            Some((last, _, _)) if *last >= pos => {
                // Not in order (never written so, but tolerate it).
                match self.items.binary_search_by(|(p, _, _)| p.cmp(&pos)) {
                    Ok(i) => self.items[i] = (pos, LIVE, expires),
                    Err(i) => self.items.insert(i, (pos, LIVE, expires)),
                }
            }
            _ => self.items.push((pos, LIVE, expires)),
        }
    }
    fn set(&mut self, pos: Position, state: u32) {
        if let Some(i) = self.find(pos) {
            let cur = self.items[i].1;
            if cur != GONE {
                if state == GONE {
                    self.dead += 1;
                    self.items[i].1 = GONE;
                } else {
                    // A delivery count only grows.
                    self.items[i].1 = cur.max(state);
                }
            }
        }
        // Drop acked entries in bulk so a long journal replays in bounded memory.
        if self.dead > 4096 && self.dead * 2 > self.items.len() {
            self.items.retain(|(_, s, _)| *s != GONE);
            self.dead = 0;
        }
    }
    fn live(self) -> Live {
        self.items
            .into_iter()
            .filter(|(_, s, _)| *s != GONE)
            .map(|(pos, deliveries, expires)| Recovered {
                pos,
                deliveries,
                expires,
            })
            .collect()
    }
}

/// Decode every whole, checksummed entry of `data`; stops at the first bad
/// one (a torn tail). Returns the replay, the length of the good prefix in
/// bytes, and the number of entries in it.
pub fn replay(data: &[u8], path: &Path) -> (Replay, usize, u64) {
    let mut queues: HashMap<QueueId, QueueReplay> = HashMap::new();
    let mut max_segment = 0;
    let mut good = 0usize;
    let mut n = 0u64;
    for (i, e) in data.chunks(ENTRY).enumerate() {
        let crc_ok = e.len() == ENTRY
            && crc32c::crc32c(&e[..28]) == u32::from_le_bytes([e[28], e[29], e[30], e[31]]);
        if !crc_ok {
            tracing::warn!(file = %path.display(), offset = i * ENTRY, "torn or corrupt journal entry: truncating here");
            break;
        }
        good = (i + 1) * ENTRY;
        n += 1;
        let off = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let q = QueueId(u64::from_le_bytes(e[8..16].try_into().unwrap_or([0; 8])));
        let seg = u64::from_le_bytes(e[16..24].try_into().unwrap_or([0; 8]));
        let pos = Position {
            seg: SegmentId(seg),
            off,
        };
        match e[0] {
            ENQ => {
                let low = u64::from(u32::from_le_bytes([e[24], e[25], e[26], e[27]]));
                let high = u64::from(u32::from_le_bytes([e[1], e[2], e[3], 0]));
                queues.entry(q).or_default().enq(pos, (high << 32) | low)
            }
            DEL => {
                let count = u32::from_le_bytes([e[24], e[25], e[26], e[27]]);
                queues
                    .entry(q)
                    .or_default()
                    .set(pos, count.clamp(1, GONE - 1))
            }
            ACK => queues.entry(q).or_default().set(pos, GONE),
            DROP => {
                queues.remove(&q);
            }
            SEG if !SegmentId(seg).is_paged() => max_segment = max_segment.max(seg),
            _ => {}
        }
    }
    let queues = queues
        .into_iter()
        .map(|(q, r)| (q, r.live()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    (
        Replay {
            queues,
            max_segment,
        },
        good,
        n,
    )
}

/// A compacted journal's bytes: the segment high-water mark, then every
/// live entry of every queue.
pub fn snapshot_bytes<'a>(
    max_segment: u64,
    queues: impl IntoIterator<Item = (QueueId, &'a [Recovered])>,
) -> (Vec<u8>, u64, u64) {
    let mut out = Vec::new();
    let mut live = 0u64;
    if max_segment > 0 {
        encode(SEG, 0, max_segment, 0, &mut out);
    }
    for (q, items) in queues {
        // Paged transient copies live outside the journal (they do not
        // survive a restart), so a snapshot never names them.
        for r in items.iter().filter(|r| !r.pos.seg.is_paged()) {
            let p = r.pos;
            encode_enqueue(q.0, p, r.expires, &mut out);
            live += 1;
            if r.deliveries > 0 {
                encode_counted(DEL, q.0, p.seg.0, p.off, r.deliveries, &mut out);
            }
        }
    }
    let entries = (out.len() / ENTRY) as u64;
    (out, entries, live)
}

/// Write `bytes` as the new journal at `path`: temporary file, fsync,
/// rename, directory fsync. Returns the opened file. Blocking: run it off
/// the executor except at start-up.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<File, InfraError> {
    let tmp = path.with_extension("journal.tmp");
    let r = (|| {
        let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
        if let Some(d) = path.parent().and_then(|d| File::open(d).ok()) {
            d.sync_all().map_err(|e| io(path, e))?;
        }
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io(path, e))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

impl Journal {
    /// Open (creating if needed) and replay the journal in `dir`.
    pub fn open(dir: &Path) -> Result<(Journal, Replay), InfraError> {
        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(|e| io(&path, e))?;
        let (replay, good, entries) = replay(&data, &path);
        if good < data.len() {
            file.set_len(good as u64).map_err(|e| io(&path, e))?;
        }
        let live = replay.queues.values().map(|l| l.len() as u64).sum();
        Ok((
            Journal {
                path,
                file: Arc::new(file),
                len: good as u64,
                buf: Vec::new(),
                entries,
                live,
                compacting: false,
            },
            replay,
        ))
    }

    /// Buffer an `ENQ` entry: queue `q` holds the message at `pos`, which
    /// expires at `expires` (ms since the epoch; 0 = never).
    pub fn enqueue(&mut self, q: QueueId, pos: Position, expires: u64) {
        encode_enqueue(q.0, pos, expires, &mut self.buf);
        self.entries += 1;
        self.live += 1;
    }

    /// Buffer a `DEL` entry: the message at `pos` was delivered for the
    /// `count`th time (it is recovered marked redelivered, with that count).
    pub fn delivered(&mut self, q: QueueId, pos: Position, count: u32) {
        encode_counted(DEL, q.0, pos.seg.0, pos.off, count, &mut self.buf);
        self.entries += 1;
    }

    /// Buffer an `ACK` entry: queue `q` is done with the message at `pos`.
    pub fn ack(&mut self, q: QueueId, pos: Position) {
        encode(ACK, q.0, pos.seg.0, pos.off, &mut self.buf);
        self.entries += 1;
        self.live = self.live.saturating_sub(1);
    }

    /// The queue was deleted; `live` of its messages are forgotten.
    pub fn drop_queue(&mut self, q: QueueId, live: u64) {
        encode(DROP, q.0, 0, 0, &mut self.buf);
        self.entries += 1;
        self.live = self.live.saturating_sub(live);
    }

    /// A segment number was taken (it must never be taken again).
    pub fn segment_created(&mut self, seg: SegmentId) {
        encode(SEG, 0, seg.0, 0, &mut self.buf);
        self.entries += 1;
    }

    /// Entries are buffered, not yet written.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Write buffered entries (page cache; durable after [`Journal::file`]
    /// is synced). On error the entries stay buffered for the next try.
    /// Deferred (Ok) while a compaction is writing the replacement file.
    pub fn write_pending(&mut self) -> Result<(), InfraError> {
        if self.buf.is_empty() || self.compacting {
            return Ok(());
        }
        match self.file.write_all_at(&self.buf, self.len) {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                self.buf.clear();
                Ok(())
            }
            Err(e) => {
                // Cut any partial write so the file ends on a whole entry.
                let _ = self.file.set_len(self.len);
                Err(io(&self.path, e))
            }
        }
    }

    /// The open file, for fdatasync off the executor.
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// No compaction is running and the journal holds more than
    /// `2 * live + 2^20` entries.
    pub fn needs_compaction(&self) -> bool {
        !self.compacting && self.entries > self.live * 2 + COMPACT_SLACK
    }

    /// Switch to a freshly written compacted file holding `entries` entries
    /// of which `live` are live. Entries buffered meanwhile go to it next.
    pub fn install(&mut self, file: File, len: u64, entries: u64, live: u64) {
        self.file = Arc::new(file);
        self.len = len;
        self.entries = entries + (self.buf.len() / ENTRY) as u64;
        self.live = live;
        self.compacting = false;
    }

    /// Forget buffered entries (start-up: the compacted file replaces them).
    pub fn clear_pending(&mut self) {
        self.buf.clear();
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
        let (mut j, r) = Journal::open(dir.path()).unwrap();
        assert!(r.queues.is_empty());
        let q = QueueId(3);
        for i in 0..5 {
            j.enqueue(q, p(1, i * 100), 0);
        }
        j.delivered(q, p(1, 100), 1);
        j.ack(q, p(1, 0));
        j.ack(q, p(1, 300));
        j.write_pending().unwrap();
        drop(j);
        let (_, r) = Journal::open(dir.path()).unwrap();
        assert_eq!(
            r.queues[&q],
            [(p(1, 100), 1), (p(1, 200), 0), (p(1, 400), 0)]
                .map(|(pos, deliveries)| Recovered {
                    pos,
                    deliveries,
                    expires: 0
                })
                .to_vec()
        );
    }

    #[test]
    fn a_dropped_queue_never_lends_entries_to_another_queue() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        j.enqueue(QueueId(1), p(1, 0), 0);
        j.drop_queue(QueueId(1), 1);
        j.enqueue(QueueId(2), p(1, 64), 1_700_000_000_123);
        j.write_pending().unwrap();
        drop(j);
        let (_, r) = Journal::open(dir.path()).unwrap();
        assert!(!r.queues.contains_key(&QueueId(1)));
        assert_eq!(
            r.queues[&QueueId(2)],
            vec![Recovered {
                pos: p(1, 64),
                deliveries: 0,
                expires: 1_700_000_000_123
            }],
            "the expiry survives"
        );
    }

    #[test]
    fn segment_high_water_mark_survives_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        j.segment_created(SegmentId(41));
        j.write_pending().unwrap();
        drop(j);
        let (_, r) = Journal::open(dir.path()).unwrap();
        assert_eq!(r.max_segment, 41);
        let (bytes, _, _) = snapshot_bytes(r.max_segment, []);
        write_new(&dir.path().join(FILE_NAME), &bytes).unwrap();
        let (_, r) = Journal::open(dir.path()).unwrap();
        assert_eq!(r.max_segment, 41);
    }

    #[test]
    fn torn_tail_entry_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        j.enqueue(QueueId(1), p(1, 0), 0);
        j.enqueue(QueueId(1), p(1, 8), 0);
        j.write_pending().unwrap();
        drop(j);
        let path = dir.path().join(FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[1, 0, 0, 0, 1]).unwrap();
        let (_, r) = Journal::open(dir.path()).unwrap();
        assert_eq!(r.queues[&QueueId(1)].len(), 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * ENTRY as u64);
    }

    #[test]
    fn acks_of_a_long_queue_replay_in_bounded_memory() {
        let mut r = QueueReplay::default();
        for i in 0..20_000 {
            r.enq(p(1, i), 0);
        }
        for i in 0..19_990 {
            r.set(p(1, i), GONE);
        }
        assert!(r.items.len() < 20_000, "acked entries are dropped in bulk");
        assert_eq!(r.live().len(), 10);
    }
}

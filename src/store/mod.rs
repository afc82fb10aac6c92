//! Durable storage: this shard's message segments and durable queue indexes.
//!
//! Owns: every file under `<data-dir>/shard-<i>/`: `msgs.NNNNNNNNNN`
//! segments (see [`segment`]) and one `queue.<hash>.idx` per durable queue
//! (see [`index`]). Only the owning shard touches them, so there are no
//! locks. A persistent message routed to K durable queues on this shard is
//! written once; each queue's index points at it, and the segment is deleted
//! once no index entry references it any more.
//!
//! Group commit: appends go to the mapping / index buffers immediately;
//! publisher confirms wait in [`Store::waiting`] until the shard's sync task
//! has made everything appended so far durable with one `fdatasync` per
//! dirty file, run off the executor thread (`spawn_blocking`), so one flush
//! covers every publisher. Must never: block the executor on `fsync`, keep
//! a durable backlog in RAM beyond the read-ahead, or panic on a bad file.

pub mod index;
pub mod segment;

use crate::error::InfraError;
use crate::ids::{QueueId, SegmentId};
use crate::mailbox::ConfirmRef;
use crate::message::{Message, MsgRef};
use bytes::Bytes;
use index::{QueueIndex, Replay};
use segment::Segment;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a stored message lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    pub seg: SegmentId,
    pub off: u32,
}

pub const DEFAULT_SEGMENT_SIZE: usize = 64 * 1024 * 1024;

pub struct Store {
    pub dir: PathBuf,
    segment_size: usize,
    segments: BTreeMap<SegmentId, Segment>,
    current: Option<SegmentId>,
    next_segment: u64,
    indexes: HashMap<QueueId, QueueIndex>,
    /// Valid record offsets found by the start-up scan (recovery only).
    valid: HashMap<SegmentId, HashSet<u32>>,
    dirty_segments: HashSet<SegmentId>,
    /// Confirms to send once the next sync completes.
    pub waiting: Vec<ConfirmRef>,
    /// Set while segment allocation fails (disk full).
    pub disk_full: bool,
    pub fsync: bool,
}

fn io(path: &Path, source: std::io::Error) -> InfraError {
    InfraError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Index file name for a queue: stable across restarts (hash of vhost and
/// name, FNV-1a), never derived from the per-run queue id.
pub fn index_file(dir: &Path, vhost: &str, name: &str) -> PathBuf {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in vhost.bytes().chain([0u8]).chain(name.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    dir.join(format!("queue.{h:016x}.idx"))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.push(b.len().min(255) as u8);
    out.extend_from_slice(&b[..b.len().min(255)]);
}

/// Decode a message record written by [`Store::append_message`].
pub fn decode_message(rec: &Bytes) -> Option<Message> {
    let mut at = 0usize;
    let take_str = |at: &mut usize| -> Option<String> {
        let n = *rec.get(*at)? as usize;
        let s = rec.get(*at + 1..*at + 1 + n)?;
        *at += 1 + n;
        Some(String::from_utf8_lossy(s).into_owned())
    };
    let exchange = take_str(&mut at)?;
    let routing_key = take_str(&mut at)?;
    let plen = u32::from_le_bytes(rec.get(at..at + 4)?.try_into().ok()?) as usize;
    at += 4;
    if at + plen > rec.len() {
        return None;
    }
    let props = rec.slice(at..at + plen);
    at += plen;
    let body = rec.slice(at..);
    Some(Message {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        props,
        body,
        persistent: true,
    })
}

impl Store {
    /// Open this shard's directory and scan every segment (checksums).
    pub fn open(dir: PathBuf, segment_size: usize, fsync: bool) -> Result<Store, InfraError> {
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let mut segments = BTreeMap::new();
        let mut valid = HashMap::new();
        let mut max = 0u64;
        let entries = std::fs::read_dir(&dir).map_err(|e| io(&dir, e))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(n) = name
                .strip_prefix("msgs.")
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let id = SegmentId(n);
            match Segment::open(&dir, id) {
                Ok(mut s) => {
                    let offs = s.scan();
                    valid.insert(id, offs.into_iter().collect::<HashSet<u32>>());
                    segments.insert(id, s);
                }
                Err(err) => tracing::warn!("skipping unreadable segment {name}: {err}"),
            }
            max = max.max(n);
        }
        Ok(Store {
            dir,
            segment_size,
            segments,
            current: None,
            next_segment: max + 1,
            indexes: HashMap::new(),
            valid,
            dirty_segments: HashSet::new(),
            waiting: Vec::new(),
            disk_full: false,
            fsync,
        })
    }

    /// Open (or create) a durable queue's index and return the messages it
    /// still holds, in order, dropping entries whose record is corrupt.
    pub fn open_queue(
        &mut self,
        id: QueueId,
        vhost: &str,
        name: &str,
    ) -> Result<Vec<(Position, bool)>, InfraError> {
        let (idx, Replay { live }) = QueueIndex::open(index_file(&self.dir, vhost, name))?;
        let mut out = Vec::with_capacity(live.len());
        for (pos, delivered) in live {
            let ok = self
                .valid
                .get(&pos.seg)
                .is_some_and(|v| v.contains(&pos.off));
            if !ok {
                tracing::warn!(segment = %pos.seg, offset = pos.off, queue = name, "message record missing or corrupt; skipped");
                continue;
            }
            if let Some(s) = self.segments.get_mut(&pos.seg) {
                s.refs += 1;
            }
            out.push((pos, delivered));
        }
        self.indexes.insert(id, idx);
        Ok(out)
    }

    /// After recovery: drop unreferenced segments and the scan results.
    pub fn finish_recovery(&mut self) {
        self.valid.clear();
        // Old segments are never appended to again: new writes start a new
        // one, so stale bytes after a torn tail can never be misread.
        for s in self.segments.values_mut() {
            s.seal();
            s.shed();
        }
        let dead: Vec<SegmentId> = self
            .segments
            .iter()
            .filter(|(_, s)| s.refs == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.delete_segment(id);
        }
    }

    /// Delete index files of durable queues that no longer exist.
    pub fn remove_orphan_indexes(&self, keep: &HashSet<PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let p = e.path();
                let is_idx = p.extension().is_some_and(|x| x == "idx");
                if is_idx && !keep.contains(&p) {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
    }

    fn delete_segment(&mut self, id: SegmentId) {
        if let Some(s) = self.segments.remove(&id) {
            self.dirty_segments.remove(&id);
            if let Err(e) = std::fs::remove_file(&s.path) {
                tracing::warn!("cannot delete {}: {e}", s.path.display());
            }
        }
    }

    fn roll(&mut self, need: usize) -> Result<SegmentId, InfraError> {
        let id = SegmentId(self.next_segment);
        let size = self.segment_size.max(need + segment::HEADER);
        let seg = Segment::create(&self.dir, id, size)?;
        self.next_segment += 1;
        let old = self.current.replace(id);
        self.segments.insert(id, seg);
        if let Some(s) = old.and_then(|o| self.segments.get_mut(&o)) {
            s.seal();
        }
        if let Some(old) = old {
            if self.segments.get(&old).is_some_and(|s| s.refs == 0) {
                self.delete_segment(old);
            }
        }
        Ok(id)
    }

    /// Append a persistent message once for this shard.
    pub fn append_message(&mut self, msg: &Message) -> Result<Position, InfraError> {
        let mut head =
            Vec::with_capacity(8 + msg.exchange.as_str().len() + msg.routing_key.as_str().len());
        put_str(&mut head, msg.exchange.as_str());
        put_str(&mut head, msg.routing_key.as_str());
        head.extend_from_slice(&(msg.props.len() as u32).to_le_bytes());
        let need = head.len() + msg.props.len() + msg.body.len();
        let id = match self.current {
            Some(id) if self.segments.get(&id).is_some_and(|s| s.fits(need)) => id,
            _ => match self.roll(need) {
                Ok(id) => {
                    self.disk_full = false;
                    id
                }
                Err(e) => {
                    self.disk_full = true;
                    return Err(e);
                }
            },
        };
        let Some(seg) = self.segments.get_mut(&id) else {
            return Err(InfraError::Io {
                path: self.dir.display().to_string(),
                source: std::io::ErrorKind::NotFound.into(),
            });
        };
        let off = seg.append(&[&head, &msg.props, &msg.body]);
        self.dirty_segments.insert(id);
        Ok(Position { seg: id, off })
    }

    /// A durable queue took a stored message.
    pub fn enqueue(&mut self, q: QueueId, pos: Position) {
        if let Some(idx) = self.indexes.get_mut(&q) {
            idx.enqueue(pos);
            if let Some(s) = self.segments.get_mut(&pos.seg) {
                s.refs += 1;
            }
        }
    }

    pub fn delivered(&mut self, q: QueueId, pos: Position) {
        if let Some(idx) = self.indexes.get_mut(&q) {
            idx.delivered(pos);
        }
    }

    /// The queue is done with a message (ack, purge, no-ack delivery).
    pub fn ack(&mut self, q: QueueId, pos: Position) {
        if let Some(idx) = self.indexes.get_mut(&q) {
            idx.ack(pos);
        }
        self.release(pos);
    }

    fn release(&mut self, pos: Position) {
        let dead = match self.segments.get_mut(&pos.seg) {
            Some(s) => {
                s.refs = s.refs.saturating_sub(1);
                s.refs == 0 && self.current != Some(pos.seg)
            }
            None => false,
        };
        if dead {
            self.delete_segment(pos.seg);
        }
    }

    /// Load a stored message (zero-copy from the mapping).
    pub fn load(&self, pos: Position) -> Option<MsgRef> {
        let rec = self.segments.get(&pos.seg)?.read(pos.off)?;
        decode_message(&rec).map(Arc::new)
    }

    /// A durable queue was deleted: release its messages, remove its index.
    pub fn drop_queue(&mut self, q: QueueId, positions: impl IntoIterator<Item = Position>) {
        for p in positions {
            self.release(p);
        }
        if let Some(idx) = self.indexes.remove(&q) {
            let _ = std::fs::remove_file(&idx.path);
        }
    }

    pub fn is_durable(&self, q: QueueId) -> bool {
        self.indexes.contains_key(&q)
    }

    pub fn needs_sync(&self) -> bool {
        !self.waiting.is_empty()
            || !self.dirty_segments.is_empty()
            || self.indexes.values().any(|i| i.has_pending())
    }

    /// Write buffered index entries and collect the files to fdatasync.
    pub fn prepare_sync(&mut self) -> (Vec<File>, Vec<ConfirmRef>, bool) {
        let mut files = Vec::new();
        let mut ok = true;
        for idx in self.indexes.values_mut() {
            if idx.has_pending() {
                if let Err(e) = idx.write_pending() {
                    tracing::error!("index write failed: {e}");
                    ok = false;
                }
                if let Ok(f) = idx.sync_handle() {
                    files.push(f);
                }
            }
        }
        for id in self.dirty_segments.drain() {
            if let Some(Ok(f)) = self.segments.get(&id).map(|s| s.sync_handle()) {
                files.push(f);
            }
        }
        if !self.fsync {
            files.clear();
        }
        (files, std::mem::take(&mut self.waiting), ok)
    }

    /// Queues whose index file has grown far beyond their live entries.
    pub fn compaction_candidates(&self) -> Vec<QueueId> {
        self.indexes
            .iter()
            .filter(|(_, i)| i.needs_compaction())
            .map(|(q, _)| *q)
            .collect()
    }

    pub fn compact(&mut self, q: QueueId, live: &[(Position, bool)]) {
        if let Some(idx) = self.indexes.get_mut(&q) {
            if let Err(e) = idx.compact(live) {
                tracing::warn!("index compaction failed: {e}");
            }
        }
    }

    /// Is there room for another segment again?
    pub fn has_room(&self) -> bool {
        match nix::sys::statvfs::statvfs(&self.dir) {
            Ok(s) => {
                s.blocks_available() * s.fragment_size() >= self.segment_size as u64 + 64 * 1024
            }
            Err(_) => false,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.segments.values().map(|s| s.capacity as u64).sum()
    }

    /// Shed resident pages of every segment but the one being written.
    pub fn shed_cold(&self) {
        for (id, s) in &self.segments {
            if Some(*id) != self.current {
                s.shed();
            }
        }
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &'static [u8]) -> Message {
        Message {
            exchange: "x".into(),
            routing_key: "k".into(),
            props: Bytes::from_static(&[0x10, 0, 2]),
            body: Bytes::from_static(body),
            persistent: true,
        }
    }

    #[test]
    fn segments_roll_over_and_are_deleted_once_all_acked() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path().to_path_buf(), 256, false).unwrap();
        s.open_queue(QueueId(1), "/", "q").unwrap();
        let mut positions = Vec::new();
        for _ in 0..10 {
            let p = s.append_message(&msg(&[7u8; 100])).unwrap();
            s.enqueue(QueueId(1), p);
            positions.push(p);
        }
        let segs: HashSet<SegmentId> = positions.iter().map(|p| p.seg).collect();
        assert!(segs.len() >= 5, "rolled over: {segs:?}");
        let before = s.segment_count();
        let first = positions[0].seg;
        for p in positions.iter().filter(|p| p.seg == first) {
            s.ack(QueueId(1), *p);
        }
        assert_eq!(s.segment_count(), before - 1);
        assert!(!segment::segment_path(dir.path(), first).exists());
        let loaded = s.load(positions[9]).unwrap();
        assert_eq!(&loaded.body[..], &[7u8; 100][..]);
        assert_eq!(loaded.routing_key.as_str(), "k");
    }

    #[test]
    fn recovery_returns_unacked_messages_and_drops_unreferenced_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b);
        {
            let mut s = Store::open(dir.path().to_path_buf(), 4096, true).unwrap();
            s.open_queue(QueueId(1), "/", "q").unwrap();
            a = s.append_message(&msg(b"one")).unwrap();
            s.enqueue(QueueId(1), a);
            b = s.append_message(&msg(b"two")).unwrap();
            s.enqueue(QueueId(1), b);
            s.delivered(QueueId(1), b);
            s.ack(QueueId(1), a);
            let (files, _, ok) = s.prepare_sync();
            assert!(ok);
            for f in files {
                f.sync_data().unwrap();
            }
        }
        let mut s = Store::open(dir.path().to_path_buf(), 4096, true).unwrap();
        let live = s.open_queue(QueueId(9), "/", "q").unwrap();
        s.finish_recovery();
        assert_eq!(live, vec![(b, true)]);
        assert_eq!(&s.load(b).unwrap().body[..], b"two");
    }
}

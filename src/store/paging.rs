//! The transient page area: where a shard puts message bodies that would
//! otherwise make a queue's backlog cost heap (transient messages, and
//! every message of a non-durable queue), so a backlog of any kind costs
//! disk, not RAM (RabbitMQ's classic queues page to disk the same way).
//!
//! Owns: `<shard dir>/transient/`, a set of segment files ([`Segment`], the
//! same record format as the durable store, plus one flags byte) named by
//! ids with [`SegmentId::PAGED`] set. Nothing here is journalled or synced:
//! the records are only a place to keep bytes out of the heap, and the
//! whole directory is removed at start-up, since transient messages do not
//! survive a restart (AMQP 0-9-1 delivery-mode 1; RabbitMQ discards them
//! too). A segment is deleted as soon as no queue references it and it is
//! not the one being written; a `Bytes` still handed out from it keeps its
//! mapping alive, so a delivery in flight never reads freed memory.
//! Must never: fsync (that would tie transient throughput to the disk's
//! flush rate), block the executor on anything but a page fault, or keep a
//! read mapping resident longer than a segment lives.

use super::segment::{self, Segment};
use super::{decode_message, put_str, Position};
use crate::error::InfraError;
use crate::ids::SegmentId;
use crate::message::{Message, MsgRef};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Flags byte of a paged record: the message was published persistent
/// (it keeps that through dead-lettering to a durable queue).
const PERSISTENT: u8 = 1;

/// One shard's transient page area (see the module documentation).
pub struct Pages {
    /// `<shard dir>/transient/`.
    pub dir: PathBuf,
    segment_size: usize,
    segments: HashMap<SegmentId, Segment>,
    current: Option<SegmentId>,
    next: u64,
    /// Records written since start-up (for statistics and tests).
    pub paged: u64,
    /// A segment was created since the store last asked
    /// (`Store::take_rolled`).
    pub rolled: bool,
}

fn io(path: &std::path::Path, source: std::io::Error) -> InfraError {
    InfraError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Pages {
    /// Open the page area under `shard_dir`, discarding whatever a previous
    /// run left there (transient messages do not survive a restart).
    pub fn open(shard_dir: &std::path::Path, segment_size: usize) -> Result<Pages, InfraError> {
        let dir = shard_dir.join("transient");
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                tracing::info!(dir = %dir.display(), "transient pages of the previous run discarded")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&dir, e)),
        }
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        Ok(Pages {
            dir,
            segment_size,
            segments: HashMap::new(),
            current: None,
            next: 1,
            paged: 0,
            rolled: false,
        })
    }

    /// Write `msg` once for this shard; the caller then [`Pages::retain`]s
    /// the position once per queue that keeps it. Errors: the segment file
    /// cannot be created or preallocated (disk full): the caller keeps the
    /// message in memory instead.
    pub fn append(&mut self, msg: &Message) -> Result<Position, InfraError> {
        let mut head =
            Vec::with_capacity(9 + msg.exchange.as_str().len() + msg.routing_key.as_str().len());
        head.push(if msg.persistent { PERSISTENT } else { 0 });
        put_str(&mut head, msg.exchange.as_str());
        put_str(&mut head, msg.routing_key.as_str());
        head.extend_from_slice(&(msg.props.len() as u32).to_le_bytes());
        let need = head.len() + msg.props.len() + msg.body.len();
        let id = match self.current {
            Some(id) if self.segments.get(&id).is_some_and(|s| s.fits(need)) => id,
            _ => self.roll(need)?,
        };
        let Some(seg) = self.segments.get_mut(&id) else {
            return Err(io(&self.dir, std::io::ErrorKind::NotFound.into()));
        };
        // The one copy of the body this area makes: into the page cache,
        // which is the point (the heap copy is released by the caller).
        let off = seg.append(&[&head, &msg.props, &msg.body]);
        self.paged += 1;
        Ok(Position { seg: id, off })
    }

    fn roll(&mut self, need: usize) -> Result<SegmentId, InfraError> {
        let id = SegmentId(SegmentId::PAGED | self.next);
        let size = self.segment_size.max(need + segment::HEADER + 1);
        let seg = Segment::create(&self.dir, id, size)?;
        self.next += 1;
        self.rolled = true;
        let old = self.current.replace(id);
        self.segments.insert(id, seg);
        if let Some(old) = old {
            if let Some(s) = self.segments.get_mut(&old) {
                // Sealing drops the write mapping (its pages leave this
                // process's resident set; they are in the page cache).
                s.seal();
                if s.refs == 0 {
                    self.delete(old);
                }
            }
        }
        Ok(id)
    }

    /// One more queue keeps the record at `pos`.
    pub fn retain(&mut self, pos: Position) {
        if let Some(s) = self.segments.get_mut(&pos.seg) {
            s.refs += 1;
        }
    }

    /// A queue is done with the record at `pos` (acked, dropped, purged,
    /// or its queue deleted); the segment goes with its last reference.
    pub fn release(&mut self, pos: Position) {
        let dead = match self.segments.get_mut(&pos.seg) {
            Some(s) => {
                s.refs = s.refs.saturating_sub(1);
                s.refs == 0 && self.current != Some(pos.seg)
            }
            None => false,
        };
        if dead {
            self.delete(pos.seg);
        }
    }

    fn delete(&mut self, id: SegmentId) {
        if let Some(s) = self.segments.remove(&id) {
            if let Err(e) = std::fs::remove_file(&s.path) {
                tracing::warn!("cannot delete {}: {e}", s.path.display());
            }
        }
    }

    /// Read a paged message back (zero-copy from the mapping).
    pub fn load(&self, pos: Position) -> Option<MsgRef> {
        let rec = self.segments.get(&pos.seg)?.read(pos.off)?;
        let flags = *rec.first()?;
        let mut m = decode_message(&rec.slice(1..))?;
        m.persistent = flags & PERSISTENT != 0;
        Some(Arc::new(m))
    }

    /// Disk space of the page area's segment files, in bytes.
    pub fn bytes(&self) -> u64 {
        self.segments.values().map(|s| s.capacity as u64).sum()
    }

    /// Segment files of the page area currently kept.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Drop resident read pages of every segment but the one being written
    /// (they fault back from the page cache when a queue reaches them).
    pub fn shed_cold(&self) {
        for (id, s) in &self.segments {
            if Some(*id) != self.current {
                s.shed();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &'static [u8], persistent: bool) -> Message {
        Message {
            exchange: "x".into(),
            routing_key: "k".into(),
            props: bytes::Bytes::new(),
            body: bytes::Bytes::from_static(body),
            persistent,
            expiration_ms: None,
            priority: 0,
        }
    }

    #[test]
    fn paged_records_round_trip_and_segments_go_with_their_last_reference() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pages::open(dir.path(), 4096).unwrap();
        let a = p.append(&msg(&[1u8; 4070], false)).unwrap();
        p.retain(a);
        p.retain(a);
        let b = p.append(&msg(b"second", true)).unwrap();
        p.retain(b);
        assert!(
            a.seg.is_paged() && a.seg != b.seg,
            "rolled to a new segment"
        );
        let got = p.load(a).unwrap();
        assert_eq!(&got.body[..], &[1u8; 4070][..]);
        assert!(!got.persistent);
        assert!(p.load(b).unwrap().persistent);
        let first = segment::segment_path(&p.dir, a.seg);
        p.release(a);
        assert!(first.exists(), "one queue still holds it");
        p.release(a);
        assert!(!first.exists(), "deleted with its last reference");
        p.release(b);
        assert_eq!(p.segment_count(), 1, "the segment being written stays");
    }

    #[test]
    fn opening_discards_the_previous_runs_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path;
        {
            let mut p = Pages::open(dir.path(), 4096).unwrap();
            let a = p.append(&msg(b"gone after restart", false)).unwrap();
            p.retain(a);
            path = segment::segment_path(&p.dir, a.seg);
        }
        assert!(path.exists());
        let p = Pages::open(dir.path(), 4096).unwrap();
        assert!(!path.exists());
        assert_eq!(p.segment_count(), 0);
    }
}

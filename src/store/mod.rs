//! Durable storage: this shard's message segments and its queue journal.
//!
//! Owns: every file under `<data-dir>/shard-<i>/`: `msgs.NNNNNNNNNN`
//! segments (see [`segment`]) and `queues.journal` (see [`journal`]), which
//! records the messages of every durable queue homed on this shard by the
//! queue's id. Only the owning shard touches them, so there are no locks. A
//! persistent message routed to K durable queues on this shard is written
//! once; each queue's journal entry points at it, and the segment is deleted
//! once no queue references it any more.
//!
//! Group commit: appends go to the segment's and the journal's buffers
//! immediately (a segment's is written once it holds 256 KiB); each group
//! commit writes the segments' buffers, then the journal's (a journal
//! entry never points at a record only in memory), then syncs; whoever
//! must wait for durability (the shard, for publisher confirms and
//! tx commit-oks) takes a sync generation from [`Store::await_sync`] and
//! acts once a [`SyncBatch`] of that generation has finished: the store
//! knows nothing of who waits. The shard's sync task makes everything
//! appended so far durable with
//! one `fdatasync` per dirty file, run off the executor thread
//! (`spawn_blocking`), so one flush covers every publisher. Must never:
//! block the executor on `fsync`, keep a durable backlog in RAM beyond the
//! read-ahead (or more than a segment's unwritten batch), drop a journal
//! entry or a record on a write error, or panic on a bad file.

pub mod journal;
mod legacy;
pub mod paging;
pub mod segment;

use crate::error::InfraError;
use crate::ids::{QueueId, SegmentId};
use crate::message::{Message, MsgRef};
use bytes::Bytes;
use journal::{Journal, Live, Recovered};
use segment::Segment;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a stored message lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// The segment file.
    pub seg: SegmentId,
    /// Byte offset of the record's header in that file.
    pub off: u32,
}

pub use crate::config::DEFAULT_SEGMENT_SIZE;

/// A file to make durable at the next group commit.
pub enum SyncFile {
    /// The queue journal (shared with the store, which keeps writing it).
    Journal(Arc<File>),
    /// A segment written since the last sync (a duplicated descriptor).
    Segment(File),
}

impl SyncFile {
    /// `fdatasync` the file. Blocking: call it off the executor thread.
    pub fn sync(&self) -> std::io::Result<()> {
        match self {
            SyncFile::Journal(f) => f.sync_data(),
            SyncFile::Segment(f) => f.sync_data(),
        }
    }
}

/// What [`Store::prepare_sync`] hands the sync task.
pub struct SyncBatch {
    /// Files to fdatasync (none when `fsync` is off in the configuration).
    pub files: Vec<SyncFile>,
    /// The sync generation this batch completes: every
    /// [`Store::await_sync`] that returned a generation up to this one is
    /// durable once `files` are synced.
    pub generation: u64,
    /// False if buffered journal entries could not be written (they stay
    /// buffered for the next attempt; the confirms must be nacked).
    pub wrote: bool,
}

/// A compacted journal to write off the executor ([`Store::begin_compaction`]).
pub struct Compaction {
    /// The journal's path (written via a temporary file and a rename).
    pub path: PathBuf,
    /// The compacted journal's content.
    pub bytes: Vec<u8>,
    /// Entries in `bytes` (32 bytes each).
    pub entries: u64,
    /// Live (enqueued, unacked) messages among them.
    pub live: u64,
}

/// One shard's message store (see the module documentation).
pub struct Store {
    /// `<data-dir>/shard-<i>/`.
    pub dir: PathBuf,
    segment_size: usize,
    segments: BTreeMap<SegmentId, Segment>,
    current: Option<SegmentId>,
    next_segment: u64,
    journal: Journal,
    /// Durable queues homed on this shard, with their live message counts.
    durable: HashMap<QueueId, u64>,
    /// Live messages per queue found by replay, until the queue claims them.
    recovered: HashMap<QueueId, Live>,
    /// Index files of the previous on-disk format, imported by name.
    legacy: HashSet<PathBuf>,
    /// Valid record offsets found by the start-up scan (recovery only).
    valid: HashMap<SegmentId, HashSet<u32>>,
    dirty_segments: HashSet<SegmentId>,
    /// Segments no queue references any more, deleted only once the
    /// journal entries that released them are synced, so after a crash no
    /// live entry can point into a deleted segment.
    releasable: Vec<SegmentId>,
    /// Released segments whose releasing entries are in the sync in flight.
    deleting: Vec<SegmentId>,
    /// Delivered-flag entries not yet written to the journal.
    unwritten_deliveries: bool,
    /// Someone waits for the next sync ([`Store::await_sync`]).
    waiters: bool,
    /// The generation the next [`Store::prepare_sync`] completes.
    next_generation: u64,
    /// Set while segment allocation fails (disk full).
    pub disk_full: bool,
    /// A segment file was created since [`Store::take_rolled`] was last
    /// called (the owner then checks the disk's free space at once).
    rolled: bool,
    /// fdatasync at each group commit (configuration `fsync`); when off,
    /// confirms wait only for the write to the page cache.
    pub fsync: bool,
    /// The transient page area (`paging`): positions with
    /// [`SegmentId::PAGED`] are its records, never this journal's.
    pub pages: paging::Pages,
}

fn io(path: &Path, source: std::io::Error) -> InfraError {
    InfraError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.push(b.len().min(255) as u8);
    out.extend_from_slice(&b[..b.len().min(255)]);
}

/// The `priority` property of stored properties (0 when absent): the
/// fast scan, else amq-protocol's full parser.
fn stored_priority(props: &[u8]) -> u8 {
    match crate::codec::fast::scan_properties(props) {
        Some(v) => v.priority,
        None => amq_protocol::protocol::basic::parse_properties(props)
            .ok()
            .and_then(|(_, p)| *p.priority()),
    }
    .unwrap_or(0)
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
    if at.checked_add(plen)? > rec.len() {
        return None;
    }
    let props = rec.slice(at..at + plen);
    at += plen;
    let body = rec.slice(at..);
    Some(Message {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        // The queue keeps each entry's expiry; a loaded body needs none.
        expiration_ms: None,
        priority: stored_priority(&props),
        props,
        body,
        persistent: true,
    })
}

impl Store {
    /// Open this shard's directory, replay the journal and scan every
    /// segment (checksums).
    pub fn open(dir: PathBuf, segment_size: usize, fsync: bool) -> Result<Store, InfraError> {
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let pages = paging::Pages::open(&dir, segment_size)?;
        let (journal, replay) = Journal::open(&dir)?;
        let mut segments = BTreeMap::new();
        let mut valid = HashMap::new();
        let mut legacy = HashSet::new();
        let mut max = replay.max_segment;
        let entries = std::fs::read_dir(&dir).map_err(|e| io(&dir, e))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("queue.") && name.ends_with(".idx") {
                legacy.insert(e.path());
                continue;
            }
            let Some(n) = name
                .strip_prefix("msgs.")
                .and_then(|n| n.parse::<u64>().ok())
                // Numbers with the page area's bit are not durable segments.
                .filter(|n| !SegmentId(*n).is_paged())
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
            journal,
            durable: HashMap::new(),
            recovered: replay.queues,
            legacy,
            valid,
            dirty_segments: HashSet::new(),
            releasable: Vec::new(),
            deleting: Vec::new(),
            unwritten_deliveries: false,
            waiters: false,
            next_generation: 1,
            disk_full: false,
            rolled: false,
            fsync,
            pages,
        })
    }

    /// Register a durable queue homed here and return the messages the
    /// journal holds for it (by id, never by name), in order, dropping
    /// entries whose record is missing or corrupt. A new queue gets none.
    pub fn open_queue(&mut self, id: QueueId, vhost: &str, name: &str) -> Live {
        let mut items = self.recovered.remove(&id).unwrap_or_default();
        if items.is_empty() && !self.legacy.is_empty() {
            let path = legacy::index_file(&self.dir, vhost, name);
            if self.legacy.remove(&path) {
                items = legacy::read(&path);
                tracing::info!(
                    queue = name,
                    messages = items.len(),
                    "imported queue index of the previous format"
                );
                let _ = std::fs::remove_file(&path);
            }
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let pos = item.pos;
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
            out.push(item);
        }
        self.durable.insert(id, out.len() as u64);
        out
    }

    /// After recovery: rewrite the journal with exactly the live messages of
    /// the durable queues that exist (`queues`), so entries of queues that
    /// are gone can never be claimed later, then drop unreferenced segments.
    pub fn finish_recovery<'a>(
        &mut self,
        queues: impl IntoIterator<Item = (QueueId, &'a [Recovered])>,
    ) -> Result<(), InfraError> {
        self.valid.clear();
        for q in self.recovered.keys() {
            tracing::debug!(queue = q.0, "journal entries of a deleted queue discarded");
        }
        self.recovered.clear();
        for p in self.legacy.drain() {
            tracing::warn!(file = %p.display(), "index file of a queue that no longer exists removed");
            let _ = std::fs::remove_file(&p);
        }
        let (bytes, entries, live) = journal::snapshot_bytes(self.next_segment - 1, queues);
        self.journal.clear_pending();
        let file = journal::write_new(&self.journal.path, &bytes)?;
        self.journal
            .install(file, bytes.len() as u64, entries, live);
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
        Ok(())
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
        let seg = Segment::create_buffered(&self.dir, id, size)?;
        self.next_segment += 1;
        self.rolled = true;
        // Recorded before any entry that points into it (same buffer, in
        // order), so the number is never handed out again after a restart.
        self.journal.segment_created(id);
        let old = self.current.replace(id);
        self.segments.insert(id, seg);
        if let Some(s) = old.and_then(|o| self.segments.get_mut(&o)) {
            s.seal();
        }
        if let Some(old) = old {
            if self.segments.get(&old).is_some_and(|s| s.refs == 0) {
                self.releasable.push(old);
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
        if seg.pending_bytes() >= segment::PENDING_MAX {
            // Writes have been failing: refuse (the publisher is nacked)
            // rather than hold ever more records in memory.
            return Err(InfraError::Io {
                path: seg.path.display().to_string(),
                source: std::io::Error::other(
                    "earlier segment writes failed; records still unwritten",
                ),
            });
        }
        let off = seg.append(&[&head, &msg.props, &msg.body]);
        if seg.pending_bytes() >= segment::FLUSH_BYTES {
            // A large batch goes to the page cache now; a failure leaves it
            // buffered for the group commit, which reports it.
            if let Err(e) = seg.flush() {
                tracing::warn!(file = %seg.path.display(), "segment write failed (will retry): {e}");
            }
        }
        self.dirty_segments.insert(id);
        Ok(Position { seg: id, off })
    }

    /// A durable queue took a stored message that expires at `expires`
    /// (ms since the epoch; 0 = never).
    pub fn enqueue(&mut self, q: QueueId, pos: Position, expires: u64) {
        if pos.seg.is_paged() {
            return self.pages.retain(pos);
        }
        if let Some(n) = self.durable.get_mut(&q) {
            *n += 1;
            self.journal.enqueue(q, pos, expires);
            if let Some(s) = self.segments.get_mut(&pos.seg) {
                s.refs += 1;
            }
        }
    }

    /// A stored message was handed to a consumer for the `count`th time
    /// (it comes back redelivered, with its delivery count).
    pub fn delivered(&mut self, q: QueueId, pos: Position, count: u32) {
        if !pos.seg.is_paged() && self.durable.contains_key(&q) {
            self.journal.delivered(q, pos, count);
            self.unwritten_deliveries = true;
        }
    }

    /// The queue is done with a message (ack, purge, no-ack delivery).
    pub fn ack(&mut self, q: QueueId, pos: Position) {
        if pos.seg.is_paged() {
            return self.pages.release(pos);
        }
        if let Some(n) = self.durable.get_mut(&q) {
            *n = n.saturating_sub(1);
            self.journal.ack(q, pos);
        }
        self.release(pos);
    }

    fn release(&mut self, pos: Position) {
        if pos.seg.is_paged() {
            return self.pages.release(pos);
        }
        let dead = match self.segments.get_mut(&pos.seg) {
            Some(s) => {
                s.refs = s.refs.saturating_sub(1);
                s.refs == 0 && self.current != Some(pos.seg)
            }
            None => false,
        };
        if dead {
            self.releasable.push(pos.seg);
        }
    }

    /// Load a stored message (zero-copy from the mapping).
    pub fn load(&self, pos: Position) -> Option<MsgRef> {
        if pos.seg.is_paged() {
            return self.pages.load(pos);
        }
        let rec = self.segments.get(&pos.seg)?.read(pos.off)?;
        decode_message(&rec).map(Arc::new)
    }

    /// A queue was deleted: release its stored and paged messages and, for
    /// a durable queue, record that its id is gone (its entries are never
    /// replayed again).
    pub fn drop_queue(&mut self, q: QueueId, positions: impl IntoIterator<Item = Position>) {
        for p in positions {
            self.release(p);
        }
        if let Some(live) = self.durable.remove(&q) {
            self.journal.drop_queue(q, live);
        }
    }

    /// Whether queue `q` is a durable queue registered by
    /// [`Store::open_queue`] (its messages are journalled).
    pub fn is_durable(&self, q: QueueId) -> bool {
        self.durable.contains_key(&q)
    }

    /// Wait for durability of everything appended so far: returns the
    /// sync generation that covers it and asks for that sync to come soon.
    pub fn await_sync(&mut self) -> u64 {
        self.waiters = true;
        self.next_generation
    }

    /// Whether a group commit has anything to do: a waiter, a dirty
    /// segment, buffered journal entries or a segment to release.
    pub fn needs_sync(&self) -> bool {
        self.waiters
            || !self.dirty_segments.is_empty()
            || self.journal.has_pending()
            || !self.releasable.is_empty()
    }

    /// End of a batch of work: if stored messages were delivered, write the
    /// journal's buffer now (page cache, no fsync), before the deliveries
    /// reach any socket, so their redelivered flag survives a process crash.
    pub fn write_deliveries(&mut self) {
        if self.unwritten_deliveries && self.flush_segments() {
            self.unwritten_deliveries = false;
            if let Err(e) = self.journal.write_pending() {
                tracing::warn!("journal write failed (will retry): {e}");
            }
        }
    }

    /// Write the dirty segments' buffered records to the page cache.
    /// Always before the journal is written, so a journal entry never
    /// points at a record still in this process's memory (a process crash
    /// keeps the page cache). False if a write failed (those records stay
    /// buffered and their segments dirty).
    fn flush_segments(&mut self) -> bool {
        let mut ok = true;
        for id in &self.dirty_segments {
            if let Some(seg) = self.segments.get_mut(id) {
                if let Err(e) = seg.flush() {
                    tracing::error!(file = %seg.path.display(), "segment write failed (records kept, will retry): {e}");
                    ok = false;
                }
            }
        }
        ok
    }

    /// Write buffered segment records and journal entries, and collect the
    /// files to fdatasync.
    pub fn prepare_sync(&mut self) -> SyncBatch {
        let mut files = Vec::new();
        // If records are still buffered, their journal entries wait with
        // them, and nothing of this generation is confirmed.
        let mut wrote = self.flush_segments();
        if wrote && self.journal.has_pending() {
            match self.journal.write_pending() {
                Ok(()) => self.unwritten_deliveries = false,
                Err(e) => {
                    tracing::error!("journal write failed (entries kept, will retry): {e}");
                    wrote = false;
                }
            }
            if self.journal.compacting {
                // Entries wait for the compacted file: not durable yet.
                wrote = false;
            }
        }
        files.push(SyncFile::Journal(self.journal.file()));
        let mut unwritten = Vec::new();
        for id in self.dirty_segments.drain() {
            let Some(seg) = self.segments.get(&id) else {
                continue;
            };
            if seg.pending_bytes() > 0 {
                unwritten.push(id);
            }
            if let Ok(f) = seg.sync_handle() {
                files.push(SyncFile::Segment(f));
            }
        }
        self.dirty_segments.extend(unwritten);
        if !self.fsync {
            files.clear();
        }
        self.deleting.append(&mut self.releasable);
        if !wrote {
            // The journal cannot be written (disk full?): free the space
            // now. The acks stay buffered and are retried; a crash before
            // they land only leaves entries whose records are gone, which
            // recovery skips (they had been acked).
            self.finish_sync();
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.waiters = false;
        SyncBatch {
            files,
            generation,
            wrote,
        }
    }

    /// The sync of the last [`Store::prepare_sync`] finished (well or not:
    /// space is freed either way, see `prepare_sync`): delete the segments
    /// its journal entries released.
    pub fn finish_sync(&mut self) {
        let done = std::mem::take(&mut self.deleting);
        for id in done {
            // Still unreferenced (nothing can add a reference to a sealed
            // segment) and not the one being written.
            if self.segments.get(&id).is_some_and(|s| s.refs == 0) && self.current != Some(id) {
                self.delete_segment(id);
            }
        }
    }

    /// The journal holds more than `2 * live + 2^20` entries (and no
    /// compaction is running).
    pub fn needs_compaction(&self) -> bool {
        self.journal.needs_compaction()
    }

    /// Start compacting the journal: write what is buffered, then snapshot
    /// `queues` (the live messages of every durable queue, which now match
    /// the file exactly). Until [`Store::finish_compaction`], new entries
    /// stay buffered. None if the buffer cannot be written now.
    pub fn begin_compaction<'a>(
        &mut self,
        queues: impl IntoIterator<Item = (QueueId, &'a [Recovered])>,
    ) -> Option<Compaction> {
        self.journal.write_pending().ok()?;
        let (bytes, entries, live) = journal::snapshot_bytes(self.next_segment - 1, queues);
        self.journal.compacting = true;
        Some(Compaction {
            path: self.journal.path.clone(),
            bytes,
            entries,
            live,
        })
    }

    /// The compacted journal was written (or not: keep the old one).
    pub fn finish_compaction(
        &mut self,
        len: u64,
        entries: u64,
        live: u64,
        result: Result<File, InfraError>,
    ) {
        match result {
            Ok(f) => self.journal.install(f, len, entries, live),
            Err(e) => {
                tracing::warn!("journal compaction failed: {e}");
                self.journal.compacting = false;
            }
        }
    }

    /// Whether a segment file (durable or paged) was created since the last
    /// call: disk space was just taken in a segment-sized step.
    pub fn take_rolled(&mut self) -> bool {
        std::mem::take(&mut self.rolled) | std::mem::take(&mut self.pages.rolled)
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

    /// Disk space of the segment files, in bytes (their preallocated size,
    /// live records or not).
    pub fn bytes(&self) -> u64 {
        self.segments.values().map(|s| s.capacity as u64).sum()
    }

    /// Shed resident pages of every segment but the one being written
    /// (the page area's too).
    pub fn shed_cold(&self) {
        self.pages.shed_cold();
        for (id, s) in &self.segments {
            if Some(*id) != self.current {
                s.shed();
            }
        }
    }

    /// Segment files currently kept.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

#[cfg(test)]
mod tests;

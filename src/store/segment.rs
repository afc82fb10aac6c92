//! One message segment: a fixed-size, preallocated file mapped with
//! `memmap2`, holding append-only records framed as
//! `[len: u32][crc32c: u32][payload: len bytes]`.
//!
//! Preallocation (`posix_fallocate`) matters: writing through a mapping into
//! a sparse file on a full disk raises SIGBUS, while a failed fallocate is
//! an ordinary error we turn into publisher nacks. Only the owning shard
//! touches a segment; reads hand out zero-copy `Bytes` backed by a
//! read-only mapping of the same file.
//!
//! Two ways in. A store segment ([`Segment::create_buffered`]) gathers
//! appended records in a buffer that [`Segment::flush`] writes with one
//! `pwrite` (a batch per group commit, or per [`FLUSH_BYTES`]): writing
//! through a mapping that every fdatasync cleans made each page take a
//! write fault after every commit, and the cleaning itself a TLB shootdown
//! (PERF.md, "s4 after the parallel group commit": 19% and 8% of the
//! broker's time). The transient page area ([`Segment::create`]) is never
//! synced, so its pages fault in once: it keeps writing through the mapping.

use crate::error::InfraError;
use crate::ids::SegmentId;
use bytes::Bytes;
use memmap2::{Mmap, MmapMut};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes of a record's header: `len: u32` and `crc32c: u32`.
pub const HEADER: usize = 8;

/// A store segment writes its buffered records once this many are waiting
/// (bytes), whatever the group commit's pace.
pub const FLUSH_BYTES: usize = 256 * 1024;

/// While writes fail, a store segment takes no more records once this many
/// are unwritten (bytes): their publishers are refused instead.
pub const PENDING_MAX: usize = 16 * FLUSH_BYTES;

/// One open segment file with its mappings.
pub struct Segment {
    /// Its number (never reused within the shard).
    pub id: SegmentId,
    /// `<shard dir>/msgs.NNNNNNNNNN`.
    pub path: PathBuf,
    /// The open file (read-write), for syncing and mapping.
    pub file: File,
    /// Write mapping of a page-area segment; dropped once the segment is
    /// sealed (no more appends), so a large backlog does not stay in this
    /// process's resident set. None for a store segment.
    map: Option<MmapMut>,
    read: Arc<Mmap>,
    /// A store segment's records appended since the last [`Segment::flush`],
    /// to be written at file offset `written`.
    pending: Vec<u8>,
    /// Bytes of the file written (everything below this offset is in the
    /// page cache, and readable through `read`).
    written: usize,
    /// No more appends.
    sealed: bool,
    /// Next write offset.
    pub len: usize,
    /// File size in bytes (preallocated); records never cross it.
    pub capacity: usize,
    /// Live references from queues; the file is deleted when this reaches
    /// zero and the segment is no longer the one being written.
    pub refs: u64,
}

struct SegSlice(Arc<Mmap>, usize, usize);
impl AsRef<[u8]> for SegSlice {
    fn as_ref(&self) -> &[u8] {
        &self.0[self.1..self.2]
    }
}

fn io(path: &Path, source: std::io::Error) -> InfraError {
    InfraError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Segment `id`'s file in `dir`: `msgs.` and the number in 10 digits.
pub fn segment_path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(id.to_string())
}

/// A record's header: its payload length and CRC32C, little-endian.
fn put_header(dst: &mut [u8], payload: usize, crc: u32) {
    dst[..4].copy_from_slice(&(payload as u32).to_le_bytes());
    dst[4..HEADER].copy_from_slice(&crc.to_le_bytes());
}

impl Segment {
    /// Create and preallocate a new segment file written through a mapping
    /// (the transient page area).
    pub fn create(dir: &Path, id: SegmentId, capacity: usize) -> Result<Segment, InfraError> {
        Self::create_with(dir, id, capacity, true)
    }

    /// Create and preallocate a new store segment: appended records are
    /// buffered and written by [`Segment::flush`].
    pub fn create_buffered(
        dir: &Path,
        id: SegmentId,
        capacity: usize,
    ) -> Result<Segment, InfraError> {
        Self::create_with(dir, id, capacity, false)
    }

    fn create_with(
        dir: &Path,
        id: SegmentId,
        capacity: usize,
        mapped_writes: bool,
    ) -> Result<Segment, InfraError> {
        let path = segment_path(dir, id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        if let Err(e) =
            nix::fcntl::posix_fallocate(std::os::fd::AsRawFd::as_raw_fd(&file), 0, capacity as i64)
        {
            let _ = std::fs::remove_file(&path);
            return Err(io(&path, std::io::Error::from_raw_os_error(e as i32)));
        }
        Self::map(id, path, file, capacity, mapped_writes)
    }

    /// Open an existing segment (recovery); `len` is found by scanning.
    pub fn open(dir: &Path, id: SegmentId) -> Result<Segment, InfraError> {
        let path = segment_path(dir, id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let capacity = file.metadata().map_err(|e| io(&path, e))?.len() as usize;
        Self::map(id, path, file, capacity, false)
    }

    fn map(
        id: SegmentId,
        path: PathBuf,
        file: File,
        capacity: usize,
        mapped_writes: bool,
    ) -> Result<Segment, InfraError> {
        // SAFETY (memmap2 contract): only this shard's thread writes the
        // file (through the one write mapping, or with pwrite); nothing
        // truncates it while mapped.
        let map = if mapped_writes {
            Some(unsafe { MmapMut::map_mut(&file) }.map_err(|e| io(&path, e))?)
        } else {
            None
        };
        let read = Arc::new(unsafe { Mmap::map(&file) }.map_err(|e| io(&path, e))?);
        Ok(Segment {
            id,
            path,
            file,
            map,
            read,
            pending: Vec::new(),
            written: 0,
            sealed: false,
            len: 0,
            capacity,
            refs: 0,
        })
    }

    /// Whether a record of `payload` bytes (header excluded) still fits;
    /// false once sealed.
    pub fn fits(&self, payload: usize) -> bool {
        !self.sealed && self.len + HEADER + payload <= self.capacity
    }

    /// No more appends: unmap the write mapping. Dirty pages stay in the
    /// page cache and are still covered by an fdatasync of the file;
    /// buffered records stay buffered until the next [`Segment::flush`].
    pub fn seal(&mut self) {
        self.sealed = true;
        self.map = None;
    }

    /// Bytes of records appended but not yet written to the file.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// Write the buffered records to the file (the page cache) with one
    /// `pwrite` at their offset. On an error they stay buffered and the
    /// next flush writes them again from the same offset.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(&self.pending, self.written as u64)?;
        self.written += self.pending.len();
        self.pending.clear();
        if self.pending.capacity() > 4 * FLUSH_BYTES {
            self.pending.shrink_to(FLUSH_BYTES);
        }
        Ok(())
    }

    /// Drop this process's mapping of the read pages (MADV_DONTNEED). The
    /// data stays in the page cache and on disk and faults back on access;
    /// this only keeps a big on-disk backlog out of the resident set.
    pub fn shed(&self) {
        // SAFETY: a shared, file-backed, read-only mapping: DONTNEED drops
        // page-table entries only; later reads re-fault the file's pages, so
        // Bytes handed out from this mapping keep reading the same data.
        let _ = unsafe {
            self.read
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
    }

    /// Append one record built from `parts`; returns its offset. A store
    /// segment buffers it (written by [`Segment::flush`]); a page-area
    /// segment writes it through its mapping.
    pub fn append(&mut self, parts: &[&[u8]]) -> u32 {
        if self.sealed {
            return u32::MAX; // callers check `fits` first
        }
        let payload: usize = parts.iter().map(|p| p.len()).sum();
        let off = self.len;
        let at = off + HEADER + payload;
        // One pass: each part is checksummed right after it is copied,
        // while it is still in cache; the header goes in last.
        let mut crc = 0u32;
        if let Some(map) = self.map.as_mut() {
            let mut w = off + HEADER;
            for p in parts {
                map[w..w + p.len()].copy_from_slice(p);
                crc = crc32c::crc32c_append(crc, p);
                w += p.len();
            }
            put_header(&mut map[off..off + HEADER], payload, crc);
            self.written = at;
        } else {
            let start = self.pending.len();
            self.pending.reserve(HEADER + payload);
            self.pending.extend_from_slice(&[0u8; HEADER]);
            for p in parts {
                self.pending.extend_from_slice(p);
                crc = crc32c::crc32c_append(crc, p);
            }
            put_header(&mut self.pending[start..start + HEADER], payload, crc);
        }
        self.len = at;
        off as u32
    }

    /// The payload at `off`, verified against its checksum: zero-copy from
    /// the mapping, or copied out of the buffer if not yet written.
    pub fn read(&self, off: u32) -> Option<Bytes> {
        let off = off as usize;
        if off >= self.written && !self.pending.is_empty() {
            let rec = self.pending.get(off.checked_sub(self.written)?..)?;
            let len = u32::from_le_bytes(rec.get(..4)?.try_into().ok()?) as usize;
            let crc = u32::from_le_bytes(rec.get(4..8)?.try_into().ok()?);
            let payload = rec.get(HEADER..HEADER + len)?;
            return (len != 0 && crc32c::crc32c(payload) == crc)
                .then(|| Bytes::copy_from_slice(payload));
        }
        if off + HEADER > self.capacity {
            return None;
        }
        let len = u32::from_le_bytes(self.read[off..off + 4].try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(self.read[off + 4..off + 8].try_into().ok()?);
        let start = off + HEADER;
        if len == 0 || start + len > self.capacity {
            return None;
        }
        if crc32c::crc32c(&self.read[start..start + len]) != crc {
            return None;
        }
        Some(Bytes::from_owner(SegSlice(
            self.read.clone(),
            start,
            start + len,
        )))
    }

    /// Walk records from the start; returns the valid offsets and sets
    /// `len` to where the walk stopped: the first zero length (unwritten
    /// space) or a checksum failure not followed by a valid record (torn
    /// write, reported). A corrupt record followed by a valid one is
    /// skipped.
    pub fn scan(&mut self) -> Vec<u32> {
        let mut offs = Vec::new();
        let mut off = 0usize;
        while off + HEADER <= self.capacity {
            let len =
                u32::from_le_bytes(self.read[off..off + 4].try_into().unwrap_or([0; 4])) as usize;
            if len == 0 {
                break;
            }
            if self.read(off as u32).is_none() {
                tracing::warn!(file = %self.path.display(), offset = off, "corrupt or torn record: truncating segment here");
                // Skip a record whose length still leads to a valid one
                // (a flipped body byte); otherwise truncate here (torn tail).
                let next = off + HEADER + len;
                if next + HEADER <= self.capacity && self.read(next as u32).is_some() {
                    off = next;
                    continue;
                }
                // Zero the header so a later scan stops at the same place.
                use std::os::unix::fs::FileExt;
                if let Err(e) = self.file.write_all_at(&[0u8; HEADER], off as u64) {
                    tracing::warn!(file = %self.path.display(), "cannot clear a torn record's header: {e}");
                }
                break;
            }
            offs.push(off as u32);
            off += HEADER + len;
        }
        self.len = off;
        self.written = off;
        offs
    }

    /// A handle for syncing off the executor thread.
    pub fn sync_handle(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_scan_finds_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Segment::create(dir.path(), SegmentId(1), 4096).unwrap();
        let a = s.append(&[b"hello", b" world"]);
        let b = s.append(&[b"second"]);
        assert_eq!(&s.read(a).unwrap()[..], b"hello world");
        assert_eq!(&s.read(b).unwrap()[..], b"second");
        drop(s);
        let mut s = Segment::open(dir.path(), SegmentId(1)).unwrap();
        assert_eq!(s.scan(), vec![a, b]);
        assert!(!s.fits(4096));
    }

    #[test]
    fn buffered_records_read_back_before_and_after_their_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Segment::create_buffered(dir.path(), SegmentId(2), 1 << 20).unwrap();
        let a = s.append(&[b"first"]);
        let b = s.append(&[b"second ", b"record"]);
        // Not in the file yet: read from the buffer.
        assert_eq!(s.pending_bytes(), 2 * HEADER + 5 + 13);
        assert_eq!(&s.read(a).unwrap()[..], b"first");
        assert_eq!(&s.read(b).unwrap()[..], b"second record");
        s.flush().unwrap();
        assert_eq!(s.pending_bytes(), 0);
        let c = s.append(&[b"third"]);
        // Written ones come from the mapping, the new one from the buffer.
        assert_eq!(&s.read(b).unwrap()[..], b"second record");
        assert_eq!(&s.read(c).unwrap()[..], b"third");
        s.seal();
        assert!(!s.fits(1));
        s.flush().unwrap();
        drop(s);
        let mut s = Segment::open(dir.path(), SegmentId(2)).unwrap();
        assert_eq!(s.scan(), vec![a, b, c]);
        assert_eq!(&s.read(c).unwrap()[..], b"third");
    }

    #[test]
    fn a_record_never_flushed_is_not_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Segment::create_buffered(dir.path(), SegmentId(3), 4096).unwrap();
        let a = s.append(&[b"kept"]);
        s.flush().unwrap();
        s.append(&[b"lost with the process"]);
        drop(s);
        let mut s = Segment::open(dir.path(), SegmentId(3)).unwrap();
        assert_eq!(s.scan(), vec![a]);
    }

    #[test]
    fn flipped_byte_is_detected_and_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Segment::create(dir.path(), SegmentId(7), 4096).unwrap();
        let a = s.append(&[b"good"]);
        let b = s.append(&[b"will be corrupted"]);
        s.append(&[b"after"]);
        s.map.as_mut().unwrap()[b as usize + HEADER + 3] ^= 0xff;
        assert!(s.read(b).is_none());
        // The corrupt record is skipped; the one after it is kept.
        let c = s.len as u32 - (HEADER as u32 + 5);
        assert_eq!(s.scan(), vec![a, c]);
    }
}

//! A connection's outbound buffer: frames encoded into one `Vec<u8>`, with
//! large message bodies kept as the `Bytes` they already are and spliced in
//! at write time, so a delivery of a 16 KiB or 1 MiB body is never copied
//! into the write buffer (issue 14): the writer hands the kernel the
//! encoded bytes and the bodies in one vectored `sendmsg`.
//!
//! Owns: the encoded bytes and the body slices with their offsets. Must
//! never: copy a spliced body, or reorder anything (a body goes out exactly
//! where its frame's header put it). Everything else that writes frames
//! appends to the `Vec<u8>` as before (`Deref` to it), so only the delivery
//! path knows about splicing.

use bytes::Bytes;
use std::ops::{Deref, DerefMut};

/// Bodies at least this long (bytes) are spliced rather than copied:
/// below it, copying costs less than an extra I/O vector entry.
pub const SPLICE_MIN: usize = 2048;

/// A body slice to send at offset `at` of the encoded bytes.
#[derive(Debug, Clone)]
struct Splice {
    at: usize,
    body: Bytes,
}

/// The outbound buffer (see the module documentation).
#[derive(Debug, Default)]
pub struct OutBuf {
    bytes: Vec<u8>,
    splices: Vec<Splice>,
    spliced: usize,
}

impl Deref for OutBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl DerefMut for OutBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl OutBuf {
    /// Queue `body` to go out here, after what is encoded so far, without
    /// copying it.
    pub fn splice(&mut self, body: Bytes) {
        self.spliced += body.len();
        self.splices.push(Splice {
            at: self.bytes.len(),
            body,
        });
    }

    /// Bytes to send in all: encoded plus spliced.
    pub fn total_len(&self) -> usize {
        self.bytes.len() + self.spliced
    }

    /// Nothing to send.
    pub fn is_idle(&self) -> bool {
        self.bytes.is_empty() && self.splices.is_empty()
    }

    /// Whether any body is spliced (the writer then sends vectored).
    pub fn has_splices(&self) -> bool {
        !self.splices.is_empty()
    }

    /// The pieces to send, in order: runs of encoded bytes and the spliced
    /// bodies between them (empty runs left out).
    pub fn pieces(&self) -> Vec<&[u8]> {
        let mut out = Vec::with_capacity(self.splices.len() * 2 + 1);
        let mut from = 0;
        for s in &self.splices {
            // Clamped: only an encoder bug (`write_method` losing the
            // buffer) could leave a splice past the bytes; never panic.
            let at = s.at.min(self.bytes.len());
            if at > from {
                out.push(&self.bytes[from..at]);
            }
            if !s.body.is_empty() {
                out.push(&s.body[..]);
            }
            from = from.max(at);
        }
        if from < self.bytes.len() {
            out.push(&self.bytes[from..]);
        }
        out
    }

    /// Empty it, keeping the encoded bytes' capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.splices.clear();
        self.spliced = 0;
    }

    /// Drop the encoded bytes' allocation (a connection gone quiet gives a
    /// large buffer back).
    pub fn release(&mut self) {
        self.bytes = Vec::new();
        self.splices = Vec::new();
    }

    /// Everything as one contiguous byte string (tests and the in-process
    /// runner; the writer never joins).
    pub fn into_contiguous(self) -> Vec<u8> {
        if self.splices.is_empty() {
            return self.bytes;
        }
        self.pieces().concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spliced_bodies_go_out_where_they_were_queued() {
        let mut o = OutBuf::default();
        o.extend_from_slice(b"head1");
        o.splice(Bytes::from_static(b"BODY1"));
        o.extend_from_slice(b"end1head2");
        o.splice(Bytes::from_static(b"BODY2"));
        o.splice(Bytes::from_static(b"BODY3"));
        o.extend_from_slice(b"tail");
        assert_eq!(o.total_len(), 5 + 5 + 9 + 5 + 5 + 4);
        assert!(o.has_splices());
        let pieces = o.pieces();
        assert_eq!(
            pieces,
            vec![
                &b"head1"[..],
                b"BODY1",
                b"end1head2",
                b"BODY2",
                b"BODY3",
                b"tail"
            ]
        );
        assert_eq!(
            o.into_contiguous(),
            b"head1BODY1end1head2BODY2BODY3tail".to_vec()
        );
    }

    #[test]
    fn a_spliced_delivery_is_byte_for_byte_the_copied_one() {
        let body = Bytes::from((0..50_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let cases = [
            (4096, 50_000),
            (131_072, 50_000),
            (4096, 100),
            (4096, 8184),
            // Exactly one and two frames' worth, and the splice threshold.
            (4096, 4088),
            (4096, 8176),
            (4096, SPLICE_MIN),
            (4096, SPLICE_MIN - 1),
        ];
        for (frame_max, len) in cases {
            let body = body.slice(..len);
            let mut copied = Vec::new();
            super::super::write_content(&mut copied, 3, b"\x00\x00", &body, frame_max);
            let mut o = OutBuf::default();
            o.extend_from_slice(b"before");
            super::super::write_content_spliced(&mut o, 3, b"\x00\x00", &body, frame_max);
            assert_eq!(o.has_splices(), len >= SPLICE_MIN);
            let mut want = b"before".to_vec();
            want.extend_from_slice(&copied);
            assert_eq!(o.total_len(), want.len());
            assert_eq!(
                o.into_contiguous(),
                want,
                "frame_max {frame_max}, body {len}"
            );
        }
    }

    #[test]
    fn without_splices_it_is_its_bytes() {
        let mut o = OutBuf::default();
        assert!(o.is_idle());
        o.extend_from_slice(b"abc");
        assert!(!o.has_splices());
        assert_eq!(o.pieces(), vec![&b"abc"[..]]);
        o.clear();
        assert!(o.is_idle());
        o.splice(Bytes::from_static(b"x"));
        assert!(!o.is_idle());
        assert_eq!(o.into_contiguous(), b"x".to_vec());
    }
}

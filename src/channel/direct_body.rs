//! Large message bodies received straight into their own buffer.
//!
//! Owns [`DirectBody`], the one body per connection being assembled this
//! way, and [`step`], which reads the frames around it. When a body frame
//! of a large message (at least [`DIRECT_MIN`] bytes still to come) starts
//! in the read buffer, one buffer of exactly the rest of the body is
//! allocated, and the reader receives that body's frame payloads straight
//! into it (`channel::connection`'s read loop asks [`DirectBody::wanted`]).
//! Without this a 1 MiB body in eight 128 KiB frames was copied in user
//! space on every partial frame (the read buffer moved to grow), and once
//! more when its frames were joined into one body (PERF.md, "Large bodies
//! without a copy on delivery": 18% of the broker's time in `memmove`).
//! Frames of other channels interleave as usual.
//!
//! Must never: hold a body past a frame of its channel that is not its next
//! body frame (what is assembled is handed to the channel first, so the
//! publish state machine judges that frame exactly as without this path:
//! same reply codes and texts); allocate more than the content header
//! announced, nor more than [`DIRECT_MAX`] on a peer's word.

use crate::codec::{FRAME_BODY, FRAME_END};
use crate::error::AmqpError;
use bytes::{Buf, Bytes, BytesMut};

/// Bodies with at least this many bytes still to come take this path (bytes).
pub const DIRECT_MIN: u64 = 64 * 1024;

/// ... and at most this many (bytes): the buffer is allocated for the whole
/// rest of the body when its first frame starts, before the bytes arrive, so
/// a peer that announces a body and stops reserves at most this much per
/// connection. Larger bodies are joined from their frames as before.
pub const DIRECT_MAX: u64 = 16 * 1024 * 1024;

/// A body being received straight into its own buffer.
pub struct DirectBody {
    channel: u16,
    /// The body so far; its capacity holds all of it.
    body: BytesMut,
    /// The body's size in bytes (what was left of it when this started).
    total: usize,
    /// Payload bytes of the current frame still to come.
    frame_left: usize,
    /// The current frame's payload is in; its frame-end octet is next.
    end_next: bool,
}

/// What the read loop should read next while a body is assembled here.
pub enum Want<'a> {
    /// Up to this many payload bytes, straight into this buffer.
    Payload(&'a mut BytesMut, usize),
    /// At most this many bytes into the read buffer (the frame-end octet
    /// and the next frame's header), so the next payload is not read into
    /// the read buffer and copied out of it.
    Header(usize),
}

impl DirectBody {
    /// What to read next, given `buffered` bytes already in the read buffer;
    /// `None` for an ordinary read.
    pub fn wanted(&mut self, buffered: usize) -> Option<Want<'_>> {
        if self.frame_left > 0 {
            return Some(Want::Payload(&mut self.body, self.frame_left));
        }
        match (buffered, self.end_next) {
            (0, true) => Some(Want::Header(8)),
            (0, false) => Some(Want::Header(7)),
            _ => None,
        }
    }

    /// `n` payload bytes were read into the buffer [`Want::Payload`] gave.
    pub fn received(&mut self, n: usize) {
        self.frame_left -= n.min(self.frame_left);
        if self.frame_left == 0 && n > 0 {
            self.end_next = true;
        }
    }
}

/// The outcome of one [`step`].
pub enum Step {
    /// No body here: parse the read buffer's next frame as usual.
    Normal,
    /// Took bytes from the read buffer; step again.
    Again,
    /// Needs more input first.
    NeedMore,
    /// Hand this to the channel as one body frame: the whole body, or what
    /// was assembled before a frame that does not continue it.
    Body(u16, Bytes),
    /// A frame-end octet was missing: framing is lost (501 FRAME_ERROR).
    Error(AmqpError),
}

/// Advance the body in `state` with what the read buffer `buf` holds, or
/// start one when `buf` begins a large body frame. `body_left(channel)`
/// says how many body bytes that channel's publish still expects (`None`:
/// none expected, or the channel is closing). Frames longer than
/// `frame_max` (bytes, envelope included) are left to the usual parser,
/// which refuses them.
pub fn step(
    state: &mut Option<DirectBody>,
    buf: &mut BytesMut,
    frame_max: u32,
    body_left: impl FnOnce(u16) -> Option<u64>,
) -> Step {
    let Some(d) = state.as_mut() else {
        return start(state, buf, frame_max, body_left);
    };
    if d.frame_left > 0 {
        if buf.is_empty() {
            return Step::NeedMore;
        }
        let n = d.frame_left.min(buf.len());
        d.body.extend_from_slice(&buf[..n]);
        buf.advance(n);
        d.frame_left -= n;
        if d.frame_left > 0 {
            return Step::NeedMore;
        }
        d.end_next = true;
    }
    if d.end_next {
        if buf.is_empty() {
            return Step::NeedMore;
        }
        if buf[0] != FRAME_END {
            // next_frame's text for the same fault.
            return Step::Error(AmqpError::frame_error(format!(
                "type {FRAME_BODY}, first 16 octets = <<>>: frame_end_marker_missing"
            )));
        }
        buf.advance(1);
        d.end_next = false;
        if d.body.len() == d.total {
            return hand_over(state);
        }
        return Step::Again;
    }
    // Between two of its frames.
    if buf.len() < 7 {
        return Step::NeedMore;
    }
    let (kind, channel, size) = envelope(buf);
    if channel != d.channel {
        return Step::Normal;
    }
    if kind != FRAME_BODY || size as u64 + 8 > frame_max as u64 || size > d.total - d.body.len() {
        // Not the body's next frame: the channel gets what is assembled,
        // then that frame goes the usual way and meets the usual checks.
        return hand_over(state);
    }
    buf.advance(7);
    d.frame_left = size;
    d.end_next = size == 0;
    Step::Again
}

fn start(
    state: &mut Option<DirectBody>,
    buf: &BytesMut,
    frame_max: u32,
    body_left: impl FnOnce(u16) -> Option<u64>,
) -> Step {
    if buf.len() < 7 || buf[0] != FRAME_BODY {
        return Step::Normal;
    }
    let (_, channel, size) = envelope(buf);
    let complete = buf.len() >= size + 8;
    // A small frame already in is a zero-copy slice of the read buffer:
    // nothing to gain (and no lookup for every small body).
    if channel == 0
        || size as u64 + 8 > frame_max as u64
        || (complete && (size as u64) < DIRECT_MIN)
    {
        return Step::Normal;
    }
    let Some(left) = body_left(channel) else {
        return Step::Normal;
    };
    if !(DIRECT_MIN..=DIRECT_MAX).contains(&left)
        || size as u64 > left
        || (complete && size as u64 == left)
    {
        return Step::Normal;
    }
    *state = Some(DirectBody {
        channel,
        body: BytesMut::with_capacity(left as usize),
        total: left as usize,
        frame_left: 0,
        end_next: false,
    });
    Step::Again
}

/// End the body in `state`: hand over what it holds, if anything.
fn hand_over(state: &mut Option<DirectBody>) -> Step {
    match state.take() {
        Some(d) if !d.body.is_empty() => Step::Body(d.channel, d.body.freeze()),
        _ => Step::Normal,
    }
}

/// A frame's type, channel and payload size, from its first 7 bytes.
fn envelope(buf: &[u8]) -> (u8, u16, usize) {
    (
        buf[0],
        u16::from_be_bytes([buf[1], buf[2]]),
        u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_frame(ch: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![FRAME_BODY];
        f.extend_from_slice(&ch.to_be_bytes());
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f.push(FRAME_END);
        f
    }

    /// Feed `input` in pieces of `chunk` bytes; collect what is handed over
    /// and what is left to the usual parser (taken off as whole frames).
    fn run(input: &[u8], chunk: usize, left: u64) -> (Vec<(u16, Vec<u8>)>, usize) {
        let mut state = None;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut normal = 0;
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                let announced = left
                    - out
                        .iter()
                        .map(|(_, b): &(u16, Vec<u8>)| b.len() as u64)
                        .sum::<u64>();
                match step(&mut state, &mut buf, 131_072, |_| Some(announced)) {
                    Step::Again => {}
                    Step::NeedMore => break,
                    Step::Body(ch, b) => out.push((ch, b.to_vec())),
                    Step::Error(e) => panic!("{e}"),
                    Step::Normal => {
                        if buf.len() < 7 {
                            break;
                        }
                        let (_, _, size) = envelope(&buf);
                        if buf.len() < size + 8 {
                            break;
                        }
                        buf.advance(size + 8);
                        normal += 1;
                    }
                }
            }
        }
        (out, normal)
    }

    #[test]
    fn a_multi_frame_body_is_handed_over_whole_whatever_the_read_sizes() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut input = Vec::new();
        for part in body.chunks(131_064) {
            input.extend(body_frame(1, part));
        }
        for chunk in [1, 7, 8, 4096, 131_072, 1 << 20] {
            let (out, normal) = run(&input, chunk, body.len() as u64);
            assert_eq!(normal, 0, "chunk {chunk}");
            assert_eq!(out.len(), 1, "chunk {chunk}");
            assert_eq!(out[0].0, 1);
            assert!(out[0].1 == body, "chunk {chunk}: body differs");
        }
    }

    #[test]
    fn other_channels_frames_interleave_and_a_foreign_frame_on_the_channel_ends_it() {
        let body = vec![7u8; 200_000];
        let mut input = body_frame(1, &body[..131_064]);
        input.extend(body_frame(2, b"other channel"));
        input.extend([8, 0, 0, 0, 0, 0, 0, FRAME_END]); // heartbeat
        input.extend(body_frame(1, &body[131_064..]));
        let (out, normal) = run(&input, 1000, body.len() as u64);
        assert_eq!(normal, 2);
        assert_eq!(out, vec![(1, body.clone())]);
        // A method frame on channel 1 mid-body: what was assembled is
        // handed over first, and the method goes the usual way.
        let mut input = body_frame(1, &body[..131_064]);
        input.extend([1, 0, 1, 0, 0, 0, 4, 0, 20, 0, 40, FRAME_END]);
        let (out, normal) = run(&input, 1000, body.len() as u64);
        assert_eq!(out, vec![(1, body[..131_064].to_vec())]);
        assert_eq!(normal, 1);
    }

    #[test]
    fn a_missing_frame_end_is_a_frame_error() {
        let mut input = body_frame(1, &[1u8; 100_000]);
        *input.last_mut().unwrap() = 0;
        let mut state = None;
        let mut buf = BytesMut::from(&input[..]);
        let mut codes = Vec::new();
        for _ in 0..4 {
            match step(&mut state, &mut buf, 131_072, |_| Some(200_000)) {
                Step::Error(e) => {
                    codes.push(e.code);
                    break;
                }
                Step::Again => continue,
                _ => break,
            }
        }
        assert_eq!(codes, vec![crate::error::FRAME_ERROR]);
    }

    #[test]
    fn small_bodies_and_single_complete_frames_stay_on_the_usual_path() {
        let mut state = None;
        let mut buf = BytesMut::from(&body_frame(1, &[0u8; 1000])[..]);
        assert!(matches!(
            step(&mut state, &mut buf, 131_072, |_| Some(1000)),
            Step::Normal
        ));
        let mut buf = BytesMut::from(&body_frame(1, &[0u8; 100_000])[..]);
        assert!(matches!(
            step(&mut state, &mut buf, 131_072, |_| Some(100_000)),
            Step::Normal
        ));
        // Too large to reserve on a peer's word, or nothing expected.
        let mut buf = BytesMut::from(&body_frame(1, &[0u8; 100_000])[..50_000]);
        assert!(matches!(
            step(&mut state, &mut buf, 131_072, |_| Some(DIRECT_MAX + 1)),
            Step::Normal
        ));
        assert!(matches!(
            step(&mut state, &mut buf, 131_072, |_| None),
            Step::Normal
        ));
        assert!(state.is_none());
    }
}

//! Receiving a large message body: a 1 MiB body arriving in 128 KiB body
//! frames, read from a simulated socket in 64 KiB reads (a `memcpy` stands
//! in for the kernel's copy in `recv`, so both sides pay it once).
//!
//! * `direct`: `warren::channel::direct_body`, as the connection's read
//!   loop drives it: once the body's first frame starts, its payloads are
//!   received straight into one buffer of the body's size, and only the
//!   frame-end octet and the next header go through the read buffer.
//! * `joined`: the path before it: frames are read into the read buffer,
//!   split off as slices, and joined into one body when the last arrives.
//!
//! PERF.md, "Large bodies received without a copy", has the s2c profile and
//! the end-to-end before/after.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use warren::channel::direct_body::{step, DirectBody, Step, Want};

const BODY: usize = 1024 * 1024;
const FRAME_MAX: u32 = 128 * 1024;
const READ: usize = 64 * 1024;
const CHANNEL: u16 = 1;

/// The body's frames as they come off the wire.
fn wire() -> Vec<u8> {
    let payload_max = FRAME_MAX as usize - 8;
    let mut w = Vec::with_capacity(BODY + 8 * (BODY / payload_max + 1));
    let mut left = BODY;
    while left > 0 {
        let n = left.min(payload_max);
        w.push(3);
        w.extend_from_slice(&CHANNEL.to_be_bytes());
        w.extend_from_slice(&(n as u32).to_be_bytes());
        w.extend(std::iter::repeat_n(0x5a, n));
        w.push(0xce);
        left -= n;
    }
    w
}

/// A socket that hands out `wire` in reads of at most `READ` bytes.
struct Socket<'a> {
    wire: &'a [u8],
    at: usize,
}

impl Socket<'_> {
    /// `recv` of at most `max` bytes appended to `into`; 0 at the end.
    fn recv(&mut self, into: &mut BytesMut, max: usize) -> usize {
        let n = max.min(READ).min(self.wire.len() - self.at);
        into.extend_from_slice(&self.wire[self.at..self.at + n]);
        self.at += n;
        n
    }
}

fn receive_direct(wire: &[u8]) -> Bytes {
    let mut sock = Socket { wire, at: 0 };
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut state: Option<DirectBody> = None;
    loop {
        match step(&mut state, &mut buf, FRAME_MAX, |_| Some(BODY as u64)) {
            Step::Body(_, body) => return body,
            Step::Again => continue,
            // Normal: the frame's header is not in yet (the usual parser
            // would wait for more); NeedMore: the body wants more.
            Step::Normal | Step::NeedMore => {}
            Step::Error(e) => panic!("{e:?}"),
        }
        let n = match state.as_mut().and_then(|d| d.wanted(buf.len())) {
            Some(Want::Payload(body, max)) => {
                let n = sock.recv(body, max);
                state.as_mut().unwrap().received(n);
                n
            }
            Some(Want::Header(max)) => sock.recv(&mut buf, max),
            None => sock.recv(&mut buf, READ),
        };
        assert!(n > 0, "the wire ended before the body");
    }
}

fn receive_joined(wire: &[u8]) -> Bytes {
    let mut sock = Socket { wire, at: 0 };
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut parts: Vec<Bytes> = Vec::new();
    let mut got = 0;
    while got < BODY {
        assert!(
            sock.recv(&mut buf, READ) > 0,
            "the wire ended before the body"
        );
        while buf.len() >= 7 {
            let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
            if buf.len() < size + 8 {
                break;
            }
            let frame = buf.split_to(size + 8).freeze();
            parts.push(frame.slice(7..7 + size));
            got += size;
        }
    }
    let mut body = BytesMut::with_capacity(BODY);
    for p in &parts {
        body.extend_from_slice(p);
    }
    body.freeze()
}

fn receive(c: &mut Criterion) {
    let w = wire();
    assert_eq!(receive_direct(&w).len(), BODY);
    assert_eq!(receive_joined(&w), receive_direct(&w));
    let mut g = c.benchmark_group("body/receive_1mib");
    g.throughput(Throughput::Bytes(BODY as u64));
    g.bench_function("direct", |b| b.iter(|| receive_direct(black_box(&w))));
    g.bench_function("joined", |b| b.iter(|| receive_joined(black_box(&w))));
    g.finish();
}

criterion_group!(benches, receive);
criterion_main!(benches);

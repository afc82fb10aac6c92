//! The frame envelope and every method parser reached from it: any bytes,
//! any frame_max, split into frames until more bytes are needed or the
//! input is refused. Must never panic, loop or allocate beyond frame_max.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warren::codec::{check_protocol_header, next_frame};

fuzz_target!(|data: &[u8]| {
    let _ = check_protocol_header(data);
    if data.len() < 2 {
        return;
    }
    // frame_max between the spec's minimum (4096) and 1 MiB.
    let frame_max = 4096 + (u32::from(u16::from_be_bytes([data[0], data[1]])) << 4);
    let mut buf = BytesMut::from(&data[2..]);
    let mut frames = 0;
    while let Ok(Some(_)) = next_frame(&mut buf, frame_max) {
        frames += 1;
        assert!(frames <= data.len(), "more frames than bytes: no progress");
    }
});

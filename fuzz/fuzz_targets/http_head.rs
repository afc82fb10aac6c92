//! The management API's request head parser, query splitting and path
//! decoding (reachable without credentials).
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren::mgmt::http::{decode_path_segment, parse_head, request_from};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((head, n))) = parse_head(data) {
        assert!(n <= data.len());
        let body = data[n..]
            .iter()
            .take(head.content_length)
            .copied()
            .collect();
        let req = request_from(head, body);
        for seg in req.path.split('/') {
            let _ = decode_path_segment(seg);
        }
    }
});

//! The hot-path parsers of `codec::fast` (basic.publish, ack/nack/reject,
//! content headers and their property scan), fed any payload.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use warren::codec::fast;

fuzz_target!(|data: &[u8]| {
    let _ = fast::method_ids(data);
    let _ = fast::parse_publish(data);
    let _ = fast::parse_settle(data);
    let _ = fast::scan_properties(data);
    let _ = fast::parse_header(&Bytes::copy_from_slice(data));
});

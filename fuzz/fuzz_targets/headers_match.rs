//! Headers-exchange matching on field tables a peer sends: binding
//! arguments and message headers both parsed from the fuzzer's bytes.
#![no_main]

use amq_protocol::types::parsing::parse_field_table;
use libfuzzer_sys::fuzz_target;
use warren::routing::headers::headers_match;

fuzz_target!(|data: &[u8]| {
    let Ok((rest, args)) = parse_field_table(data) else {
        return;
    };
    let headers = parse_field_table(rest).ok().map(|(_, h)| h);
    let _ = headers_match(&args, headers.as_ref());
    let _ = headers_match(&args, None);
});

//! What Warren itself still parses of a management request (hyper parses
//! the HTTP framing): the request target's path and query, the Basic
//! credentials, path-segment decoding, and every typed request body.
//! All of it is reachable without credentials except the bodies, which a
//! logged-in user with few rights can send. Input: the request target up
//! to the first newline, the Authorization header value up to the second,
//! the body after it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren::mgmt::body::parse_bytes;
use warren::mgmt::http::{decode_path_segment, Request};
use warren::mgmt::requests::*;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let target = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let auth = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default().to_vec();
    let headers = vec![("authorization".to_string(), auth)];
    let req = Request::from_parts("POST", &target, headers, body);
    for seg in req.path.split('/') {
        let _ = decode_path_segment(seg);
    }
    let b = &req.body;
    let _ = parse_bytes::<ExchangeBody>(b);
    let _ = parse_bytes::<QueueBody>(b);
    let _ = parse_bytes::<BindingBody>(b);
    let _ = parse_bytes::<UserBody>(b);
    let _ = parse_bytes::<PermissionBody>(b);
    let _ = parse_bytes::<PublishBody>(b);
    let _ = parse_bytes::<GetBody>(b);
    let _ = parse_bytes::<LimitBody>(b);
    let _ = parse_bytes::<Definitions>(b);
    let _ = parse_bytes::<VhostBody>(b);
    let _ = parse_bytes::<TopicPermissionBody>(b);
    // A permission pattern as a peer may send it (braces read as PCRE
    // reads them, then compiled under the regex size limit).
    let pattern = String::from_utf8_lossy(b);
    let _ = warren::defs::users::pcre_braces(&pattern);
    let _ = warren::defs::users::validate_topic_permission(&warren::defs::users::TopicPermissionDef {
        user: "u".into(),
        vhost: "/".into(),
        exchange: "x".into(),
        write: pattern.to_string(),
        read: String::new(),
    });
});

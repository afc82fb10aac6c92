//! The message as it travels through the broker.
//!
//! A [`Message`] is immutable once published and shared by `Arc`: routing it
//! to K queues on any number of shards stores one body, not K copies. The
//! body and properties are `Bytes` slices of the publisher's read buffer.

use amq_protocol::types::ShortString;
use bytes::Bytes;
use std::sync::Arc;

/// One published message: routing data, raw properties and body, shared as
/// [`MsgRef`] by every queue it was routed to.
#[derive(Debug, Clone)]
pub struct Message {
    /// Exchange name from basic.publish (empty for the default exchange); kept for
    /// basic.deliver / basic.get-ok and dead-lettering.
    pub exchange: ShortString,
    /// Routing key from basic.publish (at most 255 bytes, a short string).
    pub routing_key: ShortString,
    /// Raw content-header property bytes (flags + list) as the publisher sent.
    pub props: Bytes,
    /// Message body (content frames joined; a slice of the read buffer when it came
    /// in one frame), in bytes; its length is the content header's body-size.
    pub body: Bytes,
    /// The publisher set delivery-mode 2: stored on disk (and confirmed after
    /// the group commit) when routed to a durable queue; transient otherwise.
    pub persistent: bool,
    /// Per-message TTL from the `expiration` property, in ms (parsed and
    /// validated once at publish by [`parse_expiration`]).
    pub expiration_ms: Option<u64>,
    /// The `priority` property (0 when absent), for priority queues.
    pub priority: u8,
}

/// The `expiration` property as RabbitMQ reads it: an optional sign and
/// decimal digits, nothing else, not negative; no upper bound. The error is
/// RabbitMQ's reason term, for `406 PRECONDITION_FAILED - invalid
/// expiration '<value>': <reason>` (recorded from RabbitMQ 3.10).
pub fn parse_expiration(s: &str) -> Result<u64, String> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return Err("no_integer".into());
    }
    if end < digits.len() {
        return Err(format!("{{leftover_string,\"{}\"}}", &digits[end..]));
    }
    // Overlong digit strings saturate: RabbitMQ has no upper bound.
    let n: u64 = digits.parse().unwrap_or(u64::MAX);
    if neg && n != 0 {
        return Err(format!("{{value_negative,-{digits}}}"));
    }
    Ok(n)
}

/// Shared handle to an immutable [`Message`]; cloning it is one atomic increment.
pub type MsgRef = Arc<Message>;

/// Equality for the short names compared on every publish (exchange,
/// routing key). Written as a plain loop: on this platform each libc
/// `memcmp` call was costlier than the whole comparison of a short name.
#[inline]
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for i in 0..a.len() {
        diff |= a[i] ^ b[i];
    }
    diff == 0
}

impl Message {
    /// Body length in bytes (properties not counted).
    pub fn size(&self) -> usize {
        self.body.len()
    }
}

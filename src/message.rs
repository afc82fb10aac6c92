//! The message as it travels through the broker.
//!
//! A [`Message`] is immutable once published and shared by `Arc`: routing it
//! to K queues on any number of shards stores one body, not K copies. The
//! body and properties are `Bytes` slices of the publisher's read buffer.

use amq_protocol::types::ShortString;
use bytes::Bytes;
use std::sync::Arc;

#[derive(Debug)]
pub struct Message {
    pub exchange: ShortString,
    pub routing_key: ShortString,
    /// Raw content-header property bytes (flags + list) as the publisher sent.
    pub props: Bytes,
    pub body: Bytes,
    /// delivery-mode 2.
    pub persistent: bool,
}

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
    pub fn size(&self) -> usize {
        self.body.len()
    }
}

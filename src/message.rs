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

impl Message {
    pub fn size(&self) -> usize {
        self.body.len()
    }
}

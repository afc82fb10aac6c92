//! Queue length limits (`x-max-length`, `x-max-length-bytes`,
//! `x-overflow`), as RabbitMQ's classic queues apply them: they count ready
//! messages only (not unacknowledged ones).

use amq_protocol::types::{AMQPValue, FieldTable};

/// What a queue at its length limit does with a new message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Enqueue it and drop (dead-letter, reason `maxlen`) from the head.
    #[default]
    DropHead,
    /// Refuse it: the publisher's confirm is a `basic.nack`.
    RejectPublish,
    /// Refuse it, nack the confirm, and dead-letter it (reason `maxlen`).
    RejectPublishDlx,
}

/// A queue's length limits (validated at declare by `meta::queue_args`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LengthLimits {
    /// Ready messages at most.
    pub max_length: Option<u64>,
    /// Bytes of ready message bodies at most.
    pub max_length_bytes: Option<u64>,
    /// `x-overflow`: what happens at a limit (default `drop-head`).
    pub overflow: Overflow,
}

impl LengthLimits {
    /// From a queue's arguments.
    pub fn from_args(args: &FieldTable) -> Self {
        let int = |k: &str| {
            args.inner()
                .get(k)
                .and_then(crate::defs::arg_integer)
                .and_then(|n| u64::try_from(n).ok())
        };
        let overflow = match args.inner().get("x-overflow") {
            Some(AMQPValue::LongString(s)) if s.as_bytes() == b"reject-publish" => {
                Overflow::RejectPublish
            }
            Some(AMQPValue::LongString(s)) if s.as_bytes() == b"reject-publish-dlx" => {
                Overflow::RejectPublishDlx
            }
            _ => Overflow::DropHead,
        };
        LengthLimits {
            max_length: int("x-max-length"),
            max_length_bytes: int("x-max-length-bytes"),
            overflow,
        }
    }
}

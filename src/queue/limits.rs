//! Queue length limits (`x-max-length`, `x-max-length-bytes`,
//! `x-overflow`), as RabbitMQ's classic queues apply them: they count ready
//! messages only (not unacknowledged ones).

use amq_protocol::types::FieldTable;

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
        // Short or long string alike: validation (`meta::queue_args`)
        // accepts both, so both must act.
        let overflow = match args
            .inner()
            .get("x-overflow")
            .and_then(crate::defs::arg_text)
        {
            Some(s) if s == "reject-publish" => Overflow::RejectPublish,
            Some(s) if s == "reject-publish-dlx" => Overflow::RejectPublishDlx,
            _ => Overflow::DropHead,
        };
        LengthLimits {
            max_length: int("x-max-length"),
            max_length_bytes: int("x-max-length-bytes"),
            overflow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::AMQPValue;

    #[test]
    fn x_overflow_acts_whether_sent_as_a_short_or_a_long_string() {
        for v in [
            AMQPValue::ShortString("reject-publish".into()),
            AMQPValue::LongString("reject-publish".into()),
        ] {
            let mut args = FieldTable::default();
            args.insert("x-overflow".into(), v);
            assert_eq!(
                LengthLimits::from_args(&args).overflow,
                Overflow::RejectPublish
            );
        }
        let mut args = FieldTable::default();
        args.insert(
            "x-overflow".into(),
            AMQPValue::ShortString("reject-publish-dlx".into()),
        );
        assert_eq!(
            LengthLimits::from_args(&args).overflow,
            Overflow::RejectPublishDlx
        );
    }
}

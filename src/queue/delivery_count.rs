//! Delivery counting and the delivery limit (`x-delivery-limit`, quorum
//! queues' poison-message handling).
//!
//! A quorum queue (`x-queue-type: quorum`) counts how many times each
//! message went out and came back (requeued by a nack or reject, or by its
//! channel closing) and shows the count to consumers in the
//! `x-delivery-count` header of every delivery (0 the first time), as
//! RabbitMQ 3.10 does; once a message has come back more than
//! `x-delivery-limit` times it is dead-lettered with reason
//! `delivery_limit` (or dropped without a dead-letter exchange). A quorum
//! queue without the argument gets RabbitMQ 4's default limit of 20.
//! Beyond RabbitMQ, a classic queue with `x-delivery-limit` counts and
//! limits the same way. The count is journalled with each delivery of a
//! stored message, so a poison message is still caught after a restart.
//!
//! Pure functions and data; the header costs one copy of the properties
//! per delivery from a counting queue (never of the body) and nothing for
//! other queues.

use crate::message::{Message, MsgRef};
use amq_protocol::protocol::basic::parse_properties;
use amq_protocol::types::{AMQPValue, FieldTable};
use std::sync::Arc;

/// RabbitMQ 4's default `x-delivery-limit` of a quorum queue.
pub const QUORUM_DEFAULT_LIMIT: u32 = 20;

/// The header that carries the count (RabbitMQ's).
pub const HEADER: &str = "x-delivery-count";

/// How a queue counts deliveries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounting {
    /// Deliveries carry `x-delivery-count`.
    pub counted: bool,
    /// Returns allowed before the message is dead-lettered (`delivery_limit`).
    pub limit: Option<u32>,
}

impl DeliveryCounting {
    /// From a queue's arguments (validated at declare): quorum queues and
    /// queues with `x-delivery-limit` count.
    pub fn from_args(args: &FieldTable) -> Self {
        let inner = args.inner();
        let quorum = inner
            .get("x-queue-type")
            .and_then(crate::defs::arg_text)
            .as_deref()
            == Some("quorum");
        let limit = inner
            .get("x-delivery-limit")
            .and_then(crate::defs::arg_integer)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        DeliveryCounting {
            counted: quorum || limit.is_some(),
            limit: limit.or(quorum.then_some(QUORUM_DEFAULT_LIMIT)),
        }
    }

    /// A message delivered `deliveries` times just came back: is it over
    /// the limit?
    pub fn exceeded(&self, deliveries: u32) -> bool {
        self.limit.is_some_and(|l| deliveries > l)
    }
}

/// `msg` as delivered with `x-delivery-count: returns` (the body is shared,
/// only the properties are re-encoded). Unreadable properties are left as
/// they are.
pub fn with_count(msg: &MsgRef, returns: u32) -> MsgRef {
    let Ok((_, props)) = parse_properties(&msg.props[..]) else {
        return msg.clone();
    };
    let mut headers = props.headers().clone().unwrap_or_default();
    headers.insert(HEADER.into(), AMQPValue::LongLongInt(i64::from(returns)));
    let props = props.with_headers(headers);
    Arc::new(Message {
        props: crate::codec::encode_properties(&props),
        ..Message::clone(msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::defs::field_table as args;

    #[test]
    fn quorum_queues_count_with_a_default_limit_and_classic_ones_only_when_asked() {
        let q = DeliveryCounting::from_args(&args(&[(
            "x-queue-type",
            AMQPValue::LongString("quorum".into()),
        )]));
        assert_eq!(
            q,
            DeliveryCounting {
                counted: true,
                limit: Some(20)
            }
        );
        let c = DeliveryCounting::from_args(&args(&[("x-delivery-limit", AMQPValue::LongInt(2))]));
        assert_eq!(
            c,
            DeliveryCounting {
                counted: true,
                limit: Some(2)
            }
        );
        assert!(!c.exceeded(2) && c.exceeded(3));
        assert_eq!(
            DeliveryCounting::from_args(&FieldTable::default()),
            DeliveryCounting::default()
        );
    }

    #[test]
    fn the_count_header_is_added_and_the_body_shared() {
        let m: MsgRef = Arc::new(Message {
            exchange: "".into(),
            routing_key: "q".into(),
            props: crate::codec::encode_properties(&Default::default()),
            body: bytes::Bytes::from_static(b"body"),
            persistent: false,
            expiration_ms: None,
            priority: 0,
        });
        let d = with_count(&m, 3);
        assert_eq!(d.body.as_ptr(), m.body.as_ptr());
        let (_, p) = parse_properties(&d.props[..]).unwrap();
        assert_eq!(
            p.headers().as_ref().unwrap().inner().get(HEADER),
            Some(&AMQPValue::LongLongInt(3))
        );
    }
}

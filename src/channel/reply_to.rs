//! Direct reply-to (RabbitMQ's `amq.rabbitmq.reply-to`): RPC replies that
//! need no reply queue.
//!
//! A requester consumes from the pseudo-queue `amq.rabbitmq.reply-to` in
//! no-ack mode; publishing with `reply-to = amq.rabbitmq.reply-to` on that
//! channel rewrites the property to the channel's reply address
//! `amq.rabbitmq.reply-to.<token>`; a responder publishes its reply to the
//! default exchange with that address as routing key and the reply goes
//! straight to the requester's channel, on whatever shard it lives, through
//! the same mailboxes as deliveries ([`crate::bus::ShardMsg::DirectReply`]).
//!
//! The token is the requester's connection id, channel number and a
//! 128-bit random nonce drawn when it started consuming (base64url). The
//! connection id says where to send the reply; the nonce, checked by the
//! requester's channel, is what makes an address unforgeable: a reply
//! reaches a channel only with the nonce of its current reply consumer, so
//! no other connection (nor a later consumer on the same channel) can be
//! addressed by guessing ids.
//!
//! Behaviour recorded from RabbitMQ 3.10 (`tests/python/test_direct_reply_to.py`):
//! consuming in ack mode is 406 `reply consumer cannot acknowledge`, a
//! second reply consumer on the channel 406 `reply consumer already set`,
//! publishing with the pseudo-queue as `reply-to` before consuming 406
//! `fast reply consumer does not exist`; a reply address is not a queue,
//! so a mandatory reply is always returned (312 NO_ROUTE), delivered or
//! not, and confirmed at once; an unknown or stale address drops the
//! reply. Must never: lock, copy a body, or block; a reply costs one
//! mailbox message and is written with the requester's next batch.

use super::{Channel, Conn};
use crate::codec;
use crate::error::{AmqpError, AmqpResult};
pub use crate::ids::ReplyAddress;
use crate::ids::{ConnId, ShardId};
use crate::message::MsgRef;
use amq_protocol::protocol::basic;
use base64::Engine;
use std::rc::Rc;

pub use crate::codec::fast::DIRECT_REPLY_TO;

/// The prefix of every reply address (`amq.rabbitmq.reply-to.`).
pub const ADDRESS_PREFIX: &str = "amq.rabbitmq.reply-to.";

/// Reply bytes a requester may have waiting in its connection's write
/// buffer (16 MiB): beyond it, further replies to that connection are
/// dropped (counted in the log) rather than buffered without bound. A
/// reply consumer is no-ack and has no prefetch, so nothing else would
/// bound what responders can push at a requester that does not read.
pub const MAX_PENDING_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// A channel's direct reply-to consumer (`Channel::reply_consumer`).
#[derive(Debug, Clone)]
pub struct ReplyConsumer {
    /// Consumer tag for basic.deliver (and basic.cancel).
    pub tag: Rc<str>,
    /// The nonce its reply address carries.
    pub nonce: u128,
    /// The full reply address, `amq.rabbitmq.reply-to.<token>`.
    pub address: String,
}

const TOKEN_BYTES: usize = 8 + 2 + 16;

/// The reply address of `conn`'s channel `channel` with `nonce`.
pub fn encode(a: ReplyAddress) -> String {
    let mut raw = [0u8; TOKEN_BYTES];
    raw[..8].copy_from_slice(&a.conn.0.to_be_bytes());
    raw[8..10].copy_from_slice(&a.channel.to_be_bytes());
    raw[10..].copy_from_slice(&a.nonce.to_be_bytes());
    let mut s = String::with_capacity(ADDRESS_PREFIX.len() + 36);
    s.push_str(ADDRESS_PREFIX);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(raw, &mut s);
    s
}

/// Decode a routing key published to the default exchange: Some for a
/// well-formed reply address (whether or not anyone is behind it).
pub fn decode(routing_key: &str) -> Option<ReplyAddress> {
    let token = routing_key.strip_prefix(ADDRESS_PREFIX)?;
    let mut raw = [0u8; TOKEN_BYTES];
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode_slice(token, &mut raw)
        .ok()?;
    if n != TOKEN_BYTES {
        return None;
    }
    let conn = ConnId(u64::from_be_bytes(raw[..8].try_into().ok()?));
    let channel = u16::from_be_bytes(raw[8..10].try_into().ok()?);
    let nonce = u128::from_be_bytes(raw[10..].try_into().ok()?);
    Some(ReplyAddress {
        conn,
        channel,
        nonce,
    })
}

/// The shard a reply address names, if the node has it (a forged token can
/// name any number).
pub fn shard_of(a: &ReplyAddress, shards: usize) -> Option<ShardId> {
    let s = a.conn.shard();
    (s.0 < shards).then_some(s)
}

/// Send a reply published to the reply address `msg.routing_key` towards
/// the requester's shard (through the outbox; that shard checks the address
/// against the channel). Returns false if the routing key is not a
/// well-formed address of this node (the reply is then dropped).
pub fn forward(link: &crate::bus::Link, msg: MsgRef) -> bool {
    let Some(to) = decode(msg.routing_key.as_str()) else {
        return false;
    };
    let Some(shard) = shard_of(&to, link.shard_count()) else {
        return false;
    };
    link.outbox
        .push(shard, crate::bus::ShardMsg::DirectReply { to, msg });
    true
}

/// basic.consume on `amq.rabbitmq.reply-to`: registers the channel's reply
/// consumer and returns its tag. Errors (RabbitMQ 3.10's): 406 `reply
/// consumer cannot acknowledge` without no-ack, 406 `reply consumer
/// already set` for a second one, 530 `attempt to reuse consumer tag` if
/// a queue consumer has the tag.
pub fn consume(conn_id: ConnId, ch: &mut Channel, c: &basic::Consume) -> AmqpResult<String> {
    if !c.no_ack {
        return Err(AmqpError::precondition_failed(
            "reply consumer cannot acknowledge",
        ));
    }
    if ch.reply_consumer.is_some() {
        return Err(AmqpError::precondition_failed("reply consumer already set"));
    }
    let tag = if c.consumer_tag.as_str().is_empty() {
        format!("amq.ctag-{}", crate::meta::authority::random_suffix())
    } else {
        c.consumer_tag.to_string()
    };
    if ch.consumers.contains_key(&tag) {
        return Err(AmqpError::not_allowed(format!(
            "attempt to reuse consumer tag '{tag}'"
        )));
    }
    let nonce: u128 = rand::random();
    let address = encode(ReplyAddress {
        conn: conn_id,
        channel: ch.id,
        nonce,
    });
    ch.reply_consumer = Some(ReplyConsumer {
        tag: Rc::from(tag.as_str()),
        nonce,
        address,
    });
    Ok(tag)
}

/// basic.cancel of the reply consumer: true if `tag` was it (its address
/// stops working at once).
pub fn cancel(ch: &mut Channel, tag: &str) -> bool {
    if ch.reply_consumer.as_ref().is_some_and(|r| &*r.tag == tag) {
        ch.reply_consumer = None;
        return true;
    }
    false
}

/// A publish whose `reply-to` is the pseudo-queue: `props` with `reply-to`
/// set to the channel's reply address. Error: 406 `fast reply consumer does
/// not exist` when the channel has no reply consumer.
pub fn rewrite_reply_to(
    consumer: Option<&ReplyConsumer>,
    props: amq_protocol::protocol::basic::AMQPProperties,
) -> AmqpResult<amq_protocol::protocol::basic::AMQPProperties> {
    let Some(r) = consumer else {
        return Err(AmqpError::precondition_failed(
            "fast reply consumer does not exist",
        ));
    };
    Ok(props.with_reply_to(r.address.as_str().into()))
}

/// A reply arrived for `conn`'s channel `a.channel` (on this shard): write
/// it as a basic.deliver to the channel's reply consumer if the address's
/// nonce is that consumer's, else drop it. Returns whether it was written.
pub fn deliver(conn: &Conn, a: &ReplyAddress, msg: &MsgRef) -> bool {
    if conn.closed.get() {
        return false;
    }
    let mut st = conn.state.borrow_mut();
    let Some(ch) = st.channels.get_mut(&a.channel) else {
        return false;
    };
    if ch.closing {
        return false;
    }
    let Some(r) = ch.reply_consumer.as_ref().filter(|r| r.nonce == a.nonce) else {
        return false;
    };
    if conn.out_len() > MAX_PENDING_REPLY_BYTES {
        tracing::warn!(
            conn = conn.id.0,
            channel = a.channel,
            "direct reply dropped: the requester's connection has {MAX_PENDING_REPLY_BYTES} bytes unwritten"
        );
        return false;
    }
    let tag = r.tag.clone();
    let delivery_tag = ch.next_tag;
    ch.next_tag += 1;
    ch.stats.deliver += 1;
    drop(st);
    let mut out = conn.out.borrow_mut();
    codec::fast::write_deliver(
        &mut out,
        a.channel,
        &tag,
        delivery_tag,
        false,
        msg.exchange.as_str(),
        msg.routing_key.as_str(),
    );
    codec::write_content(
        &mut out,
        a.channel,
        &msg.props,
        &msg.body,
        conn.frame_max.get(),
    );
    drop(out);
    conn.out_notify.notify();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_address_round_trips_and_rejects_garbage() {
        let a = ReplyAddress {
            conn: ConnId::new(ShardId(1), 77),
            channel: 65535,
            nonce: u128::MAX - 5,
        };
        let s = encode(a);
        assert!(s.starts_with(ADDRESS_PREFIX));
        assert_eq!(decode(&s), Some(a));
        assert_eq!(shard_of(&a, 2), Some(ShardId(1)));
        assert_eq!(shard_of(&a, 1), None);
        assert_eq!(decode("amq.rabbitmq.reply-to.garbage"), None);
        assert_eq!(decode(&s[..s.len() - 1]), None);
        assert_eq!(decode(&format!("{s}AA")), None);
        assert_eq!(decode("amq.rabbitmq.reply-to"), None);
        assert_eq!(decode(""), None);
    }
}

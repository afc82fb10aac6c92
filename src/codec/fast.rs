//! Fast paths for the four methods on the per-message hot path:
//! basic.publish, content headers, basic.ack/nack/reject (parse) and
//! basic.deliver (generate).
//!
//! Why: amq-protocol decodes method bit flags through `AMQPFlags`, which
//! allocates a vector of named flags (and the properties' 14 names) for
//! every frame, and encodes them the same way; at a million messages a
//! second those allocations were a quarter of the broker's CPU. These
//! functions read and write exactly the same wire format for these methods
//! only; every other method and every error path still goes through
//! amq-protocol, and the tests below check byte-for-byte agreement with
//! amq-protocol's parser and generator. Like RabbitMQ, content-header
//! properties are not decoded on the fast path: they are scanned for the
//! few fields routing needs and forwarded verbatim.

use amq_protocol::types::ShortString;
use bytes::Bytes;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn shortstr(b: &[u8], at: usize) -> Option<(&str, usize)> {
    let n = *b.get(at)? as usize;
    let s = std::str::from_utf8(b.get(at + 1..at + 1 + n)?).ok()?;
    Some((s, at + 1 + n))
}

/// A basic.publish decoded without allocating beyond the two names.
#[derive(Debug)]
pub struct Publish {
    /// Exchange name (short string; empty = the default exchange).
    pub exchange: ShortString,
    /// Routing key (short string).
    pub routing_key: ShortString,
    /// The `mandatory` bit: return the message with 312 NO_ROUTE if no queue takes it.
    pub mandatory: bool,
    /// The `immediate` bit; refused with 540 NOT_IMPLEMENTED as in RabbitMQ 3.x.
    pub immediate: bool,
}

/// Method ids of a method frame payload.
pub fn method_ids(payload: &[u8]) -> Option<(u16, u16)> {
    Some((u16_at(payload, 0)?, u16_at(payload, 2)?))
}

/// basic.publish (60,40). None: not well-formed; use amq-protocol's parser
/// for the error.
pub fn parse_publish(p: &[u8]) -> Option<Publish> {
    let (ex, at) = shortstr(p, 6)?;
    let (rk, at) = shortstr(p, at)?;
    let bits = *p.get(at)?;
    if at + 1 != p.len() {
        return None;
    }
    Some(Publish {
        exchange: ex.into(),
        routing_key: rk.into(),
        mandatory: bits & 1 != 0,
        immediate: bits & 2 != 0,
    })
}

/// A client settlement decoded by the fast path (delivery tags are per channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// basic.ack (60,80).
    Ack {
        /// Delivery tag; with `multiple`, every unacked tag up to it (0 = all).
        tag: u64,
        /// Settle all unacked deliveries up to and including `tag`.
        multiple: bool,
    },
    /// basic.nack (60,120), RabbitMQ's extension.
    Nack {
        /// Delivery tag; with `multiple`, every unacked tag up to it (0 = all).
        tag: u64,
        /// Settle all unacked deliveries up to and including `tag`.
        multiple: bool,
        /// Requeue the message(s); false discards them (dead-lettered if the queue has
        /// a dead-letter exchange).
        requeue: bool,
    },
    /// basic.reject (60,90): one delivery.
    Reject {
        /// Delivery tag of the one delivery rejected.
        tag: u64,
        /// Requeue the message; false discards it (dead-lettered if configured).
        requeue: bool,
    },
}

/// basic.ack (60,80), basic.reject (60,90), basic.nack (60,120).
pub fn parse_settle(p: &[u8]) -> Option<Settle> {
    let (class, method) = method_ids(p)?;
    if class != 60 || p.len() != 13 {
        return None;
    }
    let tag = u64_at(p, 4)?;
    let bits = p[12];
    Some(match method {
        80 => Settle::Ack {
            tag,
            multiple: bits & 1 != 0,
        },
        90 => Settle::Reject {
            tag,
            requeue: bits & 1 != 0,
        },
        120 => Settle::Nack {
            tag,
            multiple: bits & 1 != 0,
            requeue: bits & 2 != 0,
        },
        _ => return None,
    })
}

/// What routing and validation need from a content header's properties.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PropsView {
    /// `delivery-mode` property: 2 = persistent, 1 or absent = transient.
    pub delivery_mode: Option<u8>,
    /// A `headers` table is present; only then does the codec decode the
    /// properties (the table is needed for headers-exchange routing).
    pub has_headers: bool,
    /// `user-id` property; if set it must equal the authenticated user (406
    /// PRECONDITION_FAILED otherwise, as RabbitMQ validates it).
    pub user_id: Option<String>,
    /// The `expiration` property, unparsed (only allocated when present).
    pub expiration: Option<String>,
    /// The `priority` property (0-255 as sent; a priority queue caps it at
    /// its `x-max-priority`).
    pub priority: Option<u8>,
    /// `reply-to` is exactly `amq.rabbitmq.reply-to` (direct reply-to): the
    /// channel rewrites it to its reply address before routing.
    pub reply_to_direct: bool,
}

/// The pseudo-queue of RabbitMQ's direct reply-to: consumed from in no-ack
/// mode, named in `reply-to`, never declared.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Content header: (class id, body size, raw properties, scanned view).
pub fn parse_header(p: &Bytes) -> Option<(u16, u64, Bytes, PropsView)> {
    let class = u16_at(p, 0)?;
    let size = u64_at(p, 4)?;
    let raw = p.slice(12..);
    let view = scan_properties(&raw)?;
    Some((class, size, raw, view))
}

/// Walk the property list by the flag bits, checking every length.
pub fn scan_properties(raw: &[u8]) -> Option<PropsView> {
    let flags = u16_at(raw, 0)?;
    if flags & 0x0003 != 0 {
        return None; // continuation flags or reserved bits: let amq-protocol judge
    }
    let mut at = 2usize;
    let mut v = PropsView::default();
    let skip_str = |at: usize| -> Option<usize> { Some(at + 1 + *raw.get(at)? as usize) };
    for bit in (2..16).rev() {
        if flags & (1 << bit) == 0 {
            continue;
        }
        at = match bit {
            13 => {
                let n = u32::from_be_bytes(raw.get(at..at + 4)?.try_into().ok()?) as usize;
                v.has_headers = true;
                at + 4 + n
            }
            12 => {
                v.delivery_mode = Some(*raw.get(at)?);
                at + 1
            }
            11 => {
                v.priority = Some(*raw.get(at)?);
                at + 1
            }
            9 => {
                let next = skip_str(at)?;
                v.reply_to_direct = raw.get(at + 1..next)? == DIRECT_REPLY_TO.as_bytes();
                next
            }
            6 => at + 8,
            8 => {
                let (s, next) = shortstr(raw, at)?;
                v.expiration = Some(s.to_string());
                next
            }
            4 => {
                let (s, next) = shortstr(raw, at)?;
                v.user_id = Some(s.to_string());
                next
            }
            _ => skip_str(at)?,
        };
        if at > raw.len() {
            return None;
        }
    }
    (at == raw.len()).then_some(v)
}

/// Append a complete basic.deliver method frame.
pub fn write_deliver(
    out: &mut Vec<u8>,
    channel: u16,
    consumer_tag: &str,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
) {
    let ct = &consumer_tag.as_bytes()[..consumer_tag.len().min(255)];
    let ex = &exchange.as_bytes()[..exchange.len().min(255)];
    let rk = &routing_key.as_bytes()[..routing_key.len().min(255)];
    let size = 4 + 1 + ct.len() + 8 + 1 + 1 + ex.len() + 1 + rk.len();
    out.reserve(size + 8);
    out.push(super::FRAME_METHOD);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(size as u32).to_be_bytes());
    out.extend_from_slice(&60u16.to_be_bytes());
    out.extend_from_slice(&60u16.to_be_bytes());
    out.push(ct.len() as u8);
    out.extend_from_slice(ct);
    out.extend_from_slice(&delivery_tag.to_be_bytes());
    out.push(redelivered as u8);
    out.push(ex.len() as u8);
    out.extend_from_slice(ex);
    out.push(rk.len() as u8);
    out.extend_from_slice(rk);
    out.push(super::FRAME_END);
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::{basic, AMQPClass};
    use amq_protocol::types::{AMQPValue, FieldTable};

    fn method_payload(class: AMQPClass) -> Vec<u8> {
        let mut out = Vec::new();
        crate::codec::write_method(&mut out, 1, class);
        out[7..out.len() - 1].to_vec()
    }

    #[test]
    fn publish_matches_amq_protocol() {
        for (ex, rk, m, i) in [
            ("", "q", false, false),
            ("amq.topic", "a.b.c", true, false),
            ("x", "", true, true),
        ] {
            let p = method_payload(AMQPClass::Basic(basic::AMQPMethod::Publish(
                basic::Publish {
                    exchange: ex.into(),
                    routing_key: rk.into(),
                    mandatory: m,
                    immediate: i,
                },
            )));
            let f = parse_publish(&p).unwrap();
            assert_eq!(
                (
                    f.exchange.as_str(),
                    f.routing_key.as_str(),
                    f.mandatory,
                    f.immediate
                ),
                (ex, rk, m, i)
            );
            assert!(parse_publish(&p[..p.len() - 1]).is_none());
        }
    }

    #[test]
    fn settle_matches_amq_protocol() {
        let cases = [
            (
                AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag: 7,
                    multiple: true,
                })),
                Settle::Ack {
                    tag: 7,
                    multiple: true,
                },
            ),
            (
                AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
                    delivery_tag: 9,
                    multiple: false,
                    requeue: true,
                })),
                Settle::Nack {
                    tag: 9,
                    multiple: false,
                    requeue: true,
                },
            ),
            (
                AMQPClass::Basic(basic::AMQPMethod::Reject(basic::Reject {
                    delivery_tag: 3,
                    requeue: false,
                })),
                Settle::Reject {
                    tag: 3,
                    requeue: false,
                },
            ),
        ];
        for (class, want) in cases {
            assert_eq!(parse_settle(&method_payload(class)), Some(want));
        }
    }

    #[test]
    fn property_scan_agrees_with_amq_protocol() {
        let mut h = FieldTable::default();
        h.insert("k".into(), AMQPValue::LongString("v".into()));
        let all = basic::AMQPProperties::default()
            .with_content_type("text/plain".into())
            .with_content_encoding("gzip".into())
            .with_headers(h)
            .with_delivery_mode(2)
            .with_priority(5)
            .with_correlation_id("c".into())
            .with_reply_to("r".into())
            .with_expiration("100".into())
            .with_message_id("m".into())
            .with_timestamp(12345)
            .with_type("t".into())
            .with_user_id("guest".into())
            .with_app_id("a".into())
            .with_cluster_id("cl".into());
        for props in [
            basic::AMQPProperties::default(),
            basic::AMQPProperties::default().with_delivery_mode(1),
            all,
        ] {
            let raw = crate::codec::encode_properties(&props);
            let v = scan_properties(&raw).unwrap();
            assert_eq!(v.delivery_mode, *props.delivery_mode());
            assert_eq!(v.has_headers, props.headers().is_some());
            assert_eq!(v.priority, *props.priority());
            assert!(!v.reply_to_direct);
            assert_eq!(
                v.user_id.as_deref(),
                props.user_id().as_ref().map(|s| s.as_str())
            );
            assert!(
                scan_properties(&raw[..raw.len().saturating_sub(1).max(1)]).is_none()
                    || raw.len() <= 2
            );
        }
    }

    #[test]
    fn deliver_is_byte_identical_to_amq_protocol() {
        for (tag, red) in [(1u64, false), (u64::MAX, true)] {
            let mut ours = Vec::new();
            write_deliver(&mut ours, 3, "ctag", tag, red, "ex", "rk");
            let mut theirs = Vec::new();
            crate::codec::write_method(
                &mut theirs,
                3,
                AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                    consumer_tag: "ctag".into(),
                    delivery_tag: tag,
                    redelivered: red,
                    exchange: "ex".into(),
                    routing_key: "rk".into(),
                })),
            );
            assert_eq!(ours, theirs);
        }
    }
}

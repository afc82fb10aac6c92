//! Dead-lettering (RabbitMQ's `x-dead-letter-exchange`): what a queue hands
//! its home when a message dies, and the message as it is re-published.
//!
//! The re-published message keeps its body (the same `Bytes`, no copy) and
//! properties, loses its `expiration` (kept as `original-expiration`), and
//! gets RabbitMQ 3.10's headers: `x-death` (an array of tables, most recent
//! first, one per queue and reason with a `count`) and the
//! `x-first-death-*` triple. Recorded from RabbitMQ 3.10; see
//! `tests/python/test_dead_letter.py`. Pure functions: no I/O.

use crate::defs::arg_text as text;
use crate::message::{Message, MsgRef};
use crate::store::journal::Recovered;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};

/// Why a message died (the `reason` field of `x-death`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeathReason {
    /// `basic.reject` or `basic.nack` with `requeue=false`.
    Rejected,
    /// Its TTL passed.
    Expired,
    /// Dropped or refused at the queue's length limit.
    MaxLen,
    /// Requeued more often than the queue's `x-delivery-limit`.
    DeliveryLimit,
}

impl DeathReason {
    /// Every reason, in [`DeathReason::index`] order.
    pub const ALL: [DeathReason; 4] = [
        DeathReason::Rejected,
        DeathReason::Expired,
        DeathReason::MaxLen,
        DeathReason::DeliveryLimit,
    ];

    /// Its index in per-reason counters ([`DeathReason::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }

    /// As RabbitMQ writes it in `x-death`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::MaxLen => "maxlen",
            DeathReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// A message a queue with a dead-letter exchange let die.
#[derive(Debug)]
pub struct DeadLetter {
    /// The message as it was in the queue (re-published by [`dead_letter`]).
    pub msg: MsgRef,
    /// Why it died.
    pub reason: DeathReason,
    /// Its stored copy in a durable queue, still live in the journal: the
    /// home acks it only once every shard the dead letter was routed to
    /// has taken it (stored, if persistent there), so a crash in between
    /// brings it back to its queue instead of losing it (at-least-once).
    pub stored: Option<crate::store::journal::Recovered>,
}

/// Where a queue's dead letters go (`x-dead-letter-exchange`, and
/// `x-dead-letter-routing-key` or else the message's own routing key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetterTarget {
    /// `x-dead-letter-exchange` (`""` is the default exchange).
    pub exchange: String,
    /// `x-dead-letter-routing-key`; None keeps the message's routing key.
    pub routing_key: Option<String>,
}

impl DeadLetterTarget {
    /// From a queue's arguments (validated at declare).
    pub fn from_args(args: &FieldTable) -> Option<Self> {
        let inner = args.inner();
        Some(DeadLetterTarget {
            exchange: text(inner.get("x-dead-letter-exchange")?)?,
            routing_key: inner.get("x-dead-letter-routing-key").and_then(text),
        })
    }
}

/// The message `msg`, which died in queue `queue` for `reason` at `now`
/// (seconds since the epoch), as it is re-published to `target`, and
/// whether its `x-death` history now allows delivery to a queue named
/// `q`: [`DeadLettered::may_enter`].
pub struct DeadLettered {
    /// The message to re-publish: `target`'s exchange and routing key,
    /// updated headers, no `expiration`.
    pub msg: MsgRef,
    /// Its headers (for a headers-exchange dead-letter exchange).
    pub headers: FieldTable,
    /// Queues named in `x-death`, and whether any death was a rejection.
    seen: Vec<String>,
    rejected: bool,
}

impl DeadLettered {
    /// RabbitMQ's cycle rule: a dead letter does not go back into a queue
    /// it already died in unless some death on the way was a rejection (a
    /// consumer was involved); otherwise it is dropped there.
    pub fn may_enter(&self, queue: &str) -> bool {
        self.rejected || !self.seen.iter().any(|q| q == queue)
    }
}

/// Build the re-published message (see the module documentation).
pub fn dead_letter(
    msg: &Message,
    reason: DeathReason,
    queue: &str,
    target: &DeadLetterTarget,
    now_secs: u64,
) -> DeadLettered {
    let mut props = amq_protocol::protocol::basic::parse_properties(&msg.props[..])
        .map(|(_, p)| p)
        .unwrap_or_default();
    let original_expiration = props.expiration().clone();
    let mut headers = props.headers().clone().unwrap_or_default();
    let mut deaths: Vec<FieldTable> = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a
            .as_slice()
            .iter()
            .filter_map(|v| match v {
                AMQPValue::FieldTable(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let same = |t: &FieldTable| {
        t.inner().get("queue").and_then(text).as_deref() == Some(queue)
            && t.inner().get("reason").and_then(text).as_deref() == Some(reason.as_str())
    };
    let entry = match deaths.iter().position(same) {
        Some(i) => {
            let mut t = deaths.remove(i);
            let count = match t.inner().get("count") {
                Some(v) => crate::defs::arg_integer(v).unwrap_or(0),
                None => 0,
            };
            t.insert("count".into(), AMQPValue::LongLongInt(count + 1));
            t
        }
        None => {
            let mut t = FieldTable::default();
            t.insert("count".into(), AMQPValue::LongLongInt(1));
            t.insert(
                "reason".into(),
                AMQPValue::LongString(reason.as_str().into()),
            );
            t.insert("queue".into(), AMQPValue::LongString(queue.into()));
            t.insert("time".into(), AMQPValue::Timestamp(now_secs));
            t.insert(
                "exchange".into(),
                AMQPValue::LongString(msg.exchange.as_str().into()),
            );
            let mut keys = FieldArray::default();
            keys.push(AMQPValue::LongString(msg.routing_key.as_str().into()));
            t.insert("routing-keys".into(), AMQPValue::FieldArray(keys));
            if let Some(e) = &original_expiration {
                t.insert(
                    "original-expiration".into(),
                    AMQPValue::LongString(e.as_str().into()),
                );
            }
            t
        }
    };
    deaths.insert(0, entry);
    let seen = deaths
        .iter()
        .filter_map(|t| t.inner().get("queue").and_then(text))
        .collect();
    let rejected = deaths
        .iter()
        .any(|t| t.inner().get("reason").and_then(text).as_deref() == Some("rejected"));
    let mut array = FieldArray::default();
    for t in deaths {
        array.push(AMQPValue::FieldTable(t));
    }
    headers.insert("x-death".into(), AMQPValue::FieldArray(array));
    for (k, v) in [
        ("x-first-death-reason", reason.as_str().to_string()),
        ("x-first-death-queue", queue.to_string()),
        ("x-first-death-exchange", msg.exchange.as_str().to_string()),
    ] {
        if !headers.inner().contains_key(k) {
            headers.insert(k.into(), AMQPValue::LongString(LongString::from(v)));
        }
    }
    props = rebuild_without_expiration(props).with_headers(headers.clone());
    let routing_key = target
        .routing_key
        .clone()
        .unwrap_or_else(|| msg.routing_key.as_str().to_string());
    DeadLettered {
        msg: std::sync::Arc::new(Message {
            exchange: target.exchange.as_str().into(),
            routing_key: routing_key.into(),
            props: crate::codec::encode_properties(&props),
            body: msg.body.clone(),
            persistent: msg.persistent,
            expiration_ms: None,
            priority: msg.priority,
        }),
        headers,
        seen,
        rejected,
    }
}

/// amq-protocol's properties have no setter that clears a field: copy all
/// but `expiration`.
fn rebuild_without_expiration(p: AMQPProperties) -> AMQPProperties {
    let mut q = AMQPProperties::default();
    if let Some(v) = p.content_type() {
        q = q.with_content_type(v.clone());
    }
    if let Some(v) = p.content_encoding() {
        q = q.with_content_encoding(v.clone());
    }
    if let Some(v) = p.delivery_mode() {
        q = q.with_delivery_mode(*v);
    }
    if let Some(v) = p.priority() {
        q = q.with_priority(*v);
    }
    if let Some(v) = p.correlation_id() {
        q = q.with_correlation_id(v.clone());
    }
    if let Some(v) = p.reply_to() {
        q = q.with_reply_to(v.clone());
    }
    if let Some(v) = p.message_id() {
        q = q.with_message_id(v.clone());
    }
    if let Some(v) = p.timestamp() {
        q = q.with_timestamp(*v);
    }
    if let Some(v) = p.kind() {
        q = q.with_type(v.clone());
    }
    if let Some(v) = p.user_id() {
        q = q.with_user_id(v.clone());
    }
    if let Some(v) = p.app_id() {
        q = q.with_app_id(v.clone());
    }
    if let Some(v) = p.cluster_id() {
        q = q.with_cluster_id(v.clone());
    }
    q
}

impl super::Queue {
    /// A message leaves the queue dead for `reason`: with a dead-letter
    /// exchange and its body (`msg`), it becomes a dead letter that keeps
    /// its stored copy (`stored`) alive until the home has it safely in
    /// its targets (at-least-once); otherwise the stored copy goes now.
    pub(super) fn die(
        &mut self,
        msg: Option<MsgRef>,
        stored: Option<Recovered>,
        reason: DeathReason,
    ) {
        match msg.filter(|_| self.dead_letter.is_some()) {
            Some(msg) => {
                self.stats.dead_lettered += 1;
                self.dead_letters.push(DeadLetter {
                    msg,
                    reason,
                    stored,
                });
            }
            None => {
                if let Some(r) = stored {
                    self.store_ops.push(super::StoreOp::Ack(r.pos));
                }
            }
        }
    }

    /// The body of `e` if it is to become a dead letter (None: no
    /// dead-letter exchange, so nothing is loaded).
    pub(super) fn dying_body(
        &self,
        e: &super::Entry,
        load: &impl Fn(crate::store::Position) -> Option<MsgRef>,
    ) -> Option<MsgRef> {
        self.dead_letter.as_ref()?;
        self.materialise(e, load)
    }
}

/// What the journal holds of a ready entry's stored copy.
pub(super) fn stored(e: &super::Entry) -> Option<Recovered> {
    e.pos.map(|pos| Recovered {
        pos,
        deliveries: e.deliveries.max(u32::from(e.redelivered)),
        expires: e.expires,
    })
}

//! A queue used as the store of a delayed-message exchange
//! (`x-delayed-message`, see `defs::delayed`): its ready messages are
//! ordered by release time instead of arrival, each released once its time
//! has passed, through the same expiry tick and dead-letter hand-off that
//! TTL uses; the home re-publishes a released message through the exchange
//! ([`released`]). It never has consumers, limits or a TTL of its own.
//!
//! Cost: O(log n) per message in and out, whatever the delays
//! (`Ready::insert_by_expiry`).

use super::{DeadLetter, DeathReason, Entry, Queue};
use crate::defs::delayed::{delay_of, header_value, DELAY_HEADER};
use crate::defs::QueueDef;
use crate::message::{Message, MsgRef};
use crate::store::Position;
use amq_protocol::types::{AMQPValue, FieldTable};

impl Queue {
    /// The store of the delayed-message exchange described by `def` (its
    /// id and home from the exchange's `DelayStore`, its name the
    /// exchange's).
    pub fn delay_store(def: QueueDef) -> Self {
        let mut q = Queue::new(def);
        q.delay = true;
        q
    }

    /// This is a delayed-message exchange's store, not a queue.
    pub fn is_delay_store(&self) -> bool {
        self.delay
    }

    /// Put an entry among the ready ones: by release time in a delay
    /// store, at the tail of its lane otherwise.
    pub(super) fn enter(&mut self, e: Entry) {
        if self.delay {
            self.ready.insert_by_expiry(e);
        } else {
            self.ready.push_back(e);
        }
    }

    /// Hand a due message to the home for re-publishing (as a dead letter
    /// with no target: the home knows a delay store's letters are
    /// releases); its stored copy stays until its targets have it.
    pub(super) fn release(&mut self, e: &Entry, load: &impl Fn(Position) -> Option<MsgRef>) {
        match self.materialise(e, load) {
            Some(msg) => self.dead_letters.push(DeadLetter {
                msg,
                reason: DeathReason::Expired,
                stored: super::dead_letter::stored(e),
            }),
            None => {
                if let Some(p) = e.pos {
                    self.store_ops.push(super::StoreOp::Ack(p));
                }
            }
        }
    }
}

/// When a message entering a delay store at `now` is due (ms since the
/// epoch): now plus its `x-delay`. Routing sends only delayed messages
/// here; one without a delay is due at once.
pub(super) fn release_time(msg: &Message, now: u64) -> u64 {
    let props = amq_protocol::protocol::basic::parse_properties(&msg.props[..]).ok();
    let delay = props
        .as_ref()
        .and_then(|(_, p)| delay_of(p.headers().as_ref()))
        .unwrap_or(0);
    now.saturating_add(delay).max(1)
}

/// A released message as it is routed (the plugin's
/// `swap_delay_header`): the same body and routing key, `x-delay` set to
/// minus the delay so that the exchange routes it at once; with its
/// headers, for the exchange's routing.
pub fn released(msg: &MsgRef) -> (MsgRef, FieldTable) {
    let Ok((_, props)) = amq_protocol::protocol::basic::parse_properties(&msg.props[..]) else {
        return (msg.clone(), FieldTable::default());
    };
    let mut headers = props.headers().clone().unwrap_or_default();
    let Some(delay) = header_value(&headers) else {
        return (msg.clone(), headers);
    };
    let negated = -delay;
    let v = match i32::try_from(negated) {
        Ok(n) => AMQPValue::LongInt(n),
        Err(_) => AMQPValue::LongLongInt(negated),
    };
    headers.insert(DELAY_HEADER.into(), v);
    let props = props.with_headers(headers.clone());
    let out = Message {
        props: crate::codec::encode_properties(&props),
        ..(**msg).clone()
    };
    (std::sync::Arc::new(out), headers)
}

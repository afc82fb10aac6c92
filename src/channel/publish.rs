//! basic.publish: assembling content frames and routing the message.
//!
//! Hot path. The body of a single-frame message is the zero-copy `Bytes`
//! slice of the read buffer; only a body split over several frames is
//! joined (one copy, unavoidable for a contiguous body). Routing happens on
//! this shard against its own table; the message then goes to each home
//! shard's outbox once, whatever the number of queues there.

use super::Cx;
use super::{Channel, Conn, TxOp};
use crate::bus::{ConfirmRef, ShardMsg};
use crate::codec;
use crate::error::{AmqpError, AmqpResult};
use crate::ids::{QueueId, ShardId};
use crate::message::{same, Message, MsgRef};
use amq_protocol::protocol::{basic, AMQPClass};
use amq_protocol::types::ShortString;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;

/// A basic.publish whose content is still arriving (spec 4.2.6: method, then
/// one content header frame, then body frames until body-size bytes).
pub struct PendingPublish {
    /// Exchange name from basic.publish.
    pub exchange: ShortString,
    /// Routing key from basic.publish.
    pub routing_key: ShortString,
    /// basic.publish `mandatory`: return the message with 312 NO_ROUTE if unroutable.
    pub mandatory: bool,
    /// The content header, once received (a second one is 505 UNEXPECTED_FRAME).
    pub header: Option<Header>,
    /// Body frames received so far, zero-copy; joined only if more than one.
    pub parts: Vec<Bytes>,
    /// Body bytes received so far.
    pub received: u64,
}

pub struct Header {
    pub body_size: u64,
    pub props_raw: Bytes,
    pub delivery_mode: Option<u8>,
    /// Validated `expiration` property, in ms.
    pub expiration_ms: Option<u64>,
    /// The `priority` property (0 when absent).
    pub priority: u8,
    pub headers: Option<amq_protocol::types::FieldTable>,
}

pub enum Progress {
    More,
    Done(MsgRef, bool, Option<amq_protocol::types::FieldTable>),
}

impl Conn {
    /// Body bytes channel `ch`'s publish still expects (bytes): `None` when
    /// it has no content header yet, no publish, or is closing. For the
    /// reader's direct body path (`channel::direct_body`).
    pub(super) fn body_left(&self, ch: u16) -> Option<u64> {
        let st = self.state.borrow();
        let c = st.channels.get(&ch).filter(|c| !c.closing)?;
        let p = c.publish.as_ref()?;
        let h = p.header.as_ref()?;
        h.body_size.checked_sub(p.received)
    }
}

impl PendingPublish {
    /// Start assembling the message of basic.publish `p`.
    pub fn new(p: basic::Publish) -> Self {
        PendingPublish {
            exchange: p.exchange,
            routing_key: p.routing_key,
            mandatory: p.mandatory,
            header: None,
            parts: Vec::new(),
            received: 0,
        }
    }

    fn finish(&mut self) -> Progress {
        let Some(h) = self.header.take() else {
            return Progress::More;
        };
        let body = match self.parts.len() {
            0 => Bytes::new(),
            1 => self.parts.pop().unwrap_or_default(),
            _ => {
                let mut b = BytesMut::with_capacity(self.received as usize);
                for p in self.parts.drain(..) {
                    b.extend_from_slice(&p);
                }
                b.freeze()
            }
        };
        let persistent = h.delivery_mode == Some(2);
        let headers = h.headers;
        let msg = Arc::new(Message {
            exchange: std::mem::take(&mut self.exchange),
            routing_key: std::mem::take(&mut self.routing_key),
            props: h.props_raw,
            body,
            persistent,
            expiration_ms: h.expiration_ms,
            priority: h.priority,
        });
        Progress::Done(msg, self.mandatory, headers)
    }

    /// The content header arrived. A body-size above `max_size` (bytes, the
    /// configured `max_message_size`) is 406 PRECONDITION_FAILED; a body-size of 0
    /// completes the message at once.
    pub fn on_header(&mut self, h: Header, max_size: u64) -> AmqpResult<Progress> {
        if h.body_size > max_size {
            return Err(AmqpError::precondition_failed(format!(
                "message size {} is larger than configured max size {max_size}",
                h.body_size
            )));
        }
        let empty = h.body_size == 0;
        self.header = Some(h);
        Ok(if empty { self.finish() } else { Progress::More })
    }

    /// A body frame arrived. Without a content header first: 505 UNEXPECTED_FRAME;
    /// more bytes than body-size: 501 FRAME_ERROR. Done once body-size bytes are in.
    pub fn on_body(&mut self, b: Bytes) -> AmqpResult<Progress> {
        let Some(h) = &self.header else {
            return Err(AmqpError::unexpected_frame(
                "expected content header for class 60, got content body",
            ));
        };
        self.received += b.len() as u64;
        if self.received > h.body_size {
            return Err(AmqpError::frame_error(
                "content body exceeds the size given in its header",
            ));
        }
        let done = self.received == h.body_size;
        self.parts.push(b);
        Ok(if done { self.finish() } else { Progress::More })
    }
}

/// Route a complete message and hand it to the home shards' outboxes.
/// Called with the channel borrowed; touches only the outbox and the
/// connection's own write buffer.
#[allow(clippy::too_many_arguments)]
pub fn route_and_send(
    cx: &Cx,
    conn: &Conn,
    vhost: &str,
    ch: &mut Channel,
    msg: MsgRef,
    mandatory: bool,
    headers: Option<&amq_protocol::types::FieldTable>,
    confirm: bool,
) {
    // Route (or reuse the channel's last decision: no lookup, no alloc).
    let (version, cacheable) = {
        let t = cx.table();
        (t.version, headers.is_none() && t.property_hashing == 0)
    };
    let mut cache = ch.route_cache.take();
    let hit = matches!(&cache, Some(c)
        if cacheable && c.version == version && same(c.exchange.as_str(), msg.exchange.as_str()) && same(c.routing_key.as_str(), msg.routing_key.as_str()));
    if !hit {
        // A reply to a direct reply-to address is not routed through the
        // table (it names a channel, not a queue); never cached.
        if msg.exchange.as_str().is_empty()
            && msg
                .routing_key
                .as_str()
                .starts_with(super::reply_to::ADDRESS_PREFIX)
        {
            ch.route_cache = cache;
            direct_reply(cx, conn, ch, msg, mandatory, confirm);
            return;
        }
        let mut dests: Vec<(QueueId, ShardId)> = Vec::new();
        // The CC/BCC keys join the routing key (no allocation without them).
        let mut keys: smallvec::SmallVec<[&str; 1]> = smallvec::smallvec![msg.routing_key.as_str()];
        if super::sender_routes::has_extra(headers) {
            super::sender_routes::extra_keys(headers, &mut keys);
        }
        cx.table().route_keys(
            vhost,
            msg.exchange.as_str(),
            &keys,
            headers,
            &msg.props,
            &mut dests,
        );
        // Grouped by home shard: one outbox message per shard.
        dests.sort_unstable_by_key(|d| d.1);
        cache = Some(super::RouteCache {
            version,
            exchange: msg.exchange.clone(),
            routing_key: msg.routing_key.clone(),
            queues: dests,
        });
    }
    let Some(entry) = cache else { return };
    route_to(cx, conn, ch, msg, mandatory, confirm, &entry.queues);
    // A headers- or property-dependent decision is not reusable for the
    // next message.
    if cacheable {
        ch.route_cache = Some(entry);
    }
}

/// A publish to a direct reply-to address (see `reply_to`): counted and
/// confirmed like an unroutable message (a reply address is not a queue, so
/// a mandatory reply is returned, as RabbitMQ does) and sent to the
/// requester's shard, which delivers it if the address is still valid.
fn direct_reply(
    cx: &Cx,
    conn: &Conn,
    ch: &mut Channel,
    msg: MsgRef,
    mandatory: bool,
    confirm: bool,
) {
    route_to(cx, conn, ch, msg.clone(), mandatory, confirm, &[]);
    super::reply_to::forward(&cx.link, msg);
}

fn route_to(
    cx: &Cx,
    conn: &Conn,
    ch: &mut Channel,
    msg: MsgRef,
    mandatory: bool,
    confirm: bool,
    dests: &[(QueueId, ShardId)],
) {
    ch.stats.publish += 1;
    let routed = !dests.is_empty() as u64;
    {
        // RabbitMQ's rabbit_global_counters (a borrow and two adds).
        let mut k = cx.conns.counters.borrow_mut();
        // (`confirm` is also set for a transaction's publishes.)
        k.received_confirm += u64::from(confirm && ch.confirm);
        match (routed, mandatory) {
            (1, _) => k.routed += 1,
            (_, true) => k.unroutable_returned += 1,
            (_, false) => k.unroutable_dropped += 1,
        }
    }
    match ch
        .stats
        .exchanges
        .iter_mut()
        .find(|e| same(e.0.as_str(), msg.exchange.as_str()))
    {
        Some(e) => {
            e.1 += 1;
            e.2 += routed;
        }
        None => ch.stats.exchanges.push((msg.exchange.clone(), 1, routed)),
    }
    let seq = if confirm {
        let s = ch.next_pub_seq;
        ch.next_pub_seq += 1;
        Some(s)
    } else {
        None
    };
    if dests.is_empty() {
        if mandatory {
            let mut out = conn.out.borrow_mut();
            codec::write_method(
                &mut out,
                ch.id,
                AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                    reply_code: crate::error::NO_ROUTE,
                    reply_text: "NO_ROUTE".into(),
                    exchange: msg.exchange.clone(),
                    routing_key: msg.routing_key.clone(),
                })),
            );
            codec::write_content(&mut out, ch.id, &msg.props, &msg.body, conn.frame_max.get());
            drop(out);
            conn.out_notify.notify();
            ch.stats.returned += 1;
        }
        // Unroutable: confirmed at the next flush (nothing outstanding).
        return;
    }
    let mut shards_involved = 0u32;
    let mut i = 0;
    while i < dests.len() {
        let home = dests[i].1;
        let mut queues = crate::bus::QueueList::new();
        while i < dests.len() && dests[i].1 == home {
            queues.push(dests[i].0);
            i += 1;
        }
        shards_involved += 1;
        let confirm = seq.map(|seq| ConfirmRef {
            conn: conn.id,
            channel: ch.id,
            seq,
        });
        cx.link.outbox.push(
            home,
            ShardMsg::Publish {
                queues,
                msg: msg.clone(),
                confirm,
            },
        );
    }
    if let Some(seq) = seq {
        ch.pending_confirms.insert(seq, (shards_involved, false));
    }
    // Flow control (`queue::pressure`): one load while no queue is in flow.
    if cx.conns.flow_count.get() != 0 && conn.flow_hold.get().is_none() {
        if let Some(&(q, _)) = dests.iter().find(|(q, _)| cx.conns.in_flow(*q)) {
            conn.flow_hold.set(Some(q));
        }
    }
}

/// A message is complete on a channel: buffer it (tx) or route it now.
pub fn publish_complete(
    cx: &Cx,
    conn: &Conn,
    vhost: &str,
    ch: &mut Channel,
    msg: MsgRef,
    mandatory: bool,
    headers: Option<amq_protocol::types::FieldTable>,
) {
    if let Some(tx) = &mut ch.tx {
        tx.push(TxOp::Publish {
            msg,
            mandatory,
            headers,
        });
        return;
    }
    let confirm = ch.confirm;
    route_and_send(
        cx,
        conn,
        vhost,
        ch,
        msg,
        mandatory,
        headers.as_ref(),
        confirm,
    );
}

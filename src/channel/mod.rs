//! Connection and channel state machines.
//!
//! Owns: per-connection state (channels, delivery tags, unacked deliveries,
//! publisher confirms, transactions) and the outbound byte buffer its writer
//! task flushes. Must never: hold a `RefCell` borrow across an `.await`,
//! touch a queue directly (queues are reached through the outbox, even on
//! this shard, so order is one FIFO per shard pair), or panic on input.

pub mod ack_timeout;
mod auth;
pub mod connection;
pub mod direct_body;
pub mod handlers;
mod io;
pub mod limits;
mod publish;
pub mod reply_to;
pub mod sender_routes;
mod stats;
pub use stats::ChannelStats;
pub mod table;
mod tx;
pub use tx::TxOp;

pub use table::{ConnTable, ConsumerRoute, Cx};

use crate::bus::ShardMsg;
use crate::codec;
use crate::ids::{ConnId, ConsumerId, QueueId, ShardId};
use crate::mailbox::Notify;
use crate::message::MsgRef;
use crate::queue::Settle;

use amq_protocol::protocol::{basic, AMQPClass};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Instant;

pub use publish::PendingPublish;

#[cfg(test)]
mod tests;

/// A delivery awaiting ack on a channel: where its settlement goes.
#[derive(Clone, Copy, Debug)]
pub struct Unacked {
    /// The queue the message came from.
    pub queue: QueueId,
    /// The queue's home shard (where `ShardMsg::Settle` goes).
    pub home: ShardId,
    /// The message's sequence number in its queue (not the delivery tag).
    pub seq: u64,
    /// When the delivery times out unacked, ms since the epoch (coarse); 0 = never.
    pub deadline: u64,
    /// The timeout it was given, ms (for the error text).
    pub timeout_ms: u32,
}

/// A consumer on a channel (basic.consume), kept in `Channel::consumers` under
/// its consumer tag.
#[derive(Clone, Debug)]
pub struct ChannelConsumer {
    /// Broker-wide consumer id (this shard in its top bits).
    pub id: ConsumerId,
    /// The queue consumed from.
    pub queue: QueueId,
    /// The queue's home shard (where basic.cancel goes).
    pub home: ShardId,
    /// basic.consume no-ack: deliveries are settled on sending, not tracked.
    pub no_ack: bool,
    /// basic.consume exclusive: no other consumer on the queue.
    pub exclusive: bool,
}

/// What became of a delivery handed to a connection ([`Conn::deliver`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// Written to the socket buffer, or held back while the channel's flow is
    /// paused (a basic.consume awaiting its consume-ok).
    Taken,
    /// The channel or consumer is gone: the queue takes the message back
    /// and forgets the consumer.
    Gone,
    /// The channel-wide prefetch (`basic.qos global=true`) is reached: the
    /// queue takes the message back undelivered (same position, same
    /// redelivered flag) and stops dispatching to this consumer until the
    /// channel sends `ShardMsg::Resume`. RabbitMQ's limiter likewise stops
    /// dispatch at the queue, so the messages stay ready there, counted in
    /// `message_count` and available to other consumers and `basic.get`.
    OverLimit,
}

/// A delivery held back while the channel's flow is paused
/// (`Channel::flow_active` false: a basic.consume awaiting its consume-ok).
pub struct Held {
    /// Tracked in `unacked` (ack mode) as well.
    pub acked_mode: bool,
    /// Consumer tag for the basic.deliver.
    pub tag: Rc<str>,
    /// Delivery tag already assigned (tags stay in order when released).
    pub delivery_tag: u64,
    /// basic.deliver's `redelivered` flag.
    pub redelivered: bool,
    /// The message.
    pub msg: MsgRef,
    /// The queue and consumer whose send-window credit it holds.
    pub credit: QueueConsumer,
}

impl Held {
    /// The delivery will never be written: give its queue the credit back.
    pub fn return_credit(&self, cx: &Cx) {
        cx.link.outbox.push(
            self.credit.home,
            ShardMsg::Credit {
                queue: self.credit.queue,
                consumer: self.credit.consumer,
                n: 1,
                bytes: self.msg.body.len() as u64,
            },
        );
    }
}

/// One open channel: delivery tags and unacked deliveries, consumers,
/// publisher confirms, transaction, flow and prefetch state.
#[derive(Default)]
pub struct Channel {
    /// Channel number, 1..=channel-max.
    pub id: u16,
    /// We sent channel.close and wait for close-ok; other frames are dropped.
    pub closing: bool,
    /// A basic.publish waiting for its content header and body frames.
    pub publish: Option<PendingPublish>,
    /// Next delivery tag, per channel, starting at 1 (basic.deliver and
    /// basic.get-ok share the sequence).
    pub next_tag: u64,
    /// Deliveries awaiting ack, by delivery tag (ordered, for `multiple`).
    pub unacked: BTreeMap<u64, Unacked>,
    /// Consumers on this channel, by consumer tag.
    pub consumers: HashMap<String, ChannelConsumer>,
    /// Per-consumer prefetch count (basic.qos global=false), in messages, for
    /// consumers created afterwards (as RabbitMQ); 0 = no limit.
    pub prefetch: u16,
    /// Publisher confirms are on (confirm.select).
    pub confirm: bool,
    /// Next publish sequence number, from 1; advances only for confirm-mode or
    /// committed transactional publishes.
    pub next_pub_seq: u64,
    /// Publish seq -> (home shards still to confirm, nacked).
    pub pending_confirms: BTreeMap<u64, (u32, bool)>,
    /// Highest publish sequence number already confirmed to the client: basic.ack
    /// or basic.nack covers everything up to it.
    pub acked_upto: u64,
    /// Some in transaction mode (tx.select): the publishes and settlements
    /// buffered since the last tx.commit or tx.rollback.
    pub tx: Option<Vec<TxOp>>,
    /// tx.commit-oks owed, in order: each is the last publish seq of its
    /// commit. Sent once every publish up to it is confirmed by its queues
    /// (for persistent messages in durable queues: after the group-commit
    /// fsync, like publisher confirms).
    pub commit_waiters: std::collections::VecDeque<u64>,
    /// False while deliveries must wait: from sending a basic.consume to its queue
    /// until consume-ok is written, so consume-ok precedes the first delivery. A
    /// client's channel.flow active=false is refused with 540, as in RabbitMQ.
    pub flow_active: bool,
    /// Deliveries held back while `flow_active` is false, in delivery-tag order.
    pub held: std::collections::VecDeque<Held>,
    /// basic.qos global=true: unacked deliveries allowed on the channel as
    /// a whole (0 = no limit); per-consumer limits still apply.
    pub global_prefetch: u16,
    /// Consumers whose queues stopped dispatching to them because the
    /// channel-wide prefetch was reached. Each gets a `ShardMsg::Resume`
    /// once acks bring the channel under it.
    pub paused: Vec<QueueConsumer>,
    /// The last queue declared on the channel: what an empty queue name means in
    /// later queue and basic methods (as RabbitMQ); none yet gives 404.
    pub last_queue: Option<String>,
    /// (permission epoch, exchange) last allowed for basic.publish.
    pub publish_allowed: Option<(u64, amq_protocol::types::ShortString)>,
    /// Counters for the management API.
    pub stats: ChannelStats,
    /// Last routing decision: (table version, exchange, key, queues). A
    /// publisher usually repeats its exchange and key, so the table lookup
    /// is skipped while the table is unchanged.
    pub route_cache: Option<RouteCache>,
    /// The direct reply-to consumer (`amq.rabbitmq.reply-to`), if any.
    pub reply_consumer: Option<reply_to::ReplyConsumer>,
}

/// A channel's last routing decision (see `Channel::route_cache`).
pub struct RouteCache {
    /// The routing table's version it was made with.
    pub version: u64,
    /// The exchange published to.
    pub exchange: amq_protocol::types::ShortString,
    /// The routing key published with.
    pub routing_key: amq_protocol::types::ShortString,
    /// Destination queues with their home shards, grouped by shard.
    pub queues: Vec<(QueueId, ShardId)>,
}

impl Channel {
    /// A fresh channel `id`: tags and publish sequence from 1, flow active, no
    /// prefetch limit.
    pub fn new(id: u16) -> Self {
        Channel {
            id,
            next_tag: 1,
            next_pub_seq: 1,
            flow_active: true,
            ..Default::default()
        }
    }
}

/// A connection's mutable state, behind `Conn::state`.
pub struct ConnState {
    /// Open channels by number.
    pub channels: crate::ids::IdMap<u16, Channel>,
    /// The vhost from connection.open ("/" until then).
    pub vhost: String,
    /// The authenticated user (empty until connection.start-ok).
    pub user: String,
    /// Negotiated channel-max: the lower of the broker's and the client's
    /// (connection.tune-ok); channel.open beyond it gets 530 NOT_ALLOWED.
    pub channel_max: u16,
    /// The client understands connection.blocked / unblocked.
    pub blocked_capable: bool,
    /// The SASL mechanism the client logged in with (`PLAIN`, `AMQPLAIN`,
    /// `EXTERNAL`; empty until connection.start-ok).
    pub auth_mechanism: &'static str,
}

/// A consumer as its queue knows it: where its credit, settlements and
/// resumes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueConsumer {
    /// The queue's home shard.
    pub home: ShardId,
    /// The queue.
    pub queue: QueueId,
    /// The consumer.
    pub consumer: ConsumerId,
}

/// Credit owed to a queue once the bytes carrying its deliveries are
/// written: `n` deliveries to `to`.
#[derive(Clone, Copy, Debug)]
pub struct CreditRec {
    /// Where the credit goes.
    pub to: QueueConsumer,
    /// Deliveries written, in messages.
    pub n: u32,
    /// Their body bytes.
    pub bytes: u64,
}

/// One AMQP connection on this shard, shared (`Rc`) by its reader, writer and
/// heartbeat tasks and the connection table.
pub struct Conn {
    /// Broker-wide connection id (this shard in its top bits).
    pub id: ConnId,
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// How it came in: TCP, TLS (with what the handshake settled) or the
    /// Unix socket.
    pub transport: crate::net::Transport,
    /// Channels, vhost, user, negotiated channel-max.
    pub state: RefCell<ConnState>,
    /// Outbound frames (large bodies spliced, not copied); the writer task
    /// swaps it out and writes it in one syscall, so many deliveries share
    /// one write.
    pub out: RefCell<codec::out::OutBuf>,
    /// Wakes the writer task when `out` grows (and at close).
    pub out_notify: Notify,
    /// Current socket read size (adaptive; see channel::connection).
    pub read_size: Cell<usize>,
    /// Signalled after each socket write (wakes a reader paused on a full
    /// write buffer).
    pub written: Notify,
    /// Send-window credit owed to queues for deliveries in `out`; returned by the
    /// writer after the write (see [`CreditRec`]).
    pub credits: RefCell<Vec<CreditRec>>,
    /// Listed in `ConnTable`'s dirty list (confirms to flush at the end of the
    /// batch).
    pub dirty: Cell<bool>,
    /// connection.open-ok was sent.
    pub open: Cell<bool>,
    /// Counted against connection limits (set at connection.open before
    /// the limits are checked, so two racing opens see each other).
    pub admitted: Cell<bool>,
    /// We sent connection.close (management) and wait for close-ok.
    pub server_closing: Cell<bool>,
    /// This connection has published (only publishers are blocked).
    pub published: Cell<bool>,
    /// We sent connection.blocked and not yet unblocked.
    pub blocked_sent: Cell<bool>,
    /// The reader is paused by the memory alarm (heartbeats from the peer
    /// are not read meanwhile, so their absence is no sign of death).
    pub read_paused: Cell<bool>,
    /// When the reader last waited because other shards' mailboxes were
    /// full or a queue it publishes to was in flow (RabbitMQ's credit flow;
    /// `state: flow` for a second after).
    pub flow_at: Cell<Option<Instant>>,
    /// A queue in flow control this connection published to: the reader
    /// waits after its current batch until the queue leaves flow
    /// (`queue::pressure`).
    pub flow_hold: Cell<Option<crate::ids::QueueId>>,
    /// Negotiated frame-max in bytes ([`codec::FRAME_MIN_SIZE`] until
    /// connection.tune-ok); body frames are split to it.
    pub frame_max: Cell<u32>,
    /// The socket is finished (or being closed): stop reading and writing.
    pub closed: Cell<bool>,
    /// Wakes the tasks waiting on this connection when `closed` is set.
    pub closed_notify: Notify,
    /// When the writer last wrote to the socket (heartbeats are sent only when
    /// idle).
    pub last_sent: Cell<Instant>,
    /// When bytes were last read from the socket (a peer silent for two heartbeat
    /// intervals is dropped).
    pub last_recv: Cell<Instant>,
    /// Bytes read from the socket.
    pub recv_oct: Cell<u64>,
    /// Bytes written to the socket.
    pub send_oct: Cell<u64>,
    /// When the socket was accepted (wall clock).
    pub connected_at: std::time::SystemTime,
    /// client_properties from connection.start-ok (for listings).
    pub client_properties: RefCell<amq_protocol::types::FieldTable>,
}

impl Conn {
    /// A new connection from `peer`: vhost "/", no channels, frame-max
    /// [`codec::FRAME_MIN_SIZE`] until tuned.
    pub fn new(
        id: ConnId,
        peer: std::net::SocketAddr,
        transport: crate::net::Transport,
    ) -> Rc<Self> {
        Rc::new(Conn {
            id,
            peer,
            transport,
            state: RefCell::new(ConnState {
                channels: Default::default(),
                vhost: "/".into(),
                user: String::new(),
                channel_max: 2047,
                blocked_capable: false,
                auth_mechanism: "",
            }),
            out: RefCell::new(Default::default()),
            read_size: Cell::new(4096),
            out_notify: Notify::default(),
            written: Notify::default(),
            credits: RefCell::new(Vec::new()),
            dirty: Cell::new(false),
            open: Cell::new(false),
            admitted: Cell::new(false),
            server_closing: Cell::new(false),
            published: Cell::new(false),
            blocked_sent: Cell::new(false),
            read_paused: Cell::new(false),
            flow_at: Cell::new(None),
            flow_hold: Cell::new(None),
            frame_max: Cell::new(codec::FRAME_MIN_SIZE),
            closed: Cell::new(false),
            closed_notify: Notify::default(),
            last_sent: Cell::new(Instant::now()),
            last_recv: Cell::new(Instant::now()),
            recv_oct: Cell::new(0),
            send_oct: Cell::new(0),
            connected_at: std::time::SystemTime::now(),
            client_properties: RefCell::new(Default::default()),
        })
    }

    /// Append a method frame for `channel` (0 = the connection) to `out` and wake
    /// the writer.
    pub fn send_method(&self, channel: u16, class: AMQPClass) {
        codec::write_method(&mut self.out.borrow_mut(), channel, class);
        self.out_notify.notify();
    }

    /// Bytes in `out` not yet taken by the writer; the reader stops reading above
    /// its high-water mark.
    pub fn out_len(&self) -> usize {
        self.out.borrow().total_len()
    }

    #[allow(clippy::too_many_arguments)]
    fn write_delivery(
        &self,
        channel: u16,
        tag: &str,
        delivery_tag: u64,
        redelivered: bool,
        msg: &MsgRef,
        credit: QueueConsumer,
    ) {
        {
            let mut out = self.out.borrow_mut();
            // Hot path: see codec::fast for why deliver is not generated
            // through amq-protocol's AMQPClass here.
            codec::fast::write_deliver(
                &mut out,
                channel,
                tag,
                delivery_tag,
                redelivered,
                msg.exchange.as_str(),
                msg.routing_key.as_str(),
            );
            let frame_max = self.frame_max.get();
            codec::write_content_spliced(&mut out, channel, &msg.props, &msg.body, frame_max);
        }
        let bytes = msg.body.len() as u64;
        let mut credits = self.credits.borrow_mut();
        match credits.last_mut() {
            Some(last) if last.to == credit => {
                last.n += 1;
                last.bytes += bytes;
            }
            _ => credits.push(CreditRec {
                to: credit,
                n: 1,
                bytes,
            }),
        }
        drop(credits);
        self.out_notify.notify();
    }

    /// Append a delivery for a consumer on this connection (or hold it back
    /// while the channel's flow is paused). See [`Handoff`] for
    /// what the caller does with the other outcomes.
    #[allow(clippy::too_many_arguments)]
    pub fn deliver(
        &self,
        route: &ConsumerRoute,
        consumer: ConsumerId,
        queue: QueueId,
        home: ShardId,
        seq: u64,
        redelivered: bool,
        msg: MsgRef,
    ) -> Handoff {
        if self.closed.get() {
            return Handoff::Gone;
        }
        let mut st = self.state.borrow_mut();
        let Some(ch) = st.channels.get_mut(&route.channel) else {
            return Handoff::Gone;
        };
        if ch.closing || !ch.consumers.contains_key(&*route.tag) {
            return Handoff::Gone;
        }
        let credit = QueueConsumer {
            home,
            queue,
            consumer,
        };
        if !route.no_ack
            && ch.global_prefetch > 0
            && ch.unacked.len() >= ch.global_prefetch as usize
        {
            if !ch.paused.contains(&credit) {
                ch.paused.push(credit);
            }
            return Handoff::OverLimit;
        }
        let delivery_tag = ch.next_tag;
        ch.next_tag += 1;
        ch.stats.deliver += 1;
        if !route.no_ack {
            ch.unacked.insert(
                delivery_tag,
                Unacked {
                    queue,
                    home,
                    seq,
                    deadline: ack_timeout::deadline(route.timeout_ms),
                    timeout_ms: route.timeout_ms.min(u64::from(u32::MAX)) as u32,
                },
            );
        }
        // Hold it back (in tag order) while paused by channel.flow; the
        // queue's credit stays taken until it is written.
        if !ch.flow_active || !ch.held.is_empty() {
            ch.held.push_back(Held {
                acked_mode: !route.no_ack,
                tag: route.tag.clone(),
                delivery_tag,
                redelivered,
                msg,
                credit,
            });
            return Handoff::Taken;
        }
        drop(st);
        self.write_delivery(
            route.channel,
            &route.tag,
            delivery_tag,
            redelivered,
            &msg,
            credit,
        );
        Handoff::Taken
    }

    /// After acks, `basic.qos`, `basic.recover`: resume the queues paused
    /// by the channel-wide prefetch if the channel is under it now. They are
    /// reached through the outbox (even on this shard), like settlements.
    pub fn resume_paused(&self, cx: &Cx, channel: u16) {
        let resume = {
            let mut st = self.state.borrow_mut();
            let Some(ch) = st.channels.get_mut(&channel) else {
                return;
            };
            if ch.paused.is_empty()
                || (ch.global_prefetch > 0 && ch.unacked.len() >= ch.global_prefetch as usize)
            {
                return;
            }
            std::mem::take(&mut ch.paused)
        };
        for p in resume {
            cx.link.outbox.push(
                p.home,
                ShardMsg::Resume {
                    queue: p.queue,
                    consumer: p.consumer,
                },
            );
        }
    }

    /// Flow active again (consume-ok written, or channel.flow active=true):
    /// write what was held back, in delivery-tag order.
    pub fn release_held(&self, channel: u16) {
        let mut ready = Vec::new();
        {
            let mut st = self.state.borrow_mut();
            let Some(ch) = st.channels.get_mut(&channel) else {
                return;
            };
            // Held deliveries were admitted under the channel-wide prefetch
            // when they were tagged; only channel.flow holds them back.
            while ch.flow_active {
                let Some(h) = ch.held.pop_front() else { break };
                ready.push(h);
            }
        }
        for h in ready {
            self.write_delivery(
                channel,
                &h.tag,
                h.delivery_tag,
                h.redelivered,
                &h.msg,
                h.credit,
            );
        }
    }

    /// One home shard confirmed (or nacked) `seq`; true when the publish
    /// is settled. A nacked publish stays in the map, marked, until
    /// `flush_confirms` sends its basic.nack in order.
    pub fn confirm_one(&self, channel: u16, seq: u64, nack: bool) -> bool {
        let mut st = self.state.borrow_mut();
        let Some(ch) = st.channels.get_mut(&channel) else {
            return false;
        };
        let Some(n) = ch.pending_confirms.get_mut(&seq) else {
            return false;
        };
        n.0 = n.0.saturating_sub(1);
        n.1 |= nack;
        if n.0 == 0 {
            if !n.1 {
                ch.pending_confirms.remove(&seq);
            }
            return true;
        }
        false
    }

    /// Emit basic.ack for every confirmed publish, coalesced with
    /// `multiple` up to the oldest one still outstanding, and tx.commit-ok
    /// for every commit whose publishes are all confirmed. Returns the
    /// error to close the connection with when a commit failed (one of its
    /// persistent messages could not be stored: 541, never a commit-ok).
    pub fn flush_confirms(&self) -> Option<crate::error::AmqpError> {
        let mut out = Vec::new();
        let mut commits = Vec::new();
        let mut failed = None;
        {
            let mut st = self.state.borrow_mut();
            for ch in st.channels.values_mut() {
                if ch.closing {
                    continue;
                }
                while let Some(&upto) = ch.commit_waiters.front() {
                    let first = ch.pending_confirms.iter().next().map(|(k, v)| (*k, *v));
                    match first {
                        Some((seq, (_, nacked))) if seq <= upto => {
                            if nacked && ch.pending_confirms.range(..=upto).all(|(_, v)| v.0 == 0) {
                                ch.pending_confirms.retain(|k, _| *k > upto);
                                ch.commit_waiters.pop_front();
                                failed = Some(crate::error::AmqpError::internal_error(
                                    "tx.commit failed: a persistent message could not be stored",
                                ));
                            } else {
                                break;
                            }
                        }
                        _ => {
                            ch.commit_waiters.pop_front();
                            commits.push(ch.id);
                        }
                    }
                }
                if !ch.confirm {
                    continue;
                }
                loop {
                    let first = ch.pending_confirms.iter().next().map(|(k, v)| (*k, *v));
                    let low = first.map(|f| f.0).unwrap_or(ch.next_pub_seq);
                    let upto = low - 1;
                    if upto > ch.acked_upto {
                        ch.stats.confirm += upto - ch.acked_upto;
                        out.push((ch.id, upto, upto - ch.acked_upto > 1, false));
                        ch.acked_upto = upto;
                    }
                    match first {
                        Some((seq, (0, true))) => {
                            out.push((ch.id, seq, false, true));
                            ch.pending_confirms.remove(&seq);
                            ch.acked_upto = seq;
                        }
                        _ => break,
                    }
                }
            }
        }
        for (ch, tag, multiple, nack) in out {
            let m = if nack {
                basic::AMQPMethod::Nack(basic::Nack {
                    delivery_tag: tag,
                    multiple,
                    requeue: false,
                })
            } else {
                basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag: tag,
                    multiple,
                })
            };
            self.send_method(ch, AMQPClass::Basic(m));
        }
        for ch in commits {
            use amq_protocol::protocol::tx;
            self.send_method(ch, AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})));
        }
        failed
    }

    /// Close from the broker side (management): 320 CONNECTION_FORCED,
    /// then the socket once close-ok arrives (or after 3 s).
    pub fn force_close(self: &Rc<Self>, reason: &str) {
        self.close_with_error(&crate::error::AmqpError::connection_forced(reason));
    }

    /// Close the connection from the broker side with `e` (connection.close
    /// with its code and text), then the socket once close-ok arrives (or
    /// after 3 s).
    pub fn close_with_error(self: &Rc<Self>, e: &crate::error::AmqpError) {
        use amq_protocol::protocol::connection;
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: e.code,
                reply_text: e.text.clone().into(),
                class_id: e.class_id,
                method_id: e.method_id,
            })),
        );
        // Like RabbitMQ, wait for the client's close-ok (the reader returns
        // on it) and only then close the socket; give up after 3 s.
        self.server_closing.set(true);
        let me = self.clone();
        glommio::spawn_local(async move {
            glommio::timer::sleep(std::time::Duration::from_secs(3)).await;
            me.closed.set(true);
            me.out_notify.notify();
            me.closed_notify.notify();
        })
        .detach();
    }

    /// Server-sent basic.cancel (the queue was deleted).
    pub fn server_cancel(&self, channel: u16, tag: &str) {
        let removed = match self.state.borrow_mut().channels.get_mut(&channel) {
            Some(ch) if !ch.closing => ch.consumers.remove(tag).is_some(),
            _ => false,
        };
        if removed {
            self.send_method(
                channel,
                AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                    consumer_tag: tag.into(),
                    nowait: true,
                })),
            );
        }
    }

    /// Release everything a channel holds: requeue its unacked messages and
    /// cancel its consumers at their queues (fire and forget, in FIFO order).
    pub fn release_channel(&self, cx: &Cx, ch: &mut Channel) {
        // (A channel closed by the broker was released once already and
        // left `closing`.)
        if !ch.closing {
            cx.conns.counters.borrow_mut().channels_closed += 1;
        }
        let mut totals = cx.conns.closed_channel_totals.get();
        totals.publish += ch.stats.publish;
        totals.confirm += ch.stats.confirm;
        cx.conns.closed_channel_totals.set(totals);
        ch.stats.publish = 0;
        ch.stats.confirm = 0;
        if !ch.stats.exchanges.is_empty() {
            let vhost = ch.stats.vhost.clone();
            let mut closed = cx.conns.closed_exchange_stats.borrow_mut();
            for (x, i, o) in ch.stats.exchanges.drain(..) {
                crate::bus::stats::merge_exchange(&mut closed, &vhost, x.as_str(), i, o);
            }
        }
        // Cancel the consumers first: cancels and requeues travel the same
        // FIFO mailbox, so the queue forgets this channel's consumers before
        // it takes the messages back (and does not redeliver them here).
        for (_, c) in ch.consumers.drain() {
            cx.conns.consumers.borrow_mut().remove(&c.id);
            let slot = cx
                .link
                .send_request(c.home, crate::bus::Request::Cancel(c.queue, c.id));
            drop(slot);
        }
        let unacked = std::mem::take(&mut ch.unacked);
        settle_grouped(cx, unacked.into_values(), Settle::Requeue);
        // Settlements buffered in an uncommitted transaction are discarded
        // and their deliveries requeued (redelivered), as RabbitMQ does: a
        // channel that ends before tx.commit never strands a message.
        if let Some(ops) = ch.tx.take() {
            let uncommitted = ops.into_iter().flat_map(|op| match op {
                TxOp::Settle { tags, .. } => tags,
                TxOp::Publish { .. } => Vec::new(),
            });
            settle_grouped(cx, uncommitted.map(|(_, u)| u), Settle::Requeue);
        }
        for h in std::mem::take(&mut ch.held) {
            h.return_credit(cx);
        }
        ch.publish = None;
        ch.tx = None;
    }
}

/// Send settlements grouped per (home shard, queue): one mailbox message per
/// queue, not per delivery tag.
pub fn settle_grouped(cx: &Cx, items: impl IntoIterator<Item = Unacked>, how: Settle) {
    let mut groups: Vec<(ShardId, QueueId, Vec<u64>)> = Vec::new();
    for u in items {
        match groups.iter_mut().find(|g| g.0 == u.home && g.1 == u.queue) {
            Some(g) => g.2.push(u.seq),
            None => groups.push((u.home, u.queue, vec![u.seq])),
        }
    }
    for (home, queue, seqs) in groups {
        cx.link
            .outbox
            .push(home, ShardMsg::Settle { queue, seqs, how });
    }
}

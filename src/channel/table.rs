//! The connection table: every connection and consumer on this shard, and
//! the fan-outs that reach them (deliveries, confirms, connection.blocked).
//!
//! Owns: connections by id, consumer routes, the list of connections with
//! confirms or writes to flush at the end of a batch, the disk-alarm
//! `blocked` flag and the memory alarm, and the counters of closed channels kept for the
//! management API. Must never: await, lock, or touch a queue (queues are
//! reached through the outbox).

use super::{Conn, Handoff};
use crate::bus::stats::ExchangeCounts;
use crate::bus::{ConfirmRef, Link};
use crate::ids::{ConnId, ConsumerId, QueueId, ShardId};
use crate::message::MsgRef;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Where a consumer on this shard lives.
#[derive(Clone, Debug)]
pub struct ConsumerRoute {
    /// The consumer's connection (on this shard).
    pub conn: ConnId,
    /// The consumer's channel number.
    pub channel: u16,
    /// Consumer tag, as the client knows it.
    pub tag: Rc<str>,
    /// basic.consume no-ack: deliveries are not tracked for ack.
    pub no_ack: bool,
    /// Ack timeout of its deliveries, ms (0 = none; see `ack_timeout`).
    pub timeout_ms: u64,
}

/// Messages published and confirmed by channels that have closed, kept so
/// the management API's totals never go backwards (messages).
#[derive(Clone, Copy, Debug, Default)]
pub struct ClosedTotals {
    /// Messages published (see `ChannelStats::publish`).
    pub publish: u64,
    /// Publishes confirmed (see `ChannelStats::confirm`).
    pub confirm: u64,
}

/// Every connection and consumer on one shard (see the module docs).
pub struct ConnTable {
    shard: ShardId,
    /// Open (and closing) connections by id.
    pub conns: RefCell<crate::ids::IdMap<ConnId, Rc<Conn>>>,
    /// Consumers whose channels are on this shard.
    pub consumers: RefCell<crate::ids::IdMap<ConsumerId, ConsumerRoute>>,
    /// Connections with confirms or writes to flush at the end of a batch.
    dirty: RefCell<Vec<Rc<Conn>>>,
    next_conn: Cell<u64>,
    next_consumer: Cell<u64>,
    /// Publishers are told connection.blocked while the store cannot
    /// allocate (disk full).
    pub blocked: Cell<bool>,
    /// The memory alarm (`crate::memory`): publishing connections on this
    /// shard are blocked and not read from while it is raised.
    pub memory_alarm: Cell<bool>,
    /// The disk free-space alarm (`crate::disk`): free space in the data
    /// directory is below `disk_free_limit`; publishers are blocked and not
    /// read from, as under the memory alarm.
    pub disk_alarm: Cell<bool>,
    /// Wakes the readers paused by the memory or disk alarm when it clears.
    pub alarm_cleared: crate::mailbox::Notify,
    /// Queues (on any shard) in flow control (`queue::pressure`): a
    /// connection publishing to one is not read from until it leaves.
    pub flow_queues: RefCell<std::collections::HashSet<QueueId>>,
    /// `flow_queues.len()`: the publish path checks only this while no
    /// queue is in flow (no borrow, no hash).
    pub flow_count: Cell<usize>,
    /// Wakes readers paused by flow when a queue leaves it.
    pub flow_cleared: crate::mailbox::Notify,
    /// Last measured memory use and the limit, bytes (`crate::memory`).
    pub memory_used: Cell<u64>,
    /// The memory high watermark, bytes (0: none).
    pub memory_limit: Cell<u64>,
    /// Memory use from which queues page to disk, bytes (0: never;
    /// `vm_memory_high_watermark_paging_ratio` of the limit).
    pub memory_paging_at: Cell<u64>,
    /// Last measured free space in the data directory, and the
    /// `disk_free_limit`, bytes.
    pub disk_free: Cell<u64>,
    /// See [`ConnTable::disk_free`].
    pub disk_free_limit: Cell<u64>,
    /// The AMQP port (for connection names in listings).
    pub listen_port: Cell<u16>,
    /// The AMQPS port, 0 without TLS.
    pub tls_port: Cell<u16>,
    /// Exchange counters of closed channels, kept for the management API.
    pub closed_exchange_stats: RefCell<Vec<ExchangeCounts>>,
    /// Counted by channels that have since closed.
    pub closed_channel_totals: Cell<ClosedTotals>,
    /// Node-wide counters (this shard's part), for RabbitMQ's Prometheus
    /// families; a borrow and an add per event.
    pub counters: RefCell<crate::bus::stats::GlobalCounters>,
}

impl ConnTable {
    /// The listening port `conn` came in on: the AMQPS port for a TLS
    /// connection, the AMQP one otherwise (connection names carry it).
    /// 0 for the Unix socket.
    pub fn port_of(&self, conn: &Conn) -> u16 {
        match conn.transport {
            crate::net::Transport::Tcp => self.listen_port.get(),
            crate::net::Transport::Tls(_) => self.tls_port.get(),
            crate::net::Transport::Unix => 0,
        }
    }

    /// The name listings show and management close requests use:
    /// RabbitMQ's `"<peer ip>:<port> -> 127.0.0.1:<listen port>"` for TCP
    /// and TLS; `"unix:<shard>.<connection>"` (unique on the node) for the
    /// Unix socket, which has no peer address.
    pub fn name_of(&self, conn: &Conn) -> String {
        match conn.transport {
            crate::net::Transport::Unix => format!("unix:{}.{}", self.shard.0, conn.id.0),
            _ => crate::bus::stats::conn_name(&conn.peer, self.port_of(conn)),
        }
    }

    /// An empty table for shard `shard`.
    pub fn new(shard: ShardId) -> Self {
        ConnTable {
            shard,
            conns: RefCell::new(Default::default()),
            consumers: RefCell::new(Default::default()),
            dirty: RefCell::new(Vec::new()),
            next_conn: Cell::new(1),
            next_consumer: Cell::new(1),
            blocked: Cell::new(false),
            memory_alarm: Cell::new(false),
            alarm_cleared: crate::mailbox::Notify::default(),
            memory_used: Cell::new(0),
            memory_limit: Cell::new(0),
            memory_paging_at: Cell::new(0),
            disk_free: Cell::new(0),
            disk_free_limit: Cell::new(0),
            disk_alarm: Cell::new(false),
            flow_queues: RefCell::new(Default::default()),
            flow_count: Cell::new(0),
            flow_cleared: crate::mailbox::Notify::default(),
            listen_port: Cell::new(0),
            tls_port: Cell::new(0),
            closed_exchange_stats: RefCell::new(Vec::new()),
            closed_channel_totals: Cell::new(ClosedTotals::default()),
            counters: RefCell::new(Default::default()),
        }
    }

    /// A connection id unique on this node (the shard is part of it).
    pub fn new_conn_id(&self) -> ConnId {
        let n = self.next_conn.get();
        self.next_conn.set(n + 1);
        ConnId::new(self.shard, n)
    }

    /// A consumer id unique on this node (the shard is part of it).
    pub fn new_consumer_id(&self) -> ConsumerId {
        let n = self.next_consumer.get();
        self.next_consumer.set(n + 1);
        ConsumerId::new(self.shard, n)
    }

    /// The connection has confirms or writes to flush at the end of this
    /// batch (each connection is listed once).
    pub fn mark_dirty(&self, conn: &Rc<Conn>) {
        if !conn.dirty.replace(true) {
            self.dirty.borrow_mut().push(conn.clone());
        }
    }

    /// End of a batch: emit coalesced confirms (one `basic.ack multiple`
    /// per channel where possible) and wake the writers.
    pub fn flush_dirty(&self) {
        let dirty = std::mem::take(&mut *self.dirty.borrow_mut());
        for c in dirty {
            c.dirty.set(false);
            if let Some(e) = c.flush_confirms() {
                c.close_with_error(&e);
            }
        }
    }

    /// Hand a delivery to a consumer on this shard (see [`Handoff`]).
    #[allow(clippy::too_many_arguments)]
    pub fn deliver(
        &self,
        consumer: ConsumerId,
        queue: QueueId,
        home: ShardId,
        seq: u64,
        redelivered: bool,
        msg: MsgRef,
    ) -> Handoff {
        let Some(route) = self.consumers.borrow().get(&consumer).cloned() else {
            return Handoff::Gone;
        };
        let Some(conn) = self.conns.borrow().get(&route.conn).cloned() else {
            return Handoff::Gone;
        };
        let h = conn.deliver(&route, consumer, queue, home, seq, redelivered, msg);
        if matches!(h, Handoff::Taken) {
            let mut k = self.counters.borrow_mut();
            if route.no_ack {
                k.delivered_consume_auto_ack += 1;
            } else {
                k.delivered_consume_manual_ack += 1;
            }
            k.redelivered += u64::from(redelivered);
        }
        h
    }

    /// A publisher confirm (`nack` false) or nack for a channel on this
    /// shard; sent coalesced at [`ConnTable::flush_dirty`].
    pub fn confirm(&self, c: ConfirmRef, nack: bool) {
        debug_assert!(
            !c.is_dead_letter(),
            "a dead letter's confirm reached a channel"
        );
        let conn = self.conns.borrow().get(&c.conn).cloned();
        if let Some(conn) = conn {
            if conn.confirm_one(c.channel, c.seq, nack) && !conn.dirty.replace(true) {
                self.dirty.borrow_mut().push(conn);
            }
        }
    }

    /// A direct reply for a requester on this shard (see `reply_to`);
    /// dropped if the connection, channel or reply consumer is gone.
    pub fn direct_reply(&self, to: &super::reply_to::ReplyAddress, msg: &MsgRef) {
        let conn = self.conns.borrow().get(&to.conn).cloned();
        if let Some(conn) = conn {
            super::reply_to::deliver(&conn, to, msg);
        }
    }

    /// Server-sent `basic.cancel`: the consumer's queue went away.
    pub fn consumer_cancelled(&self, consumer: ConsumerId) {
        let route = self.consumers.borrow_mut().remove(&consumer);
        if let Some(r) = route {
            let conn = self.conns.borrow().get(&r.conn).cloned();
            if let Some(conn) = conn {
                conn.server_cancel(r.channel, &r.tag);
            }
        }
    }

    /// Enter or leave the disk alarm: tell every capable publishing client
    /// on this shard with `connection.blocked` (reason "low on disk", as
    /// RabbitMQ words it) / `connection.unblocked`.
    pub fn set_blocked(&self, on: bool) {
        if self.blocked.replace(on) == on {
            return;
        }
        if on {
            tracing::warn!(
                shard = self.shard.0,
                "disk alarm: persistent publishes are nacked until space frees up"
            );
        } else {
            tracing::info!(shard = self.shard.0, "disk alarm cleared");
        }
        self.tell_publishers();
    }

    /// Raise or clear the memory alarm (RabbitMQ's memory high watermark):
    /// publishing connections get `connection.blocked` ("low on memory")
    /// and their readers pause until it clears; consumers and acks on
    /// other connections keep flowing.
    pub fn set_memory_alarm(&self, on: bool) {
        if self.memory_alarm.replace(on) == on {
            return;
        }
        let (used, limit) = (self.memory_used.get(), self.memory_limit.get());
        if on {
            tracing::warn!(
                shard = self.shard.0,
                used,
                limit,
                "memory alarm: publishers blocked until memory use falls"
            );
        } else {
            tracing::info!(shard = self.shard.0, used, limit, "memory alarm cleared");
            self.alarm_cleared.notify();
        }
        self.tell_publishers();
    }

    /// Memory use is past the paging threshold
    /// ([`ConnTable::memory_paging_at`]): queues page new messages to disk
    /// beyond their read-ahead.
    pub fn memory_pressure(&self) -> bool {
        let at = self.memory_paging_at.get();
        at != 0 && self.memory_used.get() >= at
    }

    /// Raise or clear the disk free-space alarm (RabbitMQ's
    /// `disk_free_limit`): publishing connections get `connection.blocked`
    /// ("low on disk") and their readers pause until it clears.
    pub fn set_disk_alarm(&self, on: bool) {
        if self.disk_alarm.replace(on) == on {
            return;
        }
        let (free, limit) = (self.disk_free.get(), self.disk_free_limit.get());
        if on {
            tracing::warn!(
                shard = self.shard.0,
                free,
                limit,
                "disk alarm: free disk space below disk_free_limit; publishers blocked"
            );
        } else {
            tracing::info!(shard = self.shard.0, free, limit, "disk alarm cleared");
            self.alarm_cleared.notify();
        }
        self.tell_publishers();
    }

    /// Queue `q` entered or left flow control (`ShardMsg::QueueFlow`).
    pub fn set_queue_flow(&self, q: QueueId, on: bool) {
        let mut set = self.flow_queues.borrow_mut();
        if on {
            set.insert(q);
        } else if set.remove(&q) {
            self.flow_cleared.notify();
        }
        self.flow_count.set(set.len());
    }

    /// Queue `q` is in flow control.
    pub fn in_flow(&self, q: QueueId) -> bool {
        self.flow_count.get() != 0 && self.flow_queues.borrow().contains(&q)
    }

    /// Measure free space in `dir` (the data directory's filesystem) and
    /// raise or clear the disk alarm against `disk_free_limit`; an
    /// unreadable filesystem leaves the alarm as it is.
    pub fn check_disk(&self, dir: &std::path::Path) {
        if let Some(free) = crate::disk::free_bytes(dir) {
            self.disk_free.set(free);
            self.set_disk_alarm(free < self.disk_free_limit.get());
        }
    }

    /// A disk alarm is raised: free space below `disk_free_limit`, or the
    /// store could not allocate a segment.
    pub fn disk_alarmed(&self) -> bool {
        self.blocked.get() || self.disk_alarm.get()
    }

    /// An alarm under which publishing connections are not read from
    /// (memory, or disk free space below the limit).
    pub fn reading_paused(&self) -> bool {
        self.memory_alarm.get() || self.disk_alarm.get()
    }

    /// Whether any resource alarm (disk or memory) is raised.
    pub fn alarmed(&self) -> bool {
        self.disk_alarmed() || self.memory_alarm.get()
    }

    /// Tell every publishing connection the current alarm state.
    fn tell_publishers(&self) {
        let conns: Vec<Rc<Conn>> = self.conns.borrow().values().cloned().collect();
        for c in conns {
            // Like RabbitMQ, only connections that publish are blocked.
            if c.published.get() || c.blocked_sent.get() {
                self.notify_blocked(&c, self.alarmed());
            }
        }
    }

    /// Send `connection.blocked` / `unblocked` to one connection if it
    /// advertised the capability and its state changes; the reason is
    /// RabbitMQ's text for the alarm raised ("low on memory", "low on
    /// disk").
    pub fn notify_blocked(&self, c: &Conn, on: bool) {
        use amq_protocol::protocol::{connection, AMQPClass};
        if !c.state.borrow().blocked_capable || !c.open.get() || c.blocked_sent.get() == on {
            return;
        }
        c.blocked_sent.set(on);
        let m = if on {
            let reason = if self.memory_alarm.get() {
                "low on memory"
            } else {
                "low on disk"
            };
            connection::AMQPMethod::Blocked(connection::Blocked {
                reason: reason.into(),
            })
        } else {
            connection::AMQPMethod::Unblocked(connection::Unblocked {})
        };
        c.send_method(0, AMQPClass::Connection(m));
    }
}

/// What the channel layer (and the management API) needs of its shard: the
/// bus link and the connection table. Cloning is two reference counts.
#[derive(Clone)]
pub struct Cx {
    /// This shard's end of the bus: id, config, routing table, outbox, requests.
    pub link: Rc<Link>,
    /// This shard's connections and consumers.
    pub conns: Rc<ConnTable>,
}

impl Cx {
    /// This shard's routing table (never hold across an `.await`).
    pub fn table(&self) -> std::cell::Ref<'_, crate::routing::RoutingTable> {
        self.link.table()
    }

    /// How many shards the node runs.
    pub fn shard_count(&self) -> usize {
        self.link.shard_count()
    }

    /// The metadata authority's shard.
    pub fn authority(&self) -> ShardId {
        self.link.authority()
    }

    /// Ask shard `to` and wait for its answer ([`Link::call`]).
    pub fn call(
        &self,
        to: ShardId,
        req: crate::bus::Request,
    ) -> impl std::future::Future<Output = crate::bus::Response> + '_ {
        self.link.call(to, req)
    }
}

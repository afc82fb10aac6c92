//! A shard: one pinned core, one glommio executor, and everything it owns.
//!
//! Owns: its connections, the queues homed on it, its copy of the routing
//! table, its outbox, and (on shard 0) the metadata authority. All state is
//! in `RefCell`s touched only by this thread; borrows are never held across
//! an `.await`. Must never: lock, block the thread, or await inside
//! [`Shard::handle`] (see the deadlock argument in `mailbox`).

mod run;

pub use run::{start_shard, ShardBoot};

use crate::channel::{Conn, Handoff};
use crate::config::Config;
use crate::ids::{ConnId, ConsumerId, QueueId, ShardId};
use crate::mailbox::{ConfirmRef, Notify, Outbox, Request, Response, ShardMsg};
use crate::defs::MetaChange;
use crate::meta::persist::DefinitionsLog;
use crate::meta::MetaOp;
use crate::queue::{Delivery, Queue};
use crate::routing::RoutingTable;
use crate::store::Store;
use std::cell::{Cell, Ref, RefCell, RefMut};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// A one-shot reply slot for a request sent through the mailboxes.
pub struct Slot {
    value: RefCell<Option<Response>>,
    ready: Notify,
}

/// Where a consumer on this shard lives.
#[derive(Clone, Debug)]
pub struct ConsumerRoute {
    pub conn: ConnId,
    pub channel: u16,
    pub tag: Rc<str>,
    pub no_ack: bool,
}

pub struct Shard {
    pub id: ShardId,
    shards: usize,
    pub config: Rc<Config>,
    table: RefCell<RoutingTable>,
    pub queues: RefCell<HashMap<QueueId, Queue>>,
    pub conns: RefCell<HashMap<ConnId, Rc<Conn>>>,
    pub consumers: RefCell<HashMap<ConsumerId, ConsumerRoute>>,
    pub outbox: Outbox,
    pending: RefCell<HashMap<u64, Rc<Slot>>>,
    next_req: Cell<u64>,
    next_conn: Cell<u64>,
    next_consumer: Cell<u64>,
    next_queue: Cell<u64>,
    meta_queue: RefCell<VecDeque<(ShardId, u64, MetaOp)>>,
    pub meta_ready: Notify,
    /// Connections with confirms or writes to flush at the end of a batch.
    dirty: RefCell<Vec<Rc<Conn>>>,
    /// This shard's message store (segments and durable queue indexes).
    pub store: RefCell<Store>,
    /// Wakes the group-commit sync task.
    pub sync_needed: Notify,
    /// The durable definitions log (authority only).
    pub defs_log: RefCell<Option<DefinitionsLog>>,
    /// Publishers are told connection.blocked while the store cannot
    /// allocate (disk full).
    pub blocked: Cell<bool>,
    /// The AMQP port (for connection names in listings).
    pub listen_port: Cell<u16>,
    /// Exchange counters of closed channels, kept for the management API.
    pub closed_exchange_stats: RefCell<Vec<(String, String, u64, u64)>>,
    /// (publish, confirm) counted by channels that have since closed.
    pub closed_channel_totals: Cell<(u64, u64)>,
}

impl Shard {
    pub fn new(id: ShardId, shards: usize, config: Rc<Config>, store: Store) -> Rc<Self> {
        let table = RoutingTable::new();
        Rc::new(Shard {
            id,
            shards,
            config,
            table: RefCell::new(table),
            queues: RefCell::new(HashMap::new()),
            conns: RefCell::new(HashMap::new()),
            consumers: RefCell::new(HashMap::new()),
            outbox: Outbox::new(shards),
            pending: RefCell::new(HashMap::new()),
            next_req: Cell::new(1),
            next_conn: Cell::new(1),
            next_consumer: Cell::new(1),
            next_queue: Cell::new(1),
            meta_queue: RefCell::new(VecDeque::new()),
            meta_ready: Notify::default(),
            dirty: RefCell::new(Vec::new()),
            store: RefCell::new(store),
            sync_needed: Notify::default(),
            defs_log: RefCell::new(None),
            blocked: Cell::new(false),
            listen_port: Cell::new(0),
            closed_exchange_stats: RefCell::new(Vec::new()),
            closed_channel_totals: Cell::new((0, 0)),
        })
    }

    pub fn shard_count(&self) -> usize {
        self.shards
    }

    pub fn table(&self) -> Ref<'_, RoutingTable> {
        self.table.borrow()
    }

    pub fn table_mut(&self) -> RefMut<'_, RoutingTable> {
        self.table.borrow_mut()
    }

    pub fn new_conn_id(&self) -> ConnId {
        let n = self.next_conn.get();
        self.next_conn.set(n + 1);
        ConnId::new(self.id, n)
    }

    pub fn new_consumer_id(&self) -> ConsumerId {
        let n = self.next_consumer.get();
        self.next_consumer.set(n + 1);
        ConsumerId::new(self.id, n)
    }

    /// Only meaningful on the authority.
    pub fn next_queue_id(&self) -> u64 {
        let n = self.next_queue.get();
        self.next_queue.set(n + 1);
        n
    }

    pub fn set_next_queue_id(&self, n: u64) {
        self.next_queue.set(n);
    }

    pub fn authority(&self) -> ShardId {
        ShardId(0)
    }

    /// Send a request to `to` (possibly this shard); the slot gets the reply.
    pub fn send_request(&self, to: ShardId, req: Request) -> Rc<Slot> {
        self.send_request_id(to, req).1
    }

    /// [`Shard::send_request`], also returning the request id.
    fn send_request_id(&self, to: ShardId, req: Request) -> (u64, Rc<Slot>) {
        let id = self.next_req.get();
        self.next_req.set(id + 1);
        let slot = Rc::new(Slot {
            value: RefCell::new(None),
            ready: Notify::default(),
        });
        self.pending.borrow_mut().insert(id, slot.clone());
        self.outbox.push(
            to,
            ShardMsg::Request {
                id,
                from: self.id,
                req,
            },
        );
        (id, slot)
    }

    pub async fn wait_slot(slot: Rc<Slot>) -> Response {
        loop {
            let wait = slot.ready.wait();
            if let Some(v) = slot.value.borrow_mut().take() {
                return v;
            }
            wait.await;
        }
    }

    /// Send a request to `to` (possibly this shard) now, and return the
    /// wait for its response. Dropping the wait unanswered (a timeout, a
    /// closed connection) forgets the request's slot, so asking a stalled
    /// shard again and again does not grow `pending`.
    pub fn call(
        &self,
        to: ShardId,
        req: Request,
    ) -> impl std::future::Future<Output = Response> + '_ {
        let (id, slot) = self.send_request_id(to, req);
        let forget = ForgetSlot { shard: self, id };
        async move {
            let r = Self::wait_slot(slot).await;
            drop(forget);
            r
        }
    }

    /// Make a change durable (if it concerns durable entities), then apply
    /// it on every shard (this one included) and wait for all; the requests
    /// go out together. Returns each shard's answer.
    ///
    /// Errors: 541 INTERNAL_ERROR when the definitions log cannot be
    /// written (disk full, I/O error); the change is then applied nowhere,
    /// so a declare-ok / delete-ok is only ever sent for a durable change.
    pub async fn broadcast(&self, change: MetaChange) -> crate::error::AmqpResult<Vec<u32>> {
        // Evaluated before applying: a deletion is logged only if what it
        // deletes was durable.
        if crate::meta::persist::is_durable(&self.table(), &change) {
            if let Some(log) = self.defs_log.borrow_mut().as_mut() {
                if let Err(e) = log.append(&change) {
                    tracing::error!("cannot persist definition change: {e}");
                    return Err(crate::error::AmqpError::internal_error(format!(
                        "cannot persist definition change: {e}"
                    )));
                }
            }
        }
        let slots: Vec<_> = (0..self.shards)
            .map(|s| self.send_request(ShardId(s), Request::Apply(change.clone())))
            .collect();
        let mut out = Vec::with_capacity(self.shards);
        for s in slots {
            out.push(match Self::wait_slot(s).await {
                Response::Applied(v) => v,
                _ => 0,
            });
        }
        Ok(out)
    }

    pub fn respond(&self, to: ShardId, id: u64, resp: Response) {
        self.outbox.push(to, ShardMsg::Response { id, resp });
    }

    pub fn take_meta(&self) -> Option<(ShardId, u64, MetaOp)> {
        self.meta_queue.borrow_mut().pop_front()
    }

    pub fn mark_dirty(&self, conn: &Rc<Conn>) {
        if !conn.dirty.replace(true) {
            self.dirty.borrow_mut().push(conn.clone());
        }
    }

    /// End of a batch: emit coalesced confirms and wake writers.
    pub fn flush_dirty(&self) {
        // Before any delivery made in this batch reaches a socket (writers
        // run after this task yields): its redelivered flag is in the page
        // cache, so it survives a process crash.
        self.store.borrow_mut().write_deliveries();
        let dirty = std::mem::take(&mut *self.dirty.borrow_mut());
        for c in dirty {
            c.dirty.set(false);
            if let Some(e) = c.flush_confirms() {
                c.close_with_error(&e);
            }
        }
    }

    /// Handle one message from `from` (this shard included). Synchronous by
    /// design: see the deadlock argument in `mailbox`.
    pub fn handle(self: &Rc<Self>, from: ShardId, msg: ShardMsg) {
        match msg {
            ShardMsg::Request {
                id,
                from: origin,
                req,
            } => self.handle_request(origin, id, req),
            ShardMsg::Response { id, resp } => {
                if let Some(slot) = self.pending.borrow_mut().remove(&id) {
                    *slot.value.borrow_mut() = Some(resp);
                    slot.ready.notify();
                }
            }
            ShardMsg::Publish {
                queues,
                msg,
                confirm,
            } => self.publish(queues, msg, confirm),
            ShardMsg::Confirmed(c) => self.confirm_local(c, false),
            ShardMsg::Nacked(c) => self.confirm_local(c, true),
            ShardMsg::Deliver {
                consumer,
                queue,
                seq,
                redelivered,
                msg,
            } => {
                let handoff = self.deliver_local(consumer, queue, from, seq, redelivered, msg);
                if handoff == Handoff::OverLimit {
                    self.outbox.push(
                        from,
                        ShardMsg::Returned {
                            queue,
                            consumer,
                            seq,
                        },
                    );
                } else if handoff == Handoff::Gone {
                    // The consumer is gone: hand the message back.
                    self.outbox.push(
                        from,
                        ShardMsg::Settle {
                            queue,
                            seqs: vec![seq],
                            how: crate::mailbox::Settle::Requeue,
                        },
                    );
                    self.outbox.push(
                        from,
                        ShardMsg::Credit {
                            queue,
                            consumer,
                            n: 1,
                        },
                    );
                }
            }
            ShardMsg::Settle { queue, seqs, how } => {
                if let Some(q) = self.queues.borrow_mut().get_mut(&queue) {
                    q.settle(&seqs, how, &mut self.store.borrow_mut());
                }
                self.drain_queue(queue);
            }
            ShardMsg::Credit { queue, consumer, n } => {
                if let Some(q) = self.queues.borrow_mut().get_mut(&queue) {
                    q.credit(consumer, n);
                }
                self.drain_queue(queue);
            }
            ShardMsg::Returned {
                queue,
                consumer,
                seq,
            } => {
                if let Some(q) = self.queues.borrow_mut().get_mut(&queue) {
                    q.returned(consumer, seq);
                }
                self.drain_queue(queue);
            }
            ShardMsg::Resume { queue, consumer } => {
                if let Some(q) = self.queues.borrow_mut().get_mut(&queue) {
                    q.resume(consumer);
                }
                self.drain_queue(queue);
            }
            ShardMsg::ConsumerCancelled { consumer } => {
                let route = self.consumers.borrow_mut().remove(&consumer);
                if let Some(r) = route {
                    let conn = self.conns.borrow().get(&r.conn).cloned();
                    if let Some(conn) = conn {
                        conn.server_cancel(r.channel, &r.tag);
                    }
                }
            }
        }
    }

    fn handle_request(self: &Rc<Self>, origin: ShardId, id: u64, req: Request) {
        let resp = match req {
            Request::Meta(op) => {
                self.meta_queue.borrow_mut().push_back((origin, id, op));
                self.meta_ready.notify();
                return;
            }
            Request::Apply(change) => Response::Applied(self.apply(change)),
            Request::QueueStats(q) => match self.queues.borrow().get(&q) {
                Some(q) => Response::Stats {
                    messages: q.message_count(),
                    consumers: q.consumer_count(),
                },
                None => Response::Gone,
            },
            Request::Consume(qid, spec) => {
                let r = match self.queues.borrow_mut().get_mut(&qid) {
                    Some(q) => Response::Consumed(q.consume(spec)),
                    None => Response::Gone,
                };
                self.drain_queue(qid);
                r
            }
            Request::Cancel(qid, consumer) => {
                let auto_delete = match self.queues.borrow_mut().get_mut(&qid) {
                    Some(q) => {
                        q.cancel(consumer);
                        q.should_auto_delete()
                            .then(|| (q.def.vhost.clone(), q.def.name.clone()))
                    }
                    None => None,
                };
                if let Some((vhost, name)) = auto_delete {
                    self.request_auto_delete(vhost, name);
                }
                self.drain_queue(qid);
                Response::Cancelled
            }
            Request::Get { queue, no_ack } => match self.queues.borrow_mut().get_mut(&queue) {
                Some(q) => Response::Got(q.get(no_ack, &mut self.store.borrow_mut())),
                None => Response::Gone,
            },
            Request::Snapshot => Response::Snapshot(Box::new(crate::mgmt::stats::snapshot(self))),
            Request::CloseConnection(name, reason) => {
                let port = self.listen_port.get();
                let conn = self
                    .conns
                    .borrow()
                    .values()
                    .find(|c| crate::mgmt::stats::conn_name(&c.peer, port) == name)
                    .cloned();
                if let Some(c) = conn {
                    c.force_close(&reason);
                }
                Response::Done
            }
            Request::Purge(queue) => match self.queues.borrow_mut().get_mut(&queue) {
                Some(q) => Response::Purged(q.purge(&mut self.store.borrow_mut())),
                None => Response::Gone,
            },
            Request::ConnectionCounts { vhost, user } => {
                let mut n = crate::mailbox::ConnectionCounts::default();
                for c in self.conns.borrow().values() {
                    if !c.admitted.get() || c.closed.get() {
                        continue;
                    }
                    let st = c.state.borrow();
                    n.total += 1;
                    n.vhost += u64::from(st.vhost == vhost);
                    n.user += u64::from(st.user == user);
                }
                Response::ConnectionCounts(n)
            }
            Request::UserChannels { user } => {
                let n = self
                    .conns
                    .borrow()
                    .values()
                    .filter(|c| !c.closed.get())
                    .map(|c| c.state.borrow())
                    .filter(|st| st.user == user)
                    .map(|st| st.channels.len() as u64)
                    .sum();
                Response::Count(n)
            }
        };
        self.respond(origin, id, resp);
    }

    fn request_auto_delete(self: &Rc<Self>, vhost: String, name: String) {
        let me = self.clone();
        glommio::spawn_local(async move {
            let op = MetaOp::QueueDelete {
                vhost,
                name,
                if_unused: true,
                if_empty: false,
                owner: None,
            };
            me.call(me.authority(), Request::Meta(op)).await;
        })
        .detach();
    }

    /// Enter or leave the disk alarm: tell every capable client on this
    /// shard with connection.blocked / connection.unblocked.
    pub fn set_blocked(&self, on: bool) {
        if self.blocked.replace(on) == on {
            return;
        }
        if on {
            tracing::warn!(
                shard = self.id.0,
                "disk alarm: persistent publishes are nacked until space frees up"
            );
        } else {
            tracing::info!(shard = self.id.0, "disk alarm cleared");
        }
        let conns: Vec<Rc<Conn>> = self.conns.borrow().values().cloned().collect();
        for c in conns {
            // Like RabbitMQ, only connections that publish are blocked.
            if c.published.get() || c.blocked_sent.get() {
                self.notify_blocked(&c, on);
            }
        }
    }

    pub fn notify_blocked(&self, c: &Conn, on: bool) {
        use amq_protocol::protocol::{connection, AMQPClass};
        if !c.state.borrow().blocked_capable || !c.open.get() || c.blocked_sent.get() == on {
            return;
        }
        c.blocked_sent.set(on);
        let m = if on {
            connection::AMQPMethod::Blocked(connection::Blocked {
                reason: "low on disk".into(),
            })
        } else {
            connection::AMQPMethod::Unblocked(connection::Unblocked {})
        };
        c.send_method(0, AMQPClass::Connection(m));
    }

    /// Apply a change outside the mailboxes (start-up recovery).
    pub fn apply_change(self: &Rc<Self>, change: MetaChange) {
        self.apply(change);
    }

    /// Apply a metadata change to this shard's table and home queues.
    fn apply(self: &Rc<Self>, change: MetaChange) -> u32 {
        let mut value = 0;
        match &change {
            MetaChange::QueueDeclared(def)
                if def.home == self.id && !self.queues.borrow().contains_key(&def.id) =>
            {
                let mut q = Queue::new(def.clone());
                if def.durable && def.exclusive_owner.is_none() {
                    let items = self
                        .store
                        .borrow_mut()
                        .open_queue(def.id, &def.vhost, &def.name);
                    if !items.is_empty() {
                        tracing::info!(queue = %def.name, messages = items.len(), "recovered");
                    }
                    q.recover(items);
                }
                self.queues.borrow_mut().insert(def.id, q);
            }
            MetaChange::VhostDeleted { name } => {
                let ids: Vec<QueueId> = self
                    .queues
                    .borrow()
                    .values()
                    .filter(|q| &q.def.vhost == name)
                    .map(|q| q.id())
                    .collect();
                for id in ids {
                    let removed = self.queues.borrow_mut().remove(&id);
                    if let Some(mut q) = removed {
                        let positions = q.all_positions();
                        let mut st = self.store.borrow_mut();
                        if st.is_durable(id) {
                            st.drop_queue(id, positions);
                        }
                        drop(st);
                        for c in q.take_consumers() {
                            self.outbox
                                .push(c.id.shard(), ShardMsg::ConsumerCancelled { consumer: c.id });
                        }
                    }
                }
            }
            MetaChange::QueueDeleted { id, .. } => {
                let removed = self.queues.borrow_mut().remove(id);
                if let Some(mut q) = removed {
                    value = q.message_count();
                    let positions = q.all_positions();
                    let mut st = self.store.borrow_mut();
                    if st.is_durable(*id) {
                        st.drop_queue(*id, positions);
                    }
                    drop(st);
                    for c in q.take_consumers() {
                        self.outbox
                            .push(c.id.shard(), ShardMsg::ConsumerCancelled { consumer: c.id });
                    }
                }
            }
            _ => {}
        }
        self.table.borrow_mut().apply(&change);
        value
    }

    /// A message arrived for queues homed here: store it once if any of
    /// them is durable and it is persistent, enqueue it, and confirm it
    /// (after the next group commit when it was stored).
    fn publish(
        self: &Rc<Self>,
        queues: crate::mailbox::QueueList,
        msg: crate::message::MsgRef,
        confirm: Option<ConfirmRef>,
    ) {
        let mut stored = None;
        let mut failed = false;
        {
            let mut st = self.store.borrow_mut();
            if msg.persistent && queues.iter().any(|q| st.is_durable(*q)) {
                match st.append_message(&msg) {
                    Ok(p) => stored = Some(p),
                    Err(e) => {
                        tracing::error!("cannot store message: {e}");
                        failed = true;
                    }
                }
            }
            if !failed {
                let mut qs = self.queues.borrow_mut();
                for qid in &queues {
                    if let Some(q) = qs.get_mut(qid) {
                        let pos = stored.filter(|_| st.is_durable(*qid));
                        if let Some(p) = pos {
                            st.enqueue(*qid, p);
                        }
                        q.publish(msg.clone(), pos);
                    }
                }
            }
            if let (Some(c), Some(_)) = (confirm, stored) {
                st.waiting.push(c);
                self.sync_needed.notify();
            }
        }
        if failed {
            self.set_blocked(true);
        }
        if let Some(c) = confirm {
            if failed {
                self.nack(c);
            } else if stored.is_none() {
                self.confirm(c);
            }
        }
        if !failed {
            for qid in &queues {
                self.drain_queue(*qid);
            }
        }
    }

    /// Dispatch every delivery the queue's consumers have credit for.
    pub fn drain_queue(self: &Rc<Self>, qid: QueueId) {
        loop {
            let d = match self.queues.borrow_mut().get_mut(&qid) {
                Some(q) => q.next_delivery(&mut self.store.borrow_mut()),
                None => None,
            };
            let Some(d) = d else { return };
            if d.shard == self.id {
                let Delivery {
                    consumer,
                    seq,
                    redelivered,
                    ref msg,
                    ..
                } = d;
                match self.deliver_local(consumer, qid, self.id, seq, redelivered, msg.clone()) {
                    Handoff::Taken => {}
                    Handoff::Gone => {
                        if let Some(q) = self.queues.borrow_mut().get_mut(&qid) {
                            q.undeliverable(d);
                        }
                    }
                    // The consumer is paused now, so the loop moves on.
                    Handoff::OverLimit => {
                        if let Some(q) = self.queues.borrow_mut().get_mut(&qid) {
                            q.returned(consumer, seq);
                        }
                    }
                }
            } else {
                self.outbox.push(
                    d.shard,
                    ShardMsg::Deliver {
                        consumer: d.consumer,
                        queue: qid,
                        seq: d.seq,
                        redelivered: d.redelivered,
                        msg: d.msg,
                    },
                );
            }
        }
    }

    /// Hand a delivery to a consumer on this shard (see [`Handoff`]).
    fn deliver_local(
        self: &Rc<Self>,
        consumer: ConsumerId,
        queue: QueueId,
        home: ShardId,
        seq: u64,
        redelivered: bool,
        msg: crate::message::MsgRef,
    ) -> Handoff {
        let Some(route) = self.consumers.borrow().get(&consumer).cloned() else {
            return Handoff::Gone;
        };
        let Some(conn) = self.conns.borrow().get(&route.conn).cloned() else {
            return Handoff::Gone;
        };
        conn.deliver(&route, consumer, queue, home, seq, redelivered, msg)
    }

    /// A queue on this shard took a message that wants a confirm.
    pub fn confirm(&self, c: ConfirmRef) {
        let shard = c.conn.shard();
        if shard == self.id {
            self.confirm_local(c, false);
        } else {
            self.outbox.push(shard, ShardMsg::Confirmed(c));
        }
    }

    /// The broker could not take responsibility for a message.
    pub fn nack(&self, c: ConfirmRef) {
        let shard = c.conn.shard();
        if shard == self.id {
            self.confirm_local(c, true);
        } else {
            self.outbox.push(shard, ShardMsg::Nacked(c));
        }
    }

    fn confirm_local(&self, c: ConfirmRef, nack: bool) {
        let conn = self.conns.borrow().get(&c.conn).cloned();
        if let Some(conn) = conn {
            if conn.confirm_one(c.channel, c.seq, nack) && !conn.dirty.replace(true) {
                {
                    self.dirty.borrow_mut().push(conn);
                }
            }
        }
    }
}

/// Removes an unanswered request's slot from `Shard::pending` when its wait
/// is dropped (a no-op once the response arrived and took the slot).
struct ForgetSlot<'a> {
    shard: &'a Shard,
    id: u64,
}

impl Drop for ForgetSlot<'_> {
    fn drop(&mut self) {
        self.shard.pending.borrow_mut().remove(&self.id);
    }
}

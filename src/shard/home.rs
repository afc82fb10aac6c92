//! The queue home: the queues homed on this shard and the store that keeps
//! their persistent messages.
//!
//! Owns: those queues, the store, the group-commit wake-up and the confirms
//! waiting for a sync. Publishes, settlements and credit arrive here from
//! the mailboxes; deliveries leave through the connection table (consumer
//! on this shard) or the outbox (elsewhere). Must never: await, lock, or
//! copy a message body (messages are shared `Arc`s).

use crate::bus::{ConfirmRef, Link, QueueList, ShardMsg};
use crate::channel::{ConnTable, Handoff};
use crate::ids::{ConsumerId, QueueId, ShardId};
use crate::mailbox::Notify;
use crate::message::MsgRef;
use crate::queue::{Delivery, Queue, Settle, StoreOp};
use crate::store::{Position, Store};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// The queues homed on one shard and their store (see the module docs).
pub struct QueueHome {
    link: Rc<Link>,
    conns: Rc<ConnTable>,
    /// Queues homed here, by id.
    pub queues: RefCell<crate::ids::IdMap<QueueId, Queue>>,
    /// This shard's message store (segments and the queue journal).
    pub store: RefCell<Store>,
    /// Wakes the group-commit sync task.
    pub sync_needed: Notify,
    /// Confirms owed once the store's sync of that generation finishes
    /// ([`Store::await_sync`]), oldest first.
    awaiting: RefCell<VecDeque<(u64, ConfirmRef)>>,
    /// Queues with messages that have a TTL: the expiry tick
    /// ([`QueueHome::expire_due`]) looks at their heads only.
    expiring: RefCell<std::collections::HashSet<QueueId>>,
    /// Queues with `x-expires`, and those whose deletion is requested.
    idle_expiring: RefCell<std::collections::HashSet<QueueId>>,
    idle_deleting: Rc<RefCell<std::collections::HashSet<QueueId>>>,
    /// Messages that died in queues with a dead-letter exchange, waiting
    /// to be re-published ([`QueueHome::send_dead_letters`]).
    /// (And messages due in delayed-message exchanges' stores, waiting to
    /// be routed by their exchange.)
    dead: RefCell<dead_letters::Pending>,
    /// Dead letters whose stored copies wait for their targets' confirms.
    held: RefCell<dead_letters::Held>,
    /// Unused time of queues with `x-expires` saved before this start.
    recorded_idle: RefCell<HashMap<QueueId, u64>>,
    /// When that state was last saved (ms since the epoch).
    idle_saved_at: std::cell::Cell<u64>,
    /// The last save named some queue (so an empty state is saved once).
    idle_file_written: std::cell::Cell<bool>,
    /// Paging to disk failed and has not worked since (logged once): when
    /// to try again (ms since the epoch; 0 = it works).
    paging_failed: std::cell::Cell<u64>,
}

pub use crate::clock::now_ms;

mod dead_letters;
mod idle;
mod paging;

impl QueueHome {
    /// A home with no queues yet over `store`.
    pub fn new(link: Rc<Link>, conns: Rc<ConnTable>, store: Store) -> Self {
        let recorded_idle = RefCell::new(idle::load(&store.dir));
        QueueHome {
            link,
            conns,
            queues: RefCell::new(Default::default()),
            store: RefCell::new(store),
            sync_needed: Notify::default(),
            awaiting: RefCell::new(VecDeque::new()),
            expiring: RefCell::new(std::collections::HashSet::new()),
            dead: RefCell::new(dead_letters::Pending::default()),
            held: RefCell::new(dead_letters::Held::default()),
            recorded_idle,
            idle_saved_at: std::cell::Cell::new(0),
            idle_file_written: std::cell::Cell::new(true),
            paging_failed: std::cell::Cell::new(0),
            idle_expiring: RefCell::new(std::collections::HashSet::new()),
            idle_deleting: Rc::new(RefCell::new(std::collections::HashSet::new())),
        }
    }

    /// A queue homed here was declared or recovered at `now`: its
    /// `x-expires` period starts, or resumes where it was before a restart
    /// (see `idle`).
    pub fn added(&self, q: &mut Queue, now: u64) {
        q.touch(now.saturating_sub(self.recorded_idle(q.id())));
        if q.has_idle_expiry() {
            self.idle_expiring.borrow_mut().insert(q.id());
        }
        if q.has_expiring() {
            self.expiring.borrow_mut().insert(q.id());
        }
    }

    /// Queue `id` was used (consume, cancel, basic.get, declare).
    pub fn touch(&self, id: QueueId) {
        if let Some(q) = self.queues.borrow_mut().get_mut(&id) {
            q.touch(now_ms());
        }
    }

    /// `x-expires`: ask the authority to delete every queue unused for its
    /// whole period (RabbitMQ deletes it with its messages, not
    /// dead-lettered). `if_unused` makes a consumer that arrived meanwhile
    /// win; the queue is then used again and its period restarts.
    pub fn delete_idle_queues(&self) {
        if self.idle_expiring.borrow().is_empty() {
            return;
        }
        let now = now_ms();
        let mut due = Vec::new();
        {
            let qs = self.queues.borrow();
            self.idle_expiring
                .borrow_mut()
                .retain(|id| match qs.get(id) {
                    None => false,
                    Some(q) => {
                        if q.idle_expired(now) && !self.idle_deleting.borrow().contains(id) {
                            due.push((*id, q.def.vhost.clone(), q.def.name.clone()));
                        }
                        true
                    }
                });
        }
        for (id, vhost, name) in due {
            self.idle_deleting.borrow_mut().insert(id);
            let link = self.link.clone();
            let deleting = self.idle_deleting.clone();
            glommio::spawn_local(async move {
                let op = crate::meta::MetaOp::QueueDelete {
                    vhost,
                    name,
                    if_unused: true,
                    if_empty: false,
                    owner: None,
                    only: Some(id),
                    if_idle: true,
                };
                link.call(link.authority(), crate::bus::Request::Meta(op))
                    .await;
                deleting.borrow_mut().remove(&id);
            })
            .detach();
        }
    }

    /// Drop expired messages at the heads of queues with TTLs (called by
    /// the shard's expiry tick, and before counts are reported). Costs
    /// nothing while no message has a TTL.
    pub fn expire_due(&self) {
        if self.expiring.borrow().is_empty() {
            return;
        }
        let now = now_ms();
        let ids: Vec<QueueId> = self.expiring.borrow().iter().copied().collect();
        for id in ids {
            self.expire_queue(id, now);
        }
    }

    /// Drop the expired messages at the head of queue `id` at `now` (and
    /// forget it as expiring once nothing in it has a TTL).
    pub fn expire_queue(&self, id: QueueId, now: u64) {
        let mut qs = self.queues.borrow_mut();
        let Some(q) = qs.get_mut(&id) else {
            self.expiring.borrow_mut().remove(&id);
            return;
        };
        if !q.has_expiring() {
            self.expiring.borrow_mut().remove(&id);
            return;
        }
        let mut st = self.store.borrow_mut();
        if q.expire(now, |p| st.load(p)) > 0 {
            self.effects(&mut st, q);
        }
        if !q.has_expiring() {
            self.expiring.borrow_mut().remove(&id);
        }
        drop((st, qs));
        self.flow_check(id);
    }

    /// A policy change gave queue `id` the effective arguments `args`:
    /// apply them, drop (and dead-letter) what is now beyond its length
    /// limits, register its timers, and deliver.
    pub fn reconfigure(&self, id: QueueId, args: &amq_protocol::types::FieldTable) {
        {
            let mut qs = self.queues.borrow_mut();
            let Some(q) = qs.get_mut(&id) else {
                return;
            };
            q.configure(args);
            let mut st = self.store.borrow_mut();
            if q.enforce_limits(|p| st.load(p)) > 0 {
                self.effects(&mut st, q);
            }
            if q.has_idle_expiry() {
                self.idle_expiring.borrow_mut().insert(id);
            }
            self.track_expiring(q);
        }
        self.drain_queue(id);
    }

    /// Note that queue `id` may hold messages with a TTL.
    fn track_expiring(&self, q: &Queue) {
        if q.has_expiring() {
            self.expiring.borrow_mut().insert(q.id());
        }
    }

    /// Confirms are waiting for the next sync (it should not wait for the
    /// flush interval).
    pub fn sync_is_urgent(&self) -> bool {
        !self.awaiting.borrow().is_empty()
    }

    /// A sync of `generation` finished: confirm what it made durable (or
    /// nack it all if the write or the fsync failed). Only that
    /// generation's confirms: at shutdown the final sync can finish while
    /// the previous generation's fsync is still running, and those
    /// confirms wait for their own fsync.
    pub fn synced(&self, generation: u64, ok: bool) {
        let done: Vec<ConfirmRef> = {
            let mut a = self.awaiting.borrow_mut();
            if a.front().is_some_and(|(g, _)| *g == generation) {
                // The usual case: syncs finish in order, so this
                // generation's confirms are the front of the queue.
                let n = a.iter().take_while(|(g, _)| *g == generation).count();
                a.drain(..n).map(|(_, c)| c).collect()
            } else {
                let (done, keep): (VecDeque<_>, VecDeque<_>) =
                    a.drain(..).partition(|(g, _)| *g == generation);
                *a = keep;
                done.into_iter().map(|(_, c)| c).collect()
            }
        };
        for c in done {
            if ok {
                self.confirm(c);
            } else {
                self.nack(c);
            }
        }
    }

    /// A message arrived for queues homed here: store it once if any of
    /// them is durable and it is persistent, enqueue it, and confirm it
    /// (after the next group commit when it was stored). A store that
    /// cannot take it (disk full) raises the disk alarm and nacks it.
    pub fn publish(&self, queues: QueueList, msg: MsgRef, confirm: Option<ConfirmRef>) {
        let mut stored = None;
        let mut failed = false;
        // Queues at a `reject-publish` length limit refuse it first (and
        // the confirm becomes a nack, as RabbitMQ's). The same pass notes
        // whether a TTL can apply: the clock is read only then (a vDSO call
        // per publish is measurable at a million messages a second).
        let mut rejected = false;
        let mut ttl = msg.expiration_ms.is_some();
        let admitted: QueueList = {
            let mut qs = self.queues.borrow_mut();
            let mut st = self.store.borrow_mut();
            queues
                .iter()
                .copied()
                .filter(|qid| match qs.get_mut(qid) {
                    Some(q) if !q.admits(msg.body.len()) => {
                        rejected = true;
                        q.refused(msg.clone());
                        self.effects(&mut st, q);
                        false
                    }
                    Some(q) => {
                        ttl |= q.has_ttl();
                        true
                    }
                    None => true,
                })
                .collect()
        };
        let now = if ttl { now_ms() } else { 0 };
        {
            let mut st = self.store.borrow_mut();
            if msg.persistent && admitted.iter().any(|q| st.is_durable(*q)) {
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
                let pressure = self.conns.memory_pressure();
                // Written to the page area at most once for this shard,
                // whatever the number of queues that page it.
                let mut paged: Option<Position> = None;
                for qid in &admitted {
                    if let Some(q) = qs.get_mut(qid) {
                        let mut pos = stored.filter(|_| st.is_durable(*qid));
                        if pos.is_none() && q.wants_page(pressure) {
                            if paged.is_none() {
                                paged = self.page(&mut st, &msg);
                            }
                            pos = paged;
                        }
                        // Journalled after the queue decided the expiry,
                        // before any effect (a drop) names the position.
                        let expires = q.publish(msg.clone(), pos, now);
                        if let Some(p) = pos {
                            st.enqueue(*qid, p, expires);
                        }
                        if q.enforce_limits(|p| st.load(p)) > 0 {
                            self.effects(&mut st, q);
                        }
                        self.track_expiring(q);
                    }
                }
            }
            if st.take_rolled() {
                // Disk space is taken a segment at a time: every shard
                // checks the free-space limit now, not only at its next
                // periodic check (publishers may be on any shard).
                for s in 0..self.link.shard_count() {
                    self.link.outbox.push(ShardId(s), ShardMsg::CheckDisk);
                }
            }
            if let (Some(c), Some(_), false) = (confirm, stored, rejected) {
                let generation = st.await_sync();
                self.awaiting.borrow_mut().push_back((generation, c));
                self.sync_needed.notify();
            }
        }
        if failed {
            self.conns.set_blocked(true);
        }
        if let Some(c) = confirm {
            if failed || rejected {
                self.nack(c);
            } else if stored.is_none() {
                self.confirm(c);
            }
        }
        if !failed {
            for qid in &admitted {
                self.drain_queue(*qid);
                self.drop_due(*qid, now);
            }
        }
    }

    /// After a publish was dispatched: messages already due (a TTL of 0
    /// that no consumer could take at once) are dropped now, as RabbitMQ
    /// does, rather than at the next tick.
    fn drop_due(&self, qid: QueueId, now: u64) {
        // now == 0: no TTL applied to this publish (see `publish`).
        if now != 0 {
            self.expire_queue(qid, now.saturating_add(1));
        }
    }

    /// Settle deliveries of `queue` (ack, requeue or discard).
    pub fn settle(&self, queue: QueueId, seqs: &[u64], how: Settle) {
        if let Some(q) = self.queues.borrow_mut().get_mut(&queue) {
            q.settle(seqs, how);
            self.effects(&mut self.store.borrow_mut(), q);
            self.track_expiring(q);
        }
        self.drain_queue(queue);
    }

    /// Delivery credit back from a consumer's shard.
    pub fn credit(&self, queue: QueueId, consumer: ConsumerId, n: u32, bytes: u64) {
        if let Some(q) = self.queues.borrow_mut().get_mut(&queue) {
            q.credit(consumer, n, bytes);
        }
        self.drain_queue(queue);
    }

    /// A delivery came back undelivered (channel-wide prefetch reached).
    pub fn returned(&self, queue: QueueId, consumer: ConsumerId, seq: u64) {
        if let Some(q) = self.queues.borrow_mut().get_mut(&queue) {
            q.returned(consumer, seq);
            self.track_expiring(q);
        }
        self.drain_queue(queue);
    }

    /// The consumer's channel is under its channel-wide prefetch again.
    pub fn resume(&self, queue: QueueId, consumer: ConsumerId) {
        if let Some(q) = self.queues.borrow_mut().get_mut(&queue) {
            q.resume(consumer);
        }
        self.drain_queue(queue);
    }

    /// Dispatch every delivery the queue's consumers have credit for.
    pub fn drain_queue(&self, qid: QueueId) {
        let me = self.link.id;
        // Expiry is checked only where something can expire (see publish).
        let now = match self.queues.borrow().get(&qid) {
            Some(q) if q.has_expiring() => now_ms(),
            _ => 0,
        };
        // The flow state is re-evaluated with the queue already in hand
        // when the loop ends (no second lookup per publish).
        let mut flow = None;
        loop {
            let d = match self.queues.borrow_mut().get_mut(&qid) {
                Some(q) => {
                    let mut st = self.store.borrow_mut();
                    let d = q.next_delivery(now, |p| st.load(p));
                    self.effects(&mut st, q);
                    if d.is_none() {
                        flow = q.flow_update();
                    }
                    d
                }
                None => None,
            };
            let Some(d) = d else { break };
            if d.shard == me {
                let Delivery {
                    consumer,
                    seq,
                    redelivered,
                    ref msg,
                    ..
                } = d;
                match self
                    .conns
                    .deliver(consumer, qid, me, seq, redelivered, msg.clone())
                {
                    Handoff::Taken => {}
                    Handoff::Gone => {
                        if let Some(q) = self.queues.borrow_mut().get_mut(&qid) {
                            q.undeliverable(d);
                            self.track_expiring(q);
                        }
                    }
                    // The consumer is paused now, so the loop moves on.
                    Handoff::OverLimit => {
                        if let Some(q) = self.queues.borrow_mut().get_mut(&qid) {
                            q.returned(consumer, seq);
                            self.track_expiring(q);
                        }
                    }
                }
            } else {
                // Batched: the outbox wakes the flusher once per batch.
                self.link.outbox.push(
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
        if let Some(on) = flow {
            self.broadcast_flow(qid, on);
        }
    }

    /// Tell every shard when queue `qid` enters or leaves flow control
    /// (`queue::pressure`): a few comparisons unless it changes.
    fn flow_check(&self, qid: QueueId) {
        let change = self
            .queues
            .borrow_mut()
            .get_mut(&qid)
            .and_then(|q| q.flow_update());
        if let Some(on) = change {
            self.broadcast_flow(qid, on);
        }
    }

    fn broadcast_flow(&self, queue: QueueId, on: bool) {
        for s in 0..self.link.shard_count() {
            self.link
                .outbox
                .push(ShardId(s), ShardMsg::QueueFlow { queue, on });
        }
    }

    /// A delivery from queue `queue` on shard `home` for a consumer on this
    /// shard: hand it over, or send it back if the consumer is gone or its
    /// channel is at its channel-wide prefetch.
    pub fn deliver_from(
        &self,
        home: ShardId,
        consumer: ConsumerId,
        queue: QueueId,
        seq: u64,
        redelivered: bool,
        msg: MsgRef,
    ) {
        let outbox = &self.link.outbox;
        let msg_bytes = msg.body.len() as u64;
        match self
            .conns
            .deliver(consumer, queue, home, seq, redelivered, msg)
        {
            Handoff::Taken => {}
            Handoff::OverLimit => outbox.push(
                home,
                ShardMsg::Returned {
                    queue,
                    consumer,
                    seq,
                },
            ),
            Handoff::Gone => {
                // The consumer is gone: hand the message back unseen (its
                // redelivered flag and delivery count unchanged, as the
                // queue does for a consumer on its own shard).
                outbox.push(
                    home,
                    ShardMsg::Returned {
                        queue,
                        consumer,
                        seq,
                    },
                );
                let bytes = msg_bytes;
                outbox.push(
                    home,
                    ShardMsg::Credit {
                        queue,
                        consumer,
                        n: 1,
                        bytes,
                    },
                );
            }
        }
    }

    /// basic.get on queue `queue`: None if it is gone, else the head
    /// message if any.
    pub fn get(&self, queue: QueueId, no_ack: bool) -> Option<Option<crate::queue::Got>> {
        let mut qs = self.queues.borrow_mut();
        let q = qs.get_mut(&queue)?;
        let mut st = self.store.borrow_mut();
        let now = now_ms();
        q.touch(now);
        let got = q.get(no_ack, now, |p| st.load(p));
        self.effects(&mut st, q);
        drop((st, qs));
        self.flow_check(queue);
        Some(got)
    }

    /// queue.purge on queue `queue`: None if it is gone, else how many
    /// ready messages it dropped.
    pub fn purge(&self, queue: QueueId) -> Option<u32> {
        let mut qs = self.queues.borrow_mut();
        let q = qs.get_mut(&queue)?;
        let n = q.purge();
        self.effects(&mut self.store.borrow_mut(), q);
        drop(qs);
        self.flow_check(queue);
        Some(n)
    }

    /// A queue on this shard took a message that wants a confirm.
    pub fn confirm(&self, c: ConfirmRef) {
        let shard = c.conn.shard();
        // A dead letter's confirm goes through the outbox even to this
        // shard: it touches the store, which the caller may be using.
        if shard == self.link.id && !c.is_dead_letter() {
            self.conns.confirm(c, false);
        } else {
            self.link.outbox.push(shard, ShardMsg::Confirmed(c));
        }
    }

    /// The broker could not take responsibility for a message.
    pub fn nack(&self, c: ConfirmRef) {
        let shard = c.conn.shard();
        if shard == self.link.id && !c.is_dead_letter() {
            self.conns.confirm(c, true);
        } else {
            self.link.outbox.push(shard, ShardMsg::Nacked(c));
        }
    }

    /// Remove a queue (deleted, or its vhost was); its stored messages are
    /// released and its consumers told with a server-sent basic.cancel.
    /// Returns the messages it held.
    pub fn remove(&self, id: QueueId) -> u32 {
        let removed = self.queues.borrow_mut().remove(&id);
        let Some(mut q) = removed else { return 0 };
        if q.in_flow() {
            self.broadcast_flow(id, false);
        }
        let value = q.message_count();
        let positions = q.all_positions();
        {
            let mut st = self.store.borrow_mut();
            st.drop_queue(id, positions);
            self.release_held(&mut st, id);
        }
        for c in q.take_consumers() {
            self.link
                .outbox
                .push(c.id.shard(), ShardMsg::ConsumerCancelled { consumer: c.id });
        }
        value
    }
}

/// Perform the journal effects `q` decided (the queue is sans-IO; the
/// home does its store calls), in the order decided.
fn apply_store_ops(store: &mut Store, q: &mut Queue) {
    let id = q.id();
    for op in q.take_store_ops() {
        match op {
            StoreOp::Ack(p) => store.ack(id, p),
            StoreOp::Delivered(p, n) => store.delivered(id, p, n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::ids::ConnId;

    fn confirm_to_shard_1(seq: u64) -> ConfirmRef {
        ConfirmRef {
            conn: ConnId::new(ShardId(1), 1),
            channel: 1,
            seq,
        }
    }

    #[test]
    fn a_finished_sync_confirms_only_its_own_generation_even_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_path_buf(), 4096, false).unwrap();
        let link = Rc::new(Link::new(ShardId(0), 2, Rc::new(Config::default())));
        let conns = Rc::new(ConnTable::new(ShardId(0)));
        let home = QueueHome::new(link.clone(), conns, store);
        home.awaiting
            .borrow_mut()
            .extend([(1, confirm_to_shard_1(1)), (2, confirm_to_shard_1(2))]);
        // The shutdown sync (generation 2) ends before generation 1's fsync.
        home.synced(2, true);
        let sent = link.outbox.take(ShardId(1));
        assert!(matches!(&sent[..], [ShardMsg::Confirmed(c)] if c.seq == 2));
        assert!(home.sync_is_urgent(), "generation 1 still waits");
        home.synced(1, false);
        let sent = link.outbox.take(ShardId(1));
        assert!(matches!(&sent[..], [ShardMsg::Nacked(c)] if c.seq == 1));
        assert!(!home.sync_is_urgent());
    }

    /// What a restart would recover of queue `id` from the store in `dir`
    /// once everything buffered is written (a crash loses nothing else).
    fn recovered_after_a_crash(home: &QueueHome, dir: &std::path::Path, id: QueueId) -> usize {
        {
            let mut st = home.store.borrow_mut();
            let batch = st.prepare_sync();
            assert!(batch.wrote);
            st.finish_sync();
        }
        let mut again = Store::open(dir.to_path_buf(), 4096, false).unwrap();
        again.open_queue(id, "/", "q").len()
    }

    #[test]
    fn a_dead_letters_stored_copy_stays_live_until_its_target_confirms() {
        use crate::defs::{MetaChange, QueueDef};
        use amq_protocol::types::{AMQPValue, FieldTable};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_path_buf(), 4096, false).unwrap();
        let link = Rc::new(Link::new(ShardId(0), 2, Rc::new(Config::default())));
        let home = QueueHome::new(link.clone(), Rc::new(ConnTable::new(ShardId(0))), store);
        let mut args = FieldTable::default();
        args.insert("x-message-ttl".into(), AMQPValue::LongInt(1));
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("".into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString("dlq".into()),
        );
        let def = |id: u64, name: &str, home: usize, args: FieldTable| QueueDef {
            id: QueueId(id),
            vhost: "/".into(),
            name: name.into(),
            home: ShardId(home),
            durable: true,
            exclusive_owner: None,
            auto_delete: false,
            args,
        };
        let (q, dlq) = (
            def(1, "q", 0, args),
            def(2, "dlq", 1, FieldTable::default()),
        );
        {
            let mut t = link.table_mut();
            t.apply(&MetaChange::VhostAdded { name: "/".into() });
            t.apply(&MetaChange::QueueDeclared(q.clone()));
            t.apply(&MetaChange::QueueDeclared(dlq));
        }
        home.store.borrow_mut().open_queue(q.id, "/", "q");
        let mut queue = Queue::new(q.clone());
        home.added(&mut queue, now_ms());
        home.queues.borrow_mut().insert(q.id, queue);
        let props = amq_protocol::protocol::BasicProperties::default().with_delivery_mode(2);
        let msg = crate::message::Message {
            exchange: "".into(),
            routing_key: "q".into(),
            props: crate::codec::encode_properties(&props),
            body: bytes::Bytes::from_static(b"job"),
            persistent: true,
            expiration_ms: None,
            priority: 0,
        };
        let msg = std::sync::Arc::new(msg);
        home.publish(smallvec::smallvec![q.id], msg.clone(), None);
        home.expire_queue(q.id, now_ms() + 1_000);
        home.send_dead_letters();
        let mut sent = link.outbox.take(ShardId(1));
        sent.retain(|m| !matches!(m, ShardMsg::CheckDisk));
        let c = match &sent[..] {
            [ShardMsg::Publish {
                confirm: Some(c), ..
            }] if c.is_dead_letter() => *c,
            other => panic!("expected one confirmed dead-letter publish, got {other:?}"),
        };
        assert_eq!(
            recovered_after_a_crash(&home, dir.path(), q.id),
            1,
            "before its target confirms, a crash brings the dead letter back to its queue"
        );
        home.dead_letter_settled(c.seq, true);
        assert_eq!(recovered_after_a_crash(&home, dir.path(), q.id), 0);

        // A refused one is parked: still live (compactions keep it) and
        // back in its queue after a restart; deleting the queue frees it.
        home.publish(smallvec::smallvec![q.id], msg.clone(), None);
        home.expire_queue(q.id, now_ms() + 1_000);
        home.send_dead_letters();
        let c = match &link.outbox.take(ShardId(1))[..] {
            [ShardMsg::Publish {
                confirm: Some(c), ..
            }] => *c,
            other => panic!("expected one confirmed dead-letter publish, got {other:?}"),
        };
        home.dead_letter_settled(c.seq, false);
        assert_eq!(home.held_dead_letters(q.id).len(), 1, "parked");
        assert_eq!(recovered_after_a_crash(&home, dir.path(), q.id), 1);
        home.remove(q.id);
        assert!(home.held_dead_letters(q.id).is_empty());
    }
}

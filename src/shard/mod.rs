//! A shard: one pinned core, one glommio executor, and everything it owns.
//!
//! The top of the dependency graph and the only place that owns and wires
//! everything: the bus link ([`Link`]: id, routing table, outbox, request
//! slots), the connection table ([`ConnTable`]), the queue home
//! ([`QueueHome`]: queues and store) and, on shard 0, the metadata
//! authority's request queue ([`AuthorityState`]). Lower layers get narrow
//! parts (`channel::Cx`, `&Link`, `meta::Cluster`), never the shard. All
//! state is in `RefCell`s touched only by this thread; borrows are never
//! held across an `.await`. Must never: lock, block the thread, or await
//! inside [`Shard::handle`] (see the deadlock argument in `mailbox`).

mod home;
mod listen;
mod run;
mod snapshot;

pub use home::QueueHome;
pub use run::{start_shard, InProcessNode, ShardBoot};

use crate::bus::{Link, Request, Response, ShardMsg};
use crate::channel::{ConnTable, Cx};
use crate::config::Config;
use crate::defs::MetaChange;
use crate::error::AmqpResult;
use crate::ids::{QueueId, ShardId};
use crate::mailbox::Notify;
use crate::meta::persist::DefinitionsLog;
use crate::meta::MetaOp;
use crate::queue::Queue;
use crate::routing::RoutingTable;
use crate::store::Store;
use std::cell::{Cell, Ref, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;

/// A metadata operation waiting for the authority (`Request::Meta`).
pub struct MetaRequest {
    /// The shard that asked.
    pub from: ShardId,
    /// The asker's request id (the response carries it back).
    pub id: u64,
    /// The operation.
    pub op: MetaOp,
}

/// The metadata authority's state (meaningful on shard 0 only): operations
/// run one at a time in arrival order, the durable definitions log, and
/// the queue id counter.
#[derive(Default)]
pub struct AuthorityState {
    queue: RefCell<VecDeque<MetaRequest>>,
    /// Wakes the authority task when an operation arrives.
    pub ready: Notify,
    /// The durable definitions log.
    pub defs_log: RefCell<Option<DefinitionsLog>>,
    next_queue: Cell<u64>,
}

/// One shard (see the module documentation).
pub struct Shard {
    /// Its bus link: id, routing table replica, outbox, request slots.
    pub link: Rc<Link>,
    /// Its connections, channels and consumers.
    pub conns: Rc<ConnTable>,
    /// The queues homed here and their store.
    pub home: QueueHome,
    /// The metadata authority's state (used on shard 0 only).
    pub authority: AuthorityState,
}

impl Shard {
    /// Shard `id` of `shards` over its opened `store`.
    pub fn new(id: ShardId, shards: usize, config: Rc<Config>, store: Store) -> Rc<Self> {
        let link = Rc::new(Link::new(id, shards, config));
        let conns = Rc::new(ConnTable::new(id));
        Rc::new(Shard {
            home: QueueHome::new(link.clone(), conns.clone(), store),
            link,
            conns,
            authority: AuthorityState {
                next_queue: Cell::new(1),
                ..Default::default()
            },
        })
    }

    /// What connections on this shard (and the management API) work with.
    pub fn cx(&self) -> Cx {
        Cx {
            link: self.link.clone(),
            conns: self.conns.clone(),
        }
    }

    /// This shard's id.
    pub fn id(&self) -> ShardId {
        self.link.id
    }

    /// The node's configuration.
    pub fn config(&self) -> &Config {
        &self.link.config
    }

    /// Continue queue ids after the highest recovered one (authority).
    pub fn set_next_queue_id(&self, n: u64) {
        self.authority.next_queue.set(n);
    }

    /// The next metadata operation for the authority task, if any.
    pub fn take_meta(&self) -> Option<MetaRequest> {
        self.authority.queue.borrow_mut().pop_front()
    }

    /// End of a batch: make the redelivered flags of this batch's
    /// deliveries crash-safe, then emit coalesced confirms and wake writers.
    pub fn flush_dirty(&self) {
        // Before any delivery made in this batch reaches a socket (writers
        // run after this task yields): its redelivered flag is in the page
        // cache, so it survives a process crash.
        self.home.store.borrow_mut().write_deliveries();
        self.home.send_dead_letters();
        self.conns.flush_dirty();
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
            ShardMsg::Response { id, resp } => self.link.rpc.answer(id, resp),
            ShardMsg::Publish {
                queues,
                msg,
                confirm,
            } => self.home.publish(queues, msg, confirm),
            ShardMsg::Confirmed(c) if c.is_dead_letter() => {
                self.home.dead_letter_settled(c.seq, true)
            }
            ShardMsg::Nacked(c) if c.is_dead_letter() => {
                self.home.dead_letter_settled(c.seq, false)
            }
            ShardMsg::Confirmed(c) => self.conns.confirm(c, false),
            ShardMsg::Nacked(c) => self.conns.confirm(c, true),
            ShardMsg::Deliver {
                consumer,
                queue,
                seq,
                redelivered,
                msg,
            } => self
                .home
                .deliver_from(from, consumer, queue, seq, redelivered, msg),
            ShardMsg::Settle { queue, seqs, how } => self.home.settle(queue, &seqs, how),
            ShardMsg::Credit {
                queue,
                consumer,
                n,
                bytes,
            } => self.home.credit(queue, consumer, n, bytes),
            ShardMsg::Returned {
                queue,
                consumer,
                seq,
            } => self.home.returned(queue, consumer, seq),
            ShardMsg::Resume { queue, consumer } => self.home.resume(queue, consumer),
            ShardMsg::ConsumerCancelled { consumer } => self.conns.consumer_cancelled(consumer),
            ShardMsg::QueueFlow { queue, on } => self.conns.set_queue_flow(queue, on),
            ShardMsg::CheckDisk => self.conns.check_disk(&self.link.config.data_dir),
            ShardMsg::AdoptUnix(c) => listen::serve_unix(self.cx(), c.0.bind_to_executor()),
            ShardMsg::DirectReply { to, msg } => self.conns.direct_reply(&to, &msg),
        }
    }

    fn handle_request(self: &Rc<Self>, origin: ShardId, id: u64, req: Request) {
        let resp = match req {
            Request::Meta(op) => {
                self.authority.queue.borrow_mut().push_back(MetaRequest {
                    from: origin,
                    id,
                    op,
                });
                self.authority.ready.notify();
                return;
            }
            Request::Apply(change) => Response::Applied(self.apply(change)),
            Request::QueueStats(q) => {
                // Counts exclude expired messages (RabbitMQ drops them
                // from the head before answering); a declare is a use.
                self.home.expire_queue(q, home::now_ms());
                self.home.touch(q);
                match self.home.queues.borrow().get(&q) {
                    Some(q) => Response::Stats {
                        messages: q.message_count(),
                        consumers: q.consumer_count(),
                    },
                    None => Response::Gone,
                }
            }
            Request::QueueIdle(q) => match self.home.queues.borrow().get(&q) {
                Some(q) => Response::Idle(q.idle_expired(home::now_ms())),
                None => Response::Gone,
            },
            Request::Consume(qid, spec) => {
                self.home.touch(qid);
                let r = match self.home.queues.borrow_mut().get_mut(&qid) {
                    Some(q) => Response::Consumed(q.consume(spec)),
                    None => Response::Gone,
                };
                self.home.drain_queue(qid);
                r
            }
            Request::Cancel(qid, consumer) => {
                // The x-expires period runs from the last consumer's cancel.
                self.home.touch(qid);
                let auto_delete = match self.home.queues.borrow_mut().get_mut(&qid) {
                    Some(q) => {
                        q.cancel(consumer);
                        q.should_auto_delete()
                            .then(|| (q.def.vhost.clone(), q.def.name.clone(), qid))
                    }
                    None => None,
                };
                if let Some((vhost, name, qid)) = auto_delete {
                    self.request_auto_delete(vhost, name, qid);
                }
                self.home.drain_queue(qid);
                Response::Cancelled
            }
            Request::Get { queue, no_ack } => match self.home.get(queue, no_ack) {
                Some(got) => Response::Got(got),
                None => Response::Gone,
            },
            Request::Snapshot => {
                self.home.expire_due();
                Response::Snapshot(Box::new(snapshot::snapshot(self)))
            }
            Request::CloseConnection(name, reason) => {
                let conn = self
                    .conns
                    .conns
                    .borrow()
                    .values()
                    .find(|c| self.conns.name_of(c) == name)
                    .cloned();
                if let Some(c) = conn {
                    c.force_close(&reason);
                }
                Response::Done
            }
            Request::Purge(queue) => match self.home.purge(queue) {
                Some(n) => Response::Purged(n),
                None => Response::Gone,
            },
            Request::ConnectionCounts { vhost, user } => {
                let mut n = crate::bus::ConnectionCounts::default();
                for c in self.conns.conns.borrow().values() {
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
        self.link.respond(origin, id, resp);
    }

    fn request_auto_delete(&self, vhost: String, name: String, queue: QueueId) {
        let link = self.link.clone();
        glommio::spawn_local(async move {
            let op = MetaOp::QueueDelete {
                vhost,
                name,
                if_unused: true,
                if_empty: false,
                owner: None,
                only: Some(queue),
                if_idle: false,
            };
            link.call(link.authority(), Request::Meta(op)).await;
        })
        .detach();
    }

    /// Apply a change outside the mailboxes (start-up recovery).
    pub fn apply_change(&self, change: MetaChange) {
        self.apply(change);
    }

    /// Apply a metadata change to this shard's table and home queues.
    /// Returns the messages a deleted queue held here (0 otherwise).
    fn apply(&self, change: MetaChange) -> u32 {
        let mut value = 0;
        match &change {
            MetaChange::QueueDeclared(def)
                if def.home == self.link.id && !self.home.queues.borrow().contains_key(&def.id) =>
            {
                let mut q = Queue::new(def.clone());
                q.configure(&self.effective_args(def));
                self.add_queue(q);
            }
            MetaChange::ExchangeDeclared(x) => match x.delay_store {
                Some(ds)
                    if ds.home == self.link.id
                        && !self.home.queues.borrow().contains_key(&ds.id) =>
                {
                    self.add_queue(Queue::delay_store(crate::defs::QueueDef {
                        id: ds.id,
                        vhost: x.vhost.clone(),
                        name: x.name.clone(),
                        home: ds.home,
                        durable: x.durable,
                        exclusive_owner: None,
                        auto_delete: false,
                        args: Default::default(),
                    }));
                }
                _ => {}
            },
            MetaChange::ExchangeDeleted { vhost, name } => {
                // A delayed-message exchange's waiting messages go with it
                // (as the plugin's do).
                let store = self
                    .link
                    .table()
                    .exchange(vhost, name)
                    .and_then(|x| x.def.delay_store);
                if let Some(ds) = store.filter(|ds| ds.home == self.link.id) {
                    self.home.remove(ds.id);
                }
            }
            MetaChange::VhostDeleted { name } => {
                let ids: Vec<QueueId> = self
                    .home
                    .queues
                    .borrow()
                    .values()
                    .filter(|q| &q.def.vhost == name)
                    .map(|q| q.id())
                    .collect();
                for id in ids {
                    self.home.remove(id);
                }
            }
            MetaChange::QueueDeleted { id, .. } => value = self.home.remove(*id),
            _ => {}
        }
        self.link.table_mut().apply(&change);
        // A policy change applies to the queues homed here at once (the
        // table has it now).
        if let MetaChange::PolicySet(crate::defs::policy::PolicyDef { vhost, .. })
        | MetaChange::PolicyCleared { vhost, .. } = &change
        {
            let defs: Vec<_> = self
                .home
                .queues
                .borrow()
                .values()
                .filter(|q| &q.def.vhost == vhost && !q.is_delay_store())
                .map(|q| q.def.clone())
                .collect();
            for def in defs {
                self.home.reconfigure(def.id, &self.effective_args(&def));
            }
        }
        value
    }

    /// Home a new queue (or delay store) here, recovering its stored
    /// messages if it is durable.
    fn add_queue(&self, mut q: Queue) {
        let def = &q.def;
        if def.durable && def.exclusive_owner.is_none() {
            let items = self
                .home
                .store
                .borrow_mut()
                .open_queue(def.id, &def.vhost, &def.name);
            if !items.is_empty() {
                tracing::info!(queue = %def.name, messages = items.len(), "recovered");
            }
            let store = self.home.store.borrow();
            q.recover(items, home::now_ms(), |p| store.load(p));
        }
        self.home.added(&mut q, home::now_ms());
        self.home.queues.borrow_mut().insert(q.id(), q);
    }

    /// A queue's arguments combined with the policy and operator policy
    /// that apply to it (`defs::policy`), from this shard's table.
    fn effective_args(&self, def: &crate::defs::QueueDef) -> amq_protocol::types::FieldTable {
        let t = self.link.table();
        match t.policies.for_object(&def.vhost, &def.name, true) {
            (None, None) => def.args.clone(),
            (p, o) => {
                crate::defs::policy::effective_args(&def.args, &crate::defs::policy::merge(p, o))
            }
        }
    }
}

/// The authority's view of the node (see [`crate::meta::Cluster`]).
impl crate::meta::Cluster for Shard {
    fn table(&self) -> Ref<'_, RoutingTable> {
        self.link.table()
    }

    fn shard_count(&self) -> usize {
        self.link.shard_count()
    }

    fn next_queue_id(&self) -> u64 {
        let n = self.authority.next_queue.get();
        self.authority.next_queue.set(n + 1);
        n
    }

    fn broadcast(&self, change: MetaChange) -> impl Future<Output = AmqpResult<Vec<u32>>> {
        // Evaluated before applying: a deletion is logged only if what it
        // deletes was durable. The log append (with its fsync) happens
        // before any shard applies the change, so a declare-ok / delete-ok
        // is only ever sent for a durable change.
        let deleted_with_vhost = match &change {
            MetaChange::VhostDeleted { name } => self
                .link
                .table()
                .queues
                .values()
                .filter(|q| &q.vhost == name)
                .count() as u64,
            _ => 0,
        };
        let logged = if crate::meta::persist::is_durable(&self.link.table(), &change) {
            match self.authority.defs_log.borrow_mut().as_mut() {
                Some(log) => log.append(&change).map_err(|e| {
                    tracing::error!("cannot persist definition change: {e}");
                    crate::error::AmqpError::internal_error(format!(
                        "cannot persist definition change: {e}"
                    ))
                }),
                None => Ok(()),
            }
        } else {
            Ok(())
        };
        if logged.is_ok() {
            // RabbitMQ's queue churn counters (`rabbitmq_queues_*_total`).
            let mut k = self.conns.counters.borrow_mut();
            match &change {
                MetaChange::QueueDeclared(_) => k.queues_created += 1,
                MetaChange::QueueDeleted { .. } => k.queues_deleted += 1,
                _ => k.queues_deleted += deleted_with_vhost,
            }
        }
        let slots: Vec<_> = match logged {
            Ok(()) => (0..self.link.shard_count())
                .map(|s| {
                    self.link
                        .send_request(ShardId(s), Request::Apply(change.clone()))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        async move {
            logged?;
            let mut out = Vec::with_capacity(slots.len());
            for s in slots {
                out.push(match s.wait().await {
                    Response::Applied(v) => v,
                    _ => 0,
                });
            }
            Ok(out)
        }
    }

    fn queue_idle(&self, home: ShardId, id: QueueId) -> impl Future<Output = bool> {
        let call = self.link.call(home, Request::QueueIdle(id));
        async move { matches!(call.await, Response::Idle(true)) }
    }

    fn queue_stats(&self, home: ShardId, id: QueueId) -> impl Future<Output = Option<(u32, u32)>> {
        let call = self.link.call(home, Request::QueueStats(id));
        async move {
            match call.await {
                Response::Stats {
                    messages,
                    consumers,
                } => Some((messages, consumers)),
                _ => None,
            }
        }
    }
}

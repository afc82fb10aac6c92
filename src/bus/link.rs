//! [`Link`]: this shard's end of the bus.
//!
//! Owns: the shard's id and count, its configuration, its copy of the
//! routing table, its outbox and its request slots. Everything below the
//! shard that must route, ask another shard, or read a definition gets a
//! `&Link` (or an `Rc<Link>` when it spawns), never the whole shard. Must
//! never: await inside a send, or hold a table borrow across an `.await`.

use super::{Request, Response, ShardMsg};
use crate::config::Config;
use crate::ids::ShardId;
use crate::mailbox::{Outbox, Rpc};
use crate::routing::RoutingTable;
use std::cell::{Ref, RefCell, RefMut};
use std::future::Future;
use std::rc::Rc;

/// One shard's end of the bus (see the module documentation).
pub struct Link {
    /// This shard.
    pub id: ShardId,
    shards: usize,
    /// The node's configuration (shared read-only by every shard).
    pub config: Rc<Config>,
    table: RefCell<RoutingTable>,
    /// Messages waiting to be flushed to each shard (this one included).
    pub outbox: Outbox<ShardMsg>,
    /// Requests this shard sent and waits for.
    pub rpc: Rpc<Response>,
}

impl Link {
    /// Shard `id` of `shards`, with an empty routing table.
    pub fn new(id: ShardId, shards: usize, config: Rc<Config>) -> Self {
        Link {
            id,
            shards,
            config,
            table: RefCell::new(RoutingTable::new()),
            outbox: Outbox::new(shards),
            rpc: Rpc::default(),
        }
    }

    /// How many shards the node runs.
    pub fn shard_count(&self) -> usize {
        self.shards
    }

    /// The shard that serialises metadata changes (the authority).
    pub fn authority(&self) -> ShardId {
        ShardId(0)
    }

    /// This shard's routing table (never hold across an `.await`).
    pub fn table(&self) -> Ref<'_, RoutingTable> {
        self.table.borrow()
    }

    /// The routing table, to apply a change.
    pub fn table_mut(&self) -> RefMut<'_, RoutingTable> {
        self.table.borrow_mut()
    }

    /// Send `req` to shard `to` (possibly this one) now and return the
    /// slot its response fills. Prefer [`Link::call`], which frees the
    /// slot if the wait is dropped.
    pub fn send_request(&self, to: ShardId, req: Request) -> Rc<crate::mailbox::Slot<Response>> {
        self.send_request_id(to, req).1
    }

    fn send_request_id(
        &self,
        to: ShardId,
        req: Request,
    ) -> (u64, Rc<crate::mailbox::Slot<Response>>) {
        let (id, slot) = self.rpc.start();
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

    /// Send a request to `to` (possibly this shard) now, and return the
    /// wait for its response. Dropping the wait unanswered (a timeout, a
    /// closed connection) forgets the request's slot, so asking a stalled
    /// shard again and again does not grow the pending set.
    pub fn call(&self, to: ShardId, req: Request) -> impl Future<Output = Response> + '_ {
        let (id, slot) = self.send_request_id(to, req);
        let forget = ForgetSlot { link: self, id };
        async move {
            let r = slot.wait().await;
            drop(forget);
            r
        }
    }

    /// Answer request `id` of shard `to`.
    pub fn respond(&self, to: ShardId, id: u64, resp: Response) {
        self.outbox.push(to, ShardMsg::Response { id, resp });
    }
}

/// Forgets an unanswered request's slot when its wait is dropped (a no-op
/// once the response arrived and took the slot).
struct ForgetSlot<'a> {
    link: &'a Link,
    id: u64,
}

impl Drop for ForgetSlot<'_> {
    fn drop(&mut self) {
        self.link.rpc.forget(self.id);
    }
}

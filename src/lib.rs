//! Warren: a thread-per-core AMQP 0-9-1 broker.
//!
//! # Modules and the data path
//!
//! ```text
//!  publish:  socket ─► net ─► codec ─► channel ─► routing ─► mailbox ─► shard::publish ─► store ─► queue
//!            (io_uring (read  (frames,  (publish   (this shard's (SPSC to    (home shard of  (segment  (ready list,
//!             glommio)  into   zero-copy assembly,  table copy)   the queue's  the queue)      record +  positions
//!                       BytesMut) bodies) tx/confirm)             home shard)                  journal)  only beyond
//!                                                                                                       read-ahead)
//!  deliver:  queue ─► shard::drain_queue ─► mailbox (if the consumer is elsewhere) ─► channel ─► conn.out ─► writer task
//!  confirm:  store group commit (fdatasync off the executor) ─► shard::confirm ─► mailbox ─► channel
//!            (basic.ack, or tx.commit-ok once all of a commit's publishes are confirmed)
//!  ack:      channel ─► mailbox ─► queue::settle ─► store journal (written at the next sync)
//!  global prefetch: channel (at the limit) ─► mailbox ─► queue::returned (ready again, consumer
//!            paused) ... acks ─► channel::resume_paused ─► mailbox ─► queue::resume
//! ```
//!
//! * [`net`]: SO_REUSEPORT listener per shard, reader/writer/heartbeat tasks.
//! * [`codec`]: frame envelope; methods and properties via `amq-protocol`.
//! * [`channel`]: connection and channel state machines, method handlers,
//!   connection/channel limits (counted across shards on open only).
//! * [`routing`]: exchange types and the per-shard routing table replica.
//! * [`mailbox`]: batched bounded SPSC channels between shards, outboxes,
//!   and why they cannot deadlock.
//! * [`queue`]: queues homed on a shard: ready/unacked messages, consumers.
//! * [`meta`]: declarations, users, permissions, vhost/user limits; the
//!   authority on shard 0 logs each durable change (fsync) and then
//!   broadcasts it before replying.
//! * [`mgmt`]: the management HTTP API (shard 0), behind one authorisation
//!   gate.
//! * [`store`]: per-shard segment files and the queue journal; group commit.
//! * [`shard`]: one pinned executor owning all of the above for its core;
//!   every shard recovers before any of them listens.
//!
//! Nothing on the data path takes a lock: each shard's state is only
//! touched by its own thread; shards exchange messages, never memory.

pub mod bus;
pub mod channel;
pub mod codec;
pub mod config;
pub mod defs;
pub mod error;
pub mod ids;
pub mod mailbox;
pub mod message;
pub mod meta;
pub mod mgmt;
pub mod net;
pub mod queue;
pub mod routing;
pub mod shard;
pub mod store;

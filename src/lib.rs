//! Warren: a thread-per-core AMQP 0-9-1 broker.
//!
//! # Modules and the data path
//!
//! ```text
//!  socket ──► net ──► codec ──► channel ──► routing ──► mailbox ──► queue ──► (store) ──► deliver
//!  (io_uring   (read    (frames,   (conn/channel  (this shard's  (outbox +    (home      (segments,  (channel writes
//!   via        into     zero-copy  state, publish  table copy)    SPSC to      shard of   later)      to conn.out;
//!   glommio)   BytesMut) bodies)   assembly)                      other shard) the queue)             writer flushes)
//! ```
//!
//! * [`net`]: SO_REUSEPORT listener per shard, reader/writer/heartbeat tasks.
//! * [`codec`]: frame envelope; methods and properties via `amq-protocol`.
//! * [`channel`]: connection and channel state machines, method handlers.
//! * [`routing`]: exchange types and the per-shard routing table replica.
//! * [`mailbox`]: batched bounded SPSC channels between shards, outboxes,
//!   and why they cannot deadlock.
//! * [`queue`]: queues homed on a shard: ready/unacked messages, consumers.
//! * [`meta`]: declarations; the authority on shard 0 serialises them and
//!   broadcasts each change before replying.
//! * [`shard`]: one pinned executor owning all of the above for its core.
//! * [`store`]: durable storage seam (per-shard segment files).
//!
//! Nothing on the data path takes a lock: each shard's state is only
//! touched by its own thread; shards exchange messages, never memory.

pub mod channel;
pub mod codec;
pub mod config;
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

//! Warren: a thread-per-core AMQP 0-9-1 broker.
//!
//! # Layers (dependencies point down only; `tests/linters.rs` fails on a cycle)
//!
//! ```text
//!  shard                       owns and wires everything: Link, ConnTable, QueueHome, authority
//!    mgmt                      HTTP API and metrics (shard 0), one authorisation gate
//!      channel                 connections, channels, handlers per AMQP class, ConnTable, Cx
//!        bus                   ShardMsg/Request/Response (data), Link, stats records
//!          meta                the authority's rules (sans-IO: effects through meta::Cluster)
//!            codec net routing store queue mailbox
//!              ids error message config defs clock memory logging   leaf vocabulary
//! ```
//!
//! # The data path and who owns what
//!
//! ```text
//!  publish:  socket ─► channel::connection (reader task) ─► codec (frames, zero-copy bodies)
//!            ─► channel::handlers::content (assembly, tx, confirm seq) ─► routing (this shard's
//!            table copy; route cache) ─► Link.outbox (one batch per home shard) ─► mailbox
//!            (bounded SPSC) ─► shard::handle ─► QueueHome::publish ─► store (segment record +
//!            journal entry, once per shard) ─► queue (ready list; positions only beyond the
//!            read-ahead)
//!  deliver:  QueueHome::drain_queue ─► ConnTable::deliver (consumer here) or outbox ─► mailbox
//!            ─► QueueHome::deliver_from ─► Conn::deliver (conn.out: codec::out::OutBuf, bodies
//!            of 2 KiB+ spliced as their own Bytes, not copied) ─► channel::io writer task (one
//!            vectored write per batch) ─► credit back to the queue through the outbox
//!  confirm:  store group commit: QueueHome::publish takes a sync generation (Store::await_sync);
//!            the sync task fdatasyncs off the executor, then QueueHome::synced ─► outbox ─►
//!            ConnTable::confirm ─► coalesced basic.ack at ConnTable::flush_dirty (or tx.commit-ok
//!            once all of a commit's publishes are confirmed)
//!  ack:      channel ─► settle_grouped ─► outbox ─► QueueHome::settle ─► queue::settle ─► store
//!            journal (written at the next sync)
//!  lifecycle: the queue decides expiry (TTL, at the head), length limits and dead letters
//!            (sans-IO: StoreOps and DeadLetters); QueueHome applies the store effects at once
//!            and re-publishes dead letters (and delayed-message releases) through the routing
//!            table and the outbox at the end of the batch (any shard); a stored dead letter's
//!            journal entry is acked only once its targets confirm (ConfirmRef::dead_letter);
//!            a 20 ms tick visits only queues with a TTL or x-expires, and delay stores
//!  global prefetch: Conn::deliver returns OverLimit ─► queue::returned (ready again, consumer
//!            paused) ... acks ─► Conn::resume_paused ─► outbox ─► queue::resume
//!  metadata: channel/mgmt ─► Request::Meta to shard 0 ─► meta::authority::execute (one at a
//!            time) ─► Cluster::broadcast: definitions log fsync, then Request::Apply to every
//!            shard's table and queue home, then the *-ok
//! ```
//!
//! * [`ids`], [`error`], [`message`], [`config`], [`defs`], [`clock`],
//!   [`memory`]: leaf vocabulary (ids, `AmqpError` with reply codes, the
//!   shared message, configuration, entity definitions, users, limits and
//!   metadata changes, the shards' wall clocks, memory use and the memory
//!   high watermark). [`logging`]: stderr or a reopenable file, plain
//!   text or JSON lines.
//! * [`codec`]: frame envelope; methods and properties via `amq-protocol`,
//!   fast paths for publish/deliver/ack; the outbound buffer with spliced
//!   bodies (`codec::out`).
//! * [`net`]: the socket shared by a connection's reader and writer, over
//!   TCP, TLS (rustls; [`net::tls`]) or the Unix socket listener.
//! * [`routing`]: exchange types (one file each) and the routing table.
//! * [`store`]: per-shard segment files and the queue journal; group commit
//!   by sync generation.
//! * [`queue`]: one queue: ready/unacked messages, consumers, credit.
//! * [`mailbox`]: generic batched outboxes, request slots, `Notify`, and why
//!   the mailboxes cannot deadlock.
//! * [`meta`]: declaration rules, the authority, the definitions log.
//! * [`bus`]: what shards say to each other and this shard's [`bus::Link`].
//! * [`channel`]: connection and channel state machines, method handlers
//!   per AMQP class, connection/channel limits, the connection table.
//! * [`mgmt`]: the management HTTP API (hyper's HTTP/1 server as tasks
//!   on shard 0), one file per resource behind one authorisation gate,
//!   request bodies parsed into typed structs; Prometheus metrics; the web
//!   UI's files, embedded ([`mgmt::ui`]).
//! * [`shard`]: one pinned executor owning all of the above for its core.
//!   Shards start one at a time, each recovering before it listens, and
//!   the broker announces itself once all are up; shard 0 may already
//!   accept connections while later shards recover, and traffic for those
//!   waits in its mailbox until their ends connect.
//!
//! Nothing on the data path takes a lock: each shard's state is only
//! touched by its own thread; shards exchange messages, never memory.

#![warn(missing_docs)]
pub mod bus;
pub mod channel;
pub mod clock;
pub mod codec;
pub mod config;
pub mod defs;
pub mod disk;
pub mod error;
pub mod ids;
pub mod logging;
pub mod mailbox;
pub mod memory;
pub mod message;
pub mod meta;
pub mod mgmt;
pub mod net;
pub mod queue;
pub mod routing;
pub mod shard;
pub mod store;

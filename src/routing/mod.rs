//! Routing: exchange types and this shard's copy of the bindings.
//!
//! Owns: the per-shard [`table::RoutingTable`] replica. Must never: lock,
//! ask another shard while routing a publish, or copy a message body.

pub mod consistent_hash;
pub mod direct;
pub mod fanout;
pub mod headers;
pub mod policies;
pub mod table;
pub mod topic;

pub use table::RoutingTable;

//! Durable storage (per-shard memory-mapped segment files).
//!
//! Owns: this shard's files under `<data-dir>/shard-<i>/`. Not implemented
//! yet: durable entities and persistent messages are currently kept in
//! memory only (see the README's feature table).

//! Newtype identifiers used across shards.
//!
//! Every id that crosses a mailbox is a plain `Copy` integer so that messages
//! between shards never allocate just to name something.

use std::fmt;

/// Index of a shard (one pinned core, one glommio executor).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ShardId(pub usize);

/// Broker-wide connection id: the owning shard is encoded in the top bits.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ConnId(pub u64);

/// Broker-wide queue id, assigned by the metadata authority.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct QueueId(pub u64);

/// Broker-wide consumer id: the consumer's shard is encoded in the top bits.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ConsumerId(pub u64);

/// Segment file number inside one shard's store.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct SegmentId(pub u64);

impl SegmentId {
    /// Ids with this bit set name segments of the shard's transient page
    /// area (`store::paging`): never journalled, discarded at start-up.
    pub const PAGED: u64 = 1 << 63;

    /// A segment of the transient page area (see [`SegmentId::PAGED`]).
    pub fn is_paged(self) -> bool {
        self.0 & Self::PAGED != 0
    }
}

const SHARD_SHIFT: u32 = 48;

/// Where a direct reply-to address (`amq.rabbitmq.reply-to.<token>`)
/// points: decoded from its token, not yet checked against the channel
/// (that happens on the requester's shard). See `channel::reply_to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyAddress {
    /// The requester's connection (its shard is encoded in it).
    pub conn: ConnId,
    /// The requester's channel number.
    pub channel: u16,
    /// The nonce of the reply consumer the address was made for.
    pub nonce: u128,
}

impl ConnId {
    /// Packs `shard` into the top 16 bits and the low 48 bits of `local` (a
    /// per-shard counter, see `ConnTable`) below it.
    pub fn new(shard: ShardId, local: u64) -> Self {
        ConnId(((shard.0 as u64) << SHARD_SHIFT) | (local & ((1 << SHARD_SHIFT) - 1)))
    }
    /// The shard that owns this connection (its socket and channels).
    pub fn shard(self) -> ShardId {
        ShardId((self.0 >> SHARD_SHIFT) as usize)
    }
    /// True for a client's AMQP connection; false for the placeholder
    /// (local number 0, never given to a connection) that the management
    /// API and definitions imports act as.
    pub fn is_client(self) -> bool {
        self.0 & ((1 << SHARD_SHIFT) - 1) != 0
    }
}

impl ConsumerId {
    /// Packs `shard` into the top 16 bits and the low 48 bits of `local` (a
    /// per-shard counter, see `ConnTable`) below it.
    pub fn new(shard: ShardId, local: u64) -> Self {
        ConsumerId(((shard.0 as u64) << SHARD_SHIFT) | (local & ((1 << SHARD_SHIFT) - 1)))
    }
    /// The shard where the consumer's connection lives, i.e. where its deliveries go.
    pub fn shard(self) -> ShardId {
        ShardId((self.0 >> SHARD_SHIFT) as usize)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard-{}", self.0)
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "msgs.{:010}", self.0)
    }
}

/// FNV-1a (64 bit) over `vhost`, a zero byte, and `name`. Decides a
/// shared queue's default home shard (`defs::queue_home`) and named the
/// previous on-disk format's index files, so its output must never change
/// across builds or versions (pinned by a test below).
pub fn name_hash(vhost: &str, name: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in vhost.bytes().chain([0u8]).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// A map keyed by broker-assigned ids (queue, connection, consumer,
/// delivery sequence) or channel numbers, on the hot path: hashed with
/// aHash instead of the standard SipHash. SipHash's resistance to chosen
/// keys is not needed here (the keys are the broker's own, or channel
/// numbers, at most `channel_max` per connection), and it cost about 9% of
/// the broker's time in s1 (PERF.md, "s1: where its time goes").
pub type IdMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_hash_output_is_pinned_so_durable_queues_keep_their_home() {
        assert_eq!(name_hash("/", "orders"), 0x6c40bc44a494a7f3);
        assert_eq!(name_hash("v", ""), 0x08cedc07b570414b);
    }
}

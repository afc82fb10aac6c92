//! Statistics records a shard hands the management API and metrics.
//!
//! Data only. Each shard keeps plain counters in its own structures (no
//! shared state); the management side asks every shard for a
//! [`ShardSnapshot`] (`Request::Snapshot`) and merges them. The shard takes
//! its snapshot (`shard::snapshot`) by walking its objects once.

use crate::queue::QueueStats;
use serde_json::Value;

#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    pub name: String,
    pub vhost: String,
    pub user: String,
    pub peer_host: String,
    pub peer_port: u16,
    pub port: u16,
    pub channels: u32,
    pub recv_oct: u64,
    pub send_oct: u64,
    pub connected_at: u64,
    pub frame_max: u32,
    pub channel_max: u16,
    pub client_properties: Value,
    pub shard: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ChanInfo {
    pub connection: String,
    pub number: u16,
    pub vhost: String,
    pub user: String,
    pub peer_host: String,
    pub peer_port: u16,
    pub consumers: u32,
    pub unacked: u32,
    pub prefetch: u16,
    pub confirm: bool,
    pub tx: bool,
    pub publish: u64,
    pub deliver: u64,
    pub ack: u64,
    pub confirmed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ConsumerInfo {
    pub vhost: String,
    pub user: String,
    pub queue: String,
    pub tag: String,
    pub connection: String,
    pub channel: u16,
    pub peer_host: String,
    pub peer_port: u16,
    pub ack_required: bool,
    pub exclusive: bool,
    pub prefetch: u16,
}

#[derive(Debug, Clone, Default)]
pub struct QueueInfo {
    pub id: u64,
    pub vhost: String,
    pub name: String,
    pub durable: bool,
    pub auto_delete: bool,
    pub exclusive: bool,
    pub arguments: Value,
    pub ready: u32,
    pub unacked: u32,
    pub consumers: u32,
    pub stats: QueueStats,
    pub shard: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ShardSnapshot {
    pub shard: usize,
    pub connections: Vec<ConnInfo>,
    pub channels: Vec<ChanInfo>,
    pub consumers: Vec<ConsumerInfo>,
    pub queues: Vec<QueueInfo>,
    /// Per-exchange message counters, open and closed channels merged.
    pub exchanges: Vec<ExchangeCounts>,
    pub outbox_depth: Vec<usize>,
    pub runtime_ns: u64,
    pub store_segments: usize,
    pub store_bytes: u64,
    /// Monotonic totals for this shard: messages published, confirmed.
    pub publish_total: u64,
    pub confirm_total: u64,
}

/// A connection's name as RabbitMQ shows it: `peer -> local` addresses.
pub fn conn_name(peer: &std::net::SocketAddr, port: u16) -> String {
    format!("{}:{} -> 127.0.0.1:{}", peer.ip(), peer.port(), port)
}

/// Messages through one exchange (`message_stats.publish_in` /
/// `publish_out` in RabbitMQ's management API), in messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeCounts {
    pub vhost: String,
    pub name: String,
    /// Messages published to the exchange.
    pub publish_in: u64,
    /// Messages the exchange routed to at least one queue.
    pub publish_out: u64,
}

/// Add `publish_in` / `publish_out` to the counters of exchange `name` in
/// `vhost`, creating its entry if needed.
pub fn merge_exchange(
    v: &mut Vec<ExchangeCounts>,
    vhost: &str,
    name: &str,
    publish_in: u64,
    publish_out: u64,
) {
    match v.iter_mut().find(|e| e.vhost == vhost && e.name == name) {
        Some(e) => {
            e.publish_in += publish_in;
            e.publish_out += publish_out;
        }
        None => v.push(ExchangeCounts {
            vhost: vhost.to_string(),
            name: name.to_string(),
            publish_in,
            publish_out,
        }),
    }
}

//! Per-shard statistics snapshots for the management API and metrics.
//!
//! Each shard keeps plain counters in its own structures (no shared state);
//! the management side asks every shard for a [`ShardSnapshot`] through the
//! mailboxes and merges them. Taking a snapshot walks this shard's objects
//! once; it never touches the data path's hot structures beyond reading.

use crate::ids::QueueId;
use crate::queue::QueueStats;
use crate::shard::Shard;
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
    /// (vhost, exchange, messages in, messages routed out).
    pub exchanges: Vec<(String, String, u64, u64)>,
    pub outbox_depth: Vec<usize>,
    pub runtime_ns: u64,
    pub store_segments: usize,
    pub store_bytes: u64,
    /// Monotonic totals for this shard: messages published, confirmed.
    pub publish_total: u64,
    pub confirm_total: u64,
}

pub fn conn_name(peer: &std::net::SocketAddr, port: u16) -> String {
    format!("{}:{} -> 127.0.0.1:{}", peer.ip(), peer.port(), port)
}

/// Take this shard's snapshot (runs on the shard itself).
pub fn snapshot(shard: &Shard) -> ShardSnapshot {
    let mut s = ShardSnapshot {
        shard: shard.id.0,
        ..Default::default()
    };
    let table = shard.table();
    let qname = |id: QueueId| {
        table
            .queue_by_id(id)
            .map(|q| (q.vhost.clone(), q.name.clone()))
            .unwrap_or_default()
    };
    let port = shard.listen_port.get();
    let mut exchanges: Vec<(String, String, u64, u64)> =
        shard.closed_exchange_stats.borrow().clone();
    for conn in shard.conns.borrow().values() {
        if !conn.open.get() {
            continue;
        }
        let st = conn.state.borrow();
        let name = conn_name(&conn.peer, port);
        let peer_host = conn.peer.ip().to_string();
        s.connections.push(ConnInfo {
            name: name.clone(),
            vhost: st.vhost.clone(),
            user: st.user.clone(),
            peer_host: peer_host.clone(),
            peer_port: conn.peer.port(),
            port,
            channels: st.channels.len() as u32,
            recv_oct: conn.recv_oct.get(),
            send_oct: conn.send_oct.get(),
            connected_at: conn
                .connected_at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            frame_max: conn.frame_max.get(),
            channel_max: st.channel_max,
            client_properties: super::json::table_to_json(&conn.client_properties.borrow()),
            shard: shard.id.0,
        });
        for ch in st.channels.values() {
            if ch.closing {
                continue;
            }
            s.channels.push(ChanInfo {
                connection: name.clone(),
                number: ch.id,
                vhost: st.vhost.clone(),
                user: st.user.clone(),
                peer_host: peer_host.clone(),
                peer_port: conn.peer.port(),
                consumers: ch.consumers.len() as u32,
                unacked: ch.unacked.len() as u32,
                prefetch: ch.prefetch,
                confirm: ch.confirm,
                tx: ch.tx.is_some(),
                publish: ch.stats.publish,
                deliver: ch.stats.deliver,
                ack: ch.stats.ack,
                confirmed: ch.stats.confirm,
            });
            for (x, i, o) in &ch.stats.exchanges {
                merge_exchange(&mut exchanges, &st.vhost, x.as_str(), *i, *o);
            }
            for (tag, c) in &ch.consumers {
                let (vhost, queue) = qname(c.queue);
                s.consumers.push(ConsumerInfo {
                    vhost,
                    user: st.user.clone(),
                    queue,
                    tag: tag.clone(),
                    connection: name.clone(),
                    channel: ch.id,
                    peer_host: peer_host.clone(),
                    peer_port: conn.peer.port(),
                    ack_required: !c.no_ack,
                    exclusive: c.exclusive,
                    prefetch: ch.prefetch,
                });
            }
        }
    }
    s.exchanges = exchanges;
    let (p, c) = shard.closed_channel_totals.get();
    s.publish_total = p + s.channels.iter().map(|c| c.publish).sum::<u64>();
    s.confirm_total = c + s.channels.iter().map(|c| c.confirmed).sum::<u64>();
    for q in shard.queues.borrow().values() {
        s.queues.push(QueueInfo {
            id: q.def.id.0,
            vhost: q.def.vhost.clone(),
            name: q.def.name.clone(),
            durable: q.def.durable,
            auto_delete: q.def.auto_delete,
            exclusive: q.def.exclusive_owner.is_some(),
            arguments: super::json::table_to_json(&q.def.args),
            ready: q.message_count(),
            unacked: q.unacked_count(),
            consumers: q.consumer_count(),
            stats: q.stats,
            shard: shard.id.0,
        });
    }
    s.outbox_depth = (0..shard.shard_count())
        .map(|d| shard.outbox.len(crate::ids::ShardId(d)))
        .collect();
    s.runtime_ns = glommio::executor()
        .executor_stats()
        .total_runtime()
        .as_nanos() as u64;
    let st = shard.store.borrow();
    s.store_segments = st.segment_count();
    s.store_bytes = st.bytes();
    s
}

pub fn merge_exchange(
    v: &mut Vec<(String, String, u64, u64)>,
    vhost: &str,
    x: &str,
    i: u64,
    o: u64,
) {
    match v.iter_mut().find(|e| e.0 == vhost && e.1 == x) {
        Some(e) => {
            e.2 += i;
            e.3 += o;
        }
        None => v.push((vhost.to_string(), x.to_string(), i, o)),
    }
}

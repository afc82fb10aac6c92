//! Statistics records a shard hands the management API and metrics.
//!
//! Data only. Each shard keeps plain counters in its own structures (no
//! shared state); the management side asks every shard for a
//! [`ShardSnapshot`] (`Request::Snapshot`) and merges them. The shard takes
//! its snapshot (`shard::snapshot`) by walking its objects once.

use crate::queue::QueueStats;
use serde_json::Value;

/// One open connection (connection.open-ok sent), as listed by
/// `/api/connections`.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    /// RabbitMQ-style name, `"<peer ip>:<port> -> 127.0.0.1:<listen port>"`
    /// ([`conn_name`]); what management close requests name.
    pub name: String,
    /// The vhost opened.
    pub vhost: String,
    /// The authenticated user.
    pub user: String,
    /// Client IP address, as the socket reports it.
    pub peer_host: String,
    /// Client TCP port.
    pub peer_port: u16,
    /// The broker's AMQP listen port.
    pub port: u16,
    /// Open channels, closing ones included.
    pub channels: u32,
    /// Bytes read from the socket since it was accepted.
    pub recv_oct: u64,
    /// Bytes written to the socket since it was accepted.
    pub send_oct: u64,
    /// When the connection was accepted, in ms since the Unix epoch.
    pub connected_at: u64,
    /// Negotiated frame-max, in bytes.
    pub frame_max: u32,
    /// Negotiated channel-max.
    pub channel_max: u16,
    /// The client's connection.start-ok `client_properties`, as JSON.
    pub client_properties: Value,
    /// Shard that owns the connection.
    pub shard: usize,
    /// `running`, `flow` or `blocked` (`channel::Conn::api_state`).
    pub state: &'static str,
    /// SASL mechanism of the login (`PLAIN`, `AMQPLAIN`, `EXTERNAL`).
    pub auth_mechanism: &'static str,
    /// The TLS session, None on a plain connection.
    pub tls: Option<crate::net::tls::TlsInfo>,
}

/// One open channel (not closing), as listed by `/api/channels`.
#[derive(Debug, Clone, Default)]
pub struct ChanInfo {
    /// Name of its connection ([`ConnInfo::name`]).
    pub connection: String,
    /// Channel number.
    pub number: u16,
    /// Its connection's vhost.
    pub vhost: String,
    /// Its connection's user.
    pub user: String,
    /// Client IP address.
    pub peer_host: String,
    /// Client TCP port.
    pub peer_port: u16,
    /// Consumers on the channel.
    pub consumers: u32,
    /// Deliveries awaiting ack on the channel (basic.deliver and basic.get-ok).
    pub unacked: u32,
    /// Per-consumer prefetch count (basic.qos global=false); 0 = no limit.
    pub prefetch: u16,
    /// Channel-wide prefetch count (basic.qos global=true); 0 = no limit.
    pub global_prefetch: u16,
    /// Publisher confirms enabled (confirm.select).
    pub confirm: bool,
    /// Transactional (tx.select).
    pub tx: bool,
    /// Messages published (counted when routed; in a transaction, at tx.commit).
    pub publish: u64,
    /// Messages delivered: basic.deliver plus basic.get-ok (`deliver_get`).
    pub deliver: u64,
    /// Messages acknowledged by the client (basic.ack; counted when received, also
    /// in a transaction later rolled back).
    pub ack: u64,
    /// Publishes confirmed with basic.ack (messages, not ack frames).
    pub confirmed: u64,
    /// Mandatory publishes returned unroutable with basic.return.
    pub returned: u64,
}

/// One consumer, as listed by `/api/consumers`.
#[derive(Debug, Clone, Default)]
pub struct ConsumerInfo {
    /// The queue's vhost.
    pub vhost: String,
    /// The user of the consumer's connection.
    pub user: String,
    /// The queue consumed from (empty if it was deleted meanwhile).
    pub queue: String,
    /// Consumer tag.
    pub tag: String,
    /// Name of its connection ([`ConnInfo::name`]).
    pub connection: String,
    /// Channel number.
    pub channel: u16,
    /// Client IP address.
    pub peer_host: String,
    /// Client TCP port.
    pub peer_port: u16,
    /// False for a `no-ack` consumer (automatic acknowledgement).
    pub ack_required: bool,
    /// Exclusive consumer (basic.consume exclusive=true).
    pub exclusive: bool,
    /// The channel's per-consumer prefetch count (0 = no limit).
    pub prefetch: u16,
    /// Broker-wide consumer id ([`crate::ids::ConsumerId`]).
    pub id: u64,
    /// The queue's id ([`crate::ids::QueueId`]).
    pub queue_id: u64,
}

/// One queue, from its home shard, as listed by `/api/queues`.
#[derive(Debug, Clone, Default)]
pub struct QueueInfo {
    /// Broker-wide queue id ([`crate::ids::QueueId`]).
    pub id: u64,
    /// The queue's vhost.
    pub vhost: String,
    /// Queue name.
    pub name: String,
    /// Declared durable.
    pub durable: bool,
    /// Declared auto-delete (deleted when its last consumer is cancelled).
    pub auto_delete: bool,
    /// Exclusive to the connection that declared it.
    pub exclusive: bool,
    /// The queue.declare arguments (`x-message-ttl`, `x-dead-letter-exchange`, ...),
    /// as JSON.
    pub arguments: Value,
    /// Ready messages.
    pub ready: u32,
    /// Messages delivered and awaiting ack.
    pub unacked: u32,
    /// Consumers.
    pub consumers: u32,
    /// Message counters of the queue (publish, deliver, get, ack, redeliver,
    /// expired, dead-lettered).
    pub stats: QueueStats,
    /// The queue's home shard.
    pub shard: usize,
    /// The policy that applies to the queue, if any.
    pub policy: Option<String>,
    /// The operator policy that applies to the queue, if any.
    pub operator_policy: Option<String>,
    /// The two merged (`defs::policy::merge`), as a JSON object.
    pub effective_policy_definition: Value,
    /// With `x-single-active-consumer`: the active consumer's id
    /// ([`crate::ids::ConsumerId`]) and tag.
    pub single_active_consumer: Option<(u64, String)>,
}

/// Everything one shard reports for the management API and `/metrics`
/// (`Request::Snapshot`); shard 0 merges them.
#[derive(Debug, Clone, Default)]
pub struct ShardSnapshot {
    /// The reporting shard.
    pub shard: usize,
    /// Open connections owned by this shard.
    pub connections: Vec<ConnInfo>,
    /// Open channels of those connections.
    pub channels: Vec<ChanInfo>,
    /// Consumers on those channels.
    pub consumers: Vec<ConsumerInfo>,
    /// Queues whose home is this shard.
    pub queues: Vec<QueueInfo>,
    /// Per-exchange message counters, open and closed channels merged.
    pub exchanges: Vec<ExchangeCounts>,
    /// Messages waiting in this shard's outbox, per destination shard (index =
    /// destination, this shard included).
    pub outbox_depth: Vec<usize>,
    /// Time glommio's executor has spent running tasks since start, in ns.
    pub runtime_ns: u64,
    /// Segment files in this shard's store.
    pub store_segments: usize,
    /// Bytes allocated to those segment files (their capacity, not live data).
    pub store_bytes: u64,
    /// Messages published on this shard's channels, closed ones included
    /// (monotonic).
    pub publish_total: u64,
    /// Publishes confirmed on this shard's channels, closed ones included
    /// (monotonic).
    pub confirm_total: u64,
    /// Messages waiting in the stores of the delayed-message exchanges
    /// homed here: (vhost, exchange, messages).
    pub delayed: Vec<(String, String, u32)>,
    /// This shard's node-wide counters.
    pub counters: GlobalCounters,
}

/// Monotonic counters of one shard, summed over shards into RabbitMQ's
/// node-wide Prometheus families (`rabbitmq_prometheus`'s core collector
/// and `rabbit_global_counters`): what their names say, in messages,
/// connections, channels or queues. Kept in `ConnTable::counters`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GlobalCounters {
    /// Connections that reached connection.open-ok.
    pub connections_opened: u64,
    /// Of those, closed since.
    pub connections_closed: u64,
    /// channel.open-ok sent.
    pub channels_opened: u64,
    /// Channels closed (by either side, or with their connection).
    pub channels_closed: u64,
    /// Publishes received on a channel in confirm mode.
    pub received_confirm: u64,
    /// Publishes routed to at least one queue.
    pub routed: u64,
    /// Unroutable publishes without `mandatory` (dropped).
    pub unroutable_dropped: u64,
    /// Unroutable publishes with `mandatory` (returned).
    pub unroutable_returned: u64,
    /// basic.deliver to consumers that acknowledge.
    pub delivered_consume_manual_ack: u64,
    /// basic.deliver to no-ack consumers.
    pub delivered_consume_auto_ack: u64,
    /// basic.get-ok with acknowledgement.
    pub delivered_get_manual_ack: u64,
    /// basic.get-ok without.
    pub delivered_get_auto_ack: u64,
    /// basic.get-empty answers.
    pub get_empty: u64,
    /// Deliveries (and get-oks) with `redelivered` set.
    pub redelivered: u64,
    /// Messages acknowledged by clients.
    pub acknowledged: u64,
    /// Successful queue.declare (passive and redeclares included).
    pub queues_declared: u64,
    /// Queues created (counted by the metadata authority's shard).
    pub queues_created: u64,
    /// Queues deleted (counted by the metadata authority's shard).
    pub queues_deleted: u64,
}

impl GlobalCounters {
    /// Field-wise sum.
    pub fn add(&mut self, o: &GlobalCounters) {
        self.connections_opened += o.connections_opened;
        self.connections_closed += o.connections_closed;
        self.channels_opened += o.channels_opened;
        self.channels_closed += o.channels_closed;
        self.received_confirm += o.received_confirm;
        self.routed += o.routed;
        self.unroutable_dropped += o.unroutable_dropped;
        self.unroutable_returned += o.unroutable_returned;
        self.delivered_consume_manual_ack += o.delivered_consume_manual_ack;
        self.delivered_consume_auto_ack += o.delivered_consume_auto_ack;
        self.delivered_get_manual_ack += o.delivered_get_manual_ack;
        self.delivered_get_auto_ack += o.delivered_get_auto_ack;
        self.get_empty += o.get_empty;
        self.redelivered += o.redelivered;
        self.acknowledged += o.acknowledged;
        self.queues_declared += o.queues_declared;
        self.queues_created += o.queues_created;
        self.queues_deleted += o.queues_deleted;
    }
}

/// A connection's name as RabbitMQ shows it: `peer -> local` addresses.
/// The local address is always written as 127.0.0.1, whatever the
/// listener's address; only the port is real.
pub fn conn_name(peer: &std::net::SocketAddr, port: u16) -> String {
    format!("{}:{} -> 127.0.0.1:{}", peer.ip(), peer.port(), port)
}

/// Messages through one exchange (`message_stats.publish_in` /
/// `publish_out` in RabbitMQ's management API), in messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeCounts {
    /// The exchange's vhost.
    pub vhost: String,
    /// Exchange name (empty = the default exchange).
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

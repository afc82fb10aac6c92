//! `/metrics/per-object`: RabbitMQ's per-object Prometheus families
//! (`rabbitmq_prometheus`'s per-object endpoint), one series per queue,
//! channel and connection, under RabbitMQ's names, labels and HELP texts
//! (recorded from RabbitMQ 3.10.8's `/metrics/per-object`), after the
//! node-wide families `/metrics` has. What dashboards and alert rules
//! built on per-queue series (`rabbitmq_queue_messages_ready{queue=...}`)
//! read.
//!
//! Labels: queues `vhost`, `queue`; channels `channel` (Warren's channel
//! name, `"<connection> (<number>)"`, where RabbitMQ writes an Erlang pid);
//! connections also `channel` (RabbitMQ's own label name for them) with
//! the connection's name. Differences: channel counters are per channel
//! only, not split by exchange or queue as RabbitMQ's are;
//! `rabbitmq_channel_messages_delivered_total` counts deliveries in both
//! acknowledgement modes (RabbitMQ splits off `_delivered_ack_total`, and
//! its HELP text says automatic acknowledgement only); families whose
//! value Warren has no meaning for (Erlang reductions, process memory, RAM
//! vs. paged counts) are left out rather than reported as zero.

use super::metrics::Out;
use super::stats::{ChanInfo, ConnInfo, QueueInfo, ShardSnapshot};

/// Node-wide families that the per-object endpoint has per object instead
/// (RabbitMQ lists them once, with labels, there).
pub(super) const PER_OBJECT: [&str; 3] = [
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "rabbitmq_channel_consumers",
];

type QueueField = fn(&QueueInfo) -> u64;
type ChannelField = fn(&ChanInfo) -> u64;
type ConnectionField = fn(&ConnInfo) -> u64;

/// Append the per-object families for the shard snapshots `snaps`.
pub(super) fn render(o: &mut Out, snaps: &[ShardSnapshot]) {
    let queues: [(&str, &str, &str, QueueField); 5] = [
        (
            "rabbitmq_queue_messages_ready",
            "gauge",
            "Messages ready to be delivered to consumers",
            |q| q.ready.into(),
        ),
        (
            "rabbitmq_queue_messages_unacked",
            "gauge",
            "Messages delivered to consumers but not yet acknowledged",
            |q| q.unacked.into(),
        ),
        (
            "rabbitmq_queue_messages",
            "gauge",
            "Sum of ready and unacknowledged messages - total queue depth",
            |q| u64::from(q.ready) + u64::from(q.unacked),
        ),
        (
            "rabbitmq_queue_consumers",
            "gauge",
            "Consumers on a queue",
            |q| q.consumers.into(),
        ),
        (
            "rabbitmq_queue_messages_published_total",
            "counter",
            "Total number of messages published to queues",
            |q| q.stats.publish,
        ),
    ];
    for (name, kind, help, f) in queues {
        o.family(name, kind, help);
        for q in snaps.iter().flat_map(|s| &s.queues) {
            o.sample(name, &[("vhost", &q.vhost), ("queue", &q.name)], f(q));
        }
    }
    let channels: [(&str, &str, &str, ChannelField); 8] = [
        (
            "rabbitmq_channel_consumers",
            "gauge",
            "Consumers on a channel",
            |c| c.consumers.into(),
        ),
        (
            "rabbitmq_channel_messages_unacked",
            "gauge",
            "Delivered but not yet acknowledged messages",
            |c| c.unacked.into(),
        ),
        (
            "rabbitmq_channel_prefetch",
            "gauge",
            "Total limit of unacknowledged messages for all consumers on a channel",
            |c| c.global_prefetch.into(),
        ),
        (
            "rabbitmq_channel_messages_published_total",
            "counter",
            "Total number of messages published into an exchange on a channel",
            |c| c.publish,
        ),
        (
            "rabbitmq_channel_messages_confirmed_total",
            "counter",
            "Total number of messages published into an exchange and confirmed on the channel",
            |c| c.confirmed,
        ),
        (
            "rabbitmq_channel_messages_unroutable_returned_total",
            "counter",
            "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
            |c| c.returned,
        ),
        (
            "rabbitmq_channel_messages_delivered_total",
            "counter",
            "Total number of messages delivered to consumers (both acknowledgement modes)",
            |c| c.deliver,
        ),
        (
            "rabbitmq_channel_messages_acked_total",
            "counter",
            "Total number of messages acknowledged by consumers",
            |c| c.ack,
        ),
    ];
    // Each channel's label once, not once per family.
    let labelled: Vec<(String, &ChanInfo)> = snaps
        .iter()
        .flat_map(|s| &s.channels)
        .map(|c| (format!("{} ({})", c.connection, c.number), c))
        .collect();
    for (name, kind, help, f) in channels {
        o.family(name, kind, help);
        for (label, c) in &labelled {
            o.sample(name, &[("channel", label)], f(c));
        }
    }
    let connections: [(&str, &str, &str, ConnectionField); 3] = [
        (
            "rabbitmq_connection_incoming_bytes_total",
            "counter",
            "Total number of bytes received on a connection",
            |c| c.recv_oct,
        ),
        (
            "rabbitmq_connection_outgoing_bytes_total",
            "counter",
            "Total number of bytes sent on a connection",
            |c| c.send_oct,
        ),
        (
            "rabbitmq_connection_channels",
            "gauge",
            "Channels on a connection",
            |c| c.channels.into(),
        ),
    ];
    for (name, kind, help, f) in connections {
        o.family(name, kind, help);
        for c in snaps.iter().flat_map(|s| &s.connections) {
            o.sample(name, &[("channel", &c.name)], f(c));
        }
    }
}

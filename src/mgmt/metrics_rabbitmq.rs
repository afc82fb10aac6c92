//! `/metrics` under RabbitMQ's names: the node-wide families of
//! `rabbitmq_prometheus`'s aggregated endpoint that Grafana's
//! RabbitMQ-Overview dashboard queries (its core collector, with no labels,
//! and `rabbit_global_counters`, labelled `protocol="amqp091"`), with
//! RabbitMQ's HELP texts, so an existing dashboard shows Warren's numbers.
//! `rabbitmq_identity_info` (`rabbitmq_node`, `rabbitmq_cluster`) is what
//! the dashboard joins every series on.
//!
//! Differences: the delivery and acknowledgement counters are not split
//! by `queue_type` (RabbitMQ has one series per queue type; dashboards sum
//! them); there is no Erlang, so `erlang_version` is empty;
//! `rabbitmq_version` is the RabbitMQ version whose management API Warren
//! implements (as `/api/overview` says), `product_version` Warren's own.
//! Counters count since start.

use super::metrics::Out;
use super::stats::{GlobalCounters, ShardSnapshot};
use super::Mgmt;

/// Append RabbitMQ's families for the node (shard snapshots `snaps`);
/// `per_object` leaves out those the per-object families replace.
pub(super) fn render(o: &mut Out, m: &Mgmt, snaps: &[ShardSnapshot], per_object: bool) {
    let node = super::api::node_name();
    let version = env!("CARGO_PKG_VERSION");
    o.family(
        "rabbitmq_identity_info",
        "untyped",
        "RabbitMQ node & cluster identity info",
    );
    o.sample(
        "rabbitmq_identity_info",
        &[
            ("rabbitmq_node", &node),
            ("rabbitmq_cluster", "warren"),
            ("rabbitmq_cluster_permanent_id", "warren"),
        ],
        1,
    );
    o.family(
        "rabbitmq_build_info",
        "untyped",
        "RabbitMQ & Erlang/OTP version info",
    );
    o.sample(
        "rabbitmq_build_info",
        &[
            // The version the management API advertises (/api/overview).
            ("rabbitmq_version", "3.13.0"),
            ("prometheus_plugin_version", version),
            ("prometheus_client_version", ""),
            ("erlang_version", ""),
            ("product_name", "Warren"),
            ("product_version", version),
        ],
        1,
    );
    let mut k = GlobalCounters::default();
    for s in snaps {
        k.add(&s.counters);
    }
    let sum = |f: fn(&ShardSnapshot) -> u64| -> u64 { snaps.iter().map(f).sum() };
    let queues = sum(|s| s.queues.len() as u64);
    let ready = sum(|s| s.queues.iter().map(|q| u64::from(q.ready)).sum());
    let unacked = sum(|s| s.queues.iter().map(|q| u64::from(q.unacked)).sum());
    let (fd_used, sockets_used) = super::overview::fds();
    let fd_total = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(0, |(soft, _)| soft);
    let disk_free = nix::sys::statvfs::statvfs(&m.cx.link.config.data_dir)
        .map_or(0, |s| s.blocks_available() * s.fragment_size());
    let conns = &m.cx.conns;
    let core: [(&str, &str, &str, u64); 27] = [
        (
            "rabbitmq_connections",
            "gauge",
            "Connections currently open",
            sum(|s| s.connections.len() as u64),
        ),
        (
            "rabbitmq_channels",
            "gauge",
            "Channels currently open",
            sum(|s| s.channels.len() as u64),
        ),
        (
            "rabbitmq_consumers",
            "gauge",
            "Consumers currently connected",
            sum(|s| s.consumers.len() as u64),
        ),
        ("rabbitmq_queues", "gauge", "Queues available", queues),
        (
            "rabbitmq_queue_messages_ready",
            "gauge",
            "Messages ready to be delivered to consumers",
            ready,
        ),
        (
            "rabbitmq_queue_messages_unacked",
            "gauge",
            "Messages delivered to consumers but not yet acknowledged",
            unacked,
        ),
        (
            "rabbitmq_connections_opened_total",
            "counter",
            "Total number of connections opened",
            k.connections_opened,
        ),
        (
            "rabbitmq_connections_closed_total",
            "counter",
            "Total number of connections closed or terminated",
            k.connections_closed,
        ),
        (
            "rabbitmq_channels_opened_total",
            "counter",
            "Total number of channels opened",
            k.channels_opened,
        ),
        (
            "rabbitmq_channels_closed_total",
            "counter",
            "Total number of channels closed",
            k.channels_closed,
        ),
        (
            "rabbitmq_queues_declared_total",
            "counter",
            "Total number of queues declared",
            k.queues_declared,
        ),
        (
            "rabbitmq_queues_created_total",
            "counter",
            "Total number of queues created",
            k.queues_created,
        ),
        (
            "rabbitmq_queues_deleted_total",
            "counter",
            "Total number of queues deleted",
            k.queues_deleted,
        ),
        (
            "rabbitmq_process_resident_memory_bytes",
            "gauge",
            "Memory used in bytes",
            conns.memory_used.get(),
        ),
        (
            "rabbitmq_resident_memory_limit_bytes",
            "gauge",
            "Memory high watermark in bytes",
            conns.memory_limit.get(),
        ),
        (
            "rabbitmq_alarms_memory_used_watermark",
            "gauge",
            "is 1 if VM memory watermark alarm is in effect",
            u64::from(conns.memory_alarm.get()),
        ),
        (
            "rabbitmq_alarms_free_disk_space_watermark",
            "gauge",
            "is 1 if free disk space watermark alarm is in effect",
            u64::from(conns.disk_alarmed()),
        ),
        (
            "rabbitmq_disk_space_available_bytes",
            "gauge",
            "Disk space available in bytes",
            disk_free,
        ),
        (
            "rabbitmq_disk_space_available_limit_bytes",
            "gauge",
            "Free disk space low watermark in bytes",
            conns.disk_free_limit.get(),
        ),
        (
            "rabbitmq_process_open_fds",
            "gauge",
            "Open file descriptors",
            fd_used as u64,
        ),
        (
            "rabbitmq_process_max_fds",
            "gauge",
            "Open file descriptors limit",
            fd_total,
        ),
        (
            "rabbitmq_process_open_tcp_sockets",
            "gauge",
            "Open TCP sockets",
            sockets_used as u64,
        ),
        (
            "rabbitmq_process_max_tcp_sockets",
            "gauge",
            "Open TCP sockets limit",
            fd_total,
        ),
        (
            "rabbitmq_erlang_uptime_seconds",
            "gauge",
            "Node uptime",
            m.started.elapsed().as_secs(),
        ),
        (
            "rabbitmq_channel_consumers",
            "gauge",
            "Consumers on a channel",
            sum(|s| s.consumers.len() as u64),
        ),
        (
            "rabbitmq_global_consumers",
            "gauge",
            "Current number of consumers",
            sum(|s| s.consumers.len() as u64),
        ),
        (
            "rabbitmq_global_publishers",
            "gauge",
            "Current number of publishers",
            sum(|s| s.channels.iter().filter(|c| c.publish > 0).count() as u64),
        ),
    ];
    for (name, kind, help, v) in core {
        // The per-object endpoint has these per object instead.
        if per_object && super::metrics_per_object::PER_OBJECT.contains(&name) {
            continue;
        }
        o.family(name, kind, help);
        let labels: &[(&str, &str)] = if name.starts_with("rabbitmq_global_") {
            &[("protocol", "amqp091")]
        } else {
            &[]
        };
        o.sample(name, labels, v);
    }
    let global: [(&str, &str, u64); 14] = [
        ("received", "Total number of messages received from publishers", sum(|s| s.publish_total)),
        ("received_confirm", "Total number of messages received from publishers expecting confirmations", k.received_confirm),
        ("routed", "Total number of messages routed to queues or streams", k.routed),
        ("unroutable_dropped", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", k.unroutable_dropped),
        ("unroutable_returned", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", k.unroutable_returned),
        ("confirmed", "Total number of messages confirmed to publishers", sum(|s| s.confirm_total)),
        ("delivered", "Total number of messages delivered to consumers", k.delivered_consume_manual_ack + k.delivered_consume_auto_ack + k.delivered_get_manual_ack + k.delivered_get_auto_ack),
        ("delivered_consume_manual_ack", "Total number of messages delivered to consumers using basic.consume with manual acknowledgment", k.delivered_consume_manual_ack),
        ("delivered_consume_auto_ack", "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment", k.delivered_consume_auto_ack),
        ("delivered_get_manual_ack", "Total number of messages delivered to consumers using basic.get with manual acknowledgment", k.delivered_get_manual_ack),
        ("delivered_get_auto_ack", "Total number of messages delivered to consumers using basic.get with automatic acknowledgment", k.delivered_get_auto_ack),
        ("get_empty", "Total number of times basic.get operations fetched no message", k.get_empty),
        ("redelivered", "Total number of messages redelivered to consumers", k.redelivered),
        ("acknowledged", "Total number of messages acknowledged by consumers", k.acknowledged),
    ];
    for (what, help, v) in global {
        let name = format!("rabbitmq_global_messages_{what}_total");
        o.family(&name, "counter", help);
        o.sample(&name, &[("protocol", "amqp091")], v);
    }
}

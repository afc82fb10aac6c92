//! `/metrics`: Prometheus text exposition (format 0.0.4), built from the
//! same per-shard snapshots as the HTTP API.

use super::http::Response;
use super::{gather, Mgmt};
use std::fmt::Write;

/// This process's resident set size, bytes (from `/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The text being written (Prometheus text format 0.0.4).
pub(super) struct Out(String);

impl Out {
    /// `# HELP` and `# TYPE` lines of a family.
    pub(super) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }
    /// One sample line.
    pub(super) fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        v: impl std::fmt::Display,
    ) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }
}

/// The `/metrics` page, text format 0.0.4; with `per_object`
/// (`/metrics/per-object`) RabbitMQ's per-queue, per-channel and
/// per-connection families follow (`metrics_per_object`).
pub async fn render(m: &Mgmt, per_object: bool) -> Response {
    let snaps = gather(&m.cx).await;
    let mut o = Out(String::new());
    type QueueField = fn(&super::stats::QueueInfo) -> u64;
    let queue_gauges: [(&str, &str, QueueField); 3] = [
        (
            "warren_queue_messages_ready",
            "Messages ready to be delivered",
            |q| q.ready as u64,
        ),
        (
            "warren_queue_messages_unacked",
            "Messages delivered and not yet acknowledged",
            |q| q.unacked as u64,
        ),
        ("warren_queue_consumers", "Consumers on the queue", |q| {
            q.consumers as u64
        }),
    ];
    for (name, help, f) in queue_gauges {
        o.family(name, "gauge", help);
        for s in &snaps {
            for q in &s.queues {
                o.sample(name, &[("vhost", &q.vhost), ("queue", &q.name)], f(q));
            }
        }
    }
    let queue_counters: [(&str, &str, QueueField); 5] = [
        (
            "warren_queue_messages_published_total",
            "Messages enqueued",
            |q| q.stats.publish,
        ),
        (
            "warren_queue_messages_delivered_total",
            "Messages delivered to consumers or fetched with basic.get",
            |q| q.stats.deliver + q.stats.get,
        ),
        (
            "warren_queue_messages_acked_total",
            "Messages acknowledged",
            |q| q.stats.ack,
        ),
        (
            "warren_queue_messages_expired_total",
            "Messages dropped because their TTL passed",
            |q| q.stats.expired,
        ),
        (
            "warren_queue_messages_dead_lettered_total",
            "Messages handed to the queue's dead-letter exchange (rejected, expired or over the length limit)",
            |q| q.stats.dead_lettered,
        ),
    ];
    for (name, help, f) in queue_counters {
        o.family(name, "counter", help);
        for s in &snaps {
            for q in &s.queues {
                o.sample(name, &[("vhost", &q.vhost), ("queue", &q.name)], f(q));
            }
        }
    }
    // RabbitMQ's names (rabbitmq_prometheus, 3.12+): node-wide counts of
    // messages that died, by reason, queue type and whether they were
    // dead-lettered (`at_most_once`) or dropped (`disabled`).
    for reason in crate::queue::DeathReason::ALL {
        let name = format!(
            "rabbitmq_global_messages_dead_lettered_{}_total",
            reason.as_str()
        );
        o.family(
            &name,
            "counter",
            &format!("Messages that died with reason {} (dead-lettered, or dropped without a dead-letter exchange)", reason.as_str()),
        );
        for queue_type in ["rabbit_classic_queue", "rabbit_quorum_queue"] {
            for (i, strategy) in ["disabled", "at_most_once"].into_iter().enumerate() {
                let n: u64 = snaps
                    .iter()
                    .flat_map(|s| s.queues.iter())
                    .filter(|q| {
                        let quorum = q.arguments.get("x-queue-type").and_then(|v| v.as_str())
                            == Some("quorum");
                        (queue_type == "rabbit_quorum_queue") == quorum
                    })
                    .map(|q| q.stats.died[i][reason.index()])
                    .sum();
                o.sample(
                    &name,
                    &[
                        ("queue_type", queue_type),
                        ("dead_letter_strategy", strategy),
                    ],
                    n,
                );
            }
        }
    }
    let conns: usize = snaps.iter().map(|s| s.connections.len()).sum();
    let chans: usize = snaps.iter().map(|s| s.channels.len()).sum();
    let cons: usize = snaps.iter().map(|s| s.consumers.len()).sum();
    let publish: u64 = snaps.iter().map(|s| s.publish_total).sum();
    o.family("warren_connections", "gauge", "Open AMQP connections");
    o.sample("warren_connections", &[], conns);
    o.family("warren_channels", "gauge", "Open channels");
    o.sample("warren_channels", &[], chans);
    o.family("warren_consumers", "gauge", "Consumers");
    o.sample("warren_consumers", &[], cons);
    o.family(
        "warren_messages_published_total",
        "counter",
        "Messages published",
    );
    o.sample("warren_messages_published_total", &[], publish);
    o.family(
        "warren_shard_mailbox_depth",
        "gauge",
        "Messages waiting in a shard's outbox for a destination shard",
    );
    for s in &snaps {
        for (d, n) in s.outbox_depth.iter().enumerate() {
            o.sample(
                "warren_shard_mailbox_depth",
                &[("shard", &s.shard.to_string()), ("to", &d.to_string())],
                n,
            );
        }
    }
    o.family(
        "warren_shard_busy_seconds_total",
        "counter",
        "Time the shard's event loop spent running tasks (utilisation = rate)",
    );
    for s in &snaps {
        o.sample(
            "warren_shard_busy_seconds_total",
            &[("shard", &s.shard.to_string())],
            s.runtime_ns as f64 / 1e9,
        );
    }
    o.family(
        "warren_shard_loop_utilisation",
        "gauge",
        "Fraction of the last sampling interval the shard's loop was busy",
    );
    for s in &snaps {
        let r = m.rate(&format!("shard|{}||runtime_ns", s.shard)) / 1e9;
        o.sample(
            "warren_shard_loop_utilisation",
            &[("shard", &s.shard.to_string())],
            format!("{r:.4}"),
        );
    }
    o.family(
        "warren_store_bytes",
        "gauge",
        "Bytes of message segment files",
    );
    for s in &snaps {
        o.sample(
            "warren_store_bytes",
            &[("shard", &s.shard.to_string())],
            s.store_bytes,
        );
    }
    // Each family's samples must follow its own HELP/TYPE lines.
    o.family("warren_store_segments", "gauge", "Message segment files");
    for s in &snaps {
        o.sample(
            "warren_store_segments",
            &[("shard", &s.shard.to_string())],
            s.store_segments,
        );
    }
    o.family(
        "warren_process_resident_memory_bytes",
        "gauge",
        "Resident memory of the broker process",
    );
    o.sample("warren_process_resident_memory_bytes", &[], rss_bytes());
    o.family(
        "warren_disk_alarm",
        "gauge",
        "1 while persistent publishes are refused for lack of disk",
    );
    o.sample("warren_disk_alarm", &[], m.cx.conns.disk_alarmed() as u8);
    let conns = &m.cx.conns;
    for (name, help, v) in [
        (
            "warren_memory_used_bytes",
            "Anonymous resident memory of the broker process (what the memory high watermark compares)",
            conns.memory_used.get(),
        ),
        (
            "warren_memory_limit_bytes",
            "Memory high watermark in bytes (0: none)",
            conns.memory_limit.get(),
        ),
        (
            "warren_memory_alarm",
            "1 while publishers are blocked by the memory high watermark",
            u64::from(conns.memory_alarm.get()),
        ),
    ] {
        o.family(name, "gauge", help);
        o.sample(name, &[], v);
    }
    super::metrics_rabbitmq::render(&mut o, m, &snaps, per_object);
    if per_object {
        super::metrics_per_object::render(&mut o, &snaps);
    }
    Response::text(200, "text/plain; version=0.0.4; charset=utf-8", o.0)
}

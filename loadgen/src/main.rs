//! warren-loadgen: measure any AMQP 0-9-1 broker, PerfTest/lavinmqperf style.
//!
//! Scenarios: `throughput` (default), `latency` (fixed rate, open loop),
//! `connections` (idle connections: open time and broker RSS), `churn`
//! (queue declare/bind/delete and connection open/close rates), `rpc`
//! (direct reply-to round trips), `dead-letter` (nacked messages into a
//! dead-letter queue) and `backlog` (a backlog built with no consumer, the
//! broker's memory meanwhile, then drained); `floor` needs no broker: the
//! latency scenario's timing over loopback alone, straight and through a
//! relay thread, to read broker latencies against.
//! See PERF.md at the repository root for how the numbers are used.

mod backlog;
mod client;
mod extensions;
mod floor;
mod other;
mod report;
mod run;
mod sock;
mod sys;
mod track;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Throughput,
    Latency,
    Connections,
    Churn,
    Rpc,
    DeadLetter,
    Backlog,
    Floor,
}

impl Scenario {
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Throughput => "throughput",
            Scenario::Latency => "latency",
            Scenario::Connections => "connections",
            Scenario::Churn => "churn",
            Scenario::Rpc => "rpc",
            Scenario::DeadLetter => "dead-letter",
            Scenario::Backlog => "backlog",
            Scenario::Floor => "floor",
        }
    }
}

#[derive(Parser, Clone, Debug)]
#[command(
    name = "warren-loadgen",
    version,
    about = "A cheap AMQP 0-9-1 load generator"
)]
pub struct Opts {
    /// What to measure.
    #[arg(value_enum, default_value = "throughput")]
    pub scenario: Scenario,
    /// Broker URI.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub uri: String,
    /// PEM file of the CA that signed the broker's certificate (for an
    /// `amqps://` URI).
    #[arg(long)]
    pub cacert: Option<std::path::PathBuf>,
    /// Connect through this Unix domain socket instead of TCP (the URI's
    /// user, password and vhost still apply; its host and port do not).
    #[arg(long)]
    pub unix: Option<std::path::PathBuf>,
    /// Publishers (one connection each).
    #[arg(short = 'x', long = "producers", default_value_t = 1)]
    pub producers: usize,
    /// Consumers (one connection each; consumer i reads queue i mod K).
    #[arg(short = 'y', long = "consumers", default_value_t = 1)]
    pub consumers: usize,
    /// Message body size in bytes (at least 16: the body carries a stamp).
    #[arg(short = 's', long = "size", default_value_t = 16)]
    pub size: usize,
    /// Rate per publisher in msg/s; 0 = unlimited. `latency` defaults to 1000.
    #[arg(short = 'r', long = "rate", default_value_t = 0.0)]
    pub rate: f64,
    /// Measured duration in seconds (after the warm-up).
    #[arg(short = 'z', long = "time", default_value_t = 10.0)]
    pub time: f64,
    /// Warm-up seconds, excluded from every reported number.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Publisher confirms in flight per publisher; 0 = confirms off.
    #[arg(short = 'c', long = "confirm", default_value_t = 0)]
    pub confirm: usize,
    /// Ack every N deliveries (multiple=true); 0 = no-ack (auto-ack).
    #[arg(short = 'a', long = "ack", default_value_t = 0)]
    pub ack: u64,
    /// Prefetch (basic.qos) per consumer; 0 = unlimited.
    #[arg(short = 'q', long = "qos", default_value_t = 0)]
    pub qos: u16,
    /// Persistent messages (delivery mode 2) and durable queues.
    #[arg(short = 'p', long = "persistent")]
    pub persistent: bool,
    /// Publish with the mandatory flag (returns are counted).
    #[arg(short = 'm', long = "mandatory")]
    pub mandatory: bool,
    /// Exchange to publish to ("" = default exchange).
    #[arg(short = 'e', long = "exchange")]
    pub exchange: Option<String>,
    /// Exchange type (direct, fanout, topic).
    #[arg(short = 't', long = "type")]
    pub kind: Option<String>,
    /// Routing key (default: the target queue's name).
    #[arg(short = 'k', long = "routing-key")]
    pub key: Option<String>,
    /// Number of queues.
    #[arg(long, default_value_t = 1)]
    pub queues: usize,
    /// Queue names; `%d` is replaced by the queue index.
    #[arg(long, default_value = "loadgen-%d")]
    pub queue_pattern: String,
    /// Declare the queues with `x-message-ttl` (ms), to measure what a
    /// queue TTL costs (messages must not expire during the run).
    #[arg(long)]
    pub message_ttl: Option<u32>,
    /// Declare the queues with `x-max-priority` N and publish each message
    /// with a pseudo-random priority in 0..=N (a priority queue's cost).
    #[arg(long)]
    pub max_priority: Option<u8>,
    /// Declare the queues with `x-queue-master-locator` set to this. With
    /// `client-local` they are declared from the first consumer's
    /// connection (as an application whose consumer declares its queue), so
    /// a broker that honours it places them on that connection's node or
    /// core.
    #[arg(long)]
    pub queue_locator: Option<String>,
    /// Fanout: every message goes to every queue.
    #[arg(long)]
    pub fanout: bool,
    /// Topic exchange with N bindings `lg.<b>.*` spread over the queues;
    /// message i is published with key `lg.<i mod N>.x` (one match each).
    #[arg(long, default_value_t = 0)]
    pub topic_bindings: usize,
    /// Print one JSON record on stdout (human output goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for consumers to catch up after publishing stops.
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout: f64,
    /// Broker pid for RSS/CPU accounting (default: whoever listens on the port).
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// `connections`: how many idle connections to open.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub connections: usize,
    /// `connections`: threads opening connections in parallel.
    #[arg(long, default_value_t = 4)]
    pub open_threads: usize,
    /// `connections`: seconds to hold the connections before measuring RSS.
    #[arg(long, default_value_t = 2.0)]
    pub hold: f64,
    /// `dead-letter`: messages queued and then dead-lettered; `backlog`: messages in the backlog.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// `dead-letter`: Warren's shard count, to home the target queue on
    /// another shard than the source (1: no choice).
    #[arg(long, default_value_t = 2)]
    pub shards_hint: usize,
    /// Keep the queues and exchange afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Label recorded in the JSON record (e.g. the broker's name).
    #[arg(long, default_value = "")]
    pub label: String,
}

fn main() {
    let mut o = Opts::parse();
    if o.scenario == Scenario::Latency && o.rate == 0.0 {
        o.rate = 1000.0;
    }
    let code = match o.scenario {
        Scenario::Throughput | Scenario::Latency => run::run(&o),
        Scenario::Connections => other::connections(&o),
        Scenario::Churn => other::churn(&o),
        Scenario::Rpc => extensions::rpc(&o),
        Scenario::DeadLetter => extensions::dead_letter(&o),
        Scenario::Backlog => backlog::backlog(&o),
        Scenario::Floor => floor::floor(&o),
    };
    std::process::exit(code);
}

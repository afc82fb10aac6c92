//! Human and JSON output.

use crate::client::ServerInfo;
use crate::{sys, Opts};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};

static HUMAN_TO_STDERR: AtomicBool = AtomicBool::new(false);

pub fn set_json(on: bool) {
    HUMAN_TO_STDERR.store(on, Ordering::Relaxed);
}

/// Print a human line (stderr when `--json` owns stdout).
pub fn say(s: &str) {
    if HUMAN_TO_STDERR.load(Ordering::Relaxed) {
        eprintln!("{s}");
    } else {
        println!("{s}");
    }
}

pub fn fmt_ns(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.0}us", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", ns as f64 / 1e6)
    } else {
        format!("{:.2}s", ns as f64 / 1e9)
    }
}

pub fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e4 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

pub const PCTS: [(f64, &str); 5] = [
    (50.0, "p50"),
    (90.0, "p90"),
    (99.0, "p99"),
    (99.9, "p99.9"),
    (99.99, "p99.99"),
];

/// Latency summary in microseconds.
pub fn lat_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    let mut m = serde_json::Map::new();
    m.insert("count".into(), json!(h.len()));
    for (q, name) in PCTS {
        m.insert(
            format!("{name}_us"),
            json!(h.value_at_quantile(q / 100.0) as f64 / 1e3),
        );
    }
    m.insert("max_us".into(), json!(h.max() as f64 / 1e3));
    m.insert("mean_us".into(), json!(h.mean() / 1e3));
    Value::Object(m)
}

pub fn lat_line(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "n/a".into();
    }
    let mut s = String::new();
    for (q, name) in PCTS {
        s.push_str(&format!(
            "{name} {}  ",
            fmt_ns(h.value_at_quantile(q / 100.0))
        ));
    }
    s.push_str(&format!("max {}", fmt_ns(h.max())));
    s
}

pub fn host_json() -> Value {
    json!({ "cpu_model": sys::cpu_model(), "cores": sys::cores() })
}

pub fn broker_json(o: &Opts, s: &ServerInfo, pid: Option<u32>) -> Value {
    json!({
        "uri": redact(&o.uri),
        "product": s.product,
        "version": s.version,
        "platform": s.platform,
        "pid": pid,
        "process": pid.map(sys::proc_name),
    })
}

fn redact(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(a), Some(b)) if b > a => format!("{}://***@{}", &uri[..a], &uri[b + 1..]),
        _ => uri.to_string(),
    }
}

pub fn params_json(o: &Opts) -> Value {
    json!({
        "scenario": o.scenario.as_str(),
        "producers": o.producers,
        "consumers": o.consumers,
        "size": o.size,
        "rate": o.rate,
        "time": o.time,
        "warmup": o.warmup,
        "confirm": o.confirm,
        "ack": o.ack,
        "qos": o.qos,
        "persistent": o.persistent,
        "mandatory": o.mandatory,
        "exchange": o.exchange,
        "type": o.kind,
        "routing_key": o.key,
        "queues": o.queues,
        "queue_pattern": o.queue_pattern,
        "fanout": o.fanout,
        "topic_bindings": o.topic_bindings,
        "queue_locator": o.queue_locator,
        "connections": o.connections,
        "label": o.label,
    })
}

/// Print the final JSON record when asked.
pub fn emit(o: &Opts, v: Value) {
    if o.json {
        println!("{v}");
    }
}

//! Management: the RabbitMQ-compatible HTTP API, Prometheus metrics and the
//! statistics they are built from.
//!
//! Owns: the HTTP listener (on shard 0) and the rate sampler. Statistics
//! come from every shard's own counters through mailbox requests
//! (`shard::snapshot` runs on each shard); nothing here reads another
//! shard's memory or takes a lock, and nothing here is on the data path.

pub mod access;
pub mod api;
pub mod bindings;
pub mod body;
pub mod connections;
pub mod definitions;
pub mod exchanges;
pub mod gate;
pub mod health;
pub mod http;
pub mod json;
pub mod limits;
pub mod listing;
pub mod messages;
pub mod methods;
pub mod metrics;
mod metrics_per_object;
mod metrics_rabbitmq;
pub mod overview;
pub mod parameters;
pub mod phash2;
pub mod policies;
pub mod queues;
pub mod requests;
pub mod samples;
pub mod topic_permissions;
pub mod ui;
pub use crate::bus::stats;

use crate::bus::{Request, Response};
use crate::channel::Cx;
use crate::defs::users::UserDef;
use serde_json::{json, Map, Value};
use stats::ShardSnapshot;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Rates (per second) keyed by "kind|vhost|name|counter", from the last two
/// samples the sampler took.
#[derive(Default)]
pub struct Rates {
    prev: Option<(Instant, HashMap<String, u64>)>,
    /// Per-second rates over the last sampling interval (about 5 s),
    /// keyed as the counters of [`counters`]; negative for a length that
    /// shrank.
    pub rates: HashMap<String, f64>,
    /// The samples behind `*_details` over a range (`samples`).
    pub history: samples::History,
}

/// The management listener's state, shared by its connection tasks on
/// shard 0.
pub struct Mgmt {
    /// Shard 0's link and connection table: the metadata table and the
    /// mailboxes to every shard.
    pub cx: Cx,
    /// Rates from the sampler.
    pub rates: RefCell<Rates>,
    /// When the listener started (the node's uptime in `/api/nodes`).
    pub started: Instant,
    /// The AMQP listener's port (health checks, `/api/overview`).
    pub amqp_port: u16,
    /// This listener's port.
    pub http_port: u16,
}

/// Ask every shard for its snapshot (requests go out together).
pub async fn gather(cx: &Cx) -> Vec<ShardSnapshot> {
    let slots: Vec<_> = (0..cx.shard_count())
        .map(|s| {
            cx.link
                .send_request(crate::ids::ShardId(s), Request::Snapshot)
        })
        .collect();
    let mut out = Vec::new();
    for s in slots {
        if let Response::Snapshot(snap) = s.wait().await {
            out.push(*snap);
        }
    }
    out
}

/// Every counter the API shows a rate for, summed over shards, keyed
/// "kind|vhost|name|counter" (kind: queue, exchange, channel, connection,
/// shard, all); values are totals since start (messages or bytes).
pub fn counters(snaps: &[ShardSnapshot]) -> HashMap<String, u64> {
    let mut m: HashMap<String, u64> = HashMap::new();
    let mut add = |k: String, v: u64| *m.entry(k).or_default() += v;
    for s in snaps {
        for q in &s.queues {
            let k = format!("queue|{}|{}|", q.vhost, q.name);
            // Lengths too: their rates and samples are `messages_details`
            // and its kin.
            let (ready, unacked) = (u64::from(q.ready), u64::from(q.unacked));
            add(format!("{k}messages"), ready + unacked);
            add(format!("{k}messages_ready"), ready);
            add(format!("{k}messages_unacknowledged"), unacked);
            add("all|||messages".into(), ready + unacked);
            add("all|||messages_ready".into(), ready);
            add("all|||messages_unacknowledged".into(), unacked);
            add(format!("{k}publish"), q.stats.publish);
            add(format!("{k}deliver_get"), q.stats.deliver + q.stats.get);
            add(format!("{k}deliver"), q.stats.deliver);
            add(format!("{k}get"), q.stats.get);
            add(format!("{k}ack"), q.stats.ack);
            add(format!("{k}redeliver"), q.stats.redeliver);
            add("all|||deliver_get".into(), q.stats.deliver + q.stats.get);
            add("all|||ack".into(), q.stats.ack);
        }
        for e in &s.exchanges {
            let (v, x) = (&e.vhost, &e.name);
            add(format!("exchange|{v}|{x}|publish_in"), e.publish_in);
            add(format!("exchange|{v}|{x}|publish_out"), e.publish_out);
        }
        for c in &s.channels {
            let k = format!("channel|{}|{} ({})|", c.vhost, c.connection, c.number);
            add(format!("{k}publish"), c.publish);
            add(format!("{k}deliver_get"), c.deliver);
            add(format!("{k}ack"), c.ack);
            add(format!("{k}confirm"), c.confirmed);
            add(format!("{k}return_unroutable"), c.returned);
        }
        for c in &s.connections {
            let k = format!("connection|{}|{}|", c.vhost, c.name);
            add(format!("{k}recv_oct"), c.recv_oct);
            add(format!("{k}send_oct"), c.send_oct);
        }
        add(format!("shard|{}||runtime_ns", s.shard), s.runtime_ns);
        add("all|||publish".into(), s.publish_total);
        add("all|||confirm".into(), s.confirm_total);
    }
    m
}

impl Mgmt {
    /// The rate (per second) of counter `key`; 0 before two samples.
    pub fn rate(&self, key: &str) -> f64 {
        self.rates.borrow().rates.get(key).copied().unwrap_or(0.0)
    }

    /// RabbitMQ's `message_stats` object for an entity (rates only).
    pub fn message_stats(&self, prefix: &str, counters: &[(&str, u64)]) -> Value {
        self.message_stats_over(prefix, counters, None)
    }

    /// [`Mgmt::message_stats`] with samples over `range`
    /// (`msg_rates_age`/`msg_rates_incr`).
    pub fn message_stats_over(
        &self,
        prefix: &str,
        counters: &[(&str, u64)],
        range: Option<samples::Range>,
    ) -> Value {
        let mut m = Map::new();
        for (name, v) in counters {
            m.insert(name.to_string(), json!(v));
            m.insert(
                format!("{name}_details"),
                self.details(&format!("{prefix}{name}"), range),
            );
        }
        Value::Object(m)
    }

    /// RabbitMQ's `*_details` object of series `key`: its rate (per
    /// second, one decimal), and over `range` its samples, `avg` and
    /// `avg_rate`.
    pub fn details(&self, key: &str, range: Option<samples::Range>) -> Value {
        let r = (self.rate(key) * 10.0).round() / 10.0;
        match range {
            None => json!({ "rate": r }),
            Some(range) => self.rates.borrow().history.details(key, r, range),
        }
    }

    /// Authenticate an HTTP request; returns the user if it may use the API.
    pub fn authenticate(&self, req: &http::Request) -> Result<UserDef, http::Response> {
        // RabbitMQ 3.10's answers (recorded): no credentials, an empty
        // 401 with the Basic challenge; wrong ones, `not_authorized` (US
        // spelling, unlike its authorisation refusals) "Login failed".
        let Some((user, pass)) = &req.auth else {
            return Err(http::Response::text(401, "text/plain", String::new()));
        };
        let u = self.cx.table().users.get(user).cloned();
        match u {
            Some(u) if u.check_password(pass) => {
                if ["administrator", "management", "monitoring", "policymaker"]
                    .iter()
                    .any(|t| u.has_tag(t))
                {
                    Ok(u)
                } else {
                    Err(http::Response::error(
                        401,
                        "not_authorised",
                        "Not management user",
                    ))
                }
            }
            _ => Err(http::Response::error(401, "not_authorized", "Login failed")),
        }
    }
}

/// Sample counters every few seconds to compute rates.
async fn sampler(m: Rc<Mgmt>) {
    loop {
        let snaps = gather(&m.cx).await;
        let cur = counters(&snaps);
        let now = Instant::now();
        {
            let mut r = m.rates.borrow_mut();
            if let Some((t, prev)) = &r.prev {
                let dt = now.duration_since(*t).as_secs_f64().max(0.001);
                let rates = cur
                    .iter()
                    .map(|(k, v)| {
                        let before = prev.get(k).copied().unwrap_or(0);
                        (k.clone(), (*v as f64 - before as f64) / dt)
                    })
                    .collect();
                r.rates = rates;
            }
            let epoch_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            r.history.record(epoch_ms, &cur);
            r.prev = Some((now, cur));
        }
        glommio::timer::sleep(Duration::from_secs(5)).await;
    }
}

/// Start the management listener on this shard (shard 0): plain HTTP, or
/// HTTPS with `tls` (`[management] tls`, the `[tls]` certificate; the
/// handshake bounded by the idle timeout).
pub fn start(
    cx: Cx,
    listener: glommio::net::TcpListener,
    amqp_port: u16,
    http_port: u16,
    tls: Option<futures_rustls::TlsAcceptor>,
) {
    let m = Rc::new(Mgmt {
        cx,
        rates: RefCell::new(Rates::default()),
        started: Instant::now(),
        amqp_port,
        http_port,
    });
    glommio::spawn_local(sampler(m.clone())).detach();
    glommio::spawn_local(async move {
        loop {
            let Ok(stream) = listener.accept().await else {
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let m = m.clone();
            let tls = tls.clone();
            glommio::spawn_local(async move {
                let idle = Duration::from_millis(m.cx.link.config.mgmt_idle_timeout_ms);
                let handle = move |req| {
                    let m = m.clone();
                    async move { api::route(&m, &req).await }
                };
                match tls {
                    None => http::serve(stream, idle, handle).await,
                    Some(acceptor) => {
                        let hs = glommio::timer::timeout(idle, async {
                            acceptor
                                .accept(stream)
                                .await
                                .map_err(glommio::GlommioError::from)
                        });
                        if let Ok(s) = hs.await {
                            http::serve(s, idle, handle).await;
                        }
                    }
                }
            })
            .detach();
        }
    })
    .detach();
}

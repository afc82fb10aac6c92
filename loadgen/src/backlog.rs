//! `backlog`: what a broker does with a backlog larger than it would like
//! to keep in RAM (issue 13's measure). One publisher (`-c` confirms in
//! flight, at least 1) puts `--messages` messages of `-s` bytes into one
//! queue (`loadgen-backlog`; durable with persistent messages under `-p`,
//! else a transient queue of transient messages) with no consumer, while a
//! sampler reads the broker's resident set every 100 ms; `connection.blocked`
//! time is counted. Then one consumer (prefetch `-q`, default 1000; no-ack
//! unless `-a N`, which acks every N with `multiple`) drains it. Reports
//! the publish rate, the peak RSS while building and while draining, the
//! time blocked, and the drain rate. A publisher that makes no progress for
//! `--drain-timeout` seconds fails the run.

use crate::client::{class_method, err, u64_at, Conn, Target, FRAME_METHOD};
use crate::extensions::{body, header, publish, run_scenario};
use crate::other::{local_pid, mib};
use crate::report::{self, fmt_rate, say};
use crate::{sys, Opts};
use amq_protocol::protocol::basic;
use serde_json::json;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const QUEUE: &str = "loadgen-backlog";

pub fn backlog(o: &Opts) -> i32 {
    run_scenario(o, backlog_inner)
}

/// Peak RSS of `pid` (bytes) since the last `take`, sampled every 100 ms.
struct Sampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: Option<u32>) -> Sampler {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = pid.map(|pid| {
            let (peak, stop) = (peak.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Relaxed) {
                    if let Some(r) = sys::rss_bytes(pid) {
                        peak.fetch_max(r, Relaxed);
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            })
        });
        Sampler { peak, stop, handle }
    }

    /// The peak so far, and start a new one.
    fn take(&self) -> Option<u64> {
        self.handle.as_ref().map(|_| self.peak.swap(0, Relaxed))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Publish `n` messages with at most `window` unconfirmed. Returns the
/// seconds taken, the nacks, and the seconds spent blocked.
fn fill(c: &mut Conn, o: &Opts, n: u64, window: u64) -> io::Result<(f64, u64, f64)> {
    let mut props = basic::AMQPProperties::default();
    if o.persistent {
        props = props.with_delivery_mode(2);
    }
    let mut one = Vec::new();
    publish(&mut one, QUEUE);
    one.extend_from_slice(&header(o.size, props));
    body(&mut one, &vec![b'b'; o.size]);
    let (mut sent, mut confirmed, mut nacks) = (0u64, 0u64, 0u64);
    let mut blocked_since: Option<Instant> = None;
    let mut blocked = Duration::ZERO;
    let start = Instant::now();
    let mut progress = Instant::now();
    let stall = Duration::from_secs_f64(o.drain_timeout.max(1.0));
    while confirmed < n {
        while sent < n && sent - confirmed < window {
            c.out.extend_from_slice(&one);
            sent += 1;
        }
        c.flush()?;
        if c.rd.fill(&mut c.sock)? == 0 {
            return Err(err("the broker closed the publisher's socket"));
        }
        while let Some(f) = c.rd.next()? {
            if f.kind != FRAME_METHOD {
                continue;
            }
            let p = c.rd.payload(&f);
            match class_method(p) {
                (60, 80) | (60, 120) => {
                    let tag = u64_at(p, 4).ok_or_else(|| err("bad basic.ack"))?;
                    let multiple = p.get(12).is_some_and(|b| b & 1 != 0);
                    let k = if multiple {
                        tag - confirmed.min(tag)
                    } else {
                        1
                    };
                    if class_method(p).1 == 120 {
                        nacks += k;
                    }
                    confirmed += k;
                    progress = Instant::now();
                }
                (10, 60) => blocked_since = Some(Instant::now()),
                (10, 61) => {
                    if let Some(t) = blocked_since.take() {
                        blocked += t.elapsed();
                    }
                }
                (10, _) | (20, 40) => return Err(err("the broker closed the publisher")),
                _ => {}
            }
        }
        if progress.elapsed() > stall {
            return Err(err(format!(
                "no confirm for {stall:?} ({confirmed} of {n} confirmed)"
            )));
        }
    }
    if let Some(t) = blocked_since {
        blocked += t.elapsed();
    }
    Ok((start.elapsed().as_secs_f64(), nacks, blocked.as_secs_f64()))
}

/// Consume `n` messages; returns the seconds from the first delivery to
/// the last.
fn drain(c: &mut Conn, o: &Opts, n: u64) -> io::Result<f64> {
    let every = o.ack;
    let mut seen = 0u64;
    let mut first = None;
    while seen < n {
        if c.rd.fill(&mut c.sock)? == 0 {
            return Err(err("the broker closed the consumer's socket"));
        }
        while let Some(f) = c.rd.next()? {
            if f.kind != FRAME_METHOD {
                continue;
            }
            let p = c.rd.payload(&f);
            match class_method(p) {
                (60, 60) => {
                    let mut pos = 4;
                    crate::client::shortstr(p, &mut pos).ok_or_else(|| err("bad basic.deliver"))?;
                    let last_tag = u64_at(p, pos).ok_or_else(|| err("bad basic.deliver"))?;
                    first.get_or_insert_with(Instant::now);
                    seen += 1;
                    if every > 0 && (seen.is_multiple_of(every) || seen == n) {
                        ack(&mut c.out, last_tag);
                    }
                }
                (10, _) | (20, 40) => return Err(err("the broker closed the consumer")),
                _ => {}
            }
        }
        c.flush()?;
    }
    Ok(first.map_or(0.0, |t| t.elapsed().as_secs_f64()))
}

fn ack(out: &mut Vec<u8>, tag: u64) {
    use amq_protocol::protocol::AMQPClass;
    crate::client::put_method(
        out,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: tag,
            multiple: true,
        })),
    );
}

fn backlog_inner(o: &Opts) -> io::Result<i32> {
    let t = Target::from_opts(o).map_err(err)?;
    let n = o.messages;
    let pid = local_pid(o, &t);
    let mut admin = Conn::open(&t, 64 * 1024)?;
    let server = admin.server.clone();
    admin.queue_delete_if_exists(QUEUE)?;
    admin.queue_declare(QUEUE, o.persistent, false)?;
    let before = pid.and_then(sys::rss_bytes);
    let sampler = Sampler::start(pid);
    let mut p = Conn::open(&t, 1024 * 1024)?;
    p.confirm_select()?;
    let window = (o.confirm as u64).max(1);
    let (fill_secs, nacks, blocked_secs) = fill(&mut p, o, n, window)?;
    let fill_peak = sampler.take();
    let queued = u64::from(admin.queue_declare(QUEUE, o.persistent, true)?.1);
    let publish_rate = n as f64 / fill_secs;
    say(&format!(
        "backlog: {n} x {} B published in {fill_secs:.1}s ({}/s), {nacks} nacked, \
         blocked {blocked_secs:.1}s; {queued} queued; broker RSS {} before, peak {}",
        o.size,
        fmt_rate(publish_rate),
        mib(before),
        mib(fill_peak)
    ));
    let _ = p.close();
    let mut c = Conn::open(&t, 1024 * 1024)?;
    c.qos(if o.qos == 0 { 1000 } else { o.qos })?;
    c.consume(QUEUE, "", o.ack == 0)?;
    let drain_secs = drain(&mut c, o, queued)?;
    let drain_peak = sampler.take();
    let drain_rate = queued as f64 / drain_secs.max(1e-9);
    let after = pid.and_then(sys::rss_bytes);
    say(&format!(
        "backlog: drained {queued} in {drain_secs:.1}s ({}/s); broker RSS peak {} while draining, {} after",
        fmt_rate(drain_rate),
        mib(drain_peak),
        mib(after)
    ));
    let _ = c.close();
    drop(sampler);
    if !o.keep {
        let _ = admin.queue_delete(QUEUE);
    }
    let _ = admin.close();
    report::emit(
        o,
        json!({
            "tool": "warren-loadgen",
            "host": report::host_json(),
            "broker": report::broker_json(o, &server, pid),
            "params": report::params_json(o),
            "results": {
                "messages": n,
                "queued": queued,
                "nacked": nacks,
                "publish_seconds": fill_secs,
                "publish_rate": publish_rate,
                "blocked_seconds": blocked_secs,
                "rss_before": before,
                "rss_peak_fill": fill_peak,
                "rss_peak_drain": drain_peak,
                "rss_after": after,
                "drain_seconds": drain_secs,
                "drain_rate": drain_rate,
            },
        }),
    );
    Ok(if queued < n - nacks { 1 } else { 0 })
}

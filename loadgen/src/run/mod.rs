//! The `throughput` and `latency` scenarios.
//!
//! Threads: one per consumer connection (reads deliveries in large buffers,
//! writes acks), and two per publisher connection (a writer that batches many
//! messages into one `write`, and a reader for confirms, returns and errors).
//! Counters are relaxed atomics bumped once per batch; histograms sit behind
//! a mutex taken once per read batch, so the reporter can swap the
//! per-second histogram out without stopping anyone.

use crate::client::{
    self, class_method, err, shortstr, u64_at, Conn, Reader, Target, FRAME_BODY, FRAME_HEADER,
    FRAME_METHOD,
};
use crate::report::{self, fmt_rate, lat_json, lat_line, say};
use crate::track::{self, new_hist, read_stamp, Bits, Hists, Seen, STAMP_LEN};
use crate::{sys, Opts};
use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, channel, connection, AMQPClass};
use serde_json::json;
use std::collections::VecDeque;
use std::io::{self, ErrorKind, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod consumer;
mod plan;
mod progress;
mod publisher;

use consumer::*;
pub use plan::*;
use progress::*;
use publisher::*;

pub fn run(o: &Opts) -> i32 {
    report::set_json(o.json);
    match run_inner(o) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warren-loadgen: {e}");
            2
        }
    }
}

fn run_inner(o: &Opts) -> io::Result<i32> {
    if o.size < STAMP_LEN {
        return Err(err(format!(
            "-s must be at least {STAMP_LEN} (the body carries a stamp)"
        )));
    }
    if o.producers > u16::MAX as usize {
        return Err(err("too many publishers"));
    }
    let t = Target::from_opts(o).map_err(err)?;
    let setup = Arc::new(Setup::from_opts(o).map_err(err)?);
    let o = Arc::new(o.clone());
    let pid = o.broker_pid.or_else(|| {
        if t.host == "localhost" || t.host.starts_with("127.") {
            sys::pid_listening_on(t.port)
        } else {
            None
        }
    });
    let mut admin = Conn::open(&t, 64 * 1024)?;
    let server = admin.server.clone();
    say(&format!(
        "broker: {} {} ({}){}; loadgen on {} x {}",
        server.product,
        server.version,
        server.platform,
        pid.map(|p| format!(", pid {p} {}", sys::proc_name(p)))
            .unwrap_or_default(),
        sys::cores(),
        sys::cpu_model()
    ));
    // Connect everyone before the clock starts. A client-local queue is
    // declared from the first consumer's connection, so it lives where
    // that consumer is.
    let mut cconns = Vec::new();
    for _ in 0..o.consumers {
        cconns.push(Conn::open(&t, 1024 * 1024)?);
    }
    match cconns.first_mut() {
        Some(c) if o.queue_locator.as_deref() == Some("client-local") => setup.declare(&o, c)?,
        _ => setup.declare(&o, &mut admin)?,
    }
    let mut pconns = Vec::new();
    for _ in 0..o.producers {
        let mut c = Conn::open(&t, 64 * 1024)?;
        if o.confirm > 0 {
            c.confirm_select()?;
        }
        pconns.push(c);
    }
    for (i, c) in cconns.iter_mut().enumerate() {
        if o.qos > 0 && o.ack > 0 {
            c.qos(o.qos)?;
        }
        c.consume(
            &setup.queues[i % setup.queues.len()],
            &format!("loadgen-{i}"),
            o.ack == 0,
        )?;
    }
    let origin = Instant::now();
    let start_ns = 50_000_000;
    let warm_ns = start_ns + (o.warmup * 1e9) as u64;
    let end_ns = warm_ns + (o.time * 1e9) as u64;
    let sh = Arc::new(Shared {
        origin,
        start_ns,
        warm_ns,
        end_ns,
        stop_pub: AtomicBool::new(false),
        stop_all: AtomicBool::new(false),
        fatal: Mutex::new(None),
        blocked: AtomicU64::new(0),
        pubs: (0..o.producers)
            .map(|_| Pub {
                stats: PubStats::default(),
                win: Mutex::new(Window {
                    inflight: VecDeque::new(),
                    base: 1,
                    confirmed: Bits::default(),
                    returned: Bits::default(),
                }),
                cv: Condvar::new(),
                conf: Mutex::new(Hists::default()),
                lag: Mutex::new(Hists::default()),
            })
            .collect(),
        cons: (0..o.consumers)
            .map(|i| Cons {
                queue: i % setup.queues.len(),
                stats: ConsStats::default(),
                lat: Mutex::new(Hists::default()),
            })
            .collect(),
        q_expected: (0..setup.queues.len()).map(|_| AtomicU64::new(0)).collect(),
    });

    let mut chandles = Vec::new();
    for (i, c) in cconns.into_iter().enumerate() {
        let (sh, o) = (sh.clone(), o.clone());
        chandles.push(
            thread::Builder::new()
                .name(format!("cons-{i}"))
                .spawn(move || consumer(sh, o, i, c))?,
        );
    }
    let mut phandles = Vec::new();
    let mut rhandles = Vec::new();
    for (i, mut c) in pconns.into_iter().enumerate() {
        let sock = c.sock.try_clone()?;
        let rd = std::mem::replace(&mut c.rd, Reader::new(0));
        let shr = sh.clone();
        rhandles.push(
            thread::Builder::new()
                .name(format!("pubr-{i}"))
                .spawn(move || publisher_reader(shr, i, sock, rd))?,
        );
        let (sh, o, setup) = (sh.clone(), o.clone(), setup.clone());
        phandles.push(
            thread::Builder::new()
                .name(format!("pub-{i}"))
                .spawn(move || publisher(sh, o, setup, i, c))?,
        );
    }

    // Progress, once a second.
    let mut sec = new_hist();
    let mut csec = new_hist();
    let mut prev = snap(&sh, pid);
    let mut warm: Option<Snap> = None;
    let end: Snap;
    let mut tick = start_ns + 1_000_000_000;
    loop {
        let now = sh.now();
        let next = tick.min(if warm.is_none() { warm_ns } else { end_ns });
        if next > now {
            thread::sleep(Duration::from_nanos(next - now));
        }
        let s = snap(&sh, pid);
        if warm.is_none() && s.t >= warm_ns {
            warm = Some(snap(&sh, pid));
        }
        if s.t >= end_ns {
            end = s;
            break;
        }
        if s.t >= tick {
            for c in &sh.cons {
                let mut h = c.lat.lock().unwrap();
                let _ = sec.add(&h.interval);
                h.interval.reset();
            }
            for p in &sh.pubs {
                let mut h = p.conf.lock().unwrap();
                let _ = csec.add(&h.interval);
                h.interval.reset();
            }
            let dt = (s.t - prev.t) as f64 / 1e9;
            let mut line = format!(
                "[{:>4.0}s] pub {:>8}/s  cons {:>8}/s",
                (s.t as f64 - start_ns as f64) / 1e9,
                fmt_rate((s.published - prev.published) as f64 / dt),
                fmt_rate((s.consumed - prev.consumed) as f64 / dt)
            );
            if !sec.is_empty() {
                line.push_str(&format!(
                    "  lat p50 {} p99 {}",
                    report::fmt_ns(sec.value_at_quantile(0.5)),
                    report::fmt_ns(sec.value_at_quantile(0.99))
                ));
            }
            if o.confirm > 0 {
                line.push_str(&format!(
                    "  confirmed {:>8}/s",
                    fmt_rate((s.confirmed - prev.confirmed) as f64 / dt)
                ));
                if !csec.is_empty() {
                    line.push_str(&format!(
                        " conf p99 {}",
                        report::fmt_ns(csec.value_at_quantile(0.99))
                    ));
                }
            }
            if s.t < warm_ns {
                line.push_str("  (warm-up)");
            }
            say(&line);
            sec.reset();
            csec.reset();
            prev = s;
            tick += 1_000_000_000;
        }
        if sh.stop_all.load(Relaxed) {
            end = snap(&sh, pid);
            break;
        }
    }
    let warm = warm.unwrap_or_else(|| snap(&sh, pid));
    sh.stop_pub.store(true, Relaxed);
    // A publisher still in a socket write once the drain timeout has
    // passed means the broker stopped reading it (flow control, an alarm,
    // or a fault): a failed run with that cause, not a run that never ends.
    let pub_deadline = Instant::now() + Duration::from_secs_f64(o.drain_timeout);
    let mut pub_conns = Vec::new();
    for (i, h) in phandles.into_iter().enumerate() {
        while !h.is_finished() && Instant::now() < pub_deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if h.is_finished() {
            pub_conns.push(h.join().ok());
        } else {
            sh.fail(
                &format!("publisher {i}"),
                format!(
                    "still blocked writing to the broker {:.0} s after the window ended: the broker stopped reading it",
                    o.drain_timeout
                ),
            );
            pub_conns.push(None);
        }
    }
    // Drain: wait until every consumed queue has what was sent to it, or
    // nothing arrives for 3 s, or the drain timeout passes.
    let drain_start = Instant::now();
    let mut last_progress = Instant::now();
    let mut last_total = 0u64;
    let consumed_queues: Vec<usize> = {
        let mut v: Vec<usize> = sh.cons.iter().map(|c| c.queue).collect();
        v.sort();
        v.dedup();
        v
    };
    let mut drained = false;
    while !sh.stop_all.load(Relaxed) && drain_start.elapsed().as_secs_f64() < o.drain_timeout {
        let mut ok = true;
        let mut total = 0;
        for &q in &consumed_queues {
            let got: u64 = sh
                .cons
                .iter()
                .filter(|c| c.queue == q)
                .map(|c| c.stats.consumed.load(Relaxed))
                .sum();
            total += got;
            if got < sh.q_expected[q].load(Relaxed) {
                ok = false;
            }
        }
        if ok {
            drained = true;
            break;
        }
        if total != last_total {
            last_total = total;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_secs(3) {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let drain_secs = drain_start.elapsed().as_secs_f64();
    // Queue depths before the consumers go (a cancel would requeue).
    let mut depth = 0u64;
    let fatal_before = sh.fatal.lock().unwrap().clone();
    if fatal_before.is_none() {
        for q in &setup.queues {
            match admin.queue_declare(q, o.persistent, true) {
                Ok((_, n)) => depth += n as u64,
                Err(e) => say(&format!("warning: passive declare of {q} failed: {e}")),
            }
        }
    }
    sh.stop_all.store(true, Relaxed);
    let mut consumer_seen = Vec::new();
    let mut foreign = 0;
    for h in chandles {
        if let Ok((s, f)) = h.join() {
            consumer_seen.push(s);
            foreign += f;
        }
    }
    for (h, c) in rhandles.into_iter().zip(pub_conns) {
        if let (Ok(r), Some(mut c)) = (h.join(), c) {
            c.rd = r;
            let _ = c.close();
        }
    }
    if !o.keep {
        if let Err(e) = setup.cleanup(&mut admin) {
            say(&format!("warning: cleanup failed: {e}"));
        }
    }
    let _ = admin.close();

    // ---- checks ----
    let published: Vec<u64> = sh
        .pubs
        .iter()
        .map(|p| p.stats.published.load(Relaxed))
        .collect();
    let mut dups = 0u64;
    let mut reordered = 0u64;
    let mut redelivered = 0u64;
    let mut missing = 0u64;
    let mut lost_confirmed = 0u64;
    let mut expected_total = 0u64;
    let mut received_total = 0u64;
    for &q in &consumed_queues {
        for (p, &n) in published.iter().enumerate() {
            let mut got = Bits::default();
            for (ci, s) in consumer_seen.iter().enumerate() {
                if sh.cons[ci].queue != q {
                    continue;
                }
                let s = &s[p];
                dups += s.dups + got.merge(&s.bits);
                reordered += s.reordered;
                redelivered += s.redelivered;
                received_total += s.count;
            }
            let w = sh.pubs[p].win.lock().unwrap();
            for seq in 0..n {
                let mut hit = false;
                setup.targets(&o, p, seq, |t| hit |= t == q);
                if !hit || w.returned.get(seq) {
                    continue;
                }
                expected_total += 1;
                if !got.get(seq) {
                    missing += 1;
                    if o.confirm > 0 && w.confirmed.get(seq) {
                        lost_confirmed += 1;
                    }
                }
            }
        }
    }
    let nacked: u64 = sh.pubs.iter().map(|p| p.stats.nacked.load(Relaxed)).sum();
    let returned: u64 = sh.pubs.iter().map(|p| p.stats.returned.load(Relaxed)).sum();
    let confirmed: u64 = sh
        .pubs
        .iter()
        .map(|p| p.stats.confirmed.load(Relaxed))
        .sum();

    let mut lat = new_hist();
    for c in &sh.cons {
        let _ = lat.add(&c.lat.lock().unwrap().total);
    }
    let mut conf = new_hist();
    let mut lag = new_hist();
    for p in &sh.pubs {
        let _ = conf.add(&p.conf.lock().unwrap().total);
        let _ = lag.add(&p.lag.lock().unwrap().total);
    }
    let secs = (end.t - warm.t) as f64 / 1e9;
    let pub_rate = (end.published - warm.published) as f64 / secs;
    let cons_rate = (end.consumed - warm.consumed) as f64 / secs;
    let conf_rate = (end.confirmed - warm.confirmed) as f64 / secs;
    let msgs = (end.published - warm.published) + (end.consumed - warm.consumed);
    let cpu = end.cpu - warm.cpu;
    let cpu_per_m = if msgs > 0 {
        cpu / (msgs as f64 / 1e6)
    } else {
        0.0
    };
    let broker_cpu = match (warm.broker_cpu, end.broker_cpu) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let fatal = sh.fatal.lock().unwrap().clone();
    // Confirmed-but-missing messages still sitting in a queue are not lost.
    let lost_confirmed_real = lost_confirmed.saturating_sub(depth);

    say(&format!(
        "--- {} summary ({:.1} s measured after {:.1} s warm-up) ---",
        o.scenario.as_str(),
        secs,
        o.warmup
    ));
    say(&format!(
        "publish {} msg/s  consume {} msg/s{}",
        fmt_rate(pub_rate),
        fmt_rate(cons_rate),
        if o.confirm > 0 {
            format!("  confirmed {} msg/s", fmt_rate(conf_rate))
        } else {
            String::new()
        }
    ));
    say(&format!(
        "end-to-end latency (from intended send time): {}",
        lat_line(&lat)
    ));
    if o.confirm > 0 {
        say(&format!("confirm latency: {}", lat_line(&conf)));
    }
    if o.rate > 0.0 {
        say(&format!(
            "publisher lag behind schedule: {}",
            lat_line(&lag)
        ));
    }
    say(&format!(
        "checks: published {} expected {} received {} missing {} (still queued {}) duplicated {} reordered {} redelivered {} nacked {} returned {} foreign {}{}",
        published.iter().sum::<u64>(),
        expected_total,
        received_total,
        missing,
        depth,
        dups,
        reordered,
        redelivered,
        nacked,
        returned,
        foreign,
        if drained { String::new() } else { format!(" (drain gave up after {drain_secs:.1} s)") }
    ));
    if o.confirm > 0 {
        say(&format!("confirmed {confirmed}, confirmed but never received: {lost_confirmed} (beyond queue depth: {lost_confirmed_real})"));
    }
    say(&format!(
        "loadgen CPU {:.2} s in window = {:.3} CPU-s per million messages (pub+cons){}",
        cpu,
        cpu_per_m,
        broker_cpu
            .map(|b| format!(
                "; broker CPU {:.2} s = {:.3} CPU-s per million",
                b,
                if msgs > 0 {
                    b / (msgs as f64 / 1e6)
                } else {
                    0.0
                }
            ))
            .unwrap_or_default()
    ));
    let blocked = sh.blocked.load(Relaxed);
    if blocked > 0 {
        say(&format!("broker sent connection.blocked {blocked} times"));
    }
    if let Some(f) = &fatal {
        say(&format!("ERROR: {f}"));
    }
    let rss = pid.and_then(sys::rss_bytes);
    report::emit(
        &o,
        json!({
            "tool": "warren-loadgen",
            "params": report::params_json(&o),
            "broker": report::broker_json(&o, &server, pid),
            "host": report::host_json(),
            "results": {
                "measured_s": secs,
                "publish_rate": pub_rate,
                "consume_rate": cons_rate,
                "confirm_rate": conf_rate,
                "latency": lat_json(&lat),
                "confirm_latency": lat_json(&conf),
                "publisher_lag": lat_json(&lag),
                "published": published.iter().sum::<u64>(),
                "expected": expected_total,
                "received": received_total,
                "missing": missing,
                "still_queued": depth,
                "duplicated": dups,
                "reordered": reordered,
                "redelivered": redelivered,
                "nacked": nacked,
                "returned": returned,
                "confirmed": confirmed,
                "lost_confirmed": lost_confirmed_real,
                "drained": drained,
                "drain_s": drain_secs,
                "blocked": blocked,
                "loadgen_cpu_s": cpu,
                "loadgen_cpu_s_per_million": cpu_per_m,
                "broker_cpu_s": broker_cpu,
                "broker_rss_bytes": rss,
                "error": fatal,
            }
        }),
    );
    if lost_confirmed_real > 0 {
        say("FAIL: the broker lost messages it had confirmed");
        return Ok(1);
    }
    if fatal.is_some() {
        return Ok(3);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn targets(args: &[&str], p: usize, seq: u64) -> Vec<usize> {
        let mut v = vec!["warren-loadgen"];
        v.extend_from_slice(args);
        let o = Opts::parse_from(v);
        let s = Setup::from_opts(&o).unwrap();
        let mut out = Vec::new();
        s.targets(&o, p, seq, |q| out.push(q));
        out
    }

    #[test]
    fn routing_plans_predict_the_receiving_queues() {
        assert_eq!(targets(&["--queues", "4"], 6, 0), vec![2]);
        assert_eq!(targets(&["--queues", "3", "--fanout"], 0, 9), vec![0, 1, 2]);
        // Topic: message seq from publisher p uses key lg.<(p+seq) mod N>.x,
        // bound to queue <b mod K>.
        assert_eq!(
            targets(&["--queues", "10", "--topic-bindings", "1000"], 1, 122),
            vec![3]
        );
        assert_eq!(
            targets(&["--queues", "2", "-e", "amq.direct", "-k", "k"], 0, 0),
            vec![0, 1]
        );
        assert_eq!(
            targets(&["--queues", "2", "-k", "loadgen-1"], 0, 0),
            vec![1]
        );
        assert!(targets(&["-k", "elsewhere"], 0, 0).is_empty());
    }

    #[test]
    fn queue_names_follow_the_pattern() {
        assert_eq!(queue_name("perf-%d", 3), "perf-3");
        assert_eq!(queue_name("perf", 3), "perf-3");
    }
}

//! The `connections` and `churn` scenarios.

use crate::client::{self, err, Conn, Target};
use crate::report::{self, fmt_rate, say};
use crate::{sys, Opts};
use amq_protocol::protocol::{connection, AMQPClass};
use serde_json::json;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub(crate) fn local_pid(o: &Opts, t: &Target) -> Option<u32> {
    o.broker_pid.or_else(|| {
        if t.host == "localhost" || t.host.starts_with("127.") {
            sys::pid_listening_on(t.port)
        } else {
            None
        }
    })
}

pub(crate) fn mib(b: Option<u64>) -> String {
    b.map(|b| format!("{:.1} MiB", b as f64 / 1048576.0))
        .unwrap_or_else(|| "n/a".into())
}

pub fn connections(o: &Opts) -> i32 {
    report::set_json(o.json);
    match connections_inner(o) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warren-loadgen: {e}");
            2
        }
    }
}

fn connections_inner(o: &Opts) -> io::Result<i32> {
    let limit = sys::raise_nofile();
    let t = Target::from_opts(o).map_err(err)?;
    let pid = local_pid(o, &t);
    let admin = Conn::open(&t, 8 * 1024)?;
    let server = admin.server.clone();
    let _ = admin.close();
    if (o.connections as u64) + 64 > limit {
        say(&format!(
            "warning: open-files limit {limit} is below {} connections",
            o.connections
        ));
    }
    say(&format!(
        "broker: {} {}{}",
        server.product,
        server.version,
        pid.map(|p| format!(", pid {p} {}", sys::proc_name(p)))
            .unwrap_or_default()
    ));
    thread::sleep(Duration::from_millis(500));
    let rss_before = pid.and_then(sys::rss_bytes);
    let threads = o.open_threads.max(1);
    let start = Instant::now();
    let mut hs = Vec::new();
    for i in 0..threads {
        let n = o.connections / threads + usize::from(i < o.connections % threads);
        let t = t.clone();
        hs.push(thread::spawn(move || {
            let mut socks: Vec<crate::client::Sock> = Vec::with_capacity(n);
            for _ in 0..n {
                match Conn::open(&t, 4096) {
                    Ok(c) => socks.push(c.sock),
                    Err(e) => return (socks, Some(e.to_string())),
                }
            }
            (socks, None)
        }));
    }
    let mut socks = Vec::new();
    let mut error = None;
    for h in hs {
        let (s, e) = h.join().expect("opener thread");
        socks.extend(s);
        if error.is_none() {
            error = e;
        }
    }
    let open_s = start.elapsed().as_secs_f64();
    let opened = socks.len();
    say(&format!(
        "opened {opened} connections (one channel each) in {:.2} s = {} conn/s{}",
        open_s,
        fmt_rate(opened as f64 / open_s),
        error
            .as_ref()
            .map(|e| format!("; first error: {e}"))
            .unwrap_or_default()
    ));
    thread::sleep(Duration::from_secs_f64(o.hold));
    let rss_after = pid.and_then(sys::rss_bytes);
    // Are they all still open?
    let mut dropped = 0;
    let mut b = [0u8; 512];
    for s in &mut socks {
        let _ = s.set_nonblocking(true);
        match s.read(&mut b) {
            Ok(0) => dropped += 1,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => dropped += 1,
        }
    }
    let per_conn = match (rss_before, rss_after) {
        (Some(a), Some(b)) if opened > 0 => Some((b as f64 - a as f64) / opened as f64),
        _ => None,
    };
    say(&format!(
        "broker RSS {} before, {} with {opened} idle connections{}; {dropped} closed by the broker meanwhile",
        mib(rss_before),
        mib(rss_after),
        per_conn.map(|p| format!(" = {:.1} KiB per connection", p / 1024.0)).unwrap_or_default()
    ));
    let close_start = Instant::now();
    let mut close = Vec::new();
    client::put_method(
        &mut close,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        })),
    );
    for s in &mut socks {
        let _ = s.set_nonblocking(false);
        let _ = s.write_all(&close);
    }
    thread::sleep(Duration::from_millis(200));
    drop(socks);
    let close_s = close_start.elapsed().as_secs_f64();
    report::emit(
        o,
        json!({
            "tool": "warren-loadgen",
            "params": report::params_json(o),
            "broker": report::broker_json(o, &server, pid),
            "host": report::host_json(),
            "results": {
                "requested": o.connections,
                "opened": opened,
                "open_s": open_s,
                "open_rate": opened as f64 / open_s,
                "dropped": dropped,
                "broker_rss_before_bytes": rss_before,
                "broker_rss_after_bytes": rss_after,
                "broker_rss_per_conn_bytes": per_conn,
                "close_s": close_s,
                "error": error,
            }
        }),
    );
    Ok(if opened < o.connections || dropped > 0 {
        3
    } else {
        0
    })
}

pub fn churn(o: &Opts) -> i32 {
    report::set_json(o.json);
    match churn_inner(o) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warren-loadgen: {e}");
            2
        }
    }
}

fn churn_inner(o: &Opts) -> io::Result<i32> {
    let t = Target::from_opts(o).map_err(err)?;
    let pid = local_pid(o, &t);
    let admin = Conn::open(&t, 8 * 1024)?;
    let server = admin.server.clone();
    let _ = admin.close();
    say(&format!(
        "broker: {} {}{}",
        server.product,
        server.version,
        pid.map(|p| format!(", pid {p} {}", sys::proc_name(p)))
            .unwrap_or_default()
    ));
    let threads = o.producers.max(1);
    let dur = Duration::from_secs_f64(o.time);

    // Phase 1: queue declare + bind + delete cycles.
    let cycles = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut hs = Vec::new();
    for i in 0..threads {
        let (t, cycles, pattern) = (t.clone(), cycles.clone(), o.queue_pattern.clone());
        hs.push(thread::spawn(move || -> io::Result<()> {
            let mut c = Conn::open(&t, 16 * 1024)?;
            let mut n = 0u64;
            while start.elapsed() < dur {
                let q = crate::run::queue_name(&pattern, 0) + &format!("-churn-{i}-{n}");
                c.queue_declare(&q, false, false)?;
                c.queue_bind(&q, "amq.direct", &q)?;
                c.queue_delete(&q)?;
                n += 1;
                cycles.fetch_add(1, Relaxed);
            }
            c.close()
        }));
    }
    let mut error = None;
    for h in hs {
        if let Err(e) = h.join().expect("churn thread") {
            error.get_or_insert(e.to_string());
        }
    }
    let qs = start.elapsed().as_secs_f64();
    let qcycles = cycles.load(Relaxed);
    say(&format!(
        "queue churn: {qcycles} declare+bind+delete cycles in {qs:.1} s = {} cycles/s ({} ops/s) on {threads} connection(s)",
        fmt_rate(qcycles as f64 / qs),
        fmt_rate(3.0 * qcycles as f64 / qs)
    ));

    // Phase 2: connection open (+channel) and close cycles.
    let conns = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut hs = Vec::new();
    for _ in 0..threads {
        let (t, conns) = (t.clone(), conns.clone());
        hs.push(thread::spawn(move || -> io::Result<()> {
            while start.elapsed() < dur {
                let c = Conn::open(&t, 4096)?;
                c.close()?;
                conns.fetch_add(1, Relaxed);
            }
            Ok(())
        }));
    }
    for h in hs {
        if let Err(e) = h.join().expect("churn thread") {
            error.get_or_insert(e.to_string());
        }
    }
    let cs = start.elapsed().as_secs_f64();
    let ccycles = conns.load(Relaxed);
    say(&format!(
        "connection churn: {ccycles} open+channel+close cycles in {cs:.1} s = {} conn/s on {threads} thread(s)",
        fmt_rate(ccycles as f64 / cs)
    ));
    if let Some(e) = &error {
        say(&format!("ERROR: {e}"));
    }
    report::emit(
        o,
        json!({
            "tool": "warren-loadgen",
            "params": report::params_json(o),
            "broker": report::broker_json(o, &server, pid),
            "host": report::host_json(),
            "results": {
                "queue_cycles": qcycles,
                "queue_cycles_per_s": qcycles as f64 / qs,
                "queue_ops_per_s": 3.0 * qcycles as f64 / qs,
                "conn_cycles": ccycles,
                "conn_cycles_per_s": ccycles as f64 / cs,
                "broker_rss_bytes": pid.and_then(sys::rss_bytes),
                "error": error,
            }
        }),
    );
    Ok(if error.is_some() { 3 } else { 0 })
}

//! `floor`: what this machine's loopback and thread wake-ups cost, with no
//! broker. The latency scenario's publisher and consumer are timed the same
//! way (an open-loop publisher thread sleeping until each message's
//! intended send time, a consumer thread blocked in `recv`), but here the
//! message goes over loopback TCP either straight to the consumer
//! (`direct`: one hop) or through a relay thread that reads it and writes
//! it on (`relay`: two hops, as publisher -> broker -> consumer, with a
//! "broker" that does nothing but forward, on a blocking thread). A broker's
//! latency at the same rate can be read against the relay's: what is above
//! it is the broker's own; what is below it no broker on this machine gets
//! under. Both runs, one after the other, are in one record.

use crate::report::{emit, fmt_ns, host_json, lat_json, lat_line, params_json, say};
use crate::track::{new_hist, read_stamp, stamp};
use crate::{sys, Opts};
use hdrhistogram::Histogram;
use serde_json::json;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// A connected loopback TCP pair, Nagle off on both ends (as AMQP clients
/// and brokers set it).
fn pair() -> io::Result<(TcpStream, TcpStream)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let a = TcpStream::connect(l.local_addr()?)?;
    let (b, _) = l.accept()?;
    a.set_nodelay(true)?;
    b.set_nodelay(true)?;
    Ok((a, b))
}

struct Run {
    latency: Histogram<u64>,
    lag: Histogram<u64>,
}

/// One run: `hops` 1 (direct) or 2 (through a relay thread).
fn run_one(o: &Opts, hops: usize) -> io::Result<Run> {
    let size = o.size.max(16);
    let (mut tx, mut rx) = pair()?;
    let mut relay = None;
    if hops == 2 {
        let (to_consumer, from_relay) = pair()?;
        let mut inbound = rx;
        rx = from_relay;
        let mut outbound = to_consumer;
        relay = Some(thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match inbound.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if outbound.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        }));
    }
    let interval_ns = 1e9 / o.rate;
    let total = ((o.warmup + o.time) * o.rate) as u64;
    let warm = (o.warmup * o.rate) as u64;
    let origin = Instant::now();
    let start_ns = 20_000_000u64;
    let publisher = thread::spawn(move || -> io::Result<Histogram<u64>> {
        sys::tight_timer_slack();
        let mut lag = new_hist();
        let mut msg = vec![0x5au8; size];
        for seq in 0..total {
            let intended = start_ns + (seq as f64 * interval_ns) as u64;
            let now = origin.elapsed().as_nanos() as u64;
            if intended > now {
                thread::sleep(Duration::from_nanos(intended - now));
            }
            let now = origin.elapsed().as_nanos() as u64;
            if seq >= warm {
                let _ = lag.record(now.saturating_sub(intended).max(1));
            }
            stamp(&mut msg[..16], intended, seq, 0);
            tx.write_all(&msg)?;
        }
        Ok(lag)
    });
    let mut latency = new_hist();
    let mut msg = vec![0u8; size];
    for _ in 0..total {
        rx.read_exact(&mut msg)?;
        let now = origin.elapsed().as_nanos() as u64;
        if let Some((intended, seq, _)) = read_stamp(&msg[..16]) {
            if seq >= warm {
                let _ = latency.record(now.saturating_sub(intended).max(1));
            }
        }
    }
    let lag = publisher
        .join()
        .map_err(|_| io::Error::other("publisher panicked"))??;
    drop(rx);
    if let Some(r) = relay {
        let _ = r.join();
    }
    Ok(Run { latency, lag })
}

pub fn floor(o: &Opts) -> i32 {
    let rate = if o.rate > 0.0 { o.rate } else { 1000.0 };
    let o = &Opts { rate, ..o.clone() };
    say(&format!(
        "floor: {} B at {rate} msg/s over loopback TCP, no broker; {:.1} s after {:.1} s warm-up, each of: direct (1 hop), relay thread (2 hops)",
        o.size.max(16),
        o.time,
        o.warmup
    ));
    let mut out = serde_json::Map::new();
    for (name, hops) in [("direct", 1), ("relay", 2)] {
        match run_one(o, hops) {
            Ok(r) => {
                say(&format!("{name}: latency {}", lat_line(&r.latency)));
                say(&format!(
                    "{name}: publisher lag behind schedule {} (p50 {})",
                    lat_line(&r.lag),
                    fmt_ns(r.lag.value_at_quantile(0.5))
                ));
                out.insert(
                    name.into(),
                    json!({"latency": lat_json(&r.latency), "publisher_lag": lat_json(&r.lag)}),
                );
            }
            Err(e) => {
                say(&format!("floor {name}: {e}"));
                return 1;
            }
        }
    }
    emit(
        o,
        json!({"host": host_json(), "params": params_json(o), "results": out}),
    );
    0
}

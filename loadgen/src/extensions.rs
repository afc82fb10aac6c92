//! Scenarios for RabbitMQ extensions: `rpc` (direct reply-to round trips)
//! and `dead-letter` (a queue's messages rejected into a dead-letter queue).
//!
//! `rpc`: `-y` responders consume the request queue (no-ack) and answer
//! each request to its `reply-to` with the same body; `-x` requesters each
//! consume `amq.rabbitmq.reply-to` (no-ack) and keep one request in flight
//! (publish with `reply-to: amq.rabbitmq.reply-to`, wait for the reply,
//! repeat), as Spring's `RabbitTemplate` does. Reports round trips per
//! second and their latency. Each requester checks its reply's body is its
//! request's (a counter), so a misrouted reply fails the run.
//!
//! `dead-letter`: `--messages` messages are queued in a source queue whose
//! `x-dead-letter-exchange` is the default exchange and whose
//! `x-dead-letter-routing-key` names a target queue; a consumer then
//! `basic.nack`s them (`requeue=false`, `multiple` every `-a` deliveries,
//! prefetch `-q`) and the target's count is polled. Reports dead letters
//! per second from the first delivery to the last arrival. With
//! `--shards-hint N` the target's name is chosen so that Warren (whose
//! queues live on the shard given by an FNV-1a hash of vhost and name,
//! modulo the shard count) homes it on another shard than the source, so
//! every dead letter crosses a mailbox; other brokers ignore the choice.

use crate::client::{
    class_method, err, put_frame, put_method, shortstr, u64_at, Conn, Target, FRAME_BODY,
    FRAME_HEADER, FRAME_METHOD,
};
use crate::report::{self, fmt_rate, lat_json, lat_line, say};
use crate::track::new_hist;
use crate::Opts;
use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use serde_json::json;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

pub(crate) fn header(size: usize, props: basic::AMQPProperties) -> Vec<u8> {
    let mut v = Vec::new();
    put_frame(
        &mut v,
        &AMQPFrame::Header(
            1,
            60,
            Box::new(AMQPContentHeader {
                class_id: 60,
                body_size: size as u64,
                properties: props,
            }),
        ),
    );
    v
}

pub(crate) fn body(out: &mut Vec<u8>, b: &[u8]) {
    out.push(FRAME_BODY);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
    out.push(crate::client::FRAME_END);
}

pub(crate) fn publish(out: &mut Vec<u8>, key: &str) {
    put_method(
        out,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: key.into(),
            mandatory: false,
            immediate: false,
        })),
    );
}

pub(crate) fn run_scenario(o: &Opts, f: fn(&Opts) -> io::Result<i32>) -> i32 {
    report::set_json(o.json);
    match f(o) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warren-loadgen: {e}");
            2
        }
    }
}

pub fn rpc(o: &Opts) -> i32 {
    run_scenario(o, rpc_inner)
}

pub fn dead_letter(o: &Opts) -> i32 {
    run_scenario(o, dead_letter_inner)
}

fn rpc_inner(o: &Opts) -> io::Result<i32> {
    let t = Target::from_opts(o).map_err(err)?;
    let queue = "loadgen-rpc";
    let mut admin = Conn::open(&t, 64 * 1024)?;
    admin.queue_delete_if_exists(queue)?;
    admin.queue_declare(queue, false, false)?;
    let server = admin.server.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let mut responders = Vec::new();
    for _ in 0..o.consumers.max(1) {
        let (t, stop) = (t.clone(), stop.clone());
        let mut c = Conn::open(&t, 256 * 1024)?;
        c.consume(queue, "", true)?;
        responders.push(thread::spawn(move || respond(c, &stop)));
    }
    let size = o.size.max(8);
    let warm = Duration::from_secs_f64(o.warmup);
    let measured = Duration::from_secs_f64(o.time);
    let mut requesters = Vec::new();
    for _ in 0..o.producers.max(1) {
        let mut c = Conn::open(&t, 64 * 1024)?;
        c.consume(REPLY_TO, "", true)?;
        requesters.push(thread::spawn(move || {
            request(c, queue, size, warm, measured)
        }));
    }
    let mut hist = new_hist();
    let mut round_trips = 0u64;
    let mut failure = None;
    for h in requesters {
        match h.join() {
            Ok(Ok((n, h))) => {
                round_trips += n;
                let _ = hist.add(&h);
            }
            Ok(Err(e)) => failure = Some(e.to_string()),
            Err(_) => failure = Some("a requester panicked".into()),
        }
    }
    stop.store(true, Relaxed);
    for h in responders {
        let _ = h.join();
    }
    let _ = admin.queue_delete(queue);
    let _ = admin.close();
    let rate = round_trips as f64 / o.time;
    say(&format!(
        "rpc: {} requesters, {} responders: {} round trips/s; latency {}",
        o.producers.max(1),
        o.consumers.max(1),
        fmt_rate(rate),
        lat_line(&hist)
    ));
    if let Some(e) = &failure {
        say(&format!("error: {e}"));
    }
    report::emit(
        o,
        json!({
            "tool": "warren-loadgen",
            "host": report::host_json(),
            "broker": report::broker_json(o, &server, None),
            "params": report::params_json(o),
            "results": {
                "round_trips": round_trips,
                "round_trips_per_s": rate,
                "latency": lat_json(&hist),
                "error": failure,
            },
        }),
    );
    Ok(if failure.is_some() { 1 } else { 0 })
}

/// Answer every request with its own body, to its `reply-to`, batching
/// the replies of one read into one write.
fn respond(mut c: Conn, stop: &AtomicBool) -> io::Result<()> {
    c.sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut publish_frames: HashMap<String, Vec<u8>> = HashMap::new();
    let mut headers: HashMap<usize, Vec<u8>> = HashMap::new();
    let mut reply_to = String::new();
    while !stop.load(Relaxed) {
        while let Some(f) = c.rd.next()? {
            match f.kind {
                FRAME_HEADER => {
                    if let AMQPFrame::Header(_, _, h) = c.rd.parse(&f)? {
                        reply_to = h
                            .properties
                            .reply_to()
                            .as_ref()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default();
                    }
                }
                FRAME_BODY => {
                    let b = c.rd.payload(&f).to_vec();
                    let p = publish_frames.entry(reply_to.clone()).or_insert_with(|| {
                        let mut v = Vec::new();
                        publish(&mut v, &reply_to);
                        v
                    });
                    c.out.extend_from_slice(p);
                    let h = headers
                        .entry(b.len())
                        .or_insert_with(|| header(b.len(), basic::AMQPProperties::default()));
                    c.out.extend_from_slice(h);
                    body(&mut c.out, &b);
                }
                FRAME_METHOD if class_method(c.rd.payload(&f)).0 == 10 => {
                    return Err(err("the broker closed the responder's connection"));
                }
                _ => {}
            }
        }
        c.flush()?;
        match c.rd.fill(&mut c.sock) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One request in flight until the warm-up and the measured time have
/// passed; returns the round trips and latencies of the measured part.
fn request(
    mut c: Conn,
    queue: &str,
    size: usize,
    warm: Duration,
    measured: Duration,
) -> io::Result<(u64, hdrhistogram::Histogram<u64>)> {
    let mut fixed = Vec::new();
    publish(&mut fixed, queue);
    fixed.extend_from_slice(&header(
        size,
        basic::AMQPProperties::default().with_reply_to(REPLY_TO.into()),
    ));
    let mut hist = new_hist();
    let mut n = 0u64;
    let mut payload = vec![0u8; size];
    let start = Instant::now();
    for seq in 0u64.. {
        let now = Instant::now();
        let elapsed = now - start;
        if elapsed >= warm + measured {
            break;
        }
        payload[..8].copy_from_slice(&seq.to_be_bytes());
        c.out.extend_from_slice(&fixed);
        body(&mut c.out, &payload);
        c.flush()?;
        'reply: loop {
            while let Some(f) = c.rd.next()? {
                match f.kind {
                    FRAME_BODY => {
                        if c.rd.payload(&f).get(..8) != Some(&seq.to_be_bytes()[..]) {
                            return Err(err("a reply carried another request's body"));
                        }
                        break 'reply;
                    }
                    FRAME_METHOD if class_method(c.rd.payload(&f)).0 == 10 => {
                        return Err(err("the broker closed the requester's connection"));
                    }
                    _ => {}
                }
            }
            if c.rd.fill(&mut c.sock)? == 0 {
                return Err(err("the broker closed the requester's socket"));
            }
        }
        if elapsed >= warm {
            n += 1;
            let _ = hist.record(now.elapsed().as_nanos().max(1) as u64);
        }
    }
    let _ = c.close();
    Ok((n, hist))
}

/// FNV-1a over vhost, a zero byte and name: Warren's queue placement.
fn warren_home(vhost: &str, name: &str, shards: usize) -> usize {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in vhost.bytes().chain([0u8]).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    (h % shards.max(1) as u64) as usize
}

fn dead_letter_inner(o: &Opts) -> io::Result<i32> {
    let t = Target::from_opts(o).map_err(err)?;
    let src = "loadgen-dl-source";
    let shards = o.shards_hint.max(1);
    let target = (0..)
        .map(|i| format!("loadgen-dl-target-{i}"))
        .find(|n| {
            shards == 1 || warren_home(&t.vhost, n, shards) != warren_home(&t.vhost, src, shards)
        })
        .expect("some name");
    let n = o.messages;
    let mut admin = Conn::open(&t, 64 * 1024)?;
    let server = admin.server.clone();
    admin.queue_delete_if_exists(src)?;
    admin.queue_delete_if_exists(&target)?;
    admin.queue_declare(&target, o.persistent, false)?;
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from("")),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(LongString::from(target.as_str())),
    );
    admin.queue_declare_with(src, o.persistent, false, args)?;
    // Fill the source (not measured).
    {
        let mut p = Conn::open(&t, 64 * 1024)?;
        let mut props = basic::AMQPProperties::default();
        if o.persistent {
            props = props.with_delivery_mode(2);
        }
        let mut one = Vec::new();
        publish(&mut one, src);
        one.extend_from_slice(&header(o.size, props));
        body(&mut one, &vec![b'x'; o.size]);
        let mut left = n;
        while left > 0 {
            let k = left.min(1000);
            for _ in 0..k {
                p.out.extend_from_slice(&one);
            }
            p.flush()?;
            left -= k;
        }
        let deadline = Instant::now() + Duration::from_secs_f64(o.drain_timeout.max(60.0));
        while admin.queue_declare(src, o.persistent, true)?.1 < n as u32 {
            if Instant::now() > deadline {
                return Err(err("the source queue never filled"));
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = p.close();
    }
    say(&format!(
        "dead-letter: {n} messages queued in {src}, target {target}"
    ));
    let mut c = Conn::open(&t, 1024 * 1024)?;
    c.qos(if o.qos == 0 { 1000 } else { o.qos })?;
    c.consume(src, "", false)?;
    let every = o.ack.max(1);
    let consumer = thread::spawn(move || -> io::Result<Instant> {
        let mut first = None;
        let mut seen = 0u64;
        let mut last_tag = 0;
        while seen < n {
            while let Some(f) = c.rd.next()? {
                if f.kind != FRAME_METHOD {
                    continue;
                }
                let p = c.rd.payload(&f);
                match class_method(p) {
                    (60, 60) => {
                        let mut pos = 4;
                        shortstr(p, &mut pos).ok_or_else(|| err("bad basic.deliver"))?;
                        last_tag = u64_at(p, pos).ok_or_else(|| err("bad basic.deliver"))?;
                        first.get_or_insert_with(Instant::now);
                        seen += 1;
                        if seen.is_multiple_of(every) || seen == n {
                            nack(&mut c.out, last_tag);
                        }
                    }
                    (10, _) | (20, 40) => return Err(err("the broker closed the consumer")),
                    _ => {}
                }
            }
            c.flush()?;
            if seen < n && c.rd.fill(&mut c.sock)? == 0 {
                return Err(err("the broker closed the consumer's socket"));
            }
        }
        if !seen.is_multiple_of(every) {
            nack(&mut c.out, last_tag);
        }
        c.flush()?;
        let _ = c.close();
        Ok(first.unwrap_or_else(Instant::now))
    });
    let deadline = Instant::now() + Duration::from_secs_f64(o.drain_timeout.max(60.0) * 4.0);
    let mut arrived = 0;
    while arrived < n as u32 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        arrived = admin.queue_declare(&target, o.persistent, true)?.1;
    }
    let end = Instant::now();
    let first = consumer
        .join()
        .map_err(|_| err("the consumer panicked"))??;
    let secs = (end - first).as_secs_f64();
    let rate = f64::from(arrived) / secs;
    say(&format!(
        "dead-letter: {arrived} of {n} dead letters in {secs:.2}s: {}/s",
        fmt_rate(rate)
    ));
    if !o.keep {
        let _ = admin.queue_delete(src);
        let _ = admin.queue_delete(&target);
    }
    let _ = admin.close();
    let missing = u64::from(n as u32 - arrived.min(n as u32));
    report::emit(
        o,
        json!({
            "tool": "warren-loadgen",
            "host": report::host_json(),
            "broker": report::broker_json(o, &server, None),
            "params": report::params_json(o),
            "results": {
                "messages": n,
                "dead_lettered": arrived,
                "seconds": secs,
                "dead_letter_rate": rate,
                "missing": missing,
            },
        }),
    );
    Ok(if missing > 0 { 1 } else { 0 })
}

fn nack(out: &mut Vec<u8>, tag: u64) {
    put_method(
        out,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
            delivery_tag: tag,
            multiple: true,
            requeue: false,
        })),
    );
}

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

/// How messages are routed, so the run knows which queues expect what.
#[derive(Clone, Debug)]
pub enum Plan {
    /// Publisher p sends to queue `target[p]` (None: unknown, not checked).
    Direct {
        all: bool,
    },
    Fanout,
    Topic {
        n: usize,
    },
}

pub struct Setup {
    pub exchange: String,
    pub kind: String,
    pub declare_exchange: bool,
    pub queues: Vec<String>,
    pub plan: Plan,
}

pub fn queue_name(pattern: &str, i: usize) -> String {
    if pattern.contains("%d") {
        pattern.replace("%d", &i.to_string())
    } else {
        format!("{pattern}-{i}")
    }
}

impl Setup {
    pub fn from_opts(o: &Opts) -> Result<Setup, String> {
        let k = o.queues.max(1);
        let queues: Vec<String> = (0..k).map(|i| queue_name(&o.queue_pattern, i)).collect();
        let kind = if o.fanout {
            "fanout".to_string()
        } else if o.topic_bindings > 0 {
            "topic".to_string()
        } else {
            o.kind.clone().unwrap_or_else(|| "direct".into())
        };
        let exchange = match (&o.exchange, kind.as_str()) {
            (Some(e), _) => e.clone(),
            (None, "fanout") => "loadgen.fanout".into(),
            (None, "topic") => "loadgen.topic".into(),
            (None, _) => String::new(),
        };
        let plan = match kind.as_str() {
            "fanout" => Plan::Fanout,
            "topic" => Plan::Topic {
                n: o.topic_bindings,
            },
            "direct" => Plan::Direct {
                all: o.key.is_some() && !exchange.is_empty(),
            },
            other => {
                return Err(format!(
                    "unsupported exchange type {other} (direct, fanout, topic)"
                ))
            }
        };
        let declare_exchange = !exchange.is_empty() && !exchange.starts_with("amq.");
        Ok(Setup {
            exchange,
            kind,
            declare_exchange,
            queues,
            plan,
        })
    }

    /// The routing key publisher `p` uses for its `i`-th key variant.
    fn keys(&self, o: &Opts, p: usize) -> Vec<String> {
        match &self.plan {
            Plan::Topic { n } if *n > 0 => (0..*n).map(|b| format!("lg.{b}.x")).collect(),
            Plan::Topic { .. } => vec!["lg.0.x".into()],
            Plan::Fanout => vec![o.key.clone().unwrap_or_default()],
            Plan::Direct { .. } => vec![o
                .key
                .clone()
                .unwrap_or_else(|| self.queues[p % self.queues.len()].clone())],
        }
    }

    /// Queues expected to receive publisher `p`'s message `seq`.
    #[inline]
    fn targets(&self, o: &Opts, p: usize, seq: u64, mut f: impl FnMut(usize)) {
        let k = self.queues.len();
        match &self.plan {
            Plan::Fanout => (0..k).for_each(f),
            Plan::Topic { n } if *n > 0 => f(((p as u64 + seq) % *n as u64) as usize % k),
            Plan::Topic { .. } => (0..k).for_each(f),
            Plan::Direct { all: true } => (0..k).for_each(f),
            Plan::Direct { all: false } => match &o.key {
                Some(key) => {
                    if let Some(i) = self.queues.iter().position(|q| q == key) {
                        f(i)
                    }
                }
                None => f(p % k),
            },
        }
    }

    fn declare(&self, o: &Opts, c: &mut Conn) -> io::Result<()> {
        if self.declare_exchange {
            c.exchange_declare(&self.exchange, &self.kind, o.persistent)?;
        }
        let k = self.queues.len();
        for q in &self.queues {
            // Start from empty queues so leftovers never look like duplicates.
            c.queue_delete_if_exists(q)?;
            c.queue_declare(q, o.persistent, false)?;
        }
        if self.exchange.is_empty() {
            return Ok(());
        }
        match &self.plan {
            Plan::Fanout => {
                for q in &self.queues {
                    c.queue_bind(q, &self.exchange, "")?;
                }
            }
            Plan::Topic { n } if *n > 0 => {
                // Pipelined: a thousand round trips would dominate set-up.
                for b in 0..*n {
                    client::put_method(
                        &mut c.out,
                        1,
                        AMQPClass::Queue(amq_protocol::protocol::queue::AMQPMethod::Bind(
                            amq_protocol::protocol::queue::Bind {
                                queue: self.queues[b % k].as_str().into(),
                                exchange: self.exchange.as_str().into(),
                                routing_key: format!("lg.{b}.*").into(),
                                nowait: false,
                                arguments: Default::default(),
                            },
                        )),
                    );
                }
                c.flush()?;
                for _ in 0..*n {
                    c.expect_method(1)?;
                }
            }
            Plan::Topic { .. } => {
                for q in &self.queues {
                    c.queue_bind(q, &self.exchange, "lg.#")?;
                }
            }
            Plan::Direct { .. } => {
                for q in &self.queues {
                    c.queue_bind(q, &self.exchange, o.key.as_deref().unwrap_or(q))?;
                }
            }
        }
        Ok(())
    }

    fn cleanup(&self, c: &mut Conn) -> io::Result<()> {
        for q in &self.queues {
            c.queue_delete(q)?;
        }
        if self.declare_exchange {
            c.exchange_delete(&self.exchange)?;
        }
        Ok(())
    }
}

/// State shared by a publisher's writer and reader threads.
pub struct Window {
    /// Intended send time of each unconfirmed message, oldest first; the
    /// front's delivery tag is `base`.
    inflight: VecDeque<(u64, u8)>,
    base: u64,
    pub confirmed: Bits,
    pub returned: Bits,
}

#[derive(Default)]
pub struct PubStats {
    pub published: AtomicU64,
    pub confirmed: AtomicU64,
    pub nacked: AtomicU64,
    pub returned: AtomicU64,
    pub writer_done: AtomicBool,
}

pub struct Pub {
    pub stats: PubStats,
    pub win: Mutex<Window>,
    pub cv: Condvar,
    pub conf: Mutex<Hists>,
    pub lag: Mutex<Hists>,
}

#[derive(Default)]
pub struct ConsStats {
    pub consumed: AtomicU64,
}

pub struct Cons {
    pub queue: usize,
    pub stats: ConsStats,
    pub lat: Mutex<Hists>,
}

pub struct Shared {
    pub origin: Instant,
    /// Publishing starts here (ns since origin).
    pub start_ns: u64,
    pub warm_ns: u64,
    pub end_ns: u64,
    pub stop_pub: AtomicBool,
    pub stop_all: AtomicBool,
    pub fatal: Mutex<Option<String>>,
    pub blocked: AtomicU64,
    pub pubs: Vec<Pub>,
    pub cons: Vec<Cons>,
    pub q_expected: Vec<AtomicU64>,
}

impl Shared {
    #[inline]
    pub fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
    pub fn fail(&self, who: &str, e: impl std::fmt::Display) {
        let mut f = self.fatal.lock().unwrap();
        if f.is_none() && !self.stop_all.load(Relaxed) {
            *f = Some(format!("{who}: {e}"));
        }
        self.stop_pub.store(true, Relaxed);
        self.stop_all.store(true, Relaxed);
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Body frames for one message, with the stamp in the first 16 bytes.
#[inline]
fn put_body(out: &mut Vec<u8>, filler: &[u8], chunk: usize, t: u64, seq: u64, p: u16) {
    let mut st = [0u8; STAMP_LEN];
    track::stamp(&mut st, t, seq, p);
    let mut off = 0;
    while off < filler.len() {
        let n = chunk.min(filler.len() - off);
        out.push(FRAME_BODY);
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&(n as u32).to_be_bytes());
        if off == 0 {
            out.extend_from_slice(&st);
            out.extend_from_slice(&filler[STAMP_LEN..n]);
        } else {
            out.extend_from_slice(&filler[off..off + n]);
        }
        out.push(client::FRAME_END);
        off += n;
    }
}

const BATCH_BYTES: usize = 64 * 1024;
const BATCH_MSGS: u64 = 2048;

fn publisher(sh: Arc<Shared>, o: Arc<Opts>, setup: Arc<Setup>, id: usize, mut conn: Conn) -> Conn {
    let me = &sh.pubs[id];
    let keys = setup.keys(&o, id);
    let frames: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| client::publish_frame(&setup.exchange, k, o.mandatory))
        .collect();
    let header = client::header_frame(o.size as u64, o.persistent);
    let filler = vec![b'x'; o.size];
    let chunk = conn.frame_max as usize - 8;
    let topic_n = match setup.plan {
        Plan::Topic { n } if n > 0 => n as u64,
        _ => 1,
    };
    let interval = if o.rate > 0.0 { 1e9 / o.rate } else { 0.0 };
    let mut out = Vec::with_capacity(BATCH_BYTES + 64 * 1024);
    let mut seq: u64 = 0;
    let mut qexp = vec![0u64; setup.queues.len()];
    sys::tight_timer_slack();
    // Publishers start together at start_ns.
    let now = sh.now();
    if sh.start_ns > now {
        thread::sleep(Duration::from_nanos(sh.start_ns - now));
    }
    'run: while !sh.stop_pub.load(Relaxed) {
        let now = sh.now();
        if now >= sh.end_ns {
            break;
        }
        out.clear();
        let mut n: u64 = 0;
        let mut lags: Vec<(u64, bool)> = Vec::new();
        while out.len() < BATCH_BYTES && n < BATCH_MSGS {
            let intended = if interval > 0.0 {
                let it = sh.start_ns + (seq as f64 * interval) as u64;
                if it > now {
                    break;
                }
                it
            } else {
                now
            };
            if o.confirm > 0 {
                let mut w = me.win.lock().unwrap();
                if w.inflight.len() >= o.confirm {
                    if n > 0 {
                        break; // send what we have first
                    }
                    while w.inflight.len() >= o.confirm {
                        if sh.stop_pub.load(Relaxed) {
                            break 'run;
                        }
                        w = me.cv.wait_timeout(w, Duration::from_millis(50)).unwrap().0;
                    }
                }
                w.inflight.push_back((intended, 0));
            }
            let key = if topic_n > 1 {
                ((id as u64 + seq) % topic_n) as usize
            } else {
                0
            };
            out.extend_from_slice(&frames[key]);
            out.extend_from_slice(&header);
            put_body(&mut out, &filler, chunk, intended, seq, id as u16);
            setup.targets(&o, id, seq, |q| qexp[q] += 1);
            if interval > 0.0 {
                lags.push((now - intended, intended >= sh.warm_ns));
            }
            seq += 1;
            n += 1;
        }
        if n == 0 {
            if interval > 0.0 {
                let next = sh.start_ns + (seq as f64 * interval) as u64;
                let now = sh.now();
                if next > now {
                    thread::sleep(Duration::from_nanos((next - now).min(50_000_000)));
                }
            }
            continue;
        }
        for (q, c) in qexp.iter_mut().enumerate() {
            if *c > 0 {
                sh.q_expected[q].fetch_add(*c, Relaxed);
                *c = 0;
            }
        }
        if let Err(e) = conn.sock.write_all(&out) {
            sh.fail(&format!("publisher {id}"), e);
            break;
        }
        me.stats.published.fetch_add(n, Relaxed);
        if !lags.is_empty() {
            let mut h = me.lag.lock().unwrap();
            for (l, w) in lags {
                h.record(l, w);
            }
        }
    }
    // Wait for outstanding confirms.
    if o.confirm > 0 {
        let deadline = Instant::now() + Duration::from_secs_f64(o.drain_timeout);
        let mut w = me.win.lock().unwrap();
        while !w.inflight.is_empty() && Instant::now() < deadline && !sh.stop_all.load(Relaxed) {
            w = me.cv.wait_timeout(w, Duration::from_millis(50)).unwrap().0;
        }
    }
    me.stats.writer_done.store(true, Relaxed);
    conn
}

fn settle(sh: &Shared, me: &Pub, tag: u64, multiple: bool, ack: bool) {
    let now = sh.now();
    let mut w = me.win.lock().unwrap();
    let mut h = me.conf.lock().unwrap();
    let mut done = 0u64;
    let mut mark = |w: &mut Window, seq: u64, t: u64, h: &mut Hists| {
        if ack {
            w.confirmed.set(seq);
            h.record(now.saturating_sub(t), t >= sh.warm_ns);
        }
        done += 1;
    };
    if tag < w.base {
        return;
    }
    if multiple {
        while w.base <= tag {
            let Some((t, st)) = w.inflight.pop_front() else {
                break;
            };
            if st == 0 {
                let seq = w.base - 1;
                mark(&mut w, seq, t, &mut h);
            }
            w.base += 1;
        }
    } else {
        let idx = (tag - w.base) as usize;
        if let Some((t, st)) = w.inflight.get(idx).copied() {
            if st == 0 {
                w.inflight[idx].1 = 1;
                mark(&mut w, tag - 1, t, &mut h);
            }
        }
        while w.inflight.front().is_some_and(|f| f.1 != 0) {
            w.inflight.pop_front();
            w.base += 1;
        }
    }
    drop(h);
    drop(w);
    if ack {
        me.stats.confirmed.fetch_add(done, Relaxed);
    } else {
        me.stats.nacked.fetch_add(done, Relaxed);
    }
    me.cv.notify_all();
}

/// Reads confirms, returns and errors for one publisher connection.
fn publisher_reader(
    sh: Arc<Shared>,
    id: usize,
    mut sock: std::net::TcpStream,
    mut rd: Reader,
) -> Reader {
    let me = &sh.pubs[id];
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    let who = format!("publisher {id}");
    let mut in_return = false;
    loop {
        match rd.fill(&mut sock) {
            Ok(0) => {
                sh.fail(&who, "connection closed by broker (EOF)");
                break;
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {
                if sh.stop_all.load(Relaxed) {
                    break;
                }
                continue;
            }
            Err(e) => {
                sh.fail(&who, e);
                break;
            }
        }
        loop {
            let f = match rd.next() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    sh.fail(&who, e);
                    return rd;
                }
            };
            let p = rd.payload(&f);
            match f.kind {
                FRAME_METHOD => match class_method(p) {
                    (60, 80) => settle(
                        &sh,
                        me,
                        u64_at(p, 4).unwrap_or(0),
                        p.get(12).is_some_and(|b| b & 1 != 0),
                        true,
                    ),
                    (60, 120) => settle(
                        &sh,
                        me,
                        u64_at(p, 4).unwrap_or(0),
                        p.get(12).is_some_and(|b| b & 1 != 0),
                        false,
                    ),
                    (60, 50) => {
                        in_return = true;
                        me.stats.returned.fetch_add(1, Relaxed);
                    }
                    (10, 60) => {
                        sh.blocked.fetch_add(1, Relaxed);
                    }
                    _ => match rd.parse(&f) {
                        Ok(AMQPFrame::Method(
                            _,
                            AMQPClass::Connection(connection::AMQPMethod::Close(c)),
                        )) => {
                            sh.fail(
                                &who,
                                format!(
                                    "connection closed by broker: {} {}",
                                    c.reply_code,
                                    c.reply_text.as_str()
                                ),
                            );
                        }
                        Ok(AMQPFrame::Method(
                            _,
                            AMQPClass::Channel(channel::AMQPMethod::Close(c)),
                        )) => {
                            sh.fail(
                                &who,
                                format!(
                                    "channel closed by broker: {} {}",
                                    c.reply_code,
                                    c.reply_text.as_str()
                                ),
                            );
                        }
                        _ => {}
                    },
                },
                FRAME_BODY if in_return => {
                    if let Some((_, seq, _)) = read_stamp(p) {
                        me.win.lock().unwrap().returned.set(seq);
                    }
                    in_return = false;
                }
                _ => {}
            }
        }
    }
    rd
}

enum CState {
    Idle,
    Header {
        tag: u64,
        redelivered: bool,
    },
    Body {
        tag: u64,
        redelivered: bool,
        remaining: u64,
        first: bool,
    },
}

fn consumer(sh: Arc<Shared>, o: Arc<Opts>, id: usize, mut conn: Conn) -> (Vec<Seen>, u64) {
    let me = &sh.cons[id];
    let who = format!("consumer {id}");
    let _ = conn.sock.set_read_timeout(Some(Duration::from_millis(100)));
    let no_ack = o.ack == 0;
    let ack_every = if o.qos > 0 {
        o.ack.min(o.qos as u64).max(1)
    } else {
        o.ack.max(1)
    };
    let mut seen: Vec<Seen> = vec![Seen::default(); o.producers];
    let mut foreign = 0u64;
    let mut state = CState::Idle;
    let mut unacked = 0u64;
    let mut last_tag = 0u64;
    let mut lats: Vec<(u64, bool)> = Vec::with_capacity(4096);
    loop {
        match conn.rd.fill(&mut conn.sock) {
            Ok(0) => {
                sh.fail(&who, "connection closed by broker (EOF)");
                break;
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {
                if unacked > 0 {
                    client::put_method(
                        &mut conn.out,
                        1,
                        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                            delivery_tag: last_tag,
                            multiple: true,
                        })),
                    );
                    unacked = 0;
                    if let Err(e) = conn.flush() {
                        sh.fail(&who, e);
                        break;
                    }
                }
                if sh.stop_all.load(Relaxed) {
                    break;
                }
                continue;
            }
            Err(e) => {
                sh.fail(&who, e);
                break;
            }
        }
        let now = sh.now();
        let mut n = 0u64;
        loop {
            let f = match conn.rd.next() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    sh.fail(&who, e);
                    return (seen, foreign);
                }
            };
            let p = conn.rd.payload(&f);
            match f.kind {
                FRAME_METHOD => {
                    if class_method(p) == (60, 60) {
                        let mut pos = 4;
                        let _ = shortstr(p, &mut pos);
                        let tag = u64_at(p, pos).unwrap_or(0);
                        let redelivered = p.get(pos + 8).is_some_and(|b| b & 1 != 0);
                        state = CState::Header { tag, redelivered };
                        continue;
                    }
                    match conn.rd.parse(&f) {
                        Ok(AMQPFrame::Method(
                            _,
                            AMQPClass::Connection(connection::AMQPMethod::Close(c)),
                        )) => {
                            sh.fail(
                                &who,
                                format!(
                                    "connection closed by broker: {} {}",
                                    c.reply_code,
                                    c.reply_text.as_str()
                                ),
                            );
                        }
                        Ok(AMQPFrame::Method(
                            _,
                            AMQPClass::Channel(channel::AMQPMethod::Close(c)),
                        )) => {
                            sh.fail(
                                &who,
                                format!(
                                    "channel closed by broker: {} {}",
                                    c.reply_code,
                                    c.reply_text.as_str()
                                ),
                            );
                        }
                        Ok(AMQPFrame::Method(
                            _,
                            AMQPClass::Basic(basic::AMQPMethod::Cancel(_)),
                        )) => {
                            sh.fail(&who, "consumer cancelled by broker");
                        }
                        Ok(AMQPFrame::Method(
                            _,
                            AMQPClass::Connection(connection::AMQPMethod::Blocked(_)),
                        )) => {
                            sh.blocked.fetch_add(1, Relaxed);
                        }
                        _ => {}
                    }
                }
                FRAME_HEADER => {
                    if let CState::Header { tag, redelivered } = state {
                        let size = u64_at(p, 4).unwrap_or(0);
                        state = CState::Body {
                            tag,
                            redelivered,
                            remaining: size,
                            first: true,
                        };
                        if size == 0 {
                            foreign += 1;
                            state = CState::Idle;
                        }
                    }
                }
                FRAME_BODY => {
                    if let CState::Body {
                        tag,
                        redelivered,
                        remaining,
                        first,
                    } = &mut state
                    {
                        if *first {
                            *first = false;
                            match read_stamp(p) {
                                Some((t, seq, pid)) if (pid as usize) < seen.len() => {
                                    seen[pid as usize].mark(seq, *redelivered);
                                    lats.push((now.saturating_sub(t), t >= sh.warm_ns));
                                }
                                _ => foreign += 1,
                            }
                        }
                        *remaining = remaining.saturating_sub(p.len() as u64);
                        if *remaining == 0 {
                            n += 1;
                            if !no_ack {
                                last_tag = *tag;
                                unacked += 1;
                                if unacked >= ack_every {
                                    client::put_method(
                                        &mut conn.out,
                                        1,
                                        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                                            delivery_tag: last_tag,
                                            multiple: true,
                                        })),
                                    );
                                    unacked = 0;
                                }
                            }
                            state = CState::Idle;
                        }
                    }
                }
                _ => {}
            }
        }
        if !lats.is_empty() {
            let mut h = me.lat.lock().unwrap();
            for (l, w) in lats.drain(..) {
                h.record(l, w);
            }
        }
        me.stats.consumed.fetch_add(n, Relaxed);
        if let Err(e) = conn.flush() {
            sh.fail(&who, e);
            break;
        }
        if sh.stop_all.load(Relaxed) {
            break;
        }
    }
    let _ = conn.close();
    (seen, foreign)
}

struct Snap {
    t: u64,
    published: u64,
    consumed: u64,
    confirmed: u64,
    cpu: f64,
    broker_cpu: Option<f64>,
}

fn snap(sh: &Shared, pid: Option<u32>) -> Snap {
    Snap {
        t: sh.now(),
        published: sh
            .pubs
            .iter()
            .map(|p| p.stats.published.load(Relaxed))
            .sum(),
        consumed: sh.cons.iter().map(|c| c.stats.consumed.load(Relaxed)).sum(),
        confirmed: sh
            .pubs
            .iter()
            .map(|p| p.stats.confirmed.load(Relaxed))
            .sum(),
        cpu: sys::self_cpu(),
        broker_cpu: pid.and_then(sys::proc_cpu),
    }
}

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
    let t = Target::parse(&o.uri).map_err(err)?;
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
    setup.declare(&o, &mut admin)?;

    // Connect everyone before the clock starts.
    let mut pconns = Vec::new();
    for _ in 0..o.producers {
        let mut c = Conn::open(&t, 64 * 1024)?;
        if o.confirm > 0 {
            c.confirm_select()?;
        }
        pconns.push(c);
    }
    let mut cconns = Vec::new();
    for i in 0..o.consumers {
        let mut c = Conn::open(&t, 1024 * 1024)?;
        if o.qos > 0 && o.ack > 0 {
            c.qos(o.qos)?;
        }
        c.consume(
            &setup.queues[i % setup.queues.len()],
            &format!("loadgen-{i}"),
            o.ack == 0,
        )?;
        cconns.push(c);
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
    let mut pub_conns = Vec::new();
    for h in phandles {
        if let Ok(c) = h.join() {
            pub_conns.push(c);
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
    for (h, mut c) in rhandles.into_iter().zip(pub_conns) {
        if let Ok(r) = h.join() {
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

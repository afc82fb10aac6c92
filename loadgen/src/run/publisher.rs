//! Publisher connections: a writer thread that batches many messages into
//! one `write`, and a reader thread for confirms, returns and errors.

use super::*;

/// State shared by a publisher's writer and reader threads.
pub struct Window {
    /// Intended send time of each unconfirmed message, oldest first; the
    /// front's delivery tag is `base`.
    pub(super) inflight: VecDeque<(u64, u8)>,
    pub(super) base: u64,
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

/// Body frames for one message, with the stamp in the first 16 bytes.
#[inline]
pub(super) fn put_body(out: &mut Vec<u8>, filler: &[u8], chunk: usize, t: u64, seq: u64, p: u16) {
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

pub(super) const BATCH_BYTES: usize = 64 * 1024;

pub(super) const BATCH_MSGS: u64 = 2048;

pub(super) fn publisher(
    sh: Arc<Shared>,
    o: Arc<Opts>,
    setup: Arc<Setup>,
    id: usize,
    mut conn: Conn,
) -> Conn {
    let me = &sh.pubs[id];
    let keys = setup.keys(&o, id);
    let frames: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| client::publish_frame(&setup.exchange, k, o.mandatory))
        .collect();
    // One pre-encoded header per priority (just one without priorities):
    // choosing a message's priority costs a xorshift step, no encoding.
    let headers: Vec<Vec<u8>> = match o.max_priority {
        None => vec![client::header_frame(o.size as u64, o.persistent, None)],
        Some(m) => (0..=m)
            .map(|p| client::header_frame(o.size as u64, o.persistent, Some(p)))
            .collect(),
    };
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1);
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
            let header = if headers.len() == 1 {
                &headers[0]
            } else {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                &headers[(rng % headers.len() as u64) as usize]
            };
            out.extend_from_slice(header);
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

pub(super) fn settle(sh: &Shared, me: &Pub, tag: u64, multiple: bool, ack: bool) {
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
pub(super) fn publisher_reader(
    sh: Arc<Shared>,
    id: usize,
    mut sock: crate::client::Sock,
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

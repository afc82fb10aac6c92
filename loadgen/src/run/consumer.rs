//! Consumer connections: one thread each, reading deliveries in large
//! buffers, checking stamps (loss, duplicates, order) and writing acks.

use super::*;

#[derive(Default)]
pub struct ConsStats {
    pub consumed: AtomicU64,
}

pub struct Cons {
    pub queue: usize,
    pub stats: ConsStats,
    pub lat: Mutex<Hists>,
}

pub(super) enum CState {
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

pub(super) fn consumer(
    sh: Arc<Shared>,
    o: Arc<Opts>,
    id: usize,
    mut conn: Conn,
) -> (Vec<Seen>, u64) {
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

//! The connection state machine: handshake, frame dispatch, heartbeats,
//! and turning [`AmqpError`]s into channel.close or connection.close.
//!
//! Hot path: one socket read yields many frames, all handled before the next
//! read; their replies and deliveries accumulate in the write buffer and go
//! out in one write. While an outbox or this connection's write buffer is
//! over its high-water mark the reader stops reading (TCP backpressure).

use super::direct_body::{self, DirectBody, Step, Want};
use super::handlers::{content_body, content_header, handle_method};
use super::Conn;
use super::Cx;
use crate::codec::{self, check_protocol_header, next_frame, Frame, HeaderCheck};
use crate::error::{AmqpError, AmqpResult};
use crate::meta::MetaOp;
use crate::net::SharedStream;
use amq_protocol::protocol::{channel, connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use bytes::BytesMut;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Reads start small (an idle connection should cost a few KiB) and grow
/// to READ_CHUNK while the socket keeps filling them (a busy publisher
/// gets large batched reads).
const READ_CHUNK: usize = 128 * 1024;
const READ_MIN: usize = 4 * 1024;
/// Stop reading while this much is waiting to be written to the client.
const OUT_HIGH_WATER: usize = 8 * 1024 * 1024;
/// Accept to connection.open (and the TLS handshake before it), as
/// RabbitMQ's `handshake_timeout` (10 s).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    StartOk,
    TuneOk,
    Open,
    Running,
    /// We sent connection.close and wait for close-ok.
    Closing,
}

fn server_properties(cx: &Cx) -> FieldTable {
    let mut caps = FieldTable::default();
    for c in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "authentication_failure_close",
        "per_consumer_qos",
        "connection.blocked",
    ] {
        caps.insert(c.into(), AMQPValue::Boolean(true));
    }
    let mut p = FieldTable::default();
    let s = |v: &str| AMQPValue::LongString(LongString::from(v));
    p.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    // "Warren" unless configured otherwise (`product` in the config file).
    p.insert("product".into(), s(&cx.link.config.product));
    p.insert("version".into(), s(env!("CARGO_PKG_VERSION")));
    p.insert("platform".into(), s("Rust"));
    p.insert("cluster_name".into(), s("warren"));
    p.insert("copyright".into(), s("Warren contributors"));
    p.insert(
        "information".into(),
        s("Licensed under the Apache License 2.0"),
    );
    p.insert(
        "warren.shard".into(),
        AMQPValue::LongInt(cx.link.id.0 as i32),
    );
    p
}

/// Serve one accepted connection until it closes; `transport` says how it
/// came in (a TLS one with what its handshake settled).
pub async fn serve(
    cx: Cx,
    stream: SharedStream,
    peer: std::net::SocketAddr,
    transport: crate::net::Transport,
) {
    let conn = Conn::new(cx.conns.new_conn_id(), peer, transport);
    cx.conns.conns.borrow_mut().insert(conn.id, conn.clone());
    let writer = glommio::spawn_local(super::io::writer_task(
        cx.clone(),
        conn.clone(),
        stream.clone(),
    ));
    if let Err(e) = run(&cx, &conn, &stream).await {
        tracing::debug!(peer = %peer, "connection ended: {e}");
    }
    conn.closed.set(true);
    conn.out_notify.notify();
    writer.await;
    cleanup(&cx, &conn);
}

/// Release every channel of `conn` (requeue, cancel: fire and forget).
/// False if it had none.
fn release_all_channels(cx: &Cx, conn: &Conn) -> bool {
    let channels: Vec<_> = conn
        .state
        .borrow_mut()
        .channels
        .drain()
        .map(|(_, c)| c)
        .collect();
    let any = !channels.is_empty();
    for mut c in channels {
        conn.release_channel(cx, &mut c);
    }
    any
}

fn cleanup(cx: &Cx, conn: &Rc<Conn>) {
    release_all_channels(cx, conn);
    if conn.open.get() {
        cx.conns.counters.borrow_mut().connections_closed += 1;
    }
    cx.conns.conns.borrow_mut().remove(&conn.id);
    // Exclusive queues die with their connection.
    let owns_exclusive = cx
        .table()
        .queues
        .values()
        .any(|q| q.exclusive_owner == Some(conn.id));
    if owns_exclusive {
        drop(cx.link.send_request(
            cx.authority(),
            crate::bus::Request::Meta(MetaOp::ConnectionClosed { owner: conn.id }),
        ));
    }
}

/// connection.close from the client: release every channel (requeue its
/// unacked deliveries, cancel its consumers) and wait until each shard has
/// handled that, before close-ok. RabbitMQ's channels likewise notify their
/// queues synchronously before the close completes, so a client that has
/// seen close-ok finds the messages back in their queues (a purge or
/// `queue.delete if-empty` from another connection sees them). The wait is
/// a request to each shard queued behind the releases (mailboxes are FIFO
/// per pair of shards).
async fn release_channels_before_close_ok(cx: &Cx, conn: &Rc<Conn>) {
    if !release_all_channels(cx, conn) {
        return;
    }
    for s in 0..cx.shard_count() {
        let barrier = crate::bus::Request::QueueStats(crate::ids::QueueId(u64::MAX));
        let _ = cx.call(crate::ids::ShardId(s), barrier).await;
    }
}

/// What [`Session::on_buffered`] leaves the connection to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Read more bytes.
    More,
    /// The client closed the connection and close-ok is queued.
    CloseOk,
    /// Stop reading: framing is lost, the handshake was refused, or a
    /// close handshake finished.
    Stop,
    /// Close the socket without a reply after [`SILENT_CLOSE_DELAY`]
    /// (RabbitMQ's answer to a bad connection.start-ok other than a refused
    /// login, such as a mechanism it does not offer).
    SilentClose,
}

/// RabbitMQ's `SILENT_CLOSE_DELAY`: 3 s.
pub const SILENT_CLOSE_DELAY: Duration = Duration::from_secs(3);

/// The connection's protocol state machine after the protocol header:
/// handshake phase, negotiated frame size, and the close handshake. It
/// consumes frames from a byte buffer and answers by appending to
/// `Conn::out`, so it runs the same with a socket (`run`) or without one
/// (the `session` fuzz target feeds it bytes in process).
pub struct Session {
    phase: Phase,
    /// Until tune-ok, frames are limited to the spec's minimum (4096
    /// bytes, as RabbitMQ does before authentication), so an
    /// unauthenticated peer cannot make the broker buffer a large frame.
    frame_max: u32,
    /// After we sent connection.close: when to give up waiting for
    /// close-ok.
    close_deadline: Option<Instant>,
    /// A large body being received straight into its own buffer.
    direct: Option<DirectBody>,
}

impl Session {
    /// The protocol header was accepted: send connection.start.
    pub fn start(cx: &Cx, conn: &Conn) -> Session {
        conn.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
                version_major: 0,
                version_minor: 9,
                server_properties: server_properties(cx),
                mechanisms: super::auth::mechanisms(cx, conn).into(),
                locales: "en_US".into(),
            })),
        );
        Session {
            phase: Phase::StartOk,
            frame_max: codec::FRAME_MIN_SIZE,
            close_deadline: None,
            direct: None,
        }
    }

    /// Past the handshake (connection.open-ok sent, not closing).
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Running
    }

    /// Handle every complete frame in `buf` (a partial frame stays there),
    /// then emit the confirms they settled.
    pub async fn on_buffered(&mut self, cx: &Cx, conn: &Rc<Conn>, buf: &mut BytesMut) -> Progress {
        loop {
            let frame = match direct_body::step(&mut self.direct, buf, self.frame_max, |ch| {
                conn.body_left(ch)
            }) {
                Step::Again => continue,
                Step::NeedMore => break,
                Step::Body(ch, body) => Frame::Body(ch, body),
                Step::Error(e) => {
                    send_connection_close(conn, &e);
                    return Progress::Stop;
                }
                Step::Normal => match next_frame(buf, self.frame_max) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        // Framing is lost: close the connection, read no further.
                        send_connection_close(conn, &e);
                        return Progress::Stop;
                    }
                },
            };
            if self.phase == Phase::Closing || conn.server_closing.get() {
                if let Frame::Method(0, m) = &frame {
                    if matches!(
                        **m,
                        AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))
                            | AMQPClass::Connection(connection::AMQPMethod::Close(_))
                    ) {
                        return Progress::Stop;
                    }
                }
                continue;
            }
            match on_frame(cx, conn, &mut self.phase, &mut self.frame_max, frame).await {
                Ok(true) => {}
                Ok(false) => return Progress::CloseOk,
                Err((0, e))
                    if self.phase == Phase::StartOk && e.code == crate::error::COMMAND_INVALID =>
                {
                    // rabbit_reader's handshake_error: before login, an error
                    // other than a refused login (here a mechanism not
                    // offered) closes the socket without a reply, after a
                    // delay (no quick retries for a client probing).
                    tracing::info!(peer = %conn.peer, "closing connection: {e}");
                    return Progress::SilentClose;
                }
                Err((ch, e)) => {
                    if e.is_connection_error() || ch == 0 {
                        send_connection_close(conn, &e);
                        self.phase = Phase::Closing;
                        self.close_deadline = Some(Instant::now() + Duration::from_secs(3));
                        if matches!(
                            e.code,
                            crate::error::ACCESS_REFUSED | crate::error::NOT_ALLOWED
                        ) && ch == 0
                        {
                            // Handshake refusals: close right after the reply.
                            return Progress::Stop;
                        }
                    } else {
                        close_channel_with_error(cx, conn, ch, &e);
                    }
                }
            }
        }
        if let Some(e) = conn.flush_confirms() {
            conn.close_with_error(&e);
        }
        Progress::More
    }
}

/// Drive one client connection in process, without a socket: `input` is
/// everything the client sends after the 8-byte protocol header. Frames are
/// fed to the state machine in pieces of at most `chunk` bytes (as reads
/// would deliver them); the connection ends as if the socket closed (its
/// channels released, its exclusive queues deleted). Returns what the
/// broker wrote. Every await inside is bounded only by the node's own
/// tasks, so a call that never returns is a hang in the broker.
pub async fn run_in_process(cx: &Cx, input: &[u8], chunk: usize) -> Vec<u8> {
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
    let conn = Conn::new(cx.conns.new_conn_id(), peer, crate::net::Transport::Tcp);
    cx.conns.conns.borrow_mut().insert(conn.id, conn.clone());
    let mut session = Session::start(cx, &conn);
    let mut buf = BytesMut::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        if session.on_buffered(cx, &conn, &mut buf).await != Progress::More {
            break;
        }
    }
    conn.closed.set(true);
    cleanup(cx, &conn);
    let out = std::mem::take(&mut *conn.out.borrow_mut());
    out.into_contiguous()
}

async fn run(cx: &Cx, conn: &Rc<Conn>, stream: &SharedStream) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(READ_MIN);
    // Protocol header.
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        match check_protocol_header(&buf) {
            HeaderCheck::Ok => break,
            HeaderCheck::Bad => {
                // Spec 4.2.2: answer with the header we do support, then close.
                conn.out
                    .borrow_mut()
                    .extend_from_slice(codec::PROTOCOL_HEADER);
                conn.out_notify.notify();
                return Ok(());
            }
            HeaderCheck::NeedMore => {
                let left = deadline.saturating_duration_since(Instant::now());
                let n = match glommio::timer::timeout(left, async {
                    Ok(stream.read_into(&mut buf, 64).await)
                })
                .await
                {
                    Ok(r) => r?,
                    Err(_) => return Ok(()),
                };
                if n == 0 {
                    return Ok(());
                }
            }
        }
    }
    let _ = buf.split_to(8);
    let mut session = Session::start(cx, conn);
    loop {
        match session.on_buffered(cx, conn, &mut buf).await {
            Progress::More => {}
            Progress::CloseOk => {
                // Closed cleanly: close-ok is queued. Like RabbitMQ, let
                // the client close the socket first (a client that reads
                // close-ok and EOF together may report an error), and
                // force it shut only after a grace period.
                linger(conn, stream, &mut buf).await;
                return Ok(());
            }
            Progress::Stop => return Ok(()),
            Progress::SilentClose => {
                glommio::timer::sleep(SILENT_CLOSE_DELAY).await;
                return Ok(());
            }
        }
        // Fairness: one read batch per turn, so the drain and writer tasks
        // (deliveries) run between a busy publisher's batches. (I/O itself
        // is reaped at the executor's preemption tick: see shard::run.)
        futures_lite::future::yield_now().await;
        // Backpressure: stop reading while others cannot keep up.
        while cx.link.outbox.over_high_water() || conn.out_len() > OUT_HIGH_WATER {
            if conn.closed.get() {
                return Ok(());
            }
            if cx.link.outbox.over_high_water() {
                conn.flow_at.set(Some(Instant::now()));
            }
            let a = cx.link.outbox.drained.wait();
            let b = conn.written.wait();
            futures_lite::future::or(a, b).await;
        }
        // The memory alarm (RabbitMQ's high watermark) and the disk
        // free-space alarm: a connection that publishes is not read from
        // until they clear (what it sent stays
        // in the socket); the heartbeat check spares it meanwhile.
        // (Not while closing: the close-ok must still be read.)
        while cx.conns.reading_paused()
            && conn.published.get()
            && !conn.closed.get()
            && session.phase == Phase::Running
            && !conn.server_closing.get()
        {
            conn.read_paused.set(true);
            let a = cx.conns.alarm_cleared.wait();
            let b = conn.closed_notify.wait();
            futures_lite::future::or(a, b).await;
        }
        // Flow control (`queue::pressure`): it published to a queue whose
        // backlog outruns its consumers; wait until the queue catches up.
        // Never a connection that consumes itself (its acks must be read).
        while let Some(q) = conn.flow_hold.get() {
            if !cx.conns.in_flow(q)
                || conn.closed.get()
                || conn.consumes()
                || session.phase != Phase::Running
                || conn.server_closing.get()
            {
                conn.flow_hold.set(None);
                break;
            }
            conn.flow_at.set(Some(Instant::now()));
            conn.read_paused.set(true);
            let a = cx.conns.flow_cleared.wait();
            let b = conn.closed_notify.wait();
            futures_lite::future::or(a, b).await;
        }
        if conn.read_paused.replace(false) {
            conn.last_recv.set(Instant::now());
        }
        if conn.closed.get() {
            return Ok(());
        }
        // RabbitMQ's handshake timeout: from accept to connection.open-ok
        // (10 s); a peer that stalls before that is disconnected.
        let deadline = match (session.close_deadline, session.phase != Phase::Running) {
            (Some(d), true) => Some(d.min(deadline)),
            (Some(d), false) => Some(d),
            (None, true) => Some(deadline),
            (None, false) => None,
        };
        let n = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                match glommio::timer::timeout(left, async {
                    Ok(read(conn, stream, &mut buf, session.direct.as_mut()).await)
                })
                .await
                {
                    Ok(r) => r?,
                    Err(_) => return Ok(()),
                }
            }
            None => read(conn, stream, &mut buf, session.direct.as_mut()).await?,
        };
        conn.recv_oct.set(conn.recv_oct.get() + n as u64);
        // Once per read, not per frame: any bytes prove the peer alive.
        conn.last_recv.set(Instant::now());
        if n == 0 {
            return Ok(());
        }
    }
}

/// After close-ok: discard input until the client closes or 3 s pass.
async fn linger(conn: &Conn, stream: &SharedStream, buf: &mut BytesMut) {
    let _ = glommio::timer::timeout(Duration::from_secs(3), async {
        loop {
            buf.clear();
            match read(conn, stream, buf, None).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        Ok(())
    })
    .await;
}

/// Read more bytes, or return 0 as soon as the connection is marked closed
/// (dead peer, write failure): a silent peer must not pin the reader.
/// While a large body is received directly (`direct`), its payload goes
/// straight into the body's buffer, and the reads between its frames take
/// only the frame-end octet and the next header.
async fn read(
    conn: &Conn,
    stream: &SharedStream,
    buf: &mut BytesMut,
    direct: Option<&mut DirectBody>,
) -> std::io::Result<usize> {
    let closed = conn.closed_notify.wait();
    if conn.closed.get() {
        return Ok(0);
    }
    let closed = async {
        closed.await;
        Ok(0)
    };
    let buffered = buf.len();
    if let Some(d) = direct {
        match d.wanted(buffered) {
            Some(Want::Payload(body, n)) => {
                let r = futures_lite::future::or(stream.read_into(body, n), closed).await;
                if let Ok(n) = r {
                    d.received(n);
                }
                return r;
            }
            Some(Want::Header(n)) => {
                return futures_lite::future::or(stream.read_into(buf, n), closed).await;
            }
            None => {}
        }
    }
    let want = conn.read_size.get();
    let r = futures_lite::future::or(stream.read_into(buf, want), closed).await;
    if let Ok(n) = r {
        if n == want {
            conn.read_size.set((want * 2).min(READ_CHUNK));
        } else if n < want / 4 {
            conn.read_size.set((want / 2).max(READ_MIN));
        }
    }
    r
}

fn send_connection_close(conn: &Conn, e: &AmqpError) {
    tracing::info!(peer = %conn.peer, "closing connection: {e}");
    conn.send_method(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: e.code,
            reply_text: e.text.clone().into(),
            class_id: e.class_id,
            method_id: e.method_id,
        })),
    );
}

/// Close channel `ch` from the broker side with `e` (channel.close), releasing
/// what it holds (its unacked messages are requeued) at once.
pub fn close_channel_with_error(cx: &Cx, conn: &Conn, ch: u16, e: &AmqpError) {
    tracing::debug!(peer = %conn.peer, channel = ch, "closing channel: {e}");
    {
        let mut st = conn.state.borrow_mut();
        if let Some(c) = st.channels.get_mut(&ch) {
            let mut taken = std::mem::replace(c, super::Channel::new(ch));
            conn.release_channel(cx, &mut taken);
            c.closing = true;
        }
    }
    conn.send_method(
        ch,
        AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: e.code,
            reply_text: e.text.clone().into(),
            class_id: e.class_id,
            method_id: e.method_id,
        })),
    );
}

fn ids(m: &AMQPClass) -> (u16, u16) {
    (m.get_amqp_class_id(), m.get_amqp_method_id())
}

/// Handle one frame. Ok(false) means the connection closed cleanly.
async fn on_frame(
    cx: &Cx,
    conn: &Rc<Conn>,
    phase: &mut Phase,
    frame_max: &mut u32,
    frame: Frame,
) -> Result<bool, (u16, AmqpError)> {
    match frame {
        Frame::Heartbeat(0) => Ok(true),
        Frame::Heartbeat(ch) => Err((
            0,
            AmqpError::unexpected_frame(format!("heartbeat frame on non-zero channel {ch}")),
        )),
        Frame::Method(0, m) => {
            let (c, mid) = ids(&m);
            connection_method(cx, conn, phase, frame_max, *m)
                .await
                .map_err(|e| (0, e.on(c, mid)))
        }
        _ if *phase != Phase::Running => Err((
            0,
            AmqpError::unexpected_frame("frame received before the connection was opened"),
        )),
        Frame::Method(ch, m) => {
            let (c, mid) = ids(&m);
            handle_method(conn, cx, ch, *m)
                .await
                .map(|_| true)
                .map_err(|e| (ch, e.on(c, mid)))
        }
        Frame::Publish(ch, p) if ch != 0 => super::handlers::publish_fast(conn, cx, ch, p)
            .map(|_| true)
            .map_err(|e| (ch, e.on(60, 40))),
        Frame::Settle(ch, st) if ch != 0 => super::handlers::settle_fast(conn, cx, ch, st)
            .map(|_| true)
            .map_err(|e| (ch, e.on(60, 80))),
        Frame::Header {
            channel,
            class_id,
            body_size,
            props_raw,
            view,
            headers,
        } if channel != 0 => content_header(
            conn, cx, channel, class_id, body_size, props_raw, view, headers,
        )
        .map(|_| true)
        .map_err(|e| (channel, e.on(60, 40))),
        Frame::Body(ch, body) if ch != 0 => content_body(conn, cx, ch, body)
            .map(|_| true)
            .map_err(|e| (ch, e.on(60, 40))),
        _ => Err((0, AmqpError::unexpected_frame("content frame on channel 0"))),
    }
}

async fn connection_method(
    cx: &Cx,
    conn: &Rc<Conn>,
    phase: &mut Phase,
    frame_max: &mut u32,
    m: AMQPClass,
) -> AmqpResult<bool> {
    let cfg = &cx.link.config;
    let AMQPClass::Connection(m) = m else {
        return Err(AmqpError::command_invalid(
            "only connection methods are allowed on channel 0",
        ));
    };
    match (*phase, m) {
        (Phase::StartOk, connection::AMQPMethod::StartOk(s)) => {
            let (user, mechanism) =
                super::auth::authenticate(cx, conn, s.mechanism.as_str(), s.response.as_bytes())?;
            *conn.client_properties.borrow_mut() = s.client_properties.clone();
            let blocked_capable = match s.client_properties.inner().get("capabilities") {
                Some(AMQPValue::FieldTable(c)) => {
                    matches!(
                        c.inner().get("connection.blocked"),
                        Some(AMQPValue::Boolean(true))
                    )
                }
                _ => false,
            };
            {
                let mut st = conn.state.borrow_mut();
                st.user = user;
                st.auth_mechanism = mechanism.name();
                st.blocked_capable = blocked_capable;
            }

            conn.send_method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
                    channel_max: cfg.channel_max,
                    frame_max: cfg.frame_max,
                    heartbeat: cfg.heartbeat,
                })),
            );
            *phase = Phase::TuneOk;
            Ok(true)
        }
        (Phase::TuneOk, connection::AMQPMethod::TuneOk(t)) => {
            let fm = if t.frame_max == 0 {
                cfg.frame_max
            } else {
                t.frame_max
            };
            if fm < codec::FRAME_MIN_SIZE || fm > cfg.frame_max {
                return Err(AmqpError::not_allowed(format!(
                    "negotiated frame_max = {fm} is outside {}..{}",
                    codec::FRAME_MIN_SIZE,
                    cfg.frame_max
                )));
            }
            *frame_max = fm;
            conn.frame_max.set(fm);
            let cm = if t.channel_max == 0 {
                cfg.channel_max
            } else {
                t.channel_max.min(cfg.channel_max)
            };
            conn.state.borrow_mut().channel_max = cm;
            if t.heartbeat > 0 {
                glommio::spawn_local(super::io::heartbeat_task(
                    conn.clone(),
                    Duration::from_secs(t.heartbeat as u64),
                ))
                .detach();
            }
            *phase = Phase::Open;
            Ok(true)
        }
        (Phase::Open, connection::AMQPMethod::Open(o)) => {
            let vhost = o.virtual_host.to_string();
            let user = conn.state.borrow().user.clone();
            {
                let t = cx.table();
                if !t.vhosts.contains(&vhost) {
                    return Err(AmqpError::not_allowed(format!("vhost {vhost} not found")));
                }
                if !t.has_vhost_access(&user, &vhost) {
                    return Err(AmqpError::not_allowed(format!(
                        "access to vhost '{vhost}' refused for user '{user}'"
                    )));
                }
            }
            conn.state.borrow_mut().vhost = vhost.clone();
            super::limits::admit_connection(cx, conn, &vhost, &user).await?;
            conn.send_method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
            );
            *phase = Phase::Running;
            conn.open.set(true);
            cx.conns.counters.borrow_mut().connections_opened += 1;
            Ok(true)
        }
        (_, connection::AMQPMethod::Close(_)) => {
            release_channels_before_close_ok(cx, conn).await;
            conn.send_method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
            );
            Ok(false)
        }
        (_, connection::AMQPMethod::CloseOk(_)) => Ok(false),
        (
            Phase::Running,
            connection::AMQPMethod::Blocked(_) | connection::AMQPMethod::Unblocked(_),
        ) => Ok(true),
        (Phase::Running, connection::AMQPMethod::UpdateSecret(_)) => {
            conn.send_method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::UpdateSecretOk(
                    connection::UpdateSecretOk {},
                )),
            );
            Ok(true)
        }
        (p, m) => Err(AmqpError::command_invalid(format!(
            "connection method {m:?} not expected in state {p:?}"
        ))),
    }
}

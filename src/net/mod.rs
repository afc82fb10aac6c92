//! Network: the SO_REUSEPORT listener, socket reads into zero-copy buffers,
//! the per-connection writer, and heartbeats.
//!
//! Owns: sockets. Every shard binds the same port with SO_REUSEPORT
//! (glommio's `TcpListener::bind` sets it), so the kernel spreads accepted
//! connections across shards with no shared accept queue or lock.
//! Must never: block the executor, or write from two tasks at once (only the
//! writer task writes; everyone else appends to `Conn::out`).

use crate::channel::{connection, Conn};
use crate::mailbox::ShardMsg;
use crate::shard::Shard;
use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::{TcpListener, TcpStream};
use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// One socket used by a reader task and a writer task. The `RefCell` is
/// only borrowed inside a single `poll_*` call, never across an `.await`.
#[derive(Clone)]
pub struct SharedStream(Rc<RefCell<TcpStream>>);

impl SharedStream {
    pub fn new(s: TcpStream) -> Self {
        SharedStream(Rc::new(RefCell::new(s)))
    }

    /// Read up to `max` more bytes onto the end of `buf`.
    pub async fn read_into(&self, buf: &mut BytesMut, max: usize) -> std::io::Result<usize> {
        let start = buf.len();
        buf.resize(start + max, 0);
        let r = futures_lite::future::poll_fn(|cx| {
            let mut s = self.0.borrow_mut();
            Pin::new(&mut *s).poll_read(cx, &mut buf[start..])
        })
        .await;
        let n = *r.as_ref().unwrap_or(&0);
        buf.truncate(start + n);
        r
    }

    pub async fn write_all(&self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let n = futures_lite::future::poll_fn(|cx| {
                let mut s = self.0.borrow_mut();
                Pin::new(&mut *s).poll_write(cx, data)
            })
            .await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            data = &data[n..];
        }
        Ok(())
    }

    /// Half-close: the peer reads EOF after what was written, and may
    /// still send (see `mgmt::linger`).
    pub fn shutdown_write(&self) {
        use std::os::fd::AsRawFd;
        let fd = self.0.borrow().as_raw_fd();
        let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Write);
    }

    pub async fn shutdown(&self) {
        let r = futures_lite::future::poll_fn(|cx| {
            let mut s = self.0.borrow_mut();
            Pin::new(&mut *s).poll_close(cx)
        })
        .await;
        let _ = r;
    }
}

/// Accept connections on this shard's SO_REUSEPORT listener forever.
pub async fn accept_loop(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let peer = match stream.peer_addr() {
                    Ok(p) => p,
                    Err(_) => continue,
                };
                let sh = shard.clone();
                glommio::spawn_local(connection::serve(sh, SharedStream::new(stream), peer))
                    .detach();
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Flush `Conn::out` to the socket: one write for everything appended since
/// the last one (replies, deliveries, confirms), then return delivery credit
/// to the queues whose messages were in it.
pub async fn writer_task(shard: Rc<Shard>, conn: Rc<Conn>, stream: SharedStream) {
    // Grows with use; an idle connection keeps no large buffer around.
    let mut spare: Vec<u8> = Vec::new();
    loop {
        let wait = conn.out_notify.wait();
        let has_data = !conn.out.borrow().is_empty();
        if !has_data {
            if conn.closed.get() {
                break;
            }
            wait.await;
            continue;
        }
        std::mem::swap(&mut spare, &mut *conn.out.borrow_mut());
        let credits = std::mem::take(&mut *conn.credits.borrow_mut());
        let r = stream.write_all(&spare).await;
        conn.send_oct.set(conn.send_oct.get() + spare.len() as u64);
        conn.last_sent.set(Instant::now());
        // Keep a modest buffer around; drop a huge one.
        spare.clear();
        if spare.capacity() > 4 * 1024 * 1024 {
            spare = Vec::new();
        }
        for (home, queue, consumer, n) in credits {
            shard
                .outbox
                .push(home, ShardMsg::Credit { queue, consumer, n });
        }
        conn.written.notify();
        if r.is_err() {
            conn.closed.set(true);
            conn.closed_notify.notify();
            break;
        }
    }
    // Whatever is still owed goes back so queues do not stall.
    for (home, queue, consumer, n) in std::mem::take(&mut *conn.credits.borrow_mut()) {
        shard
            .outbox
            .push(home, ShardMsg::Credit { queue, consumer, n });
    }
    conn.written.notify();
    stream.shutdown().await;
}

/// Send heartbeats when idle and drop a peer silent for two intervals.
pub async fn heartbeat_task(conn: Rc<Conn>, interval: Duration) {
    let tick = (interval / 2).max(Duration::from_millis(200));
    loop {
        glommio::timer::sleep(tick).await;
        if conn.closed.get() {
            return;
        }
        if conn.last_recv.get().elapsed() > interval * 2 {
            tracing::info!(peer = %conn.peer, "missed heartbeats from client, closing");
            conn.closed.set(true);
            conn.out_notify.notify();
            conn.closed_notify.notify();
            return;
        }
        if conn.last_sent.get().elapsed() >= tick {
            crate::codec::write_heartbeat(&mut conn.out.borrow_mut());
            conn.out_notify.notify();
        }
    }
}

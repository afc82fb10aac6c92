//! The connection's socket tasks: the writer (one write per batch of
//! replies, deliveries and confirms, then delivery credit back to the
//! queues) and the heartbeat.
//!
//! Must never: hold a `RefCell` borrow across an `.await`, or write one
//! syscall per delivery.

use super::{Conn, Cx};
use crate::bus::ShardMsg;
use crate::net::SharedStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Flush `Conn::out` to the socket: one write for everything appended since
/// the last one (replies, deliveries, confirms), then return delivery credit
/// to the queues whose messages were in it.
pub async fn writer_task(cx: Cx, conn: Rc<Conn>, stream: SharedStream) {
    // Grows with use; an idle connection keeps no large buffer around.
    let mut spare = crate::codec::out::OutBuf::default();
    loop {
        let wait = conn.out_notify.wait();
        let has_data = !conn.out.borrow().is_idle();
        if !has_data {
            if conn.closed.get() {
                break;
            }
            wait.await;
            continue;
        }
        std::mem::swap(&mut spare, &mut *conn.out.borrow_mut());
        let credits = std::mem::take(&mut *conn.credits.borrow_mut());
        // Large bodies were spliced, not copied: one vectored write sends
        // them with the frames around them.
        let r = if spare.has_splices() {
            stream.write_pieces(&spare.pieces()).await
        } else {
            stream.write_all(&spare).await
        };
        let written = spare.total_len();
        let encoded = spare.len();
        conn.send_oct.set(conn.send_oct.get() + written as u64);
        conn.last_sent.set(Instant::now());
        // Keep the buffer while writes fill a good part of it; drop a large
        // one once writes are small. Why: dropping every buffer over 4 MiB
        // made a busy consumer of large messages regrow its buffer by
        // doubling after every write, each time on fresh pages, and under
        // a backlog the shards spent ~90% of their time zeroing them (s2b's
        // bad runs, PERF.md). A connection that goes quiet still gives a
        // large buffer back after one small write.
        spare.clear();
        if spare.capacity() > 4 * 1024 * 1024 && encoded < spare.capacity() / 4 {
            spare.release();
        }
        for super::CreditRec { to, n, bytes } in credits {
            let (home, queue, consumer) = (to.home, to.queue, to.consumer);
            let credit = ShardMsg::Credit {
                queue,
                consumer,
                n,
                bytes,
            };
            cx.link.outbox.push(home, credit);
        }
        conn.written.notify();
        if r.is_err() {
            conn.closed.set(true);
            conn.closed_notify.notify();
            break;
        }
    }
    // Whatever is still owed goes back so queues do not stall.
    for super::CreditRec { to, n, bytes } in std::mem::take(&mut *conn.credits.borrow_mut()) {
        let (home, queue, consumer) = (to.home, to.queue, to.consumer);
        let credit = ShardMsg::Credit {
            queue,
            consumer,
            n,
            bytes,
        };
        cx.link.outbox.push(home, credit);
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
        if conn.read_paused.get() {
            conn.last_recv.set(std::time::Instant::now());
        } else if conn.last_recv.get().elapsed() > interval * 2 {
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

//! Network: the socket a connection's reader and writer share.
//!
//! A leaf socket layer: it knows bytes, not AMQP. Owns: [`SharedStream`]
//! (reads into zero-copy buffers, whole writes, shutdown). Accepting and
//! spawning connections belong to the shard's boot code (`shard::run`);
//! the writer and heartbeat tasks to the channel layer (`channel::io`).
//! Must never: block the executor, or be written from two tasks at once
//! (only the writer task writes; everyone else appends to `Conn::out`).

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;

/// One socket used by a reader task and a writer task. The `RefCell` is
/// only borrowed inside a single `poll_*` call, never across an `.await`.
#[derive(Clone)]
pub struct SharedStream(Rc<RefCell<TcpStream>>);

impl SharedStream {
    /// Wrap an accepted socket; clone the result for the reader and writer tasks.
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

    /// Write all of `data`, looping over partial writes; a zero-length write is
    /// `WriteZero`. On an AMQP connection only the writer task calls it (one
    /// call per batch); the management HTTP server writes responses with it.
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

    /// Close our sending side through glommio's `poll_close` (a write shutdown;
    /// errors ignored). The descriptor is closed when the last clone is dropped.
    pub async fn shutdown(&self) {
        let r = futures_lite::future::poll_fn(|cx| {
            let mut s = self.0.borrow_mut();
            Pin::new(&mut *s).poll_close(cx)
        })
        .await;
        let _ = r;
    }
}

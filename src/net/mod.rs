//! Network: the socket a connection's reader and writer share.
//!
//! A leaf socket layer: it knows bytes, not AMQP. Owns: [`SharedStream`]
//! (reads into zero-copy buffers, whole writes, shutdown), over plain TCP,
//! TLS ([`tls`]) or a Unix socket. Accepting and spawning connections
//! belong to the shard's listeners (`shard::listen`);
//! the writer and heartbeat tasks to the channel layer (`channel::io`).
//! Must never: block the executor, or be written from two tasks at once
//! (only the writer task writes; everyone else appends to `Conn::out`).

pub mod tls;

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::cell::RefCell;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// What a TCP read that had to wait takes at most (bytes): the wait goes
/// through glommio's own read, which needs an initialised buffer.
const WAIT_WINDOW: usize = 4096;

/// How long a closing connection may take to hand its last bytes (TLS's
/// close_notify) to a peer before its socket is shut regardless.
pub const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The transport under a connection.
pub enum Stream {
    /// Plain TCP: reads land in the connection's buffer, writes go out as is.
    Tcp(TcpStream),
    /// TLS over TCP (boxed: rustls's state is large, and plain connections
    /// should not pay for it).
    Tls(Box<futures_rustls::server::TlsStream<TcpStream>>),
    /// A Unix domain socket (`unix_socket`): as plain TCP, without the
    /// loopback network stack.
    Unix(glommio::net::UnixStream),
}

/// How a connection reached the broker (for listings, names and EXTERNAL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP on the AMQP port.
    Tcp,
    /// TLS on the AMQPS port, with what its handshake settled.
    Tls(tls::TlsInfo),
    /// The Unix domain socket listener.
    Unix,
}

impl Transport {
    /// The TLS session, if any.
    pub fn tls(&self) -> Option<&tls::TlsInfo> {
        match self {
            Transport::Tls(t) => Some(t),
            _ => None,
        }
    }
}

impl Stream {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        match self {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self {
            // glommio's socket writes are not buffered: nothing to flush.
            Stream::Tcp(_) | Stream::Unix(_) => Poll::Ready(Ok(())),
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self {
            Stream::Tcp(s) => Pin::new(s).poll_close(cx),
            // Sends close_notify, then shuts the socket's sending side.
            Stream::Tls(s) => Pin::new(&mut **s).poll_close(cx),
            Stream::Unix(s) => Pin::new(s).poll_close(cx),
        }
    }

    /// The TCP socket's descriptor (glommio does not expose a Unix
    /// stream's).
    fn tcp_fd(&self) -> Option<RawFd> {
        match self {
            Stream::Tcp(s) => Some(s.as_raw_fd()),
            Stream::Tls(s) => Some(s.get_ref().0.as_raw_fd()),
            Stream::Unix(_) => None,
        }
    }
}

/// A non-blocking `recv` of up to `max` bytes into `buf`'s spare capacity
/// (reserved first, not zero-filled). `None`: nothing to read yet.
fn recv_spare(fd: RawFd, buf: &mut BytesMut, max: usize) -> Option<std::io::Result<usize>> {
    buf.reserve(max);
    let spare = buf.spare_capacity_mut();
    let len = max.min(spare.len());
    // SAFETY: `spare` is valid for writes of `len` bytes and recv writes at
    // most `len`; `set_len` then covers exactly the bytes it wrote.
    let r = unsafe { nix::libc::recv(fd, spare.as_mut_ptr().cast(), len, nix::libc::MSG_DONTWAIT) };
    if r >= 0 {
        unsafe { buf.set_len(buf.len() + r as usize) };
        return Some(Ok(r as usize));
    }
    let e = std::io::Error::last_os_error();
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => None,
        _ => Some(Err(e)),
    }
}

/// One socket used by a reader task and a writer task. The `RefCell` is
/// only borrowed inside a single `poll_*` call, never across an `.await`.
#[derive(Clone)]
pub struct SharedStream(Rc<RefCell<Stream>>);

impl SharedStream {
    /// Wrap an accepted plain socket; clone the result for the reader and
    /// writer tasks.
    pub fn new(s: TcpStream) -> Self {
        Self::from_stream(Stream::Tcp(s))
    }

    /// Wrap any transport (TLS streams come from [`tls::accept`]).
    pub fn from_stream(s: Stream) -> Self {
        SharedStream(Rc::new(RefCell::new(s)))
    }

    /// The socket's descriptor when it is plain TCP (not TLS, not Unix):
    /// the transport the direct `recv` and vectored `sendmsg` paths use.
    fn plain_tcp_fd(&self) -> Option<RawFd> {
        match &*self.0.borrow() {
            Stream::Tcp(s) => Some(s.as_raw_fd()),
            _ => None,
        }
    }

    /// Read up to `max` more bytes onto the end of `buf`.
    ///
    /// Over plain TCP the bytes land in `buf`'s spare capacity straight
    /// from a non-blocking `recv`, without zero-filling it first (a
    /// 128 KiB read used to memset 128 KiB: 5% of the broker's time with
    /// 1 MiB bodies, PERF.md "Large bodies"). Only when the socket has
    /// nothing yet does the read wait through glommio, into a small
    /// zero-filled window; the next read takes the rest directly.
    pub async fn read_into(&self, buf: &mut BytesMut, max: usize) -> std::io::Result<usize> {
        let Some(fd) = self.plain_tcp_fd() else {
            return self.read_waiting(buf, max).await;
        };
        if let Some(r) = recv_spare(fd, buf, max) {
            return r;
        }
        let n = self.read_waiting(buf, max.min(WAIT_WINDOW)).await?;
        if n == WAIT_WINDOW && max > n {
            // More may have come with it: take that too, as one read.
            if let Some(Ok(more)) = recv_spare(fd, buf, max - n) {
                return Ok(n + more);
            }
        }
        Ok(n)
    }

    /// glommio's read (it waits for the socket), into `max` zero-filled
    /// bytes appended to `buf`.
    async fn read_waiting(&self, buf: &mut BytesMut, max: usize) -> std::io::Result<usize> {
        let start = buf.len();
        buf.resize(start + max, 0);
        let r = futures_lite::future::poll_fn(|cx| {
            self.0.borrow_mut().poll_read(cx, &mut buf[start..])
        })
        .await;
        let n = *r.as_ref().unwrap_or(&0);
        buf.truncate(start + n);
        r
    }

    /// Write all of `data`, looping over partial writes; a zero-length write is
    /// `WriteZero`. On an AMQP connection only the writer task calls it (one
    /// call per batch); the management HTTP server writes responses with it.
    /// Over TLS the batch is then flushed: rustls holds encrypted records
    /// until told to send them.
    pub async fn write_all(&self, data: &[u8]) -> std::io::Result<()> {
        self.write_unflushed(data).await?;
        futures_lite::future::poll_fn(|cx| self.0.borrow_mut().poll_flush(cx)).await
    }

    /// Write `pieces` in order, all of them. Over plain TCP one vectored
    /// `sendmsg` takes many pieces at once (at most 1,024 a call), so
    /// spliced message bodies reach the kernel without being copied into
    /// one buffer first; when the socket is full, glommio's own write path
    /// waits for room (and sends part of the current piece). Over TLS and
    /// the Unix socket the pieces are joined and written at once (TLS copies
    /// into its records anyway, and a write per piece would make a record
    /// per piece).
    pub async fn write_pieces(&self, pieces: &[&[u8]]) -> std::io::Result<()> {
        use nix::sys::socket::{sendmsg, MsgFlags};
        let (mut i, mut off) = (0, 0);
        while i < pieces.len() {
            let Some(fd) = self.plain_tcp_fd() else {
                // TLS makes a record of every write (and copies into it
                // anyway), the Unix socket a syscall: join once, write once.
                let mut joined = pieces[i][off..].to_vec();
                pieces[i + 1..]
                    .iter()
                    .for_each(|p| joined.extend_from_slice(p));
                self.write_unflushed(&joined).await?;
                break;
            };
            let iov: Vec<std::io::IoSlice> = std::iter::once(&pieces[i][off..])
                .chain(pieces[i + 1..].iter().copied())
                .take(1024)
                .map(std::io::IoSlice::new)
                .collect();
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            let sent = match sendmsg::<()>(fd, &iov, &[], flags, None) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => {
                    // Full: wait for room through glommio, writing what fits.
                    let piece = &pieces[i][off..];
                    futures_lite::future::poll_fn(|cx| self.0.borrow_mut().poll_write(cx, piece))
                        .await?
                }
                Err(e) => return Err(e.into()),
            };
            if sent == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            // Advance over what was sent.
            let mut left = sent;
            while left > 0 && i < pieces.len() {
                let here = pieces[i].len() - off;
                if left >= here {
                    left -= here;
                    i += 1;
                    off = 0;
                } else {
                    off += left;
                    left = 0;
                }
            }
            while i < pieces.len() && pieces[i].len() == off {
                i += 1;
                off = 0;
            }
        }
        futures_lite::future::poll_fn(|cx| self.0.borrow_mut().poll_flush(cx)).await
    }

    /// Write all of `data` without flushing.
    async fn write_unflushed(&self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let n = futures_lite::future::poll_fn(|cx| self.0.borrow_mut().poll_write(cx, data))
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
        if let Some(fd) = self.0.borrow().tcp_fd() {
            let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Write);
        }
    }

    /// Close our sending side through glommio's `poll_close` (a write shutdown;
    /// errors ignored). Over TLS that first sends close_notify, which a peer
    /// that stopped reading never takes: after [`CLOSE_GRACE`] the socket's
    /// sending side is shut without it, so the connection's cleanup never
    /// waits on the peer. The descriptor is closed when the last clone is
    /// dropped.
    pub async fn shutdown(&self) {
        let closed = futures_lite::future::or(
            async {
                let _ =
                    futures_lite::future::poll_fn(|cx| self.0.borrow_mut().poll_close(cx)).await;
                true
            },
            async {
                glommio::timer::sleep(CLOSE_GRACE).await;
                false
            },
        )
        .await;
        if !closed {
            self.shutdown_write();
        }
    }
}

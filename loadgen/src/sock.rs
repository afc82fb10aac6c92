//! A connection's socket: plain TCP, a Unix socket, or TLS over TCP.
//!
//! Publishers read on one thread and write on another (`try_clone`). A
//! plain socket is simply duplicated; a TLS session cannot be, so both
//! halves share it behind a mutex over a non-blocking socket: each takes
//! the lock only to move bytes that are ready and waits for the socket
//! (poll) *without* it, so neither half can stall the other (a writer
//! blocked on a full socket must not keep the reader from the confirms
//! that would let the broker read again).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// The CA (or self-signed certificate) file for `amqps://` targets.
pub fn tls_config(cacert: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(cacert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cacert.display()))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{}: no usable certificate", cacert.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// One TLS session shared by a connection's reader and writer halves.
pub struct SharedTls {
    stream: Arc<Mutex<TlsStream>>,
    fd: i32,
    read_timeout: Option<Duration>,
    nonblocking: bool,
}

impl SharedTls {
    fn lock(&self) -> MutexGuard<'_, TlsStream> {
        self.stream.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait until the socket has bytes (or the read timeout passes).
    fn wait_readable(&self) -> io::Result<()> {
        let ms = if self.nonblocking {
            0
        } else {
            self.read_timeout
                .map(|d| d.as_millis().clamp(1, i32::MAX as u128) as i32)
                .unwrap_or(-1)
        };
        self.wait(libc::POLLIN, ms)
    }

    /// Send every encrypted record rustls holds, waiting for room in the
    /// socket without the lock.
    fn push_records(&self) -> io::Result<()> {
        loop {
            {
                let mut guard = self.lock();
                let s = &mut *guard;
                while s.conn.wants_write() {
                    match s.conn.write_tls(&mut s.sock) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                if !s.conn.wants_write() {
                    return Ok(());
                }
            }
            self.wait(libc::POLLOUT, -1)?;
        }
    }

    fn wait(&self, events: i16, ms: i32) -> io::Result<()> {
        let mut p = libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, owned by this frame.
        match unsafe { libc::poll(&mut p, 1, ms) } {
            n if n < 0 => Err(io::Error::last_os_error()),
            0 => Err(io::ErrorKind::WouldBlock.into()),
            _ => Ok(()),
        }
    }
}

impl Read for SharedTls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // Plaintext already decrypted (or the peer closed): no socket
            // read needed. (Mid-handshake rustls may first need to send.)
            let ready = {
                let mut s = self.lock();
                (!s.conn.wants_read()).then(|| s.conn.reader().read(buf))
            };
            match ready {
                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.push_records()?;
                    continue;
                }
                Some(r) => return r,
                None => {}
            }
            self.wait_readable()?;
            let got = {
                let mut guard = self.lock();
                let s = &mut *guard;
                match s.conn.read_tls(&mut s.sock) {
                    Ok(0) => return Ok(0),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
                s.conn
                    .process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                s.conn.reader().read(buf)
            };
            // Answer what the records asked for (handshake, key updates).
            self.push_records()?;
            match got {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r,
            }
        }
    }
}

impl Write for SharedTls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.lock().conn.writer().write(buf)?;
        self.push_records()?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.lock().conn.writer().flush()?;
        self.push_records()
    }
}

/// A connection's socket.
pub enum Sock {
    Plain(TcpStream),
    Unix(std::os::unix::net::UnixStream),
    Tls(SharedTls),
}

impl Sock {
    /// TLS over `tcp` (made non-blocking: waits are polls): the handshake
    /// runs on the first read or write.
    pub fn tls(conn: rustls::ClientConnection, tcp: TcpStream) -> io::Result<Sock> {
        let fd = tcp.as_raw_fd();
        let read_timeout = tcp.read_timeout().ok().flatten();
        tcp.set_nonblocking(true)?;
        Ok(Sock::Tls(SharedTls {
            stream: Arc::new(Mutex::new(rustls::StreamOwned::new(conn, tcp))),
            fd,
            read_timeout,
            nonblocking: false,
        }))
    }

    pub fn set_read_timeout(&mut self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Sock::Plain(s) => s.set_read_timeout(d),
            Sock::Unix(s) => s.set_read_timeout(d),
            Sock::Tls(s) => {
                s.read_timeout = d;
                Ok(())
            }
        }
    }

    pub fn set_nonblocking(&mut self, on: bool) -> io::Result<()> {
        match self {
            Sock::Plain(s) => s.set_nonblocking(on),
            Sock::Unix(s) => s.set_nonblocking(on),
            // The TLS socket is always non-blocking; this sets how long a
            // read waits.
            Sock::Tls(s) => {
                s.nonblocking = on;
                Ok(())
            }
        }
    }

    /// A second handle for another thread (reader and writer halves).
    pub fn try_clone(&self) -> io::Result<Sock> {
        Ok(match self {
            Sock::Plain(s) => Sock::Plain(s.try_clone()?),
            Sock::Unix(s) => Sock::Unix(s.try_clone()?),
            Sock::Tls(s) => Sock::Tls(SharedTls {
                stream: s.stream.clone(),
                fd: s.fd,
                read_timeout: s.read_timeout,
                nonblocking: s.nonblocking,
            }),
        })
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Plain(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
            Sock::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Plain(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
            Sock::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sock::Plain(s) => s.flush(),
            Sock::Unix(s) => s.flush(),
            Sock::Tls(s) => s.flush(),
        }
    }
}

//! Listeners: accepting AMQP connections on this shard over TCP
//! (SO_REUSEPORT), TLS, and (shard 0) the Unix domain socket, and handing
//! each to a connection task. Never blocks: accepts and handshakes are
//! tasks of their own.

use crate::bus::ShardMsg;
use crate::channel::Cx;
use crate::ids::ShardId;
use crate::net::SharedStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Accept on a TCP listener forever and hand each socket (no Nagle) with
/// its peer address to `serve`; a failed accept is logged and retried
/// after 10 ms (running out of descriptors must not spin the shard).
async fn accept_tcp(
    listener: glommio::net::TcpListener,
    what: &str,
    mut serve: impl FnMut(glommio::net::TcpStream, std::net::SocketAddr),
) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                if let Ok(peer) = stream.peer_addr() {
                    serve(stream, peer);
                }
            }
            Err(e) => {
                tracing::warn!("{what} accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Accept connections on this shard's SO_REUSEPORT listener forever, one
/// task per connection. Every shard binds the same port with SO_REUSEPORT
/// (glommio's `TcpListener::bind` sets it), so the kernel spreads accepted
/// connections across shards with no shared accept queue or lock.
pub(super) async fn accept_loop(cx: Cx, listener: glommio::net::TcpListener) {
    accept_tcp(listener, "amqp", |stream, peer| {
        glommio::spawn_local(crate::channel::connection::serve(
            cx.clone(),
            SharedStream::new(stream),
            peer,
            crate::net::Transport::Tcp,
        ))
        .detach();
    })
    .await
}

/// Accept AMQPS connections on this shard's SO_REUSEPORT TLS listener, as
/// [`accept_loop`] does for plain ones: the TLS handshake runs in the
/// connection's own task (a slow client holds nobody else up), bounded by
/// the AMQP handshake timeout, then the connection is served as any other.
pub(super) async fn accept_tls_loop(
    cx: Cx,
    listener: glommio::net::TcpListener,
    acceptor: futures_rustls::TlsAcceptor,
) {
    accept_tcp(listener, "amqps", |stream, peer| {
        let (cx, acceptor) = (cx.clone(), acceptor.clone());
        glommio::spawn_local(async move {
            let timeout = crate::channel::connection::HANDSHAKE_TIMEOUT;
            match crate::net::tls::accept(&acceptor, stream, timeout).await {
                Ok((s, info)) => {
                    let transport = crate::net::Transport::Tls(info);
                    crate::channel::connection::serve(cx, s, peer, transport).await
                }
                Err(e) => tracing::info!(%peer, "TLS handshake failed: {e}"),
            }
        })
        .detach();
    })
    .await
}

/// Bind the Unix socket listener at `path` with file mode `mode`. A socket
/// file left by a broker that is gone (connecting is refused) is replaced;
/// one a process accepts on, or cannot be probed, is an error, as is any
/// other file at that path. The socket is bound under a temporary name,
/// given its mode, then renamed into place, so it is never reachable with
/// a looser mode than configured.
pub(super) fn bind_unix(
    path: &std::path::Path,
    mode: u32,
) -> Result<glommio::net::UnixListener, String> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let shown = path.display();
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(format!("unix_socket {shown}: exists and is not a socket"));
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Ok(_) => {
                return Err(format!(
                    "unix_socket {shown}: another process listens on it"
                ))
            }
            Err(e) => {
                return Err(format!(
                    "unix_socket {shown}: cannot tell whether it is in use: {e}"
                ))
            }
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let l = glommio::net::UnixListener::bind(&tmp)
        .map_err(|e| format!("cannot listen on unix socket {shown}: {e}"))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("unix_socket {shown}: {e}"));
    }
    Ok(l)
}

/// Accept on the Unix socket (shard 0 only: a Unix listener cannot be
/// shared with SO_REUSEPORT) and deal the connections out round-robin: the
/// n-th goes to shard n mod the shard count through the urgent lane
/// (`ShardMsg::AdoptUnix`), so Unix clients spread over the cores as TCP
/// clients do.
pub(super) async fn accept_unix_loop(
    cx: Cx,
    listener: glommio::net::UnixListener,
    started: Arc<AtomicBool>,
) {
    // Until every shard listens, early clients wait in the backlog rather
    // than on a shard that is still recovering.
    while !started.load(Ordering::Acquire) {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    let mut next = 0usize;
    loop {
        match listener.shared_accept().await {
            Ok(accepted) => {
                let to = ShardId(next % cx.shard_count());
                next = next.wrapping_add(1);
                if to == cx.link.id {
                    serve_unix(cx.clone(), accepted.bind_to_executor());
                } else {
                    cx.link.outbox.push(
                        to,
                        ShardMsg::AdoptUnix(crate::bus::UnixConnection(accepted)),
                    );
                }
            }
            Err(e) => {
                tracing::warn!("unix socket accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serve a Unix socket connection on this shard. It has no peer address:
/// it is local, so it counts as loopback (the `guest` user may use it).
pub(super) fn serve_unix(cx: Cx, stream: glommio::net::UnixStream) {
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let stream = SharedStream::from_stream(crate::net::Stream::Unix(stream));
    glommio::spawn_local(crate::channel::connection::serve(
        cx,
        stream,
        peer,
        crate::net::Transport::Unix,
    ))
    .detach();
}

//! The management listener's HTTP/1.1 server: hyper (`http1`) on
//! glommio sockets, and the conversion between hyper's types and the
//! plain [`Request`]/[`Response`] the routes work with.
//!
//! Why hyper on shard 0 rather than a separate thread: HTTP parsing is not
//! Warren's core, so a well-kept library does it (the brief's rule), while
//! the answers need shard 0's metadata table and its mailboxes to every
//! other shard, which live on shard 0's executor. hyper's HTTP/1 server
//! needs no executor of its own and accepts `!Send` futures, so it runs as
//! ordinary glommio tasks; `smol-hyper` adapts glommio's `futures-io`
//! sockets to hyper's I/O traits. Management requests are rare and small
//! next to the data path; the shard's own tasks are never waited on.
//!
//! Bounds on what a peer can make the listener hold (no credentials are
//! needed to reach them): the request head ([`MAX_HEADER`]: 431, then
//! close; hyper answers), the body ([`MAX_BODY`]: 413, then close), and
//! the time a connection may stay idle or take to send a request head
//! (`[management] idle_timeout_ms`): a watchdog drops the connection when
//! no request is being served and none has finished within that time.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// One management API request, read in full: what the routes see.
pub struct Request {
    /// HTTP method as sent (`GET`, `PUT`, ...); `HEAD` is routed as `GET`
    /// by the router and hyper then leaves the body out.
    pub method: String,
    /// Path, still percent-encoded (segments are decoded after splitting,
    /// so a vhost `%2F` stays one segment).
    pub path: String,
    /// Query parameters in order, decoded as form components (`+` is a
    /// space here, unlike in the path).
    pub query: Vec<(String, String)>,
    /// Basic-auth user name and password, if the header was present and
    /// well-formed.
    pub auth: Option<(String, String)>,
    /// Request headers: lower-case names, values as sent (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    /// Request body, at most [`MAX_BODY`] bytes.
    pub body: Vec<u8>,
}

impl Request {
    /// Build a request from its parts: `target` is the request target as
    /// sent (path and query, percent-encoded), `headers` lower-case names
    /// with their values. Pure, so the fuzz target reaches it directly.
    pub fn from_parts(
        method: &str,
        target: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Request {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let query = query
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (decode_query_component(k), decode_query_component(v)),
                None => (decode_query_component(kv), String::new()),
            })
            .collect();
        let auth = headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .and_then(|(_, v)| basic_auth(v.as_bytes()));
        Request {
            method: method.to_string(),
            path: path.to_string(),
            query,
            auth,
            headers,
            body,
        }
    }

    /// The value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// A route's answer: status, content type and body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// Body bytes (left out by hyper for `HEAD`).
    pub body: Vec<u8>,
    /// Extra headers (`Location`, `Allow`, ...).
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    /// A JSON body with `status`.
    pub fn json(status: u16, v: &serde_json::Value) -> Self {
        Response {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(v).unwrap_or_default(),
            headers: Vec::new(),
        }
    }
    /// A text body of `content_type` with `status`.
    pub fn text(status: u16, content_type: &'static str, body: String) -> Self {
        Response {
            status,
            content_type,
            body: body.into_bytes(),
            headers: Vec::new(),
        }
    }
    /// 204 No Content.
    pub fn no_content() -> Self {
        Response {
            status: 204,
            content_type: "application/json",
            body: Vec::new(),
            headers: Vec::new(),
        }
    }
    /// RabbitMQ's error object `{"error": error, "reason": reason}`.
    pub fn error(status: u16, error: &str, reason: impl Into<String>) -> Self {
        Self::json(
            status,
            &serde_json::json!({"error": error, "reason": reason.into()}),
        )
    }
    /// RabbitMQ's 404 for an object or route that does not exist.
    pub fn not_found() -> Self {
        Self::error(404, "Object Not Found", "Not Found")
    }
    /// The same response with one more header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// Decode one path segment (RFC 3986): only `%XX` escapes are decoded, a
/// `+` stays a plus (rabbit-hole's `url.PathEscape` keeps `+` literal, and
/// `DELETE /api/queues/%2F/orders+eu` must name the queue `orders+eu`).
/// Invalid UTF-8 after decoding is replaced (U+FFFD), never a panic.
pub fn decode_path_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Decode a query-string key or value (`application/x-www-form-urlencoded`):
/// `+` is a space, then `%XX` escapes.
pub fn decode_query_component(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn basic_auth(v: &[u8]) -> Option<(String, String)> {
    use base64::Engine;
    let s = std::str::from_utf8(v).ok()?;
    let enc = s
        .strip_prefix("Basic ")
        .or_else(|| s.strip_prefix("basic "))?;
    let dec = base64::engine::general_purpose::STANDARD
        .decode(enc.trim())
        .ok()?;
    let dec = String::from_utf8(dec).ok()?;
    let (u, p) = dec.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Largest request head (request line and headers), bytes; beyond it hyper
/// answers 431 and closes. At most 100 headers (hyper's default; more is
/// also a 431).
pub const MAX_HEADER: usize = 64 * 1024;
/// Largest request body (definitions import included), bytes; beyond it
/// the answer is 413 and the connection is closed.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// What the idle watchdog of one connection looks at.
struct Activity {
    /// Requests being served right now (0 or 1: HTTP/1 is sequential).
    busy: Cell<u32>,
    /// When the connection opened or the last request finished.
    last: Cell<Instant>,
}

/// Serve one management connection until the peer closes it, it breaks the
/// protocol, or it stays idle past `idle` (see the module doc). `handle`
/// answers one request.
pub async fn serve<S, H, F>(stream: S, idle: Duration, handle: H)
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + 'static,
    H: Fn(Request) -> F + 'static,
    F: std::future::Future<Output = Response>,
{
    let activity = Rc::new(Activity {
        busy: Cell::new(0),
        last: Cell::new(Instant::now()),
    });
    let handle = Rc::new(handle);
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let (activity, handle) = (activity.clone(), handle.clone());
            async move {
                // Reading the body counts as sending the request: the
                // watchdog still runs, so a body trickled byte by byte is
                // cut off like a trickled head. Only answering is busy.
                // A script's request (the web UI's, marked as browsers'
                // scripts mark theirs) gets no Basic challenge with a
                // 401: the browser would answer it with its own login
                // dialog instead of letting the page show the refusal.
                let scripted = req
                    .headers()
                    .get("x-requested-with")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"XMLHttpRequest"));
                let resp = match read(req).await {
                    Ok(req) => {
                        activity.busy.set(activity.busy.get() + 1);
                        let resp = handle(req).await;
                        activity.busy.set(activity.busy.get() - 1);
                        resp
                    }
                    Err(refusal) => refusal,
                };
                activity.last.set(Instant::now());
                Ok::<_, Infallible>(to_hyper(resp, !scripted))
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_HEADER.max(8192) + 16 * 1024)
        .max_header_size(MAX_HEADER)
        .serve_connection(smol_hyper::rt::FuturesIo::new(stream), service)
        .without_shutdown();
    let watchdog = async {
        loop {
            let left = idle.saturating_sub(activity.last.get().elapsed());
            glommio::timer::sleep(left.max(Duration::from_millis(10))).await;
            if activity.busy.get() == 0 && activity.last.get().elapsed() >= idle {
                return None;
            }
        }
    };
    let served = futures_lite::future::or(async { conn.await.ok() }, watchdog).await;
    if let Some(parts) = served {
        linger(parts.io.into_inner()).await;
    }
}

/// After the last answer: half-close (over TLS: close_notify, then the
/// socket's sending side), then discard what the peer still sends (at most
/// 1 MiB, for at most 1 s) before closing. Closing with unread bytes (a
/// refused body, say) makes the kernel reset the connection, and the peer
/// could lose the answer.
async fn linger<S>(mut stream: S)
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let _ = glommio::timer::timeout(Duration::from_secs(1), async {
        let _ = stream.flush().await;
        let _ = stream.close().await;
        Ok(())
    })
    .await;
    let drain = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = 0usize;
        while seen < 1 << 20 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen += n,
            }
        }
        Ok(())
    };
    let _ = glommio::timer::timeout(Duration::from_secs(1), drain).await;
}

/// Read a hyper request in full into a [`Request`], or the refusal to send:
/// 413 for a body over [`MAX_BODY`] (announced or actual; an announced one
/// is refused before any of it is read).
async fn read(req: hyper::Request<Incoming>) -> Result<Request, Response> {
    let too_large = || Response::error(413, "bad_request", "request body too large");
    let announced = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(_) => return Err(Response::error(400, "bad_request", "request body not read")),
    };
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_string(), value)
        })
        .collect();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    Ok(Request::from_parts(
        parts.method.as_str(),
        target,
        headers,
        body,
    ))
}

/// Our response as hyper's. A 401 carries the Basic challenge with
/// RabbitMQ's realm, as the management plugin sends it, when `challenge`.
fn to_hyper(r: Response, challenge: bool) -> hyper::Response<Full<Bytes>> {
    let mut b = hyper::Response::builder()
        .status(r.status)
        .header(hyper::header::CONTENT_TYPE, r.content_type)
        .header(hyper::header::SERVER, "Warren");
    if r.status == 401 && challenge {
        b = b.header(
            hyper::header::WWW_AUTHENTICATE,
            "Basic realm=\"RabbitMQ Management\"",
        );
    }
    if r.status == 413 {
        b = b.header(hyper::header::CONNECTION, "close");
    }
    for (k, v) in &r.headers {
        b = b.header(*k, v.as_str());
    }
    b.body(Full::new(Bytes::from(r.body))).unwrap_or_else(|_| {
        let mut fallback = hyper::Response::new(Full::new(Bytes::new()));
        *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_vhost_slash() {
        assert_eq!(decode_path_segment("%2F"), "/");
        assert_eq!(decode_path_segment("a%2fb"), "a/b");
        assert_eq!(decode_path_segment("100%"), "100%");
    }

    #[test]
    fn a_plus_in_a_path_segment_is_a_plus_and_in_a_query_a_space() {
        assert_eq!(decode_path_segment("orders+eu"), "orders+eu");
        assert_eq!(decode_query_component("a+b%2Bc"), "a b+c");
    }

    #[test]
    fn escapes_next_to_multibyte_characters_never_panic() {
        // Raw bytes `%a\xc3\xa9` as they arrive in a request line.
        assert_eq!(decode_path_segment("%a\u{e9}"), "%a\u{e9}");
        assert_eq!(decode_path_segment("%\u{e9}"), "%\u{e9}");
        assert_eq!(decode_path_segment("%ff"), "\u{fffd}");
        assert_eq!(decode_query_component("%a\u{e9}=1"), "%a\u{e9}=1");
    }
}

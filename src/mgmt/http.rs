//! A small HTTP/1.1 server for the management API, on glommio sockets.
//! Requests are parsed with `httparse`; bodies need a Content-Length.
//! Keep-alive is supported; each connection is served sequentially.

use crate::net::SharedStream;
use bytes::BytesMut;

pub struct Request {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub auth: Option<(String, String)>,
    /// Other request headers (lower-case names), e.g. `x-reason`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub keep_alive: bool,
}

impl Request {
    /// The value of header `name` (lower-case; only `x-` headers are kept).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, v: &serde_json::Value) -> Self {
        Response {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(v).unwrap_or_default(),
        }
    }
    pub fn text(status: u16, content_type: &'static str, body: String) -> Self {
        Response {
            status,
            content_type,
            body: body.into_bytes(),
        }
    }
    pub fn no_content() -> Self {
        Response {
            status: 204,
            content_type: "application/json",
            body: Vec::new(),
        }
    }
    pub fn error(status: u16, error: &str, reason: impl Into<String>) -> Self {
        Self::json(
            status,
            &serde_json::json!({"error": error, "reason": reason.into()}),
        )
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        409 => "Conflict",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
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

/// Largest request head (request line and at most 64 headers), bytes;
/// beyond either the answer is 431 and the connection is closed.
pub const MAX_HEADER: usize = 64 * 1024;
/// Largest request body (definitions import included), bytes; beyond it
/// the answer is 413 and the connection is closed.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// What reading a request gave.
pub enum Read {
    Request(Request),
    /// Head over [`MAX_HEADER`]: answer 431, close.
    HeadTooLarge,
    /// Content-Length over [`MAX_BODY`]: answer 413, close.
    BodyTooLarge,
    /// Not HTTP/1.x: answer 400, close.
    Malformed,
    /// EOF or an I/O error: close.
    Closed,
}

/// Read one request within `limit` (the connection's idle time plus the
/// time to send the request: a peer that sends nothing, or trickles a
/// request byte by byte, is cut off when it runs out).
pub async fn read_request_within(
    stream: &SharedStream,
    buf: &mut BytesMut,
    limit: std::time::Duration,
) -> Read {
    let read = async { Ok(read_request(stream, buf).await) };
    glommio::timer::timeout(limit, read)
        .await
        .unwrap_or(Read::Closed)
}

/// Why a request was not read (the [`Read`] outcomes other than a request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    HeadTooLarge,
    BodyTooLarge,
    Malformed,
    Closed,
}

/// Read one request.
pub async fn read_request(stream: &SharedStream, buf: &mut BytesMut) -> Read {
    match read_request_inner(stream, buf).await {
        Ok(r) => Read::Request(r),
        Err(Refused::HeadTooLarge) => Read::HeadTooLarge,
        Err(Refused::BodyTooLarge) => Read::BodyTooLarge,
        Err(Refused::Malformed) => Read::Malformed,
        Err(Refused::Closed) => Read::Closed,
    }
}

async fn read_request_inner(stream: &SharedStream, buf: &mut BytesMut) -> Result<Request, Refused> {
    loop {
        if let Some((head, n)) = parse_head(buf)? {
            let _ = buf.split_to(n);
            while buf.len() < head.content_length {
                let got = stream
                    .read_into(buf, 64 * 1024)
                    .await
                    .map_err(|_| Refused::Closed)?;
                if got == 0 {
                    return Err(Refused::Closed);
                }
            }
            let body = buf.split_to(head.content_length).to_vec();
            return Ok(request_from(head, body));
        }
        let got = stream
            .read_into(buf, 16 * 1024)
            .await
            .map_err(|_| Refused::Closed)?;
        if got == 0 {
            return Err(Refused::Closed);
        }
    }
}

/// A parsed request head (request line and the headers Warren uses).
#[derive(Debug)]
pub struct Head {
    pub method: String,
    /// Path and query, still percent-encoded.
    pub raw_path: String,
    /// Body size from Content-Length, bytes (0 without the header).
    pub content_length: usize,
    pub auth: Option<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub keep_alive: bool,
}

/// Parse a request head from the start of `buf` (pure, for fuzzing):
/// `Ok(Some((head, head_len)))` when complete, `Ok(None)` when more bytes
/// are needed, or the refusal to answer with.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, Refused> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            let mut head = Head {
                method: req.method.unwrap_or("GET").to_string(),
                raw_path: req.path.unwrap_or("/").to_string(),
                content_length: 0,
                auth: None,
                headers: Vec::new(),
                keep_alive: req.version == Some(1),
            };
            for h in req.headers.iter() {
                let name = h.name.to_ascii_lowercase();
                if name == "content-length" {
                    head.content_length = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or(Refused::Malformed)?;
                } else if name == "authorization" {
                    head.auth = basic_auth(h.value);
                } else if name.starts_with("x-") {
                    let value = String::from_utf8_lossy(h.value).into_owned();
                    head.headers.push((name, value));
                } else if name == "connection" {
                    let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                    head.keep_alive =
                        v.contains("keep-alive") || (head.keep_alive && !v.contains("close"));
                }
            }
            if head.content_length > MAX_BODY {
                return Err(Refused::BodyTooLarge);
            }
            Ok(Some((head, n)))
        }
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEADER => Err(Refused::HeadTooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        // More than 64 headers: cowboy's max_headers answer.
        Err(httparse::Error::TooManyHeaders) => Err(Refused::HeadTooLarge),
        Err(_) => Err(Refused::Malformed),
    }
}

/// The request for `head` and its `body`: path and query split, query
/// components decoded.
pub fn request_from(head: Head, body: Vec<u8>) -> Request {
    let (path, query) = match head.raw_path.split_once('?') {
        Some((p, q)) => (p.to_string(), q),
        None => (head.raw_path.clone(), ""),
    };
    let query = query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (decode_query_component(k), decode_query_component(v)),
            None => (decode_query_component(kv), String::new()),
        })
        .collect();
    Request {
        method: head.method,
        path,
        query,
        auth: head.auth,
        headers: head.headers,
        body,
        keep_alive: head.keep_alive,
    }
}

pub async fn write_response(
    stream: &SharedStream,
    r: &Response,
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nServer: Warren\r\nConnection: {}\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    )
    .into_bytes();
    if r.status == 401 {
        out.extend_from_slice(b"WWW-Authenticate: Basic realm=\"Warren Management\"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&r.body);
    stream.write_all(&out).await
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

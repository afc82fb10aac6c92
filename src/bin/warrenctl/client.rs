//! HTTP client for Warren's (RabbitMQ-compatible) management API, and the
//! errors a command can end with, each mapped to a sysexits(3) exit code.

use base64::Engine;
use serde_json::Value;
use std::fmt;
use std::io::Read;
use std::time::Duration;

/// Exit codes (sysexits.h where one fits), documented in `warrenctl --help`.
pub mod exit {
    pub const OK: i32 = 0;
    /// The object named on the command line does not exist (HTTP 404).
    pub const NOT_FOUND: i32 = 2;
    /// EX_USAGE: bad command line (unknown command, option or column).
    pub const USAGE: i32 = 64;
    /// EX_DATAERR: the broker rejected the request (HTTP 400/405/409), or an
    /// input file is not valid JSON, or the object already exists.
    pub const DATA: i32 = 65;
    /// EX_NOINPUT: an input file cannot be read.
    pub const NO_INPUT: i32 = 66;
    /// EX_UNAVAILABLE: the management API cannot be reached.
    pub const UNAVAILABLE: i32 = 69;
    /// EX_SOFTWARE: the broker answered with a 5xx or something unexpected.
    pub const SOFTWARE: i32 = 70;
    /// EX_CANTCREAT: an output file cannot be written.
    pub const CANT_CREATE: i32 = 73;
    /// EX_NOPERM: authentication failed or the user may not do this (401/403).
    pub const NO_PERM: i32 = 77;
}

/// A failed command: what to tell the user and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(exit::USAGE, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// Percent-encode one path segment: everything but RFC 3986's unreserved
/// characters, so a vhost "/" becomes "%2F" and a connection name such as
/// "127.0.0.1:5000 -> 127.0.0.1:5672" survives the trip.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub struct Client {
    base: String,
    user: String,
    auth: String,
    agent: ureq::Agent,
}

impl Client {
    /// `base` is e.g. "http://127.0.0.1:15672" (no trailing slash needed).
    pub fn new(base: &str, user: &str, password: &str, timeout: Duration) -> Self {
        let creds = format!("{user}:{password}");
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(creds)
        );
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout.min(Duration::from_secs(10)))
            .timeout_read(timeout)
            .timeout_write(timeout)
            .build();
        Client {
            base: base.trim_end_matches('/').to_string(),
            user: user.to_string(),
            auth,
            agent,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Send a request to `/api/{path}` (`path` already encoded); returns the
    /// decoded JSON body (Null for an empty body).
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        self.request_with(method, path, body, &[])
    }

    fn request_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value> {
        let url = format!("{}/api/{}", self.base, path);
        let mut req = self
            .agent
            .request(method, &url)
            // No Accept header: RabbitMQ answers 406 to one with
            // "application/json" on some endpoints (queue purge).
            .set("Authorization", &self.auth);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let res = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        match res {
            Ok(resp) => read_json(resp),
            Err(ureq::Error::Status(status, resp)) => {
                let reason = error_reason(resp);
                Err(self.status_failure(status, method, path, reason))
            }
            Err(ureq::Error::Transport(t)) => Err(self.transport_failure(&t)),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.request("GET", path, None)
    }
    pub fn put(&self, path: &str, body: &Value) -> Result<Value> {
        self.request("PUT", path, Some(body))
    }
    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.request("POST", path, Some(body))
    }
    pub fn delete(&self, path: &str) -> Result<Value> {
        self.request("DELETE", path, None)
    }
    /// DELETE with RabbitMQ's `X-Reason` header (closing a connection).
    pub fn delete_with_reason(&self, path: &str, reason: &str) -> Result<Value> {
        self.request_with("DELETE", path, None, &[("X-Reason", reason)])
    }

    fn status_failure(&self, status: u16, method: &str, path: &str, reason: String) -> Failure {
        let detail = if reason.is_empty() {
            String::new()
        } else {
            format!(": {reason}")
        };
        match status {
            401 => Failure::new(
                exit::NO_PERM,
                format!(
                    "authentication failed for user '{}' at {} (HTTP 401{detail})",
                    self.user, self.base
                ),
            ),
            403 => Failure::new(
                exit::NO_PERM,
                format!("access refused for user '{}' (HTTP 403{detail})", self.user),
            ),
            404 => Failure::new(exit::NOT_FOUND, format!("not found (HTTP 404{detail})")),
            400 | 405 | 409 | 415 => Failure::new(
                exit::DATA,
                format!("the broker rejected {method} /api/{path} (HTTP {status}{detail})"),
            ),
            _ => Failure::new(
                exit::SOFTWARE,
                format!("unexpected answer to {method} /api/{path}: HTTP {status}{detail}"),
            ),
        }
    }

    fn transport_failure(&self, t: &ureq::Transport) -> Failure {
        use std::error::Error;
        let io = t.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        let why = match (t.kind(), io) {
            (_, Some(e)) => match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                    "timed out".to_string()
                }
                std::io::ErrorKind::ConnectionReset => "connection reset".to_string(),
                _ => e.to_string(),
            },
            (ureq::ErrorKind::Dns, None) => "host not found".to_string(),
            _ => t.to_string(),
        };
        let code = match t.kind() {
            ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => exit::USAGE,
            _ => exit::UNAVAILABLE,
        };
        Failure::new(
            code,
            format!("cannot reach Warren management API at {}: {why}", self.base),
        )
    }
}

fn read_json(resp: ureq::Response) -> Result<Value> {
    let mut text = String::new();
    resp.into_reader()
        .take(256 * 1024 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| Failure::new(exit::UNAVAILABLE, format!("reading the answer: {e}")))?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            exit::SOFTWARE,
            format!("the broker's answer is not JSON ({e})"),
        )
    })
}

/// The `reason` (or `error`) of a RabbitMQ-style JSON error body.
fn error_reason(resp: ureq::Response) -> String {
    let mut text = String::new();
    let _ = resp.into_reader().take(64 * 1024).read_to_string(&mut text);
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => match (&v["reason"], &v["error"]) {
            (Value::String(r), _) => r.clone(),
            (_, Value::String(e)) => e.clone(),
            _ => text.trim().to_string(),
        },
        Err(_) => text.trim().chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::seg;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(seg("/"), "%2F");
        assert_eq!(seg("app.q-1_~"), "app.q-1_~");
        assert_eq!(
            seg("127.0.0.1:5000 -> 127.0.0.1:5672"),
            "127.0.0.1%3A5000%20-%3E%20127.0.0.1%3A5672"
        );
        assert_eq!(seg("é"), "%C3%A9");
    }
}

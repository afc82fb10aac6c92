//! Helpers for management API tests: real HTTP requests with `ureq`
//! against a broker started by `common::Broker`, and running `warrenctl`.
#![allow(dead_code)]

use base64::Engine;
use serde_json::Value;
use std::io::Read;
use std::time::{Duration, Instant};

/// Percent-encode one URL path segment ("/" becomes "%2F").
pub fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One HTTP answer: status, JSON body (Null if empty or not JSON), raw text
/// and the headers that tests look at.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub json: Value,
    pub text: String,
    pub content_type: String,
    pub www_authenticate: Option<String>,
    /// The `Location` header (201 of a binding).
    pub location: Option<String>,
    /// The `Content-Length` header.
    pub content_length: Option<String>,
    /// The `Allow` header (OPTIONS, 405).
    pub allow: Option<String>,
}

pub struct Api {
    pub base: String,
    pub user: String,
    auth: Option<String>,
    agent: ureq::Agent,
}

impl Api {
    /// guest:guest against the broker's management port.
    pub fn new(mgmt_port: u16) -> Api {
        Self::as_user(mgmt_port, "guest", "guest")
    }

    pub fn as_user(mgmt_port: u16, user: &str, password: &str) -> Api {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Api {
            base: format!("http://127.0.0.1:{mgmt_port}"),
            user: user.into(),
            auth: Some(format!("Basic {auth}")),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
        }
    }

    /// No Authorization header at all.
    pub fn anonymous(mgmt_port: u16) -> Api {
        let mut a = Self::new(mgmt_port);
        a.auth = None;
        a
    }

    /// Request `path` (starting with "/", already percent-encoded).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        self.send(method, path, body.map(|b| b.to_string()))
    }

    /// Send `body` verbatim (it need not be JSON) as application/json.
    pub fn call_raw(&self, method: &str, path: &str, body: &str) -> Answer {
        self.send(method, path, Some(body.to_string()))
    }

    fn send(&self, method: &str, path: &str, body: Option<String>) -> Answer {
        let mut req = self.agent.request(method, &format!("{}{path}", self.base));
        if let Some(a) = &self.auth {
            req = req.set("Authorization", a);
        }
        let res = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(&b),
            None => req.call(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status();
        let content_type = resp.header("Content-Type").unwrap_or("").to_string();
        let www_authenticate = resp.header("WWW-Authenticate").map(String::from);
        let location = resp.header("Location").map(String::from);
        let content_length = resp.header("Content-Length").map(String::from);
        let allow = resp.header("Allow").map(String::from);
        let mut text = String::new();
        resp.into_reader()
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{method} {path}: reading body: {e}"));
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            json,
            text,
            content_type,
            www_authenticate,
            location,
            content_length,
            allow,
        }
    }

    pub fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None)
    }
    pub fn put(&self, path: &str, body: &Value) -> Answer {
        self.call("PUT", path, Some(body))
    }
    pub fn post(&self, path: &str, body: &Value) -> Answer {
        self.call("POST", path, Some(body))
    }
    pub fn delete(&self, path: &str) -> Answer {
        self.call("DELETE", path, None)
    }

    /// GET that must answer 200; returns the JSON.
    pub fn get_ok(&self, path: &str) -> Value {
        let a = self.get(path);
        assert_eq!(a.status, 200, "GET {path}: {}", a.text);
        a.json
    }

    /// Request that must answer one of `ok` statuses.
    pub fn expect(&self, method: &str, path: &str, body: Option<&Value>, ok: &[u16]) -> Answer {
        let a = self.call(method, path, body);
        assert!(
            ok.contains(&a.status),
            "{method} {path}: expected status in {ok:?}, got {} {}",
            a.status,
            a.text
        );
        a
    }

    pub fn get_queue(&self, vhost: &str, name: &str) -> Value {
        self.get_ok(&format!("/api/queues/{}/{}", seg(vhost), seg(name)))
    }

    /// Publish one string message through the HTTP debug endpoint.
    pub fn publish(&self, vhost: &str, exchange: &str, key: &str, payload: &str) -> bool {
        let x = if exchange.is_empty() {
            "amq.default"
        } else {
            exchange
        };
        let a = self.post(
            &format!("/api/exchanges/{}/{}/publish", seg(vhost), seg(x)),
            &serde_json::json!({"properties": {}, "routing_key": key, "payload": payload,
                "payload_encoding": "string"}),
        );
        assert_eq!(a.status, 200, "publish: {}", a.text);
        a.json["routed"].as_bool().expect("routed flag")
    }

    /// Wait until the queue's field `field` equals `want`.
    pub fn wait_queue_field(&self, vhost: &str, name: &str, field: &str, want: u64) -> Value {
        let what = format!("queue {name} {field} == {want}");
        eventually(&what, || {
            let q = self.get_queue(vhost, name);
            (lookup(&q, field).and_then(Value::as_u64) == Some(want)).then_some(q)
        })
    }
}

/// The value at a dotted path.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, p| cur.get(p))
}

/// Poll `f` until it returns Some; panics after a generous deadline (the
/// deadline is a hang guard, not a timing assertion).
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Assert every dotted `field` is present in `v`.
pub fn assert_fields(v: &Value, fields: &[&str], what: &str) {
    for f in fields {
        assert!(
            lookup(v, f).is_some(),
            "{what}: missing field '{f}' in {}",
            serde_json::to_string_pretty(v).unwrap()
        );
    }
}

/// The result of running `warrenctl`.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run `warrenctl` with `args` (and `env`), with no inherited WARREN_* vars.
pub fn warrenctl_env(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warrenctl"));
    cmd.args(args)
        .env_remove("WARREN_MGMT_URL")
        .env_remove("WARREN_USER")
        .env_remove("WARREN_PASSWORD")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run warrenctl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().expect("warrenctl output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run `warrenctl --port {mgmt_port} args...` as guest.
pub fn warrenctl(mgmt_port: u16, args: &[&str]) -> Run {
    let port = mgmt_port.to_string();
    let mut all = vec!["--port", &port];
    all.extend_from_slice(args);
    warrenctl_env(&all, &[], None)
}

/// Like [`warrenctl`] but the command must succeed.
pub fn warrenctl_ok(mgmt_port: u16, args: &[&str]) -> Run {
    let r = warrenctl(mgmt_port, args);
    assert_eq!(r.code, 0, "warrenctl {args:?} failed: {r:?}");
    r
}

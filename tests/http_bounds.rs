//! The management HTTP server bounds what a peer can make it hold: the
//! time a connection may stay idle or take to send a request
//! (`[management] idle_timeout_ms`), the request head (64 KiB: 431) and the
//! body (64 MiB, definitions import included: 413). No credentials are
//! needed to reach these limits, so none are sent.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn broker_with_idle_timeout(ms: u64) -> (Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("warren.toml");
    std::fs::write(&cfg, format!("[management]\nidle_timeout_ms = {ms}\n")).unwrap();
    let b = Broker::start_with(1, &["--config", &cfg.to_string_lossy()]);
    (b, dir)
}

/// Read until EOF (or 10 s); returns what came and how long it took.
fn read_to_close(s: &mut TcpStream) -> (String, Duration) {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("connection not closed within 10 s: {e}"),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

#[test]
fn an_idle_http_connection_is_closed_after_the_idle_timeout() {
    let (b, _dir) = broker_with_idle_timeout(500);
    let mut s = TcpStream::connect(("127.0.0.1", b.mgmt_port)).unwrap();
    let (got, took) = read_to_close(&mut s);
    assert_eq!(got, "");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
}

#[test]
fn a_request_trickled_byte_by_byte_is_cut_off() {
    let (b, _dir) = broker_with_idle_timeout(500);
    let mut s = TcpStream::connect(("127.0.0.1", b.mgmt_port)).unwrap();
    let start = Instant::now();
    let head = b"GET /api/overview HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut closed = false;
    for byte in head.iter().chain(std::iter::repeat(&b'a')).take(200) {
        if s.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !closed {
        let (got, _) = read_to_close(&mut s);
        assert_eq!(got, "", "no answer to an unfinished request");
    }
    assert!(
        start.elapsed() < Duration::from_secs(9),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn a_body_trickled_byte_by_byte_is_cut_off() {
    let (b, _dir) = broker_with_idle_timeout(500);
    let mut s = TcpStream::connect(("127.0.0.1", b.mgmt_port)).unwrap();
    let start = Instant::now();
    s.write_all(b"POST /api/definitions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        .unwrap();
    let mut closed = false;
    for _ in 0..200 {
        std::thread::sleep(Duration::from_millis(50));
        if s.write_all(b" ").is_err() {
            closed = true;
            break;
        }
    }
    if !closed {
        let (got, _) = read_to_close(&mut s);
        assert_eq!(got, "", "no answer to an unfinished request");
    }
    assert!(
        start.elapsed() < Duration::from_secs(9),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn an_oversized_body_is_refused_with_413_before_it_is_read() {
    let b = Broker::start(1);
    let mut s = TcpStream::connect(("127.0.0.1", b.mgmt_port)).unwrap();
    s.write_all(
        b"POST /api/definitions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n{",
    )
    .unwrap();
    let (got, _) = read_to_close(&mut s);
    assert!(got.starts_with("HTTP/1.1 413 "), "{got}");
}

#[test]
fn an_oversized_request_head_is_refused_with_431() {
    let b = Broker::start(1);
    let mut s = TcpStream::connect(("127.0.0.1", b.mgmt_port)).unwrap();
    let mut req = b"GET /api/overview HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..2000 {
        req.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "p".repeat(40)).as_bytes());
    }
    // The server may stop reading once it has answered; a failed write
    // after that is fine.
    let _ = s.write_all(&req);
    let (got, _) = read_to_close(&mut s);
    assert!(got.starts_with("HTTP/1.1 431 "), "{got:.200}");
    // The broker still serves others.
    let mut ok = TcpStream::connect(("127.0.0.1", b.mgmt_port)).unwrap();
    ok.write_all(b"GET /api/health/checks/shards HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (got, _) = read_to_close(&mut ok);
    assert!(got.starts_with("HTTP/1.1 401 "), "{got:.200}");
}

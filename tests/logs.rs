//! Logs written to a file or a pipe (the journal, `> warren.log`) are plain
//! text: no ANSI colour codes, which only a terminal shows as colours.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_piped(dir.path(), &[]);
    // SIGTERM: a clean stop that logs "shutting down" too.
    let (status, err) = stop(&mut child);
    // A SIGTERM right after the banner is a clean stop, never the default
    // (immediate) termination: the handler is installed before any shard.
    assert!(status.success(), "{status:?}: {err}");
    assert!(err.contains("warren started"), "{err}");
    assert!(err.contains("shutting down"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "colour codes in a piped log: {err:?}"
    );
}

/// Start warren with `extra` flags, wait for its banner; the child and
/// its stderr pipe.
fn start_piped(dir: &std::path::Path, extra: &[&str]) -> std::process::Child {
    let mut child = Command::new(warren_bin())
        .args(["--port", "0", "--bind", "127.0.0.1", "--no-mgmt"])
        .args(["--shards", "1"])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warren");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut line = String::new();
    while !line.starts_with("warren listening on") {
        assert!(Instant::now() < deadline, "no banner");
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "warren exited");
    }
    child
}

/// SIGTERM, then everything the broker wrote to stderr and its exit status.
fn stop(child: &mut std::process::Child) -> (std::process::ExitStatus, String) {
    signal(child, nix::sys::signal::Signal::SIGTERM);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap(), err)
}

fn signal(child: &std::process::Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_piped(dir.path(), &["--log-format", "json"]);
    let (status, err) = stop(&mut child);
    assert!(status.success(), "{status:?}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 2, "{err}");
    let mut messages = Vec::new();
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"));
        assert!(v["timestamp"].is_string(), "{l}");
        assert!(v["level"].is_string(), "{l}");
        messages.push(v["fields"]["message"].as_str().unwrap_or("").to_string());
    }
    assert!(
        messages.iter().any(|m| m == "warren started"),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m == "shutting down"),
        "{messages:?}"
    );
}

#[test]
fn unknown_log_format_is_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(warren_bin())
        .args(["--port", "0", "--no-mgmt", "--log-format", "xml"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("log.format") && err.contains("xml"), "{err}");
}

#[test]
fn sighup_reopens_the_log_file_after_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("warren.log");
    let rotated = dir.path().join("warren.log.1");
    let data = dir.path().join("data");
    let mut child = start_piped(&data, &["--log-file", log.to_str().unwrap()]);
    let first = std::fs::read_to_string(&log).unwrap();
    assert!(first.contains("warren started"), "{first}");
    assert!(!first.contains('\u{1b}'), "colour codes in a log file");
    // logrotate's default: rename, then SIGHUP.
    std::fs::rename(&log, &rotated).unwrap();
    signal(&child, nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = std::fs::read_to_string(&log).unwrap_or_default();
        if now.contains("reopened the log file") {
            break;
        }
        assert!(Instant::now() < deadline, "no new log file after SIGHUP");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    assert!(child.wait().unwrap().success());
    let new = std::fs::read_to_string(&log).unwrap();
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(new.contains("shutting down"), "{new}");
    assert!(!old.contains("shutting down"), "{old}");
    assert!(!old.contains("reopened"), "{old}");
}

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
    let mut child = Command::new(warren_bin())
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--no-mgmt",
            "--shards",
            "1",
        ])
        .arg("--data-dir")
        .arg(dir.path())
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
    // SIGTERM: a clean stop that logs "shutting down" too.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
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

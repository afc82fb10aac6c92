//! Start-up survives a shard thread that is descheduled at the worst moment.
//!
//! glommio 0.9 parks an executor that finds its preemption timer already
//! expired just before it runs its task queues, and a parked executor sleeps
//! until an I/O completion or a timer. At start-up neither exists yet, so a
//! shard thread descheduled there for longer than the preemption timer slept
//! forever and the broker never printed its banner (seen once in CI). The
//! test stops the first shard thread at exactly that point under gdb (the
//! stop itself outlasts a 500 us timer; the test sleeps 50 ms more), then
//! expects the banner and a working connection.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where glommio 0.9.0's run loop calls `run_task_queues` (Cargo.lock pins
/// the version; the test fails, rather than passing unchecked, if the
/// breakpoint is never hit).
const BEFORE_FIRST_RUN: &str = "glommio-0.9.0/src/executor/mod.rs:1483";

async fn a_shard_thread_descheduled_before_its_first_run_still_starts(shards: usize) {
    if Command::new("gdb").arg("--version").output().is_err() {
        eprintln!("gdb is not installed: start-up deschedule test skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("gdb.cmds");
    std::fs::write(
        &script,
        format!(
            "set pagination off\nset breakpoint pending on\ntbreak {BEFORE_FIRST_RUN}\n\
             commands\nshell sleep 0.05\ncontinue\nend\nrun\n"
        ),
    )
    .unwrap();
    let mut gdb = Command::new("gdb")
        .arg("-q")
        .arg("-batch")
        .arg("-x")
        .arg(&script)
        .arg("--args")
        .arg(warren_bin())
        .args(["--bind", "127.0.0.1", "--port", "0", "--mgmt-port", "0"])
        .args(["--mgmt-bind", "127.0.0.1", "--shards", &shards.to_string()])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("WARREN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gdb");
    let stdout = gdb.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut hit = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            hit |= line.contains("Temporary breakpoint 1,");
            if line.starts_with("warren listening on") {
                let _ = tx.send((hit, line));
                return;
            }
        }
    });
    let outcome = tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_secs(30)));
    // gdb's death does not kill its inferior: kill the broker by its data dir.
    let data = dir.path().join("data");
    let stop = move |mut gdb: std::process::Child| {
        let _ = Command::new("pkill")
            .arg("-9")
            .arg("-f")
            .arg(data.to_string_lossy().as_ref())
            .status();
        let _ = gdb.kill();
        let _ = gdb.wait();
    };
    let Ok((hit, line)) = outcome else {
        stop(gdb);
        panic!("no banner within 30 s after a shard thread was stopped before its first run");
    };
    if !hit {
        stop(gdb);
        panic!("the breakpoint {BEFORE_FIRST_RUN} was never hit: update it for this glommio");
    }
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let conn = within(
        "connect",
        lapin::Connection::connect(&url, lapin::ConnectionProperties::default()),
    )
    .await
    .expect("connect");
    assert_connection_usable(&conn).await;
    stop(gdb);
}

shard_tests!(a_shard_thread_descheduled_before_its_first_run_still_starts);

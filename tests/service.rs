//! Running under a service manager: `warren --version`, and systemd's
//! `Type=notify` protocol (READY=1 once every shard listens, STOPPING=1 on
//! SIGTERM) as `deploy/warren.service` relies on.

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn version_flag_prints_the_crate_version() {
    let out = Command::new(warren_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        format!("warren {}", env!("CARGO_PKG_VERSION")),
        "{text}"
    );
}

#[test]
fn sd_notify_ready_once_listening_and_stopping_on_sigterm() {
    for shards in [1usize, 2] {
        let dir = tempfile::tempdir().unwrap();
        let sock_path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&sock_path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut child = Command::new(warren_bin())
            .args(["--port", "0", "--bind", "127.0.0.1", "--no-mgmt"])
            .args(["--shards", &shards.to_string()])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("NOTIFY_SOCKET", &sock_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).expect("READY=1 within 30 s");
        assert_eq!(&buf[..n], b"READY=1\n");
        // Ready means listening: the banner is already written, and a
        // client connects at once.
        let mut banner = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut banner,
        )
        .unwrap();
        let port: u16 = banner.trim().rsplit(':').next().unwrap().parse().unwrap();
        // The whole handshake up to connection.open-ok.
        let _raw = RawClient::handshake(port);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let n = sock.recv(&mut buf).expect("STOPPING=1 within 30 s");
        assert_eq!(&buf[..n], b"STOPPING=1\n");
        assert!(child.wait().unwrap().success(), "{shards} shards");
    }
}

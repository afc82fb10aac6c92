//! AMQPS (TLS) with lapin over real sockets, against certificates made in
//! the test with rcgen: a CA, a server certificate for localhost, and the
//! broker started with `--tls-cert-file`/`--tls-key-file`. Client
//! certificates and EXTERNAL logins are covered by the pika suite
//! (`tests/python/test_tls.py`), whose TLS stack takes PEM client keys.

mod common;

use common::*;
use lapin::options::*;
use lapin::tcp::OwnedTLSConfig;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A test PKI written to PEM files.
struct Pki {
    ca_pem: String,
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
}

fn make_pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Warren test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server = server_params.signed_by(&server_key, &ca).unwrap();
    let pki = Pki {
        ca_pem: ca.pem(),
        ca_file: dir.join("ca.pem"),
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server.key"),
    };
    std::fs::write(&pki.ca_file, &pki.ca_pem).unwrap();
    std::fs::write(&pki.cert_file, server.pem()).unwrap();
    std::fs::write(&pki.key_file, server_key.serialize_pem()).unwrap();
    pki
}

/// A broker with an AMQPS listener; killed on drop.
struct TlsBroker {
    child: Child,
    port: u16,
    tls_port: u16,
    mgmt_port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tls(shards: usize, pki: &Pki, extra: &[&str]) -> TlsBroker {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(warren_bin())
        .args(["--bind", "127.0.0.1", "--port", "0", "--mgmt-port", "0"])
        .args(["--tls-port", "0", "--shards", &shards.to_string()])
        .arg("--tls-cert-file")
        .arg(&pki.cert_file)
        .arg("--tls-key-file")
        .arg(&pki.key_file)
        .arg("--data-dir")
        .arg(dir.path())
        .args(extra)
        .env("WARREN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut port_of = |prefix: &str| -> u16 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with(prefix), "banner line {line:?}");
        line.trim().rsplit(':').next().unwrap().parse().unwrap()
    };
    let port = port_of("warren listening on");
    let mgmt_port = port_of("warren management listening on");
    let tls_port = port_of("warren amqps listening on");
    TlsBroker {
        child,
        port,
        tls_port,
        mgmt_port,
        _dir: dir,
    }
}

async fn connect_tls(b: &TlsBroker, pki: &Pki) -> Result<Connection, lapin::Error> {
    let uri = format!("amqps://guest:guest@localhost:{}/%2f", b.tls_port);
    let tls = OwnedTLSConfig {
        identity: None,
        cert_chain: Some(pki.ca_pem.clone()),
    };
    Connection::connect_with_config(&uri, ConnectionProperties::default(), tls).await
}

fn api_connections(b: &TlsBroker) -> Vec<serde_json::Value> {
    let body = ureq::get(&format!("http://127.0.0.1:{}/api/connections", b.mgmt_port))
        .set("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

#[test]
fn amqps_carries_confirmed_publishes_and_deliveries_of_every_size() {
    for shards in [1usize, 2] {
        let dir = tempfile::tempdir().unwrap();
        let pki = make_pki(dir.path());
        let b = start_tls(shards, &pki, &[]);
        rt().block_on(async {
            let conn = connect_tls(&b, &pki).await.expect("amqps connect");
            let ch = conn.create_channel().await.unwrap();
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .unwrap();
            let q = format!("tls-{shards}");
            ch.queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default())
                .await
                .unwrap();
            // Sizes across the frame boundary (frame_max 128 KiB): one
            // record, several records and several frames per body.
            let sizes = [0usize, 1, 100, 16 * 1024, 131_072, 300_000, 1_000_000];
            let bodies: Vec<Vec<u8>> = (0..200)
                .map(|i| {
                    let n = sizes[i % sizes.len()];
                    (0..n).map(|j| (i * 31 + j) as u8).collect()
                })
                .collect();
            for body in &bodies {
                let confirm = ch
                    .basic_publish(
                        "",
                        &q,
                        BasicPublishOptions::default(),
                        body,
                        BasicProperties::default(),
                    )
                    .await
                    .unwrap()
                    .await
                    .unwrap();
                assert!(confirm.is_ack(), "{confirm:?}");
            }
            let mut consumer = ch
                .basic_consume(
                    &q,
                    "c",
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            use futures_lite::StreamExt;
            for (i, want) in bodies.iter().enumerate() {
                let d = tokio::time::timeout(Duration::from_secs(30), consumer.next())
                    .await
                    .expect("delivery within 30 s")
                    .unwrap()
                    .unwrap();
                assert_eq!(&d.data, want, "body {i} differs");
                d.ack(BasicAckOptions::default()).await.unwrap();
            }
            // The management API says which connection is TLS, with what.
            let conns = api_connections(&b);
            assert_eq!(conns.len(), 1, "{conns:?}");
            let c = &conns[0];
            assert_eq!(c["ssl"], true, "{c}");
            assert_eq!(c["ssl_protocol"], "tlsv1.3", "{c}");
            assert_eq!(c["auth_mechanism"], "PLAIN", "{c}");
            assert_eq!(c["port"], b.tls_port, "{c}");
            assert!(
                c["name"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!(":{}", b.tls_port)),
                "{c}"
            );
            assert!(c["peer_cert_subject"].is_null(), "{c}");
            conn.close(200, "bye").await.unwrap();
        });
    }
}

#[test]
fn plain_amqp_on_the_tls_port_is_refused_and_both_listeners_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let b = start_tls(2, &pki, &[]);
    // A plain AMQP header is not a TLS ClientHello: the handshake fails
    // and the socket is closed (rustls may first send an alert record).
    let mut s = std::net::TcpStream::connect(("127.0.0.1", b.tls_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"\x01\x00\x00"),
        "plain connection.start on the TLS port: {got:?}"
    );
    assert!(got.is_empty() || got[0] == 0x15, "not a TLS alert: {got:?}");
    rt().block_on(async {
        let tls = connect_tls(&b, &pki).await.expect("amqps after a bad peer");
        let plain = Connection::connect(
            &format!("amqp://guest:guest@127.0.0.1:{}/%2f", b.port),
            ConnectionProperties::default(),
        )
        .await
        .expect("plain amqp beside amqps");
        let conns = api_connections(&b);
        let mut ssl: Vec<bool> = conns.iter().map(|c| c["ssl"] == true).collect();
        ssl.sort();
        assert_eq!(ssl, vec![false, true], "{conns:?}");
        assert!(conns
            .iter()
            .all(|c| (c["ssl"] == true) == c["ssl_protocol"].is_string()));
        tls.close(200, "").await.unwrap();
        plain.close(200, "").await.unwrap();
    });
}

#[test]
fn a_client_without_a_certificate_is_refused_when_one_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let ca = pki.ca_file.to_str().unwrap().to_string();
    let b = start_tls(
        1,
        &pki,
        &[
            "--tls-verify-peer",
            "--tls-fail-if-no-peer-cert",
            "--tls-ca-file",
            &ca,
        ],
    );
    rt().block_on(async {
        assert!(
            connect_tls(&b, &pki).await.is_err(),
            "connected without a client certificate"
        );
    });
}

#[test]
fn an_incomplete_or_unreadable_tls_setup_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let run = |args: &[&str]| {
        let out = Command::new(warren_bin())
            .args(["--port", "0", "--no-mgmt", "--tls-port", "0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cert = pki.cert_file.to_str().unwrap();
    let (code, err) = run(&["--tls-cert-file", cert]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("tls.key_file"), "{err}");
    let (code, err) = run(&["--tls-cert-file", cert, "--tls-key-file", cert]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("tls.key_file"), "{err}");
    let (code, err) = run(&[
        "--tls-cert-file",
        cert,
        "--tls-key-file",
        pki.key_file.to_str().unwrap(),
        "--tls-verify-peer",
    ]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("tls.ca_file"), "{err}");
}

//! Shared test harness: starts the real `warren` binary on an ephemeral
//! port in a temporary data directory, with 1 or N shards, and kills it
//! (SIGKILL) on drop or on demand for crash tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    pub port: u16,
    /// Management HTTP API port.
    pub mgmt_port: u16,
    pub shards: usize,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    child: Option<Child>,
    extra: Vec<String>,
    /// Open-file limit (soft and hard) for every start of this broker.
    nofile: Option<u64>,
    /// Extra environment for every start of this broker.
    env: Vec<(String, String)>,
}

pub fn warren_bin() -> PathBuf {
    if let Ok(p) = std::env::var("WARREN_BIN") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_BIN_EXE_warren"))
}

fn spawn(
    dir: &Path,
    shards: usize,
    port: u16,
    extra: &[String],
    nofile: Option<u64>,
    env: &[(String, String)],
) -> (Child, u16, u16) {
    let mut cmd = Command::new(warren_bin());
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let Some(n) = nofile {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, n, n)
                    .map_err(std::io::Error::from)
            });
        }
    }
    let mut child = cmd
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--shards",
            &shards.to_string(),
            "--mgmt-bind",
            "127.0.0.1",
            "--mgmt-port",
            "0",
        ])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .env(
            "WARREN_LOG",
            std::env::var("WARREN_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start warren");
    let stdout = child.stdout.take().expect("stdout");
    // Read the two banner lines on a helper thread: a broker that does not
    // start within the limit is a failure, with its threads' stacks.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let mut mline = String::new();
        let _ = reader.read_line(&mut mline);
        let _ = tx.send((line, mline));
    });
    let (line, mline) = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(lines) => lines,
        Err(_) => {
            let stacks = Command::new("gdb")
                .args([
                    "-p",
                    &child.id().to_string(),
                    "-batch",
                    "-ex",
                    "thread apply all bt 30",
                ])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let ours: Vec<&str> = stacks
                .lines()
                .filter(|l| {
                    l.starts_with("Thread") || l.contains("warren::") || l.contains("src/main.rs")
                })
                .collect();
            let _ = child.kill();
            panic!(
                "warren printed no banner within 60 s; its threads:\n{}",
                ours.join("\n")
            );
        }
    };
    let mgmt_port = mline
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("warren did not start: {line:?}"));
    (child, port, mgmt_port)
}

impl Broker {
    pub fn start(shards: usize) -> Broker {
        Self::start_with(shards, &[])
    }

    pub fn start_with(shards: usize, extra: &[&str]) -> Broker {
        Self::launch(None, shards, extra, None, &[])
    }

    /// Start on a given data directory (which the caller owns).
    pub fn start_in(dir: &Path, shards: usize, extra: &[&str]) -> Broker {
        Self::launch(Some(dir), shards, extra, None, &[])
    }

    /// Start in a temp dir with the process's open-file limit (soft and
    /// hard, so the broker cannot raise it) set to `nofile`, for this and
    /// every restart.
    pub fn start_with_nofile(shards: usize, extra: &[&str], nofile: u64) -> Broker {
        Self::launch(None, shards, extra, Some(nofile), &[])
    }

    /// Start in a temp dir with extra environment variables (for this and
    /// every restart).
    pub fn start_with_env(shards: usize, extra: &[&str], env: &[(&str, &str)]) -> Broker {
        Self::launch(None, shards, extra, None, env)
    }

    /// The one constructor: `dir` None means a fresh temp dir we own.
    fn launch(
        dir: Option<&Path>,
        shards: usize,
        extra: &[&str],
        nofile: Option<u64>,
        env: &[(&str, &str)],
    ) -> Broker {
        let tmp = match dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().expect("tempdir")),
        };
        let dir = dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| tmp.as_ref().expect("tempdir").path().to_path_buf());
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, port, mgmt_port) = spawn(&dir, shards, 0, &extra, nofile, &env);
        Broker {
            mgmt_port,
            port,
            shards,
            dir,
            _tmp: tmp,
            child: Some(child),
            extra,
            nofile,
            env,
        }
    }

    /// Wait up to `limit` for the process to exit by itself; its status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            let c = self.child.as_mut()?;
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// SIGKILL the broker process (no clean shutdown).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (clean shutdown: the store is flushed) and wait for exit.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }

    /// Start again on the same data directory (and port, when free).
    pub fn restart(&mut self) {
        self.kill9();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (child, port, mgmt_port) = spawn(
                &self.dir,
                self.shards,
                0,
                &self.extra,
                self.nofile,
                &self.env,
            );
            self.child = Some(child);
            self.port = port;
            self.mgmt_port = mgmt_port;
            if self.port != 0 || Instant::now() > deadline {
                break;
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Run an async test body on a fresh multi-threaded runtime.
pub fn run_async<F: Future<Output = ()>>(shards: usize, f: impl FnOnce(usize) -> F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(f(shards));
}

/// `shard_tests!(prop_a, prop_b)`: for each `async fn prop(shards: usize)`
/// in scope, a module `prop` with the tests `one_shard` and `two_shards`
/// (so the test is named after the property it checks).
#[macro_export]
macro_rules! shard_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn one_shard() {
                    super::common::run_async(1, super::$name);
                }
                #[test]
                fn two_shards() {
                    super::common::run_async(2, super::$name);
                }
            }
        )*
    };
}

/// Run a test body for 1 and for 2 shards.
pub fn for_each_shard_count(mut f: impl FnMut(usize)) {
    for n in [1, 2] {
        f(n);
    }
}

// ---------------------------------------------------------------------------
// Async helpers around lapin.
// ---------------------------------------------------------------------------

use amq_protocol::frame::{gen_frame, parsing::parse_frame, AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic::AMQPProperties, connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable as RawFieldTable};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::future::Future;
use std::io::{Read, Write};

/// Upper bound for any single step of a test; tests never assert on time.
pub const STEP: Duration = Duration::from_secs(20);

/// Await `f`, panicking with `what` if it takes longer than [`STEP`].
pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    within_for(STEP, what, f).await
}

pub async fn within_for<F: Future>(limit: Duration, what: &str, f: F) -> F::Output {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Start the broker from async code without blocking a runtime worker.
pub async fn start_broker(shards: usize) -> Broker {
    tokio::task::spawn_blocking(move || Broker::start(shards))
        .await
        .expect("start broker")
}

/// Connect directly (the kernel picks the shard).
pub async fn connect(b: &Broker) -> Connection {
    within(
        "connect",
        Connection::connect(&b.url(), ConnectionProperties::default()),
    )
    .await
    .expect("connect")
}

pub async fn open_channel(conn: &Connection) -> Channel {
    within("channel.open", conn.create_channel())
        .await
        .expect("channel.open")
}

pub async fn confirm_channel(conn: &Connection) -> Channel {
    let ch = open_channel(conn).await;
    within(
        "confirm.select",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .expect("confirm.select");
    ch
}

pub async fn declare_queue(ch: &Channel, name: &str) -> String {
    let q = within(
        "queue.declare",
        ch.queue_declare(name, QueueDeclareOptions::default(), FieldTable::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("queue.declare {name}: {e}"));
    q.name().as_str().to_string()
}

/// Properties of a persistent message (delivery-mode 2).
pub fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

/// Declare a durable queue (panics on refusal).
pub async fn declare_durable(ch: &Channel, name: &str) {
    within(
        "durable queue.declare",
        ch.queue_declare(
            name,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("declare durable {name}: {e}"));
}

/// Publish and wait for the publish to be written (not confirmed).
pub async fn publish(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
) -> lapin::publisher_confirm::PublisherConfirm {
    publish_with(ch, exchange, key, body, BasicProperties::default()).await
}

pub async fn publish_with(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) -> lapin::publisher_confirm::PublisherConfirm {
    within(
        "basic.publish",
        ch.basic_publish(exchange, key, BasicPublishOptions::default(), body, props),
    )
    .await
    .expect("basic.publish")
}

/// Collect channel errors (server-sent channel.close) so a test can check
/// the reply code after a fire-and-forget method such as basic.ack.
pub fn channel_errors(ch: &Channel) -> tokio::sync::mpsc::UnboundedReceiver<lapin::Error> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    ch.on_error(move |e| {
        let _ = tx.send(e);
    });
    rx
}

/// The AMQP reply code carried by a lapin error, if it is a protocol error.
pub fn reply_code(e: &lapin::Error) -> Option<u16> {
    match e {
        lapin::Error::ProtocolError(p) => Some(p.get_id()),
        _ => None,
    }
}

/// Expect `e` to carry reply code `code` and a reply text containing `text`.
pub fn assert_reply(e: &lapin::Error, code: u16, text: &str) {
    assert_eq!(reply_code(e), Some(code), "{e:?}");
    assert!(e.to_string().contains(text), "want {text:?} in: {e}");
}

/// Expect `r` to be a channel/connection error with `code`.
pub fn assert_code<T: std::fmt::Debug>(r: Result<T, lapin::Error>, code: u16, what: &str) {
    match r {
        Ok(v) => panic!("{what}: expected error {code}, got Ok({v:?})"),
        Err(e) => assert_eq!(
            reply_code(&e),
            Some(code),
            "{what}: expected reply code {code}, got {e:?}"
        ),
    }
}

/// Wait for the next server-sent channel error and check its code.
pub async fn expect_channel_error(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<lapin::Error>,
    code: u16,
    what: &str,
) {
    let e = within(what, rx.recv())
        .await
        .unwrap_or_else(|| panic!("{what}: error stream ended"));
    assert_eq!(
        reply_code(&e),
        Some(code),
        "{what}: expected reply code {code}, got {e:?}"
    );
}

/// Check that `conn` still works: a new channel can declare and use a queue.
pub async fn assert_connection_usable(conn: &Connection) {
    assert!(
        conn.status().connected(),
        "connection should still be open, state {:?}",
        conn.status().state()
    );
    let ch = open_channel(conn).await;
    let q = declare_queue(&ch, "").await;
    publish(&ch, "", &q, b"still-alive").await;
    let got = within(
        "basic.get after error",
        ch.basic_get(&q, lapin::options::BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("basic.get");
    assert_eq!(
        got.expect("message on the fresh queue").delivery.data,
        b"still-alive"
    );
    let _ = ch.close(200, "bye").await;
}

/// Name (prefix + counter) of a queue whose home is `shard` among `shards`.
pub fn queue_on_shard(prefix: &str, shard: usize, shards: usize) -> String {
    let shard = shard % shards;
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|n| warren::defs::queue_home("/", n, shards).0 == shard)
        .unwrap()
}

pub fn queue_home(name: &str, shards: usize) -> usize {
    warren::defs::queue_home("/", name, shards).0
}

// ---------------------------------------------------------------------------
// Shard-aware connections: a one-shot TCP proxy reads `warren.shard` from
// the server's connection.start, then forwards bytes both ways. lapin 2
// does not expose server properties, so this is how a test learns which
// shard its connection landed on.
// ---------------------------------------------------------------------------

/// Extract `warren.shard` from a connection.start frame.
fn shard_of_start(frame: &[u8]) -> Option<usize> {
    let (_, f) = parse_frame(frame).ok()?;
    match f {
        AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Start(s))) => {
            match s.server_properties.inner().get("warren.shard")? {
                AMQPValue::LongInt(v) => Some(*v as usize),
                AMQPValue::LongUInt(v) => Some(*v as usize),
                AMQPValue::ShortInt(v) => Some(*v as usize),
                AMQPValue::LongLongInt(v) => Some(*v as usize),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Length of the first complete frame in `buf`, if there is one.
fn first_frame_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < 7 {
        return None;
    }
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    (buf.len() >= size + 8).then_some(size + 8)
}

/// Connect through a sniffing proxy; returns the connection and its shard.
pub async fn connect_sniffed(b: &Broker) -> (Connection, usize) {
    connect_sniffed_as(b, "guest", "guest", "/").await
}

/// [`connect_sniffed`] as `user` to `vhost`.
pub async fn connect_sniffed_as(
    b: &Broker,
    user: &str,
    password: &str,
    vhost: &str,
) -> (Connection, usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("proxy bind");
    let lport = listener.local_addr().unwrap().port();
    let port = b.port;
    let (tx, rx) = tokio::sync::oneshot::channel::<usize>();
    tokio::spawn(async move {
        let Ok((mut client, _)) = listener.accept().await else {
            return;
        };
        drop(listener);
        let Ok(mut upstream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let mut hdr = [0u8; 8];
        if client.read_exact(&mut hdr).await.is_err() || upstream.write_all(&hdr).await.is_err() {
            return;
        }
        let mut raw = Vec::new();
        let mut chunk = [0u8; 4096];
        let len = loop {
            if let Some(n) = first_frame_len(&raw) {
                break n;
            }
            match upstream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&chunk[..n]),
            }
        };
        let Some(shard) = shard_of_start(&raw[..len]) else {
            return;
        };
        let _ = tx.send(shard);
        if client.write_all(&raw).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
    let vhost = vhost.replace('%', "%25").replace('/', "%2f");
    let url = format!("amqp://{user}:{password}@127.0.0.1:{lport}/{vhost}");
    let conn = within(
        "connect via proxy",
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await
    .expect("connect via proxy");
    let shard = within("shard from connection.start", rx)
        .await
        .expect("proxy saw connection.start with warren.shard");
    (conn, shard)
}

/// A connection that landed on `shard` (modulo the broker's shard count).
pub async fn connect_on_shard(b: &Broker, shard: usize) -> Connection {
    connect_on_shard_as(b, shard, "guest", "guest", "/").await
}

/// [`connect_on_shard`] as `user` to `vhost`.
pub async fn connect_on_shard_as(
    b: &Broker,
    shard: usize,
    user: &str,
    password: &str,
    vhost: &str,
) -> Connection {
    let want = shard % b.shards;
    for _ in 0..200 {
        let (conn, got) = connect_sniffed_as(b, user, password, vhost).await;
        assert!(
            got < b.shards,
            "warren.shard {got} out of range for {} shards",
            b.shards
        );
        if got == want {
            return conn;
        }
        let _ = within("close extra connection", conn.close(200, "wrong shard")).await;
    }
    panic!("could not land a connection on shard {want} in 200 attempts");
}

// ---------------------------------------------------------------------------
// Raw AMQP over a TCP or Unix socket, for malformed-input tests (and the
// Unix socket listener, which no common client library reaches).
// ---------------------------------------------------------------------------

/// The socket under a [`RawClient`].
pub enum RawStream {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl Read for RawStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            RawStream::Tcp(s) => s.read(buf),
            RawStream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for RawStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            RawStream::Tcp(s) => s.write(buf),
            RawStream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct RawClient {
    pub stream: RawStream,
    pub shard: usize,
    buf: Vec<u8>,
}

pub fn encode_frame(frame: &AMQPFrame) -> Vec<u8> {
    let (v, _) = cookie_factory::gen(gen_frame(frame), Vec::new()).expect("encode frame");
    v
}

impl RawClient {
    /// Connect and complete the handshake up to connection.open-ok.
    pub fn handshake(port: u16) -> RawClient {
        Self::handshake_with(port, 0)
    }

    /// Full handshake negotiating `heartbeat` seconds.
    pub fn handshake_with(port: u16, heartbeat: u16) -> RawClient {
        let mut c = Self::start(port);
        c.finish_handshake(heartbeat);
        c
    }

    /// start-ok (guest), tune-ok and connection.open up to open-ok.
    fn finish_handshake(&mut self, heartbeat: u16) {
        let c = self;
        c.start_ok("PLAIN", "\0guest\0guest");
        match c.read_frame() {
            Some(AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Tune(_)))) => {}
            other => panic!("expected connection.tune, got {other:?}"),
        }
        c.tune_ok(2047, 131_072, heartbeat);
        c.open_vhost("/");
        match c.read_frame() {
            Some(AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)),
            )) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
    }

    /// Connect, send the protocol header and read connection.start.
    pub fn start(port: u16) -> RawClient {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("raw connect");
        stream.set_read_timeout(Some(STEP)).unwrap();
        stream.set_nodelay(true).unwrap();
        Self::start_on(RawStream::Tcp(stream))
    }

    /// Connect to a Unix socket listener and read connection.start.
    pub fn start_unix(path: &Path) -> RawClient {
        let stream = std::os::unix::net::UnixStream::connect(path).expect("unix connect");
        stream.set_read_timeout(Some(STEP)).unwrap();
        Self::start_on(RawStream::Unix(stream))
    }

    /// The full handshake (guest, vhost "/") over a Unix socket listener.
    pub fn handshake_unix(path: &Path) -> RawClient {
        let mut c = Self::start_unix(path);
        c.finish_handshake(0);
        c
    }

    fn start_on(stream: RawStream) -> RawClient {
        let mut c = RawClient {
            stream,
            shard: usize::MAX,
            buf: Vec::new(),
        };
        c.stream.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
        let start = c.read_frame().expect("connection.start");
        c.shard = shard_of_start(&encode_frame(&start)).expect("warren.shard in connection.start");
        c
    }

    pub fn start_ok(&mut self, mechanism: &str, response: &str) {
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: RawFieldTable::default(),
                mechanism: mechanism.into(),
                response: response.into(),
                locale: "en_US".into(),
            })),
        );
    }

    pub fn tune_ok(&mut self, channel_max: u16, frame_max: u32, heartbeat: u16) {
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max,
                frame_max,
                heartbeat,
            })),
        );
    }

    pub fn open_vhost(&mut self, vhost: &str) {
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: vhost.into(),
            })),
        );
    }

    pub fn send_method(&mut self, channel: u16, class: AMQPClass) {
        let bytes = encode_frame(&AMQPFrame::Method(channel, class));
        self.stream.write_all(&bytes).expect("raw write");
    }

    pub fn send_content(&mut self, channel: u16, body: &[u8]) {
        let header = AMQPFrame::Header(
            channel,
            60,
            Box::new(AMQPContentHeader {
                class_id: 60,
                body_size: body.len() as u64,
                properties: AMQPProperties::default(),
            }),
        );
        let mut bytes = encode_frame(&header);
        bytes.extend(encode_frame(&AMQPFrame::Body(channel, body.to_vec())));
        self.stream.write_all(&bytes).expect("raw write");
    }

    /// Next frame: Ok(None) on EOF, Err on a read error or timeout.
    pub fn next(&mut self) -> std::io::Result<Option<AMQPFrame>> {
        loop {
            if let Some(n) = first_frame_len(&self.buf) {
                let frame: Vec<u8> = self.buf.drain(..n).collect();
                return match parse_frame(&frame[..]) {
                    Ok((_, f)) => Ok(Some(f)),
                    Err(e) => Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{e:?}"),
                    )),
                };
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk)? {
                0 => return Ok(None),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Next frame, or None on EOF / error / timeout.
    pub fn read_frame(&mut self) -> Option<AMQPFrame> {
        self.next().ok().flatten()
    }

    /// Read until the server closes the socket; returns every frame seen.
    /// Panics if the socket stays open longer than [`STEP`].
    pub fn read_until_closed(&mut self) -> Vec<AMQPFrame> {
        let mut frames = Vec::new();
        loop {
            match self.next() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => return frames,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    panic!("server did not close the connection within {STEP:?}; frames so far: {frames:?}")
                }
                // Reset by peer also means closed.
                Err(_) => return frames,
            }
        }
    }
}

pub const SHARD_COUNTS: [usize; 2] = [1, 2];

/// Next delivery from a consumer; panics on timeout, error or stream end.
pub async fn next_delivery(c: &mut lapin::Consumer, what: &str) -> lapin::message::Delivery {
    use futures_lite::StreamExt;
    match within(what, c.next()).await {
        Some(Ok(d)) => d,
        Some(Err(e)) => panic!("{what}: consumer error {e}"),
        None => panic!("{what}: consumer stream ended"),
    }
}

/// Assert nothing is delivered for `wait` (a short quiet period).
pub async fn assert_no_delivery(c: &mut lapin::Consumer, wait: Duration, what: &str) {
    use futures_lite::StreamExt;
    if let Ok(Some(d)) = tokio::time::timeout(wait, c.next()).await {
        panic!(
            "{what}: unexpected delivery {:?}",
            d.map(|d| String::from_utf8_lossy(&d.data).into_owned())
        );
    }
}

/// Ready message count of a queue, by passive declare on a fresh channel.
/// basic.consume on `queue` with a server-chosen tag, acknowledging
/// (`no_ack` false) or not.
pub async fn consume(ch: &Channel, queue: &str, no_ack: bool) -> lapin::Consumer {
    within(
        "basic.consume",
        ch.basic_consume(
            queue,
            "",
            lapin::options::BasicConsumeOptions {
                no_ack,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume")
}

pub async fn ready_count(conn: &Connection, queue: &str) -> u32 {
    let ch = open_channel(conn).await;
    let q = within(
        "passive queue.declare",
        ch.queue_declare(
            queue,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("passive declare {queue}: {e}"));
    let _ = ch.close(200, "bye").await;
    q.message_count()
}

impl RawClient {
    /// Read until the server's connection.close, answer close-ok, and wait
    /// for the socket to close. Returns the reply code.
    pub fn expect_connection_close(&mut self) -> u16 {
        loop {
            match self.next() {
                Ok(Some(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Close(c)),
                ))) => {
                    self.send_method_lossy(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                            connection::CloseOk {},
                        )),
                    );
                    self.read_until_closed();
                    return c.reply_code;
                }
                Ok(Some(_)) => continue,
                Ok(None) => panic!("server closed the socket without connection.close"),
                Err(e) => panic!("no connection.close from the server: {e}"),
            }
        }
    }

    /// Write, ignoring errors (the server may already have closed).
    pub fn send_method_lossy(&mut self, channel: u16, class: AMQPClass) {
        let bytes = encode_frame(&AMQPFrame::Method(channel, class));
        let _ = self.stream.write_all(&bytes);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// channel.open on `channel` and wait for open-ok.
    pub fn open_channel(&mut self, channel: u16) {
        use amq_protocol::protocol::channel;
        self.send_method(
            channel,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        );
        loop {
            match self.next() {
                Ok(Some(AMQPFrame::Method(
                    c,
                    AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)),
                ))) if c == channel => return,
                Ok(Some(_)) => continue,
                other => panic!("expected channel.open-ok, got {other:?}"),
            }
        }
    }
}

/// A two-worker tokio runtime for tests that mix blocking HTTP calls with
/// async lapin clients.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

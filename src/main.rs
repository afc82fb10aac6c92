//! `warren`: parse the configuration and start one shard per core.

use clap::Parser;

/// mimalloc: per-thread heaps suit thread-per-core, and it returns freed
/// memory to the OS (glibc kept a drained backlog's peak heap resident).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use glommio::channels::shared_channel;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use warren::config::{load_file, Config, FileConfig, Overrides};
use warren::ids::ShardId;
use warren::logging::Logging;
use warren::mailbox::{MAILBOX_BATCHES, URGENT_MAILBOX_BATCHES};
use warren::shard::{start_shard, ShardBoot};

#[derive(Parser, Debug)]
#[command(
    name = "warren",
    version,
    about = "A thread-per-core AMQP 0-9-1 broker",
    long_about = "A thread-per-core AMQP 0-9-1 broker. Every setting has an embedded default; \
a TOML file (--config) overrides defaults, and flags or WARREN_* environment variables override the file."
)]
struct Args {
    /// TOML configuration file (see the README for every key).
    #[arg(long, env = "WARREN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0].
    #[arg(long, env = "WARREN_BIND")]
    bind: Option<IpAddr>,
    /// AMQP port; 0 picks a free one and prints it [default: 5672].
    #[arg(long, env = "WARREN_PORT")]
    port: Option<u16>,
    /// Number of shards [default: one per available core].
    #[arg(long, env = "WARREN_SHARDS")]
    shards: Option<usize>,
    /// The one directory Warren writes to [default: ./warren-data].
    #[arg(long, env = "WARREN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Default user, created on first start [default: guest].
    #[arg(long, env = "WARREN_DEFAULT_USER")]
    default_user: Option<String>,
    /// Default user's password [default: guest].
    #[arg(long, env = "WARREN_DEFAULT_PASS")]
    default_pass: Option<String>,
    /// Heartbeat interval proposed to clients, seconds; 0 = off [default: 60].
    #[arg(long, env = "WARREN_HEARTBEAT")]
    heartbeat: Option<u16>,
    /// Do not pin shards to cores.
    #[arg(long, env = "WARREN_NO_PIN")]
    no_pin: bool,
    /// Size of each message segment file, MiB [default: 64].
    #[arg(long, env = "WARREN_SEGMENT_MB")]
    segment_mb: Option<usize>,
    /// Confirm persistent messages without waiting for fdatasync (survives
    /// a process crash, not a power loss). Default: wait (safe).
    #[arg(long, env = "WARREN_NO_FSYNC")]
    no_fsync: bool,
    /// Longest delay before ack/delivery records reach the store's journal, ms [default: 200].
    #[arg(long, env = "WARREN_FLUSH_INTERVAL_MS")]
    flush_interval_ms: Option<u64>,
    /// Longest a delivery may stay unacknowledged before its channel is
    /// closed, ms; 0 = no limit [default: 1800000, RabbitMQ's 30 min].
    #[arg(long, env = "WARREN_CONSUMER_TIMEOUT")]
    consumer_timeout: Option<u64>,
    /// Memory high watermark in bytes: above it publishers are blocked
    /// [default: 0.4 of RAM or of the cgroup's memory.max].
    #[arg(long, env = "WARREN_MEMORY_LIMIT")]
    memory_limit: Option<u64>,
    /// Fraction of the memory limit from which queues page messages to
    /// disk (vm_memory_high_watermark_paging_ratio) [default: 0.5].
    #[arg(long, env = "WARREN_PAGING_RATIO")]
    paging_ratio: Option<f64>,
    /// Free disk space below which publishers are blocked: bytes, or with
    /// a unit (50MB, 1GiB) [default: 50MB, RabbitMQ's].
    #[arg(long, env = "WARREN_DISK_FREE_LIMIT")]
    disk_free_limit: Option<String>,
    /// Management HTTP API port; 0 picks a free one and prints it [default: 15672].
    #[arg(long, env = "WARREN_MGMT_PORT")]
    mgmt_port: Option<u16>,
    /// Address for the management HTTP API [default: the AMQP --bind address].
    #[arg(long, env = "WARREN_MGMT_BIND")]
    mgmt_bind: Option<IpAddr>,
    /// Do not start the management HTTP API.
    #[arg(long, env = "WARREN_NO_MGMT")]
    no_mgmt: bool,
    /// Append log lines to this file instead of stderr; SIGHUP reopens it
    /// (for logrotate).
    #[arg(long, env = "WARREN_LOG_FILE")]
    log_file: Option<PathBuf>,
    /// Log line format: plaintext (or text) or json [default: plaintext].
    #[arg(long, env = "WARREN_LOG_FORMAT")]
    log_format: Option<String>,
    /// PEM certificate chain for the AMQPS (TLS) listener; with
    /// --tls-key-file it turns the listener on.
    #[arg(long, env = "WARREN_TLS_CERT_FILE")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key for the AMQPS listener.
    #[arg(long, env = "WARREN_TLS_KEY_FILE")]
    tls_key_file: Option<PathBuf>,
    /// PEM CA certificates that client certificates are verified against.
    #[arg(long, env = "WARREN_TLS_CA_FILE")]
    tls_ca_file: Option<PathBuf>,
    /// AMQPS port; 0 picks a free one and prints it [default: 5671].
    #[arg(long, env = "WARREN_TLS_PORT")]
    tls_port: Option<u16>,
    /// Ask clients for a certificate and verify it (RabbitMQ's verify_peer).
    #[arg(long, env = "WARREN_TLS_VERIFY_PEER")]
    tls_verify_peer: bool,
    /// With --tls-verify-peer: refuse clients without a certificate.
    #[arg(long, env = "WARREN_TLS_FAIL_IF_NO_PEER_CERT")]
    tls_fail_if_no_peer_cert: bool,
    /// Also accept AMQP connections on this Unix domain socket.
    #[arg(long, env = "WARREN_UNIX_SOCKET")]
    unix_socket: Option<PathBuf>,
    /// Serve the management API and UI over HTTPS with the --tls-* certificate.
    #[arg(long, env = "WARREN_MGMT_TLS")]
    mgmt_tls: bool,
}

/// Hold an exclusive lock on `<data-dir>/warren.lock` for the process
/// lifetime, so a second broker on the same directory refuses to start.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let path = dir.join("warren.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    #[allow(deprecated)]
    nix::fcntl::flock(f.as_raw_fd(), nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(
        |_| {
            format!(
                "data directory {} is in use by another warren process (lock {})",
                dir.display(),
                path.display()
            )
        },
    )?;
    let _ = std::fs::write(&path, std::process::id().to_string());
    Ok(f)
}

/// Raise the soft open-file limit to the hard limit, as RabbitMQ's
/// packaging does: every connection needs a descriptor. (Queues do not:
/// durable queues share their shard's journal.) Logged either way.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => tracing::warn!(soft, hard, "cannot raise the open-file limit: {e}"),
        },
        Ok((soft, _)) => tracing::info!(limit = soft, "open-file limit"),
        Err(e) => tracing::warn!("cannot read the open-file limit: {e}"),
    }
}

/// What a panic does: the whole process exits at once with status 70
/// (EX_SOFTWARE) after the panic message is logged, so a supervisor
/// (systemd `Restart=on-failure`) restarts the broker. A panic must never
/// leave a dead shard inside a live process (its connections would hang
/// and its queues stop). Nothing acknowledged is lost: confirms, commit-oks
/// and declare-oks for durable data are only sent once it is on disk.
fn exit_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let thread = std::thread::current();
        eprintln!(
            "warren: fatal: panic in thread {}; exiting (status 70) so a supervisor restarts the broker",
            thread.name().unwrap_or("?")
        );
        std::process::exit(70);
    }));
}

/// A shard's start-up report, or exit 1 with its error.
fn report_or_exit<T>(shard: usize, r: Result<Result<T, String>, mpsc::RecvError>) -> T {
    match r {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            eprintln!("warren: {e}");
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("warren: shard {shard} failed to start");
            std::process::exit(1);
        }
    }
}

fn main() {
    // Transparent huge pages off for this process (before the shards
    // allocate): mimalloc asks for them on its arenas, and then every page
    // it purges and reuses faults back in as a zeroed 2 MiB page. Measured
    // with `warren-loadgen dead-letter` (PERF.md): about twice the dead
    // letters per second without them.
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("warren: cannot disable transparent huge pages: {e}");
    }
    exit_on_panic();
    let args = Args::parse();
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let file = match &args.config {
        Some(path) => match load_file(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("warren: {}: {e}", path.display());
                std::process::exit(78);
            }
        },
        None => FileConfig::default(),
    };
    let overrides = Overrides {
        bind: args.bind,
        port: args.port,
        shards: args.shards,
        data_dir: args.data_dir,
        default_user: args.default_user,
        default_pass: args.default_pass,
        heartbeat: args.heartbeat,
        no_pin: args.no_pin,
        segment_mb: args.segment_mb,
        no_fsync: args.no_fsync,
        flush_interval_ms: args.flush_interval_ms,
        mgmt_port: args.mgmt_port,
        consumer_timeout: args.consumer_timeout,
        memory_limit: args.memory_limit,
        paging_ratio: args.paging_ratio,
        disk_free_limit: args.disk_free_limit,
        mgmt_bind: args.mgmt_bind,
        no_mgmt: args.no_mgmt,
        log_file: args.log_file,
        log_format: args.log_format,
        tls_cert_file: args.tls_cert_file,
        tls_key_file: args.tls_key_file,
        tls_ca_file: args.tls_ca_file,
        tls_port: args.tls_port,
        tls_verify_peer: args.tls_verify_peer,
        tls_fail_if_no_peer_cert: args.tls_fail_if_no_peer_cert,
        unix_socket: args.unix_socket,
        mgmt_tls: args.mgmt_tls,
    };
    let (config, pin) = match Config::resolve(file, overrides, cores.len()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warren: {e}");
            std::process::exit(78);
        }
    };
    let filter = std::env::var("WARREN_LOG").unwrap_or_else(|_| "info".into());
    let logging = match Logging::init(config.log_format, config.log_file.as_deref(), &filter) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("warren: {e}");
            std::process::exit(78);
        }
    };
    let shards = config.shards;
    if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
        eprintln!(
            "warren: cannot create data dir {}: {e}",
            config.data_dir.display()
        );
        std::process::exit(1);
    }
    let _lock = match lock_data_dir(&config.data_dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("warren: {e}");
            std::process::exit(1);
        }
    };
    raise_open_file_limit();
    // Clean shutdown: every shard writes and syncs its store, then we exit.
    // Installed before any shard starts, so a SIGTERM that arrives during
    // recovery or right after the banner is never the default (immediate)
    // termination; it is handled once every shard has reported ready.
    let mut signals = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warren: cannot install signal handlers: {e}");
            std::process::exit(1);
        }
    };
    let shutdown = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let (stopped_tx, stopped_rx) = mpsc::channel();

    // Full mesh of SPSC mailboxes: senders[i][j] goes from shard i to j.
    // Two per ordered pair: the data lane and the urgent lane
    // (`mailbox::Lane`).
    let mut senders: Vec<Vec<_>> = (0..shards).map(|_| Vec::new()).collect();
    let mut receivers: Vec<Vec<_>> = (0..shards).map(|_| Vec::new()).collect();
    let mut urgent_senders: Vec<Vec<_>> = (0..shards).map(|_| Vec::new()).collect();
    let mut urgent_receivers: Vec<Vec<_>> = (0..shards).map(|_| Vec::new()).collect();
    let pairs = (0..shards).flat_map(|i| (0..shards).map(move |j| (i, j)));
    for (i, j) in pairs.filter(|(i, j)| i != j) {
        let (tx, rx) = shared_channel::new_bounded(MAILBOX_BATCHES);
        senders[i].push((ShardId(j), tx));
        receivers[j].push((ShardId(i), rx));
        let (tx, rx) = shared_channel::new_bounded(URGENT_MAILBOX_BATCHES);
        urgent_senders[i].push((ShardId(j), tx));
        urgent_receivers[j].push((ShardId(i), rx));
    }
    let mut urgent = urgent_senders.into_iter().zip(urgent_receivers);
    let mut handles = Vec::new();
    let mut port = config.port;
    let mut tls_port = config.tls.as_ref().map(|t| t.port).unwrap_or(0);
    let mut mgmt_port: Option<u16> = None;
    for (i, (s, r)) in senders.into_iter().zip(receivers).enumerate() {
        let (ready_tx, ready_rx) = mpsc::channel();
        let cpu = if !pin || cores.is_empty() {
            None
        } else {
            Some(cores[i % cores.len()])
        };
        let (us, ur) = urgent.next().unwrap_or_default();
        let boot = ShardBoot {
            id: ShardId(i),
            shards,
            cpu,
            config: config.clone(),
            senders: s,
            receivers: r,
            urgent_senders: us,
            urgent_receivers: ur,
            ready: ready_tx,
            port,
            tls_port,
            shutdown: shutdown.clone(),
            started: started.clone(),
            stopped: stopped_tx.clone(),
        };
        match start_shard(boot) {
            Ok(h) => handles.push(h),
            Err(e) => {
                eprintln!("warren: cannot start shard {i}: {e}");
                std::process::exit(1);
            }
        }
        // One shard at a time: it recovers, then listens, then reports.
        // Shard 0 resolves port 0; the others bind the same port
        // (SO_REUSEPORT).
        let listening = report_or_exit(i, ready_rx.recv());
        port = listening.port;
        tls_port = listening.tls_port.unwrap_or(tls_port);
        if listening.mgmt_port.is_some() {
            mgmt_port = listening.mgmt_port;
        }
    }
    // Every line in one write: a reader that takes only the first line and
    // closes the pipe must not make a later write fail. The amqps line
    // comes last, and only with TLS, so readers of the first two lines
    // need not know about it.
    let mgmt = match mgmt_port {
        Some(p) => format!("{}:{p}", config.mgmt_bind),
        None => "disabled".into(),
    };
    let mut banner = format!(
        "warren listening on {}:{port}\nwarren management listening on {mgmt}\n",
        config.bind
    );
    if config.tls.is_some() {
        banner.push_str(&format!(
            "warren amqps listening on {}:{tls_port}\n",
            config.bind
        ));
    }
    if let Some(path) = &config.unix_socket {
        banner.push_str(&format!(
            "warren unix socket listening on {}\n",
            path.display()
        ));
    }
    started.store(true, Ordering::Release);
    // Logged before the banner: whoever waits for the banner (a test, a
    // supervisor) then finds the start in the log as well.
    tracing::info!(shards, port, "warren started");
    let _ = std::io::stdout().write_all(banner.as_bytes());
    let _ = std::io::stdout().flush();
    // systemd `Type=notify`: ready once every shard listens (a no-op
    // without NOTIFY_SOCKET).
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
    for signal in signals.forever() {
        if signal == signal_hook::consts::SIGHUP {
            // Log rotation: reopen the log file. No other setting is
            // reloaded at run time; a changed config file needs a restart.
            match logging.reopen() {
                Ok(Some(path)) => {
                    tracing::info!(path = %path.display(), "SIGHUP: reopened the log file")
                }
                Ok(None) => tracing::info!("SIGHUP: logging to stderr, nothing to reopen"),
                Err(e) => tracing::warn!("SIGHUP: {e}"),
            }
            continue;
        }
        tracing::info!("shutting down");
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        shutdown.store(true, Ordering::Release);
        for _ in 0..shards {
            if stopped_rx.recv_timeout(Duration::from_secs(10)).is_err() {
                break;
            }
        }
        break;
    }
    if let Some(path) = &config.unix_socket {
        let _ = std::fs::remove_file(path);
    }
    drop(handles);
    std::process::exit(0);
}

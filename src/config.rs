//! Broker configuration with embedded defaults.

use std::net::IpAddr;
use std::path::PathBuf;

/// The minimum frame size every peer must accept, in bytes (AMQP 0-9-1
/// spec 4.2.3): `frame_max` may not be set lower.
pub const FRAME_MIN_SIZE: u32 = 4096;

/// Default size of a store segment file, in bytes (`segment_size`).
pub const DEFAULT_SEGMENT_SIZE: usize = 64 * 1024 * 1024;

/// The resolved broker configuration (see [`Config::resolve`]); each shard
/// holds it read-only (`Link::config`).
#[derive(Clone, Debug)]
pub struct Config {
    /// Address the AMQP listener binds (default 0.0.0.0).
    pub bind: IpAddr,
    /// AMQP port (default 5672); 0 lets the OS pick one, which shard 0 reports.
    pub port: u16,
    /// Number of shards, one thread each, pinned to a core unless `--no-pin`
    /// (default: one per available core).
    pub shards: usize,
    /// The one directory Warren writes: store segments, journals, definitions log,
    /// `warren.lock` (default `./warren-data`).
    pub data_dir: PathBuf,
    /// User created on first start, tag administrator, full permissions on vhost
    /// `/` (default `guest`, as RabbitMQ does).
    pub default_user: String,
    /// Password of [`Config::default_user`] on first start (default `guest`).
    pub default_pass: String,
    /// Heartbeat interval proposed in connection.tune, in seconds (default 60); the
    /// client's tune-ok value is used, 0 = no heartbeats.
    pub heartbeat: u16,
    /// Largest frame proposed in connection.tune, in bytes, frame header and end
    /// octet included (default 131072, at least [`FRAME_MIN_SIZE`]); a tune-ok
    /// value outside `FRAME_MIN_SIZE..=frame_max` is refused with 530 NOT_ALLOWED.
    pub frame_max: u32,
    /// Most channels per connection proposed in connection.tune (default 2047); the
    /// lower of this and the client's value bounds channel.open (530 beyond it).
    pub channel_max: u16,
    /// Largest message body accepted, in bytes (default 128 MiB, RabbitMQ's
    /// `max_message_size`); a larger body-size gets 406 PRECONDITION_FAILED.
    pub max_message_size: u64,
    /// Node-wide limit on open AMQP connections; None = no limit. Beyond
    /// it connection.open is refused with 530 NOT_ALLOWED (see
    /// `defs::limits::node_connections_reached`).
    pub max_connections: Option<u64>,
    /// Longest a delivery may stay unacknowledged, in ms (RabbitMQ's
    /// `consumer_timeout`, default 30 min); beyond it the channel is closed
    /// with 406 PRECONDITION_FAILED and its unacked messages are requeued.
    /// A queue's `x-consumer-timeout` argument overrides it for that queue.
    /// None = no limit (configured as 0).
    pub consumer_timeout_ms: Option<u64>,
    /// The `product` server property sent in connection.start. "Warren" by
    /// default; set "RabbitMQ" for clients (and client test suites) that
    /// enable RabbitMQ-only behaviour only when the broker says RabbitMQ.
    pub product: String,
    /// Allow the user named `guest` to log in from non-loopback addresses
    /// (RabbitMQ's `loopback_users = none`); by default guest is refused with
    /// 403 ACCESS_REFUSED unless it connects over loopback.
    pub guest_remote: bool,
    /// Size of each message segment file, in bytes (configured in MiB).
    pub segment_size: usize,
    /// fdatasync before confirming persistent messages (the safe default).
    /// Off, a confirmed message survives a process crash (it is in the page
    /// cache) but not a power loss.
    pub fsync: bool,
    /// Longest time, in ms, between group-commit passes: an ack or delivery
    /// record may wait this long before it reaches the store's journal.
    /// Confirms never wait for it (a pending confirm starts a pass at once).
    pub flush_interval_ms: u64,
    /// The memory high watermark (RabbitMQ's `vm_memory_high_watermark`):
    /// above it every publishing connection is blocked (`memory`; default
    /// 0.4 of the memory available to the process).
    pub memory_limit: crate::memory::MemoryLimit,
    /// Fraction of the memory limit from which queues page messages of
    /// every kind to disk (RabbitMQ's
    /// `vm_memory_high_watermark_paging_ratio`, default 0.5; above 1:
    /// queues page only by their own backlog size).
    pub paging_ratio: f64,
    /// Free disk space below which publishers are blocked (RabbitMQ's
    /// `disk_free_limit`; default 50 MB).
    pub disk_free_limit: crate::disk::DiskFreeLimit,
    /// Management HTTP API port (None: disabled).
    pub mgmt_port: Option<u16>,
    /// Address the management HTTP API binds (default: the AMQP `bind` address).
    pub mgmt_bind: IpAddr,
    /// Management HTTP: longest wait for the next request on a connection,
    /// idle time included, ms (RabbitMQ's `management.tcp.idle_timeout`).
    pub mgmt_idle_timeout_ms: u64,
    /// Serve the management listener over HTTPS with the `[tls]`
    /// certificate (RabbitMQ's `management.ssl.*`); default false.
    pub mgmt_tls: bool,
    /// Append log lines to this file instead of stderr; SIGHUP reopens it
    /// (RabbitMQ's `log.file`).
    pub log_file: Option<PathBuf>,
    /// Log line format (RabbitMQ's `log.file.formatter`: plaintext or json).
    pub log_format: crate::logging::LogFormat,
    /// The AMQPS listener (TLS), when a certificate and key are configured.
    pub tls: Option<TlsConfig>,
    /// Which part of a client certificate names the user of an EXTERNAL
    /// login (RabbitMQ's `ssl_cert_login_from`).
    pub ssl_cert_login_from: CertLoginFrom,
    /// SASL mechanisms offered, in this order (RabbitMQ's
    /// `auth_mechanisms`): `PLAIN`, `AMQPLAIN`, and `EXTERNAL` (offered on
    /// TLS connections only); default PLAIN and AMQPLAIN.
    pub auth_mechanisms: Vec<AuthMechanism>,
    /// Also accept AMQP connections on this Unix domain socket (LavinMQ's
    /// `unix_path`); None = no Unix listener.
    pub unix_socket: Option<PathBuf>,
    /// File mode the socket is created with (access control: only users
    /// who may write to it can connect); default 0o666.
    pub unix_socket_mode: u32,
}

/// The AMQPS listener's settings (RabbitMQ's `listeners.ssl` and
/// `ssl_options.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// PEM file with the server's certificate chain (`ssl_options.certfile`).
    pub cert_file: PathBuf,
    /// PEM file with the server's private key (`ssl_options.keyfile`).
    pub key_file: PathBuf,
    /// PEM file with the CAs client certificates are checked against
    /// (`ssl_options.cacertfile`); required with `verify_peer`.
    pub ca_file: Option<PathBuf>,
    /// AMQPS port (default 5671; 0 picks a free one and prints it).
    pub port: u16,
    /// Ask clients for a certificate and verify it against `ca_file`
    /// (`ssl_options.verify = verify_peer`); default false (`verify_none`).
    pub verify_peer: bool,
    /// With `verify_peer`: refuse a client that sends no certificate
    /// (`ssl_options.fail_if_no_peer_cert`); default false.
    pub fail_if_no_peer_cert: bool,
}

/// A SASL mechanism of connection.start-ok that Warren implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMechanism {
    /// `PLAIN`: `\0user\0password`.
    Plain,
    /// `AMQPLAIN`: a field table with `LOGIN` and `PASSWORD`.
    Amqplain,
    /// `EXTERNAL`: the verified TLS client certificate names the user.
    External,
}

impl AuthMechanism {
    /// Every mechanism Warren implements.
    pub const ALL: [AuthMechanism; 3] = [Self::Plain, Self::Amqplain, Self::External];

    /// The name on the wire and in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Amqplain => "AMQPLAIN",
            Self::External => "EXTERNAL",
        }
    }

    /// The mechanism called `name` (case-sensitive, as on the wire).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// RabbitMQ's `ssl_cert_login_from`: the user name an EXTERNAL login takes
/// from the client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertLoginFrom {
    /// The whole subject, RFC 4514 order as RabbitMQ prints it
    /// (`CN=client,O=Example`); RabbitMQ's default.
    #[default]
    DistinguishedName,
    /// The subject's common name only.
    CommonName,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([0, 0, 0, 0]),
            port: 5672,
            shards: 1,
            data_dir: PathBuf::from("./warren-data"),
            default_user: "guest".into(),
            default_pass: "guest".into(),
            heartbeat: 60,
            frame_max: 131_072,
            channel_max: 2047,
            max_message_size: 128 * 1024 * 1024,
            max_connections: None,
            consumer_timeout_ms: Some(1_800_000),
            product: "Warren".into(),
            guest_remote: false,
            segment_size: DEFAULT_SEGMENT_SIZE,
            fsync: true,
            flush_interval_ms: 200,
            memory_limit: crate::memory::MemoryLimit::Fraction(crate::memory::DEFAULT_WATERMARK),
            paging_ratio: crate::memory::PAGING_RATIO,
            disk_free_limit: crate::disk::DiskFreeLimit::Bytes(crate::disk::DEFAULT_FREE_LIMIT),
            mgmt_port: Some(15672),
            mgmt_bind: IpAddr::from([0, 0, 0, 0]),
            mgmt_idle_timeout_ms: 120_000,
            mgmt_tls: false,
            log_file: None,
            log_format: crate::logging::LogFormat::Text,
            tls: None,
            ssl_cert_login_from: CertLoginFrom::DistinguishedName,
            unix_socket: None,
            unix_socket_mode: 0o666,
            auth_mechanisms: vec![AuthMechanism::Plain, AuthMechanism::Amqplain],
        }
    }
}

/// The TOML configuration file; every key is optional and overrides the
/// embedded default; flags and environment variables override the file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `bind`: AMQP listen address ([`Config::bind`]).
    pub bind: Option<IpAddr>,
    /// `port`: AMQP port ([`Config::port`]).
    pub port: Option<u16>,
    /// `shards`: number of shards, at least 1 ([`Config::shards`]).
    pub shards: Option<usize>,
    /// `data_dir`: the data directory ([`Config::data_dir`]).
    pub data_dir: Option<PathBuf>,
    /// `default_user`: created on first start ([`Config::default_user`]).
    pub default_user: Option<String>,
    /// `default_pass`: the default user's password on first start.
    pub default_pass: Option<String>,
    /// `heartbeat`: seconds proposed in connection.tune ([`Config::heartbeat`]).
    pub heartbeat: Option<u16>,
    /// `frame_max`: bytes, at least [`FRAME_MIN_SIZE`] ([`Config::frame_max`]); file only.
    pub frame_max: Option<u32>,
    /// `channel_max`: channels per connection ([`Config::channel_max`]); file only.
    pub channel_max: Option<u16>,
    /// `max_message_size`: bytes ([`Config::max_message_size`]); file only.
    pub max_message_size: Option<u64>,
    /// `max_connections`: node-wide connection limit ([`Config::max_connections`]);
    /// file only.
    pub max_connections: Option<u64>,
    /// `consumer_timeout`: ms, 0 = none ([`Config::consumer_timeout_ms`]).
    pub consumer_timeout: Option<u64>,
    /// `product`: connection.start `product` property ([`Config::product`]); file only.
    pub product: Option<String>,
    /// `guest_remote`: let guest log in remotely ([`Config::guest_remote`]); file only.
    pub guest_remote: Option<bool>,
    /// `memory_limit`: the memory high watermark in bytes (wins over
    /// `vm_memory_high_watermark`; [`Config::memory_limit`]).
    pub memory_limit: Option<u64>,
    /// `vm_memory_high_watermark`: the watermark as a fraction of the
    /// memory available, above 0 and at most 1 (default 0.4).
    pub vm_memory_high_watermark: Option<f64>,
    /// `vm_memory_high_watermark_paging_ratio`: above 0 ([`Config::paging_ratio`]).
    pub vm_memory_high_watermark_paging_ratio: Option<f64>,
    /// `disk_free_limit.absolute` / `disk_free_limit.relative`
    /// ([`Config::disk_free_limit`]).
    #[serde(default)]
    pub disk_free_limit: DiskSection,
    /// `pin_cores`: pin each shard's thread to its own core (default true;
    /// `--no-pin` turns it off).
    pub pin_cores: Option<bool>,
    /// The `[store]` table.
    #[serde(default)]
    pub store: StoreSection,
    /// The `[management]` table.
    #[serde(default)]
    pub management: MgmtSection,
    /// `[log]`: where and how to log.
    #[serde(default)]
    pub log: LogSection,
    /// `[tls]`: the AMQPS listener.
    #[serde(default)]
    pub tls: TlsSection,
    /// `ssl_cert_login_from`: `distinguished_name` (default) or `common_name`.
    pub ssl_cert_login_from: Option<String>,
    /// `auth_mechanisms`: e.g. `["PLAIN", "AMQPLAIN", "EXTERNAL"]` ([`Config::auth_mechanisms`]).
    pub auth_mechanisms: Option<Vec<String>>,
    /// `unix_socket`: path of a Unix domain socket listener ([`Config::unix_socket`]).
    pub unix_socket: Option<PathBuf>,
    /// `unix_socket_mode`: its file mode, e.g. `0o660` ([`Config::unix_socket_mode`]).
    pub unix_socket_mode: Option<u32>,
}

/// The `[tls]` table of the configuration file ([`TlsConfig`]); TLS is on
/// when `cert_file` and `key_file` are both set.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// `cert_file`: PEM certificate chain.
    pub cert_file: Option<PathBuf>,
    /// `key_file`: PEM private key.
    pub key_file: Option<PathBuf>,
    /// `ca_file`: PEM CA certificates for client certificates.
    pub ca_file: Option<PathBuf>,
    /// `port`: AMQPS port (default 5671).
    pub port: Option<u16>,
    /// `verify_peer`: verify client certificates (default false).
    pub verify_peer: Option<bool>,
    /// `fail_if_no_peer_cert`: refuse clients without one (default false).
    pub fail_if_no_peer_cert: Option<bool>,
}

/// The `[log]` table of the configuration file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `file`: append log lines to this path instead of stderr ([`Config::log_file`]).
    pub file: Option<PathBuf>,
    /// `format`: `plaintext` (default) or `json` ([`Config::log_format`]).
    pub format: Option<String>,
}

/// The `[store]` table of the configuration file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `segment_mb`: segment file size in MiB, 1 to 4095 (default 64).
    pub segment_mb: Option<usize>,
    /// `fsync`: fdatasync before confirming ([`Config::fsync`]; default true).
    pub fsync: Option<bool>,
    /// `flush_interval_ms`: ms between group-commit passes ([`Config::flush_interval_ms`]).
    pub flush_interval_ms: Option<u64>,
}

/// The `disk_free_limit` table (RabbitMQ's dotted keys work as they are in
/// TOML: `disk_free_limit.absolute = "50MB"`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSection {
    /// `absolute`: bytes, as a number or a string with a unit ("50MB",
    /// "1GiB"; `crate::disk::parse_size`).
    pub absolute: Option<SizeValue>,
    /// `relative`: a factor of the memory available (RabbitMQ's
    /// `disk_free_limit.relative`).
    pub relative: Option<f64>,
}

/// A size in the configuration file: bytes, or a string with a unit.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    /// A byte count.
    Bytes(u64),
    /// A number with a unit (`crate::disk::parse_size`).
    Text(String),
}

/// The `[management]` table of the configuration file (the HTTP API).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MgmtSection {
    /// `enabled`: start the management HTTP API (default true).
    pub enabled: Option<bool>,
    /// `port`: HTTP port (default 15672; 0 lets the OS pick one).
    pub port: Option<u16>,
    /// `bind`: HTTP listen address (default: the AMQP `bind`).
    pub bind: Option<IpAddr>,
    /// `idle_timeout_ms`: ms ([`Config::mgmt_idle_timeout_ms`]; default 120000, at least 1).
    pub idle_timeout_ms: Option<u64>,
    /// `tls`: HTTPS with the `[tls]` certificate ([`Config::mgmt_tls`]).
    pub tls: Option<bool>,
}

fn config_error(key: &str, problem: impl Into<String>) -> crate::error::InfraError {
    crate::error::InfraError::Config {
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// Parse a configuration file; errors name the key and the problem.
pub fn load_file(path: &std::path::Path) -> Result<FileConfig, crate::error::InfraError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| config_error(&path.display().to_string(), e.to_string()))?;
    parse_file(&text)
}

/// Parse configuration-file text (TOML; unknown keys are refused). The error is
/// [`InfraError::Config`](crate::error::InfraError::Config) naming the key, taken
/// from the message or from the line the parser points at.
pub fn parse_file(text: &str) -> Result<FileConfig, crate::error::InfraError> {
    toml::from_str::<FileConfig>(text).map_err(|e| {
        let msg = e.message().to_string();
        // Name the key: from the message for unknown keys, else the key on
        // the line the error points at.
        let key = if let Some(rest) = msg.strip_prefix("unknown field `") {
            rest.split('`').next().unwrap_or("?").to_string()
        } else if let Some(span) = e.span() {
            let line_start = text[..span.start.min(text.len())]
                .rfind('\n')
                .map(|i| i + 1)
                .unwrap_or(0);
            let line = text[line_start..].lines().next().unwrap_or("");
            line.split('=')
                .next()
                .unwrap_or("?")
                .trim()
                .trim_matches(['[', ']'])
                .to_string()
        } else {
            "?".into()
        };
        config_error(&key, msg.trim())
    })
}

/// Values given on the command line or in the environment.
#[derive(Debug, Default)]
pub struct Overrides {
    /// `--bind` / `WARREN_BIND`.
    pub bind: Option<IpAddr>,
    /// `--port` / `WARREN_PORT`.
    pub port: Option<u16>,
    /// `--shards` / `WARREN_SHARDS`.
    pub shards: Option<usize>,
    /// `--data-dir` / `WARREN_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--default-user` / `WARREN_DEFAULT_USER`.
    pub default_user: Option<String>,
    /// `--default-pass` / `WARREN_DEFAULT_PASS`.
    pub default_pass: Option<String>,
    /// `--heartbeat` / `WARREN_HEARTBEAT`, seconds.
    pub heartbeat: Option<u16>,
    /// `--no-pin` / `WARREN_NO_PIN`: do not pin shards to cores (wins over `pin_cores`).
    pub no_pin: bool,
    /// `--segment-mb` / `WARREN_SEGMENT_MB`, MiB.
    pub segment_mb: Option<usize>,
    /// `--no-fsync` / `WARREN_NO_FSYNC`: confirm without fdatasync (wins over
    /// `store.fsync`).
    pub no_fsync: bool,
    /// `--flush-interval-ms` / `WARREN_FLUSH_INTERVAL_MS`, ms.
    pub flush_interval_ms: Option<u64>,
    /// `--mgmt-port` / `WARREN_MGMT_PORT`.
    pub mgmt_port: Option<u16>,
    /// `--consumer-timeout` / `WARREN_CONSUMER_TIMEOUT`, ms (0 = none).
    pub consumer_timeout: Option<u64>,
    /// `--mgmt-bind` / `WARREN_MGMT_BIND`.
    pub mgmt_bind: Option<IpAddr>,
    /// `--memory-limit` / `WARREN_MEMORY_LIMIT`, bytes.
    pub memory_limit: Option<u64>,
    /// `--paging-ratio` / `WARREN_PAGING_RATIO` ([`Config::paging_ratio`]).
    pub paging_ratio: Option<f64>,
    /// `--disk-free-limit` / `WARREN_DISK_FREE_LIMIT`: a size
    /// (`crate::disk::parse_size`).
    pub disk_free_limit: Option<String>,
    /// `--no-mgmt` / `WARREN_NO_MGMT`: no management HTTP API (wins over
    /// `management.enabled`).
    pub no_mgmt: bool,
    /// `--log-file`.
    pub log_file: Option<PathBuf>,
    /// `--log-format`: `plaintext`/`text` or `json`.
    pub log_format: Option<String>,
    /// `--tls-cert-file`.
    pub tls_cert_file: Option<PathBuf>,
    /// `--tls-key-file`.
    pub tls_key_file: Option<PathBuf>,
    /// `--tls-ca-file`.
    pub tls_ca_file: Option<PathBuf>,
    /// `--tls-port`.
    pub tls_port: Option<u16>,
    /// `--tls-verify-peer`.
    pub tls_verify_peer: bool,
    /// `--tls-fail-if-no-peer-cert`.
    pub tls_fail_if_no_peer_cert: bool,
    /// `--unix-socket`.
    pub unix_socket: Option<PathBuf>,
    /// `--mgmt-tls`.
    pub mgmt_tls: bool,
}

impl Config {
    /// Merge defaults < file < flags/environment and validate (`segment_mb` and
    /// `shards` at least 1, `frame_max` at least [`FRAME_MIN_SIZE`]). `cores`
    /// is the default shard count. Returns the config and whether to pin
    /// shards to cores; an invalid value is `InfraError::Config`.
    pub fn resolve(
        file: FileConfig,
        mut o: Overrides,
        cores: usize,
    ) -> Result<(Config, bool), crate::error::InfraError> {
        let d = Config::default();
        let tls = resolve_tls(&mut o, file.tls)?;
        let segment_mb = o
            .segment_mb
            .or(file.store.segment_mb)
            .unwrap_or(d.segment_size / (1024 * 1024));
        if segment_mb == 0 {
            return Err(config_error("store.segment_mb", "must be at least 1"));
        }
        // Offsets inside a segment are 32-bit (`store::segment`).
        if segment_mb >= 4096 {
            return Err(config_error(
                "store.segment_mb",
                "must be below 4096 (4 GiB)",
            ));
        }
        let shards = o.shards.or(file.shards).unwrap_or(cores.max(1));
        if shards == 0 {
            return Err(config_error("shards", "must be at least 1"));
        }
        let frame_max = file.frame_max.unwrap_or(d.frame_max);
        if frame_max < FRAME_MIN_SIZE {
            return Err(config_error(
                "frame_max",
                format!("must be at least {}", FRAME_MIN_SIZE),
            ));
        }
        let mgmt_enabled = !o.no_mgmt && file.management.enabled.unwrap_or(true);
        use crate::memory::MemoryLimit;
        let memory_limit = match (
            o.memory_limit.or(file.memory_limit),
            file.vm_memory_high_watermark,
        ) {
            (Some(0), _) => return Err(config_error("memory_limit", "must be at least 1 (bytes)")),
            (Some(b), _) => MemoryLimit::Bytes(b),
            (None, Some(f)) if !(f > 0.0 && f <= 1.0) => {
                return Err(config_error(
                    "vm_memory_high_watermark",
                    "must be above 0 and at most 1",
                ))
            }
            (None, Some(f)) => MemoryLimit::Fraction(f),
            (None, None) => d.memory_limit,
        };
        let paging_ratio = o
            .paging_ratio
            .or(file.vm_memory_high_watermark_paging_ratio)
            .unwrap_or(d.paging_ratio);
        if !(paging_ratio > 0.0 && paging_ratio.is_finite()) {
            return Err(config_error(
                "vm_memory_high_watermark_paging_ratio",
                "must be above 0",
            ));
        }
        use crate::disk::DiskFreeLimit;
        let size = |key: &str, v: SizeValue| match v {
            SizeValue::Bytes(b) => Ok(b),
            SizeValue::Text(t) => crate::disk::parse_size(&t).map_err(|e| config_error(key, e)),
        };
        let disk_free_limit = match (
            o.disk_free_limit.map(SizeValue::Text),
            file.disk_free_limit.absolute,
            file.disk_free_limit.relative,
        ) {
            (Some(v), _, _) => DiskFreeLimit::Bytes(size("disk_free_limit", v)?),
            (None, Some(v), _) => DiskFreeLimit::Bytes(size("disk_free_limit.absolute", v)?),
            (None, None, Some(f)) if !(f >= 0.0 && f.is_finite()) => {
                return Err(config_error(
                    "disk_free_limit.relative",
                    "must be 0 or more",
                ))
            }
            (None, None, Some(f)) => DiskFreeLimit::Relative(f),
            (None, None, None) => d.disk_free_limit,
        };
        let log_format = match o.log_format.take().or(file.log.format) {
            Some(f) => f.parse().map_err(|e| config_error("log.format", e))?,
            None => d.log_format,
        };
        let ssl_cert_login_from = match file.ssl_cert_login_from.as_deref() {
            None | Some("distinguished_name") => CertLoginFrom::DistinguishedName,
            Some("common_name") => CertLoginFrom::CommonName,
            Some(other) => {
                return Err(config_error(
                    "ssl_cert_login_from",
                    format!("{other:?}: expected distinguished_name or common_name"),
                ))
            }
        };
        let unix_socket_mode = file.unix_socket_mode.unwrap_or(d.unix_socket_mode);
        if unix_socket_mode > 0o777 {
            return Err(config_error(
                "unix_socket_mode",
                "must be a file mode (0o000 to 0o777)",
            ));
        }
        let auth_mechanisms = match file.auth_mechanisms {
            None => d.auth_mechanisms,
            Some(names) => names
                .iter()
                .map(|n| {
                    AuthMechanism::from_name(n).ok_or_else(|| {
                        config_error(
                            "auth_mechanisms",
                            format!(
                                "unknown mechanism {n:?}: expected PLAIN, AMQPLAIN or EXTERNAL"
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        if auth_mechanisms.is_empty() {
            return Err(config_error(
                "auth_mechanisms",
                "must name at least one mechanism",
            ));
        }
        if let Some(t) = &tls {
            let p = o.port.or(file.port).unwrap_or(d.port);
            if t.port != 0 && t.port == p {
                return Err(config_error(
                    "tls.port",
                    format!("{p} is the plain AMQP port too"),
                ));
            }
        }
        let mgmt_tls = o.mgmt_tls || file.management.tls.unwrap_or(false);
        if mgmt_tls && tls.is_none() {
            return Err(config_error(
                "management.tls",
                "needs the [tls] certificate and key (tls.cert_file, tls.key_file)",
            ));
        }
        let c = Config {
            mgmt_tls,
            auth_mechanisms,
            unix_socket: o.unix_socket.take().or(file.unix_socket),
            unix_socket_mode,
            log_file: o.log_file.or(file.log.file),
            log_format,
            tls,
            ssl_cert_login_from,
            bind: o.bind.or(file.bind).unwrap_or(d.bind),
            port: o.port.or(file.port).unwrap_or(d.port),
            shards,
            data_dir: o.data_dir.or(file.data_dir).unwrap_or(d.data_dir),
            default_user: o
                .default_user
                .or(file.default_user)
                .unwrap_or(d.default_user),
            default_pass: o
                .default_pass
                .or(file.default_pass)
                .unwrap_or(d.default_pass),
            heartbeat: o.heartbeat.or(file.heartbeat).unwrap_or(d.heartbeat),
            frame_max,
            channel_max: file.channel_max.unwrap_or(d.channel_max),
            max_message_size: file.max_message_size.unwrap_or(d.max_message_size),
            max_connections: file.max_connections.or(d.max_connections),
            consumer_timeout_ms: match o.consumer_timeout.or(file.consumer_timeout) {
                Some(0) => None,
                Some(ms) => Some(ms),
                None => d.consumer_timeout_ms,
            },
            product: file.product.unwrap_or(d.product),
            guest_remote: file.guest_remote.unwrap_or(d.guest_remote),
            segment_size: segment_mb * 1024 * 1024,
            fsync: !o.no_fsync && file.store.fsync.unwrap_or(d.fsync),
            flush_interval_ms: o
                .flush_interval_ms
                .or(file.store.flush_interval_ms)
                .unwrap_or(d.flush_interval_ms),
            memory_limit,
            paging_ratio,
            disk_free_limit,
            mgmt_port: mgmt_enabled.then(|| o.mgmt_port.or(file.management.port).unwrap_or(15672)),
            // The management API listens where AMQP does unless told otherwise.
            mgmt_bind: o
                .mgmt_bind
                .or(file.management.bind)
                .or(o.bind)
                .or(file.bind)
                .unwrap_or(d.mgmt_bind),
            mgmt_idle_timeout_ms: file
                .management
                .idle_timeout_ms
                .unwrap_or(d.mgmt_idle_timeout_ms)
                .max(1),
        };
        let pin = !o.no_pin && file.pin_cores.unwrap_or(true);
        Ok((c, pin))
    }
}

/// The `[tls]` table merged with its flags: `None` without a certificate
/// and key; a half-configured listener is an error naming the missing key.
fn resolve_tls(
    o: &mut Overrides,
    f: TlsSection,
) -> Result<Option<TlsConfig>, crate::error::InfraError> {
    let cert = o.tls_cert_file.take().or(f.cert_file);
    let key = o.tls_key_file.take().or(f.key_file);
    let ca_file = o.tls_ca_file.take().or(f.ca_file);
    let verify_peer = o.tls_verify_peer || f.verify_peer.unwrap_or(false);
    let fail_if_no_peer_cert =
        o.tls_fail_if_no_peer_cert || f.fail_if_no_peer_cert.unwrap_or(false);
    let (cert_file, key_file) = match (cert, key) {
        (None, None) => {
            if verify_peer || ca_file.is_some() || o.tls_port.is_some() || f.port.is_some() {
                return Err(config_error(
                    "tls.cert_file",
                    "the TLS listener needs cert_file and key_file",
                ));
            }
            return Ok(None);
        }
        (Some(_), None) => return Err(config_error("tls.key_file", "missing (cert_file is set)")),
        (None, Some(_)) => return Err(config_error("tls.cert_file", "missing (key_file is set)")),
        (Some(c), Some(k)) => (c, k),
    };
    if verify_peer && ca_file.is_none() {
        return Err(config_error(
            "tls.ca_file",
            "verify_peer needs the CA certificates to verify against",
        ));
    }
    if fail_if_no_peer_cert && !verify_peer {
        return Err(config_error(
            "tls.fail_if_no_peer_cert",
            "only meaningful with verify_peer = true",
        ));
    }
    Ok(Some(TlsConfig {
        cert_file,
        key_file,
        ca_file,
        port: o.tls_port.or(f.port).unwrap_or(5671),
        verify_peer,
        fail_if_no_peer_cert,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_config_names_the_key() {
        let e = parse_file("port = 5672\nhartbeat = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hartbeat"), "{e}");
        let e = parse_file("[store]\nsegment_mb = \"big\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("segment_mb"), "{e}");
        let f = parse_file("[store]\nsegment_mb = 0\n").unwrap();
        let e = Config::resolve(f, Overrides::default(), 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.segment_mb"), "{e}");
    }

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let f = parse_file("port = 1234\nheartbeat = 5\n[management]\nenabled = false\n").unwrap();
        let o = Overrides {
            port: Some(999),
            ..Default::default()
        };
        let (c, _) = Config::resolve(f, o, 2).unwrap();
        assert_eq!(
            (c.port, c.heartbeat, c.mgmt_port, c.shards),
            (999, 5, None, 2)
        );
    }

    #[test]
    fn deploy_example_config_is_valid() {
        let f = parse_file(include_str!("../deploy/warren.toml")).unwrap();
        let (c, _) = Config::resolve(f, Overrides::default(), 2).unwrap();
        assert_eq!(c.log_format, crate::logging::LogFormat::Text);
        let f = parse_file("[log]\nformat = \"json\"\nfile = \"/tmp/w.log\"\n").unwrap();
        let (c, _) = Config::resolve(f, Overrides::default(), 2).unwrap();
        assert_eq!(c.log_format, crate::logging::LogFormat::Json);
        assert_eq!(
            c.log_file.as_deref(),
            Some(std::path::Path::new("/tmp/w.log"))
        );
    }

    #[test]
    fn disk_free_limit_reads_rabbitmq_dotted_keys_and_units() {
        use crate::disk::DiskFreeLimit;
        let f = parse_file("disk_free_limit.absolute = \"2GB\"\n").unwrap();
        let (c, _) = Config::resolve(f, Overrides::default(), 1).unwrap();
        assert_eq!(c.disk_free_limit, DiskFreeLimit::Bytes(2_000_000_000));
        let f = parse_file("disk_free_limit.relative = 1.5\n").unwrap();
        let (c, _) = Config::resolve(f, Overrides::default(), 1).unwrap();
        assert_eq!(c.disk_free_limit, DiskFreeLimit::Relative(1.5));
        let (c, _) = Config::resolve(FileConfig::default(), Overrides::default(), 1).unwrap();
        assert_eq!(c.disk_free_limit, DiskFreeLimit::Bytes(50_000_000));
        let f = parse_file("disk_free_limit.absolute = \"9 parsecs\"\n").unwrap();
        let e = Config::resolve(f, Overrides::default(), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("disk_free_limit.absolute"), "{e}");
    }
}

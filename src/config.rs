//! Broker configuration with embedded defaults.

use std::net::IpAddr;
use std::path::PathBuf;

/// The minimum frame size every peer must accept, in bytes (AMQP 0-9-1
/// spec 4.2.3): `frame_max` may not be set lower.
pub const FRAME_MIN_SIZE: u32 = 4096;

/// Default size of a store segment file, in bytes (`segment_size`).
pub const DEFAULT_SEGMENT_SIZE: usize = 64 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct Config {
    pub bind: IpAddr,
    pub port: u16,
    pub shards: usize,
    pub data_dir: PathBuf,
    pub default_user: String,
    pub default_pass: String,
    pub heartbeat: u16,
    pub frame_max: u32,
    pub channel_max: u16,
    pub max_message_size: u64,
    /// Node-wide limit on open AMQP connections; None = no limit. Beyond
    /// it connection.open is refused with 530 NOT_ALLOWED (see
    /// `defs::limits::node_connections_reached`).
    pub max_connections: Option<u64>,
    /// The `product` server property sent in connection.start. "Warren" by
    /// default; set "RabbitMQ" for clients (and client test suites) that
    /// enable RabbitMQ-only behaviour only when the broker says RabbitMQ.
    pub product: String,
    /// Allow the default user from non-loopback addresses (RabbitMQ's
    /// loopback_users = none).
    pub guest_remote: bool,
    /// Size of each message segment file.
    pub segment_size: usize,
    /// fdatasync before confirming persistent messages (the safe default).
    /// Off, a confirmed message survives a process crash (it is in the page
    /// cache) but not a power loss.
    pub fsync: bool,
    /// Longest time an ack or delivery record waits in memory before it is
    /// written to its queue index (confirms never wait for this).
    pub flush_interval_ms: u64,
    /// Management HTTP API port (None: disabled).
    pub mgmt_port: Option<u16>,
    pub mgmt_bind: IpAddr,
    /// Management HTTP: longest wait for the next request on a connection,
    /// idle time included, ms (RabbitMQ's `management.tcp.idle_timeout`).
    pub mgmt_idle_timeout_ms: u64,
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
            product: "Warren".into(),
            guest_remote: false,
            segment_size: DEFAULT_SEGMENT_SIZE,
            fsync: true,
            flush_interval_ms: 200,
            mgmt_port: Some(15672),
            mgmt_bind: IpAddr::from([0, 0, 0, 0]),
            mgmt_idle_timeout_ms: 120_000,
        }
    }
}

/// The TOML configuration file; every key is optional and overrides the
/// embedded default; flags and environment variables override the file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub bind: Option<IpAddr>,
    pub port: Option<u16>,
    pub shards: Option<usize>,
    pub data_dir: Option<PathBuf>,
    pub default_user: Option<String>,
    pub default_pass: Option<String>,
    pub heartbeat: Option<u16>,
    pub frame_max: Option<u32>,
    pub channel_max: Option<u16>,
    pub max_message_size: Option<u64>,
    pub max_connections: Option<u64>,
    pub product: Option<String>,
    pub guest_remote: Option<bool>,
    pub pin_cores: Option<bool>,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub management: MgmtSection,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    pub segment_mb: Option<usize>,
    pub fsync: Option<bool>,
    pub flush_interval_ms: Option<u64>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MgmtSection {
    pub enabled: Option<bool>,
    pub port: Option<u16>,
    pub bind: Option<IpAddr>,
    pub idle_timeout_ms: Option<u64>,
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
    pub bind: Option<IpAddr>,
    pub port: Option<u16>,
    pub shards: Option<usize>,
    pub data_dir: Option<PathBuf>,
    pub default_user: Option<String>,
    pub default_pass: Option<String>,
    pub heartbeat: Option<u16>,
    pub no_pin: bool,
    pub segment_mb: Option<usize>,
    pub no_fsync: bool,
    pub flush_interval_ms: Option<u64>,
    pub mgmt_port: Option<u16>,
    pub mgmt_bind: Option<IpAddr>,
    pub no_mgmt: bool,
}

impl Config {
    /// Merge defaults < file < flags/environment and validate.
    pub fn resolve(
        file: FileConfig,
        o: Overrides,
        cores: usize,
    ) -> Result<(Config, bool), crate::error::InfraError> {
        let d = Config::default();
        let segment_mb = o
            .segment_mb
            .or(file.store.segment_mb)
            .unwrap_or(d.segment_size / (1024 * 1024));
        if segment_mb == 0 {
            return Err(config_error("store.segment_mb", "must be at least 1"));
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
        let c = Config {
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
            product: file.product.unwrap_or(d.product),
            guest_remote: file.guest_remote.unwrap_or(d.guest_remote),
            segment_size: segment_mb * 1024 * 1024,
            fsync: !o.no_fsync && file.store.fsync.unwrap_or(d.fsync),
            flush_interval_ms: o
                .flush_interval_ms
                .or(file.store.flush_interval_ms)
                .unwrap_or(d.flush_interval_ms),
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
}

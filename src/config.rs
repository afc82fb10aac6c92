//! Broker configuration with embedded defaults.

use std::net::IpAddr;
use std::path::PathBuf;

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
            guest_remote: false,
            segment_size: crate::store::DEFAULT_SEGMENT_SIZE,
            fsync: true,
            flush_interval_ms: 200,
            mgmt_port: Some(15672),
            mgmt_bind: IpAddr::from([0, 0, 0, 0]),
        }
    }
}

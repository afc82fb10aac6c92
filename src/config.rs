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
        }
    }
}

//! A channel's counters for the management API (`/api/channels`,
//! exchange `message_stats`): plain numbers bumped by the handlers.

/// Channel counters for the management API.
#[derive(Default, Clone, Debug)]
pub struct ChannelStats {
    /// The channel's vhost (set at channel.open), for its exchange counters.
    pub vhost: String,
    /// Messages published (counted when routed; in a transaction, at commit).
    pub publish: u64,
    /// Deliveries: basic.deliver plus basic.get-ok.
    pub deliver: u64,
    /// Messages acked by the client (counted when received, even inside a
    /// transaction later rolled back).
    pub ack: u64,
    /// Publishes confirmed with basic.ack (messages, not frames).
    pub confirm: u64,
    /// Messages returned with basic.return (mandatory and unroutable).
    pub returned: u64,
    /// Per exchange published to: (exchange, messages in, messages routed).
    pub exchanges: Vec<(amq_protocol::types::ShortString, u64, u64)>,
}

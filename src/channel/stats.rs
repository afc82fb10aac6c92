//! A channel's counters for the management API (`/api/channels`,
//! exchange `message_stats`): plain numbers bumped by the handlers; and a
//! connection's `state` as the API reports it.

use std::time::{Duration, Instant};

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

impl super::Conn {
    /// Some channel of this connection has a consumer (flow control never
    /// pauses such a connection; see `queue::pressure`).
    pub fn consumes(&self) -> bool {
        self.state
            .borrow()
            .channels
            .values()
            .any(|c| !c.consumers.is_empty())
    }

    /// The connection's `state` as RabbitMQ's management API reports it:
    /// `blocked` while told `connection.blocked` (a resource alarm),
    /// `flow` while (and a second after) its reader waits for other
    /// shards' mailboxes or for a queue in flow control (publisher flow
    /// control), `blocked` while otherwise not read from, else `running`.
    pub fn api_state(&self, now: Instant) -> &'static str {
        if self.blocked_sent.get() {
            "blocked"
        } else if self.flow_hold.get().is_some()
            || self
                .flow_at
                .get()
                .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            "flow"
        } else if self.read_paused.get() {
            "blocked"
        } else {
            "running"
        }
    }
}

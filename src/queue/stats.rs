//! A queue's counters for the management API and `/metrics`: plain
//! numbers the queue bumps as it decides, never read on the data path.

/// A queue's monotonic counters (`message_stats` and `/metrics`).
#[derive(Debug, Default, Clone, Copy)]
pub struct QueueStats {
    /// Messages dropped because their TTL passed.
    pub expired: u64,
    /// Messages handed to the dead-letter exchange (any reason).
    pub dead_lettered: u64,
    /// Messages that died, by whether the queue had a dead-letter exchange
    /// (`[0]`: none, dropped; `[1]`: dead-lettered) and by reason
    /// ([`super::DeathReason::index`]): what RabbitMQ's
    /// `rabbitmq_global_messages_dead_lettered_<reason>_total` counts with
    /// `dead_letter_strategy` `disabled` / `at_most_once`.
    pub died: [[u64; 4]; 2],
    /// Messages enqueued (not counting recovered ones).
    pub publish: u64,
    /// Deliveries to consumers, no-ack ones included.
    pub deliver: u64,
    /// Messages taken by basic.get.
    pub get: u64,
    /// Deliveries settled without requeue (ack, or reject/nack discard).
    pub ack: u64,
    /// Deliveries with the redelivered flag set.
    pub redeliver: u64,
}

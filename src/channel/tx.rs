//! A transaction's buffered operations (AMQP 0-9-1 `tx` class): what
//! tx.commit applies and tx.rollback discards. Holds data only; the
//! handlers in `handlers::tx` apply it.

use super::Unacked;
use crate::message::MsgRef;
use crate::queue::Settle;

/// One transactional operation, applied at tx.commit.
pub enum TxOp {
    /// A basic.publish (complete with its content) buffered until tx.commit.
    Publish {
        /// The complete message.
        msg: MsgRef,
        /// basic.publish `mandatory`: basic.return with 312 NO_ROUTE if unroutable at
        /// commit.
        mandatory: bool,
        /// The message's `headers` table, decoded, for headers exchanges.
        headers: Option<amq_protocol::types::FieldTable>,
    },
    /// basic.ack / nack / reject buffered until tx.commit. The deliveries are out
    /// of `Channel::unacked` meanwhile: tx.rollback puts them back, a channel
    /// closing first requeues them.
    Settle {
        /// (delivery tag, delivery) pairs settled.
        tags: Vec<(u64, Unacked)>,
        /// Ack, requeue or discard.
        how: Settle,
    },
}

//! Consumer delivery timeout (RabbitMQ's `consumer_timeout`): a delivery
//! left unacknowledged longer than its timeout closes its channel with 406
//! PRECONDITION_FAILED, which requeues the channel's unacked messages.
//!
//! The timeout is the queue's `x-consumer-timeout` argument (ms) or else
//! the node's `consumer_timeout` (default 30 min; 0 = none). Each delivery
//! in ack mode (basic.deliver and basic.get-ok) carries its deadline, stamped
//! with the shard's coarse clock (no clock read per message). Once a second
//! [`check`] looks at the oldest unacked delivery of each channel only (the
//! first entry of its delivery-tag-ordered map): never a scan of the unacked
//! messages. A channel whose deliveries have different timeouts is judged
//! by its oldest delivery, so a younger delivery with a shorter timeout
//! counts once it is the oldest. RabbitMQ 3.10 checks once a minute; Warren
//! fires within about 2 s after the deadline, and not before it as long as
//! the shard refreshes its coarse clock on time (its one-second slack is
//! added; a shard stalled for longer could fire that much early). The text is RabbitMQ 3.10's, recorded with
//! `consumer_timeout` set to 1000 on the reference node and checked in
//! `tests/consume.rs`.

use super::table::{ConnTable, Cx};
use crate::clock::{coarse_ms, now_ms, COARSE_PERIOD_MS};
use crate::error::AmqpError;
use crate::ids::QueueId;

/// The ack timeout of deliveries from `queue`, in ms; 0 = none.
pub fn queue_timeout(cx: &Cx, queue: QueueId) -> u64 {
    let arg = cx.table().queue_by_id(queue).and_then(|q| {
        q.args
            .inner()
            .get("x-consumer-timeout")
            .and_then(crate::defs::arg_integer)
    });
    match arg {
        Some(ms) => u64::try_from(ms).unwrap_or(0),
        None => cx.link.config.consumer_timeout_ms.unwrap_or(0),
    }
}

/// The deadline of a delivery made now with `timeout_ms` (ms since the
/// epoch, coarse); 0 = none.
pub fn deadline(timeout_ms: u64) -> u64 {
    if timeout_ms == 0 {
        return 0;
    }
    coarse_ms().saturating_add(timeout_ms)
}

/// RabbitMQ 3.10's 406 for a delivery on channel `ch` unacked beyond
/// `timeout_ms`.
pub fn timed_out(ch: u16, timeout_ms: u64) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "delivery acknowledgement on channel {ch} timed out. Timeout value used: {timeout_ms} ms. This timeout value can be configured, see consumers doc guide to learn more"
    ))
}

/// Close every channel on this shard whose oldest unacked delivery is past
/// its deadline. Called once a second by the shard (which also refreshes
/// the coarse clock).
pub fn check(cx: &Cx, conns: &ConnTable) {
    let now = now_ms();
    let all: Vec<_> = conns.conns.borrow().values().cloned().collect();
    for conn in all {
        let due: Vec<(u16, u64)> = {
            let st = conn.state.borrow();
            st.channels
                .values()
                .filter(|c| !c.closing)
                .filter_map(|c| {
                    let (_, oldest) = c.unacked.first_key_value()?;
                    (oldest.deadline != 0
                        && now >= oldest.deadline.saturating_add(COARSE_PERIOD_MS))
                    .then_some((c.id, u64::from(oldest.timeout_ms)))
                })
                .collect()
        };
        for (ch, timeout) in due {
            super::connection::close_channel_with_error(cx, &conn, ch, &timed_out(ch, timeout));
        }
    }
}

//! Wall-clock time for the shards: the precise clock (one `clock_gettime`
//! through the vDSO) and a coarse per-thread copy refreshed about once a
//! second, for stamps taken on the hot path (a delivery's ack deadline)
//! where a system call per message would cost more than the stamp is
//! worth. Leaf vocabulary: no I/O besides reading the clock, no locks
//! (each shard thread has its own copy).

use std::cell::Cell;

/// How stale [`coarse_ms`] may be, in ms: the period of the shard task
/// that calls [`refresh`]. Anything timed with the coarse clock allows
/// this much slack so that it does not fire early while the shard keeps to
/// its tick.
pub const COARSE_PERIOD_MS: u64 = 1000;

thread_local! {
    static COARSE_MS: Cell<u64> = const { Cell::new(0) };
}

/// Wall-clock time in ms since the Unix epoch (message TTLs are wall-clock
/// durations, as RabbitMQ's are).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// This thread's coarse clock: ms since the epoch, at most
/// [`COARSE_PERIOD_MS`] behind [`now_ms`] on a shard thread (read fresh
/// the first time on any thread).
pub fn coarse_ms() -> u64 {
    match COARSE_MS.get() {
        0 => refresh(),
        t => t,
    }
}

/// Read the precise clock into this thread's coarse clock; returns it.
pub fn refresh() -> u64 {
    let t = now_ms();
    COARSE_MS.set(t);
    t
}

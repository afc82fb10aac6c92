//! Paging decisions the home performs (the queue decides what, the home
//! writes it to the shard's transient page area, `store::paging`): a new
//! message past a queue's read-ahead under pressure (`publish`), and
//! messages already in memory when pressure begins (the shard's memory
//! check). Owns nothing but the back-off after a failed write. Must never:
//! write more than its budget per call, or retry a failing disk more than
//! once a second.

use super::{now_ms, QueueHome};
use crate::message::MsgRef;
use crate::store::{Position, Store};

impl QueueHome {
    /// Write `msg` to the transient page area; None (the message stays on
    /// the heap) when the disk cannot take it, reported once per outage.
    /// After a failure, paging is retried only once a second (each try may
    /// create and preallocate a segment file).
    pub(super) fn page(&self, st: &mut Store, msg: &MsgRef) -> Option<Position> {
        let retry_at = self.paging_failed.get();
        if retry_at != 0 && now_ms() < retry_at {
            return None;
        }
        match st.pages.append(msg) {
            Ok(p) => {
                if self.paging_failed.replace(0) != 0 {
                    tracing::info!("paging to disk works again");
                }
                Some(p)
            }
            Err(e) => {
                if self.paging_failed.replace(now_ms() + 1_000) == 0 {
                    tracing::error!("cannot page messages to disk, keeping them in memory: {e}");
                }
                None
            }
        }
    }

    /// Under memory pressure: page out, across this shard's queues, up to
    /// `budget` messages still held in memory past their read-ahead (they
    /// arrived before the pressure began). Returns how many.
    pub fn page_out_resident(&self, budget: usize) -> usize {
        let mut qs = self.queues.borrow_mut();
        let mut st = self.store.borrow_mut();
        let mut left = budget;
        for q in qs.values_mut() {
            if left == 0 {
                break;
            }
            left -= q.page_out(left, |m| {
                let p = self.page(&mut st, m)?;
                st.pages.retain(p);
                Some(p)
            });
        }
        budget - left
    }
}

//! `x-expires` across restarts: how long each durable queue with
//! `x-expires` has been unused is written to `<shard dir>/queue-idle` at
//! most once a second, and a queue recovered at start-up resumes its
//! period from there instead of starting it again. The broker's downtime
//! does not count as unused time (a queue is not deleted at start-up just
//! because the broker was down longer than its period; RabbitMQ restarts
//! the whole lease instead, so Warren keeps more of it). A crash loses at
//! most the last second of unused time. Must never: fsync or write more
//! than once a second on the executor (the file is a few bytes per queue,
//! written to the page cache and renamed into place).

use super::{now_ms, QueueHome};
use crate::ids::QueueId;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The file's name in the shard's store directory.
const FILE_NAME: &str = "queue-idle";

/// Least time between two writes, in ms.
const SAVE_EVERY_MS: u64 = 1000;

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// The unused time of each queue as last saved (lines `<id> <ms>`);
/// anything unreadable is ignored (its periods start again).
pub(super) fn load(dir: &Path) -> HashMap<QueueId, u64> {
    let Ok(text) = std::fs::read_to_string(path(dir)) else {
        return HashMap::new();
    };
    text.lines()
        .filter_map(|l| {
            let (id, ms) = l.split_once(' ')?;
            Some((QueueId(id.parse().ok()?), ms.parse().ok()?))
        })
        .collect()
}

impl QueueHome {
    /// How long queue `id` had been unused when last saved before this
    /// start (0 if never), in ms; each queue asks once.
    pub(super) fn recorded_idle(&self, id: QueueId) -> u64 {
        self.recorded_idle.borrow_mut().remove(&id).unwrap_or(0)
    }

    /// Recovery is over: forget saved times no queue claimed (a queue
    /// declared later may get the id of one deleted just before a crash).
    pub fn forget_recorded_idle(&self) {
        self.recorded_idle.borrow_mut().clear();
    }

    /// Write the unused time of every durable queue with `x-expires`
    /// (called by the expiry tick; writes at most once a second, and only
    /// while such queues exist or the file still names some).
    pub fn save_idle_state(&self) {
        let now = now_ms();
        if now < self.idle_saved_at.get() + SAVE_EVERY_MS {
            return;
        }
        let mut out = String::new();
        {
            let qs = self.queues.borrow();
            let st = self.store.borrow();
            for id in self.idle_expiring.borrow().iter() {
                if let Some(q) = qs.get(id).filter(|_| st.is_durable(*id)) {
                    out.push_str(&format!("{} {}\n", id.0, q.unused_for(now)));
                }
            }
        }
        if out.is_empty() && !self.idle_file_written.get() {
            return;
        }
        self.idle_saved_at.set(now);
        let dir = self.store.borrow().dir.clone();
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let written =
            std::fs::write(&tmp, out.as_bytes()).and_then(|_| std::fs::rename(&tmp, path(&dir)));
        match written {
            Ok(()) => self.idle_file_written.set(!out.is_empty()),
            Err(e) => tracing::warn!("cannot save x-expires state: {e}"),
        }
    }
}

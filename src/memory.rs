//! This process's memory use and the node's memory limit (RabbitMQ's
//! `vm_memory_high_watermark`): leaf vocabulary, reads of `/proc` and
//! `/sys/fs/cgroup` only.
//!
//! What is measured: the anonymous resident memory (`RssAnon` in
//! `/proc/self/status`), the heap that only this process can give back.
//! Not the whole resident set: the store's segment files are memory-mapped,
//! and their resident pages are page cache the kernel reclaims under
//! pressure; counting them would raise the alarm for a durable backlog that
//! costs no RAM. Not the allocator's statistics either: they miss the
//! executors' own mappings and what the allocator holds but has not
//! returned, which the OOM killer does count. One read is a few
//! microseconds; each shard reads it every [`CHECK_EVERY_MS`].
//!
//! The limit: an absolute size (`memory_limit`) or a fraction of the
//! memory available to the process (`vm_memory_high_watermark`, default
//! 0.4 as RabbitMQ): the lower of the machine's RAM (`MemTotal`) and its
//! cgroup v2 `memory.max`. The alarm is raised above the limit and cleared
//! below [`CLEAR_RATIO`] of it (hysteresis, so that publishers are not
//! blocked and unblocked on every check near the limit).

/// How often each shard measures, in ms.
pub const CHECK_EVERY_MS: u64 = 50;

/// The alarm clears once use is below this fraction of the limit.
pub const CLEAR_RATIO: f64 = 0.9;

/// Above this fraction of the limit, queues page new messages of every
/// kind to disk (`store::paging`) once they hold more than their read-ahead
/// (the default of RabbitMQ's `vm_memory_high_watermark_paging_ratio`,
/// configurable under the same name), so the alarm is the last resort,
/// not the first.
pub const PAGING_RATIO: f64 = 0.5;

/// RabbitMQ's default `vm_memory_high_watermark`.
pub const DEFAULT_WATERMARK: f64 = 0.4;

/// How the memory limit is configured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MemoryLimit {
    /// `memory_limit`: bytes.
    Bytes(u64),
    /// `vm_memory_high_watermark`: a fraction (0 to 1] of the memory
    /// available to the process ([`available_bytes`]).
    Fraction(f64),
}

impl MemoryLimit {
    /// The limit in bytes (a fraction of [`available_bytes`]; 0 if that
    /// cannot be read, which then means no limit).
    pub fn bytes(self) -> u64 {
        match self {
            MemoryLimit::Bytes(b) => b,
            MemoryLimit::Fraction(f) => (available_bytes() as f64 * f) as u64,
        }
    }
}

/// The value of a `Key:   N kB` line of a `/proc` status file, in bytes.
fn kb_field(text: &str, key: &str) -> Option<u64> {
    let v = text.lines().find_map(|l| l.strip_prefix(key))?;
    let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// This process's anonymous resident memory, bytes (see the module
/// documentation); 0 if `/proc` cannot be read.
pub fn used_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| kb_field(&s, "RssAnon:"))
        .unwrap_or(0)
}

/// Make the calling thread's allocator heap process the blocks other
/// threads freed into it and return empty pages to the OS (mimalloc's
/// `mi_collect`). A message body allocated by the shard that read it and
/// freed by the shard that delivered or paged it waits on the reading
/// shard's heap until that shard allocates again; a shard whose publishers
/// are paused by an alarm may not, so its memory would never fall and the
/// alarm never clear. Each shard calls this while an alarm holds. Costs a
/// walk of the calling thread's heap pages; a no-op for memory not
/// allocated by mimalloc.
pub fn collect() {
    // SAFETY: mi_collect takes no pointers; it only operates on the calling
    // thread's own heap.
    unsafe { libmimalloc_sys::mi_collect(false) }
}

/// The machine's RAM (`MemTotal`), bytes; 0 if unknown.
pub fn total_ram_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| kb_field(&s, "MemTotal:"))
        .unwrap_or(0)
}

/// The lowest memory limit on this process's cgroup and its ancestors,
/// bytes: cgroup v2 `memory.max` (a parent slice may be the one set), or
/// cgroup v1 `memory.limit_in_bytes`; None when unlimited or unreadable.
pub fn cgroup_limit_bytes() -> Option<u64> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let read = |f: String| -> Option<u64> { std::fs::read_to_string(f).ok()?.trim().parse().ok() };
    if let Some(path) = cg.lines().find_map(|l| l.strip_prefix("0::")) {
        let mut dir = path.trim_end_matches('/').to_string();
        let mut lowest: Option<u64> = None;
        loop {
            if let Some(v) = read(format!("/sys/fs/cgroup{dir}/memory.max")) {
                lowest = Some(lowest.map_or(v, |l| l.min(v)));
            }
            match dir.rfind('/') {
                Some(i) => dir.truncate(i),
                None => break,
            }
        }
        if lowest.is_some() {
            return lowest;
        }
    }
    // cgroup v1: the memory controller's line, `N:memory:/path`. (An
    // "unlimited" v1 limit is a huge number, above any RAM.)
    let path = cg
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))?;
    read(format!(
        "/sys/fs/cgroup/memory{}/memory.limit_in_bytes",
        path.trim_end_matches('/')
    ))
    .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes".into()))
}

/// The memory available to this process: the lower of RAM and the cgroup
/// limit, bytes.
pub fn available_bytes() -> u64 {
    let ram = total_ram_bytes();
    match cgroup_limit_bytes() {
        Some(c) if ram == 0 || c < ram => c,
        _ => ram,
    }
}

/// The alarm's next state: raised above `limit`, cleared below
/// [`CLEAR_RATIO`] of it, unchanged in between. A limit of 0 never raises it.
pub fn alarm(raised: bool, used: u64, limit: u64) -> bool {
    if limit == 0 {
        return false;
    }
    if raised {
        used as f64 >= limit as f64 * CLEAR_RATIO
    } else {
        used > limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alarm_rises_above_the_limit_and_clears_below_the_hysteresis() {
        assert!(!alarm(false, 100, 100));
        assert!(alarm(false, 101, 100));
        assert!(
            alarm(true, 95, 100),
            "still raised between 90% and the limit"
        );
        assert!(!alarm(true, 89, 100));
        assert!(!alarm(false, u64::MAX, 0), "0 = no limit");
    }

    #[test]
    fn this_process_and_machine_are_measured() {
        assert!(used_bytes() > 0);
        assert!(total_ram_bytes() > 0);
        assert!(available_bytes() > 0 && available_bytes() <= total_ram_bytes());
        assert_eq!(MemoryLimit::Bytes(5).bytes(), 5);
        assert!(MemoryLimit::Fraction(0.5).bytes() <= available_bytes() / 2 + 1);
    }

    #[test]
    fn status_fields_are_read_in_kb() {
        assert_eq!(
            kb_field("RssAnon:\t   2048 kB\n", "RssAnon:"),
            Some(2048 * 1024)
        );
        assert_eq!(kb_field("VmRSS: 1 kB\n", "RssAnon:"), None);
    }
}

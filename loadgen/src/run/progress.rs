//! State shared by every thread of a run, and the once-a-second snapshots
//! the reporter turns into progress lines.

use super::*;

pub struct Shared {
    pub origin: Instant,
    /// Publishing starts here (ns since origin).
    pub start_ns: u64,
    pub warm_ns: u64,
    pub end_ns: u64,
    pub stop_pub: AtomicBool,
    pub stop_all: AtomicBool,
    pub fatal: Mutex<Option<String>>,
    pub blocked: AtomicU64,
    pub pubs: Vec<Pub>,
    pub cons: Vec<Cons>,
    pub q_expected: Vec<AtomicU64>,
}

impl Shared {
    #[inline]
    pub fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
    pub fn fail(&self, who: &str, e: impl std::fmt::Display) {
        let mut f = self.fatal.lock().unwrap();
        if f.is_none() && !self.stop_all.load(Relaxed) {
            *f = Some(format!("{who}: {e}"));
        }
        self.stop_pub.store(true, Relaxed);
        self.stop_all.store(true, Relaxed);
    }
}

pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

pub(super) struct Snap {
    pub(super) t: u64,
    pub(super) published: u64,
    pub(super) consumed: u64,
    pub(super) confirmed: u64,
    pub(super) cpu: f64,
    pub(super) broker_cpu: Option<f64>,
}

pub(super) fn snap(sh: &Shared, pid: Option<u32>) -> Snap {
    Snap {
        t: sh.now(),
        published: sh
            .pubs
            .iter()
            .map(|p| p.stats.published.load(Relaxed))
            .sum(),
        consumed: sh.cons.iter().map(|c| c.stats.consumed.load(Relaxed)).sum(),
        confirmed: sh
            .pubs
            .iter()
            .map(|p| p.stats.confirmed.load(Relaxed))
            .sum(),
        cpu: sys::self_cpu(),
        broker_cpu: pid.and_then(sys::proc_cpu),
    }
}

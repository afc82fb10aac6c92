//! Fanout exchange: every bound destination gets the message, key ignored.

use crate::defs::Dest;

/// A fanout exchange's bound destinations, each once.
#[derive(Default, Debug)]
pub struct FanoutIndex {
    dests: Vec<Dest>,
}

impl FanoutIndex {
    /// Bind `dest` (no-op if already bound).
    pub fn insert(&mut self, dest: Dest) {
        if !self.dests.contains(&dest) {
            self.dests.push(dest);
        }
    }
    /// Unbind `dest` (no-op if not bound).
    pub fn remove(&mut self, dest: &Dest) {
        self.dests.retain(|d| d != dest);
    }
    /// Append every bound destination to `out`.
    pub fn route(&self, out: &mut Vec<Dest>) {
        out.extend(self.dests.iter().cloned());
    }
}

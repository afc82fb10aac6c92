//! Fanout exchange: every bound destination gets the message, key ignored.

use crate::defs::Dest;

#[derive(Default, Debug)]
pub struct FanoutIndex {
    dests: Vec<Dest>,
}

impl FanoutIndex {
    pub fn insert(&mut self, dest: Dest) {
        if !self.dests.contains(&dest) {
            self.dests.push(dest);
        }
    }
    pub fn remove(&mut self, dest: &Dest) {
        self.dests.retain(|d| d != dest);
    }
    pub fn route(&self, out: &mut Vec<Dest>) {
        out.extend(self.dests.iter().cloned());
    }
}

//! Direct exchange: exact routing-key match, one hash lookup per publish.

use crate::defs::Dest;
use std::collections::HashMap;

/// A direct exchange's bindings: binding key -> destinations.
#[derive(Default, Debug)]
pub struct DirectIndex {
    by_key: HashMap<String, Vec<Dest>>,
}

impl DirectIndex {
    /// Bind `dest` with `key` (no-op if already bound so).
    pub fn insert(&mut self, key: &str, dest: Dest) {
        let v = self.by_key.entry(key.to_string()).or_default();
        if !v.contains(&dest) {
            v.push(dest);
        }
    }
    /// Unbind `dest` from `key` (no-op if not bound).
    pub fn remove(&mut self, key: &str, dest: &Dest) {
        if let Some(v) = self.by_key.get_mut(key) {
            v.retain(|d| d != dest);
            if v.is_empty() {
                self.by_key.remove(key);
            }
        }
    }
    /// Append the destinations bound with exactly `key` to `out`.
    pub fn route(&self, key: &str, out: &mut Vec<Dest>) {
        if let Some(v) = self.by_key.get(key) {
            out.extend(v.iter().cloned());
        }
    }
}

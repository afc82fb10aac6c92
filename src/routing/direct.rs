//! Direct exchange: exact routing-key match, one hash lookup per publish.

use crate::defs::Dest;
use std::collections::HashMap;

#[derive(Default, Debug)]
pub struct DirectIndex {
    by_key: HashMap<String, Vec<Dest>>,
}

impl DirectIndex {
    pub fn insert(&mut self, key: &str, dest: Dest) {
        let v = self.by_key.entry(key.to_string()).or_default();
        if !v.contains(&dest) {
            v.push(dest);
        }
    }
    pub fn remove(&mut self, key: &str, dest: &Dest) {
        if let Some(v) = self.by_key.get_mut(key) {
            v.retain(|d| d != dest);
            if v.is_empty() {
                self.by_key.remove(key);
            }
        }
    }
    pub fn route(&self, key: &str, out: &mut Vec<Dest>) {
        if let Some(v) = self.by_key.get(key) {
            out.extend(v.iter().cloned());
        }
    }
}

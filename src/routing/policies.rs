//! This shard's copy of the policies and operator policies, with their
//! patterns compiled once (see [`crate::defs::policy`] for the rules).
//! Looked up when a queue is created or a policy changes (the queue keeps
//! its effective settings) and, for `alternate-exchange`, only when a
//! message found no route: never on the common publish path.

use crate::defs::policy::{applies, better, PolicyDef};

/// The policies of every vhost.
#[derive(Debug, Default)]
pub struct Policies {
    list: Vec<(PolicyDef, regex::Regex)>,
}

impl Policies {
    /// Add or replace a policy (an invalid pattern, refused by the
    /// authority before it is broadcast, is skipped).
    pub fn set(&mut self, p: &PolicyDef) {
        self.clear(&p.vhost, &p.name, p.operator);
        if let Ok(re) = regex::Regex::new(&p.pattern) {
            self.list.push((p.clone(), re));
        }
    }

    /// Remove a policy; false if there was none.
    pub fn clear(&mut self, vhost: &str, name: &str, operator: bool) -> bool {
        let before = self.list.len();
        self.list
            .retain(|(p, _)| !(p.vhost == vhost && p.name == name && p.operator == operator));
        before != self.list.len()
    }

    /// Forget a deleted vhost's policies.
    pub fn clear_vhost(&mut self, vhost: &str) {
        self.list.retain(|(p, _)| p.vhost != vhost);
    }

    /// One policy.
    pub fn get(&self, vhost: &str, name: &str, operator: bool) -> Option<&PolicyDef> {
        self.all()
            .find(|p| p.vhost == vhost && p.name == name && p.operator == operator)
    }

    /// Every policy and operator policy.
    pub fn all(&self) -> impl Iterator<Item = &PolicyDef> {
        self.list.iter().map(|(p, _)| p)
    }

    /// The policy and the operator policy that apply to the queue
    /// (`queue`) or exchange `name` in `vhost`.
    pub fn for_object(
        &self,
        vhost: &str,
        name: &str,
        queue: bool,
    ) -> (Option<&PolicyDef>, Option<&PolicyDef>) {
        let mut pick = [None::<&PolicyDef>, None];
        for (p, re) in &self.list {
            if p.vhost == vhost && applies(p, re, name, queue) {
                let slot = &mut pick[usize::from(p.operator)];
                *slot = Some(match *slot {
                    Some(cur) => better(cur, p),
                    None => p,
                });
            }
        }
        (pick[0], pick[1])
    }

    /// The `alternate-exchange` a policy gives exchange `name`, if any.
    pub fn alternate_exchange(&self, vhost: &str, name: &str) -> Option<String> {
        let (p, _) = self.for_object(vhost, name, false);
        p?.definition
            .get("alternate-exchange")?
            .as_str()
            .map(str::to_string)
    }
}

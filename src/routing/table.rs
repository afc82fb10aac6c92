//! This shard's read-only copy of exchanges, queues and bindings.
//!
//! Only [`RoutingTable::apply`] mutates it, with changes broadcast by the
//! metadata authority, so every shard holds the same table and a publish is
//! routed on the publisher's own shard without asking anyone. Routing takes
//! no lock; it allocates small work vectors and a (vhost, name) key per
//! exchange looked up, so channels reuse their last decision while
//! [`RoutingTable::version`] is unchanged.

use super::{direct::DirectIndex, fanout::FanoutIndex, headers::headers_match, topic::TopicTrie};
use crate::defs::users::{
    Access, CompiledPermission, CompiledTopicPermission, TopicPermissions, UserDef,
};
use crate::defs::{Dest, ExchangeDef, ExchangeKind, MetaChange, QueueDef};
use crate::ids::{QueueId, ShardId};
use amq_protocol::types::FieldTable;
use std::collections::HashMap;

#[derive(Debug)]
enum Index {
    Direct(DirectIndex),
    Fanout(FanoutIndex),
    Topic(TopicTrie<Dest>),
    Headers(Vec<(FieldTable, Dest)>),
    ConsistentHash(super::consistent_hash::ConsistentHash),
    /// `x-delayed-message`: its bindings live in the index of its
    /// `x-delayed-type`; a message with a delay goes to `store` instead
    /// (see `defs::delayed`).
    Delayed {
        inner: Box<Index>,
        store: Dest,
    },
}

impl Index {
    fn for_kind(kind: ExchangeKind, args: &FieldTable) -> Index {
        match kind {
            ExchangeKind::Direct => Index::Direct(DirectIndex::default()),
            ExchangeKind::Fanout => Index::Fanout(FanoutIndex::default()),
            ExchangeKind::Topic => Index::Topic(TopicTrie::new()),
            ExchangeKind::Headers => Index::Headers(Vec::new()),
            ExchangeKind::ConsistentHash => {
                Index::ConsistentHash(super::consistent_hash::ConsistentHash::new(args))
            }
            // Only reached with a definition the authority did not check.
            ExchangeKind::DelayedMessage => Index::Direct(DirectIndex::default()),
        }
    }

    /// The index that holds the bindings (a delayed exchange's inner one).
    fn bindings_mut(&mut self) -> &mut Index {
        match self {
            Index::Delayed { inner, .. } => inner,
            other => other,
        }
    }

    /// The index that decides by key (a delayed exchange's inner one).
    fn routing(&self) -> &Index {
        match self {
            Index::Delayed { inner, .. } => inner,
            other => other,
        }
    }
}

/// An exchange in the table: its definition and its bindings as source.
#[derive(Debug)]
pub struct ExchangeEntry {
    /// As declared.
    pub def: ExchangeDef,
    index: Index,
    /// Binding identity: (destination, key) -> the argument tables bound.
    bindings: HashMap<(Dest, String), Vec<FieldTable>>,
    /// Bindings with this exchange as source (an auto-delete exchange goes
    /// at 0).
    pub binding_count: usize,
}

impl ExchangeEntry {
    fn new(def: ExchangeDef) -> Self {
        let inner = Index::for_kind(def.routing_kind(), &def.args);
        let index = match def.delay_store {
            Some(store) => Index::Delayed {
                inner: Box::new(inner),
                store: Dest::Queue(store.id, store.home),
            },
            None => inner,
        };
        ExchangeEntry {
            def,
            index,
            bindings: HashMap::new(),
            binding_count: 0,
        }
    }

    fn bind(&mut self, dest: Dest, key: &str, args: &FieldTable) -> bool {
        let v = self
            .bindings
            .entry((dest.clone(), key.to_string()))
            .or_default();
        if v.contains(args) {
            return false;
        }
        v.push(args.clone());
        self.binding_count += 1;
        let first = v.len() == 1;
        match self.index.bindings_mut() {
            Index::Headers(list) => list.push((args.clone(), dest)),
            Index::Direct(d) if first => d.insert(key, dest),
            Index::Fanout(f) if first => f.insert(dest),
            Index::Topic(t) if first => {
                t.insert(key, dest);
            }
            Index::ConsistentHash(c) if first => c.insert(key, dest),
            _ => {}
        }
        true
    }

    fn unbind(&mut self, dest: &Dest, key: &str, args: &FieldTable) -> bool {
        let k = (dest.clone(), key.to_string());
        let Some(v) = self.bindings.get_mut(&k) else {
            return false;
        };
        let Some(pos) = v.iter().position(|a| a == args) else {
            return false;
        };
        v.remove(pos);
        self.binding_count -= 1;
        let last = v.is_empty();
        if last {
            self.bindings.remove(&k);
        }
        match self.index.bindings_mut() {
            Index::Headers(list) => {
                if let Some(p) = list.iter().position(|(a, d)| a == args && d == dest) {
                    list.remove(p);
                }
            }
            Index::Direct(d) if last => d.remove(key, dest),
            Index::Fanout(f) if last => f.remove(dest),
            Index::Topic(t) if last => {
                t.remove(key, dest);
            }
            Index::ConsistentHash(c) if last => c.remove(key, dest),
            _ => {}
        }
        true
    }

    fn unbind_dest(&mut self, dest: &Dest) {
        let keys: Vec<(Dest, String)> = self
            .bindings
            .keys()
            .filter(|(d, _)| d == dest)
            .cloned()
            .collect();
        for k in keys {
            if let Some(args) = self.bindings.get(&k).cloned() {
                for a in args {
                    self.unbind(&k.0, &k.1, &a);
                }
            }
        }
    }

    /// Whether exactly this binding (destination, key, arguments) exists.
    pub fn has_binding(&self, dest: &Dest, key: &str, args: &FieldTable) -> bool {
        self.bindings
            .get(&(dest.clone(), key.to_string()))
            .is_some_and(|v| v.contains(args))
    }

    /// All bindings from this exchange, for listings.
    pub fn bindings(&self) -> impl Iterator<Item = (&Dest, &str, &FieldTable)> {
        self.bindings
            .iter()
            .flat_map(|((d, k), v)| v.iter().map(move |a| (d, k.as_str(), a)))
    }

    fn route(&self, key: &str, headers: Option<&FieldTable>, props: &[u8], out: &mut Vec<Dest>) {
        let index = match &self.index {
            Index::Delayed { inner, store } => {
                if crate::defs::delayed::delay_of(headers).is_some() {
                    out.push(store.clone());
                    return;
                }
                &**inner
            }
            other => other,
        };
        match index {
            Index::ConsistentHash(c) => c.route(key, headers, props, out),
            Index::Direct(d) => d.route(key, out),
            Index::Fanout(f) => f.route(out),
            Index::Topic(t) => t.matches(key, out),
            Index::Headers(list) => {
                for (args, dest) in list {
                    if headers_match(args, headers) {
                        out.push(dest.clone());
                    }
                }
            }
            Index::Delayed { .. } => {}
        }
    }
}

type Key = (String, String);

/// A vhost's description and tags (RabbitMQ's vhost metadata, shown by
/// the API and carried by definitions).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VhostMetadata {
    /// What it is for (free text).
    pub description: String,
    /// Its tags.
    pub tags: Vec<String>,
}

/// One shard's replica of all metadata (see the module documentation).
#[derive(Default, Debug)]
pub struct RoutingTable {
    /// (vhost, name) -> exchange with its bindings.
    pub exchanges: HashMap<Key, ExchangeEntry>,
    /// (vhost, name) -> queue definition (on every shard, whatever its home).
    pub queues: HashMap<Key, QueueDef>,
    /// Queue id -> (vhost, name), for lookups by id.
    pub queue_names: HashMap<QueueId, Key>,
    /// Every vhost's name.
    pub vhosts: std::collections::BTreeSet<String>,
    /// vhost -> its description and tags; absent = none.
    pub vhost_metadata: HashMap<String, VhostMetadata>,
    /// Login name -> user.
    pub users: std::collections::BTreeMap<String, UserDef>,
    /// (user, vhost) -> compiled permission.
    pub permissions: HashMap<Key, CompiledPermission>,
    /// (user, vhost) -> exchange -> compiled topic permission; a user
    /// without an entry for an exchange is not restricted on it.
    pub topic_permissions: TopicPermissions,
    /// vhost -> its limits (`defs::limits`); absent = none.
    pub vhost_limits: HashMap<String, crate::defs::limits::Limits>,
    /// user -> its limits; absent = none.
    pub user_limits: HashMap<String, crate::defs::limits::Limits>,
    /// Policies and operator policies of every vhost.
    pub policies: super::policies::Policies,
    /// Bumped on every permission change (lets channels cache checks).
    pub permission_epoch: u64,
    /// Bumped on every change (invalidates channels' route caches).
    pub version: u64,
    /// Consistent-hash exchanges that hash a message property: while any
    /// exists, a routing decision depends on more than (exchange, key) and
    /// channels do not reuse their last one.
    pub property_hashing: usize,
}

fn key(vhost: &str, name: &str) -> Key {
    (vhost.to_string(), name.to_string())
}

impl RoutingTable {
    /// An empty table (no vhosts, users or exchanges).
    pub fn new() -> Self {
        Self::default()
    }

    /// The exchange `name` in `vhost` (None for `""`: the default exchange
    /// is not in the table).
    pub fn exchange(&self, vhost: &str, name: &str) -> Option<&ExchangeEntry> {
        // Avoid allocating the key on the hot path for the common lookups.
        self.exchanges.get(&key(vhost, name))
    }

    /// The queue `name` in `vhost`.
    pub fn queue(&self, vhost: &str, name: &str) -> Option<&QueueDef> {
        self.queues.get(&key(vhost, name))
    }

    /// The queue with id `id`.
    pub fn queue_by_id(&self, id: QueueId) -> Option<&QueueDef> {
        self.queue_names.get(&id).and_then(|k| self.queues.get(k))
    }

    /// Apply one broadcast change.
    pub fn apply(&mut self, change: &MetaChange) {
        self.version += 1;
        self.apply_change(change);
        if matches!(
            change,
            MetaChange::ExchangeDeclared(_)
                | MetaChange::ExchangeDeleted { .. }
                | MetaChange::VhostDeleted { .. }
        ) {
            self.property_hashing = self
                .exchanges
                .values()
                .filter(|e| matches!(e.index.routing(), Index::ConsistentHash(c) if c.hashes_property()))
                .count();
        }
    }

    fn apply_change(&mut self, change: &MetaChange) {
        match change {
            MetaChange::ExchangeDeclared(def) => {
                self.exchanges
                    .entry(key(&def.vhost, &def.name))
                    .or_insert_with(|| ExchangeEntry::new(def.clone()));
            }
            MetaChange::ExchangeDeleted { vhost, name } => {
                self.exchanges.remove(&key(vhost, name));
                let dest = Dest::Exchange(name.clone());
                for ((v, _), e) in self.exchanges.iter_mut() {
                    if v == vhost {
                        e.unbind_dest(&dest);
                    }
                }
            }
            MetaChange::QueueDeclared(def) => {
                let k = key(&def.vhost, &def.name);
                self.queue_names.insert(def.id, k.clone());
                self.queues.insert(k, def.clone());
            }
            MetaChange::QueueDeleted { vhost, name, id } => {
                if let Some(def) = self.queues.remove(&key(vhost, name)) {
                    self.queue_names.remove(id);
                    let dest = Dest::Queue(def.id, def.home);
                    for ((v, _), e) in self.exchanges.iter_mut() {
                        if v == vhost {
                            e.unbind_dest(&dest);
                        }
                    }
                }
            }
            MetaChange::Bound(b) => {
                if let Some(e) = self.exchanges.get_mut(&key(&b.vhost, &b.source)) {
                    e.bind(b.dest.clone(), &b.key, &b.args);
                }
            }
            MetaChange::Unbound(b) => {
                if let Some(e) = self.exchanges.get_mut(&key(&b.vhost, &b.source)) {
                    e.unbind(&b.dest, &b.key, &b.args);
                }
            }
            MetaChange::VhostMetadataSet {
                name,
                description,
                tags,
            } => {
                if self.vhosts.contains(name) {
                    let meta = VhostMetadata {
                        description: description.clone(),
                        tags: tags.clone(),
                    };
                    self.vhost_metadata.insert(name.clone(), meta);
                }
            }
            MetaChange::VhostAdded { name } => {
                if self.vhosts.insert(name.clone()) {
                    for c in crate::defs::predeclared(name) {
                        self.apply(&c);
                    }
                }
            }
            MetaChange::VhostDeleted { name } => {
                self.vhosts.remove(name);
                self.exchanges.retain(|(v, _), _| v != name);
                let gone: Vec<QueueId> = self
                    .queues
                    .values()
                    .filter(|q| &q.vhost == name)
                    .map(|q| q.id)
                    .collect();
                for id in gone {
                    self.queue_names.remove(&id);
                }
                self.queues.retain(|(v, _), _| v != name);
                self.permissions.retain(|(_, v), _| v != name);
                self.topic_permissions.remove_vhost(name);
                self.vhost_metadata.remove(name);
                self.vhost_limits.remove(name);
                self.policies.clear_vhost(name);
                self.permission_epoch += 1;
            }
            MetaChange::UserPut(u) => {
                self.users.insert(u.name.clone(), u.clone());
                self.permission_epoch += 1;
            }
            MetaChange::UserDeleted { name } => {
                self.users.remove(name);
                self.permissions.retain(|(u, _), _| u != name);
                self.topic_permissions.remove_user(name);
                self.user_limits.remove(name);
                self.permission_epoch += 1;
            }
            MetaChange::PermissionSet(p) => {
                self.permissions
                    .insert(key(&p.user, &p.vhost), CompiledPermission::new(p.clone()));
                self.permission_epoch += 1;
            }
            MetaChange::PermissionCleared { user, vhost } => {
                self.permissions.remove(&key(user, vhost));
                self.permission_epoch += 1;
            }
            MetaChange::TopicPermissionSet(p) => {
                self.topic_permissions.set(p.clone());
                self.permission_epoch += 1;
            }
            MetaChange::TopicPermissionCleared {
                user,
                vhost,
                exchange,
            } => {
                self.topic_permissions
                    .clear(user, vhost, exchange.as_deref());
                self.permission_epoch += 1;
            }
            MetaChange::VhostLimitsSet { vhost, limits } => {
                if limits.is_empty() {
                    self.vhost_limits.remove(vhost);
                } else if self.vhosts.contains(vhost) {
                    self.vhost_limits.insert(vhost.clone(), limits.clone());
                }
            }
            MetaChange::PolicySet(p) => {
                if self.vhosts.contains(&p.vhost) {
                    self.policies.set(p);
                }
            }
            MetaChange::PolicyCleared {
                vhost,
                name,
                operator,
            } => {
                self.policies.clear(vhost, name, *operator);
            }
            MetaChange::UserLimitsSet { user, limits } => {
                if limits.is_empty() {
                    self.user_limits.remove(user);
                } else if self.users.contains_key(user) {
                    self.user_limits.insert(user.clone(), limits.clone());
                }
            }
        }
    }

    /// May `user` do `access` on the resource `name` in `vhost`?
    pub fn permitted(&self, user: &str, vhost: &str, access: Access, name: &str) -> bool {
        self.permissions
            .get(&key(user, vhost))
            .is_some_and(|p| p.allows(access, name))
    }

    /// `user`'s topic permission on `exchange` in `vhost`, if one is set
    /// (map lookups by borrowed names, only when any topic permission
    /// exists: nothing allocated per publish).
    pub fn topic_permission(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
    ) -> Option<&CompiledTopicPermission> {
        if self.topic_permissions.is_empty() {
            return None;
        }
        self.topic_permissions.get(user, vhost, exchange)
    }

    /// Whether `user` has permissions set on `vhost` (what connection.open
    /// requires, RabbitMQ's rule; the patterns may still match nothing).
    pub fn has_vhost_access(&self, user: &str, vhost: &str) -> bool {
        self.permissions.contains_key(&key(user, vhost))
    }

    /// Route a message published to `exchange` in `vhost` (its `headers`
    /// table and raw properties `props`, which only a consistent-hash
    /// exchange with `hash-property` reads). Returns the set of destination
    /// queues (each once, whatever the number of paths).
    pub fn route(
        &self,
        vhost: &str,
        exchange: &str,
        routing_key: &str,
        headers: Option<&FieldTable>,
        props: &[u8],
        out: &mut Vec<(QueueId, ShardId)>,
    ) {
        self.route_keys(vhost, exchange, &[routing_key], headers, props, out)
    }

    /// Route with several routing keys at once (the publish's key plus its
    /// `CC`/`BCC` keys, RabbitMQ's sender-selected distribution): every
    /// exchange on the way routes every key, each queue is a destination
    /// once, and an exchange hands the message to its alternate only if no
    /// key routed it anywhere.
    pub fn route_keys(
        &self,
        vhost: &str,
        exchange: &str,
        keys: &[&str],
        headers: Option<&FieldTable>,
        props: &[u8],
        out: &mut Vec<(QueueId, ShardId)>,
    ) {
        // Several keys (CC/BCC, which a peer chooses freely): each distinct
        // key once, and queues deduplicated through a set, so the work stays
        // linear in what the keys match (never keys x queues scans) and
        // `dests` holds one key's matches at a time. One key (every other
        // publish) keeps the allocation-free scan of `out`.
        let distinct: Vec<&str>;
        let (keys, mut seen) = if keys.len() > 1 {
            let mut k = keys.to_vec();
            k.sort_unstable();
            k.dedup();
            distinct = k;
            let seen: std::collections::HashSet<QueueId> = out.iter().map(|(q, _)| *q).collect();
            (&distinct[..], Some(seen))
        } else {
            (keys, None)
        };
        let mut add = |out: &mut Vec<(QueueId, ShardId)>, id: QueueId, home: ShardId| {
            let new = match &mut seen {
                Some(s) => s.insert(id),
                None => !out.iter().any(|(q, _)| *q == id),
            };
            if new {
                out.push((id, home));
            }
        };
        if exchange.is_empty() {
            for k in keys {
                if let Some(q) = self.queue(vhost, k) {
                    add(out, q.id, q.home);
                }
            }
            return;
        }
        let mut pending = vec![exchange.to_string()];
        let mut visited: Vec<String> = Vec::new();
        let mut dests = Vec::new();
        while let Some(x) = pending.pop() {
            if visited.contains(&x) {
                continue;
            }
            let Some(e) = self.exchange(vhost, &x) else {
                continue;
            };
            visited.push(x);
            // Fanout and headers exchanges ignore the key, and a
            // consistent-hash exchange hashes the first key only (the
            // plugin's rule for CC/BCC): one pass each.
            let keys = match e.index.routing() {
                Index::Fanout(_) | Index::Headers(_) | Index::ConsistentHash(_) => {
                    &keys[..keys.len().min(1)]
                }
                _ => keys,
            };
            let mut routed = false;
            for k in keys {
                dests.clear();
                e.route(k, headers, props, &mut dests);
                routed |= !dests.is_empty();
                for d in dests.drain(..) {
                    match d {
                        Dest::Queue(id, home) => add(out, id, home),
                        Dest::Exchange(name) => {
                            if !visited.contains(&name) && !pending.contains(&name) {
                                pending.push(name);
                            }
                        }
                    }
                }
            }
            // RabbitMQ's alternate exchange: an exchange that routes a
            // message nowhere (no queue, no exchange) hands it to its
            // `alternate-exchange`, which may have its own; `visited`
            // stops a loop, a missing one drops (or returns a mandatory
            // message). Internal exchanges may be alternates.
            if !routed {
                // The argument wins over a policy's `alternate-exchange`.
                let ae = match e.def.args.inner().get("alternate-exchange") {
                    Some(ae) => crate::defs::arg_text(ae),
                    None => self.policies.alternate_exchange(vhost, &e.def.name),
                };
                if let Some(ae) = ae {
                    pending.push(ae);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::BindingDef;

    fn xdef(name: &str, kind: ExchangeKind) -> MetaChange {
        MetaChange::ExchangeDeclared(ExchangeDef {
            vhost: "/".into(),
            name: name.into(),
            kind,
            durable: false,
            auto_delete: false,
            internal: false,
            args: FieldTable::default(),
            delay_store: None,
        })
    }

    fn bind(src: &str, dest: Dest, key: &str) -> MetaChange {
        MetaChange::Bound(BindingDef {
            vhost: "/".into(),
            source: src.into(),
            dest,
            dest_name: String::new(),
            key: key.into(),
            args: FieldTable::default(),
        })
    }

    #[test]
    fn exchange_to_exchange_routes_once_per_queue_even_with_cycles() {
        let mut t = RoutingTable::new();
        t.apply(&xdef("a", ExchangeKind::Fanout));
        t.apply(&xdef("b", ExchangeKind::Topic));
        let q = Dest::Queue(QueueId(1), ShardId(1));
        t.apply(&bind("a", Dest::Exchange("b".into()), ""));
        t.apply(&bind("b", Dest::Exchange("a".into()), "#"));
        t.apply(&bind("b", q.clone(), "x.*"));
        t.apply(&bind("a", q.clone(), ""));
        let mut out = Vec::new();
        t.route("/", "a", "x.y", None, &[], &mut out);
        assert_eq!(out, vec![(QueueId(1), ShardId(1))]);
        t.apply(&MetaChange::Unbound(match bind("a", q, "") {
            MetaChange::Bound(b) => b,
            _ => unreachable!(),
        }));
        out.clear();
        t.route("/", "a", "nope", None, &[], &mut out);
        assert!(out.is_empty());
    }
}

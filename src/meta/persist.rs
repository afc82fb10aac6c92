//! Crash-safe persistence of durable definitions (exchanges, queues,
//! bindings): an append-only log at `<data-dir>/definitions.log`, one change
//! per line as `<crc32c hex> <json>`, fsynced before the change is applied
//! anywhere and before the `*-ok` is sent; a change that cannot be made
//! durable is refused (541) and applied nowhere. A torn or corrupt line
//! fails its checksum and is skipped, keeping every line after it; at
//! start-up the log is replayed and rewritten compactly (write, fsync,
//! rename). Appends write at the known good length and cut back a partial
//! write, so a failed append never glues itself to the next line.
//! Only the metadata authority appends; every shard reads it at start-up.

use crate::defs::{Dest, MetaChange, QueueDef};
use crate::error::InfraError;
use crate::ids::ShardId;
use crate::routing::RoutingTable;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// The open definitions log, appended to by the authority (shard 0 only).
pub struct DefinitionsLog {
    path: PathBuf,
    file: File,
    /// Bytes of the file that hold whole lines.
    len: u64,
}

fn io(path: &Path, source: std::io::Error) -> InfraError {
    InfraError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `<data-dir>/definitions.log`.
pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("definitions.log")
}

fn line(change: &MetaChange) -> String {
    let json = serde_json::to_string(change).unwrap_or_default();
    format!("{:08x} {json}\n", crc32c::crc32c(json.as_bytes()))
}

/// Read every valid change from the log; a torn or corrupt line (bad
/// checksum, not UTF-8, not a change) is skipped and the lines after it kept.
pub fn load(data_dir: &Path) -> Vec<MetaChange> {
    let path = log_path(data_dir);
    let Ok(f) = File::open(&path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (n, l) in BufReader::new(f).split(b'\n').enumerate() {
        let Ok(l) = l else { break };
        let parsed = std::str::from_utf8(&l).ok().and_then(|l| {
            let (crc, json) = l.split_once(' ')?;
            let ok = u32::from_str_radix(crc, 16).ok() == Some(crc32c::crc32c(json.as_bytes()));
            ok.then(|| serde_json::from_str::<MetaChange>(json).ok())
                .flatten()
        });
        match parsed {
            Some(c) => out.push(c),
            None => {
                tracing::warn!(file = %path.display(), line = n + 1, "torn or corrupt definitions entry skipped")
            }
        }
    }
    out
}

/// Is this change about durable entities (so it must survive restarts)?
pub fn is_durable(table: &RoutingTable, change: &MetaChange) -> bool {
    match change {
        MetaChange::ExchangeDeclared(x) => x.durable,
        MetaChange::QueueDeclared(q) => q.durable && q.exclusive_owner.is_none(),
        MetaChange::Bound(b) => {
            let src = table
                .exchange(&b.vhost, &b.source)
                .is_some_and(|x| x.def.durable);
            let dst = match &b.dest {
                Dest::Queue(id, _) => table
                    .queue_by_id(*id)
                    .is_some_and(|q| q.durable && q.exclusive_owner.is_none()),
                Dest::Exchange(n) => table.exchange(&b.vhost, n).is_some_and(|x| x.def.durable),
            };
            src && dst
        }
        // A deletion is logged when what it deletes was durable (checked
        // before the change is applied).
        MetaChange::ExchangeDeleted { vhost, name } => {
            table.exchange(vhost, name).is_some_and(|x| x.def.durable)
        }
        MetaChange::QueueDeleted { id, .. } => table
            .queue_by_id(*id)
            .is_some_and(|q| q.durable && q.exclusive_owner.is_none()),
        MetaChange::Unbound(b) => is_durable(table, &MetaChange::Bound(b.clone())),
        // Access control is always durable.
        MetaChange::VhostAdded { .. }
        | MetaChange::VhostMetadataSet { .. }
        | MetaChange::VhostDeleted { .. }
        | MetaChange::UserPut(_)
        | MetaChange::UserDeleted { .. }
        | MetaChange::PermissionSet(_)
        | MetaChange::PermissionCleared { .. }
        | MetaChange::TopicPermissionSet(_)
        | MetaChange::TopicPermissionCleared { .. }
        | MetaChange::VhostLimitsSet { .. }
        | MetaChange::UserLimitsSet { .. }
        | MetaChange::PolicySet(_)
        | MetaChange::PolicyCleared { .. } => true,
    }
}

/// Give every queue a home that exists with the current shard count.
pub fn rehome(changes: &mut [MetaChange], shards: usize) {
    let mut moved: Vec<(crate::ids::QueueId, ShardId)> = Vec::new();
    for c in changes.iter_mut() {
        if let MetaChange::ExchangeDeclared(x) = c {
            if let Some(ds) = x.delay_store.as_mut().filter(|ds| ds.home.0 >= shards) {
                tracing::warn!(exchange = %x.name, "delayed messages' shard no longer exists; they stay in shard-{}", ds.home.0);
                ds.home = crate::defs::queue_home(&x.vhost, &x.name, shards);
            }
        }
        if let MetaChange::QueueDeclared(q) = c {
            if q.home.0 >= shards {
                let home = crate::defs::queue_home(&q.vhost, &q.name, shards);
                tracing::warn!(queue = %q.name, "queue's shard no longer exists; its stored messages stay in shard-{}", q.home.0);
                q.home = home;
                moved.push((q.id, home));
            }
        }
    }
    for c in changes.iter_mut() {
        if let MetaChange::Bound(b) | MetaChange::Unbound(b) = c {
            if let Dest::Queue(id, home) = &mut b.dest {
                if let Some((_, h)) = moved.iter().find(|(q, _)| q == id) {
                    *home = *h;
                }
            }
        }
    }
}

/// The table's durable state as a minimal list of changes.
pub fn snapshot(table: &RoutingTable) -> Vec<MetaChange> {
    let mut out = Vec::new();
    for v in &table.vhosts {
        out.push(MetaChange::VhostAdded { name: v.clone() });
        if let Some(meta) = table.vhost_metadata.get(v) {
            out.push(MetaChange::VhostMetadataSet {
                name: v.clone(),
                description: meta.description.clone(),
                tags: meta.tags.clone(),
            });
        }
    }
    for u in table.users.values() {
        out.push(MetaChange::UserPut(u.clone()));
    }
    let mut perms: Vec<_> = table.permissions.values().map(|p| p.def.clone()).collect();
    perms.sort_by(|a, b| (&a.user, &a.vhost).cmp(&(&b.user, &b.vhost)));
    for p in perms {
        out.push(MetaChange::PermissionSet(p));
    }
    let topic = table.topic_permissions.defs();
    out.extend(
        topic
            .into_iter()
            .cloned()
            .map(MetaChange::TopicPermissionSet),
    );
    let mut vl: Vec<_> = table.vhost_limits.iter().collect();
    vl.sort();
    for (vhost, limits) in vl {
        out.push(MetaChange::VhostLimitsSet {
            vhost: vhost.clone(),
            limits: limits.clone(),
        });
    }
    let mut policies: Vec<_> = table.policies.all().cloned().collect();
    policies.sort_by(|a, b| (&a.vhost, &a.name, a.operator).cmp(&(&b.vhost, &b.name, b.operator)));
    out.extend(policies.into_iter().map(MetaChange::PolicySet));
    let mut ul: Vec<_> = table.user_limits.iter().collect();
    ul.sort();
    for (user, limits) in ul {
        out.push(MetaChange::UserLimitsSet {
            user: user.clone(),
            limits: limits.clone(),
        });
    }
    let mut xs: Vec<_> = table.exchanges.values().filter(|e| e.def.durable).collect();
    xs.sort_by(|a, b| (&a.def.vhost, &a.def.name).cmp(&(&b.def.vhost, &b.def.name)));
    for x in &xs {
        out.push(MetaChange::ExchangeDeclared(x.def.clone()));
    }
    let mut qs: Vec<&QueueDef> = table
        .queues
        .values()
        .filter(|q| q.durable && q.exclusive_owner.is_none())
        .collect();
    qs.sort_by_key(|q| q.id);
    for q in qs {
        out.push(MetaChange::QueueDeclared(q.clone()));
    }
    for x in xs {
        for (dest, key, args) in x.bindings() {
            let b = crate::defs::BindingDef {
                vhost: x.def.vhost.clone(),
                source: x.def.name.clone(),
                dest: dest.clone(),
                dest_name: match dest {
                    Dest::Queue(id, _) => table
                        .queue_by_id(*id)
                        .map(|q| q.name.clone())
                        .unwrap_or_default(),
                    Dest::Exchange(n) => n.clone(),
                },
                key: key.to_string(),
                args: args.clone(),
            };
            let c = MetaChange::Bound(b);
            if is_durable(table, &c) {
                out.push(c);
            }
        }
    }
    out
}

impl DefinitionsLog {
    /// Rewrite the log from `snapshot` (crash-safe) and open it for appends.
    pub fn rewrite(data_dir: &Path, snapshot: &[MetaChange]) -> Result<DefinitionsLog, InfraError> {
        let path = log_path(data_dir);
        let tmp = path.with_extension("log.tmp");
        let mut body = String::new();
        for c in snapshot {
            body.push_str(&line(c));
        }
        let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(body.as_bytes()).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        if let Ok(d) = File::open(data_dir) {
            let _ = d.sync_all();
        }
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        Ok(DefinitionsLog {
            path,
            file,
            len: body.len() as u64,
        })
    }

    /// Append one change and make it durable before returning. On error
    /// nothing of it remains in the file (a partial write is cut back).
    pub fn append(&mut self, change: &MetaChange) -> Result<(), InfraError> {
        use std::os::unix::fs::FileExt;
        let l = line(change);
        let r = self
            .file
            .write_all_at(l.as_bytes(), self.len)
            .and_then(|()| self.file.sync_data());
        match r {
            Ok(()) => {
                self.len += l.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                let _ = self.file.sync_data();
                Err(io(&self.path, e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::{ExchangeDef, ExchangeKind};
    use amq_protocol::types::FieldTable;
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_corrupt_line_is_skipped_and_the_lines_after_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let x = |name: &str| {
            MetaChange::ExchangeDeclared(ExchangeDef {
                vhost: "/".into(),
                name: name.into(),
                kind: ExchangeKind::Fanout,
                durable: true,
                auto_delete: false,
                internal: false,
                args: FieldTable::default(),
                delay_store: None,
            })
        };
        let mut log = DefinitionsLog::rewrite(dir.path(), &[x("a")]).unwrap();
        // A torn line in the middle (as a failed append of an older
        // version left it), then a good one.
        let torn = b"deadbeef {\"Exch\xff\n";
        log.file.write_all_at(torn, log.len).unwrap();
        log.len += torn.len() as u64;
        log.append(&x("b")).unwrap();
        let got = load(dir.path());
        assert_eq!(got.len(), 2, "the line after the torn one is kept");
    }

    #[test]
    fn torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let x = MetaChange::ExchangeDeclared(ExchangeDef {
            vhost: "/".into(),
            name: "logs".into(),
            kind: ExchangeKind::Fanout,
            durable: true,
            auto_delete: false,
            internal: false,
            args: FieldTable::default(),
            delay_store: None,
        });
        let mut log = DefinitionsLog::rewrite(dir.path(), std::slice::from_ref(&x)).unwrap();
        log.append(&x).unwrap();
        log.file
            .write_all_at(b"deadbeef {\"Exchange", log.len)
            .unwrap();
        let got = load(dir.path());
        assert_eq!(got.len(), 2);
    }
}

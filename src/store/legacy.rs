//! Import of the previous on-disk format, where each durable queue had its
//! own `queue.<fnv1a(vhost, name)>.idx` file of 16-byte entries
//! `[kind: u8][0; 3][segment: u32][offset: u32][crc32c of the first 12: u32]`.
//! Read once at start-up, claimed by the queue of that vhost and name, then
//! deleted: from then on the queue lives in the shard's journal.

use super::journal::Live;
use super::Position;
use crate::ids::SegmentId;
use std::path::{Path, PathBuf};

const ENTRY: usize = 16;

/// The old index file name of a queue.
pub fn index_file(dir: &Path, vhost: &str, name: &str) -> PathBuf {
    let h = crate::ids::name_hash(vhost, name);
    dir.join(format!("queue.{h:016x}.idx"))
}

/// The live messages of an old index file (empty if unreadable).
pub fn read(path: &Path) -> Live {
    let Ok(data) = std::fs::read(path) else {
        return Vec::new();
    };
    // (position, 0 live / 1 delivered / 2 acked), and where each one is.
    let mut items: Vec<(Position, u8)> = Vec::new();
    let mut at: std::collections::HashMap<Position, usize> = std::collections::HashMap::new();
    for e in data.chunks(ENTRY) {
        if e.len() < ENTRY
            || crc32c::crc32c(&e[..12]) != u32::from_le_bytes([e[12], e[13], e[14], e[15]])
        {
            break;
        }
        let pos = Position {
            seg: SegmentId(u32::from_le_bytes([e[4], e[5], e[6], e[7]]) as u64),
            off: u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
        };
        let found = at.get(&pos).copied();
        match (e[0], found) {
            (1, _) => {
                at.insert(pos, items.len());
                items.push((pos, 0));
            }
            (2, Some(i)) => items[i].1 = 1,
            (3, Some(i)) => items[i].1 = 2,
            _ => {}
        }
    }
    items
        .into_iter()
        .filter(|(_, s)| *s != 2)
        .map(|(pos, s)| super::journal::Recovered {
            pos,
            deliveries: u32::from(s == 1),
            expires: 0,
        })
        .collect()
}

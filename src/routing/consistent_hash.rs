//! The `x-consistent-hash` exchange type (RabbitMQ's
//! `rabbitmq_consistent_hash_exchange` plugin): each message goes to exactly
//! one of the bound destinations, chosen by a hash of its routing key (or of
//! the header named by the `hash-header` argument, or of the property named
//! by `hash-property`: `correlation_id`, `message_id` or `timestamp`); a
//! binding's key is its weight, a positive integer, and destinations get
//! messages in proportion to their weights.
//!
//! As in the plugin (3.10), the bindings form a sequence of buckets in the
//! order they were made, `weight` buckets each, and jump consistent hashing
//! (Lamping and Veach) picks the bucket: the same key goes to the same
//! destination while the bindings stay the same, and adding a binding moves
//! only the keys the new buckets take. The hash function is Warren's
//! (64-bit FNV-1a), not Erlang's `phash2`, so a given key may land on a
//! different queue than on RabbitMQ. A message without the hashed header or
//! property is hashed as empty (RabbitMQ 3.10 also routes it, hashing
//! `undefined`). With `CC`/`BCC`, only the publish's own routing key counts,
//! as in the plugin.
//!
//! Hot path: one hash of the key, O(log buckets) steps of the jump hash and
//! a binary search over the bindings' cumulative weights; no allocation.

use crate::defs::Dest;
use amq_protocol::types::{AMQPValue, FieldTable};

/// What is hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HashOn {
    RoutingKey,
    Header(String),
    Property(Property),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Property {
    CorrelationId,
    MessageId,
    Timestamp,
}

/// One consistent-hash exchange's bindings (see the module documentation).
#[derive(Debug)]
pub struct ConsistentHash {
    on: HashOn,
    /// Destinations in binding order, with their weights.
    ring: Vec<(Dest, u32)>,
    /// `cum[i]`: total weight of `ring[..=i]` (the buckets before the next).
    cum: Vec<u64>,
}

/// The weight a binding key gives, or the refusal's text (RabbitMQ's 406
/// texts; a weight above 2^32 - 1 is Warren's own limit).
pub fn weight(key: &str) -> Result<u32, String> {
    let n: i64 = key.parse().map_err(|_| {
        format!("The binding key must be an integer: <<\"{key}\">>").replace("<<\"\">>", "<<>>")
    })?;
    if n < 1 {
        return Err("The binding key must be greater than 0".into());
    }
    u32::try_from(n).map_err(|_| format!("The binding key must be at most {}", u32::MAX))
}

/// Check a consistent-hash exchange's arguments; the refusal's text is
/// RabbitMQ's (a non-string `hash-header`, which crashes RabbitMQ 3.10's
/// plugin with 541, gets Warren's own 406 text).
pub fn check_args(args: &FieldTable) -> Result<(), String> {
    let inner = args.inner();
    let header = inner.get("hash-header");
    let property = inner.get("hash-property");
    if header.is_some() && property.is_some() {
        return Err("hash-header and hash-property are mutually exclusive".into());
    }
    if let Some(h) = header {
        if crate::defs::arg_text(h).is_none() {
            return Err("hash-header must be a string".into());
        }
    }
    if let Some(p) = property {
        let name = crate::defs::arg_text(p).unwrap_or_default();
        if property_of(&name).is_none() {
            return Err(format!("Unsupported property: {name}"));
        }
    }
    Ok(())
}

fn property_of(name: &str) -> Option<Property> {
    Some(match name {
        "correlation_id" => Property::CorrelationId,
        "message_id" => Property::MessageId,
        "timestamp" => Property::Timestamp,
        _ => return None,
    })
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Jump consistent hash: a bucket in `0..buckets` for `key`.
fn jump(mut key: u64, buckets: u64) -> u64 {
    let (mut b, mut j) = (0u64, 0u64);
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as u64;
    }
    b
}

impl ConsistentHash {
    /// An exchange with no bindings; what it hashes comes from its
    /// (validated) arguments.
    pub fn new(args: &FieldTable) -> Self {
        let inner = args.inner();
        let on = if let Some(h) = inner.get("hash-header").and_then(crate::defs::arg_text) {
            HashOn::Header(h)
        } else if let Some(p) = inner
            .get("hash-property")
            .and_then(crate::defs::arg_text)
            .and_then(|p| property_of(&p))
        {
            HashOn::Property(p)
        } else {
            HashOn::RoutingKey
        };
        ConsistentHash {
            on,
            ring: Vec::new(),
            cum: Vec::new(),
        }
    }

    /// It hashes a message property (`hash-property`), so its choice
    /// depends on more than the routing key.
    pub fn hashes_property(&self) -> bool {
        matches!(self.on, HashOn::Property(_))
    }

    fn rebuild(&mut self) {
        let mut total = 0u64;
        self.cum = self
            .ring
            .iter()
            .map(|(_, w)| {
                total += u64::from(*w);
                total
            })
            .collect();
    }

    /// A binding with key `key` (its weight) to `dest` was added.
    pub fn insert(&mut self, key: &str, dest: Dest) {
        self.ring.push((dest, weight(key).unwrap_or(1)));
        self.rebuild();
    }

    /// That binding was removed.
    pub fn remove(&mut self, key: &str, dest: &Dest) {
        let w = weight(key).unwrap_or(1);
        if let Some(i) = self.ring.iter().position(|(d, x)| d == dest && *x == w) {
            self.ring.remove(i);
            self.rebuild();
        }
    }

    /// The one destination of a message (routing key, headers, raw
    /// properties), if anything is bound.
    pub fn route(
        &self,
        key: &str,
        headers: Option<&FieldTable>,
        props: &[u8],
        out: &mut Vec<Dest>,
    ) {
        let Some(&total) = self.cum.last() else {
            return;
        };
        let hash = match &self.on {
            HashOn::RoutingKey => fnv1a(key.as_bytes()),
            HashOn::Header(name) => match headers.and_then(|h| h.inner().get(name.as_str())) {
                Some(AMQPValue::LongString(s)) => fnv1a(s.as_bytes()),
                Some(AMQPValue::ShortString(s)) => fnv1a(s.as_str().as_bytes()),
                Some(other) => fnv1a(
                    crate::defs::arg_integer(other)
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                        .as_bytes(),
                ),
                None => fnv1a(b""),
            },
            HashOn::Property(p) => {
                let value = amq_protocol::protocol::basic::parse_properties(props)
                    .ok()
                    .and_then(|(_, props)| match p {
                        Property::CorrelationId => {
                            props.correlation_id().as_ref().map(|s| s.to_string())
                        }
                        Property::MessageId => props.message_id().as_ref().map(|s| s.to_string()),
                        Property::Timestamp => props.timestamp().map(|t| t.to_string()),
                    })
                    .unwrap_or_default();
                fnv1a(value.as_bytes())
            }
        };
        let bucket = jump(hash, total);
        let i = self.cum.partition_point(|&c| c <= bucket);
        if let Some((d, _)) = self.ring.get(i) {
            out.push(d.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{QueueId, ShardId};

    fn q(n: u64) -> Dest {
        Dest::Queue(QueueId(n), ShardId(0))
    }

    fn pick(c: &ConsistentHash, key: &str) -> Dest {
        let mut out = Vec::new();
        c.route(key, None, &[], &mut out);
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    #[test]
    fn weights_split_messages_in_proportion_and_a_key_always_goes_the_same_way() {
        let mut c = ConsistentHash::new(&FieldTable::default());
        c.insert("1", q(1));
        c.insert("3", q(2));
        let to_two = (0..8000)
            .filter(|i| pick(&c, &format!("k{i}")) == q(2))
            .count();
        assert!(
            (5600..6400).contains(&to_two),
            "{to_two} of 8000 for weight 3 of 4"
        );
        assert_eq!(pick(&c, "same"), pick(&c, "same"));
    }

    #[test]
    fn adding_a_binding_only_moves_keys_to_the_new_one() {
        let mut c = ConsistentHash::new(&FieldTable::default());
        c.insert("1", q(1));
        c.insert("1", q(2));
        let before: Vec<Dest> = (0..2000).map(|i| pick(&c, &format!("k{i}"))).collect();
        c.insert("1", q(3));
        for (i, b) in before.iter().enumerate() {
            let now = pick(&c, &format!("k{i}"));
            assert!(
                now == *b || now == q(3),
                "key k{i} moved between old queues"
            );
        }
        c.remove("1", &q(3));
        let again: Vec<Dest> = (0..2000).map(|i| pick(&c, &format!("k{i}"))).collect();
        assert_eq!(before, again);
    }

    #[test]
    fn binding_keys_and_arguments_get_rabbitmqs_texts() {
        assert_eq!(
            weight("abc").unwrap_err(),
            "The binding key must be an integer: <<\"abc\">>"
        );
        assert_eq!(
            weight("").unwrap_err(),
            "The binding key must be an integer: <<>>"
        );
        assert_eq!(
            weight("0").unwrap_err(),
            "The binding key must be greater than 0"
        );
        assert_eq!(weight("7"), Ok(7));
        let mut a = FieldTable::default();
        a.insert("hash-header".into(), AMQPValue::LongString("h".into()));
        a.insert(
            "hash-property".into(),
            AMQPValue::LongString("message_id".into()),
        );
        assert_eq!(
            check_args(&a).unwrap_err(),
            "hash-header and hash-property are mutually exclusive"
        );
        let mut a = FieldTable::default();
        a.insert("hash-property".into(), AMQPValue::LongString("foo".into()));
        assert_eq!(check_args(&a).unwrap_err(), "Unsupported property: foo");
    }
}

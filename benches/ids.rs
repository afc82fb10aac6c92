//! Lookups in the hot id-keyed maps: `warren::ids::IdMap` (aHash) against
//! the standard `HashMap` (SipHash), keyed as the broker keys them: a
//! delivery tag (`u64`) among a queue's unacked deliveries, and a channel
//! number (`u16`) among a connection's channels. One iteration is 1,000
//! lookups. PERF.md, "s1: where its time goes", has the s1 profile that
//! made the change.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use warren::ids::IdMap;

const N: u64 = 1000;

fn lookups<K: Hash + Eq + Copy, S: BuildHasher>(map: &HashMap<K, u64, S>, keys: &[K]) -> u64 {
    let mut sum = 0u64;
    for k in keys {
        sum = sum.wrapping_add(*map.get(black_box(k)).unwrap());
    }
    sum
}

fn delivery_tags(c: &mut Criterion) {
    let mut g = c.benchmark_group("ids/unacked_lookup_u64");
    g.throughput(Throughput::Elements(N));
    let keys: Vec<u64> = (1..=N).map(|i| i * 7 + 1_000_000).collect();
    let mut fast: IdMap<u64, u64> = IdMap::default();
    let mut sip: HashMap<u64, u64> = HashMap::new();
    for &k in &keys {
        fast.insert(k, k);
        sip.insert(k, k);
    }
    g.bench_function("idmap_ahash", |b| b.iter(|| lookups(&fast, &keys)));
    g.bench_function("std_siphash", |b| b.iter(|| lookups(&sip, &keys)));
    g.finish();
}

fn channel_numbers(c: &mut Criterion) {
    let mut g = c.benchmark_group("ids/channel_lookup_u16");
    g.throughput(Throughput::Elements(N));
    // A connection with 8 open channels, looked up in turn (one lookup per
    // frame in the broker).
    let open: Vec<u16> = (1..=8).collect();
    let keys: Vec<u16> = (0..N as usize).map(|i| open[i % open.len()]).collect();
    let mut fast: IdMap<u16, u64> = IdMap::default();
    let mut sip: HashMap<u16, u64> = HashMap::new();
    for &k in &open {
        fast.insert(k, u64::from(k));
        sip.insert(k, u64::from(k));
    }
    g.bench_function("idmap_ahash", |b| b.iter(|| lookups(&fast, &keys)));
    g.bench_function("std_siphash", |b| b.iter(|| lookups(&sip, &keys)));
    g.finish();
}

criterion_group!(benches, delivery_tags, channel_numbers);
criterion_main!(benches);

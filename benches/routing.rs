//! Topic matching (`TopicTrie`) with 1, 100 and 10,000 bindings, and
//! routing-table lookups (`RoutingTable::route`) for the exchange types.

use amq_protocol::types::FieldTable;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use warren::defs::{BindingDef, Dest, ExchangeDef, ExchangeKind, MetaChange, QueueDef};
use warren::ids::{QueueId, ShardId};
use warren::routing::topic::TopicTrie;
use warren::routing::RoutingTable;

/// A mix of literal and wildcard patterns, like a real topic deployment:
/// `stock.<i>.*`, `region.<i mod 10>.#` and a few `*.<i>.trade`.
fn pattern(i: usize) -> String {
    match i % 4 {
        0 | 1 => format!("stock.{i}.*"),
        2 => format!("region.{}.#.{i}", i % 10),
        _ => format!("*.{i}.trade"),
    }
}

fn topic(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing/topic_match");
    g.throughput(Throughput::Elements(1));
    for n in [1usize, 100, 10_000] {
        let mut t = TopicTrie::new();
        for i in 0..n {
            t.insert(&pattern(i), i as u32);
        }
        // A key that hits one literal binding plus the wildcard branches.
        let key = format!("stock.{}.trade", n / 2 - n / 2 % 4);
        let mut out = Vec::with_capacity(16);
        g.bench_with_input(BenchmarkId::new("bindings", n), &key, |b, key| {
            b.iter(|| {
                out.clear();
                t.matches(black_box(key), &mut out);
                black_box(out.len())
            })
        });
        let miss = "nothing.matches.this.key".to_string();
        g.bench_with_input(BenchmarkId::new("bindings_miss", n), &miss, |b, key| {
            b.iter(|| {
                out.clear();
                t.matches(black_box(key), &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

/// Adversarial patterns a user with bind rights could send: many `#`
/// words, against long keys (each lookup is bounded by trie nodes x key
/// words; a backtracking matcher takes minutes here).
fn topic_adversarial(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing/topic_adversarial");
    g.throughput(Throughput::Elements(1));
    for hashes in [4usize, 24] {
        let mut t = TopicTrie::new();
        t.insert(&format!("{}z", "#.".repeat(hashes)), 1u32);
        t.insert(&"#.a.".repeat(hashes / 2).to_string(), 2u32);
        let key = vec!["a"; 120].join(".");
        let mut out = Vec::with_capacity(16);
        g.bench_with_input(
            BenchmarkId::new("hashes_120_words", hashes),
            &key,
            |b, key| {
                b.iter(|| {
                    out.clear();
                    t.matches(black_box(key), &mut out);
                    black_box(out.len())
                })
            },
        );
    }
    g.finish();
}

fn xdecl(name: &str, kind: ExchangeKind) -> MetaChange {
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

fn qdecl(i: u64) -> MetaChange {
    MetaChange::QueueDeclared(QueueDef {
        id: QueueId(i),
        vhost: "/".into(),
        name: format!("q{i}"),
        home: ShardId((i % 2) as usize),
        durable: false,
        exclusive_owner: None,
        auto_delete: false,
        args: FieldTable::default(),
    })
}

fn bind(src: &str, q: u64, key: &str) -> MetaChange {
    MetaChange::Bound(BindingDef {
        vhost: "/".into(),
        source: src.into(),
        dest: Dest::Queue(QueueId(q), ShardId((q % 2) as usize)),
        dest_name: format!("q{q}"),
        key: key.into(),
        args: FieldTable::default(),
    })
}

fn table(c: &mut Criterion) {
    let mut t = RoutingTable::new();
    for i in 0..1000 {
        t.apply(&qdecl(i));
    }
    t.apply(&xdecl("x.direct", ExchangeKind::Direct));
    t.apply(&xdecl("x.fanout", ExchangeKind::Fanout));
    t.apply(&xdecl("x.topic", ExchangeKind::Topic));
    for i in 0..1000 {
        t.apply(&bind("x.direct", i, &format!("q{i}")));
        t.apply(&bind("x.topic", i % 10, &format!("lg.{i}.*")));
    }
    for i in 0..10 {
        t.apply(&bind("x.fanout", i, ""));
    }
    let mut g = c.benchmark_group("routing/table_route");
    g.throughput(Throughput::Elements(1));
    let cases: [(&str, &str, &str); 4] = [
        ("default_exchange_1000_queues", "", "q500"),
        ("direct_1000_bindings", "x.direct", "q500"),
        ("fanout_10_queues", "x.fanout", ""),
        ("topic_1000_bindings", "x.topic", "lg.500.x"),
    ];
    let mut out = Vec::with_capacity(16);
    for (name, ex, key) in cases {
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                t.route("/", black_box(ex), black_box(key), None, &[], &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, topic, topic_adversarial, table);
criterion_main!(benches);

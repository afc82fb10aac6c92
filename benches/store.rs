//! Segment append and read: `warren::store::Store` appending persistent
//! 1 KiB messages to its segments (CRC32C framing; records gathered in the
//! segment's buffer and written with one `pwrite` per 256 KiB, as between
//! two group commits) and loading them back through the read-only mapping
//! (checksum verified, zero-copy). Baseline: a plain `Vec` append of the
//! same bytes, i.e. the cost of the memory copy alone.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use warren::ids::QueueId;
use warren::message::Message;
use warren::store::Store;

const N: usize = 1000;

fn msg(size: usize) -> Message {
    Message {
        exchange: "".into(),
        routing_key: "bench".into(),
        props: Bytes::from_static(&[0x10, 0x00, 2]),
        body: Bytes::from(vec![7u8; size]),
        persistent: true,
        expiration_ms: None,
        priority: 0,
    }
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("store/append_1k");
    g.throughput(Throughput::Elements(N as u64));
    let m = msg(1024);
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().to_path_buf(), 64 * 1024 * 1024, false).unwrap();
    store.open_queue(QueueId(1), "/", "bench");
    g.bench_function("segment", |b| {
        b.iter(|| {
            for _ in 0..N {
                let p = store.append_message(black_box(&m)).unwrap();
                // Release at once so segments roll and get deleted.
                store.enqueue(QueueId(1), p, 0);
                store.ack(QueueId(1), p);
            }
        })
    });
    let mut v: Vec<u8> = Vec::with_capacity(64 * 1024 * 1024);
    g.bench_function("vec_baseline", |b| {
        b.iter(|| {
            for _ in 0..N {
                if v.len() > 60 * 1024 * 1024 {
                    v.clear();
                }
                v.extend_from_slice(black_box(&m.props));
                v.extend_from_slice(black_box(&m.body));
            }
        })
    });
    g.finish();
}

fn read(c: &mut Criterion) {
    let mut g = c.benchmark_group("store/read_1k");
    g.throughput(Throughput::Elements(N as u64));
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().to_path_buf(), 64 * 1024 * 1024, false).unwrap();
    store.open_queue(QueueId(1), "/", "bench");
    let m = msg(1024);
    let positions: Vec<_> = (0..N)
        .map(|_| {
            let p = store.append_message(&m).unwrap();
            store.enqueue(QueueId(1), p, 0);
            p
        })
        .collect();
    g.bench_function("load_verified", |b| {
        b.iter(|| {
            for p in &positions {
                black_box(store.load(*p).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);

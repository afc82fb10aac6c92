//! Frame parse and generate: `warren::codec::{next_frame, write_method, write_content}`,
//! and the delivery write of large bodies, copied (`write_content`) or
//! spliced (`write_content_spliced` into an `OutBuf`, what the broker does).

use amq_protocol::protocol::{basic, AMQPClass};
use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use warren::codec::fast::write_deliver;
use warren::codec::out::OutBuf;
use warren::codec::{
    encode_properties, next_frame, write_content, write_content_spliced, write_method,
};

const FRAME_MAX: u32 = 131_072;
const BATCH: usize = 1000;

fn publish(body: usize) -> Vec<u8> {
    let mut out = Vec::new();
    write_method(
        &mut out,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "loadgen-0".into(),
            mandatory: false,
            immediate: false,
        })),
    );
    let props = encode_properties(&basic::AMQPProperties::default());
    write_content(&mut out, 1, &props, &vec![7u8; body], FRAME_MAX);
    out
}

/// Parse a buffer holding BATCH publishes (method + header + body frames),
/// the way a connection's reader sees a full socket read.
fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec/parse_publish");
    for body in [16usize, 1024, 16384] {
        let one = publish(body);
        let wire: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(one.len() * BATCH)
            .collect();
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_with_input(BenchmarkId::from_parameter(body), &wire, |b, wire| {
            b.iter(|| {
                let mut buf = BytesMut::from(&wire[..]);
                let mut n = 0;
                while let Some(f) = next_frame(&mut buf, FRAME_MAX).unwrap() {
                    black_box(&f);
                    n += 1;
                }
                assert_eq!(n, 3 * BATCH);
            })
        });
    }
    g.finish();
}

/// Generate BATCH deliveries (basic.deliver + content) into one buffer.
fn generate(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec/generate_deliver");
    let props = encode_properties(&basic::AMQPProperties::default().with_delivery_mode(2));
    for body in [16usize, 1024, 16384] {
        let payload = vec![7u8; body];
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_with_input(BenchmarkId::from_parameter(body), &payload, |b, payload| {
            let mut out = Vec::with_capacity(BATCH * (body + 128));
            b.iter(|| {
                out.clear();
                for tag in 0..BATCH as u64 {
                    write_method(
                        &mut out,
                        1,
                        AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                            consumer_tag: "ctag-1".into(),
                            delivery_tag: tag + 1,
                            redelivered: false,
                            exchange: "".into(),
                            routing_key: "loadgen-0".into(),
                        })),
                    );
                    write_content(&mut out, 1, &props, payload, FRAME_MAX);
                }
                black_box(out.len())
            })
        });
    }
    g.finish();
}

/// The same, with the broker's hand-written deliver encoder.
fn generate_fast(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec/generate_deliver_fast");
    let props = encode_properties(&basic::AMQPProperties::default().with_delivery_mode(2));
    for body in [16usize, 1024, 16384] {
        let payload = vec![7u8; body];
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_with_input(BenchmarkId::from_parameter(body), &payload, |b, payload| {
            let mut out = Vec::with_capacity(BATCH * (body + 128));
            b.iter(|| {
                out.clear();
                for tag in 0..BATCH as u64 {
                    write_deliver(&mut out, 1, "ctag-1", tag + 1, false, "", "loadgen-0");
                    write_content(&mut out, 1, &props, payload, FRAME_MAX);
                }
                black_box(out.len())
            })
        });
    }
    g.finish();
}

/// Deliveries of large bodies as the broker writes them: the body copied
/// into the write buffer (before issue 14's change) or spliced as a slice
/// of its own `Bytes` (now), 64 deliveries a batch.
fn generate_large(c: &mut Criterion) {
    const LARGE_BATCH: usize = 64;
    let props = encode_properties(&basic::AMQPProperties::default());
    for (name, spliced) in [("copied", false), ("spliced", true)] {
        let mut g = c.benchmark_group(format!("codec/deliver_large_{name}"));
        for body in [16384usize, 1 << 20] {
            let payload = bytes::Bytes::from(vec![7u8; body]);
            g.throughput(Throughput::Bytes((LARGE_BATCH * body) as u64));
            g.bench_with_input(BenchmarkId::from_parameter(body), &payload, |b, payload| {
                let mut out = OutBuf::default();
                b.iter(|| {
                    out.clear();
                    for tag in 0..LARGE_BATCH as u64 {
                        write_deliver(&mut out, 1, "ctag-1", tag + 1, false, "", "loadgen-0");
                        if spliced {
                            write_content_spliced(&mut out, 1, &props, payload, FRAME_MAX);
                        } else {
                            write_content(&mut out, 1, &props, payload, FRAME_MAX);
                        }
                    }
                    black_box(out.total_len())
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, parse, generate, generate_fast, generate_large);
criterion_main!(benches);

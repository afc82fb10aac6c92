//! One mailbox hop between shards: a glommio `shared_channel` between two
//! executors on different cores carrying batches of messages, next to a std
//! `sync_channel` between two threads as a baseline.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

/// Roughly the size of a publish in Warren's mailbox (ids + a refcounted
/// message handle + a confirm reference).
type Msg = [u64; 6];
const CAPACITY: usize = 256;

fn placement(cpu: usize) -> Placement {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if n >= 2 {
        Placement::Fixed(cpu % n)
    } else {
        Placement::Unbound
    }
}

/// Send `batches` batches of `size` messages from executor 0 to executor 1.
fn glommio_hop(batches: u64, size: usize) -> Duration {
    let (tx, rx) = shared_channel::new_bounded::<Vec<Msg>>(CAPACITY);
    let barrier = Arc::new(Barrier::new(2));
    let b2 = barrier.clone();
    let consumer = LocalExecutorBuilder::new(placement(1))
        .spawn(move || async move {
            let rx = rx.connect().await;
            b2.wait();
            let mut got = 0u64;
            while let Some(batch) = rx.recv().await {
                got += batch.len() as u64;
                if got == batches * size as u64 {
                    break;
                }
            }
            Instant::now()
        })
        .expect("consumer executor");
    let producer = LocalExecutorBuilder::new(placement(0))
        .spawn(move || async move {
            let tx = tx.connect().await;
            barrier.wait();
            let start = Instant::now();
            for i in 0..batches {
                let batch: Vec<Msg> = (0..size).map(|j| [i, j as u64, 0, 0, 0, 0]).collect();
                if tx.send(batch).await.is_err() {
                    break;
                }
            }
            start
        })
        .expect("producer executor");
    let start = producer.join().expect("producer");
    let end = consumer.join().expect("consumer");
    end - start
}

fn std_hop(batches: u64, size: usize) -> Duration {
    let (tx, rx) = mpsc::sync_channel::<Vec<Msg>>(CAPACITY);
    let barrier = Arc::new(Barrier::new(2));
    let b2 = barrier.clone();
    let consumer = std::thread::spawn(move || {
        b2.wait();
        let mut got = 0u64;
        while let Ok(batch) = rx.recv() {
            got += batch.len() as u64;
            if got == batches * size as u64 {
                break;
            }
        }
        Instant::now()
    });
    let producer = std::thread::spawn(move || {
        barrier.wait();
        let start = Instant::now();
        for i in 0..batches {
            let batch: Vec<Msg> = (0..size).map(|j| [i, j as u64, 0, 0, 0, 0]).collect();
            tx.send(batch).unwrap();
        }
        start
    });
    let start = producer.join().unwrap();
    consumer.join().unwrap() - start
}

fn hop(c: &mut Criterion) {
    let mut g = c.benchmark_group("mailbox/hop");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    for size in [1usize, 16, 256] {
        g.throughput(Throughput::Elements(size as u64));
        g.bench_with_input(
            BenchmarkId::new("glommio_shared_channel", size),
            &size,
            |b, &size| {
                // Executor start-up and connect happen before the clock starts.
                b.iter_custom(|iters| glommio_hop(iters, size))
            },
        );
        g.bench_with_input(
            BenchmarkId::new("std_sync_channel", size),
            &size,
            |b, &size| b.iter_custom(|iters| std_hop(iters, size)),
        );
    }
    g.finish();
}

criterion_group!(benches, hop);
criterion_main!(benches);

//! One mailbox hop between shards: a glommio `shared_channel` between two
//! executors on different cores carrying batches of messages, next to a std
//! `sync_channel` between two threads as a baseline (`mailbox/hop`,
//! throughput); and one hop at rest (`mailbox/hop_at_rest`): a message and
//! its reply between two executors that are both parked when it is sent
//! (the sender sleeps 200 us on a timer first), reported per hop (half the
//! round trip), which is what a message pays at low rates when its
//! publisher, queue and consumer are on different shards.

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

/// Run `echo` in an executor on core 1 and `timed` in one on core 0; returns
/// what `timed` measured.
fn on_two_executors<E, EF, T, TF>(echo: E, timed: T) -> Duration
where
    E: FnOnce() -> EF + Send + 'static,
    EF: std::future::Future<Output = ()> + 'static,
    T: FnOnce() -> TF + Send + 'static,
    TF: std::future::Future<Output = Duration> + 'static,
{
    let echo = LocalExecutorBuilder::new(placement(1))
        .spawn(echo)
        .expect("echo executor");
    let timed = LocalExecutorBuilder::new(placement(0))
        .spawn(timed)
        .expect("timed executor");
    let total = timed.join().expect("timed");
    echo.join().expect("echo");
    total
}

/// Both executors go to sleep before each message is sent.
const REST: Duration = Duration::from_micros(200);

/// `iters` round trips between two parked executors; returns the summed
/// one-way time (half of each round trip).
fn glommio_at_rest(iters: u64) -> Duration {
    let (tx, rx) = shared_channel::new_bounded::<u64>(CAPACITY);
    let (back_tx, back_rx) = shared_channel::new_bounded::<u64>(CAPACITY);
    let echo = move || async move {
        let rx = rx.connect().await;
        let tx = back_tx.connect().await;
        while let Some(i) = rx.recv().await {
            if tx.send(i).await.is_err() {
                break;
            }
        }
    };
    let timed = move || async move {
        let tx = tx.connect().await;
        let rx = back_rx.connect().await;
        let mut total = Duration::ZERO;
        for i in 0..iters {
            glommio::timer::sleep(REST).await;
            let start = Instant::now();
            tx.send(i).await.expect("echo executor gone");
            rx.recv().await.expect("echo executor gone");
            total += start.elapsed() / 2;
        }
        total
    };
    on_two_executors(echo, timed)
}

/// One end of a std socket pair as a glommio stream of the executor it is
/// first used on.
fn glommio_unix(s: std::os::unix::net::UnixStream) -> glommio::net::UnixStream {
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: the descriptor is an open, connected Unix stream socket, and
    // `into_raw_fd` gave up its ownership to the new stream.
    unsafe { glommio::net::UnixStream::from_raw_fd(s.into_raw_fd()) }
}

/// The same two parked executors, woken by a byte on a Unix socket pair
/// instead: the receiver's read is an operation on its main io_uring ring
/// (glommio's own wake-up is an eventfd read on its latency ring, which the
/// main ring polls).
fn glommio_socket_at_rest(iters: u64) -> Duration {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let (a, b) = std::os::unix::net::UnixStream::pair().expect("socket pair");
    let echo = move || async move {
        let mut s = glommio_unix(b);
        let mut buf = [0u8; 1];
        while s.read_exact(&mut buf).await.is_ok() {
            if s.write_all(&buf).await.is_err() {
                break;
            }
        }
    };
    let timed = move || async move {
        let mut s = glommio_unix(a);
        let mut total = Duration::ZERO;
        let mut buf = [0u8; 1];
        for _ in 0..iters {
            glommio::timer::sleep(REST).await;
            let start = Instant::now();
            s.write_all(&buf).await.expect("echo executor gone");
            s.read_exact(&mut buf).await.expect("echo executor gone");
            total += start.elapsed() / 2;
        }
        total
    };
    on_two_executors(echo, timed)
}

/// The same between two plain threads blocked in `recv` (std channels).
fn std_at_rest(iters: u64) -> Duration {
    let (tx, rx) = mpsc::sync_channel::<u64>(CAPACITY);
    let (back_tx, back_rx) = mpsc::sync_channel::<u64>(CAPACITY);
    let echo = std::thread::spawn(move || {
        while let Ok(i) = rx.recv() {
            if back_tx.send(i).is_err() {
                break;
            }
        }
    });
    let mut total = Duration::ZERO;
    for i in 0..iters {
        std::thread::sleep(REST);
        let start = Instant::now();
        tx.send(i).unwrap();
        back_rx.recv().unwrap();
        total += start.elapsed() / 2;
    }
    drop(tx);
    echo.join().unwrap();
    total
}

fn hop_at_rest(c: &mut Criterion) {
    let mut g = c.benchmark_group("mailbox/hop_at_rest");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("glommio_shared_channel", |b| b.iter_custom(glommio_at_rest));
    g.bench_function("glommio_unix_socket", |b| {
        b.iter_custom(glommio_socket_at_rest)
    });
    g.bench_function("std_sync_channel", |b| b.iter_custom(std_at_rest));
    g.finish();
}

criterion_group!(benches, hop, hop_at_rest);
criterion_main!(benches);

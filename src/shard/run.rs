//! Starting a shard: its executor thread, mailbox endpoints, drain and
//! flusher tasks, the authority task (shard 0) and the listener.

use super::Shard;
use crate::bus::ShardMsg;
use crate::config::Config;
use crate::ids::{QueueId, ShardId};
use crate::store::SyncBatch;
use glommio::channels::shared_channel::{SharedReceiver, SharedSender};
use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

type Batch = Vec<ShardMsg>;

/// The ports a shard listens on, reported once it accepts connections.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// AMQP port.
    pub port: u16,
    /// AMQPS port, when TLS is configured.
    pub tls_port: Option<u16>,
    /// Management HTTP port, when this shard serves it.
    pub mgmt_port: Option<u16>,
}

/// What a shard thread needs: its id, the mailbox ends, where to report.
pub struct ShardBoot {
    /// This shard's id (shard 0 is the authority and serves the HTTP API
    /// when it is enabled).
    pub id: ShardId,
    /// How many shards the node runs.
    pub shards: usize,
    /// The core to pin the executor to; None leaves it unpinned.
    pub cpu: Option<usize>,
    /// The node's configuration.
    pub config: Config,
    /// (destination, sender) of the data lane for every other shard.
    pub senders: Vec<(ShardId, SharedSender<Batch>)>,
    /// (source, receiver) for every other shard.
    pub receivers: Vec<(ShardId, SharedReceiver<Batch>)>,
    /// The urgent lane's senders (`mailbox::Lane`), as `senders`.
    pub urgent_senders: Vec<(ShardId, SharedSender<Batch>)>,
    /// The urgent lane's receivers, as `receivers`.
    pub urgent_receivers: Vec<(ShardId, SharedReceiver<Batch>)>,
    /// Reports the bound ports (or an error) once listening.
    pub ready: mpsc::Sender<Result<Listening, String>>,
    /// Port to bind; shard 0 may get 0 and report the real one.
    pub port: u16,
    /// AMQPS port to bind when `config.tls` is set; shard 0 may get 0 and
    /// report the real one.
    pub tls_port: u16,
    /// Set by the signal handler: flush everything and report on `stopped`.
    pub shutdown: Arc<AtomicBool>,
    /// Set once every shard listens: shard 0 deals Unix socket connections
    /// out to other shards only from then on.
    pub started: Arc<AtomicBool>,
    /// Gets this shard's id once its final sync after `shutdown` is done.
    pub stopped: mpsc::Sender<ShardId>,
}

/// Spawn shard `boot.id`'s executor thread (`warren-<id>`). The shard opens
/// its store, recovers, starts its tasks and listens, then reports on
/// `boot.ready` (failures included). Errors: the executor thread cannot
/// be created.
pub fn start_shard(boot: ShardBoot) -> std::io::Result<glommio::ExecutorJoinHandle<()>> {
    let placement = match boot.cpu {
        Some(c) => Placement::Fixed(c),
        None => Placement::Unbound,
    };
    // The blocking pool runs a group commit's fdatasyncs (one job per file,
    // at the same time: see `sync_task`). Its threads sleep in the kernel
    // while the device works, so they share the shard's core.
    let sync_pool = match boot.cpu {
        Some(c) => match glommio::CpuSet::online() {
            Ok(set) => PoolPlacement::Custom(vec![set.filter(|l| l.cpu == c); SYNC_THREADS]),
            Err(_) => PoolPlacement::Unbound(SYNC_THREADS),
        },
        None => PoolPlacement::Unbound(SYNC_THREADS),
    };
    let name = format!("warren-{}", boot.id.0);
    let ready = boot.ready.clone();
    let handle = LocalExecutorBuilder::new(placement)
        .name(&name)
        // See `SHARD_PREEMPT` and `IDLE_PREEMPT`: the executor-wide timer is
        // long, the shard's task queue asks for the short one.
        .preempt_timer(IDLE_PREEMPT)
        .blocking_thread_pool_placement(sync_pool)
        .spawn(move || async move {
            let tq = glommio::executor().create_task_queue(
                glommio::Shares::default(),
                glommio::Latency::Matters(SHARD_PREEMPT),
                "shard",
            );
            let main = match glommio::spawn_local_into(shard_main(boot), tq) {
                Ok(task) => task,
                Err(e) => {
                    let _ = ready.send(Err(format!("cannot start the shard's tasks: {e}")));
                    return;
                }
            };
            // The first poll of this future registers the wake tick's timer,
            // before the shard's own task has run once.
            futures_lite::future::or(main, wake_tick()).await;
        })
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(handle)
}

/// Threads in a shard's blocking pool: a group commit syncs the journal and
/// usually one or two segment files, each on its own thread.
const SYNC_THREADS: usize = 3;

/// Preemption timer of the shard's task queue. glommio reaps io_uring
/// completions (socket writes finishing) only between scheduling rounds, and
/// a round ends at this timer when tasks stay runnable (a busy publisher's
/// reads complete at once). glommio's default of 100 ms starved deliveries
/// under publish load; 500 us keeps writes flowing and bounds the latency a
/// busy shard adds.
const SHARD_PREEMPT: Duration = Duration::from_micros(500);

/// Preemption timer while only the executor's own default queue (this
/// module's wake tick) is runnable, as at start-up.
///
/// Why not 500 us for everything: glommio 0.9's run loop parks the thread
/// when the preemption timer has already expired as it is about to run the
/// task queues (it mistakes "preempted before running anything" for "nothing
/// to run"), and a parked executor sleeps until an I/O completion or a timer.
/// A shard thread descheduled for 500 us at that point during start-up, before
/// any socket or timer exists, slept forever and the broker never started
/// (reproduced by stopping the thread there under gdb). A long timer here
/// closes that window while nothing but the tick runs; [`WAKE_TICK`] bounds
/// the same park later, when the shard's queue is active.
const IDLE_PREEMPT: Duration = Duration::from_secs(60);

/// A timer that is always armed, so a park that glommio should not have made
/// (see [`IDLE_PREEMPT`]) lasts at most this long. 200 wake-ups a second
/// cost a few microseconds each on an idle shard.
const WAKE_TICK: Duration = Duration::from_millis(5);

async fn wake_tick() {
    loop {
        glommio::timer::sleep(WAKE_TICK).await;
    }
}

async fn shard_main(boot: ShardBoot) {
    let ShardBoot {
        id,
        shards,
        config,
        senders,
        receivers,
        urgent_senders,
        urgent_receivers,
        ready,
        port,
        tls_port,
        shutdown,
        stopped,
        started,
        ..
    } = boot;
    let bind = config.bind;
    let store_dir = config.data_dir.join(format!("shard-{}", id.0));
    let store = match crate::store::Store::open(store_dir, config.segment_size, config.fsync) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot open store: {e}")));
            return;
        }
    };
    let shard = Shard::new(id, shards, Rc::new(config), store);
    // Recovery completes before this shard listens; shards start one at a
    // time (main waits for each one's report), and the broker announces
    // itself only when all are up. (A start-up barrier that blocked or
    // polled inside the executors hung now and then under load: see
    // DURABILITY.md.)
    if let Err(e) = recover(&shard) {
        let _ = ready.send(Err(e));
        return;
    }

    // Mailbox ends connect concurrently: a sender's connect waits for its peer.
    // One flusher per destination and lane (`mailbox::Lane`): the urgent
    // lane's own channel never waits behind a full data channel.
    let lanes = senders
        .into_iter()
        .map(|(d, s)| (d, false, s))
        .chain(urgent_senders.into_iter().map(|(d, s)| (d, true, s)));
    for (dest, urgent, sender) in lanes {
        let sh = shard.clone();
        glommio::spawn_local(async move {
            let tx = sender.connect().await;
            loop {
                let batch = sh.link.outbox.take_lane(dest, urgent);
                if batch.is_empty() {
                    let wait = sh.link.outbox.lane_wait(dest, urgent);
                    if sh.link.outbox.lane_len(dest, urgent) == 0 {
                        wait.await;
                    }
                    continue;
                }
                // The only place that awaits a full mailbox (backpressure).
                if tx.send(batch).await.is_err() {
                    return;
                }
                sh.link.outbox.drained.notify();
            }
        })
        .detach();
    }
    for (src, receiver) in receivers.into_iter().chain(urgent_receivers) {
        let sh = shard.clone();
        glommio::spawn_local(async move {
            let rx = receiver.connect().await;
            while let Some(batch) = rx.recv().await {
                for m in batch {
                    sh.handle(src, m);
                }
                sh.flush_dirty();
            }
        })
        .detach();
    }
    for t in local_tasks(&shard) {
        t.detach();
    }
    glommio::spawn_local(shutdown_watch(shard.clone(), shutdown, stopped)).detach();

    let addr = std::net::SocketAddr::new(bind, port);
    let listener = match glommio::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot listen on {addr}: {e}")));
            return;
        }
    };
    let bound = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    shard.conns.listen_port.set(bound);
    let tls = match &shard.config().tls {
        None => None,
        Some(t) => {
            let addr = std::net::SocketAddr::new(bind, tls_port);
            let acceptor = match crate::net::tls::server_config(t) {
                Ok(c) => futures_rustls::TlsAcceptor::from(c),
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            match glommio::net::TcpListener::bind(addr) {
                Ok(l) => {
                    let p = l.local_addr().map(|a| a.port()).unwrap_or(tls_port);
                    shard.conns.tls_port.set(p);
                    Some((l, acceptor, p))
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("cannot listen for amqps on {addr}: {e}")));
                    return;
                }
            }
        }
    };
    let tls_bound = tls.as_ref().map(|t| t.2);
    if id.0 == 0 {
        if let Some(path) = &shard.config().unix_socket {
            match super::listen::bind_unix(path, shard.config().unix_socket_mode) {
                Ok(l) => {
                    glommio::spawn_local(super::listen::accept_unix_loop(shard.cx(), l, started))
                        .detach();
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            }
        }
    }
    // The management listener serves HTTPS with the same certificate when
    // `[management] tls` is on.
    let mgmt_tls = tls
        .as_ref()
        .filter(|_| shard.config().mgmt_tls)
        .map(|t| t.1.clone());
    if let Some((l, acceptor, _)) = tls {
        glommio::spawn_local(super::listen::accept_tls_loop(shard.cx(), l, acceptor)).detach();
    }
    let mut mgmt_port = None;
    if id.0 == 0 {
        if let Some(p) = shard.config().mgmt_port {
            let addr = std::net::SocketAddr::new(shard.config().mgmt_bind, p);
            match glommio::net::TcpListener::bind(addr) {
                Ok(l) => {
                    let mp = l.local_addr().map(|a| a.port()).unwrap_or(p);
                    mgmt_port = Some(mp);
                    crate::mgmt::start(shard.cx(), l, bound, mp, mgmt_tls);
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("cannot listen for management on {addr}: {e}")));
                    return;
                }
            }
        }
    }
    let _ = ready.send(Ok(Listening {
        port: bound,
        tls_port: tls_bound,
        mgmt_port,
    }));
    super::listen::accept_loop(shard.cx(), listener).await;
}

/// The tasks every shard runs besides its mailbox ends and listener: the
/// local drain (this shard's traffic to itself, same handler, same order),
/// the authority (shard 0) and the group-commit sync task. Dropping a
/// returned task cancels it.
fn local_tasks(shard: &Rc<Shard>) -> Vec<glommio::Task<()>> {
    let mut tasks = Vec::new();
    let sh = shard.clone();
    tasks.push(glommio::spawn_local(async move {
        loop {
            let batch = sh.link.outbox.take(sh.id());
            if batch.is_empty() {
                let wait = sh.link.outbox.wait(sh.id());
                if sh.link.outbox.len(sh.id()) == 0 {
                    wait.await;
                }
                continue;
            }
            for m in batch {
                sh.handle(sh.id(), m);
            }
            sh.flush_dirty();
            sh.link.outbox.drained.notify();
            // Let sockets and writers run between large batches.
            futures_lite::future::yield_now().await;
        }
    }));
    if shard.id() == shard.link.authority() {
        let sh = shard.clone();
        tasks.push(glommio::spawn_local(async move {
            loop {
                let wait = sh.authority.ready.wait();
                let Some(crate::shard::MetaRequest { from, id, op }) = sh.take_meta() else {
                    wait.await;
                    continue;
                };
                let r = crate::meta::authority::execute(&*sh, op).await;
                sh.link.respond(from, id, crate::bus::Response::Meta(r));
            }
        }));
    }
    tasks.push(glommio::spawn_local(sync_task(shard.clone())));
    tasks.push(glommio::spawn_local(expiry_tick(shard.clone())));
    tasks.push(glommio::spawn_local(clock_tick(shard.clone())));
    tasks.push(glommio::spawn_local(memory_watch(shard.clone())));
    tasks
}

/// Once a second: refresh this shard's coarse clock and close channels
/// whose oldest unacked delivery timed out (`channel::ack_timeout`).
async fn clock_tick(shard: Rc<Shard>) {
    let cx = shard.cx();
    loop {
        crate::clock::refresh();
        crate::channel::ack_timeout::check(&cx, &shard.conns);
        glommio::timer::sleep(Duration::from_millis(crate::clock::COARSE_PERIOD_MS)).await;
    }
}

/// How often expired messages are dropped from the heads of queues with
/// TTLs when nothing else touches them (deliveries and `basic.get` never
/// hand out an expired message, whatever this interval).
const EXPIRY_TICK: Duration = Duration::from_millis(20);

/// Drop expired messages (queues with TTLs only; nothing to do otherwise).
async fn expiry_tick(shard: Rc<Shard>) {
    loop {
        glommio::timer::sleep(EXPIRY_TICK).await;
        shard.home.expire_due();
        shard.home.send_dead_letters();
        shard.home.delete_idle_queues();
        shard.home.save_idle_state();
    }
}

/// Messages paged out per memory check under pressure
/// ([`crate::shard::home::QueueHome::page_out_resident`]).
const PAGE_OUT_PER_TICK: usize = 16 * 1024;

/// The memory high watermark (`crate::memory`) and the disk free-space
/// limit (`crate::disk`): every shard measures the process's memory and
/// the data directory's free space itself (the same numbers for all), so
/// each blocks its own publishers without asking another shard.
async fn memory_watch(shard: Rc<Shard>) {
    let limit = shard.config().memory_limit.bytes();
    shard.conns.memory_limit.set(limit);
    if limit == 0 && shard.id().0 == 0 {
        tracing::warn!("the memory available could not be read: no memory high watermark");
    }
    let paging_at = (limit as f64 * shard.config().paging_ratio) as u64;
    shard
        .conns
        .memory_paging_at
        .set(paging_at.max(u64::from(limit != 0)));
    // Never below the room the store needs to start one more segment file
    // (a limit under it would let a segment allocation fail first); 0
    // turns the alarm off (only an actually full disk blocks).
    let configured = shard.config().disk_free_limit.bytes();
    let disk_limit = match configured {
        0 => 0,
        b => b.max(shard.config().segment_size as u64 + 64 * 1024),
    };
    shard.conns.disk_free_limit.set(disk_limit);
    let disk_every = crate::disk::CHECK_EVERY_MS / crate::memory::CHECK_EVERY_MS;
    let mut tick = 0u64;
    loop {
        let used = crate::memory::used_bytes();
        shard.conns.memory_used.set(used);
        let raised = shard.conns.memory_alarm.get();
        if raised {
            crate::memory::collect();
        }
        if shard.conns.memory_pressure() {
            // Bounded work per tick (about 16 MiB of 1 KiB messages), so a
            // large resident backlog is paged over a few ticks without
            // stalling the shard.
            shard.home.page_out_resident(PAGE_OUT_PER_TICK);
        }
        shard
            .conns
            .set_memory_alarm(crate::memory::alarm(raised, used, limit));
        if tick.is_multiple_of(disk_every) {
            shard.conns.check_disk(&shard.config().data_dir);
        }
        tick += 1;
        glommio::timer::sleep(Duration::from_millis(crate::memory::CHECK_EVERY_MS)).await;
    }
}

/// A one-shard node inside the calling glommio executor, without sockets
/// or signal handling: the store in `config.data_dir`, recovery, and the
/// shard's local tasks. Connections are driven through
/// `channel::connection::run_in_process`. Used by the `session` fuzz
/// target; [`InProcessNode::stop`] ends it.
pub struct InProcessNode {
    /// The node's only shard (id 0, the authority).
    pub shard: Rc<Shard>,
    tasks: Vec<glommio::Task<()>>,
}

impl InProcessNode {
    /// Start it (inside a glommio executor). Errors: the store cannot be
    /// opened or recovery failed, as at a normal start.
    pub fn start(config: Config) -> Result<InProcessNode, String> {
        let dir = config.data_dir.join("shard-0");
        let store = crate::store::Store::open(dir, config.segment_size, config.fsync)
            .map_err(|e| format!("cannot open store: {e}"))?;
        let shard = Shard::new(ShardId(0), 1, Rc::new(config), store);
        recover(&shard)?;
        let tasks = local_tasks(&shard);
        Ok(InProcessNode { shard, tasks })
    }
}

impl InProcessNode {
    /// Cancel the node's tasks and wait until each has dropped its state.
    pub async fn stop(mut self) {
        for t in self.tasks.drain(..) {
            t.cancel().await;
        }
    }
}

/// Replay durable definitions into this shard's table; queues homed here
/// recover their messages from this shard's store (each shard its own
/// files; `main` starts the shards one at a time).
fn recover(shard: &Rc<Shard>) -> Result<(), String> {
    let data_dir = shard.config().data_dir.clone();
    let mut changes = crate::meta::persist::load(&data_dir);
    crate::meta::persist::rehome(&mut changes, shard.link.shard_count());
    let mut max_id = 0;
    if !changes
        .iter()
        .any(|c| matches!(c, crate::defs::MetaChange::VhostAdded { .. }))
    {
        // First boot (or every vhost was deleted): the default vhost and user.
        changes.splice(0..0, crate::meta::access_control::defaults(shard.config()));
    }
    for c in changes {
        match &c {
            crate::defs::MetaChange::QueueDeclared(q) => max_id = max_id.max(q.id.0),
            crate::defs::MetaChange::ExchangeDeclared(x) => {
                if let Some(ds) = x.delay_store {
                    max_id = max_id.max(ds.id.0);
                }
            }
            _ => {}
        }
        shard.apply_change(c);
    }
    shard.home.forget_recorded_idle();
    // The journal is rewritten with exactly the queues that exist now, so
    // entries of deleted queues can never be claimed by a later one.
    let live = durable_positions(shard);
    shard
        .home
        .store
        .borrow_mut()
        .finish_recovery(live.iter().map(|(q, l)| (*q, &l[..])))
        .map_err(|e| format!("cannot rewrite the queue journal: {e}"))?;
    if shard.id() == shard.link.authority() {
        shard.set_next_queue_id(max_id + 1);
        let snap = crate::meta::persist::snapshot(&shard.link.table());
        let log = crate::meta::persist::DefinitionsLog::rewrite(&data_dir, &snap)
            .map_err(|e| e.to_string())?;
        *shard.authority.defs_log.borrow_mut() = Some(log);
    }
    Ok(())
}

/// Every durable queue's live messages on this shard (journal snapshot).
fn durable_positions(shard: &Shard) -> Vec<(QueueId, crate::store::journal::Live)> {
    let st = shard.home.store.borrow();
    shard
        .home
        .queues
        .borrow()
        .values()
        .filter(|q| st.is_durable(q.id()))
        .map(|q| {
            // Dead letters not yet confirmed by their targets stay live.
            let mut live = q.live_positions();
            live.extend(shard.home.held_dead_letters(q.id()));
            (q.id(), live)
        })
        .collect()
}

/// Group commit: one fdatasync per dirty file covers every record appended
/// since the previous sync, then all the confirms waiting on it go out.
/// The fsync runs on glommio's blocking pool so the shard keeps serving.
async fn sync_task(shard: Rc<Shard>) {
    let interval = Duration::from_millis(shard.config().flush_interval_ms.max(1));
    let mut last_compaction = std::time::Instant::now();
    let mut last_shed = std::time::Instant::now();
    loop {
        let wait = shard.home.sync_needed.wait();
        let urgent = shard.home.sync_is_urgent();
        if !urgent {
            let _ = glommio::timer::timeout(interval, async {
                wait.await;
                Ok(())
            })
            .await;
        }
        if shard.conns.blocked.get() && shard.home.store.borrow().has_room() {
            shard.home.store.borrow_mut().disk_full = false;
            shard.conns.set_blocked(false);
        }
        if last_shed.elapsed() > Duration::from_secs(5) {
            last_shed = std::time::Instant::now();
            shard.home.store.borrow().shed_cold();
        }
        if !shard.home.store.borrow().needs_sync() {
            continue;
        }
        let batch = shard.home.store.borrow_mut().prepare_sync();
        let SyncBatch {
            files,
            generation,
            wrote,
        } = batch;
        // One blocking job per file, all started before any is awaited:
        // the journal's and the segments' fdatasyncs run at the same time
        // on the pool's threads, so a group commit (and every confirm
        // waiting on it) takes the slowest sync, not their sum. PERF.md,
        // "Group commit: the files' fdatasyncs at once".
        let jobs: Vec<glommio::Task<bool>> = files
            .into_iter()
            .map(|f| {
                glommio::spawn_local(glommio::executor().spawn_blocking(move || f.sync().is_ok()))
            })
            .collect();
        let mut synced = true;
        for job in jobs {
            synced &= job.await;
        }
        sync_done(&shard, generation, synced && wrote);
        if last_compaction.elapsed() > Duration::from_secs(5)
            && shard.home.store.borrow().needs_compaction()
        {
            last_compaction = std::time::Instant::now();
            let live = durable_positions(&shard);
            let job = shard
                .home
                .store
                .borrow_mut()
                .begin_compaction(live.iter().map(|(q, l)| (*q, &l[..])));
            drop(live);
            if let Some(job) = job {
                // The rewrite (write, fsync, rename) runs off the executor;
                // entries made meanwhile wait in the journal's buffer.
                let crate::store::Compaction {
                    path,
                    bytes,
                    entries,
                    live,
                } = job;
                let len = bytes.len() as u64;
                let result = glommio::executor()
                    .spawn_blocking(move || crate::store::journal::write_new(&path, &bytes))
                    .await;
                shard
                    .home
                    .store
                    .borrow_mut()
                    .finish_compaction(len, entries, live, result);
            }
        }
    }
}

/// A group commit finished: free released segments, then confirm what it
/// made durable (or nack it all if the write or the sync failed).
fn sync_done(shard: &Shard, generation: u64, ok: bool) {
    shard.home.store.borrow_mut().finish_sync();
    shard.home.synced(generation, ok);
    shard.flush_dirty();
}

/// On SIGTERM/SIGINT: write and sync everything (acks included), report.
async fn shutdown_watch(shard: Rc<Shard>, flag: Arc<AtomicBool>, stopped: mpsc::Sender<ShardId>) {
    loop {
        glommio::timer::sleep(Duration::from_millis(50)).await;
        if flag.load(Ordering::Acquire) {
            // Let settlements already read from sockets and in flight
            // between shards land before the final write.
            glommio::timer::sleep(Duration::from_millis(100)).await;
            let SyncBatch {
                files,
                generation,
                wrote,
            } = shard.home.store.borrow_mut().prepare_sync();
            let synced = files.iter().all(|f| f.sync().is_ok());
            sync_done(&shard, generation, synced && wrote);
            let _ = stopped.send(shard.id());
            return;
        }
    }
}

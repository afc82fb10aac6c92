//! Starting a shard: its executor thread, mailbox endpoints, drain and
//! flusher tasks, the authority task (shard 0) and the listener.

use super::Shard;
use crate::config::Config;
use crate::ids::ShardId;
use crate::mailbox::ShardMsg;
use glommio::channels::shared_channel::{SharedReceiver, SharedSender};
use glommio::{LocalExecutorBuilder, Placement};
use std::rc::Rc;
use std::sync::mpsc;

type Batch = Vec<ShardMsg>;

/// What a shard thread needs: its id, the mailbox ends, where to report.
pub struct ShardBoot {
    pub id: ShardId,
    pub shards: usize,
    pub cpu: Option<usize>,
    pub config: Config,
    /// (destination, sender) for every other shard.
    pub senders: Vec<(ShardId, SharedSender<Batch>)>,
    /// (source, receiver) for every other shard.
    pub receivers: Vec<(ShardId, SharedReceiver<Batch>)>,
    /// Reports the bound port (or an error) once listening.
    pub ready: mpsc::Sender<Result<u16, String>>,
    /// Port to bind; shard 0 may get 0 and report the real one.
    pub port: u16,
}

pub fn start_shard(boot: ShardBoot) -> std::io::Result<glommio::ExecutorJoinHandle<()>> {
    let placement = match boot.cpu {
        Some(c) => Placement::Fixed(c),
        None => Placement::Unbound,
    };
    let name = format!("warren-{}", boot.id.0);
    let handle = LocalExecutorBuilder::new(placement)
        .name(&name)
        .spawn(move || async move { shard_main(boot).await })
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(handle)
}

async fn shard_main(boot: ShardBoot) {
    let ShardBoot { id, shards, config, senders, receivers, ready, port, .. } = boot;
    let bind = config.bind;
    let shard = Shard::new(id, shards, Rc::new(config));

    // Mailbox ends connect concurrently: a sender's connect waits for its peer.
    for (dest, sender) in senders {
        let sh = shard.clone();
        glommio::spawn_local(async move {
            let tx = sender.connect().await;
            loop {
                let batch = sh.outbox.take(dest);
                if batch.is_empty() {
                    let wait = sh.outbox.wait(dest);
                    if sh.outbox.len(dest) == 0 {
                        wait.await;
                    }
                    continue;
                }
                // The only place that awaits a full mailbox (backpressure).
                if tx.send(batch).await.is_err() {
                    return;
                }
                sh.outbox.drained.notify();
            }
        })
        .detach();
    }
    for (src, receiver) in receivers {
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
    // Local drain: this shard's traffic to itself, same handler, same order.
    {
        let sh = shard.clone();
        glommio::spawn_local(async move {
            loop {
                let batch = sh.outbox.take(sh.id);
                if batch.is_empty() {
                    let wait = sh.outbox.wait(sh.id);
                    if sh.outbox.len(sh.id) == 0 {
                        wait.await;
                    }
                    continue;
                }
                for m in batch {
                    sh.handle(sh.id, m);
                }
                sh.flush_dirty();
                sh.outbox.drained.notify();
                // Let sockets and writers run between large batches.
                glommio::yield_if_needed().await;
            }
        })
        .detach();
    }
    if id == shard.authority() {
        let sh = shard.clone();
        glommio::spawn_local(async move {
            loop {
                let wait = sh.meta_ready.wait();
                let Some((from, req, op)) = sh.take_meta() else {
                    wait.await;
                    continue;
                };
                let r = crate::meta::authority::execute(&sh, op).await;
                sh.respond(from, req, crate::mailbox::Response::Meta(r));
            }
        })
        .detach();
    }

    let addr = std::net::SocketAddr::new(bind, port);
    let listener = match glommio::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot listen on {addr}: {e}")));
            return;
        }
    };
    let bound = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    let _ = ready.send(Ok(bound));
    crate::net::accept_loop(shard, listener).await;
}

//! The connection/channel state machine driven in process: the input is
//! everything a client sends after the protocol header, fed through
//! `channel::connection::run_in_process` to a fresh one-shard node (real
//! store in a temporary directory, real authority and queue tasks, no
//! sockets). The first byte picks how the bytes are split into reads (1 to
//! 4081 bytes at a time), so frames straddle reads.
//!
//! Checks beyond "no panic": the connection finishes within 5 s (the node
//! answers every request it makes), and what the broker wrote is a
//! sequence of well-formed AMQP frames.

#![no_main]

use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::time::Duration;
use warren::channel::connection::run_in_process;
use warren::config::Config;
use warren::shard::InProcessNode;

thread_local! {
    // A long preemption timer: glommio 0.9 can park with runnable tasks
    // when the timer expired just before a scheduling round (see
    // `shard::run`); with 60 s that cannot happen within one input.
    static EXECUTOR: LocalExecutor = LocalExecutorBuilder::new(Placement::Unbound)
        .preempt_timer(Duration::from_secs(60))
        .make()
        .expect("a glommio executor (io_uring)");
}

fn data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("warren-fuzz-session-{}", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let chunk = 1 + usize::from(split) * 16;
    let dir = data_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let config = Config {
        data_dir: dir,
        fsync: false,
        mgmt_port: None,
        ..Config::default()
    };
    let out = EXECUTOR.with(|ex| {
        ex.run(async move {
            let node = InProcessNode::start(config).expect("node starts");
            let cx = node.shard.cx();
            let run = run_in_process(&cx, input, chunk);
            let out = glommio::timer::timeout(Duration::from_secs(5), async { Ok(run.await) })
                .await
                .expect("hang: the connection did not finish within 5 s");
            drop(cx);
            // Let work the connection left behind (fire-and-forget
            // releases, the authority's last operations) finish, so stopping
            // the node leaves no request half-answered.
            let mut spins = 0;
            while node.shard.link.rpc.outstanding() > 0 {
                spins += 1;
                assert!(spins < 100_000, "hang: requests left unanswered");
                futures_lite::future::yield_now().await;
            }
            node.stop().await;
            out
        })
    });
    let mut rest = &out[..];
    while !rest.is_empty() {
        match amq_protocol::frame::parse_frame(rest) {
            Ok((r, _)) => rest = r,
            Err(e) => panic!("the broker wrote a malformed frame: {e:?}"),
        }
    }
});

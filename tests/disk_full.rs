//! Disk full: on a small tmpfs made for the test, persistent publishes are
//! nacked (and capable clients get connection.blocked) while consumers keep
//! being served and nothing already stored is lost. Skipped, with a message,
//! where the test cannot mount a filesystem. Below `disk_free_limit`
//! (RabbitMQ's disk alarm) publishers are blocked before the disk is full.

mod common;
mod mgmt;

use common::*;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use std::process::Command;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_small_tmpfs(dir: &std::path::Path) -> Option<Mount> {
    mount_tmpfs(dir, "3m")
}

fn mount_tmpfs(dir: &std::path::Path, size: &str) -> Option<Mount> {
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then(|| Mount(dir.to_path_buf()))
}

#[test]
fn disk_full_nacks_persistent_publishes_and_keeps_serving_consumers() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_mount) = mount_small_tmpfs(tmp.path()) else {
        eprintln!("SKIPPED disk_full test: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let broker = tokio::task::block_in_place(|| {
            Broker::start_in(
                tmp.path(),
                1,
                &["--segment-mb", "1", "--disk-free-limit", "0"],
            )
        });
        let conn = connect(&broker).await;
        let ch = confirm_channel(&conn).await;
        within(
            "declare",
            ch.queue_declare(
                "full.q",
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        let body = vec![b'x'; 100 * 1024];
        let props = BasicProperties::default().with_delivery_mode(2);
        let mut acked = 0u32;
        let mut nacked = false;
        for _ in 0..200 {
            let p = publish_with(&ch, "", "full.q", &body, props.clone()).await;
            match within("confirm", p).await.unwrap() {
                Confirmation::Ack(_) => acked += 1,
                Confirmation::Nack(_) => {
                    nacked = true;
                    break;
                }
                Confirmation::NotRequested => panic!("confirms are on"),
            }
        }
        assert!(
            nacked,
            "a full disk must nack persistent publishes (acked {acked})"
        );
        assert!(acked > 0, "some messages fit before the disk filled");
        // Consumers are still served, and every confirmed message is intact.
        let consumer_conn = connect(&broker).await;
        let c = open_channel(&consumer_conn).await;
        let mut got = 0;
        while let Some(m) = within("get", c.basic_get("full.q", BasicGetOptions::default()))
            .await
            .unwrap()
        {
            assert_eq!(m.delivery.data, body);
            m.delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
            got += 1;
        }
        assert_eq!(got, acked, "every confirmed message is delivered");
        // Space freed by the acks: publishing works again.
        let mut recovered = false;
        for _ in 0..100 {
            let p = publish_with(&ch, "", "full.q", &body, props.clone()).await;
            if let Confirmation::Ack(_) = within("confirm", p).await.unwrap() {
                recovered = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(recovered, "publishing resumes once space is freed");
    });
}

/// Fill the disk with `filler` until a write fails (ENOSPC).
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
}

async fn try_declare_durable(ch: &lapin::Channel, q: &str) -> Result<(), lapin::Error> {
    within(
        "declare",
        ch.queue_declare(
            q,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .map(|_| ())
}

async fn publish_confirmed(ch: &lapin::Channel, q: &str, n: u32) {
    let props = BasicProperties::default().with_delivery_mode(2);
    for i in 0..n {
        let p = publish_with(ch, "", q, format!("{q}-{i}").as_bytes(), props.clone()).await;
        assert!(
            matches!(within("confirm", p).await.unwrap(), Confirmation::Ack(_)),
            "publish {i} to {q} confirmed"
        );
    }
}

/// A full disk never undoes acks nor loses a definition that was answered
/// with declare-ok: acks made while nothing can be written are kept and
/// written once space frees up; a declare that cannot be made durable is
/// refused (541) instead of answered.
#[test]
fn full_disk_never_undoes_acks_or_loses_confirmed_definitions() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_mount) = mount_tmpfs(tmp.path(), "8m") else {
        eprintln!("SKIPPED disk_full test: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)");
        return;
    };
    let data = tmp.path().join("data");
    let filler = tmp.path().join("filler");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut broker = tokio::task::block_in_place(|| {
            Broker::start_in(&data, 1, &["--segment-mb", "1", "--disk-free-limit", "0"])
        });
        let conn = connect(&broker).await;
        let ch = confirm_channel(&conn).await;
        try_declare_durable(&ch, "acked").await.unwrap();
        publish_confirmed(&ch, "acked", 2000).await;
        fill(&filler);
        // Consume and ack everything while the disk is full.
        let c = open_channel(&conn).await;
        let mut got = 0;
        while let Some(m) = within("get", c.basic_get("acked", BasicGetOptions::default()))
            .await
            .unwrap()
        {
            m.delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
            got += 1;
        }
        assert_eq!(got, 2000);
        fill(&filler);
        // A durable declare on a full disk: either refused, or durable.
        let late_conn = connect(&broker).await;
        let late_ch = confirm_channel(&late_conn).await;
        let late_ok = try_declare_durable(&late_ch, "late").await.is_ok();
        let _ = std::fs::remove_file(&filler);
        if late_ok {
            publish_confirmed(&late_ch, "late", 5).await;
        }
        let conn2 = connect(&broker).await;
        let ch2 = confirm_channel(&conn2).await;
        try_declare_durable(&ch2, "after").await.unwrap();
        publish_confirmed(&ch2, "after", 5).await;
        ready_count(&conn2, "acked").await;
        tokio::task::block_in_place(|| {
            broker.terminate();
            broker.restart();
        });
        let conn = connect(&broker).await;
        assert_eq!(
            ready_count(&conn, "acked").await,
            0,
            "acks made while the disk was full stay done"
        );
        assert_eq!(ready_count(&conn, "after").await, 5);
        let ch = open_channel(&conn).await;
        let late = ch
            .queue_declare(
                "late",
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        match late {
            Ok(q) => {
                assert!(late_ok, "a refused declare left no queue behind");
                assert_eq!(q.message_count(), 5);
            }
            Err(e) => assert!(
                !late_ok,
                "declare-ok was given for 'late' but it is gone: {e}"
            ),
        }
    });
}

/// The disk free-space alarm (RabbitMQ's `disk_free_limit`): on a 24 MiB
/// tmpfs with a 12 MiB limit, a publisher of persistent messages is told
/// `connection.blocked` and no longer read from once the store's segments
/// bring free space under the limit, before the disk is full; the node
/// reports the alarm; a consumer on another connection drains the queue,
/// the freed segments clear the alarm, the held publish goes through, and
/// every confirmed message is delivered exactly once.
async fn publishers_are_blocked_below_the_disk_free_limit(shards: usize) {
    use futures_lite::StreamExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().unwrap();
    let Some(_mount) = mount_tmpfs(tmp.path(), "24m") else {
        eprintln!(
            "SKIPPED disk alarm test: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)"
        );
        return;
    };
    let dir = tmp.path().to_path_buf();
    let b = tokio::task::spawn_blocking(move || {
        Broker::start_in(
            &dir,
            shards,
            &["--segment-mb", "1", "--disk-free-limit", "12MiB"],
        )
    })
    .await
    .unwrap();
    let port = b.mgmt_port;
    let node = move || async move {
        tokio::task::spawn_blocking(move || mgmt::Api::new(port).get_ok("/api/nodes")[0].clone())
            .await
            .unwrap()
    };
    let n0 = node().await;
    assert_eq!(n0["disk_free_limit"], 12u64 << 20);
    assert_eq!(n0["disk_free_alarm"], false);
    let publisher = connect(&b).await;
    let ch = confirm_channel(&publisher).await;
    declare_durable(&ch, "disk.q").await;
    let stop = Arc::new(AtomicBool::new(false));
    let task = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let props = BasicProperties::default().with_delivery_mode(2);
            let mut body = vec![b'd'; 64 * 1024];
            // At most 16 unconfirmed (1 MiB), well inside the 12 MiB
            // between the limit and a full disk: what a publisher has in
            // flight when it is paused still fits.
            let mut confirms = std::collections::VecDeque::new();
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) && i < 1000 {
                body[..4].copy_from_slice(&i.to_be_bytes());
                confirms.push_back(publish_with(&ch, "", "disk.q", &body, props.clone()).await);
                i += 1;
                if confirms.len() > 16 {
                    let c = confirms.pop_front().unwrap();
                    assert!(c.await.expect("confirm").is_ack(), "a publish was nacked");
                }
            }
            for c in confirms {
                assert!(c.await.expect("confirm").is_ack(), "a publish was nacked");
            }
            i
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !publisher.status().blocked() {
        assert!(
            Instant::now() < deadline && !task.is_finished(),
            "never blocked by the disk alarm"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let n1 = node().await;
    assert_eq!(n1["disk_free_alarm"], true, "{n1}");
    assert!(n1["disk_free"].as_u64().unwrap() < 12 << 20, "{n1}");
    let health =
        tokio::task::spawn_blocking(move || mgmt::Api::new(port).get("/api/health/checks/alarms"))
            .await
            .unwrap();
    assert_eq!(health.status, 503);
    assert_eq!(health.json["alarms"][0]["resource"], "disk");
    // A consumer on its own connection drains everything; the acks free
    // segments, the alarm clears and the held publishes complete.
    let cconn = connect(&b).await;
    let cch = open_channel(&cconn).await;
    let mut c = consume(&cch, "disk.q", true).await;
    let mut seen = std::collections::HashSet::new();
    let mut total = None;
    let mut task = Some(task);
    let deadline = Instant::now() + Duration::from_secs(60);
    while total.is_none_or(|t| seen.len() < t as usize) {
        assert!(
            Instant::now() < deadline,
            "{} delivered, total {total:?}",
            seen.len()
        );
        if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(200), c.next()).await {
            let d = d.expect("delivery");
            let i = u32::from_be_bytes(d.data[..4].try_into().unwrap());
            assert!(seen.insert(i), "message {i} delivered twice");
        }
        if task.as_ref().is_some_and(|t| t.is_finished()) {
            total = Some(task.take().unwrap().await.unwrap());
        }
    }
    // connection.unblocked was sent before the held publishes were read;
    // lapin may record it after it completed their confirms.
    let deadline = Instant::now() + Duration::from_secs(10);
    while publisher.status().blocked() {
        assert!(Instant::now() < deadline, "unblocked once space is back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(node().await["disk_free_alarm"], false);
}

shard_tests!(publishers_are_blocked_below_the_disk_free_limit);

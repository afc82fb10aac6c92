//! Disk full: on a small tmpfs made for the test, persistent publishes are
//! nacked (and capable clients get connection.blocked) while consumers keep
//! being served and nothing already stored is lost. Skipped, with a message,
//! where the test cannot mount a filesystem.

mod common;

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
        let broker =
            tokio::task::block_in_place(|| Broker::start_in(tmp.path(), 1, &["--segment-mb", "1"]));
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
        let mut broker =
            tokio::task::block_in_place(|| Broker::start_in(&data, 1, &["--segment-mb", "1"]));
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

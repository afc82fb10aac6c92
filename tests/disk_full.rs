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
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
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

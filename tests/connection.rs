//! Connection lifecycle as seen by a real client (lapin).

mod common;

use common::*;
use lapin::options::*;
use lapin::types::FieldTable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_initiated_connection_close_completes_with_close_ok() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        for i in 0..20 {
            let conn = connect(&b).await;
            let ch = open_channel(&conn).await;
            declare_queue(&ch, "").await;
            let r = within("connection.close", conn.close(200, "bye")).await;
            assert!(
                r.is_ok(),
                "attempt {i}: connection.close should complete cleanly, got {r:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_reports_a_valid_shard_and_all_shards_get_connections() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let mut seen = vec![0; shards];
        let mut conns = Vec::new();
        for _ in 0..40 {
            let (conn, shard) = connect_sniffed(&b).await;
            assert!(shard < shards, "warren.shard {shard} out of range");
            seen[shard] += 1;
            conns.push(conn);
        }
        assert!(
            seen.iter().all(|&n| n > 0),
            "connections should land on every shard: {seen:?}"
        );
        // Connections on different shards see the same definitions.
        let ch = open_channel(&conns[0]).await;
        declare_queue(&ch, "shared").await;
        for conn in &conns {
            let ch = open_channel(conn).await;
            within(
                "passive declare",
                ch.queue_declare(
                    "shared",
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await
            .expect("queue declared on one shard is visible from every shard");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_channels_on_one_connection_work_independently() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let mut chans = Vec::new();
        for i in 0..50 {
            let ch = open_channel(&conn).await;
            let q = declare_queue(&ch, &format!("chan-{i}")).await;
            chans.push((ch, q));
        }
        for (i, (ch, q)) in chans.iter().enumerate() {
            publish(ch, "", q, format!("{i}").as_bytes()).await;
        }
        for (i, (ch, q)) in chans.iter().enumerate() {
            let got = within("get", ch.basic_get(q, BasicGetOptions { no_ack: true }))
                .await
                .unwrap();
            assert_eq!(
                got.expect("message").delivery.data,
                format!("{i}").as_bytes()
            );
        }
        for (ch, _) in chans.iter().step_by(2) {
            within("channel.close", ch.close(200, "bye"))
                .await
                .expect("channel.close");
        }
        for (ch, q) in chans.iter().skip(1).step_by(2) {
            publish(ch, "", q, b"still").await;
            let got = within("get", ch.basic_get(q, BasicGetOptions { no_ack: true }))
                .await
                .unwrap();
            assert_eq!(got.expect("message").delivery.data, b"still");
        }
    }
}

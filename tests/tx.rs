//! Transactions (tx.select / commit / rollback).

mod common;

use common::*;
use lapin::options::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_commit_publishes_and_rollback_discards() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let other = connect(&b).await;
        let ch = open_channel(&conn).await;
        // Queues on every shard, so the commit fans out across shards.
        let queues: Vec<String> = (0..shards)
            .map(|s| queue_on_shard("txq", s, shards))
            .collect();
        for q in &queues {
            declare_queue(&ch, q).await;
        }
        within("tx.select", ch.tx_select())
            .await
            .expect("tx.select");
        for q in &queues {
            for i in 0..3 {
                publish(&ch, "", q, format!("c{i}").as_bytes()).await;
            }
        }
        for q in &queues {
            assert_eq!(
                ready_count(&other, q).await,
                0,
                "uncommitted publishes must not be visible"
            );
        }
        within("tx.commit", ch.tx_commit())
            .await
            .expect("tx.commit");
        for q in &queues {
            assert_eq!(
                ready_count(&other, q).await,
                3,
                "committed publishes are enqueued by commit-ok"
            );
        }

        for q in &queues {
            publish(&ch, "", q, b"rolled-back").await;
        }
        within("tx.rollback", ch.tx_rollback())
            .await
            .expect("tx.rollback");
        // The channel stays transactional after a rollback.
        for q in &queues {
            publish(&ch, "", q, b"second").await;
        }
        within("tx.commit", ch.tx_commit())
            .await
            .expect("tx.commit");
        let gch = open_channel(&other).await;
        for q in &queues {
            let mut bodies = Vec::new();
            while let Some(m) = within("get", gch.basic_get(q, BasicGetOptions { no_ack: true }))
                .await
                .unwrap()
            {
                bodies.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
            }
            assert_eq!(bodies, ["c0", "c1", "c2", "second"], "queue {q}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_acks_apply_on_commit_and_are_undone_by_rollback() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;
        let pch = open_channel(&conn).await;
        let q = declare_queue(&pch, "tx-acks").await;
        for i in 0..4 {
            publish(&pch, "", &q, format!("m{i}").as_bytes()).await;
        }
        let ch = open_channel(&conn).await;
        within("tx.select", ch.tx_select()).await.unwrap();
        let mut tags = Vec::new();
        for _ in 0..4 {
            let m = within("get", ch.basic_get(&q, BasicGetOptions::default()))
                .await
                .unwrap()
                .expect("message");
            tags.push(m.delivery.delivery_tag);
        }
        // Ack two, roll back: they stay unacked.
        within("ack", ch.basic_ack(tags[0], BasicAckOptions::default()))
            .await
            .unwrap();
        within("ack", ch.basic_ack(tags[1], BasicAckOptions::default()))
            .await
            .unwrap();
        within("tx.rollback", ch.tx_rollback()).await.unwrap();
        // Ack one and commit: that one is gone for good.
        within("ack", ch.basic_ack(tags[2], BasicAckOptions::default()))
            .await
            .unwrap();
        within("tx.commit", ch.tx_commit()).await.unwrap();
        // Closing the channel requeues whatever is still unacked.
        within("close", ch.close(200, "bye")).await.unwrap();
        let mut left = Vec::new();
        while let Some(m) = within("get", pch.basic_get(&q, BasicGetOptions { no_ack: true }))
            .await
            .unwrap()
        {
            assert!(m.delivery.redelivered);
            left.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
        }
        left.sort();
        assert_eq!(
            left,
            ["m0", "m1", "m3"],
            "rolled-back acks leave messages unacked; the committed ack sticks"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_and_confirm_modes_are_mutually_exclusive_and_commit_needs_select() {
    for shards in SHARD_COUNTS {
        eprintln!("shards={shards}");
        let b = start_broker(shards).await;
        let conn = connect(&b).await;

        let ch = open_channel(&conn).await;
        within("tx.select", ch.tx_select()).await.unwrap();
        let r = within(
            "confirm.select on tx channel",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await;
        assert_code(r, 406, "confirm.select on a transactional channel");
        assert_connection_usable(&conn).await;

        let ch = confirm_channel(&conn).await;
        let r = within("tx.select on confirm channel", ch.tx_select()).await;
        assert_code(r, 406, "tx.select on a confirm channel");
        assert_connection_usable(&conn).await;

        let ch = open_channel(&conn).await;
        let r = within("tx.commit without select", ch.tx_commit()).await;
        assert_code(r, 406, "tx.commit on a non-transactional channel");
        assert_connection_usable(&conn).await;
    }
}

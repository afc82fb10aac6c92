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

/// basic.ack / basic.reject on a transactional channel followed by the end
/// of the channel (close, or the whole connection) before tx.commit: the
/// settlements are discarded and the messages come back, redelivered.
async fn uncommitted_settles_are_undone_when_the_channel_ends(shards: usize) {
    let b = start_broker(shards).await;
    let q = queue_on_shard("txsettle", shards - 1, shards);
    let observer = connect(&b).await;
    let setup = open_channel(&observer).await;
    declare_queue(&setup, &q).await;
    for i in 0..2u8 {
        publish(&setup, "", &q, &[i]).await;
    }
    for end_connection in [false, true] {
        let conn = connect(&b).await;
        let ch = open_channel(&conn).await;
        within("tx.select", ch.tx_select())
            .await
            .expect("tx.select");
        let a = within("get", ch.basic_get(&q, BasicGetOptions::default()))
            .await
            .unwrap()
            .expect("first message");
        let r = within("get", ch.basic_get(&q, BasicGetOptions::default()))
            .await
            .unwrap()
            .expect("second message");
        a.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        r.delivery
            .acker
            .reject(BasicRejectOptions { requeue: false })
            .await
            .unwrap();
        if end_connection {
            let _ = conn.close(200, "bye").await;
        } else {
            within("channel.close", ch.close(200, "bye")).await.unwrap();
        }
        // Both come back, redelivered, in order.
        let mut back = Vec::new();
        for _ in 0..50 {
            if ready_count(&observer, &q).await == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        for _ in 0..2 {
            let m = within("get", setup.basic_get(&q, BasicGetOptions { no_ack: true }))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("message stranded (end_connection={end_connection})"));
            back.push((m.delivery.data[0], m.delivery.redelivered));
        }
        assert_eq!(
            back,
            vec![(0, true), (1, true)],
            "end_connection={end_connection}"
        );
        for i in 0..2u8 {
            publish(&setup, "", &q, &[i]).await;
        }
    }
}

shard_tests!(uncommitted_settles_are_undone_when_the_channel_ends);

//! What a panic does: the whole broker process exits at once with status
//! 70 (so a supervisor restarts it), instead of leaving a dead shard in a
//! live process. A test-only hook (`WARREN_TEST_PANIC_EXCHANGE`) panics a
//! connection task on purpose; nothing confirmed before it is lost.

mod common;

use common::*;
use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use std::time::Duration;

async fn a_panic_exits_the_process_and_loses_nothing_confirmed(shards: usize) {
    let mut b = tokio::task::block_in_place(|| {
        Broker::start_with_env(shards, &[], &[("WARREN_TEST_PANIC_EXCHANGE", "boom")])
    });
    {
        let conn = connect(&b).await;
        let ch = confirm_channel(&conn).await;
        within(
            "declare",
            ch.queue_declare(
                "kept",
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
        for i in 0..10u8 {
            let p = publish_with(
                &ch,
                "",
                "kept",
                &[i],
                BasicProperties::default().with_delivery_mode(2),
            )
            .await;
            assert!(matches!(
                within("confirm", p).await.unwrap(),
                Confirmation::Ack(_)
            ));
        }
        // Panics the connection task on whichever shard serves it.
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            ch.exchange_declare(
                "boom",
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
    }
    let status = tokio::task::block_in_place(|| b.wait_exit(Duration::from_secs(10)))
        .expect("the process exits after a panic (no dead shard inside a live process)");
    assert_eq!(status.code(), Some(70), "exit status: {status:?}");
    tokio::task::block_in_place(|| b.restart());
    let conn = connect(&b).await;
    assert_eq!(ready_count(&conn, "kept").await, 10);
}

shard_tests!(a_panic_exits_the_process_and_loses_nothing_confirmed);

//! Unit tests of the sans-IO queue: no store, no files.

use super::*;
use crate::ids::ConnId;
use crate::message::Message;
use amq_protocol::types::FieldTable;
use bytes::Bytes;
use std::sync::Arc;

fn q() -> Queue {
    Queue::new(QueueDef {
        id: QueueId(1),
        vhost: "/".into(),
        name: "q".into(),
        home: ShardId(0),
        durable: false,
        exclusive_owner: None,
        auto_delete: false,
        args: FieldTable::default(),
    })
}
fn msg(b: &'static str) -> MsgRef {
    Arc::new(Message {
        exchange: "".into(),
        routing_key: "q".into(),
        props: Bytes::from_static(&[0, 0]),
        body: Bytes::from_static(b.as_bytes()),
        persistent: false,
        expiration_ms: None,
        priority: 0,
    })
}
/// Transient messages are all in memory: nothing is ever loaded.
fn no_store(_: Position) -> Option<MsgRef> {
    None
}
fn pos(off: u32) -> Position {
    Position {
        seg: crate::ids::SegmentId(1),
        off,
    }
}
fn consumer(id: u64, prefetch: u16) -> ConsumerSpec {
    ConsumerSpec {
        priority: 0,
        id: ConsumerId(id),
        conn: ConnId(0),
        channel: 1,
        tag: format!("c{id}"),
        no_ack: false,
        exclusive: false,
        prefetch,
    }
}

#[test]
fn prefetch_limits_unacked_and_round_robin_alternates() {
    let mut q = q();
    for b in ["a", "b", "c", "d", "e"] {
        q.publish(msg(b), None, 0);
    }
    q.consume(consumer(1, 1)).unwrap();
    q.consume(consumer(2, 1)).unwrap();
    let d1 = q.next_delivery(0, no_store).unwrap();
    let d2 = q.next_delivery(0, no_store).unwrap();
    assert_eq!((d1.consumer, d2.consumer), (ConsumerId(1), ConsumerId(2)));
    assert!(q.next_delivery(0, no_store).is_none());
    q.settle(&[d1.seq], Settle::Ack);
    assert_eq!(
        q.next_delivery(0, no_store).unwrap().consumer,
        ConsumerId(1)
    );
}

#[test]
fn requeue_restores_original_order_with_redelivered_flag() {
    let mut q = q();
    for b in ["a", "b", "c"] {
        q.publish(msg(b), None, 0);
    }
    let a = q.get(false, 0, no_store).unwrap();
    let b = q.get(false, 0, no_store).unwrap();
    q.settle(&[b.seq, a.seq], Settle::Requeue);
    let first = q.get(true, 0, no_store).unwrap();
    assert_eq!(&first.msg.body[..], b"a");
    assert!(first.redelivered);
    assert_eq!(&q.get(true, 0, no_store).unwrap().msg.body[..], b"b");
    assert!(!q.get(true, 0, no_store).unwrap().redelivered);
}

#[test]
fn returned_delivery_goes_back_in_place_unmarked_and_pauses_the_consumer() {
    let mut q = q();
    for b in ["a", "b"] {
        q.publish(msg(b), None, 0);
    }
    q.consume(consumer(1, 0)).unwrap();
    let d = q.next_delivery(0, no_store).unwrap();
    q.returned(d.consumer, d.seq);
    assert_eq!((q.message_count(), q.unacked_count()), (2, 0));
    assert!(
        q.next_delivery(0, no_store).is_none(),
        "a paused consumer gets nothing"
    );
    q.resume(ConsumerId(1));
    let again = q.next_delivery(0, no_store).unwrap();
    assert_eq!((&again.msg.body[..], again.redelivered), (&b"a"[..], false));
    assert_eq!(q.stats.deliver, 1);
}

#[test]
fn exclusive_consumer_refuses_others() {
    let mut q = q();
    let mut c = consumer(1, 0);
    c.exclusive = true;
    q.consume(c).unwrap();
    assert_eq!(q.consume(consumer(2, 0)).unwrap_err().code, 403);
}

#[test]
fn stored_messages_journal_delivered_then_ack_and_nothing_for_requeue() {
    let mut q = q();
    q.publish(msg("a"), Some(pos(8)), 0);
    q.publish(msg("b"), Some(pos(16)), 0);
    q.consume(consumer(1, 0)).unwrap();
    let a = q.next_delivery(0, no_store).unwrap();
    let b = q.next_delivery(0, no_store).unwrap();
    assert_eq!(
        q.take_store_ops().collect::<Vec<_>>(),
        [
            StoreOp::Delivered(pos(8), 1),
            StoreOp::Delivered(pos(16), 1)
        ]
    );
    q.settle(&[a.seq], Settle::Ack);
    q.settle(&[b.seq], Settle::Requeue);
    assert_eq!(
        q.take_store_ops().collect::<Vec<_>>(),
        [StoreOp::Ack(pos(8))]
    );
    // The second delivery of b is journalled with its count.
    let again = q.next_delivery(0, no_store).unwrap();
    assert_eq!((again.seq, again.deliveries), (b.seq, 1));
    assert_eq!(
        q.take_store_ops().collect::<Vec<_>>(),
        [StoreOp::Delivered(pos(16), 2)]
    );
    q.settle(&[again.seq], Settle::Requeue);
    assert_eq!(q.purge(), 1);
    assert_eq!(
        q.take_store_ops().collect::<Vec<_>>(),
        [StoreOp::Ack(pos(16))]
    );
}

#[test]
fn an_unreadable_stored_message_is_dropped_as_acked_and_the_next_one_served() {
    let mut q = q();
    let r = |p: u32, deliveries: u32| crate::store::journal::Recovered {
        pos: pos(p),
        deliveries,
        expires: 0,
    };
    q.recover(vec![r(8, 0), r(16, 1)], 0, |_| None);
    let body = msg("b");
    let got = q
        .get(true, 0, |p| (p == pos(16)).then(|| body.clone()))
        .unwrap();
    assert_eq!((&got.msg.body[..], got.redelivered), (&b"b"[..], true));
    assert_eq!(
        q.take_store_ops().collect::<Vec<_>>(),
        [StoreOp::Ack(pos(8)), StoreOp::Ack(pos(16))]
    );
}

fn ttl_queue(ttl: i64) -> Queue {
    let mut args = FieldTable::default();
    args.insert(
        "x-message-ttl".into(),
        amq_protocol::types::AMQPValue::LongLongInt(ttl),
    );
    let mut q = q();
    q.def.args = args;
    Queue::new(q.def)
}
fn msg_with_expiration(b: &'static str, ms: u64) -> MsgRef {
    let mut m = (*msg(b)).clone();
    m.expiration_ms = Some(ms);
    Arc::new(m)
}

#[test]
fn expired_messages_are_never_delivered_nor_counted() {
    let mut q = ttl_queue(100);
    q.publish(msg("old"), Some(pos(8)), 1_000);
    q.publish(msg("new"), None, 1_050);
    assert_eq!(q.expire(1_100, no_store), 0, "not past its expiry yet");
    assert_eq!(q.expire(1_101, no_store), 1);
    assert_eq!(q.message_count(), 1);
    assert_eq!(
        q.take_store_ops().collect::<Vec<_>>(),
        [StoreOp::Ack(pos(8))]
    );
    assert!(q.get(true, 1_151, no_store).is_none(), "expired by now");
    assert_eq!(q.stats.expired, 2);
    assert!(!q.has_expiring());
}

#[test]
fn the_lower_of_queue_and_message_ttl_wins_and_ttl_zero_delivers_only_at_once() {
    let mut q = ttl_queue(1_000);
    q.publish(msg_with_expiration("short", 10), None, 0);
    assert!(q.get(true, 11, no_store).is_none());
    let mut q = ttl_queue(0);
    q.publish(msg("now"), None, 500);
    q.consume(consumer(1, 0)).unwrap();
    assert!(
        q.next_delivery(500, no_store).is_some(),
        "a consumer can take it now"
    );
    q.publish(msg("later"), None, 500);
    assert!(
        q.get(true, 501, no_store).is_none(),
        "nobody took it in time"
    );
}

#[test]
fn a_requeued_message_keeps_its_original_expiry() {
    let mut q = ttl_queue(100);
    q.publish(msg("a"), None, 0);
    let got = q.get(false, 50, no_store).unwrap();
    q.settle(&[got.seq], Settle::Requeue);
    assert!(q.has_expiring());
    assert!(q.get(true, 101, no_store).is_none());
}

#[test]
fn without_ttls_nothing_is_tracked_for_expiry() {
    let mut q = q();
    q.publish(msg("a"), None, 0);
    assert!(!q.has_expiring());
    assert_eq!(q.expire(u64::MAX, no_store), 0);
}

fn dlx_queue(ttl: Option<i64>) -> Queue {
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        amq_protocol::types::AMQPValue::LongString("dlx".into()),
    );
    if let Some(t) = ttl {
        args.insert(
            "x-message-ttl".into(),
            amq_protocol::types::AMQPValue::LongLongInt(t),
        );
    }
    let mut q = q();
    q.def.args = args;
    Queue::new(q.def)
}

#[test]
fn rejected_and_expired_messages_become_dead_letters_only_with_a_dead_letter_exchange() {
    let mut plain = q();
    plain.publish(msg("a"), None, 0);
    let got = plain.get(false, 0, no_store).unwrap();
    plain.settle(&[got.seq], Settle::Discard);
    assert_eq!(plain.take_dead_letters().count(), 0);

    let mut q = dlx_queue(Some(10));
    q.publish(msg("r"), None, 0);
    let got = q.get(false, 0, no_store).unwrap();
    q.settle(&[got.seq], Settle::Discard);
    q.publish(msg("e"), None, 0);
    q.expire(11, no_store);
    let dead: Vec<_> = q
        .take_dead_letters()
        .map(|d| (d.msg.body.clone(), d.reason))
        .collect();
    assert_eq!(
        dead,
        [
            (Bytes::from_static(b"r"), DeathReason::Rejected),
            (Bytes::from_static(b"e"), DeathReason::Expired)
        ]
    );
}

#[test]
fn x_death_counts_a_second_death_and_an_expiry_cycle_is_refused() {
    let target = DeadLetterTarget {
        exchange: "".into(),
        routing_key: Some("q".into()),
    };
    let first = dead_letter::dead_letter(&msg("m"), DeathReason::Expired, "q", &target, 1);
    assert!(!first.may_enter("q"), "expired in q, no rejection: a cycle");
    assert!(first.may_enter("other"));
    let second = dead_letter::dead_letter(&first.msg, DeathReason::Expired, "q", &target, 2);
    let deaths = match second.headers.inner().get("x-death") {
        Some(amq_protocol::types::AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        other => panic!("x-death: {other:?}"),
    };
    assert_eq!(deaths.len(), 1);
    let amq_protocol::types::AMQPValue::FieldTable(t) = &deaths[0] else {
        panic!("an x-death entry is a table")
    };
    assert_eq!(
        t.inner().get("count"),
        Some(&amq_protocol::types::AMQPValue::LongLongInt(2))
    );
    let rejected = dead_letter::dead_letter(&second.msg, DeathReason::Rejected, "w", &target, 3);
    assert!(
        rejected.may_enter("q"),
        "a rejection on the way breaks the cycle"
    );
}

fn limited(args: &[(&str, amq_protocol::types::AMQPValue)]) -> Queue {
    let mut t = FieldTable::default();
    for (k, v) in args {
        t.insert((*k).into(), v.clone());
    }
    let mut q = q();
    q.def.args = t;
    Queue::new(q.def)
}

#[test]
fn drop_head_keeps_the_newest_within_both_limits() {
    use amq_protocol::types::AMQPValue::LongLongInt;
    let mut q = limited(&[
        ("x-max-length", LongLongInt(2)),
        ("x-max-length-bytes", LongLongInt(10)),
    ]);
    for b in ["12345", "123456", "1"] {
        assert!(q.admits(b.len()));
        q.publish(msg(b), None, 0);
        q.enforce_limits(no_store);
    }
    assert_eq!(q.message_count(), 2);
    assert_eq!(&q.get(true, 0, no_store).unwrap().msg.body[..], b"123456");
}

#[test]
fn reject_publish_refuses_at_the_limit_and_unacked_messages_do_not_count() {
    use amq_protocol::types::AMQPValue::{LongLongInt, LongString};
    let mut q = limited(&[
        ("x-max-length", LongLongInt(1)),
        ("x-overflow", LongString("reject-publish".into())),
    ]);
    q.publish(msg("a"), None, 0);
    assert!(!q.admits(1));
    let got = q.get(false, 0, no_store).unwrap();
    assert!(q.admits(1), "the unacked message is not ready");
    q.settle(&[got.seq], Settle::Requeue);
    assert!(!q.admits(1));
}

#[test]
fn x_expires_counts_from_the_last_use_and_never_with_a_consumer() {
    use amq_protocol::types::AMQPValue::LongLongInt;
    let mut q = limited(&[("x-expires", LongLongInt(100))]);
    q.touch(1_000);
    assert!(!q.idle_expired(1_099));
    assert!(q.idle_expired(1_100));
    q.consume(consumer(1, 0)).unwrap();
    assert!(!q.idle_expired(5_000));
}

#[test]
fn page_out_moves_resident_bodies_past_the_read_ahead_and_keeps_order() {
    let mut q = q();
    let n = READ_AHEAD as u32 + 500;
    for i in 0..n {
        let m = Message {
            body: Bytes::copy_from_slice(&i.to_be_bytes()),
            ..(*msg("")).clone()
        };
        q.publish(Arc::new(m), None, 0);
    }
    let mut pages: std::collections::HashMap<u32, MsgRef> = Default::default();
    let mut write = |m: &MsgRef| {
        let off = pages.len() as u32;
        pages.insert(off, m.clone());
        Some(Position {
            seg: crate::ids::SegmentId(crate::ids::SegmentId::PAGED | 1),
            off,
        })
    };
    assert_eq!(q.page_out(300, &mut write), 300, "the budget holds");
    assert_eq!(q.page_out(1000, &mut write), 200, "the rest");
    assert_eq!(q.page_out(1000, &mut write), 0, "clean now");
    assert!(!q.ready.resident_tail);
    let resident = q.ready.iter().filter(|e| e.msg.is_some()).count();
    assert_eq!(resident, READ_AHEAD, "only the read-ahead stays in memory");
    for i in 0..n {
        let got = q
            .get(true, 0, |p| pages.get(&p.off).cloned())
            .expect("a message");
        assert_eq!(&got.msg.body[..], &i.to_be_bytes(), "in order");
    }
    assert_eq!(
        q.take_store_ops().count(),
        500,
        "every paged copy is released"
    );
}

//! Unit tests of the channel state machine: confirm coalescing, tx
//! commit-oks, the channel-wide prefetch and channel.flow. No sockets and
//! no shard: a `Conn` writes its frames into `Conn::out`, which these tests
//! parse back with amq-protocol.

use super::*;
use amq_protocol::frame::{parse_frame, AMQPFrame};
use amq_protocol::protocol::tx;
use bytes::Bytes;
use std::sync::Arc;

fn conn() -> Rc<Conn> {
    let c = Conn::new(
        ConnId(1),
        "127.0.0.1:5000".parse().unwrap(),
        crate::net::Transport::Tcp,
    );
    c.state.borrow_mut().channels.insert(1, Channel::new(1));
    c
}

/// Every frame written so far, parsed; `out` is emptied.
fn sent(c: &Conn) -> Vec<AMQPClass> {
    let bytes = std::mem::take(&mut *c.out.borrow_mut()).into_contiguous();
    let mut rest = &bytes[..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (r, f) = parse_frame(rest).expect("a well-formed frame");
        rest = r;
        if let AMQPFrame::Method(_, m) = f {
            out.push(m);
        }
    }
    out
}

fn ack(tag: u64, multiple: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
        delivery_tag: tag,
        multiple,
    }))
}

/// `n` publishes in confirm mode, each routed to one home shard.
fn publish_confirmed(c: &Conn, n: u64) {
    let mut st = c.state.borrow_mut();
    let ch = st.channels.get_mut(&1).unwrap();
    ch.confirm = true;
    for _ in 0..n {
        let seq = ch.next_pub_seq;
        ch.next_pub_seq += 1;
        ch.pending_confirms.insert(seq, (1, false));
    }
}

#[test]
fn confirms_are_coalesced_with_multiple_up_to_the_oldest_outstanding_publish() {
    let c = conn();
    publish_confirmed(&c, 5);
    assert!(c.confirm_one(1, 2, false));
    assert!(c.confirm_one(1, 3, false));
    assert!(c.flush_confirms().is_none());
    assert!(sent(&c).is_empty(), "publish 1 is still outstanding");
    c.confirm_one(1, 1, false);
    c.flush_confirms();
    assert_eq!(sent(&c), [ack(3, true)]);
    c.confirm_one(1, 4, false);
    c.flush_confirms();
    assert_eq!(sent(&c), [ack(4, false)], "one confirm: multiple=false");
}

#[test]
fn a_nack_goes_out_in_order_between_the_acks_around_it() {
    let c = conn();
    publish_confirmed(&c, 3);
    c.confirm_one(1, 3, false);
    c.confirm_one(1, 2, true);
    c.confirm_one(1, 1, false);
    c.flush_confirms();
    let nack = AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
        delivery_tag: 2,
        multiple: false,
        requeue: false,
    }));
    assert_eq!(sent(&c), [ack(1, false), nack, ack(3, false)]);
}

#[test]
fn a_publish_to_two_home_shards_is_confirmed_after_both() {
    let c = conn();
    publish_confirmed(&c, 1);
    c.state
        .borrow_mut()
        .channels
        .get_mut(&1)
        .unwrap()
        .pending_confirms
        .insert(1, (2, false));
    assert!(!c.confirm_one(1, 1, false));
    c.flush_confirms();
    assert!(sent(&c).is_empty());
    assert!(c.confirm_one(1, 1, false));
    c.flush_confirms();
    assert_eq!(sent(&c), [ack(1, false)]);
}

#[test]
fn tx_commit_ok_waits_until_every_publish_of_the_commit_is_confirmed() {
    let c = conn();
    {
        let mut st = c.state.borrow_mut();
        let ch = st.channels.get_mut(&1).unwrap();
        ch.tx = Some(Vec::new());
        ch.pending_confirms.insert(1, (1, false));
        ch.pending_confirms.insert(2, (1, false));
        ch.next_pub_seq = 3;
        ch.commit_waiters.push_back(2);
    }
    c.confirm_one(1, 2, false);
    c.flush_confirms();
    assert!(
        sent(&c).is_empty(),
        "publish 1 of the commit is not on disk yet"
    );
    c.confirm_one(1, 1, false);
    c.flush_confirms();
    assert_eq!(
        sent(&c),
        [AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {}))]
    );
}

#[test]
fn a_commit_with_a_failed_persistent_publish_is_an_internal_error_not_a_commit_ok() {
    let c = conn();
    {
        let mut st = c.state.borrow_mut();
        let ch = st.channels.get_mut(&1).unwrap();
        ch.tx = Some(Vec::new());
        ch.pending_confirms.insert(1, (1, false));
        ch.next_pub_seq = 2;
        ch.commit_waiters.push_back(1);
    }
    c.confirm_one(1, 1, true);
    let e = c.flush_confirms().expect("the commit failed");
    assert_eq!(e.code, 541);
    assert!(sent(&c).is_empty());
}

fn msg() -> MsgRef {
    Arc::new(crate::message::Message {
        exchange: "".into(),
        routing_key: "q".into(),
        props: Bytes::from_static(&[0, 0]),
        body: Bytes::from_static(b"x"),
        persistent: false,
        expiration_ms: None,
        priority: 0,
    })
}

/// A consumer `tag` on channel 1 of `c`.
fn consumer(c: &Conn, tag: &str, no_ack: bool) -> ConsumerRoute {
    c.state
        .borrow_mut()
        .channels
        .get_mut(&1)
        .unwrap()
        .consumers
        .insert(
            tag.into(),
            ChannelConsumer {
                id: ConsumerId(7),
                queue: QueueId(3),
                home: ShardId(0),
                no_ack,
                exclusive: false,
            },
        );
    ConsumerRoute {
        conn: c.id,
        channel: 1,
        tag: tag.into(),
        no_ack,
        timeout_ms: 0,
    }
}

#[test]
fn the_channel_wide_prefetch_hands_deliveries_back_and_pauses_the_consumer() {
    let c = conn();
    c.state
        .borrow_mut()
        .channels
        .get_mut(&1)
        .unwrap()
        .global_prefetch = 2;
    let r = consumer(&c, "c", false);
    let d = |seq| c.deliver(&r, ConsumerId(7), QueueId(3), ShardId(0), seq, false, msg());
    assert_eq!(d(1), Handoff::Taken);
    assert_eq!(d(2), Handoff::Taken);
    assert_eq!(d(3), Handoff::OverLimit);
    let st = c.state.borrow();
    let ch = &st.channels[&1];
    assert_eq!(ch.unacked.len(), 2);
    assert_eq!(
        ch.paused,
        [QueueConsumer {
            home: ShardId(0),
            queue: QueueId(3),
            consumer: ConsumerId(7)
        }]
    );
}

#[test]
fn no_ack_deliveries_are_not_limited_by_the_channel_wide_prefetch() {
    let c = conn();
    c.state
        .borrow_mut()
        .channels
        .get_mut(&1)
        .unwrap()
        .global_prefetch = 1;
    let r = consumer(&c, "c", true);
    for seq in 1..=3 {
        let h = c.deliver(&r, ConsumerId(7), QueueId(3), ShardId(0), seq, false, msg());
        assert_eq!(h, Handoff::Taken);
    }
}

#[test]
fn a_delivery_to_a_cancelled_consumer_or_closing_channel_is_gone() {
    let c = conn();
    let r = consumer(&c, "c", false);
    let gone = ConsumerRoute {
        tag: "other".into(),
        ..r.clone()
    };
    let d = |route: &ConsumerRoute| {
        c.deliver(
            route,
            ConsumerId(7),
            QueueId(3),
            ShardId(0),
            1,
            false,
            msg(),
        )
    };
    assert_eq!(d(&gone), Handoff::Gone);
    c.state.borrow_mut().channels.get_mut(&1).unwrap().closing = true;
    assert_eq!(d(&r), Handoff::Gone);
}

#[test]
fn channel_flow_holds_deliveries_in_tag_order_until_released() {
    let c = conn();
    let r = consumer(&c, "c", false);
    c.state
        .borrow_mut()
        .channels
        .get_mut(&1)
        .unwrap()
        .flow_active = false;
    for seq in 1..=2 {
        c.deliver(&r, ConsumerId(7), QueueId(3), ShardId(0), seq, false, msg());
    }
    assert!(sent(&c).is_empty());
    c.state
        .borrow_mut()
        .channels
        .get_mut(&1)
        .unwrap()
        .flow_active = true;
    c.release_held(1);
    let tags: Vec<u64> = sent(&c)
        .into_iter()
        .filter_map(|m| match m {
            AMQPClass::Basic(basic::AMQPMethod::Deliver(d)) => Some(d.delivery_tag),
            _ => None,
        })
        .collect();
    assert_eq!(tags, [1, 2]);
}

#[test]
fn the_api_state_is_blocked_then_flow_then_running() {
    use std::time::{Duration, Instant};
    let c = Conn::new(
        ConnId(1),
        "127.0.0.1:5000".parse().unwrap(),
        crate::net::Transport::Tcp,
    );
    let now = Instant::now();
    assert_eq!(c.api_state(now), "running");
    c.flow_at.set(Some(now));
    assert_eq!(c.api_state(now + Duration::from_millis(500)), "flow");
    assert_eq!(c.api_state(now + Duration::from_secs(2)), "running");
    c.blocked_sent.set(true);
    assert_eq!(c.api_state(now), "blocked");
}

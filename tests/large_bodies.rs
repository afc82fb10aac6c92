//! Large multi-frame bodies received straight into their own buffer
//! (`channel::direct_body`): frames of other channels and heartbeats
//! between a body's frames, bodies written to the socket in odd pieces, and
//! a method frame in the middle of a body, over real TCP.

mod common;

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, basic::AMQPProperties, AMQPClass};
use common::*;
use lapin::options::*;
use std::time::Duration;

fn publish_method(queue: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "".into(),
        routing_key: queue.into(),
        mandatory: false,
        immediate: false,
    }))
}

fn header(channel: u16, size: usize) -> Vec<u8> {
    encode_frame(&AMQPFrame::Header(
        channel,
        60,
        Box::new(AMQPContentHeader {
            class_id: 60,
            body_size: size as u64,
            properties: AMQPProperties::default(),
        }),
    ))
}

fn body_frames(channel: u16, body: &[u8]) -> Vec<Vec<u8>> {
    // frame_max 131,072 minus the 8 envelope bytes.
    body.chunks(131_064)
        .map(|c| encode_frame(&AMQPFrame::Body(channel, c.to_vec())))
        .collect()
}

fn pattern(size: usize, seed: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 31 + seed) % 251) as u8).collect()
}

shard_tests!(large_bodies_interleaved_with_other_channels_arrive_intact);
async fn large_bodies_interleaved_with_other_channels_arrive_intact(shards: usize) {
    let b = start_broker(shards).await;
    let conn = connect(&b).await;
    let ch = open_channel(&conn).await;
    let q = declare_queue(&ch, "large-interleaved").await;
    let mut c = consume(&ch, &q, true).await;
    let port = b.port;
    let big = pattern(400_000, 1); // four frames
    let second = pattern(200_000, 2); // two frames
    let (q2, big2, second2) = (q.clone(), big.clone(), second.clone());
    tokio::task::spawn_blocking(move || {
        let mut raw = RawClient::handshake(port);
        raw.open_channel(1);
        raw.open_channel(2);
        let mut out = Vec::new();
        // Channel 1 starts a 400,000-byte body (four frames) ...
        out.extend(encode_frame(&AMQPFrame::Method(1, publish_method(&q2))));
        out.extend(header(1, big2.len()));
        let frames = body_frames(1, &big2);
        out.extend(&frames[0]);
        // ... channel 2 sends a small message, then a large one of its
        // own, and a heartbeat comes between channel 1's frames ...
        out.extend(encode_frame(&AMQPFrame::Method(2, publish_method(&q2))));
        out.extend(header(2, 5));
        out.extend(encode_frame(&AMQPFrame::Body(2, b"small".to_vec())));
        out.extend(&frames[1]);
        out.extend(encode_frame(&AMQPFrame::Heartbeat(0)));
        out.extend(encode_frame(&AMQPFrame::Method(2, publish_method(&q2))));
        out.extend(header(2, second2.len()));
        let frames2 = body_frames(2, &second2);
        out.extend(&frames2[0]);
        out.extend(&frames[2]);
        out.extend(&frames2[1]);
        out.extend(&frames[3]);
        // ... all of it written in odd pieces, so the broker sees partial
        // headers, partial payloads and lone frame-end octets.
        for piece in out.chunks(7_777) {
            raw.send_raw(piece);
            std::thread::sleep(Duration::from_micros(200));
        }
        // Keep the connection open until the consumer has everything.
        std::thread::sleep(Duration::from_secs(2));
    });
    let mut got = Vec::new();
    for i in 0..3 {
        let d = next_delivery(&mut c, &format!("delivery {i}")).await;
        got.push(d.data);
    }
    got.sort_by_key(|d| d.len());
    assert_eq!(got[0], b"small");
    assert_eq!(got[1].len(), second.len());
    assert!(got[1] == second, "channel 2's large body corrupted");
    assert_eq!(got[2].len(), big.len());
    assert!(got[2] == big, "channel 1's large body corrupted");
}

shard_tests!(a_method_in_the_middle_of_a_large_body_closes_the_connection_with_505);
async fn a_method_in_the_middle_of_a_large_body_closes_the_connection_with_505(shards: usize) {
    let b = start_broker(shards).await;
    let port = b.port;
    let code = tokio::task::spawn_blocking(move || {
        let mut raw = RawClient::handshake(port);
        raw.open_channel(1);
        let body = pattern(300_000, 3);
        let mut out = encode_frame(&AMQPFrame::Method(1, publish_method("nowhere")));
        out.extend(header(1, body.len()));
        out.extend(&body_frames(1, &body)[0]);
        raw.send_raw(&out);
        // Checked against RabbitMQ 3.10.8 (Debian's rabbitmq-server on a
        // private port, the same frames sent raw): connection.close 505
        // "UNEXPECTED_FRAME - expected content body, got non content body
        // frame instead", class 60 method 40. Warren's reply is the same.
        raw.send_method(1, publish_method("nowhere"));
        raw.expect_connection_close()
    })
    .await
    .unwrap();
    assert_eq!(code, 505);
}

shard_tests!(a_body_larger_than_the_direct_limit_still_arrives_intact);
async fn a_body_larger_than_the_direct_limit_still_arrives_intact(shards: usize) {
    // 17 MiB: past the 16 MiB a peer's word may reserve, so its frames are
    // joined as before.
    let b = start_broker(shards).await;
    let conn = connect(&b).await;
    let ch = confirm_channel(&conn).await;
    let q = declare_queue(&ch, "large-joined").await;
    let body = pattern(17 * 1024 * 1024 + 5, 4);
    let conf = publish(&ch, "", &q, &body).await;
    within("confirm", conf).await.expect("confirm");
    let mut c = consume(&ch, &q, false).await;
    let d = next_delivery(&mut c, "17 MiB body").await;
    assert_eq!(d.data.len(), body.len());
    assert!(d.data == body, "17 MiB body corrupted");
    within("ack", d.acker.ack(BasicAckOptions::default()))
        .await
        .unwrap();
}

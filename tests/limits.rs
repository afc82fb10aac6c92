//! Limits every production broker enforces on unauthenticated peers
//! (RabbitMQ's defaults): a 10 s handshake timeout from accept to
//! connection.open, and a 4096-byte frame limit until tune-ok.

mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{connection, AMQPClass};
use common::*;
use std::time::{Duration, Instant};

fn start_ok_frame(response_len: usize) -> Vec<u8> {
    // PLAIN: authzid \0 user \0 password; the padding is the authzid.
    let mut response = vec![b'x'; response_len - 12];
    response.extend_from_slice(b"\0guest\0guest");
    let mut payload = Vec::new();
    payload.extend_from_slice(&10u16.to_be_bytes());
    payload.extend_from_slice(&11u16.to_be_bytes());
    payload.extend_from_slice(&0u32.to_be_bytes()); // empty client-properties table
    payload.push(5);
    payload.extend_from_slice(b"PLAIN");
    payload.extend_from_slice(&(response.len() as u32).to_be_bytes());
    payload.extend_from_slice(&response);
    payload.push(5);
    payload.extend_from_slice(b"en_US");
    let mut frame = vec![1u8, 0, 0];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame.push(0xCE);
    frame
}

#[test]
fn frames_larger_than_4096_bytes_are_refused_before_authentication() {
    for_each_shard_count(|shards| {
        let b = Broker::start(shards);
        let mut c = RawClient::start(b.port);
        c.send_raw(&start_ok_frame(6000));
        // Refused: connection.close 501 (FRAME_ERROR), never a tune.
        loop {
            match c.next() {
                Ok(Some(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Close(close)),
                ))) => {
                    assert_eq!(close.reply_code, 501, "{close:?}");
                    break;
                }
                Ok(Some(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Tune(_)),
                ))) => {
                    panic!("an oversized pre-authentication frame was accepted")
                }
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
        // A start-ok within the limit still works.
        let mut c = RawClient::start(b.port);
        c.send_raw(&start_ok_frame(4000));
        assert!(
            matches!(
                c.read_frame(),
                Some(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Tune(_))
                ))
            ),
            "a 4 KiB start-ok is accepted"
        );
    });
}

#[test]
fn a_peer_that_stalls_in_the_handshake_is_disconnected() {
    let b = Broker::start(1);
    // Header sent, connection.start read, then nothing.
    let mut c = RawClient::start(b.port);
    let t0 = Instant::now();
    loop {
        match c.next() {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(e) => panic!("still connected after {:?}: {e}", t0.elapsed()),
        }
    }
    // Generous bound: the limit is 10 s, the read timeout 20 s.
    assert!(t0.elapsed() < Duration::from_secs(19));
}

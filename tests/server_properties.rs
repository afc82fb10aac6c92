//! The `product` server property: "Warren" by default, configurable (for
//! clients that enable RabbitMQ-only behaviour only for "RabbitMQ").

mod common;

use amq_protocol::frame::{parsing::parse_frame, AMQPFrame};
use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::AMQPValue;
use common::*;
use std::io::{Read, Write};

fn product(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    s.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before connection.start");
        buf.extend_from_slice(&chunk[..n]);
        if let Ok((
            _,
            AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Start(st))),
        )) = parse_frame(&buf[..])
        {
            return match st.server_properties.inner().get("product") {
                Some(AMQPValue::LongString(v)) => {
                    String::from_utf8_lossy(v.as_bytes()).into_owned()
                }
                other => panic!("product: {other:?}"),
            };
        }
    }
}

#[test]
fn product_is_warren_unless_configured() {
    let b = Broker::start(1);
    assert_eq!(product(b.port), "Warren");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("warren.toml");
    std::fs::write(&cfg, "product = \"RabbitMQ\"\n").unwrap();
    let b = Broker::start_with(1, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(product(b.port), "RabbitMQ");
}

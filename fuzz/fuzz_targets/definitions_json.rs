//! JSON a peer sends in definitions and HTTP bodies (queue and binding
//! `arguments`) turned into AMQP field tables and back, and hashed into a
//! binding's properties key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren::mgmt::json::{json_to_table, table_to_json};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let t = json_to_table(&v);
    let back = table_to_json(&t);
    // A binding's properties key hashes the table as RabbitMQ stores it
    // (erlang:phash2 over any nesting): never panics.
    let key = warren::mgmt::bindings::properties_key("k", &t);
    assert!(key.starts_with('k'));
    // A second round trip is stable.
    assert_eq!(table_to_json(&json_to_table(&back)), back);
});

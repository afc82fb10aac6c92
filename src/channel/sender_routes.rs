//! Sender-selected distribution (RabbitMQ's `CC` and `BCC` headers): a
//! publisher names extra routing keys in the message's `headers`, and the
//! message is routed on its exchange with the routing key and every extra
//! key, each destination queue getting it once. `BCC` is removed from the
//! message that is stored and delivered; `CC` stays.
//!
//! Recorded from RabbitMQ 3.10 (`tests/python/test_sender_routes.py`):
//! only the exact header names `CC` and `BCC` count; each must be an array
//! (its long-string elements are routing keys, other elements are
//! ignored); any other type is 406 PRECONDITION_FAILED `invalid message:
//! {unacceptable_type_in_header,"CC",longstr}` on the publishing channel;
//! the delivered routing key is the publish's own; a mandatory message
//! routed only through `CC`/`BCC` is not returned. Pure functions, no
//! allocation unless a message carries the headers.

use crate::error::{AmqpError, AmqpResult};
use crate::meta::queue_args::type_name;
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::types::{AMQPValue, FieldTable};

/// The carbon-copy header: extra routing keys, kept in the message.
pub const CC: &str = "CC";
/// The blind-carbon-copy header: extra routing keys, removed from the message.
pub const BCC: &str = "BCC";

/// Check a publish's `CC` and `BCC` headers; Ok(true) if `BCC` is present
/// (the properties must then be rewritten without it, [`strip_bcc`]).
/// Error: 406 `invalid message: {unacceptable_type_in_header,"CC",longstr}`
/// (the header's name and its type) when either is not an array.
pub fn check(headers: &FieldTable) -> AmqpResult<bool> {
    let inner = headers.inner();
    for name in [CC, BCC] {
        match inner.get(name) {
            None | Some(AMQPValue::FieldArray(_)) => {}
            Some(other) => {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid message: {{unacceptable_type_in_header,\"{name}\",{}}}",
                    type_name(other)
                )))
            }
        }
    }
    Ok(inner.contains_key(BCC))
}

/// Append the extra routing keys of `headers` (`CC` then `BCC`, long-string
/// elements that are UTF-8; routing keys are strings here) to `keys`.
pub fn extra_keys<'a>(headers: Option<&'a FieldTable>, keys: &mut impl Extend<&'a str>) {
    let Some(h) = headers else { return };
    let inner = h.inner();
    for name in [CC, BCC] {
        if let Some(AMQPValue::FieldArray(a)) = inner.get(name) {
            for v in a.as_slice() {
                if let AMQPValue::LongString(s) = v {
                    if let Ok(k) = std::str::from_utf8(s.as_bytes()) {
                        keys.extend(std::iter::once(k));
                    }
                }
            }
        }
    }
}

/// Whether `headers` name any extra routing key header at all (cheap: two
/// map lookups).
pub fn has_extra(headers: Option<&FieldTable>) -> bool {
    headers.is_some_and(|h| h.inner().contains_key(CC) || h.inner().contains_key(BCC))
}

/// The properties without the `BCC` header (the headers table stays, even
/// if empty, as RabbitMQ leaves it).
pub fn strip_bcc(props: AMQPProperties) -> AMQPProperties {
    let Some(h) = props
        .headers()
        .as_ref()
        .filter(|h| h.inner().contains_key(BCC))
    else {
        return props;
    };
    let mut t = FieldTable::default();
    for (k, v) in h.inner() {
        if k.as_str() != BCC {
            t.insert(k.clone(), v.clone());
        }
    }
    props.with_headers(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::FieldArray;

    use crate::defs::field_table as table;

    #[test]
    fn extra_keys_take_long_strings_of_cc_then_bcc() {
        let arr = |xs: Vec<AMQPValue>| AMQPValue::FieldArray(FieldArray::from(xs));
        let h = table(&[
            ("BCC", arr(vec![AMQPValue::LongString("b".into())])),
            (
                "CC",
                arr(vec![
                    AMQPValue::LongString("c1".into()),
                    AMQPValue::LongInt(5),
                    AMQPValue::LongString("c2".into()),
                ]),
            ),
            ("cc", arr(vec![AMQPValue::LongString("lower".into())])),
        ]);
        assert!(check(&h).unwrap());
        let mut keys = vec!["rk"];
        extra_keys(Some(&h), &mut keys);
        assert_eq!(keys, ["rk", "c1", "c2", "b"]);
        let stripped = strip_bcc(AMQPProperties::default().with_headers(h));
        let left = stripped.headers().clone().unwrap();
        assert!(left.inner().contains_key("CC") && !left.inner().contains_key("BCC"));
    }

    #[test]
    fn a_cc_header_that_is_not_an_array_is_refused_with_rabbitmqs_text() {
        let h = table(&[("CC", AMQPValue::LongString("q".into()))]);
        let e = check(&h).unwrap_err();
        assert_eq!(e.code, crate::error::PRECONDITION_FAILED);
        assert_eq!(
            e.text,
            "PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,\"CC\",longstr}"
        );
        assert!(!check(&FieldTable::default()).unwrap());
    }
}

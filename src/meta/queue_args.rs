//! Queue arguments (`x-*` in queue.declare): validation with RabbitMQ's
//! 406 texts, and the refusal of the ones Warren does not implement.
//!
//! Texts recorded from RabbitMQ 3.10 (Debian's `rabbitmq-server`, see
//! `tests/python/test_queue_args.py`), e.g. `invalid arg 'x-message-ttl'
//! for queue 'q' in vhost '/': {value_negative,-1}`. A valid argument of a
//! feature Warren lacks gets 540 NOT_IMPLEMENTED (a connection error, as the
//! AMQP spec defines the code), never silent acceptance: an application
//! relying on it learns at declare time. Pure functions: no I/O, no state.

use crate::defs::arg_integer as integer;
use crate::defs::arg_text as text;
use crate::error::{AmqpError, AmqpResult};
use amq_protocol::types::{AMQPValue, FieldTable};

/// The largest TTL or expiry RabbitMQ accepts, in ms (2^32 - 1).
pub const MAX_EXPIRY_MS: i64 = 4_294_967_295;

/// Arguments that are accepted with no effect on behaviour Warren can
/// show: storage hints (every Warren queue keeps its backlog on disk when
/// durable) and the explicit default queue type. (`x-queue-master-locator`
/// is not one: `client-local` places the queue, see [`client_local`].)
const ACCEPTED_HINTS: &[&str] = &[
    "x-queue-mode",
    "x-queue-version",
    "x-stream-filter-size-bytes",
    "x-ha-policy",
    // Quorum replication and memory hints: a single node has one replica
    // and keeps a quorum queue's backlog on disk like any durable queue.
    "x-quorum-initial-group-size",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-queue-leader-locator",
];

/// Quorum and stream arguments RabbitMQ refuses on a classic queue (every
/// Warren queue is one) with `... of queue type rabbit_classic_queue`.
/// (`x-delivery-limit` is not among them: Warren counts deliveries on
/// classic queues too, see `queue::delivery_count`.)
const NOT_FOR_CLASSIC: &[&str] = &[
    "x-dead-letter-strategy",
    "x-quorum-initial-group-size",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-queue-leader-locator",
    "x-initial-cluster-size",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
];

/// Classic-only arguments RabbitMQ refuses on a quorum queue with `... of
/// queue type rabbit_quorum_queue` (recorded from RabbitMQ 3.10).
const NOT_FOR_QUORUM: &[&str] = &["x-max-priority", "x-queue-mode", "x-queue-version"];

/// Arguments of features Warren implements.
const IMPLEMENTED: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-priority",
    "x-single-active-consumer",
    "x-consumer-timeout",
    "x-delivery-limit",
    "x-queue-master-locator",
];

/// Whether a new queue is placed on the declaring connection's shard:
/// `x-queue-master-locator: client-local` in its arguments or, when the
/// argument is absent, `queue-master-locator: client-local` in the policy
/// that applies to it (`policy`: its definition; operator policies cannot
/// set a locator). The argument first, then the policy: RabbitMQ's order
/// (`rabbit_queue_master_location_misc`). RabbitMQ puts
/// such a queue's master on the node the client is connected to; a Warren
/// shard is the nearest thing to a node, and a queue on its consumer's or
/// publisher's shard saves a hop between cores on every message (PERF.md,
/// "Latency: queue placement"). Other locators, and none, place a queue by
/// the hash of its name (`defs::queue_home`), spreading queues over the
/// shards.
pub fn client_local(
    args: &FieldTable,
    policy: Option<&serde_json::Map<String, serde_json::Value>>,
) -> bool {
    match args.inner().get("x-queue-master-locator") {
        Some(v) => text(v).as_deref() == Some("client-local"),
        None => {
            policy
                .and_then(|p| p.get("queue-master-locator"))
                .and_then(|v| v.as_str())
                == Some("client-local")
        }
    }
}

/// RabbitMQ's AMQP type name of a field value (as in its error texts).
pub fn type_name(v: &AMQPValue) -> &'static str {
    match v {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) => "shortstr",
        AMQPValue::LongString(_) => "longstr",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "binary",
        AMQPValue::Void => "void",
    }
}

/// The `x-queue-type` of `args` (`classic` when absent).
fn queue_type(args: &FieldTable) -> String {
    args.inner()
        .get("x-queue-type")
        .and_then(text)
        .unwrap_or_else(|| "classic".into())
}

/// Check the arguments of a new or redeclared queue, as RabbitMQ does
/// before anything else in queue.declare (not for passive declares).
///
/// Errors: 406 PRECONDITION_FAILED with RabbitMQ's text for an invalid
/// value or type; 540 NOT_IMPLEMENTED for a valid argument of a feature
/// Warren does not have yet (named in the text).
pub fn validate(
    queue: &str,
    vhost: &str,
    args: &FieldTable,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
) -> AmqpResult<()> {
    let invalid = |arg: &str, why: String| {
        AmqpError::precondition_failed(format!(
            "invalid arg '{arg}' for queue '{queue}' in vhost '{vhost}': {why}"
        ))
    };
    // Only the dead-letter exchange's type error has this wording; the
    // other string arguments answer `{unacceptable_type,<type>}`.
    let wrong_dlx_type = |v: &AMQPValue| {
        AmqpError::precondition_failed(format!(
            "invalid type '{}' for arg 'x-dead-letter-exchange' in queue '{queue}' in vhost '{vhost}'",
            type_name(v)
        ))
    };
    let unacceptable =
        |arg: &str, v: &AMQPValue| invalid(arg, format!("{{unacceptable_type,{}}}", type_name(v)));
    let kind = queue_type(args);
    let classic = kind != "quorum" && kind != "stream";
    let invalid_property = |p: &str| {
        AmqpError::precondition_failed(format!(
            "invalid property '{p}' for queue '{queue}' in vhost '{vhost}'"
        ))
    };
    let int = |arg: &str, v: &AMQPValue| {
        integer(v)
            .ok_or_else(|| invalid(arg, format!("\"expected integer, got {}\"", type_name(v))))
    };
    let inner = args.inner();
    for (key, v) in inner.iter() {
        let key = key.as_str();
        if classic && NOT_FOR_CLASSIC.contains(&key) {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg '{key}' for queue '{queue}' in vhost '{vhost}' of queue type rabbit_classic_queue"
            )));
        }
        if kind == "quorum" && NOT_FOR_QUORUM.contains(&key) {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg '{key}' for queue '{queue}' in vhost '{vhost}' of queue type rabbit_quorum_queue"
            )));
        }
        match key {
            "x-message-ttl" | "x-expires" => {
                let n = int(key, v)?;
                if n < 0 {
                    return Err(invalid(key, format!("{{value_negative,{n}}}")));
                }
                if n == 0 && key == "x-expires" {
                    return Err(invalid(key, format!("{{value_zero,{n}}}")));
                }
                if n > MAX_EXPIRY_MS {
                    return Err(invalid(key, format!("{{value_too_large,{n}}}")));
                }
            }
            "x-max-length" | "x-max-length-bytes" | "x-delivery-limit" | "x-consumer-timeout" => {
                let n = int(key, v)?;
                if n < 0 {
                    return Err(invalid(key, format!("{{value_negative,{n}}}")));
                }
            }
            "x-max-priority" => {
                let n = int(key, v)?;
                if n < 0 {
                    return Err(invalid(key, format!("{{value_negative,{n}}}")));
                }
                if n > 255 {
                    return Err(invalid(key, format!("{{max_value_exceeded,{n}}}")));
                }
            }
            "x-overflow" => {
                let s = text(v).ok_or_else(|| unacceptable(key, v))?;
                if !["drop-head", "reject-publish", "reject-publish-dlx"].contains(&s.as_str()) {
                    return Err(invalid(key, "invalid_overflow".into()));
                }
            }
            "x-dead-letter-exchange" => {
                text(v).ok_or_else(|| wrong_dlx_type(v))?;
            }
            "x-dead-letter-routing-key" => {
                text(v).ok_or_else(|| unacceptable(key, v))?;
            }
            "x-single-active-consumer" if !matches!(v, AMQPValue::Boolean(_)) => {
                return Err(unacceptable(key, v));
            }
            "x-queue-version" => {
                let n = int(key, v)?;
                if n != 1 && n != 2 {
                    return Err(invalid(key, format!("\"unsupported queue version '{n}'\"")));
                }
            }
            "x-queue-type" => {
                let s = text(v).ok_or_else(|| unacceptable(key, v))?;
                if !["classic", "quorum", "stream"].contains(&s.as_str()) {
                    return Err(invalid(key, format!("\"unsupported queue type '{s}'\"")));
                }
                if s != "classic" && !durable {
                    return Err(invalid_property("non-durable"));
                }
                if s != "classic" && exclusive {
                    return Err(invalid_property("exclusive-owner"));
                }
                if s != "classic" && auto_delete {
                    return Err(invalid_property("auto-delete"));
                }
            }
            "x-dead-letter-strategy" => {
                let s = text(v).ok_or_else(|| unacceptable(key, v))?;
                if s != "at-most-once" && s != "at-least-once" {
                    return Err(invalid(key, "invalid_dlx_strategy".into()));
                }
            }
            "x-queue-master-locator" => {
                // RabbitMQ 3.10 accepts these three; any other value makes
                // its locator validation crash (541 INTERNAL_ERROR, closing
                // the connection, asked of 3.10.8). Warren refuses it as
                // any other invalid value: 406 on the channel.
                let s = text(v).ok_or_else(|| unacceptable(key, v))?;
                if !crate::defs::policy::LOCATORS.contains(&s.as_str()) {
                    return Err(invalid(
                        key,
                        format!("\"{s} is not a valid master locator\""),
                    ));
                }
            }
            "x-queue-mode" => {
                let s = text(v).ok_or_else(|| unacceptable(key, v))?;
                if !["default", "lazy"].contains(&s.as_str()) {
                    return Err(invalid(key, format!("\"unsupported queue mode '{s}'\"")));
                }
            }
            _ => {}
        }
    }
    if inner.contains_key("x-dead-letter-routing-key")
        && !inner.contains_key("x-dead-letter-exchange")
    {
        return Err(invalid(
            "x-dead-letter-routing-key",
            "routing_key_but_no_dlx_defined".into(),
        ));
    }
    // Valid, but is it implemented?
    for (key, v) in inner.iter() {
        let key = key.as_str();
        let unsupported = match key {
            _ if !key.starts_with("x-") => false,
            _ if IMPLEMENTED.contains(&key) || ACCEPTED_HINTS.contains(&key) => false,
            "x-queue-type" => text(v).as_deref() == Some("stream"),
            // Unroutable dead letters are dropped, not retried as
            // RabbitMQ's at-least-once strategy retries them.
            "x-dead-letter-strategy" => text(v).as_deref() == Some("at-least-once"),
            k => super::authority::is_equivalence_arg(k),
        };
        if unsupported {
            return Err(AmqpError::not_implemented(format!(
                "queue argument '{key}' is not supported by Warren yet (queue '{queue}' in vhost '{vhost}'); see the README's feature table"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(k: &str, v: AMQPValue) -> FieldTable {
        let mut t = FieldTable::default();
        t.insert(k.into(), v);
        t
    }

    #[test]
    fn invalid_values_get_rabbitmqs_texts() {
        let e = validate(
            "q",
            "/",
            &args("x-message-ttl", AMQPValue::LongString("abc".into())),
            false,
            false,
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.text,
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q' in vhost '/': \"expected integer, got longstr\""
        );
        let e = validate(
            "q",
            "/",
            &args("x-expires", AMQPValue::LongInt(0)),
            false,
            false,
            false,
        )
        .unwrap_err();
        assert!(e.text.ends_with("{value_zero,0}"), "{}", e.text);
        let e = validate(
            "q",
            "/",
            &args("x-dead-letter-exchange", AMQPValue::LongInt(5)),
            false,
            false,
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.text,
            "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'"
        );
    }

    #[test]
    fn implemented_arguments_and_hints_are_accepted_but_other_features_are_refused() {
        assert!(validate(
            "q",
            "/",
            &args("x-message-ttl", AMQPValue::LongInt(0)),
            false,
            false,
            false
        )
        .is_ok());
        assert!(validate(
            "q",
            "/",
            &args("x-queue-mode", AMQPValue::LongString("lazy".into())),
            false,
            false,
            false
        )
        .is_ok());
        assert!(validate(
            "q",
            "/",
            &args("x-custom", AMQPValue::LongInt(1)),
            false,
            false,
            false
        )
        .is_ok());
        assert!(validate(
            "q",
            "/",
            &args("x-max-priority", AMQPValue::LongInt(10)),
            false,
            false,
            false
        )
        .is_ok());
        let e = validate(
            "q",
            "/",
            &args("x-queue-type", AMQPValue::LongString("stream".into())),
            true,
            false,
            false,
        )
        .unwrap_err();
        assert_eq!(e.code, 540);
    }
}

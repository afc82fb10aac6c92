//! Exchange arguments (exchange.declare) and binding arguments (queue.bind,
//! exchange.bind) validated as RabbitMQ validates them, with its 406
//! PRECONDITION_FAILED texts (recorded from RabbitMQ 3.10, see
//! `tests/python/test_alternate_exchange.py`). Pure functions: no I/O, no
//! state.

use super::queue_args::type_name;
use crate::defs::ExchangeKind;
use crate::error::{AmqpError, AmqpResult};
use amq_protocol::types::{AMQPValue, FieldTable};

/// Check exchange.declare arguments: `alternate-exchange` must be a string
/// (`invalid type 'signedint' for arg 'alternate-exchange' in exchange 'x'
/// in vhost '/'` otherwise). Other arguments are kept as given.
/// An `x-delayed-message` exchange needs `x-delayed-type` ([`delayed_type`]).
pub fn exchange_args(
    kind: ExchangeKind,
    name: &str,
    vhost: &str,
    args: &FieldTable,
) -> AmqpResult<()> {
    let kind = match kind {
        ExchangeKind::DelayedMessage => delayed_type(args)?,
        k => k,
    };
    if kind == ExchangeKind::ConsistentHash {
        crate::routing::consistent_hash::check_args(args)
            .map_err(AmqpError::precondition_failed)?;
    }
    match args.inner().get("alternate-exchange") {
        None | Some(AMQPValue::LongString(_)) | Some(AMQPValue::ShortString(_)) => Ok(()),
        Some(other) => Err(AmqpError::precondition_failed(format!(
            "invalid type '{}' for arg 'alternate-exchange' in exchange '{name}' in vhost '{vhost}'",
            type_name(other)
        ))),
    }
}

/// The routing type of an `x-delayed-message` exchange, as the plugin
/// validates it (`rabbit_exchange_type_delayed_message:validate/1`):
/// `x-delayed-type` naming `x-delayed-message` is 406 `Invalid argument,
/// 'x-delayed-message' can't be used for 'x-delayed-type'`; a string that
/// names no type is 503 `unknown exchange type 'foo'`
/// (`rabbit_exchange:check_type`); a missing or non-string one is 406
/// `Invalid argument, 'x-delayed-type' must be an existing exchange type`.
pub fn delayed_type(args: &FieldTable) -> AmqpResult<ExchangeKind> {
    use crate::defs::delayed::TYPE_ARGUMENT;
    let Some(t) = args
        .inner()
        .get(TYPE_ARGUMENT)
        .and_then(crate::defs::arg_text)
    else {
        return Err(AmqpError::precondition_failed(
            "Invalid argument, 'x-delayed-type' must be an existing exchange type",
        ));
    };
    match ExchangeKind::parse(&t) {
        Some(ExchangeKind::DelayedMessage) => Err(AmqpError::precondition_failed(
            "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'",
        )),
        Some(k) => Ok(k),
        None => Err(AmqpError::command_invalid(format!(
            "unknown exchange type '{t}'"
        ))),
    }
}

/// Check a new binding with key `key` and arguments `args` to an exchange
/// of `kind`: a headers exchange's `x-match` must be the long string `all`,
/// `any`, `all-with-x` or `any-with-x`, a consistent-hash exchange's key a
/// positive integer weight (RabbitMQ's `validate_binding`). Other exchange
/// types take any key and arguments.
pub fn binding_args(kind: ExchangeKind, key: &str, args: &FieldTable) -> AmqpResult<()> {
    if kind == ExchangeKind::ConsistentHash {
        return crate::routing::consistent_hash::weight(key)
            .map(|_| ())
            .map_err(AmqpError::precondition_failed);
    }
    if kind != ExchangeKind::Headers {
        return Ok(());
    }
    match args.inner().get("x-match") {
        None => Ok(()),
        Some(AMQPValue::LongString(s)) => match s.as_bytes() {
            b"all" | b"any" | b"all-with-x" | b"any-with-x" => Ok(()),
            other => Err(AmqpError::precondition_failed(format!(
                "Invalid x-match field value <<\"{}\">>; expected all, any, all-with-x, or any-with-x",
                String::from_utf8_lossy(other)
            ))),
        },
        Some(other) => Err(AmqpError::precondition_failed(format!(
            "Invalid x-match field type {} (value {}); expected longstr",
            type_name(other),
            erlang_value(other)
        ))),
    }
}

/// A field value as RabbitMQ prints it in these texts: numbers plainly,
/// strings as Erlang binaries, anything else by its type name.
fn erlang_value(v: &AMQPValue) -> String {
    match v {
        AMQPValue::ShortShortInt(x) => x.to_string(),
        AMQPValue::ShortShortUInt(x) => x.to_string(),
        AMQPValue::ShortInt(x) => x.to_string(),
        AMQPValue::ShortUInt(x) => x.to_string(),
        AMQPValue::LongInt(x) => x.to_string(),
        AMQPValue::LongUInt(x) => x.to_string(),
        AMQPValue::LongLongInt(x) => x.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortString(s) => format!("<<\"{}\">>", s.as_str()),
        other => type_name(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(k: &str, v: AMQPValue) -> FieldTable {
        let mut t = FieldTable::default();
        t.insert(k.into(), v);
        t
    }

    #[test]
    fn x_match_is_checked_only_on_headers_exchanges() {
        let bad = table("x-match", AMQPValue::LongString("foo".into()));
        assert!(binding_args(ExchangeKind::Direct, "", &bad).is_ok());
        let e = binding_args(ExchangeKind::Headers, "", &bad).unwrap_err();
        assert_eq!(e.code, 406);
        assert!(e.text.ends_with("Invalid x-match field value <<\"foo\">>; expected all, any, all-with-x, or any-with-x"), "{}", e.text);
        let e = binding_args(
            ExchangeKind::Headers,
            "",
            &table("x-match", AMQPValue::LongInt(5)),
        )
        .unwrap_err();
        assert!(
            e.text
                .ends_with("Invalid x-match field type signedint (value 5); expected longstr"),
            "{}",
            e.text
        );
        for ok in ["all", "any", "all-with-x", "any-with-x"] {
            let t = table("x-match", AMQPValue::LongString(ok.into()));
            assert!(binding_args(ExchangeKind::Headers, "", &t).is_ok());
        }
    }

    #[test]
    fn an_alternate_exchange_must_be_a_string() {
        let e = exchange_args(
            ExchangeKind::Direct,
            "bad",
            "/",
            &table("alternate-exchange", AMQPValue::LongInt(5)),
        )
        .unwrap_err();
        assert!(e.text.ends_with("invalid type 'signedint' for arg 'alternate-exchange' in exchange 'bad' in vhost '/'"), "{}", e.text);
        let ok = table("alternate-exchange", AMQPValue::LongString("ae".into()));
        assert!(exchange_args(ExchangeKind::Direct, "x", "/", &ok).is_ok());
    }
}

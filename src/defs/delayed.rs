//! The vocabulary of the delayed-message exchange (`x-delayed-message`, as
//! RabbitMQ's community plugin `rabbitmq_delayed_message_exchange` defines
//! it): which type routes its messages and how long a message waits.
//!
//! The plugin's rules, from its source (`rabbit_delayed_message_utils`,
//! `rabbit_exchange_type_delayed_message`): the exchange routes with the
//! type named by its `x-delayed-type` argument; a message whose `x-delay`
//! header is an integer (a float is truncated, a numeric string parsed)
//! between 1 and 4294967295 ms waits that long and is then routed, with
//! `x-delay` set to minus the delay so that it is not delayed again; any
//! other message (no header, 0, negative, too large, another type) is
//! routed at once. Pure functions, no I/O.

use super::ExchangeKind;
use amq_protocol::types::{AMQPValue, FieldTable};

/// The header that asks for a delay, in ms.
pub const DELAY_HEADER: &str = "x-delay";

/// The exchange argument that names the routing type.
pub const TYPE_ARGUMENT: &str = "x-delayed-type";

/// The longest delay the plugin honours (its timer's limit), in ms.
pub const MAX_DELAY_MS: u64 = 4_294_967_295;

/// The routing type named by `x-delayed-type` in `args`, if it is a string
/// naming a known type other than `x-delayed-message` itself.
pub fn delayed_type(args: &FieldTable) -> Option<ExchangeKind> {
    let t = super::arg_text(args.inner().get(TYPE_ARGUMENT)?)?;
    ExchangeKind::parse(&t).filter(|k| *k != ExchangeKind::DelayedMessage)
}

/// The `x-delay` header's value as the plugin reads it (see the module
/// documentation); None if absent or of a type it ignores.
pub fn header_value(headers: &FieldTable) -> Option<i64> {
    let v = headers.inner().get(DELAY_HEADER)?;
    if let Some(n) = super::arg_integer(v) {
        return Some(n);
    }
    match v {
        AMQPValue::Float(f) => Some(*f as i64),
        AMQPValue::Double(f) => Some(*f as i64),
        AMQPValue::LongString(_) | AMQPValue::ShortString(_) => {
            super::arg_text(v)?.trim().parse().ok()
        }
        _ => None,
    }
}

/// How long a message with `headers` waits, in ms (1 to
/// [`MAX_DELAY_MS`]); None: it is routed at once.
pub fn delay_of(headers: Option<&FieldTable>) -> Option<u64> {
    let n = header_value(headers?)?;
    (1..=MAX_DELAY_MS as i64).contains(&n).then_some(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(v: AMQPValue) -> FieldTable {
        let mut t = FieldTable::default();
        t.insert(DELAY_HEADER.into(), v);
        t
    }

    #[test]
    fn only_delays_the_plugin_honours_delay_a_message() {
        assert_eq!(delay_of(Some(&with(AMQPValue::LongInt(500)))), Some(500));
        assert_eq!(delay_of(Some(&with(AMQPValue::ShortShortUInt(7)))), Some(7));
        assert_eq!(delay_of(Some(&with(AMQPValue::Double(1500.9)))), Some(1500));
        assert_eq!(
            delay_of(Some(&with(AMQPValue::LongString("2500".into())))),
            Some(2500)
        );
        for no in [
            AMQPValue::LongInt(0),
            AMQPValue::LongInt(-5),
            AMQPValue::LongLongInt(MAX_DELAY_MS as i64 + 1),
            AMQPValue::LongString("soon".into()),
            AMQPValue::Boolean(true),
        ] {
            assert_eq!(delay_of(Some(&with(no.clone()))), None, "{no:?}");
        }
        assert_eq!(
            delay_of(Some(&with(AMQPValue::LongLongInt(MAX_DELAY_MS as i64)))),
            Some(MAX_DELAY_MS)
        );
        assert_eq!(delay_of(None), None);
        assert_eq!(delay_of(Some(&FieldTable::default())), None);
    }

    #[test]
    fn the_routing_type_is_a_known_type_other_than_itself() {
        let mut a = FieldTable::default();
        assert_eq!(delayed_type(&a), None);
        a.insert(TYPE_ARGUMENT.into(), AMQPValue::LongString("topic".into()));
        assert_eq!(delayed_type(&a), Some(ExchangeKind::Topic));
        a.insert(
            TYPE_ARGUMENT.into(),
            AMQPValue::LongString("x-delayed-message".into()),
        );
        assert_eq!(delayed_type(&a), None);
    }
}

//! Headers exchange matching (`x-match` = all / any / all-with-x / any-with-x).
//!
//! Values compare the way RabbitMQ compares them: integers by value whatever
//! their AMQP width, strings by bytes whether short or long; a binding
//! argument of type void matches on the header's presence alone.

use amq_protocol::types::{AMQPValue, FieldTable};

fn as_int(v: &AMQPValue) -> Option<i128> {
    Some(match v {
        AMQPValue::ShortShortInt(x) => *x as i128,
        AMQPValue::ShortShortUInt(x) => *x as i128,
        AMQPValue::ShortInt(x) => *x as i128,
        AMQPValue::ShortUInt(x) => *x as i128,
        AMQPValue::LongInt(x) => *x as i128,
        AMQPValue::LongUInt(x) => *x as i128,
        AMQPValue::LongLongInt(x) => *x as i128,
        AMQPValue::Timestamp(x) => *x as i128,
        _ => return None,
    })
}

fn as_bytes(v: &AMQPValue) -> Option<&[u8]> {
    match v {
        AMQPValue::ShortString(s) => Some(s.as_str().as_bytes()),
        AMQPValue::LongString(s) => Some(s.as_bytes()),
        AMQPValue::ByteArray(b) => Some(b.as_slice()),
        _ => None,
    }
}

/// Whether two field values are equal as RabbitMQ compares them: integers
/// (and timestamps) by value whatever their width, short strings, long
/// strings and byte arrays by bytes, anything else structurally. Also used
/// for the argument equivalence of a redeclare (`meta::authority`).
pub fn values_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    if let (Some(x), Some(y)) = (as_int(a), as_int(b)) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (as_bytes(a), as_bytes(b)) {
        return x == y;
    }
    a == b
}

/// Does a message with `headers` match a binding with `args`?
pub fn headers_match(args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let mode = match args.inner().get("x-match") {
        Some(v) => as_bytes(v).unwrap_or(b"all"),
        None => b"all",
    };
    let (any, with_x) = match mode {
        b"any" => (true, false),
        b"any-with-x" => (true, true),
        b"all-with-x" => (false, true),
        _ => (false, false),
    };
    let empty = FieldTable::default();
    let headers = headers.unwrap_or(&empty);
    for (k, want) in args.inner() {
        if k.as_str() == "x-match" || (!with_x && k.as_str().starts_with("x-")) {
            continue;
        }
        let ok = match headers.inner().get(k.as_str()) {
            None => false,
            Some(_) if matches!(want, AMQPValue::Void) => true,
            Some(have) => values_equal(want, have),
        };
        if any && ok {
            return true;
        }
        if !any && !ok {
            return false;
        }
    }
    // all: every considered arg matched (vacuously true); any: none matched.
    !any
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::defs::field_table as table;

    #[test]
    fn all_requires_every_header_and_any_requires_one() {
        let all = table(&[
            ("x-match", AMQPValue::LongString("all".into())),
            ("format", AMQPValue::LongString("pdf".into())),
            ("type", AMQPValue::LongString("report".into())),
        ]);
        let any = table(&[
            ("x-match", AMQPValue::LongString("any".into())),
            ("format", AMQPValue::LongString("pdf".into())),
            ("type", AMQPValue::LongString("report".into())),
        ]);
        let both = table(&[
            ("format", AMQPValue::ShortString("pdf".into())),
            ("type", AMQPValue::LongString("report".into())),
        ]);
        let one = table(&[("format", AMQPValue::LongString("pdf".into()))]);
        assert!(headers_match(&all, Some(&both)));
        assert!(!headers_match(&all, Some(&one)));
        assert!(headers_match(&any, Some(&one)));
        assert!(!headers_match(&any, None));
    }

    #[test]
    fn integers_compare_by_value_across_widths() {
        let args = table(&[("n", AMQPValue::LongInt(5))]);
        let h = table(&[("n", AMQPValue::LongLongInt(5))]);
        assert!(headers_match(&args, Some(&h)));
    }
}

//! Conversions between AMQP field tables and the JSON the RabbitMQ
//! management API uses (plain JSON values, not tagged types).

use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
use serde_json::{Map, Value};

/// An AMQP field value as plain JSON (numbers, strings, arrays, objects;
/// byte arrays and long strings as lossy UTF-8, void as null).
pub fn value_to_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(x) => (*x).into(),
        AMQPValue::ShortShortUInt(x) => (*x).into(),
        AMQPValue::ShortInt(x) => (*x).into(),
        AMQPValue::ShortUInt(x) => (*x).into(),
        AMQPValue::LongInt(x) => (*x).into(),
        AMQPValue::LongUInt(x) => (*x).into(),
        AMQPValue::LongLongInt(x) => (*x).into(),
        AMQPValue::Timestamp(x) => (*x).into(),
        AMQPValue::Float(x) => (*x as f64).into(),
        AMQPValue::Double(x) => (*x).into(),
        AMQPValue::DecimalValue(d) => (d.value as f64 / 10f64.powi(d.scale as i32)).into(),
        AMQPValue::ShortString(s) => s.as_str().into(),
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned().into(),
        AMQPValue::ByteArray(b) => String::from_utf8_lossy(b.as_slice()).into_owned().into(),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value_to_json).collect()),
        AMQPValue::FieldTable(t) => table_to_json(t),
        AMQPValue::Void => Value::Null,
    }
}

/// A field table as a JSON object.
pub fn table_to_json(t: &FieldTable) -> Value {
    let mut m = Map::new();
    for (k, v) in t.inner() {
        m.insert(k.to_string(), value_to_json(v));
    }
    Value::Object(m)
}

/// A JSON value as an AMQP field value: integers as signed 64-bit, other
/// numbers as doubles, strings as long strings, null as void.
pub fn json_to_value(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                AMQPValue::LongLongInt(i)
            } else {
                AMQPValue::Double(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(a) => {
            let mut fa = FieldArray::default();
            for x in a {
                fa.push(json_to_value(x));
            }
            AMQPValue::FieldArray(fa)
        }
        Value::Object(_) => AMQPValue::FieldTable(json_to_table(v)),
    }
}

/// A JSON object as a field table (anything else: an empty table).
pub fn json_to_table(v: &Value) -> FieldTable {
    let mut t = FieldTable::default();
    if let Value::Object(m) = v {
        for (k, v) in m {
            t.insert(k.as_str().into(), json_to_value(v));
        }
    }
    t
}

/// The field table of an optional JSON object of arguments (none: empty).
pub fn args_to_table(args: Option<Map<String, Value>>) -> FieldTable {
    args.map(|m| json_to_table(&Value::Object(m)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip_through_json() {
        let j = serde_json::json!({"x-message-ttl": 60000, "x-queue-type": "classic", "flag": true, "nested": {"a": [1, "b"]}});
        let t = json_to_table(&j);
        assert_eq!(table_to_json(&t), j);
    }
}

//! Request bodies as RabbitMQ's management API reads them, parsed into the
//! typed structs of [`super::requests`].
//!
//! What is accepted is what RabbitMQ 3.10 accepts (recorded from the real
//! broker): a JSON object (an empty body is `{}`); booleans as JSON
//! booleans or the strings `"true"`/`"false"` (rabbitmqadmin 3.x sends
//! strings); numbers where RabbitMQ also takes numeric strings (`count`);
//! unknown keys ignored. Refusals are RabbitMQ's 400s:
//! `{"error":"bad_request","reason":"not_json"}` for a body that is not a
//! JSON object, `["not_boolean", v]` for a bad boolean, the Erlang-printed
//! `[{key_missing,k},...]` for missing required keys. Where RabbitMQ
//! answers a wrong type with a crash report (500), Warren answers 400
//! with a plain description.

use super::http::{Request, Response};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

/// A typed request body: the keys RabbitMQ requires, in the order its
/// `key_missing` reason lists them.
pub trait Body: DeserializeOwned {
    /// Keys that must be present (RabbitMQ's `key_missing` check).
    const REQUIRED: &'static [&'static str] = &[];
}

/// Marker that starts a [`Flag`] error message, so [`parse`] can answer
/// RabbitMQ's `["not_boolean", v]`.
const NOT_BOOLEAN: &str = "not_boolean:";

/// Parse `req`'s body into `T`, or the 400 RabbitMQ would answer.
pub fn parse<T: Body>(req: &Request) -> Result<T, Response> {
    parse_bytes(&req.body)
}

/// [`parse`] on raw bytes (what the fuzz target calls).
pub fn parse_bytes<T: Body>(bytes: &[u8]) -> Result<T, Response> {
    let object = object_bytes(bytes)?;
    let missing: Vec<&str> = T::REQUIRED
        .iter()
        .copied()
        .filter(|k| !object.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(Response::error(400, "bad_request", key_missing(&missing)));
    }
    T::deserialize(Value::Object(object)).map_err(|e| refusal(&e.to_string()))
}

/// The body as a JSON object; an empty body is `{}`.
fn object_bytes(bytes: &[u8]) -> Result<Map<String, Value>, Response> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(Response::error(400, "bad_request", "not_json")),
    }
}

/// RabbitMQ's reason for missing keys, printed as Erlang's `~p` prints the
/// list: on one line when it fits in 80 columns, else one element a line.
fn key_missing(keys: &[&str]) -> String {
    let items: Vec<String> = keys
        .iter()
        .map(|k| format!("{{key_missing,{k}}}"))
        .collect();
    let one_line = format!("[{}]", items.join(","));
    if one_line.len() <= 80 {
        one_line
    } else {
        format!("[{}]", items.join(",\n "))
    }
}

fn refusal(message: &str) -> Response {
    if let Some(value) = message.strip_prefix(NOT_BOOLEAN) {
        let value: Value = serde_json::from_str(value).unwrap_or(Value::Null);
        return Response::json(
            400,
            &json!({"error": "bad_request", "reason": ["not_boolean", value]}),
        );
    }
    Response::error(400, "bad_request", message.to_string())
}

/// A boolean field: JSON `true`/`false` or the strings `"true"`/`"false"`
/// (rabbitmqadmin 3.x); anything else is RabbitMQ's `not_boolean`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(Flag(b)),
            Value::String(s) if s == "true" => Ok(Flag(true)),
            Value::String(s) if s == "false" => Ok(Flag(false)),
            other => Err(D::Error::custom(format!("{NOT_BOOLEAN}{other}"))),
        }
    }
}

/// The value of an optional [`Flag`], `default` when absent or null.
pub fn flag(f: Option<Flag>, default: bool) -> bool {
    f.map_or(default, |f| f.0)
}

/// A text field that RabbitMQ also takes as a number (a routing key of
/// `5` binds with the key `"5"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Text(s)),
            Value::Number(n) => Ok(Text(n.to_string())),
            other => Err(D::Error::custom(format!("expected a string, got {other}"))),
        }
    }
}

/// A non-negative count that RabbitMQ also takes as a numeric string
/// (`"count": "2"` in `POST /api/queues/{vhost}/{name}/get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let n = match &v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        n.map(Count)
            .ok_or_else(|| D::Error::custom(format!("expected a non-negative integer, got {v}")))
    }
}

/// User tags: a comma-separated string (`"administrator,management"`, as
/// rabbitmqadmin and RabbitMQ's exports write them) or a list of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(pub Vec<String>);

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let tags = match Value::deserialize(d)? {
            Value::String(s) => s
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect(),
            Value::Array(a) => a
                .into_iter()
                .map(|t| match t {
                    Value::String(s) => Ok(s),
                    other => Err(D::Error::custom(format!("tag {other} is not a string"))),
                })
                .collect::<Result<_, _>>()?,
            Value::Null => Vec::new(),
            other => Err(D::Error::custom(format!(
                "tags must be a string or a list of strings, got {other}"
            )))?,
        };
        Ok(Tags(tags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct Probe {
        a: Option<Flag>,
        #[serde(default)]
        n: Option<Count>,
    }
    impl Body for Probe {}

    #[derive(Deserialize, Debug)]
    struct Needs {}
    impl Body for Needs {
        const REQUIRED: &'static [&'static str] =
            &["routing_key", "properties", "payload", "payload_encoding"];
    }

    fn reason(r: Response) -> Value {
        serde_json::from_slice::<Value>(&r.body).unwrap()["reason"].clone()
    }

    #[test]
    fn booleans_accept_strings_like_rabbitmq() {
        let p: Probe = parse_bytes(br#"{"a": "false"}"#).unwrap();
        assert_eq!(p.a, Some(Flag(false)));
        let p: Probe = parse_bytes(br#"{"a": true}"#).unwrap();
        assert!(flag(p.a, false));
        let p: Probe = parse_bytes(b"").unwrap();
        assert!(flag(p.a, true));
        let r = parse_bytes::<Probe>(br#"{"a": 1}"#).unwrap_err();
        assert_eq!((r.status, reason(r)), (400, json!(["not_boolean", 1])));
        let r = parse_bytes::<Probe>(br#"{"a": "maybe"}"#).unwrap_err();
        assert_eq!(reason(r), json!(["not_boolean", "maybe"]));
    }

    #[test]
    fn a_body_that_is_not_a_json_object_is_not_json() {
        for body in [&b"xx"[..], b"[1]", b"5", b"{"] {
            let r = parse_bytes::<Probe>(body).unwrap_err();
            assert_eq!((r.status, reason(r)), (400, json!("not_json")));
        }
    }

    #[test]
    fn missing_keys_are_listed_as_rabbitmq_prints_them() {
        // Recorded from RabbitMQ 3.10 (POST .../publish with `{}`).
        let r = parse_bytes::<Needs>(b"{}").unwrap_err();
        assert_eq!(
            reason(r),
            json!("[{key_missing,routing_key},\n {key_missing,properties},\n {key_missing,payload},\n {key_missing,payload_encoding}]")
        );
        let r = parse_bytes::<Needs>(br#"{"routing_key": "q", "payload": "x"}"#).unwrap_err();
        assert_eq!(
            reason(r),
            json!("[{key_missing,properties},{key_missing,payload_encoding}]")
        );
    }

    #[test]
    fn counts_take_numeric_strings() {
        let p: Probe = parse_bytes(br#"{"n": "2"}"#).unwrap();
        assert_eq!(p.n, Some(Count(2)));
        assert!(parse_bytes::<Probe>(br#"{"n": -1}"#).is_err());
    }
}

//! Request bodies as RabbitMQ's management API reads them: JSON objects;
//! booleans as JSON booleans or the strings "true"/"false" (rabbitmqadmin
//! 3.x sends strings). Anything else is refused with RabbitMQ's 400s,
//! recorded from the real broker: `{"error":"bad_request","reason":"not_json"}`
//! and `{"error":"bad_request","reason":["not_boolean", <value>]}`.

use super::http::{Request, Response};
use serde_json::{json, Map, Value};

/// The body as a JSON object; an empty body is `{}`.
pub fn object(req: &Request) -> Result<Value, Response> {
    if req.body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(Response::error(400, "bad_request", "not_json")),
    }
}

/// A boolean field: missing or null is `default`.
pub fn boolean(b: &Value, key: &str, default: bool) -> Result<bool, Response> {
    match &b[key] {
        Value::Null => Ok(default),
        Value::Bool(v) => Ok(*v),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        other => Err(Response::json(
            400,
            &json!({"error": "bad_request", "reason": ["not_boolean", other]}),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_accept_strings_like_rabbitmq() {
        let b = json!({"a": "false", "b": true, "c": "maybe", "d": 1});
        assert!(!boolean(&b, "a", true).unwrap());
        assert!(boolean(&b, "b", false).unwrap());
        assert!(boolean(&b, "missing", true).unwrap());
        assert_eq!(boolean(&b, "c", true).unwrap_err().status, 400);
        assert_eq!(boolean(&b, "d", true).unwrap_err().status, 400);
    }
}

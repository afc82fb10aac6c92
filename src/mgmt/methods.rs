//! The methods each API route takes, as RabbitMQ's management plugin
//! lists them in `Allow` (recorded from RabbitMQ 3.10: `OPTIONS` answers
//! 200 with `Allow`, another method the route does not take 405 with
//! `Allow`, both without credentials). `HEAD` goes wherever `GET` does.
//! Keep in step with the resource files' routes.

const GET: &str = "HEAD, GET, OPTIONS";
const GET_PUT_DELETE: &str = "HEAD, GET, PUT, DELETE, OPTIONS";
const GET_DELETE: &str = "HEAD, GET, DELETE, OPTIONS";
const GET_POST: &str = "HEAD, GET, POST, OPTIONS";
const POST: &str = "POST, OPTIONS";
const DELETE: &str = "DELETE, OPTIONS";
const PUT_DELETE: &str = "PUT, DELETE, OPTIONS";

/// The `Allow` value for the route `s` (path segments after `api`,
/// decoded), or None when no route has that shape (404 follows).
pub fn allowed(s: &[&str]) -> Option<&'static str> {
    Some(match s {
        ["overview"] | ["nodes"] | ["nodes", _] | ["whoami"] => GET,
        ["connections"] | ["channels"] | ["consumers"] | ["consumers", _] => GET,
        ["connections", _] => GET_DELETE,
        ["channels", _] => GET,
        ["connections", _, "channels"] | ["vhosts", _, "connections" | "channels"] => GET,
        ["nodes", _, "memory"] | ["users", "without-permissions"] => GET,
        ["feature-flags"] | ["global-parameters"] => GET,
        ["global-parameters", _] => GET_PUT_DELETE,
        ["parameters"] | ["parameters", _] | ["parameters", _, _] => GET,
        ["parameters", _, _, _] => GET_PUT_DELETE,
        ["exchanges"] | ["exchanges", _] | ["exchanges", _, _, "bindings", _] => GET,
        ["exchanges", _, _] | ["queues", _, _] => GET_PUT_DELETE,
        ["exchanges", _, _, "publish"] | ["queues", _, _, "get"] => POST,
        ["queues"] | ["queues", _] | ["queues", _, _, "bindings"] => GET,
        ["queues", _, _, "contents"] => DELETE,
        ["bindings"] | ["bindings", _] => GET,
        ["bindings", _, "e", _, "q" | "e", _] => GET_POST,
        ["bindings", _, "e", _, "q" | "e", _, _] => GET_DELETE,
        ["definitions"] | ["definitions", _] => GET_POST,
        ["vhosts"] | ["users"] | ["permissions"] => GET,
        ["vhosts", _] | ["users", _] | ["permissions", _, _] => GET_PUT_DELETE,
        ["vhosts", _, "permissions"] | ["users", _, "permissions"] => GET,
        ["topic-permissions"] => GET,
        ["vhosts", _, "topic-permissions"] | ["users", _, "topic-permissions"] => GET,
        ["topic-permissions", _, _] | ["topic-permissions", _, _, _] => GET_PUT_DELETE,
        ["vhost-limits"] | ["vhost-limits", _] | ["user-limits"] | ["user-limits", _] => GET,
        ["vhost-limits", _, _] | ["user-limits", _, _] => PUT_DELETE,
        ["policies" | "operator-policies"] | ["policies" | "operator-policies", _] => GET,
        ["policies" | "operator-policies", _, _] => GET_PUT_DELETE,
        ["health", "checks", ..] | ["healthchecks", "node"] | ["aliveness-test", _] => GET,
        _ => return None,
    })
}

/// Does `allow` (an [`allowed`] value) include `method`?
pub fn permits(allow: &str, method: &str) -> bool {
    allow.split(", ").any(|m| m == method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_values_are_rabbitmqs() {
        // Recorded from RabbitMQ 3.10.
        assert_eq!(allowed(&["queues"]), Some("HEAD, GET, OPTIONS"));
        assert_eq!(
            allowed(&["queues", "/", "q"]),
            Some("HEAD, GET, PUT, DELETE, OPTIONS")
        );
        assert_eq!(
            allowed(&["bindings", "/", "e", "x", "q", "y"]),
            Some("HEAD, GET, POST, OPTIONS")
        );
        assert_eq!(
            allowed(&["bindings", "/", "e", "x", "q", "y", "~"]),
            Some("HEAD, GET, DELETE, OPTIONS")
        );
        assert_eq!(allowed(&["definitions"]), Some("HEAD, GET, POST, OPTIONS"));
        assert_eq!(
            allowed(&["exchanges", "/", "x", "publish"]),
            Some("POST, OPTIONS")
        );
        assert_eq!(
            allowed(&["queues", "/", "q", "contents"]),
            Some("DELETE, OPTIONS")
        );
        assert_eq!(
            allowed(&["connections", "c"]),
            Some("HEAD, GET, DELETE, OPTIONS")
        );
        assert_eq!(
            allowed(&["vhost-limits", "/", "max-queues"]),
            Some("PUT, DELETE, OPTIONS")
        );
        assert_eq!(allowed(&["nosuch"]), None);
        assert!(permits("HEAD, GET, OPTIONS", "HEAD"));
        assert!(!permits("HEAD, GET, OPTIONS", "PATCH"));
    }
}

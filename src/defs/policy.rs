//! Policies and operator policies (RabbitMQ's `set_policy` /
//! `set_operator_policy`): a pattern over queue and exchange names in one
//! vhost and a definition of settings that apply to the matching objects,
//! now and later, without redeclaring them.
//!
//! Owns: the policy definition ([`PolicyDef`]), the validation of its
//! settings with RabbitMQ 3.10's texts, the choice of the policy that
//! applies to an object (highest priority among those whose pattern
//! matches; ties by name), the merge of a policy with an operator policy
//! (RabbitMQ: for an operator policy's numeric settings the lower value
//! wins) and the effective queue arguments (RabbitMQ's precedence: for
//! `message-ttl`, `expires`, `max-length`, `max-length-bytes` and
//! `delivery-limit` the lower of argument and policy wins, for the others
//! the queue's own argument wins). Pure functions: no I/O.
//!
//! Settings Warren honours: queues `message-ttl`, `expires`,
//! `max-length`, `max-length-bytes`, `overflow`, `dead-letter-exchange`,
//! `dead-letter-routing-key`, `delivery-limit`; exchanges
//! `alternate-exchange`; `queue-master-locator: client-local` places a new
//! queue on its declaring connection's shard. Accepted with no effect on
//! one node, as on a single RabbitMQ node: `queue-mode`, `queue-version`,
//! the `ha-*` mirroring settings, the leader locator and quorum memory
//! hints. Refused (never
//! stored and ignored): federation and stream settings, and
//! `dead-letter-strategy: at-least-once`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a policy applies to (`apply-to`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyTo {
    /// Queues only.
    Queues,
    /// Exchanges only.
    Exchanges,
    /// Both (the default).
    All,
}

impl ApplyTo {
    /// As the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::All => "all",
        }
    }
}

/// One policy or operator policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyDef {
    /// Its vhost.
    pub vhost: String,
    /// Its name (unique per vhost and kind).
    pub name: String,
    /// A regular expression searched in object names (unanchored).
    pub pattern: String,
    /// Queues, exchanges or both.
    pub apply_to: ApplyTo,
    /// Higher wins when several match (a JSON number; RabbitMQ accepts
    /// fractions).
    pub priority: f64,
    /// The settings, by RabbitMQ's key names (JSON values as given).
    pub definition: Map<String, Value>,
    /// An operator policy (administrators only; limits users' policies).
    pub operator: bool,
}

impl PolicyDef {
    /// As `/api/policies` lists it.
    pub fn to_json(&self) -> Value {
        let priority = if self.priority.fract() == 0.0 && self.priority.abs() < 9.0e15 {
            Value::from(self.priority as i64)
        } else {
            Value::from(self.priority)
        };
        serde_json::json!({"vhost": self.vhost, "name": self.name, "pattern": self.pattern,
            "apply-to": self.apply_to.as_str(), "definition": self.definition, "priority": priority})
    }
}

/// Settings a policy may have, honoured or accepted with no effect on one
/// node (RabbitMQ 3.10's list minus federation and streams).
const POLICY_KEYS: &[&str] = &[
    "message-ttl",
    "expires",
    "max-length",
    "max-length-bytes",
    "overflow",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "dead-letter-strategy",
    "delivery-limit",
    "alternate-exchange",
    "queue-mode",
    "queue-version",
    "queue-master-locator",
    "queue-leader-locator",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "ha-mode",
    "ha-params",
    "ha-sync-mode",
    "ha-sync-batch-size",
    "ha-promote-on-shutdown",
    "ha-promote-on-failure",
];

/// RabbitMQ 3.10's operator policy settings.
const OPERATOR_KEYS: &[&str] = &[
    "expires",
    "message-ttl",
    "max-length",
    "max-length-bytes",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "delivery-limit",
];

/// Settings RabbitMQ knows that Warren does not implement: refused with a
/// clear reason rather than stored and ignored.
const UNSUPPORTED_KEYS: &[&str] = &[
    "federation-upstream",
    "federation-upstream-set",
    "max-age",
    "stream-max-segment-size-bytes",
    "initial-cluster-size",
];

/// Numeric settings where the lower of two sources wins.
const MIN_KEYS: &[&str] = &[
    "message-ttl",
    "expires",
    "max-length",
    "max-length-bytes",
    "delivery-limit",
];

/// A JSON value as RabbitMQ prints the Erlang term in its texts
/// (`<<"abc">>` for a string).
fn term(v: &Value) -> String {
    match v {
        Value::String(s) => format!("<<\"{s}\">>"),
        Value::Array(a) => format!("[{}]", a.iter().map(term).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// The queue master locators RabbitMQ 3.10 accepts (the
/// `queue-master-locator` policy key and the `x-queue-master-locator` queue
/// argument). `client-local` places a new queue on its declaring
/// connection's shard (`meta::queue_args::client_local`); the others leave
/// it placed by name.
pub const LOCATORS: &[&str] = &["client-local", "min-masters", "random"];

fn non_neg_int(v: &Value) -> bool {
    v.as_u64().is_some()
}

/// Check a policy's definition. Err is RabbitMQ's reason after
/// `Validation failed\n\n` (without the final newline), with Erlang terms
/// as RabbitMQ prints them; `operator` limits the keys to an operator
/// policy's.
pub fn validate_definition(def: &Map<String, Value>, operator: bool) -> Result<(), String> {
    if def.is_empty() {
        return Err("no policy provided".into());
    }
    let allowed = if operator { OPERATOR_KEYS } else { POLICY_KEYS };
    let unknown: Vec<String> = def
        .iter()
        .filter(|(k, _)| !allowed.contains(&k.as_str()) && !UNSUPPORTED_KEYS.contains(&k.as_str()))
        .map(|(k, v)| format!("{{<<\"{k}\">>,{}}}", term(v)))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "[{}] are not recognised policy settings",
            unknown.join(",")
        ));
    }
    for (k, v) in def {
        let bad = |what: &str| Err(format!("{} is not a valid {what}", term(v)));
        match k.as_str() {
            k if UNSUPPORTED_KEYS.contains(&k) => {
                return Err(format!(
                    "policy setting '{k}' is not supported by Warren (no federation or streams)"
                ))
            }
            "message-ttl" if !non_neg_int(v) => return bad("message TTL"),
            "expires" if v.as_u64().is_none_or(|n| n == 0) => return bad("queue expiry"),
            "max-length" if !non_neg_int(v) => return bad("maximum length"),
            "max-length-bytes" if !non_neg_int(v) => return bad("maximum length in bytes"),
            "delivery-limit" if !non_neg_int(v) => return bad("delivery limit"),
            "overflow"
                if !matches!(v.as_str(), Some("drop-head" | "reject-publish" | "reject-publish-dlx")) =>
            {
                return bad("overflow value")
            }
            // RabbitMQ 3.10's text (asked of 3.10.8 over its HTTP API).
            "queue-master-locator" if !v.as_str().is_some_and(|l| LOCATORS.contains(&l)) => {
                return Err(format!("{} invalid queue-master-locator value", term(v)))
            }
            "dead-letter-exchange" if !v.is_string() => return bad("dead letter exchange name"),
            "dead-letter-routing-key" if !v.is_string() => return bad("dead letter routing key"),
            "alternate-exchange" if !v.is_string() => return bad("alternate exchange name"),
            "dead-letter-strategy" => match v.as_str() {
                Some("at-most-once") => {}
                Some("at-least-once") => {
                    return Err(
                        "dead-letter-strategy at-least-once is not supported by Warren (persistent dead letters survive a crash, but unroutable ones are dropped, not retried)"
                            .into(),
                    )
                }
                _ => return bad("dead letter strategy"),
            },
            _ => {}
        }
    }
    Ok(())
}

/// Check a whole policy: its pattern compiles (RabbitMQ's text for one
/// that does not) and its definition is valid ([`validate_definition`]).
/// Err is the reason after `Validation failed\n\n`.
pub fn check(p: &PolicyDef) -> Result<(), String> {
    if let Err(e) = regex::Regex::new(&p.pattern) {
        return Err(format!(
            "pattern should be regular expression but is invalid: {}",
            e.to_string().lines().last().unwrap_or("invalid")
        ));
    }
    validate_definition(&p.definition, p.operator)
}

/// Whether `p` applies to an object named `name` (`queue`: a queue, else
/// an exchange), given its compiled pattern.
pub fn applies(p: &PolicyDef, re: &regex::Regex, name: &str, queue: bool) -> bool {
    let kind_ok = match p.apply_to {
        ApplyTo::All => true,
        ApplyTo::Queues => queue,
        ApplyTo::Exchanges => !queue,
    };
    kind_ok && re.is_match(name)
}

/// The better of two matching policies: higher priority, then the name
/// that sorts first.
pub fn better<'a>(a: &'a PolicyDef, b: &'a PolicyDef) -> &'a PolicyDef {
    if b.priority > a.priority || (b.priority == a.priority && b.name < a.name) {
        b
    } else {
        a
    }
}

/// The effective policy definition of an object with `policy` and
/// `operator` (either may be absent): the policy's settings, with an
/// operator policy's numeric settings winning where lower or absent from
/// the policy (RabbitMQ's merge).
pub fn merge(policy: Option<&PolicyDef>, operator: Option<&PolicyDef>) -> Map<String, Value> {
    let mut out = policy.map(|p| p.definition.clone()).unwrap_or_default();
    if let Some(op) = operator {
        for (k, v) in &op.definition {
            let keep_policy = match (out.get(k).and_then(Value::as_f64), v.as_f64()) {
                (Some(mine), Some(theirs)) => mine <= theirs,
                _ => false,
            };
            if !keep_policy {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// A queue's effective arguments: its own `args` combined with the
/// effective policy definition `def` (see the module documentation for
/// the precedence). Settings with no queue argument are ignored here.
pub fn effective_args(
    args: &amq_protocol::types::FieldTable,
    def: &Map<String, Value>,
) -> amq_protocol::types::FieldTable {
    use amq_protocol::types::AMQPValue;
    let mut out = args.clone();
    for (k, v) in def {
        let arg = format!("x-{k}");
        let value = match v {
            Value::String(s) => AMQPValue::LongString(s.as_str().into()),
            Value::Number(n) => match n.as_i64() {
                Some(i) => AMQPValue::LongLongInt(i),
                None => continue,
            },
            _ => continue,
        };
        let current = args.inner().get(arg.as_str());
        let take = match current {
            None => true,
            Some(cur) if MIN_KEYS.contains(&k.as_str()) => {
                match (crate::defs::arg_integer(cur), v.as_i64()) {
                    (Some(a), Some(p)) => p < a,
                    _ => false,
                }
            }
            Some(_) => false,
        };
        if take
            && matches!(
                k.as_str(),
                "message-ttl"
                    | "expires"
                    | "max-length"
                    | "max-length-bytes"
                    | "overflow"
                    | "dead-letter-exchange"
                    | "dead-letter-routing-key"
                    | "delivery-limit"
            )
        {
            out.insert(arg.into(), value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{AMQPValue, FieldTable};
    use serde_json::json;

    fn def(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn policy(name: &str, priority: f64, d: Value, operator: bool) -> PolicyDef {
        PolicyDef {
            vhost: "/".into(),
            name: name.into(),
            pattern: ".*".into(),
            apply_to: ApplyTo::All,
            priority,
            definition: def(d),
            operator,
        }
    }

    #[test]
    fn invalid_definitions_get_rabbitmqs_texts() {
        let e = |d: Value, op| validate_definition(&def(d), op).unwrap_err();
        assert_eq!(e(json!({}), false), "no policy provided");
        assert_eq!(
            e(json!({"foo": 1, "bar": "x"}), false),
            "[{<<\"bar\">>,<<\"x\">>},{<<\"foo\">>,1}] are not recognised policy settings"
        );
        assert_eq!(
            e(json!({"message-ttl": "abc"}), false),
            "<<\"abc\">> is not a valid message TTL"
        );
        assert_eq!(
            e(json!({"expires": 0}), false),
            "0 is not a valid queue expiry"
        );
        assert_eq!(
            e(json!({"max-length": [1]}), false),
            "[1] is not a valid maximum length"
        );
        assert_eq!(
            e(json!({"message-ttl": true}), false),
            "true is not a valid message TTL"
        );
        assert_eq!(
            e(json!({"dead-letter-exchange": "x"}), true),
            "[{<<\"dead-letter-exchange\">>,<<\"x\">>}] are not recognised policy settings"
        );
        assert!(
            validate_definition(&def(json!({"ha-mode": "all", "queue-mode": "lazy"})), false)
                .is_ok()
        );
        assert!(
            e(json!({"federation-upstream-set": "all"}), false).contains("not supported by Warren")
        );
    }

    #[test]
    fn the_operator_policy_wins_where_lower_and_the_policy_elsewhere() {
        let p = policy(
            "p",
            0.0,
            json!({"message-ttl": 100, "max-length": 5, "dead-letter-exchange": "d"}),
            false,
        );
        let o = policy(
            "o",
            0.0,
            json!({"message-ttl": 50, "max-length": 10, "expires": 1000}),
            true,
        );
        assert_eq!(
            Value::Object(merge(Some(&p), Some(&o))),
            json!({"message-ttl": 50, "max-length": 5, "dead-letter-exchange": "d", "expires": 1000})
        );
    }

    #[test]
    fn queue_arguments_win_except_where_the_policy_is_lower() {
        let mut args = FieldTable::default();
        args.insert("x-message-ttl".into(), AMQPValue::LongInt(200));
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("mine".into()),
        );
        args.insert("x-max-length".into(), AMQPValue::LongInt(3));
        let eff = effective_args(
            &args,
            &def(
                json!({"message-ttl": 50, "dead-letter-exchange": "theirs", "max-length": 10, "overflow": "reject-publish", "ha-mode": "all"}),
            ),
        );
        let g = |k: &str| eff.inner().get(k).cloned();
        assert_eq!(g("x-message-ttl"), Some(AMQPValue::LongLongInt(50)));
        assert_eq!(
            g("x-dead-letter-exchange"),
            Some(AMQPValue::LongString("mine".into()))
        );
        assert_eq!(g("x-max-length"), Some(AMQPValue::LongInt(3)));
        assert_eq!(
            g("x-overflow"),
            Some(AMQPValue::LongString("reject-publish".into()))
        );
        assert_eq!(g("x-ha-mode"), None);
    }

    #[test]
    fn higher_priority_then_name_picks_the_policy() {
        let a = policy("a", 1.0, json!({"message-ttl": 1}), false);
        let b = policy("b", 2.0, json!({"message-ttl": 1}), false);
        let c = policy("c", 2.0, json!({"message-ttl": 1}), false);
        assert_eq!(better(&a, &b).name, "b");
        assert_eq!(better(&c, &b).name, "b");
    }
}

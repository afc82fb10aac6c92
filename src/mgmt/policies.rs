//! `/api/policies` and `/api/operator-policies`: RabbitMQ's policies and
//! operator policies (rules in `defs::policy`). Listing needs a login
//! (objects of vhosts the user may see); setting a policy needs the
//! `policymaker` tag and access to its vhost, an operator policy the
//! `administrator` tag (the gate decides).
//!
//! Shapes, statuses and texts are RabbitMQ 3.10's, recorded from the real
//! broker: `PUT` answers 201 (new) or 204 (replaced), `DELETE` 204 or 404,
//! a missing vhost 404 `vhost_not_found`, an invalid body 400 `Validation
//! failed\n\n<reason>\n` (for policies RabbitMQ HTML-escapes `<` and `>`
//! in the reason; for operator policies it does not).

use super::api::{created_or_updated, done, meta, visible};
use super::http::{Request, Response};
use super::listing::list;
use super::requests::PolicyBody;
use super::Mgmt;
use crate::defs::policy::{check, ApplyTo, PolicyDef};
use crate::defs::users::UserDef;
use crate::meta::MetaOp;
use serde_json::Value;

fn invalid(reason: &str, operator: bool) -> Response {
    let reason = if operator {
        reason.to_string()
    } else {
        reason.replace('<', "&lt;").replace('>', "&gt;")
    };
    Response::error(
        400,
        "bad_request",
        format!("Validation failed\n\n{reason}\n"),
    )
}

/// The policy a PUT body describes, or RabbitMQ's 400.
fn policy(req: &Request, vhost: &str, name: &str, operator: bool) -> Result<PolicyDef, Response> {
    from_body(super::body::parse(req)?, vhost, name, operator)
}

/// The policy `name` in `vhost` that `b` describes (a PUT body or a
/// definitions file's entry), checked, or RabbitMQ's 400.
pub fn from_body(
    b: PolicyBody,
    vhost: &str,
    name: &str,
    operator: bool,
) -> Result<PolicyDef, Response> {
    let Value::String(pattern) = b.pattern else {
        return Err(invalid(
            &format!("pattern should be a binary but was {}", b.pattern),
            operator,
        ));
    };
    let apply_to = match b.apply_to.as_ref().map(|v| v.as_str()) {
        None | Some(Some("all")) => ApplyTo::All,
        Some(Some("queues")) => ApplyTo::Queues,
        Some(Some("exchanges")) => ApplyTo::Exchanges,
        Some(other) => {
            let shown = other.map_or_else(
                || b.apply_to.clone().unwrap_or_default().to_string(),
                str::to_string,
            );
            return Err(invalid(
                &format!(
                    "apply-to '{shown}' unrecognised; should be 'queues', 'exchanges' or 'all'"
                ),
                operator,
            ));
        }
    };
    let priority = match &b.priority {
        None | Some(Value::Null) => 0.0,
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(other) => {
            let shown = match other {
                Value::String(s) => format!("<<\"{s}\">>"),
                v => v.to_string(),
            };
            return Err(invalid(
                &format!("priority should be a number, actually was {shown}"),
                operator,
            ));
        }
    };
    let Value::Object(definition) = b.definition else {
        return Err(invalid("definition should be a JSON object", operator));
    };
    let p = PolicyDef {
        vhost: vhost.to_string(),
        name: name.to_string(),
        pattern,
        apply_to,
        priority,
        definition,
        operator,
    };
    check(&p).map_err(|r| invalid(&r, operator))?;
    Ok(p)
}

fn listing(
    m: &Mgmt,
    req: &Request,
    user: &UserDef,
    operator: bool,
    vhost: Option<&str>,
) -> Response {
    let mut items: Vec<PolicyDef> =
        m.cx.table()
            .policies
            .all()
            .filter(|p| p.operator == operator && vhost.is_none_or(|v| v == p.vhost))
            .cloned()
            .collect();
    items.retain(|p| visible(m, user, &p.vhost));
    items.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    list(req, items.iter().map(PolicyDef::to_json).collect())
}

/// Routes under `policies` and `operator-policies`; None for other paths.
pub async fn route(
    m: &Mgmt,
    req: &Request,
    user: &UserDef,
    meth: &str,
    s: &[&str],
) -> Option<Response> {
    let operator = match s.first() {
        Some(&"policies") => false,
        Some(&"operator-policies") => true,
        _ => return None,
    };
    let vhost_missing = |v: &str| !m.cx.table().vhosts.contains(v);
    Some(match (meth, &s[1..]) {
        ("GET", []) => listing(m, req, user, operator, None),
        ("GET", [v]) => {
            if vhost_missing(v) {
                return Some(Response::not_found());
            }
            listing(m, req, user, operator, Some(v))
        }
        ("GET", [v, n]) => match m.cx.table().policies.get(v, n, operator) {
            Some(p) => Response::json(200, &p.to_json()),
            None => Response::not_found(),
        },
        ("PUT", [v, n]) => {
            let p = match policy(req, v, n, operator) {
                Ok(p) => p,
                Err(r) => return Some(r),
            };
            if vhost_missing(v) {
                return Some(Response::error(404, "not_found", "vhost_not_found"));
            }
            let existed = m.cx.table().policies.get(v, n, operator).is_some();
            done(
                meta(m, MetaOp::PolicySet(p)).await,
                created_or_updated(existed),
            )
        }
        ("DELETE", [v, n]) => {
            let op = MetaOp::PolicyClear {
                vhost: v.to_string(),
                name: n.to_string(),
                operator,
            };
            match meta(m, op).await {
                Ok(_) => Response::no_content(),
                Err(_) => Response::not_found(),
            }
        }
        _ => Response::not_found(),
    })
}

//! `/api/parameters`, `/api/global-parameters` and `/api/feature-flags`,
//! answered with what is true of Warren: its only runtime parameters are
//! vhost limits (component `vhost-limits`, set through `/api/vhost-limits`
//! or as one parameter `limits` holding them all, as rabbitmqadmin does);
//! a parameter of any other component (federation, shovel, ...) is refused
//! with 400, never stored and ignored. Its one global parameter is the
//! cluster name (the node's name). Feature flags are RabbitMQ's cluster
//! upgrade switches; Warren lists the ones whose feature it has as
//! `enabled` (`quorum_queue`: single-node quorum queues) and
//! `stream_queue` as `unavailable` (tools that require it, NServiceBus's
//! `stream_queue` check for one, learn the truth at start-up).

use super::http::{Request, Response};
use super::listing::list;
use super::requests::LimitBody;
use super::Mgmt;
use serde_json::{json, Value};
use std::rc::Rc;

/// Feature flags as `/api/feature-flags` lists them: (name, state, desc).
const FEATURE_FLAGS: &[(&str, &str, &str)] = &[
    (
        "implicit_default_bindings",
        "enabled",
        "Default bindings are implicit",
    ),
    (
        "user_limits",
        "enabled",
        "Per-user connection and channel limits",
    ),
    (
        "virtual_host_metadata",
        "enabled",
        "Virtual host metadata (description, tags)",
    ),
    (
        "quorum_queue",
        "enabled",
        "Quorum queues (one replica: this node)",
    ),
    ("stream_queue", "unavailable", "Streams (not in Warren)"),
];

/// Every runtime parameter as RabbitMQ lists them: each vhost's limits
/// (component `vhost-limits`, name `limits`) and each operator policy
/// (component `operator_policy`, its settings as the value), sorted.
pub(super) fn runtime_parameters(t: &crate::routing::RoutingTable) -> Vec<Value> {
    let limits = t.vhost_limits.iter().map(
        |(v, l)| json!({"vhost": v, "component": "vhost-limits", "name": "limits", "value": l}),
    );
    let operator = t.policies.all().filter(|p| p.operator).map(|p| {
        let mut value = p.to_json();
        if let Some(o) = value.as_object_mut() {
            o.remove("vhost");
            o.remove("name");
        }
        json!({"vhost": p.vhost, "component": "operator_policy", "name": p.name, "value": value})
    });
    let mut out: Vec<Value> = limits.chain(operator).collect();
    out.sort_by_key(|p| p.to_string());
    out
}

/// Routes under this resource (`s`: the path segments after `api`,
/// decoded); 404 for any other.
pub async fn route(m: &Rc<Mgmt>, req: &Request, meth: &str, s: &[&str]) -> Response {
    match (meth, s) {
        ("GET", ["feature-flags"]) => {
            let flags = FEATURE_FLAGS.iter().map(|(name, state, desc)| {
                json!({"name": name, "state": state, "desc": desc, "stability": "stable",
                    "provided_by": "warren", "doc_url": ""})
            });
            Response::json(200, &Value::Array(flags.collect()))
        }
        // The cluster name `/api/overview` and `rabbitmq_identity_info`
        // report (Warren is a one-node cluster named "warren").
        ("GET", ["global-parameters"]) => list(
            req,
            vec![json!({"name": "cluster_name", "value": "warren"})],
        ),
        ("GET", ["global-parameters", "cluster_name"]) => {
            Response::json(200, &json!({"name": "cluster_name", "value": "warren"}))
        }
        // Never stored and ignored: Warren's one global parameter is its
        // cluster name, and it is fixed.
        ("PUT" | "DELETE", ["global-parameters", name]) => Response::error(
            400,
            "bad_request",
            format!("global parameter '{name}' cannot be set on Warren (its only one, cluster_name, is fixed)"),
        ),
        ("GET", ["parameters"]) => list(req, runtime_parameters(&m.cx.table())),
        ("GET", ["parameters", component]) | ("GET", ["parameters", component, _]) => {
            let vhost = s.get(2).copied();
            let items = runtime_parameters(&m.cx.table())
                .into_iter()
                .filter(|p| p["component"] == *component)
                .filter(|p| vhost.is_none_or(|v| p["vhost"] == v))
                .collect();
            list(req, items)
        }
        ("GET", ["parameters", component, v, name]) => runtime_parameters(&m.cx.table())
            .into_iter()
            .find(|p| p["component"] == *component && p["vhost"] == *v && p["name"] == *name)
            .map(|p| Response::json(200, &p))
            .unwrap_or_else(Response::not_found),
        // `rabbitmqadmin declare parameter component=vhost-limits
        // name=limits value='{...}'`: the vhost's whole set of limits.
        ("PUT", ["parameters", "vhost-limits", v, "limits"]) => {
            let b: LimitBody = match super::body::parse(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let Some(wanted) = b.value.as_object() else {
                return Response::error(400, "bad_request", "value must be a JSON object of limits");
            };
            let existed = m.cx.table().vhost_limits.contains_key(*v);
            match super::limits::replace_vhost_limits(m, v, wanted).await {
                Ok(()) if existed => Response::no_content(),
                Ok(()) => Response::json(201, &json!({})),
                Err(r) => r,
            }
        }
        ("DELETE", ["parameters", "vhost-limits", v, "limits"]) => {
            if !m.cx.table().vhost_limits.contains_key(*v) {
                return Response::not_found();
            }
            match super::limits::replace_vhost_limits(m, v, &Default::default()).await {
                Ok(()) => Response::no_content(),
                Err(r) => r,
            }
        }
        ("PUT", ["parameters", component, _, _]) => Response::error(
            400,
            "bad_request",
            format!(
                "runtime parameters of component '{component}' are not supported (vhost limits: PUT /api/vhost-limits/{{vhost}}/{{name}})"
            ),
        ),
        _ => Response::not_found(),
    }
}

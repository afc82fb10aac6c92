//! `set_policy`, `clear_policy`, `list_policies` and their operator
//! variants, with rabbitmqctl's argument order: `set_policy [--priority N]
//! [--apply-to queues|exchanges|all] NAME PATTERN DEFINITION` in the
//! `--vhost`. Each turns into `/api/policies` (`/api/operator-policies`)
//! calls; the broker validates the definition (RabbitMQ's texts).

use super::Ctx;
use crate::client::{exit, seg, Failure, Result};
use crate::PolicyArgs;
use serde_json::{json, Value};

fn resource(operator: bool) -> &'static str {
    if operator {
        "operator-policies"
    } else {
        "policies"
    }
}

/// Set (add or replace) a policy in the context's vhost.
pub fn set(ctx: &Ctx, operator: bool, p: &PolicyArgs) -> Result<()> {
    let (name, pattern, definition, priority, apply_to) =
        (&p.name, &p.pattern, &p.definition, p.priority, &p.apply_to);
    let def: Value = serde_json::from_str(definition)
        .map_err(|e| Failure::new(exit::USAGE, format!("invalid policy definition: {e}")))?;
    ctx.say(format!(
        "Setting policy \"{name}\" for pattern \"{pattern}\" to \"{definition}\" with priority \"{priority}\" for vhost \"{}\" ...",
        ctx.vhost
    ));
    let body =
        json!({"pattern": pattern, "definition": def, "priority": priority, "apply-to": apply_to});
    ctx.client.put(
        &format!("{}/{}/{}", resource(operator), ctx.vh(), seg(name)),
        &body,
    )?;
    Ok(())
}

/// Remove a policy from the context's vhost.
pub fn clear(ctx: &Ctx, operator: bool, name: &str) -> Result<()> {
    ctx.say(format!(
        "Clearing policy \"{name}\" on vhost \"{}\" ...",
        ctx.vhost
    ));
    let path = format!("{}/{}/{}", resource(operator), ctx.vh(), seg(name));
    ctx.on(ctx.client.delete(&path), || format!("policy '{name}'"))?;
    Ok(())
}

/// The context vhost's policies.
pub fn list(ctx: &Ctx, operator: bool) -> Result<()> {
    let path = format!("{}/{}", resource(operator), ctx.vh());
    let vhost = &ctx.vhost;
    ctx.on(
        ctx.list(
            &path,
            &[],
            &[
                "vhost",
                "name",
                "pattern",
                "apply-to",
                "definition",
                "priority",
            ],
        ),
        || format!("vhost '{vhost}'"),
    )
}

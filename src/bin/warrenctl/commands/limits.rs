//! `set_vhost_limits`, `clear_vhost_limits`, `list_vhost_limits`,
//! `set_user_limits`, `clear_user_limits`, `list_user_limits`, as in
//! rabbitmqctl: a `set_*` replaces every limit with the JSON object given
//! (names RabbitMQ's: `max-connections`, `max-queues` for a vhost,
//! `max-connections`, `max-channels` for a user; a negative value means no
//! limit). Each turns into `/api/vhost-limits` / `/api/user-limits` calls.

use super::Ctx;
use crate::client::{exit, seg, Failure, Result};
use serde_json::{Map, Value};

/// A limits definition: a JSON object of integers, or exit code 64.
fn definition(text: &str) -> Result<Map<String, Value>> {
    let bad = |why: String| Failure::new(exit::USAGE, format!("invalid limits definition: {why}"));
    let v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let Value::Object(o) = v else {
        return Err(bad(format!("expected a JSON object, got {v}")));
    };
    if let Some((k, v)) = o.iter().find(|(_, v)| v.as_i64().is_none()) {
        return Err(bad(format!("{k} should be an integer, got {v}")));
    }
    Ok(o)
}

/// Make `path`'s limits exactly `wanted`: PUT each one, DELETE the others.
fn replace(ctx: &Ctx, path: &str, current: &Value, wanted: &Map<String, Value>) -> Result<()> {
    for (name, value) in wanted {
        ctx.client.put(
            &format!("{path}/{}", seg(name)),
            &serde_json::json!({ "value": value }),
        )?;
    }
    let old = current
        .as_array()
        .and_then(|a| a.first())
        .and_then(|e| e["value"].as_object().cloned())
        .unwrap_or_default();
    for name in old.keys().filter(|k| !wanted.contains_key(*k)) {
        ctx.client.delete(&format!("{path}/{}", seg(name)))?;
    }
    Ok(())
}

pub fn set_vhost_limits(ctx: &Ctx, text: &str) -> Result<()> {
    let wanted = definition(text)?;
    let vhost = &ctx.vhost;
    ctx.say(format!("Applying limits to vhost \"{vhost}\" ..."));
    let path = format!("vhost-limits/{}", ctx.vh());
    let current = ctx.on(ctx.client.get(&path), || format!("vhost '{vhost}'"))?;
    replace(ctx, &path, &current, &wanted)
}

pub fn clear_vhost_limits(ctx: &Ctx) -> Result<()> {
    let vhost = &ctx.vhost;
    ctx.say(format!("Clearing limits for vhost \"{vhost}\" ..."));
    let path = format!("vhost-limits/{}", ctx.vh());
    let current = ctx.on(ctx.client.get(&path), || format!("vhost '{vhost}'"))?;
    replace(ctx, &path, &current, &Map::new())
}

pub fn list_vhost_limits(ctx: &Ctx, global: bool) -> Result<()> {
    let path = if global {
        "vhost-limits".to_string()
    } else {
        format!("vhost-limits/{}", ctx.vh())
    };
    let vhost = &ctx.vhost;
    ctx.on(ctx.list(&path, &[], &["vhost", "value"]), || {
        format!("vhost '{vhost}'")
    })
}

pub fn set_user_limits(ctx: &Ctx, user: &str, text: &str) -> Result<()> {
    let wanted = definition(text)?;
    ctx.say(format!(
        "Setting user limits to \"{text}\" for user \"{user}\" ..."
    ));
    let path = format!("user-limits/{}", seg(user));
    let current = ctx.on(ctx.client.get(&path), || format!("user '{user}'"))?;
    replace(ctx, &path, &current, &wanted)
}

pub fn clear_user_limits(ctx: &Ctx, user: &str, limit: &str) -> Result<()> {
    ctx.say(format!(
        "Clearing \"{limit}\" limit for user \"{user}\" ..."
    ));
    let path = format!("user-limits/{}", seg(user));
    let current = ctx.on(ctx.client.get(&path), || format!("user '{user}'"))?;
    if limit == "all" {
        return replace(ctx, &path, &current, &Map::new());
    }
    ctx.client.delete(&format!("{path}/{}", seg(limit)))?;
    Ok(())
}

pub fn list_user_limits(ctx: &Ctx, user: Option<&str>) -> Result<()> {
    match user {
        Some(u) => ctx.on(
            ctx.list(&format!("user-limits/{}", seg(u)), &[], &["user", "value"]),
            || format!("user '{u}'"),
        ),
        None => ctx.list("user-limits", &[], &["user", "value"]),
    }
}

#[cfg(test)]
mod tests {
    use super::definition;

    #[test]
    fn a_definition_is_an_object_of_integers() {
        assert_eq!(definition(r#"{"max-connections": 5}"#).unwrap().len(), 1);
        assert!(definition(r#"{"max-connections": "5"}"#).is_err());
        assert!(definition("[1]").is_err());
        assert!(definition("{").is_err());
    }
}

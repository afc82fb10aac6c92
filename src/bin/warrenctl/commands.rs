//! The commands: each turns into one or a few management API requests.

use crate::client::{exit, seg, Client, Failure, Result};
use crate::table::{cell, lookup, Output};
use crate::{Cmd, Columns, ListArgs};
use serde_json::{json, Value};
use std::io::{Read, Write};

#[path = "commands/limits.rs"]
mod limits;
#[path = "commands/policies.rs"]
mod policies;

pub struct Ctx {
    pub client: Client,
    pub out: Output,
    pub vhost: String,
    /// Suppress the progress lines of commands that change things.
    pub quiet: bool,
}

impl Ctx {
    fn say(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            println!("{}", msg.as_ref());
        }
    }

    fn vh(&self) -> String {
        seg(&self.vhost)
    }

    /// GET a listing and print it with the chosen (or default) columns.
    fn list(&self, path: &str, columns: &[String], default: &[&str]) -> Result<()> {
        let items = match self.client.get(path)? {
            Value::Array(a) => a,
            // A paginated answer (should not happen without `page=`).
            Value::Object(mut o) if o.contains_key("items") => match o.remove("items") {
                Some(Value::Array(a)) => a,
                _ => Vec::new(),
            },
            other => {
                return Err(Failure::new(
                    exit::SOFTWARE,
                    format!("expected a JSON array from /api/{path}, got {other}"),
                ))
            }
        };
        let mut cols: Vec<String> = columns
            .iter()
            .flat_map(|c| c.split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        if cols.is_empty() {
            cols = default.iter().map(|c| c.to_string()).collect();
        }
        if cols == ["all"] {
            if self.out.format == crate::table::Format::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&items).expect("serialise")
                );
                return Ok(());
            }
            cols.clear();
            for i in &items {
                for k in i.as_object().into_iter().flat_map(|m| m.keys()) {
                    if !cols.contains(k) {
                        cols.push(k.clone());
                    }
                }
            }
        }
        self.out.list(&items, &cols)
    }

    /// Per-vhost listing path: `{what}/{vhost}`, or `{what}` with -a.
    fn scoped(&self, what: &str, a: &ListArgs) -> String {
        if a.all_vhosts {
            what.to_string()
        } else {
            format!("{what}/{}", self.vh())
        }
    }

    fn exists(&self, path: &str) -> Result<bool> {
        match self.client.get(path) {
            Ok(_) => Ok(true),
            Err(f) if f.code == exit::NOT_FOUND => Ok(false),
            Err(f) => Err(f),
        }
    }

    /// Run a request whose 404 means `what` does not exist.
    fn on<T>(&self, r: Result<T>, what: impl FnOnce() -> String) -> Result<T> {
        r.map_err(|f| {
            if f.code == exit::NOT_FOUND {
                Failure::new(exit::NOT_FOUND, format!("{} not found", what()))
            } else {
                f
            }
        })
    }
}

fn json_arg(what: &str, s: &Option<String>) -> Result<Value> {
    match s {
        None => Ok(json!({})),
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(Failure::usage(format!(
                "{what} must be a JSON object, got {s:?}"
            ))),
        },
    }
}

fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m {s}s")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

fn status(ctx: &Ctx) -> Result<()> {
    let ov = ctx.client.get("overview")?;
    let nodes = ctx.client.get("nodes")?;
    let node = nodes.get(0).cloned().unwrap_or(Value::Null);
    let g = |v: &Value, p: &str| cell(lookup(v, p));
    let listeners: Vec<String> = ov["listeners"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| format!("{} {}", g(l, "protocol"), g(l, "port")))
                .collect()
        })
        .unwrap_or_default();
    let mut alarms = Vec::new();
    if node["disk_free_alarm"] == json!(true) {
        alarms.push("disk");
    }
    if node["mem_alarm"] == json!(true) {
        alarms.push("memory");
    }
    let rate = |k: &str| {
        lookup(&ov, &format!("message_stats.{k}_details.rate"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    let product = if ov["product_name"].is_string() {
        format!("{} {}", g(&ov, "product_name"), g(&ov, "product_version"))
    } else {
        format!("RabbitMQ {}", g(&ov, "rabbitmq_version"))
    };
    let mut pairs = vec![
        ("product".to_string(), product),
        (
            "compatible with".into(),
            format!("RabbitMQ {}", g(&ov, "rabbitmq_version")),
        ),
        ("node".into(), g(&ov, "node")),
        (
            "uptime".into(),
            human_duration(node["uptime"].as_u64().unwrap_or(0)),
        ),
        ("listeners".into(), listeners.join(", ")),
    ];
    if ov["shards"].is_number() {
        pairs.push(("shards".into(), g(&ov, "shards")));
    }
    let t = &ov["object_totals"];
    pairs.extend([
        (
            "objects".into(),
            format!(
                "{} connections, {} channels, {} exchanges, {} queues, {} consumers",
                g(t, "connections"),
                g(t, "channels"),
                g(t, "exchanges"),
                g(t, "queues"),
                g(t, "consumers")
            ),
        ),
        (
            "messages".into(),
            format!(
                "{} ({} ready, {} unacknowledged)",
                g(&ov, "queue_totals.messages"),
                g(&ov, "queue_totals.messages_ready"),
                g(&ov, "queue_totals.messages_unacknowledged")
            ),
        ),
        (
            "rates".into(),
            format!(
                "publish {:.1}/s, deliver/get {:.1}/s, ack {:.1}/s",
                rate("publish"),
                rate("deliver_get"),
                rate("ack")
            ),
        ),
        (
            "memory".into(),
            format!(
                "{:.1} MiB",
                node["mem_used"].as_f64().unwrap_or(0.0) / 1048576.0
            ),
        ),
        (
            "alarms".into(),
            if alarms.is_empty() {
                "none".into()
            } else {
                alarms.join(", ")
            },
        ),
    ]);
    ctx.out
        .document(&json!({"overview": ov, "node": node}), &pairs);
    Ok(())
}

fn read_input(file: &str) -> Result<Value> {
    let mut text = String::new();
    let r = if file == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_string(&mut text))
    };
    r.map_err(|e| Failure::new(exit::NO_INPUT, format!("cannot read {file}: {e}")))?;
    serde_json::from_str(&text)
        .map_err(|e| Failure::new(exit::DATA, format!("{file} is not valid JSON: {e}")))
}

fn write_output(file: &str, v: &Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v).expect("serialise");
    text.push('\n');
    if file == "-" {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(text.as_bytes())
            .map_err(|e| Failure::new(exit::CANT_CREATE, format!("writing output: {e}")));
    }
    std::fs::write(file, text)
        .map_err(|e| Failure::new(exit::CANT_CREATE, format!("cannot write {file}: {e}")))
}

fn user_path(name: &str) -> String {
    format!("users/{}", seg(name))
}

fn tags_list(tags: &[String]) -> Vec<String> {
    tags.iter()
        .flat_map(|t| t.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

/// A `list_*` command: the management API resource it reads and the
/// columns shown when none are asked for (rabbitmqctl's defaults where it
/// has the command).
struct ListSpec {
    resource: &'static str,
    columns: &'static [&'static str],
}

const QUEUES: ListSpec = ListSpec {
    resource: "queues",
    columns: &[
        "name",
        "messages_ready",
        "messages_unacknowledged",
        "messages",
        "consumers",
    ],
};
const EXCHANGES: ListSpec = ListSpec {
    resource: "exchanges",
    columns: &["name", "type", "durable", "auto_delete", "internal"],
};
const BINDINGS: ListSpec = ListSpec {
    resource: "bindings",
    columns: &[
        "source",
        "destination",
        "destination_type",
        "routing_key",
        "arguments",
    ],
};
const CONSUMERS: ListSpec = ListSpec {
    resource: "consumers",
    columns: &[
        "queue.name",
        "consumer_tag",
        "channel_details.name",
        "ack_required",
        "exclusive",
        "prefetch_count",
    ],
};
const CONNECTIONS: ListSpec = ListSpec {
    resource: "connections",
    columns: &[
        "name",
        "user",
        "vhost",
        "peer_host",
        "peer_port",
        "channels",
        "state",
    ],
};
const CHANNELS: ListSpec = ListSpec {
    resource: "channels",
    columns: &[
        "name",
        "user",
        "vhost",
        "number",
        "consumer_count",
        "messages_unacknowledged",
        "prefetch_count",
        "confirm",
    ],
};
const USERS: ListSpec = ListSpec {
    resource: "users",
    columns: &["name", "tags"],
};
const PERMISSIONS: ListSpec = ListSpec {
    resource: "permissions",
    columns: &["user", "vhost", "configure", "write", "read"],
};
const TOPIC_PERMISSIONS: ListSpec = ListSpec {
    resource: "topic-permissions",
    columns: &["user", "exchange", "write", "read"],
};
const VHOSTS: ListSpec = ListSpec {
    resource: "vhosts",
    columns: &["name"],
};

pub fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let c = &ctx.client;
    let vh = ctx.vh();
    let vhost = ctx.vhost.as_str();
    match cmd {
        Cmd::Status => status(ctx),
        Cmd::SetVhostLimits { definition } => limits::set_vhost_limits(ctx, &definition),
        Cmd::ClearVhostLimits => limits::clear_vhost_limits(ctx),
        Cmd::ListVhostLimits { global } => limits::list_vhost_limits(ctx, global),
        Cmd::SetUserLimits { name, definition } => limits::set_user_limits(ctx, &name, &definition),
        Cmd::ClearUserLimits { name, limit } => limits::clear_user_limits(ctx, &name, &limit),
        Cmd::ListUserLimits { user } => limits::list_user_limits(ctx, user.as_deref()),
        Cmd::SetPolicy(p) => policies::set(ctx, false, &p),
        Cmd::SetOperatorPolicy(p) => policies::set(ctx, true, &p),
        Cmd::ClearPolicy { name } => policies::clear(ctx, false, &name),
        Cmd::ClearOperatorPolicy { name } => policies::clear(ctx, true, &name),
        Cmd::ListPolicies => policies::list(ctx, false),
        Cmd::ListOperatorPolicies => policies::list(ctx, true),
        Cmd::ListQueues(a) => {
            ctx.list(&ctx.scoped(QUEUES.resource, &a), &a.columns, QUEUES.columns)
        }
        Cmd::ListExchanges(a) => ctx.list(
            &ctx.scoped(EXCHANGES.resource, &a),
            &a.columns,
            EXCHANGES.columns,
        ),
        Cmd::ListBindings(a) => ctx.list(
            &ctx.scoped(BINDINGS.resource, &a),
            &a.columns,
            BINDINGS.columns,
        ),
        Cmd::ListConsumers(a) => ctx.list(
            &ctx.scoped(CONSUMERS.resource, &a),
            &a.columns,
            CONSUMERS.columns,
        ),
        Cmd::ListConnections(Columns { columns }) => {
            ctx.list(CONNECTIONS.resource, &columns, CONNECTIONS.columns)
        }
        Cmd::ListChannels(Columns { columns }) => {
            ctx.list(CHANNELS.resource, &columns, CHANNELS.columns)
        }
        Cmd::ListUsers(Columns { columns }) => ctx.list(USERS.resource, &columns, USERS.columns),
        Cmd::ListPermissions(a) => {
            let path = if a.all_vhosts {
                PERMISSIONS.resource.to_string()
            } else {
                format!("vhosts/{vh}/permissions")
            };
            ctx.on(ctx.list(&path, &a.columns, PERMISSIONS.columns), || {
                format!("vhost '{vhost}'")
            })
        }
        Cmd::ListTopicPermissions(a) => {
            let path = if a.all_vhosts {
                TOPIC_PERMISSIONS.resource.to_string()
            } else {
                format!("vhosts/{vh}/topic-permissions")
            };
            ctx.on(
                ctx.list(&path, &a.columns, TOPIC_PERMISSIONS.columns),
                || format!("vhost '{vhost}'"),
            )
        }
        Cmd::ListUserPermissions { name, columns } => ctx.list(
            &format!("{}/permissions", user_path(&name)),
            &columns.columns,
            PERMISSIONS.columns,
        ),
        Cmd::ListVhosts(Columns { columns }) => ctx.list(VHOSTS.resource, &columns, VHOSTS.columns),
        Cmd::AddUser {
            name,
            new_password: password,
            tags,
        } => {
            ctx.say(format!("Adding user \"{name}\" ..."));
            if ctx.exists(&user_path(&name))? {
                return Err(Failure::new(
                    exit::DATA,
                    format!("user '{name}' already exists"),
                ));
            }
            let tags = tags_list(&[tags]).join(",");
            c.put(
                &user_path(&name),
                &json!({"password": password, "tags": tags}),
            )?;
            Ok(())
        }
        Cmd::DeleteUser { name } => {
            ctx.say(format!("Deleting user \"{name}\" ..."));
            ctx.on(c.delete(&user_path(&name)), || format!("user '{name}'"))?;
            Ok(())
        }
        Cmd::ChangePassword {
            name,
            new_password: password,
        } => {
            ctx.say(format!("Changing password for user \"{name}\" ..."));
            let u = ctx.on(c.get(&user_path(&name)), || format!("user '{name}'"))?;
            let tags = tags_list(&[cell(u.get("tags"))]).join(",");
            c.put(
                &user_path(&name),
                &json!({"password": password, "tags": tags}),
            )?;
            Ok(())
        }
        Cmd::SetUserTags { name, tags } => {
            let tags = tags_list(&tags);
            ctx.say(format!("Setting tags for user \"{name}\" to {tags:?} ..."));
            let u = ctx.on(c.get(&user_path(&name)), || format!("user '{name}'"))?;
            // Send the stored hash back so the password is kept (RabbitMQ
            // would otherwise clear it).
            let mut body = json!({"tags": tags.join(",")});
            if let Some(h) = u.get("password_hash").filter(|h| h.is_string()) {
                body["password_hash"] = h.clone();
                body["hashing_algorithm"] = u["hashing_algorithm"].clone();
            }
            c.put(&user_path(&name), &body)?;
            Ok(())
        }
        Cmd::AuthenticateUser {
            name,
            user_password: password,
        } => {
            ctx.say(format!("Authenticating user \"{name}\" ..."));
            let probe = Client::new(
                c.base(),
                &name,
                &password,
                std::time::Duration::from_secs(30),
            );
            // RabbitMQ and Warren check the password before the tags: "Not
            // management user" means the password was right.
            match probe.get("whoami") {
                Ok(_) => {
                    ctx.say("Success");
                    Ok(())
                }
                Err(f) if f.code == exit::NO_PERM && f.message.contains("Not management user") => {
                    ctx.say("Success (the user has no management tag)");
                    Ok(())
                }
                Err(f) if f.code == exit::NO_PERM => Err(Failure::new(
                    exit::NO_PERM,
                    format!("authentication of user '{name}' failed"),
                )),
                Err(f) => Err(f),
            }
        }
        Cmd::SetPermissions {
            username: user,
            configure,
            write,
            read,
        } => {
            ctx.say(format!(
                "Setting permissions for user \"{user}\" in vhost \"{vhost}\" ..."
            ));
            c.put(
                &format!("permissions/{vh}/{}", seg(&user)),
                &json!({"configure": configure, "write": write, "read": read}),
            )?;
            Ok(())
        }
        Cmd::SetTopicPermissions {
            username: user,
            exchange,
            write,
            read,
        } => {
            ctx.say(format!(
                "Setting topic permissions on \"{exchange}\" for user \"{user}\" in vhost \"{vhost}\" ..."
            ));
            let body = json!({"exchange": exchange, "write": write, "read": read});
            c.put(&format!("topic-permissions/{vh}/{}", seg(&user)), &body)?;
            Ok(())
        }
        Cmd::ClearTopicPermissions {
            username: user,
            exchange,
        } => {
            ctx.say(format!(
                "Clearing topic permissions for user \"{user}\" in vhost \"{vhost}\" ..."
            ));
            let one = exchange
                .as_deref()
                .map(|x| format!("/{}", seg(x)))
                .unwrap_or_default();
            ctx.on(
                c.delete(&format!("topic-permissions/{vh}/{}{one}", seg(&user))),
                || format!("topic permissions of user '{user}' in vhost '{vhost}'"),
            )?;
            Ok(())
        }
        Cmd::ClearPermissions { username: user } => {
            ctx.say(format!(
                "Clearing permissions for user \"{user}\" in vhost \"{vhost}\" ..."
            ));
            ctx.on(
                c.delete(&format!("permissions/{vh}/{}", seg(&user))),
                || format!("permissions of user '{user}' in vhost '{vhost}'"),
            )?;
            Ok(())
        }
        Cmd::AddVhost { name } => {
            ctx.say(format!("Adding vhost \"{name}\" ..."));
            if ctx.exists(&format!("vhosts/{}", seg(&name)))? {
                return Err(Failure::new(
                    exit::DATA,
                    format!("vhost '{name}' already exists"),
                ));
            }
            c.put(&format!("vhosts/{}", seg(&name)), &json!({}))?;
            Ok(())
        }
        Cmd::DeleteVhost { name } => {
            ctx.say(format!("Deleting vhost \"{name}\" ..."));
            ctx.on(c.delete(&format!("vhosts/{}", seg(&name))), || {
                format!("vhost '{name}'")
            })?;
            Ok(())
        }
        Cmd::DeclareQueue {
            name,
            durable,
            auto_delete,
            arguments,
        } => {
            let args = json_arg("--arguments", &arguments)?;
            ctx.say(format!(
                "Declaring queue \"{name}\" in vhost \"{vhost}\" ..."
            ));
            ctx.on(
                c.put(
                    &format!("queues/{vh}/{}", seg(&name)),
                    &json!({"durable": durable, "auto_delete": auto_delete, "arguments": args}),
                ),
                || format!("vhost '{vhost}'"),
            )?;
            Ok(())
        }
        Cmd::DeleteQueue {
            name,
            if_unused,
            if_empty,
        } => {
            ctx.say(format!(
                "Deleting queue \"{name}\" in vhost \"{vhost}\" ..."
            ));
            let mut path = format!("queues/{vh}/{}", seg(&name));
            let mut sep = '?';
            if if_unused {
                path.push_str("?if-unused=true");
                sep = '&';
            }
            if if_empty {
                path.push(sep);
                path.push_str("if-empty=true");
            }
            ctx.on(c.delete(&path), || {
                format!("queue '{name}' in vhost '{vhost}'")
            })?;
            Ok(())
        }
        Cmd::PurgeQueue { name } => {
            ctx.say(format!("Purging queue \"{name}\" in vhost \"{vhost}\" ..."));
            ctx.on(
                c.delete(&format!("queues/{vh}/{}/contents", seg(&name))),
                || format!("queue '{name}' in vhost '{vhost}'"),
            )?;
            Ok(())
        }
        Cmd::DeclareExchange {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
        } => {
            let args = json_arg("--arguments", &arguments)?;
            ctx.say(format!(
                "Declaring exchange \"{name}\" of type {kind} in vhost \"{vhost}\" ..."
            ));
            ctx.on(
                c.put(
                    &format!("exchanges/{vh}/{}", seg(&name)),
                    &json!({"type": kind, "durable": durable, "auto_delete": auto_delete,
                        "internal": internal, "arguments": args}),
                ),
                || format!("vhost '{vhost}'"),
            )?;
            Ok(())
        }
        Cmd::DeleteExchange { name, if_unused } => {
            ctx.say(format!(
                "Deleting exchange \"{name}\" in vhost \"{vhost}\" ..."
            ));
            let q = if if_unused { "?if-unused=true" } else { "" };
            ctx.on(
                c.delete(&format!("exchanges/{vh}/{}{q}", seg(&name))),
                || format!("exchange '{name}' in vhost '{vhost}'"),
            )?;
            Ok(())
        }
        Cmd::DeclareBinding {
            source,
            destination,
            routing_key,
            destination_type,
            arguments,
        } => {
            let args = json_arg("--arguments", &arguments)?;
            let kind = if destination_type == "exchange" {
                "e"
            } else {
                "q"
            };
            ctx.say(format!(
                "Binding {destination_type} \"{destination}\" to exchange \"{source}\" with key \"{routing_key}\" ..."
            ));
            ctx.on(
                c.post(
                    &format!(
                        "bindings/{vh}/e/{}/{kind}/{}",
                        seg(&source),
                        seg(&destination)
                    ),
                    &json!({"routing_key": routing_key, "arguments": args}),
                ),
                || format!("exchange '{source}' or {destination_type} '{destination}'"),
            )?;
            Ok(())
        }
        Cmd::Publish {
            exchange,
            routing_key,
            payload,
            persistent,
        } => {
            let x = if exchange.is_empty() {
                "amq.default".to_string()
            } else {
                exchange.clone()
            };
            let r = ctx.on(
                c.post(
                    &format!("exchanges/{vh}/{}/publish", seg(&x)),
                    &json!({"routing_key": routing_key, "payload": payload,
                        "payload_encoding": "string",
                        "properties": {"delivery_mode": if persistent { 2 } else { 1 }}}),
                ),
                || format!("exchange '{exchange}' in vhost '{vhost}'"),
            )?;
            if ctx.out.format == crate::table::Format::Json {
                println!("{r}");
            } else if r["routed"] == json!(true) {
                println!("Message published and routed");
            } else {
                println!("Message published but NOT routed");
            }
            Ok(())
        }
        Cmd::Get { queue, count, ack } => {
            let ackmode = if ack {
                "ack_requeue_false"
            } else {
                "ack_requeue_true"
            };
            let r = ctx.on(
                c.post(
                    &format!("queues/{vh}/{}/get", seg(&queue)),
                    &json!({"count": count, "ackmode": ackmode, "encoding": "auto"}),
                ),
                || format!("queue '{queue}' in vhost '{vhost}'"),
            )?;
            let items = r.as_array().cloned().unwrap_or_default();
            ctx.out.list(
                &items,
                &[
                    "routing_key".into(),
                    "exchange".into(),
                    "message_count".into(),
                    "redelivered".into(),
                    "payload".into(),
                    "payload_encoding".into(),
                ],
            )
        }
        Cmd::CloseConnection { name, reason } => {
            ctx.say(format!(
                "Closing connection \"{name}\", reason: {reason} ..."
            ));
            ctx.on(
                c.delete_with_reason(&format!("connections/{}", seg(&name)), &reason),
                || format!("connection '{name}'"),
            )?;
            Ok(())
        }
        Cmd::ExportDefinitions { file } => {
            let d = c.get("definitions")?;
            write_output(&file, &d)?;
            if file != "-" {
                ctx.say(format!("Exported definitions to {file}"));
            }
            Ok(())
        }
        Cmd::ImportDefinitions { file } => {
            let d = read_input(&file)?;
            if !d.is_object() {
                return Err(Failure::new(
                    exit::DATA,
                    format!("{file}: definitions must be a JSON object"),
                ));
            }
            ctx.say(format!("Importing definitions from {file} ..."));
            c.post("definitions", &d)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_readable() {
        assert_eq!(human_duration(5_000), "5s");
        assert_eq!(human_duration(65_000), "1m 5s");
        assert_eq!(human_duration(3_600_000 + 61_000), "1h 1m 1s");
        assert_eq!(human_duration(90_000_000), "1d 1h 0m 0s");
    }

    #[test]
    fn tags_split_on_commas_and_spaces() {
        assert_eq!(
            tags_list(&["a,b".into(), " c ".into(), "".into()]),
            vec!["a", "b", "c"]
        );
    }
}

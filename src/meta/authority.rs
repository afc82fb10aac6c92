//! The metadata authority (runs on shard 0): executes declarations one at a
//! time and broadcasts their effect to every shard before replying.

use super::Cluster;
use super::{MetaOp, MetaReply};
use crate::defs::limits;
use crate::defs::{BindingDef, Dest, ExchangeDef, ExchangeKind, MetaChange, QueueDef};
use crate::error::{AmqpError, AmqpResult};
use crate::ids::{ConnId, QueueId};
use amq_protocol::types::{AMQPValue, FieldTable};

/// 405 RESOURCE_LOCKED with RabbitMQ's text, for a queue exclusive to
/// another connection (or redeclared with a different `exclusive`).
pub fn locked(name: &str, vhost: &str) -> AmqpError {
    AmqpError::resource_locked(format!(
        "cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. It could be \
         originally declared on another connection or the exclusive property value does not match \
         that of the original declaration."
    ))
}

/// 404 NOT_FOUND `no queue 'q' in vhost 'v'` (RabbitMQ's text).
pub fn no_queue(name: &str, vhost: &str) -> AmqpError {
    AmqpError::not_found(format!("no queue '{name}' in vhost '{vhost}'"))
}

/// 404 NOT_FOUND `no exchange 'x' in vhost 'v'` (RabbitMQ's text).
pub fn no_exchange(name: &str, vhost: &str) -> AmqpError {
    AmqpError::not_found(format!("no exchange '{name}' in vhost '{vhost}'"))
}

fn inequivalent(
    arg: &str,
    what: &str,
    name: &str,
    vhost: &str,
    got: impl std::fmt::Display,
    cur: impl std::fmt::Display,
) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "inequivalent arg '{arg}' for {what} '{name}' in vhost '{vhost}': received '{got}' but current is '{cur}'"
    ))
}

/// Queue arguments that take part in declare equivalence (RabbitMQ's
/// `rabbit_amqqueue:declare_args/0` and the quorum/stream ones); any other
/// argument (`x-custom`, a non-`x-` key) may differ on a redeclare.
const QUEUE_EQUIVALENCE_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-delivery-limit",
    "x-queue-leader-locator",
    "x-queue-master-locator",
    "x-initial-cluster-size",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-stream-filter-size-bytes",
];

/// True for a queue argument RabbitMQ gives a meaning (one of the private
/// `QUEUE_EQUIVALENCE_ARGS`, compared on a redeclare).
pub fn is_equivalence_arg(key: &str) -> bool {
    QUEUE_EQUIVALENCE_ARGS.contains(&key)
}

/// Exchange arguments that take part in equivalence (RabbitMQ: only this).
const EXCHANGE_EQUIVALENCE_ARGS: &[&str] = &["alternate-exchange"];

/// A field value as RabbitMQ prints it in an inequivalence text: the bare
/// value, and its AMQP type name.
fn value_and_type(v: &AMQPValue) -> (String, &'static str) {
    let text = match v {
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Float(n) => n.to_string(),
        AMQPValue::Double(n) => n.to_string(),
        AMQPValue::DecimalValue(d) => format!("{}e-{}", d.value, d.scale),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::Timestamp(t) => t.to_string(),
        AMQPValue::FieldArray(_) | AMQPValue::FieldTable(_) => "[...]".into(),
        AMQPValue::ByteArray(_) => "<<...>>".into(),
        AMQPValue::Void => "void".into(),
    };
    (text, super::queue_args::type_name(v))
}

/// Compare the arguments RabbitMQ treats as part of a queue's (or an
/// exchange's) identity. Texts as RabbitMQ 3.x sends them:
/// `received '10' but current is '5'`, and when one side is missing
/// `received none but current is the value '5' of type 'signedint'`.
fn check_args(
    what: &str,
    name: &str,
    vhost: &str,
    got: &FieldTable,
    cur: &FieldTable,
) -> AmqpResult<()> {
    let keys = if what == "queue" {
        QUEUE_EQUIVALENCE_ARGS
    } else {
        EXCHANGE_EQUIVALENCE_ARGS
    };
    for k in keys {
        let (a, b) = (got.inner().get(*k), cur.inner().get(*k));
        let (got_text, cur_text) = match (a, b) {
            (Some(a), Some(b)) if crate::routing::headers::values_equal(a, b) => continue,
            (None, None) => continue,
            (Some(a), Some(b)) => (
                format!("'{}'", value_and_type(a).0),
                format!("'{}'", value_and_type(b).0),
            ),
            (Some(a), None) => {
                let (v, t) = value_and_type(a);
                (format!("the value '{v}' of type '{t}'"), "none".to_string())
            }
            (None, Some(b)) => {
                let (v, t) = value_and_type(b);
                ("none".to_string(), format!("the value '{v}' of type '{t}'"))
            }
        };
        return Err(AmqpError::precondition_failed(format!(
            "inequivalent arg '{k}' for {what} '{name}' in vhost '{vhost}': received {got_text} but current is {cur_text}"
        )));
    }
    Ok(())
}

/// 22 random url-safe base64 characters, as RabbitMQ's generated names use.
pub fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    (0..22)
        .map(|_| ALPHABET[rng.gen_range(0..64)] as char)
        .collect()
}

fn generated_name() -> String {
    format!("amq.gen-{}", random_suffix())
}

/// Execute one operation against `cluster`: check it against the table,
/// then broadcast its changes (each durable one logged first) and reply.
/// The reply codes per operation are listed on [`MetaOp`]'s variants;
/// any of them may also fail with 541 INTERNAL_ERROR from
/// [`Cluster::broadcast`].
pub async fn execute(cluster: &impl Cluster, op: MetaOp) -> AmqpResult<MetaReply> {
    match op {
        MetaOp::ExchangeDeclare {
            vhost,
            name,
            kind,
            passive,
            durable,
            auto_delete,
            internal,
            args,
        } => {
            let existing = cluster
                .table()
                .exchange(&vhost, &name)
                .map(|e| e.def.clone());
            if passive {
                return match existing {
                    Some(_) => Ok(MetaReply::Ok),
                    None => Err(no_exchange(&name, &vhost)),
                };
            }
            if name.is_empty() {
                return Err(AmqpError::access_refused(
                    "operation not permitted on the default exchange",
                ));
            }
            let Some(kind_parsed) = ExchangeKind::parse(&kind) else {
                return Err(AmqpError::command_invalid(format!(
                    "unknown exchange type '{kind}'"
                )));
            };
            super::exchange_args::exchange_args(kind_parsed, &name, &vhost, &args)?;
            if let Some(cur) = existing {
                let x = "exchange";
                if cur.kind != kind_parsed {
                    return Err(inequivalent(
                        "type",
                        x,
                        &name,
                        &vhost,
                        &kind,
                        cur.kind.as_str(),
                    ));
                }
                if cur.durable != durable {
                    return Err(inequivalent(
                        "durable",
                        x,
                        &name,
                        &vhost,
                        durable,
                        cur.durable,
                    ));
                }
                if cur.auto_delete != auto_delete {
                    return Err(inequivalent(
                        "auto_delete",
                        x,
                        &name,
                        &vhost,
                        auto_delete,
                        cur.auto_delete,
                    ));
                }
                if cur.internal != internal {
                    return Err(inequivalent(
                        "internal",
                        x,
                        &name,
                        &vhost,
                        internal,
                        cur.internal,
                    ));
                }
                check_args(x, &name, &vhost, &args, &cur.args)?;
                return Ok(MetaReply::Ok);
            }
            if name.starts_with("amq.") {
                return Err(AmqpError::access_refused(format!(
                    "exchange name '{name}' contains reserved prefix 'amq.*'"
                )));
            }
            // A delayed-message exchange's messages wait in a store of
            // their own, homed like a queue of the same name.
            let delay_store =
                (kind_parsed == ExchangeKind::DelayedMessage).then(|| crate::defs::DelayStore {
                    id: QueueId(cluster.next_queue_id()),
                    home: crate::defs::queue_home(&vhost, &name, cluster.shard_count()),
                });
            let def = ExchangeDef {
                vhost,
                name,
                kind: kind_parsed,
                durable,
                auto_delete,
                internal,
                args,
                delay_store,
            };
            cluster.broadcast(MetaChange::ExchangeDeclared(def)).await?;
            Ok(MetaReply::Ok)
        }
        MetaOp::ExchangeDelete {
            vhost,
            name,
            if_unused,
        } => {
            if name.is_empty() {
                return Err(AmqpError::access_refused(
                    "operation not permitted on the default exchange",
                ));
            }
            if name.starts_with("amq.") {
                return Err(AmqpError::access_refused(format!(
                    "operation not permitted on exchange '{name}' in vhost '{vhost}'"
                )));
            }
            let in_use = match cluster.table().exchange(&vhost, &name) {
                None => return Ok(MetaReply::Ok),
                Some(e) => e.binding_count > 0 || is_bound_destination(cluster, &vhost, &name),
            };
            if if_unused && in_use {
                return Err(AmqpError::precondition_failed(format!(
                    "exchange '{name}' in vhost '{vhost}' in use"
                )));
            }
            cluster
                .broadcast(MetaChange::ExchangeDeleted { vhost, name })
                .await?;
            Ok(MetaReply::Ok)
        }
        MetaOp::QueueDeclare {
            vhost,
            name,
            server_named,
            passive,
            durable,
            exclusive,
            auto_delete,
            args,
            owner,
        } => {
            queue_declare(
                cluster,
                vhost,
                name,
                server_named,
                passive,
                durable,
                exclusive,
                auto_delete,
                args,
                owner,
            )
            .await
        }
        MetaOp::QueueDelete {
            vhost,
            name,
            if_unused,
            if_empty,
            owner,
            only,
            if_idle,
        } => {
            let Some(def) = cluster.table().queue(&vhost, &name).cloned() else {
                return Ok(MetaReply::Deleted { messages: 0 });
            };
            if only.is_some_and(|id| id != def.id) {
                // The queue this was meant for is gone; the name is reused.
                return Ok(MetaReply::Deleted { messages: 0 });
            }
            // Checked before the stats call below, which counts as a use.
            if if_idle && !cluster.queue_idle(def.home, def.id).await {
                return Ok(MetaReply::Ok);
            }
            if let (Some(o), Some(owner)) = (def.exclusive_owner, owner) {
                if o != owner {
                    return Err(locked(&name, &vhost));
                }
            }
            if if_unused || if_empty || owner.is_none() {
                let (messages, consumers) = queue_stats(cluster, &def).await;
                if (if_unused || owner.is_none()) && consumers > 0 {
                    if owner.is_none() {
                        // Auto-delete raced with a new consumer: keep the queue.
                        return Ok(MetaReply::Ok);
                    }
                    return Err(AmqpError::precondition_failed(format!(
                        "queue '{name}' in vhost '{vhost}' in use"
                    )));
                }
                if if_empty && messages > 0 {
                    return Err(AmqpError::precondition_failed(format!(
                        "queue '{name}' in vhost '{vhost}' not empty"
                    )));
                }
            }
            let messages = delete_queue(cluster, def).await?;
            Ok(MetaReply::Deleted { messages })
        }
        MetaOp::Bind {
            vhost,
            source,
            dest,
            dest_is_queue,
            key,
            args,
            owner,
            unbind,
        } => {
            if source.is_empty() || (!dest_is_queue && dest.is_empty()) {
                return Err(AmqpError::access_refused(
                    "operation not permitted on the default exchange",
                ));
            }
            // Teardown is idempotent (RabbitMQ): unbinding from or to
            // something already gone answers unbind-ok.
            let gone = |e: AmqpError| if unbind { Ok(MetaReply::Ok) } else { Err(e) };
            let dest_ref = if dest_is_queue {
                let t = cluster.table();
                let Some(q) = t.queue(&vhost, &dest) else {
                    return gone(no_queue(&dest, &vhost));
                };
                if q.exclusive_owner.is_some_and(|o| o != owner) {
                    return Err(locked(&dest, &vhost));
                }
                Dest::Queue(q.id, q.home)
            } else {
                if cluster.table().exchange(&vhost, &dest).is_none() {
                    return gone(no_exchange(&dest, &vhost));
                }
                Dest::Exchange(dest.clone())
            };
            let exists = {
                let t = cluster.table();
                let Some(x) = t.exchange(&vhost, &source) else {
                    return gone(no_exchange(&source, &vhost));
                };
                if !unbind {
                    super::exchange_args::binding_args(x.def.routing_kind(), &key, &args)?;
                }
                x.has_binding(&dest_ref, &key, &args)
            };
            let b = BindingDef {
                vhost: vhost.clone(),
                source: source.clone(),
                dest: dest_ref,
                dest_name: dest,
                key,
                args,
            };
            if unbind {
                if exists {
                    cluster.broadcast(MetaChange::Unbound(b)).await?;
                    auto_delete_exchange(cluster, &vhost, &source).await;
                }
            } else if !exists {
                cluster.broadcast(MetaChange::Bound(b)).await?;
            }
            Ok(MetaReply::Ok)
        }
        op @ (MetaOp::VhostAdd { .. }
        | MetaOp::VhostMetadata { .. }
        | MetaOp::VhostDelete { .. }
        | MetaOp::UserPut { .. }
        | MetaOp::UserDelete { .. }
        | MetaOp::PermissionSet(_)
        | MetaOp::PermissionClear { .. }
        | MetaOp::TopicPermissionSet(_)
        | MetaOp::TopicPermissionClear { .. }
        | MetaOp::VhostLimit { .. }
        | MetaOp::UserLimit { .. }
        | MetaOp::PolicySet(_)
        | MetaOp::PolicyClear { .. }) => super::access_control::execute(cluster, op).await,
        MetaOp::ConnectionClosed { owner } => {
            let owned: Vec<QueueDef> = cluster
                .table()
                .queues
                .values()
                .filter(|q| q.exclusive_owner == Some(owner))
                .cloned()
                .collect();
            for def in owned {
                // Best effort: a queue that cannot be deleted now stays.
                let _ = delete_queue(cluster, def).await;
            }
            Ok(MetaReply::Ok)
        }
    }
}

fn is_bound_destination(cluster: &impl Cluster, vhost: &str, name: &str) -> bool {
    let dest = Dest::Exchange(name.to_string());
    cluster
        .table()
        .exchanges
        .iter()
        .any(|((v, _), e)| v == vhost && e.bindings().any(|(d, _, _)| *d == dest))
}

async fn auto_delete_exchange(cluster: &impl Cluster, vhost: &str, name: &str) {
    let delete = match cluster.table().exchange(vhost, name) {
        Some(e) => e.def.auto_delete && e.binding_count == 0,
        None => false,
    };
    if delete {
        // Best effort: an auto-delete exchange that cannot be deleted now
        // (definitions log unwritable) stays until the next unbind.
        let _ = cluster
            .broadcast(MetaChange::ExchangeDeleted {
                vhost: vhost.to_string(),
                name: name.to_string(),
            })
            .await;
    }
}

async fn queue_stats(cluster: &impl Cluster, def: &QueueDef) -> (u32, u32) {
    cluster
        .queue_stats(def.home, def.id)
        .await
        .unwrap_or((0, 0))
}

/// Delete a queue everywhere; returns the messages it held. Exchanges left
/// without bindings that are auto-delete go too.
async fn delete_queue(cluster: &impl Cluster, def: QueueDef) -> AmqpResult<u32> {
    let dest = Dest::Queue(def.id, def.home);
    let sources: Vec<String> = cluster
        .table()
        .exchanges
        .iter()
        .filter(|((v, _), e)| *v == def.vhost && e.bindings().any(|(d, _, _)| *d == dest))
        .map(|((_, n), _)| n.clone())
        .collect();
    let vhost = def.vhost.clone();
    let values = cluster
        .broadcast(MetaChange::QueueDeleted {
            vhost: def.vhost,
            name: def.name,
            id: def.id,
        })
        .await?;
    for s in sources {
        auto_delete_exchange(cluster, &vhost, &s).await;
    }
    Ok(values.get(def.home.0).copied().unwrap_or(0))
}

#[allow(clippy::too_many_arguments)]
async fn queue_declare(
    cluster: &impl Cluster,
    vhost: String,
    name: String,
    server_named: bool,
    passive: bool,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    args: FieldTable,
    owner: ConnId,
) -> AmqpResult<MetaReply> {
    let server_named = server_named || (name.is_empty() && !passive);
    let name = if name.is_empty() && !passive {
        generated_name()
    } else {
        name
    };
    let existing = cluster.table().queue(&vhost, &name).cloned();
    if passive || existing.is_some() {
        let Some(cur) = existing else {
            return Err(no_queue(&name, &vhost));
        };
        if cur.exclusive_owner.is_some_and(|o| o != owner) {
            return Err(locked(&name, &vhost));
        }
        if !passive {
            let q = "queue";
            if cur.durable != durable {
                return Err(inequivalent(
                    "durable",
                    q,
                    &name,
                    &vhost,
                    durable,
                    cur.durable,
                ));
            }
            if cur.exclusive_owner.is_some() != exclusive {
                return Err(locked(&name, &vhost));
            }
            if cur.auto_delete != auto_delete {
                return Err(inequivalent(
                    "auto_delete",
                    q,
                    &name,
                    &vhost,
                    auto_delete,
                    cur.auto_delete,
                ));
            }
            check_args(q, &name, &vhost, &args, &cur.args)?;
        }
        let (messages, consumers) = queue_stats(cluster, &cur).await;
        return Ok(MetaReply::QueueDeclared {
            name,
            messages,
            consumers,
        });
    }
    let name = if name.starts_with("amq.") && !server_named {
        return Err(AmqpError::access_refused(format!(
            "queue name '{name}' contains reserved prefix 'amq.*'"
        )));
    } else {
        name
    };
    // A new queue's arguments are checked (an existing queue's are only
    // compared for equivalence, as RabbitMQ does).
    super::queue_args::validate(&name, &vhost, &args, durable, exclusive, auto_delete)?;
    {
        // RabbitMQ's vhost `max-queues` (checked for new queues only).
        let t = cluster.table();
        if let Some(limit) = limits::in_force(t.vhost_limits.get(&vhost), "max-queues") {
            let count = t.queues.values().filter(|q| q.vhost == vhost).count() as u64;
            if count >= limit {
                return Err(AmqpError::precondition_failed(
                    limits::vhost_queues_reached(&name, &vhost, limit),
                ));
            }
        }
    }
    // A queue declared over the HTTP API or imported from definitions has
    // no client connection to be local to: it is placed by name.
    let client_local = owner.is_client() && {
        let t = cluster.table();
        let (policy, _operator) = t.policies.for_object(&vhost, &name, true);
        super::queue_args::client_local(&args, policy.map(|p| &p.definition))
    };
    let home = if exclusive || client_local {
        owner.shard()
    } else {
        crate::defs::queue_home(&vhost, &name, cluster.shard_count())
    };
    let def = QueueDef {
        id: QueueId(cluster.next_queue_id()),
        vhost,
        name: name.clone(),
        home,
        durable,
        exclusive_owner: exclusive.then_some(owner),
        auto_delete,
        args,
    };
    cluster.broadcast(MetaChange::QueueDeclared(def)).await?;
    Ok(MetaReply::QueueDeclared {
        name,
        messages: 0,
        consumers: 0,
    })
}

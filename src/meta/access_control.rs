//! The authority's access-control operations (vhosts, users, permissions,
//! topic permissions, limits, policies): validated here, on shard 0, then
//! broadcast to every shard's table like every other metadata change.
//! Must never: run anywhere but inside the authority (one operation at a
//! time), or broadcast a change it has not validated.

use super::Cluster;
use super::{MetaOp, MetaReply};
use crate::defs::limits;
use crate::defs::users::{PermissionDef, UserDef};
use crate::defs::MetaChange;
use crate::error::{AmqpError, AmqpResult};

/// What a fresh broker starts with: vhost `/` and the default user with
/// full permissions on it (as RabbitMQ creates guest on first boot).
pub fn defaults(config: &crate::config::Config) -> Vec<MetaChange> {
    let user = UserDef::new(
        &config.default_user,
        &config.default_pass,
        vec!["administrator".into()],
    );
    vec![
        MetaChange::VhostAdded { name: "/".into() },
        MetaChange::PermissionSet(PermissionDef {
            user: user.name.clone(),
            vhost: "/".into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        }),
        MetaChange::UserPut(user),
    ]
}

/// Execute one access-control operation (see the module documentation).
pub async fn execute(cluster: &impl Cluster, op: MetaOp) -> AmqpResult<MetaReply> {
    match op {
        MetaOp::VhostAdd { name } => {
            if !cluster.table().vhosts.contains(&name) {
                cluster.broadcast(MetaChange::VhostAdded { name }).await?;
            }
            Ok(MetaReply::Ok)
        }
        MetaOp::VhostMetadata {
            name,
            description,
            tags,
        } => {
            vhost_exists(cluster, &name)?;
            let change = MetaChange::VhostMetadataSet {
                name,
                description,
                tags,
            };
            cluster.broadcast(change).await?;
            Ok(MetaReply::Ok)
        }
        MetaOp::VhostDelete { name } => {
            vhost_exists(cluster, &name)?;
            cluster.broadcast(MetaChange::VhostDeleted { name }).await?;
            Ok(MetaReply::Ok)
        }
        MetaOp::UserPut {
            name,
            password,
            password_hash,
            tags,
        } => {
            let existing = cluster.table().users.get(&name).cloned();
            let mut user = match (password, password_hash, existing) {
                (Some(p), _, _) => UserDef::new(&name, &p, tags.clone()),
                (None, Some(h), _) => UserDef {
                    name: name.clone(),
                    password_hash: h,
                    hashing_algorithm: crate::defs::users::HASHING.into(),
                    tags: tags.clone(),
                },
                (None, None, Some(u)) => u,
                // No password at all: the user cannot log in with one.
                (None, None, None) => UserDef {
                    name: name.clone(),
                    password_hash: String::new(),
                    hashing_algorithm: crate::defs::users::HASHING.into(),
                    tags: tags.clone(),
                },
            };
            user.tags = tags;
            cluster.broadcast(MetaChange::UserPut(user)).await?;
            Ok(MetaReply::Ok)
        }
        MetaOp::UserDelete { name } => {
            if !cluster.table().users.contains_key(&name) {
                return Err(AmqpError::not_found(format!("no user '{name}'")));
            }
            cluster.broadcast(MetaChange::UserDeleted { name }).await?;
            Ok(MetaReply::Ok)
        }
        MetaOp::PermissionSet(p) => {
            vhost_and_user(cluster, &p.vhost, &p.user)?;
            crate::defs::users::validate_permission(&p).map_err(AmqpError::precondition_failed)?;
            cluster.broadcast(MetaChange::PermissionSet(p)).await?;
            Ok(MetaReply::Ok)
        }
        MetaOp::PermissionClear { user, vhost } => {
            cluster
                .broadcast(MetaChange::PermissionCleared { user, vhost })
                .await?;
            Ok(MetaReply::Ok)
        }
        MetaOp::TopicPermissionSet(p) => {
            vhost_and_user(cluster, &p.vhost, &p.user)?;
            crate::defs::users::validate_topic_permission(&p)
                .map_err(|e| AmqpError::precondition_failed(e.to_string()))?;
            cluster.broadcast(MetaChange::TopicPermissionSet(p)).await?;
            Ok(MetaReply::Ok)
        }
        MetaOp::TopicPermissionClear {
            user,
            vhost,
            exchange,
        } => {
            cluster
                .broadcast(MetaChange::TopicPermissionCleared {
                    user,
                    vhost,
                    exchange,
                })
                .await?;
            Ok(MetaReply::Ok)
        }
        MetaOp::VhostLimit { vhost, name, value } => {
            let current = {
                let t = cluster.table();
                let exists = t.vhosts.contains(&vhost);
                exists.then(|| t.vhost_limits.get(&vhost).cloned().unwrap_or_default())
            };
            let limits =
                updated_limits(current, "vhost", &vhost, name, value, &limits::VHOST_LIMITS)?;
            cluster
                .broadcast(MetaChange::VhostLimitsSet { vhost, limits })
                .await?;
            Ok(MetaReply::Ok)
        }
        MetaOp::UserLimit { user, name, value } => {
            let current = {
                let t = cluster.table();
                let exists = t.users.contains_key(&user);
                exists.then(|| t.user_limits.get(&user).cloned().unwrap_or_default())
            };
            let limits = updated_limits(current, "user", &user, name, value, &limits::USER_LIMITS)?;
            cluster
                .broadcast(MetaChange::UserLimitsSet { user, limits })
                .await?;
            Ok(MetaReply::Ok)
        }
        MetaOp::PolicySet(p) => {
            if !cluster.table().vhosts.contains(&p.vhost) {
                return Err(AmqpError::not_found("vhost_not_found"));
            }
            crate::defs::policy::check(&p).map_err(AmqpError::precondition_failed)?;
            cluster.broadcast(MetaChange::PolicySet(p)).await?;
            Ok(MetaReply::Ok)
        }
        MetaOp::PolicyClear {
            vhost,
            name,
            operator,
        } => {
            if cluster
                .table()
                .policies
                .get(&vhost, &name, operator)
                .is_none()
            {
                return Err(AmqpError::not_found("Not Found"));
            }
            cluster
                .broadcast(MetaChange::PolicyCleared {
                    vhost,
                    name,
                    operator,
                })
                .await?;
            Ok(MetaReply::Ok)
        }
        _ => Err(AmqpError::internal_error("not an access-control operation")),
    }
}

/// Both exist, or 404 naming the missing one (the vhost first).
fn vhost_and_user(cluster: &impl Cluster, vhost: &str, user: &str) -> AmqpResult<()> {
    vhost_exists(cluster, vhost)?;
    if !cluster.table().users.contains_key(user) {
        return Err(AmqpError::not_found(format!("no user '{user}'")));
    }
    Ok(())
}

/// The vhost exists, or 404 `no vhost 'v'`.
fn vhost_exists(cluster: &impl Cluster, vhost: &str) -> AmqpResult<()> {
    if cluster.table().vhosts.contains(vhost) {
        Ok(())
    } else {
        Err(AmqpError::not_found(format!("no vhost '{vhost}'")))
    }
}

/// `current` limits of `what` `owner` (None: it does not exist, 404) with
/// limit `name` set (`Some`) or cleared; 406 for a name not in `known`.
fn updated_limits(
    current: Option<limits::Limits>,
    what: &str,
    owner: &str,
    name: String,
    value: Option<i64>,
    known: &[&str],
) -> AmqpResult<limits::Limits> {
    let mut all = current.ok_or_else(|| AmqpError::not_found(format!("no {what} '{owner}'")))?;
    limits::validate(&name, known).map_err(AmqpError::precondition_failed)?;
    match value {
        Some(v) => all.insert(name, v),
        None => all.remove(&name),
    };
    Ok(all)
}

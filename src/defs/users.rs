//! Users, password hashes, tags and per-vhost permissions.
//!
//! Password hashes are stored as RabbitMQ stores them
//! (`rabbit_password_hashing_sha256`): base64 of a 4-byte salt followed by
//! SHA-256(salt ++ password), so definitions move between RabbitMQ and
//! Warren both ways. Permissions are three regular expressions (configure,
//! write, read) matched against resource names, compiled once per change.

use base64::Engine;
use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `hashing_algorithm` Warren writes and accepts (RabbitMQ's name for
/// salted SHA-256); definitions imports with any other are refused.
pub const HASHING: &str = "rabbit_password_hashing_sha256";

/// A user, as in RabbitMQ's definitions JSON (`users` entries).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserDef {
    /// Login name (AMQP PLAIN / AMQPLAIN and HTTP basic auth).
    pub name: String,
    /// base64(4-byte salt ++ SHA-256(salt ++ password)); empty when the
    /// user has none (every password login then fails).
    pub password_hash: String,
    /// Always [`HASHING`]; kept for definitions export.
    pub hashing_algorithm: String,
    /// RabbitMQ user tags; the HTTP API honours `administrator` and
    /// `monitoring` (`meta::access`, `mgmt::gate`).
    pub tags: Vec<String>,
}

/// A user's permissions on one vhost: three regular expressions matched
/// (as searches, not anchored) against exchange and queue names, as in
/// RabbitMQ's access control. An empty pattern matches nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PermissionDef {
    /// The user they apply to.
    pub user: String,
    /// The vhost they apply to.
    pub vhost: String,
    /// Pattern for declaring and deleting exchanges and queues.
    pub configure: String,
    /// Pattern for publishing to an exchange and binding to a destination.
    pub write: String,
    /// Pattern for consuming, basic.get, queue.purge and binding from an
    /// exchange.
    pub read: String,
}

/// A user's topic permissions on one topic exchange of a vhost
/// (RabbitMQ's `topic_permissions` entries): two regular expressions
/// matched against routing keys. `write` is checked when publishing to the
/// exchange, `read` when binding from it (`queue.bind`/`unbind`,
/// `exchange.bind`/`unbind`). A user without an entry for an exchange is
/// not restricted on it. `{username}` and `{vhost}` in a pattern stand for
/// the user's name and the vhost (regex-escaped), as RabbitMQ expands
/// them for AMQP 0-9-1 connections; an empty pattern matches only the
/// empty routing key (RabbitMQ reads it as `^$`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicPermissionDef {
    /// The user they apply to.
    pub user: String,
    /// The vhost they apply to.
    pub vhost: String,
    /// The topic exchange they apply to.
    pub exchange: String,
    /// Pattern for the routing keys the user may publish with.
    pub write: String,
    /// Pattern for the routing keys the user may bind with.
    pub read: String,
}

/// A [`TopicPermissionDef`] with its variables expanded and its two
/// patterns compiled (once per change, in every shard's routing table).
#[derive(Debug)]
pub struct CompiledTopicPermission {
    /// The permission as set.
    pub def: TopicPermissionDef,
    write: Option<Regex>,
    read: Option<Regex>,
}

/// `pattern` with `{username}` and `{vhost}` replaced by the regex-escaped
/// values (RabbitMQ's `expand_topic_permission`), `^$` for an empty one.
fn expand_topic(pattern: &str, user: &str, vhost: &str) -> String {
    if pattern.is_empty() {
        return "^$".into();
    }
    pattern
        .replace("{username}", &regex::escape(user))
        .replace("{vhost}", &regex::escape(vhost))
}

impl CompiledTopicPermission {
    /// Expand and compile `def`. A pattern that does not compile matches
    /// nothing (patterns are checked by [`validate_topic_permission`]
    /// before they are set).
    pub fn new(def: TopicPermissionDef) -> Self {
        let c = |p: &str| Regex::new(&expand_topic(p, &def.user, &def.vhost)).ok();
        CompiledTopicPermission {
            write: c(&def.write),
            read: c(&def.read),
            def,
        }
    }

    /// Whether `access` (write: publish, read: bind) with `routing_key` is
    /// allowed: a regex search in the key, like Erlang's `re:run`.
    /// Configure access is not a topic permission and is never allowed
    /// here.
    pub fn allows(&self, access: Access, routing_key: &str) -> bool {
        let r = match access {
            Access::Write => &self.write,
            Access::Read => &self.read,
            Access::Configure => return false,
        };
        r.as_ref().is_some_and(|r| r.is_match(routing_key))
    }
}

/// A topic permission pattern that is not a valid regular expression.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidPattern {
    /// The pattern as given.
    pub pattern: String,
    /// Why it does not compile (the regex engine's words).
    pub reason: String,
}

impl std::fmt::Display for InvalidPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid regex '{}': {}", self.pattern, self.reason)
    }
}

/// Validate topic permission regexes (after variable expansion) before
/// accepting them; the first invalid one, write before read.
pub fn validate_topic_permission(p: &TopicPermissionDef) -> Result<(), InvalidPattern> {
    for re in [&p.write, &p.read] {
        Regex::new(&expand_topic(re, &p.user, &p.vhost)).map_err(|e| InvalidPattern {
            pattern: re.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// Hash `password` with a fresh random 4-byte salt, in RabbitMQ's
/// `rabbit_password_hashing_sha256` format (base64).
pub fn hash_password(password: &str) -> String {
    let salt: [u8; 4] = rand::random();
    hash_with_salt(&salt, password)
}

fn hash_with_salt(salt: &[u8], password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    let mut out = salt.to_vec();
    out.extend_from_slice(&h.finalize());
    base64::engine::general_purpose::STANDARD.encode(out)
}

impl UserDef {
    /// A user with `password` hashed under a fresh salt.
    pub fn new(name: &str, password: &str, tags: Vec<String>) -> Self {
        UserDef {
            name: name.into(),
            password_hash: hash_password(password),
            hashing_algorithm: HASHING.into(),
            tags,
        }
    }

    /// Check a password against the stored salted hash. A blank password
    /// never matches, whatever is stored: RabbitMQ's internal backend
    /// refuses blank passwords at login, so a user created for
    /// certificate (EXTERNAL) logins cannot be entered with PLAIN.
    pub fn check_password(&self, password: &str) -> bool {
        if password.is_empty() {
            return false;
        }
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(&self.password_hash) else {
            return false;
        };
        if raw.len() < 4 || self.password_hash.is_empty() {
            return false;
        }
        let expected = hash_with_salt(&raw[..4], password);
        // Constant-time comparison of the encoded hashes.
        let (a, b) = (expected.as_bytes(), self.password_hash.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Whether the user carries `tag` (exact match).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// What a permission is being checked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Declare or delete (checked against [`PermissionDef::configure`]).
    Configure,
    /// Publish to, or bind to (checked against [`PermissionDef::write`]).
    Write,
    /// Consume, get, purge, or bind from ([`PermissionDef::read`]).
    Read,
}

/// A [`PermissionDef`] with its three patterns compiled (once per change,
/// in every shard's routing table).
#[derive(Debug)]
pub struct CompiledPermission {
    /// The permission as set.
    pub def: PermissionDef,
    configure: Option<Regex>,
    write: Option<Regex>,
    read: Option<Regex>,
}

fn compile(p: &str) -> Option<Regex> {
    // RabbitMQ: an empty pattern matches nothing; patterns are anchored by
    // the user (".*"), matched as a search like Erlang's re:run.
    if p.is_empty() {
        return None;
    }
    Regex::new(p).ok()
}

impl CompiledPermission {
    /// Compile `def`. A pattern that does not compile matches nothing
    /// (patterns are checked by [`validate_permission`] before they are set).
    pub fn new(def: PermissionDef) -> Self {
        CompiledPermission {
            configure: compile(&def.configure),
            write: compile(&def.write),
            read: compile(&def.read),
            def,
        }
    }

    /// Whether `access` to the resource `name` is allowed (a regex search
    /// anywhere in the name, like Erlang's `re:run`).
    pub fn allows(&self, access: Access, name: &str) -> bool {
        let r = match access {
            Access::Configure => &self.configure,
            Access::Write => &self.write,
            Access::Read => &self.read,
        };
        r.as_ref().is_some_and(|r| r.is_match(name))
    }
}

/// Validate permission regexes before accepting them.
pub fn validate_permission(p: &PermissionDef) -> Result<(), String> {
    for (what, re) in [
        ("configure", &p.configure),
        ("write", &p.write),
        ("read", &p.read),
    ] {
        if !re.is_empty() {
            Regex::new(re).map_err(|e| format!("invalid {what} regex '{re}': {e}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_hash_format_round_trips() {
        let u = UserDef::new("bob", "s3cret", vec![]);
        assert!(u.check_password("s3cret"));
        assert!(!u.check_password("wrong"));
        // A hash as RabbitMQ exports it for password "guest".
        let known = UserDef {
            name: "guest".into(),
            password_hash: hash_with_salt(&[0x90, 0x8d, 0xc6, 0x0a], "guest"),
            hashing_algorithm: HASHING.into(),
            tags: vec![],
        };
        assert!(known.check_password("guest"));
    }

    #[test]
    fn a_blank_password_never_logs_in() {
        let u = UserDef::new("cert-user", "", vec![]);
        assert!(!u.check_password(""));
    }

    #[test]
    fn permissions_match_as_regex_searches() {
        let p = CompiledPermission::new(PermissionDef {
            user: "u".into(),
            vhost: "/".into(),
            configure: "^app\\.".into(),
            write: ".*".into(),
            read: "".into(),
        });
        assert!(p.allows(Access::Configure, "app.q"));
        assert!(!p.allows(Access::Configure, "other"));
        assert!(p.allows(Access::Write, "anything"));
        assert!(!p.allows(Access::Read, "anything"));
    }

    #[test]
    fn topic_permissions_expand_variables_and_read_empty_as_only_the_empty_key() {
        let p = CompiledTopicPermission::new(TopicPermissionDef {
            user: "a.b".into(),
            vhost: "/".into(),
            exchange: "amq.topic".into(),
            write: "^{username}\\.{vhost}".into(),
            read: "".into(),
        });
        assert!(p.allows(Access::Write, "a.b./x"));
        // The user's dot is escaped: it matches only a dot.
        assert!(!p.allows(Access::Write, "aXb./x"));
        assert!(p.allows(Access::Read, ""));
        assert!(!p.allows(Access::Read, "x"));
        assert!(!p.allows(Access::Configure, "a.b./x"));
    }
}

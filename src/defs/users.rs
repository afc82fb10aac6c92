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
use std::collections::HashMap;

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
/// the user's name and the vhost (regex-escaped, as RabbitMQ 4.3 expands
/// them for AMQP 0-9-1 connections; 3.10 did not escape them); an empty
/// pattern matches only the empty routing key (RabbitMQ reads it as `^$`).
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
/// values (RabbitMQ 4.3's `expand_topic_permission`; 3.10 inserted them
/// unescaped, so a user named `a.*` matched any key), `^$` for an empty
/// one, then read as PCRE reads braces ([`pcre_braces`]).
fn expand_topic(pattern: &str, user: &str, vhost: &str) -> String {
    if pattern.is_empty() {
        return "^$".into();
    }
    pcre_braces(
        &pattern
            .replace("{username}", &regex::escape(user))
            .replace("{vhost}", &regex::escape(vhost)),
    )
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

/// Every user's topic permissions, by user, vhost and exchange, so the
/// per-publish lookup borrows the names and allocates nothing.
#[derive(Debug, Default)]
pub struct TopicPermissions {
    by_user: HashMap<String, HashMap<String, HashMap<String, CompiledTopicPermission>>>,
}

impl TopicPermissions {
    /// Whether none is set (the publish path then skips the lookup).
    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    /// `user`'s permission on `exchange` in `vhost`, if set.
    pub fn get(&self, user: &str, vhost: &str, exchange: &str) -> Option<&CompiledTopicPermission> {
        self.by_user.get(user)?.get(vhost)?.get(exchange)
    }

    /// Whether `user` has any topic permission in `vhost`.
    pub fn any(&self, user: &str, vhost: &str) -> bool {
        self.by_user
            .get(user)
            .is_some_and(|v| v.contains_key(vhost))
    }

    /// Set (or replace) one permission.
    pub fn set(&mut self, def: TopicPermissionDef) {
        self.by_user
            .entry(def.user.clone())
            .or_default()
            .entry(def.vhost.clone())
            .or_default()
            .insert(def.exchange.clone(), CompiledTopicPermission::new(def));
    }

    /// Remove `user`'s permissions in `vhost`: on one exchange or all.
    pub fn clear(&mut self, user: &str, vhost: &str, exchange: Option<&str>) {
        let Some(vhosts) = self.by_user.get_mut(user) else {
            return;
        };
        match exchange {
            None => {
                vhosts.remove(vhost);
            }
            Some(x) => {
                if let Some(xs) = vhosts.get_mut(vhost) {
                    xs.remove(x);
                    if xs.is_empty() {
                        vhosts.remove(vhost);
                    }
                }
            }
        }
        if vhosts.is_empty() {
            self.by_user.remove(user);
        }
    }

    /// Remove everything of a deleted user.
    pub fn remove_user(&mut self, user: &str) {
        self.by_user.remove(user);
    }

    /// Remove everything in a deleted vhost.
    pub fn remove_vhost(&mut self, vhost: &str) {
        self.by_user.retain(|_, vhosts| {
            vhosts.remove(vhost);
            !vhosts.is_empty()
        });
    }

    /// Every permission, sorted by user, vhost and exchange.
    pub fn defs(&self) -> Vec<&TopicPermissionDef> {
        let mut all: Vec<&TopicPermissionDef> = self
            .by_user
            .values()
            .flat_map(|v| v.values())
            .flat_map(|x| x.values().map(|p| &p.def))
            .collect();
        all.sort_by(|a, b| (&a.user, &a.vhost, &a.exchange).cmp(&(&b.user, &b.vhost, &b.exchange)));
        all
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
    Regex::new(&pcre_braces(p)).ok()
}

/// `pattern` with every brace that PCRE (Erlang's `re`, what RabbitMQ
/// matches with) reads as a literal escaped, so Rust's regex reads it the
/// same way: in PCRE `{` opens a quantifier only as `{n}`, `{n,}` or
/// `{n,m}`; elsewhere (`^{client_id}\.`, a variable RabbitMQ leaves in
/// place for AMQP 0-9-1) both braces are plain characters, where the
/// regex crate would refuse the pattern. Other PCRE-only syntax
/// (lookarounds, backreferences) still does not compile and is refused
/// when the pattern is set.
pub fn pcre_braces(pattern: &str) -> String {
    let b = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len() + 4);
    let (mut i, mut start, mut in_class) = (0, 0, false);
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'[' if !in_class => {
                in_class = true;
                i += 1;
            }
            b']' if in_class => {
                in_class = false;
                i += 1;
            }
            b'{' if !in_class => {
                let quantifier = b[i + 1..]
                    .iter()
                    .position(|&c| c == b'}')
                    .map(|end| &b[i + 1..i + 1 + end])
                    .is_some_and(|body| {
                        let mut parts = body.splitn(2, |&c| c == b',');
                        let digits = |p: &[u8]| !p.is_empty() && p.iter().all(u8::is_ascii_digit);
                        let first = parts.next().unwrap_or_default();
                        digits(first) && parts.next().is_none_or(|m| m.is_empty() || digits(m))
                    });
                if quantifier {
                    i += b[i..].iter().position(|&c| c == b'}').unwrap_or(0) + 1;
                } else {
                    out.push_str(&pattern[start..i]);
                    out.push_str("\\{");
                    i += 1;
                    start = i;
                }
            }
            b'}' if !in_class => {
                out.push_str(&pattern[start..i]);
                out.push_str("\\}");
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&pattern[start.min(pattern.len())..]);
    out
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
            Regex::new(&pcre_braces(re))
                .map_err(|e| format!("invalid {what} regex '{re}': {e}"))?;
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

    #[test]
    fn braces_read_as_pcre_reads_them() {
        assert_eq!(pcre_braces("^{client_id}\\."), "^\\{client_id\\}\\.");
        assert_eq!(pcre_braces("a{2}b{1,}c{1,3}"), "a{2}b{1,}c{1,3}");
        assert_eq!(pcre_braces("[{}]x{,3}"), "[{}]x\\{,3\\}");
        assert_eq!(pcre_braces("\\{a\\}{"), "\\{a\\}\\{");
        let p = CompiledTopicPermission::new(TopicPermissionDef {
            user: "u".into(),
            vhost: "/".into(),
            exchange: "amq.topic".into(),
            write: "^{client_id}\\.".into(),
            read: "^x{2}$".into(),
        });
        assert!(p.allows(Access::Write, "{client_id}.a"));
        assert!(p.allows(Access::Read, "xx"));
        assert!(validate_topic_permission(&TopicPermissionDef {
            write: "^(?!secret)".into(),
            ..p.def.clone()
        })
        .is_err());
    }
}

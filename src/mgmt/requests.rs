//! The management API's request bodies as typed structs, one per route
//! that takes a body, with the keys and types RabbitMQ 3.10 reads (see
//! [`super::body`] for how they are parsed and refused). Unknown keys are
//! ignored, as RabbitMQ ignores them.

use super::body::{Body, Count, Flag, Tags, Text};
use serde::Deserialize;
use serde_json::{Map, Value};

/// `PUT /api/exchanges/{vhost}/{name}`. A missing `type` is `direct`, a
/// missing `durable` false (RabbitMQ 3.10).
#[derive(Debug, Deserialize)]
pub struct ExchangeBody {
    /// Exchange type (`direct`, `fanout`, `topic`, `headers`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Survives a restart (default false).
    pub durable: Option<Flag>,
    /// Deleted when its last binding goes (default false).
    pub auto_delete: Option<Flag>,
    /// Only reachable through exchange-to-exchange bindings (default false).
    pub internal: Option<Flag>,
    /// Exchange arguments (`alternate-exchange`, ...), JSON values.
    pub arguments: Option<Map<String, Value>>,
}
impl Body for ExchangeBody {}

/// `PUT /api/queues/{vhost}/{name}`. A missing `durable` is false.
#[derive(Debug, Deserialize)]
pub struct QueueBody {
    /// Survives a restart (default false).
    pub durable: Option<Flag>,
    /// Deleted when its last consumer cancels (default false).
    pub auto_delete: Option<Flag>,
    /// Queue arguments (`x-message-ttl`, `x-dead-letter-exchange`, ...).
    pub arguments: Option<Map<String, Value>>,
}
impl Body for QueueBody {}

/// `POST /api/bindings/{vhost}/e/{source}/{q|e}/{destination}`.
#[derive(Debug, Deserialize)]
pub struct BindingBody {
    /// Binding key (default empty; a number is taken as its text).
    #[serde(default)]
    pub routing_key: Text,
    /// Binding arguments (`x-match` and header values for headers
    /// exchanges).
    pub arguments: Option<Map<String, Value>>,
}
impl Body for BindingBody {}

/// `PUT /api/users/{name}`: a password, a password hash, or neither (a user
/// who cannot log in with a password, as in RabbitMQ).
#[derive(Debug, Deserialize)]
pub struct UserBody {
    /// Plain-text password, hashed by the broker.
    pub password: Option<String>,
    /// Base64 of salt and SHA-256 hash, RabbitMQ's format.
    pub password_hash: Option<String>,
    /// Must be `rabbit_password_hashing_sha256` when given.
    pub hashing_algorithm: Option<String>,
    /// Tags such as `administrator`, `management`, `monitoring`.
    #[serde(default)]
    pub tags: Tags,
}
impl Body for UserBody {}

/// `PUT /api/vhosts/{vhost}`: every field optional (an empty body
/// creates the vhost); a PUT replaces the description and tags.
#[derive(Debug, Deserialize)]
pub struct VhostBody {
    /// What the vhost is for.
    pub description: Option<String>,
    /// Tags, a list or comma-separated text.
    pub tags: Option<Tags>,
    /// The firehose tracer: only `false` (Warren has none).
    pub tracing: Option<Flag>,
    /// Only `classic` (Warren's queues).
    pub default_queue_type: Option<String>,
}
impl Body for VhostBody {}

/// `PUT /api/permissions/{vhost}/{user}`: three regular expressions, all
/// required (RabbitMQ's `key_missing` otherwise).
#[derive(Debug, Deserialize)]
pub struct PermissionBody {
    /// Resources the user may declare and delete.
    pub configure: String,
    /// Resources the user may publish to or bind to.
    pub write: String,
    /// Resources the user may consume from or bind from.
    pub read: String,
}
impl Body for PermissionBody {
    const REQUIRED: &'static [&'static str] = &["configure", "write", "read"];
}

/// `PUT /api/topic-permissions/{vhost}/{user}`: the topic exchange and
/// two regular expressions, all required (RabbitMQ's `key_missing`
/// otherwise).
#[derive(Debug, Deserialize)]
pub struct TopicPermissionBody {
    /// The topic exchange they apply to.
    pub exchange: String,
    /// Routing keys the user may publish with.
    pub write: String,
    /// Routing keys the user may bind with.
    pub read: String,
}
impl Body for TopicPermissionBody {
    const REQUIRED: &'static [&'static str] = &["exchange", "write", "read"];
}

/// `POST /api/exchanges/{vhost}/{name}/publish`; all four keys required.
#[derive(Debug, Deserialize)]
pub struct PublishBody {
    /// Routing key.
    pub routing_key: Text,
    /// The message body, as text or base64 (see `payload_encoding`).
    pub payload: String,
    /// `string` or `base64` (RabbitMQ's `["unsupported_encoding", v]`
    /// otherwise).
    pub payload_encoding: String,
    /// Basic properties.
    pub properties: PublishProperties,
}
impl Body for PublishBody {
    const REQUIRED: &'static [&'static str] =
        &["routing_key", "properties", "payload", "payload_encoding"];
}

/// The basic properties of a message published over HTTP (AMQP 0-9-1
/// `basic` class properties; every one of them is honoured).
#[derive(Debug, Default, Deserialize)]
pub struct PublishProperties {
    /// MIME type of the body.
    pub content_type: Option<String>,
    /// MIME encoding of the body.
    pub content_encoding: Option<String>,
    /// Application headers.
    pub headers: Option<Map<String, Value>>,
    /// 1 transient, 2 persistent (an integer: RabbitMQ's
    /// `["not_int","delivery_mode"]` otherwise, checked by the route).
    pub delivery_mode: Option<Value>,
    /// Message priority, 0-255 (an integer, as `delivery_mode`).
    pub priority: Option<Value>,
    /// Correlation id (RPC).
    pub correlation_id: Option<String>,
    /// Reply-to queue (RPC).
    pub reply_to: Option<String>,
    /// Per-message TTL, ms as a decimal string.
    pub expiration: Option<String>,
    /// Application message id.
    pub message_id: Option<String>,
    /// Seconds since the Unix epoch (an integer, as `delivery_mode`).
    pub timestamp: Option<Value>,
    /// Application message type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Must equal the authenticated user when given (RabbitMQ's rule).
    pub user_id: Option<String>,
    /// Application id.
    pub app_id: Option<String>,
}

/// `POST /api/queues/{vhost}/{name}/get`; `count`, `ackmode` and
/// `encoding` required.
#[derive(Debug, Deserialize)]
pub struct GetBody {
    /// Messages to take, at most (capped at 10,000).
    pub count: Count,
    /// `ack_requeue_true`, `ack_requeue_false`, `reject_requeue_true` or
    /// `reject_requeue_false`.
    pub ackmode: String,
    /// `auto` (text when the body is UTF-8, else base64) or `base64`.
    pub encoding: String,
    /// Return at most this many bytes of each body.
    pub truncate: Option<Count>,
}
impl Body for GetBody {
    const REQUIRED: &'static [&'static str] = &["ackmode", "count", "encoding"];
}

/// `POST /api/definitions` (and `/api/definitions/{vhost}`): RabbitMQ's
/// export format. Every section is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Definitions {
    /// Virtual hosts to create.
    pub vhosts: Vec<VhostEntry>,
    /// Users with their hashes, tags and limits.
    pub users: Vec<UserEntry>,
    /// Permissions of users in vhosts.
    pub permissions: Vec<PermissionEntry>,
    /// Runtime parameters; only `vhost-limits` exist in Warren.
    pub parameters: Vec<ParameterEntry>,
    /// Exchanges (durable ones in an export).
    pub exchanges: Vec<ExchangeEntry>,
    /// Queues (durable ones in an export).
    pub queues: Vec<QueueEntry>,
    /// Bindings between exchanges and queues or exchanges.
    pub bindings: Vec<BindingEntry>,
    /// Policies: Warren has none, so a non-empty list is refused.
    pub policies: Vec<PolicyEntry>,
    /// Topic permissions of users on topic exchanges of vhosts.
    pub topic_permissions: Vec<TopicPermissionEntry>,
    /// Global parameters; only `cluster_name` and `internal_cluster_id`
    /// (the exporting cluster's identity) are taken, as facts about the
    /// source that Warren has no use for. Any other is refused.
    pub global_parameters: Vec<GlobalParameterEntry>,
}
impl Body for Definitions {}

/// One vhost of a definitions file.
#[derive(Debug, Deserialize)]
pub struct VhostEntry {
    /// Vhost name.
    pub name: String,
    /// Description (RabbitMQ 3.11+ exports it here and in `metadata`).
    pub description: Option<String>,
    /// Tags.
    pub tags: Option<Tags>,
    /// `{description, tags}` as RabbitMQ 3.11+ exports them.
    pub metadata: Option<VhostMetadataEntry>,
}

/// The `metadata` object of a vhost in a definitions file.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VhostMetadataEntry {
    /// Description.
    pub description: Option<String>,
    /// Tags.
    pub tags: Option<Tags>,
}

/// One user of a definitions file.
#[derive(Debug, Deserialize)]
pub struct UserEntry {
    /// User name.
    pub name: String,
    /// Plain-text password (not in exports; accepted on import).
    pub password: Option<String>,
    /// RabbitMQ's salted SHA-256 hash, base64.
    pub password_hash: Option<String>,
    /// Must be `rabbit_password_hashing_sha256` when given.
    pub hashing_algorithm: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Tags,
    /// Per-user limits (`max-connections`, `max-channels`), integers.
    #[serde(default)]
    pub limits: Map<String, Value>,
}

/// One topic permission of a definitions file.
#[derive(Debug, Deserialize)]
pub struct TopicPermissionEntry {
    /// User name.
    pub user: String,
    /// Vhost name.
    pub vhost: String,
    /// The topic exchange.
    pub exchange: String,
    /// Pattern for the routing keys the user may publish with.
    pub write: String,
    /// Pattern for the routing keys the user may bind with.
    pub read: String,
}

/// One permission of a definitions file.
#[derive(Debug, Deserialize)]
pub struct PermissionEntry {
    /// User name.
    pub user: String,
    /// Vhost name.
    pub vhost: String,
    /// Configure regular expression.
    #[serde(default)]
    pub configure: String,
    /// Write regular expression.
    #[serde(default)]
    pub write: String,
    /// Read regular expression.
    #[serde(default)]
    pub read: String,
}

/// One runtime parameter of a definitions file.
#[derive(Debug, Deserialize)]
pub struct ParameterEntry {
    /// Vhost (the path's vhost for a per-vhost import).
    pub vhost: Option<String>,
    /// Component: only `vhost-limits` is known.
    pub component: String,
    /// Parameter name (`limits` for vhost limits).
    #[serde(default)]
    pub name: String,
    /// The limits object (`{"max-connections": n, ...}`).
    #[serde(default)]
    pub value: Map<String, Value>,
}

/// One global parameter of a definitions file.
#[derive(Debug, Deserialize)]
pub struct GlobalParameterEntry {
    /// Parameter name.
    pub name: String,
    /// Its value (unused).
    #[serde(default)]
    pub value: Value,
}

/// One exchange of a definitions file.
#[derive(Debug, Deserialize)]
pub struct ExchangeEntry {
    /// Exchange name.
    pub name: String,
    /// Vhost (the path's vhost for a per-vhost import).
    pub vhost: Option<String>,
    /// Exchange type (default `direct`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Default true (exports hold durable exchanges).
    pub durable: Option<Flag>,
    /// Default false.
    pub auto_delete: Option<Flag>,
    /// Default false.
    pub internal: Option<Flag>,
    /// Exchange arguments.
    pub arguments: Option<Map<String, Value>>,
}

/// One queue of a definitions file.
#[derive(Debug, Deserialize)]
pub struct QueueEntry {
    /// Queue name.
    pub name: String,
    /// Vhost (the path's vhost for a per-vhost import).
    pub vhost: Option<String>,
    /// Default true (exports hold durable queues).
    pub durable: Option<Flag>,
    /// Default false.
    pub auto_delete: Option<Flag>,
    /// Queue arguments.
    pub arguments: Option<Map<String, Value>>,
}

/// One binding of a definitions file.
#[derive(Debug, Deserialize)]
pub struct BindingEntry {
    /// Source exchange.
    pub source: String,
    /// Vhost (the path's vhost for a per-vhost import).
    pub vhost: Option<String>,
    /// Destination queue or exchange.
    pub destination: String,
    /// `queue` (default) or `exchange`.
    pub destination_type: Option<String>,
    /// Binding key.
    #[serde(default)]
    pub routing_key: Text,
    /// Binding arguments.
    pub arguments: Option<Map<String, Value>>,
}

/// `PUT /api/vhost-limits/{vhost}/{name}` and `/api/user-limits/...`.
#[derive(Debug, Deserialize)]
pub struct LimitBody {
    /// The limit (an integer; negative means none), checked by the route.
    pub value: Value,
}
impl Body for LimitBody {
    const REQUIRED: &'static [&'static str] = &["value"];
}

/// `PUT /api/policies/{vhost}/{name}` and `/api/operator-policies/...`:
/// the values are checked by the route (RabbitMQ's texts for each).
#[derive(Debug, Deserialize)]
pub struct PolicyBody {
    /// The name pattern (a string, else 400).
    pub pattern: Value,
    /// The settings (an object, else 400).
    pub definition: Value,
    /// `queues`, `exchanges` or `all` (default).
    #[serde(rename = "apply-to")]
    pub apply_to: Option<Value>,
    /// A number (default 0).
    pub priority: Option<Value>,
}
impl Body for PolicyBody {
    const REQUIRED: &'static [&'static str] = &["pattern", "definition"];
}

/// A policy in a definitions file: its vhost and name, and the same keys
/// as a `PUT /api/policies` body.
#[derive(Debug, Deserialize)]
pub struct PolicyEntry {
    /// Its vhost (the path's on a per-vhost import).
    pub vhost: Option<String>,
    /// Its name.
    pub name: String,
    /// Pattern, definition, apply-to, priority.
    #[serde(flatten)]
    pub body: PolicyBody,
}

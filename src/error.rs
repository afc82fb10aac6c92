//! Errors.
//!
//! [`AmqpError`] is the one protocol error type: it carries the reply code,
//! the text RabbitMQ would send, and the class/method that failed. Handlers
//! return it; only the connection turns it into a `channel.close` or
//! `connection.close` frame, depending on whether the code is a soft
//! (channel) or hard (connection) error — the split RabbitMQ and LavinMQ use.
//!
//! [`InfraError`] covers the broker's own failures (sockets, files, config).

use std::fmt;

/// 312: an unroutable mandatory basic.publish; sent as basic.return, never as a
/// close (soft in the AMQP 0-9-1 constants table).
pub const NO_ROUTE: u16 = 312;
/// 311: content too large (soft). Not sent: an oversized body gets 406, as in
/// RabbitMQ.
pub const CONTENT_TOO_LARGE: u16 = 311;
/// 403: permission refused, or an exclusive queue of another connection (soft:
/// closes the channel); a refused login closes the connection with it.
pub const ACCESS_REFUSED: u16 = 403;
/// 404: no such exchange or queue (soft: closes the channel).
pub const NOT_FOUND: u16 = 404;
/// 405: the resource is exclusive to another connection (soft: closes the
/// channel).
pub const RESOURCE_LOCKED: u16 = 405;
/// 406: a precondition failed: redeclare with different properties, unknown
/// delivery tag, invalid argument or expiration, message too large (soft).
pub const PRECONDITION_FAILED: u16 = 406;
/// 320: the broker or an operator closed the connection (hard), e.g. a
/// management "close connection" or shutdown.
pub const CONNECTION_FORCED: u16 = 320;
/// 501: malformed frame: too large for frame-max, no frame-end octet, bad type
/// or undecodable content header (hard).
pub const FRAME_ERROR: u16 = 501;
/// 502: a method frame's fields could not be decoded (hard).
pub const SYNTAX_ERROR: u16 = 502;
/// 503: a method the broker never accepts from a client, or not on a channel
/// (hard).
pub const COMMAND_INVALID: u16 = 503;
/// 504: a method on a channel that is not open, or a second channel.open (hard).
pub const CHANNEL_ERROR: u16 = 504;
/// 505: a frame the channel's state does not expect, e.g. a body frame without
/// a content header, or a method between header and body (hard).
pub const UNEXPECTED_FRAME: u16 = 505;
/// 506: the broker is out of a resource (hard). Not sent at present.
pub const RESOURCE_ERROR: u16 = 506;
/// 530: not allowed: channel-max reached, vhost missing or refused, reused
/// consumer tag, connection limit reached, frame-max outside its range (hard).
pub const NOT_ALLOWED: u16 = 530;
/// 540: valid AMQP that Warren does not implement, e.g. `immediate=true`,
/// `requeue=false` on basic.recover (hard).
pub const NOT_IMPLEMENTED: u16 = 540;
/// 541: the broker failed internally, e.g. persistent messages of a tx.commit
/// could not be stored (hard).
pub const INTERNAL_ERROR: u16 = 541;

/// A protocol error with the reply code and text a client will see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpError {
    /// Reply code sent in channel.close / connection.close (one of the constants
    /// above); [`AmqpError::is_connection_error`] picks which.
    pub code: u16,
    /// Reply text, `"<NAME> - <detail>"` as RabbitMQ writes it; at most 255 bytes
    /// (longer texts are cut to 252 bytes + `"..."`).
    pub text: String,
    /// Class id of the method that failed (0 until set by [`AmqpError::on`]).
    pub class_id: u16,
    /// Method id of the method that failed (0 until set by [`AmqpError::on`]).
    pub method_id: u16,
}

impl AmqpError {
    fn new(code: u16, name: &str, text: impl fmt::Display) -> Self {
        let mut text = format!("{name} - {text}");
        // A reply text is a shortstr: cut it as RabbitMQ does (252 + "...").
        if text.len() > 255 {
            let mut end = 252;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("...");
        }
        AmqpError {
            code,
            text,
            class_id: 0,
            method_id: 0,
        }
    }
    /// Attach the class and method that caused the error.
    pub fn on(mut self, class_id: u16, method_id: u16) -> Self {
        self.class_id = class_id;
        self.method_id = method_id;
        self
    }
    /// Hard errors close the connection; soft ones close only the channel.
    pub fn is_connection_error(&self) -> bool {
        !matches!(
            self.code,
            CONTENT_TOO_LARGE
                | NO_ROUTE
                | ACCESS_REFUSED
                | NOT_FOUND
                | RESOURCE_LOCKED
                | PRECONDITION_FAILED
        )
    }
    /// 403 ACCESS_REFUSED (soft); `t` becomes the text after `"ACCESS_REFUSED - "`.
    pub fn access_refused(t: impl fmt::Display) -> Self {
        Self::new(ACCESS_REFUSED, "ACCESS_REFUSED", t)
    }
    /// 404 NOT_FOUND (soft).
    pub fn not_found(t: impl fmt::Display) -> Self {
        Self::new(NOT_FOUND, "NOT_FOUND", t)
    }
    /// 405 RESOURCE_LOCKED (soft).
    pub fn resource_locked(t: impl fmt::Display) -> Self {
        Self::new(RESOURCE_LOCKED, "RESOURCE_LOCKED", t)
    }
    /// 406 PRECONDITION_FAILED (soft).
    pub fn precondition_failed(t: impl fmt::Display) -> Self {
        Self::new(PRECONDITION_FAILED, "PRECONDITION_FAILED", t)
    }
    /// 501 FRAME_ERROR (hard).
    pub fn frame_error(t: impl fmt::Display) -> Self {
        Self::new(FRAME_ERROR, "FRAME_ERROR", t)
    }
    /// 502 SYNTAX_ERROR (hard).
    pub fn syntax_error(t: impl fmt::Display) -> Self {
        Self::new(SYNTAX_ERROR, "SYNTAX_ERROR", t)
    }
    /// 503 COMMAND_INVALID (hard).
    pub fn command_invalid(t: impl fmt::Display) -> Self {
        Self::new(COMMAND_INVALID, "COMMAND_INVALID", t)
    }
    /// 504 CHANNEL_ERROR (hard).
    pub fn channel_error(t: impl fmt::Display) -> Self {
        Self::new(CHANNEL_ERROR, "CHANNEL_ERROR", t)
    }
    /// 505 UNEXPECTED_FRAME (hard).
    pub fn unexpected_frame(t: impl fmt::Display) -> Self {
        Self::new(UNEXPECTED_FRAME, "UNEXPECTED_FRAME", t)
    }
    /// 506 RESOURCE_ERROR (hard).
    pub fn resource_error(t: impl fmt::Display) -> Self {
        Self::new(RESOURCE_ERROR, "RESOURCE_ERROR", t)
    }
    /// 530 NOT_ALLOWED (hard).
    pub fn not_allowed(t: impl fmt::Display) -> Self {
        Self::new(NOT_ALLOWED, "NOT_ALLOWED", t)
    }
    /// 540 NOT_IMPLEMENTED (hard).
    pub fn not_implemented(t: impl fmt::Display) -> Self {
        Self::new(NOT_IMPLEMENTED, "NOT_IMPLEMENTED", t)
    }
    /// 541 INTERNAL_ERROR (hard).
    pub fn internal_error(t: impl fmt::Display) -> Self {
        Self::new(INTERNAL_ERROR, "INTERNAL_ERROR", t)
    }
    /// 320 CONNECTION_FORCED (hard).
    pub fn connection_forced(t: impl fmt::Display) -> Self {
        Self::new(CONNECTION_FORCED, "CONNECTION_FORCED", t)
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

impl std::error::Error for AmqpError {}

/// Result of a protocol operation; the error closes the channel or the
/// connection.
pub type AmqpResult<T> = Result<T, AmqpError>;

/// Failures of the broker's own infrastructure.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// The AMQP listener could not bind. Not constructed at present: `shard::run`
    /// reports a failed listen as a string.
    #[error("cannot bind listener on {addr}: {source}")]
    Bind {
        /// The address asked for (`host:port`).
        addr: String,
        /// The OS error from bind(2).
        #[source]
        source: std::io::Error,
    },
    /// Another broker holds the data directory. Not constructed at present: the
    /// binary reports this itself when `flock` on `warren.lock` fails.
    #[error("data directory {path} is locked by another broker (pid file {lock})")]
    DataDirLocked {
        /// The data directory.
        path: String,
        /// The lock file (`<data-dir>/warren.lock`, holding the owner's pid).
        lock: String,
    },
    /// A file or directory operation failed (store segments, journal, definitions
    /// log).
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: String,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {key}: {problem}")]
    Config {
        /// The configuration key (option or setting name).
        key: String,
        /// What is wrong with the value.
        problem: String,
    },
}

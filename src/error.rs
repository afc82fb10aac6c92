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

pub const NO_ROUTE: u16 = 312;
pub const CONTENT_TOO_LARGE: u16 = 311;
pub const ACCESS_REFUSED: u16 = 403;
pub const NOT_FOUND: u16 = 404;
pub const RESOURCE_LOCKED: u16 = 405;
pub const PRECONDITION_FAILED: u16 = 406;
pub const CONNECTION_FORCED: u16 = 320;
pub const FRAME_ERROR: u16 = 501;
pub const SYNTAX_ERROR: u16 = 502;
pub const COMMAND_INVALID: u16 = 503;
pub const CHANNEL_ERROR: u16 = 504;
pub const UNEXPECTED_FRAME: u16 = 505;
pub const RESOURCE_ERROR: u16 = 506;
pub const NOT_ALLOWED: u16 = 530;
pub const NOT_IMPLEMENTED: u16 = 540;
pub const INTERNAL_ERROR: u16 = 541;

/// A protocol error with the reply code and text a client will see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpError {
    pub code: u16,
    pub text: String,
    pub class_id: u16,
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
    pub fn access_refused(t: impl fmt::Display) -> Self {
        Self::new(ACCESS_REFUSED, "ACCESS_REFUSED", t)
    }
    pub fn not_found(t: impl fmt::Display) -> Self {
        Self::new(NOT_FOUND, "NOT_FOUND", t)
    }
    pub fn resource_locked(t: impl fmt::Display) -> Self {
        Self::new(RESOURCE_LOCKED, "RESOURCE_LOCKED", t)
    }
    pub fn precondition_failed(t: impl fmt::Display) -> Self {
        Self::new(PRECONDITION_FAILED, "PRECONDITION_FAILED", t)
    }
    pub fn frame_error(t: impl fmt::Display) -> Self {
        Self::new(FRAME_ERROR, "FRAME_ERROR", t)
    }
    pub fn syntax_error(t: impl fmt::Display) -> Self {
        Self::new(SYNTAX_ERROR, "SYNTAX_ERROR", t)
    }
    pub fn command_invalid(t: impl fmt::Display) -> Self {
        Self::new(COMMAND_INVALID, "COMMAND_INVALID", t)
    }
    pub fn channel_error(t: impl fmt::Display) -> Self {
        Self::new(CHANNEL_ERROR, "CHANNEL_ERROR", t)
    }
    pub fn unexpected_frame(t: impl fmt::Display) -> Self {
        Self::new(UNEXPECTED_FRAME, "UNEXPECTED_FRAME", t)
    }
    pub fn resource_error(t: impl fmt::Display) -> Self {
        Self::new(RESOURCE_ERROR, "RESOURCE_ERROR", t)
    }
    pub fn not_allowed(t: impl fmt::Display) -> Self {
        Self::new(NOT_ALLOWED, "NOT_ALLOWED", t)
    }
    pub fn not_implemented(t: impl fmt::Display) -> Self {
        Self::new(NOT_IMPLEMENTED, "NOT_IMPLEMENTED", t)
    }
    pub fn internal_error(t: impl fmt::Display) -> Self {
        Self::new(INTERNAL_ERROR, "INTERNAL_ERROR", t)
    }
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

pub type AmqpResult<T> = Result<T, AmqpError>;

/// Failures of the broker's own infrastructure.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("cannot bind listener on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("data directory {path} is locked by another broker (pid file {lock})")]
    DataDirLocked { path: String, lock: String },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration: {key}: {problem}")]
    Config { key: String, problem: String },
}

//! Logging: where log lines go (stderr or a file) and in which format
//! (plain text or one JSON object per line), and reopening the file on
//! SIGHUP for log rotation.
//!
//! Owns: the `tracing` subscriber set up once at start-up and the log file
//! handle. Never on the data path: shards log connection and queue events,
//! not messages, so the one `Mutex` here (around the file, taken once per
//! log line by whichever shard logs) is never taken per message.
//!
//! Formats mirror RabbitMQ's `log.*.formatter` setting: `plaintext` (the
//! default; ANSI colours only when stderr is a terminal, never in a file)
//! and `json` (one object per line with `timestamp`, `level`, `fields`,
//! `target`, for log shippers).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Log line format (RabbitMQ's `log.file.formatter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (`plaintext`, also accepted as `text`).
    #[default]
    Text,
    /// One JSON object per line (`json`).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" | "plaintext" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?}: expected plaintext (or text) or json"
            )),
        }
    }
}

/// An append-mode log file that can be reopened under the same path, so
/// `logrotate` can rename it and send SIGHUP (or use `copytruncate`).
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// What `tracing` writes through: stderr, or the current log file.
#[derive(Clone, Debug)]
enum Sink {
    Stderr,
    File(Arc<LogFile>),
}

/// One log line's writer: the fmt layer formats a whole event into a
/// buffer and hands it over in one `write_all`, so a file line is never
/// interleaved with another shard's.
enum SinkWriter<'a> {
    Stderr(std::io::Stderr),
    File(&'a LogFile),
}

impl Write for SinkWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            SinkWriter::Stderr(s) => s.write(buf),
            SinkWriter::File(f) => match f.file.lock() {
                Ok(mut file) => file.write(buf),
                Err(p) => p.into_inner().write(buf),
            },
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            SinkWriter::Stderr(s) => s.flush(),
            SinkWriter::File(_) => Ok(()),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Sink {
    type Writer = SinkWriter<'a>;
    fn make_writer(&'a self) -> SinkWriter<'a> {
        match self {
            Sink::Stderr => SinkWriter::Stderr(std::io::stderr()),
            Sink::File(f) => SinkWriter::File(f),
        }
    }
}

/// The installed logger; [`Logging::reopen`] is what SIGHUP calls.
#[derive(Debug)]
pub struct Logging {
    file: Option<Arc<LogFile>>,
}

impl Logging {
    /// Install the global subscriber. `filter` is an `EnvFilter` directive
    /// (from `WARREN_LOG`, default `info`). With `file`, lines are
    /// appended to it (created if missing); an unopenable file is an error
    /// naming the path.
    pub fn init(format: LogFormat, file: Option<&Path>, filter: &str) -> Result<Logging, String> {
        let (sink, handle, ansi) = match file {
            Some(p) => {
                let f = open_append(p)
                    .map_err(|e| format!("cannot open log file {}: {e}", p.display()))?;
                let lf = Arc::new(LogFile {
                    path: p.to_path_buf(),
                    file: Mutex::new(f),
                });
                (Sink::File(lf.clone()), Some(lf), false)
            }
            // Colours only for a terminal: a pipe or the journal gets plain text.
            None => (
                Sink::Stderr,
                None,
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
            ),
        };
        let filter = tracing_subscriber::EnvFilter::try_new(filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(sink);
        let r = match format {
            LogFormat::Text => builder.with_ansi(ansi).try_init(),
            LogFormat::Json => builder.json().with_ansi(false).try_init(),
        };
        r.map_err(|e| format!("cannot install the logger: {e}"))?;
        Ok(Logging { file: handle })
    }

    /// Reopen the log file under its configured path (after `logrotate`
    /// renamed it). Returns the path reopened, `Ok(None)` when logging goes
    /// to stderr, or the open error (the old file stays in use).
    pub fn reopen(&self) -> Result<Option<PathBuf>, String> {
        let Some(lf) = &self.file else {
            return Ok(None);
        };
        let f = open_append(&lf.path)
            .map_err(|e| format!("cannot reopen log file {}: {e}", lf.path.display()))?;
        match lf.file.lock() {
            Ok(mut cur) => *cur = f,
            Err(p) => *p.into_inner() = f,
        }
        Ok(Some(lf.path.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_names_are_rabbitmq_formatter_names() {
        assert_eq!("plaintext".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!("xml".parse::<LogFormat>().unwrap_err().contains("xml"));
    }
}

//! The disk free-space limit (RabbitMQ's `disk_free_limit`): leaf
//! vocabulary and one `statvfs` call.
//!
//! Below the limit the node raises the disk alarm: every publishing
//! connection gets `connection.blocked` ("low on disk") and is no longer
//! read from, exactly as under the memory alarm, so neither the durable
//! store nor the transient page area (`store::paging`) fills the disk
//! silently. The limit is absolute (`disk_free_limit.absolute`, default
//! 50 MB = 50,000,000 bytes as RabbitMQ's) or relative to the memory
//! available (`disk_free_limit.relative`, a factor); the shard raises it to
//! one segment file plus 64 KiB when lower, since the store needs that
//! room for its next file. The alarm clears once
//! free space is back above the limit. Each shard measures the data
//! directory's filesystem itself every [`CHECK_EVERY_MS`] (one system call).

/// How often each shard measures free disk space, in ms.
pub const CHECK_EVERY_MS: u64 = 250;

/// RabbitMQ's default `disk_free_limit.absolute`: 50 MB (SI), in bytes.
pub const DEFAULT_FREE_LIMIT: u64 = 50_000_000;

/// How the disk free-space limit is configured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DiskFreeLimit {
    /// `disk_free_limit.absolute` / `--disk-free-limit`: bytes (0: no alarm
    /// before the disk is actually full).
    Bytes(u64),
    /// `disk_free_limit.relative`: a factor of the memory available
    /// (`crate::memory::available_bytes`), as RabbitMQ's `mem_relative`.
    Relative(f64),
}

impl DiskFreeLimit {
    /// The limit in bytes.
    pub fn bytes(self) -> u64 {
        match self {
            DiskFreeLimit::Bytes(b) => b,
            DiskFreeLimit::Relative(f) => (crate::memory::available_bytes() as f64 * f) as u64,
        }
    }
}

/// Free bytes available to this (unprivileged) process on the filesystem
/// holding `dir`; None when it cannot be read.
pub fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(s.blocks_available() * s.fragment_size())
}

/// Parse a size as RabbitMQ 3.10's configuration reads it
/// (`rabbit_resource_monitor_misc:parse_information_unit`, answers
/// recorded from 3.10.8): a byte count, or a number with `k`/`K`/`kiB`,
/// `M`/`MiB`, `G`/`GiB` (powers of 1024) or `kB`/`KB`, `MB`, `GB` (powers of
/// 1000); anything else (`KiB`, `TB`) is refused, as RabbitMQ refuses it.
/// Errors: the text to report for the key.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("'{s}' is not a size (bytes, or a number with kB, MB, GB, kiB, MiB, GiB)")
    })?;
    let mult: u64 = match unit.trim() {
        "" => 1,
        "k" | "K" | "kiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown unit '{other}' (kB, MB, GB, kiB, MiB, GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_rabbitmq_units() {
        // RabbitMQ 3.10.8's parse_information_unit, asked on a private node.
        for (text, bytes) in [
            ("2k", 2048),
            ("2K", 2048),
            ("2kiB", 2048),
            ("2kB", 2000),
            ("2KB", 2000),
            ("2M", 2_097_152),
            ("2MB", 2_000_000),
            ("2MiB", 2_097_152),
            ("2G", 2_147_483_648),
            ("2GB", 2_000_000_000),
            ("2GiB", 2_147_483_648),
            ("2", 2),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        // Refused by RabbitMQ too (a case_clause and a parse_error).
        assert!(parse_size("2KiB").is_err());
        assert!(parse_size("2TB").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999GB").is_err());
    }

    #[test]
    fn free_bytes_reads_the_filesystem() {
        let d = tempfile::tempdir().unwrap();
        assert!(free_bytes(d.path()).is_some_and(|b| b > 0));
        assert_eq!(free_bytes(&d.path().join("missing")), None);
    }
}

//! Log lines journald can sort by priority. Under systemd, stderr is a stream to journald
//! (`JOURNAL_STREAM` names its device and inode); a line that starts with an sd-daemon(3)
//! prefix such as `<3>` gets that priority, so `journalctl -p err -u icmp-guard` shows the
//! errors alone.

use std::os::fd::AsRawFd as _;

/// Whether stderr is the journal stream systemd set up (`JOURNAL_STREAM=<dev>:<ino>` and
/// stderr is that file), not merely an inherited variable.
#[must_use]
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    // SAFETY: an all-zero stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on the process's stderr descriptor with a stat we own.
    if unsafe { libc::fstat(std::io::stderr().as_raw_fd(), &raw mut st) } != 0 {
        return false;
    }
    matches_stream(&value.to_string_lossy(), st.st_dev, st.st_ino)
}

/// Whether a `JOURNAL_STREAM` value names the file with this device and inode.
#[must_use]
pub fn matches_stream(value: &str, dev: u64, ino: u64) -> bool {
    value
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        .is_some_and(|stream| stream == (dev, ino))
}

/// The sd-daemon prefix of a log level: error `<3>`, warning `<4>`, info `<6>`, debug and
/// trace `<7>`.
#[must_use]
pub fn prefix(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "<3>",
        log::Level::Warn => "<4>",
        log::Level::Info => "<6>",
        log::Level::Debug | log::Level::Trace => "<7>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        for (level, want) in [
            (log::Level::Error, "<3>"),
            (log::Level::Warn, "<4>"),
            (log::Level::Info, "<6>"),
            (log::Level::Debug, "<7>"),
            (log::Level::Trace, "<7>"),
        ] {
            assert_eq!(prefix(level), want, "{level}");
        }
    }

    #[test]
    fn the_stream_must_be_stderr_itself() {
        // (JOURNAL_STREAM, stderr's device, inode, whether it is the journal)
        for (value, dev, ino, want) in [
            ("8:12345", 8, 12345, true),
            ("8:12345", 8, 12346, false),
            ("9:12345", 8, 12345, false),
            ("8", 8, 12345, false),
            ("", 0, 0, false),
            ("x:y", 0, 0, false),
        ] {
            assert_eq!(matches_stream(value, dev, ino), want, "{value}");
        }
    }
}

//! The service process's own resources, as Prometheus's client libraries export them
//! (`process_*`): CPU time, memory, open descriptors, start time. Read from /proc/self.

use std::path::Path;

/// The `process_*` facts; a field that could not be read is `None` and left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Process {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

impl Process {
    /// Reads this process's facts.
    #[must_use]
    pub fn read() -> Self {
        let proc = Path::new("/proc/self");
        let stat = std::fs::read_to_string(proc.join("stat")).ok();
        let boot = std::fs::read_to_string("/proc/stat").ok();
        let mut facts = stat
            .as_deref()
            .map(|stat| from_stat(stat, boot.as_deref(), ticks_per_second(), page_size()))
            .unwrap_or_default();
        facts.open_fds = std::fs::read_dir(proc.join("fd"))
            .ok()
            .map(|d| d.count() as u64);
        facts.max_fds = max_fds();
        facts
    }
}

/// Parses `/proc/self/stat` (see proc_pid_stat(5)) and the `btime` of `/proc/stat`.
#[must_use]
pub fn from_stat(stat: &str, proc_stat: Option<&str>, ticks: f64, page: u64) -> Process {
    // The command name, field 2, is in parentheses and may hold spaces: fields are counted
    // after its closing one, starting with field 3 (state).
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return Process::default();
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field n (1-based, proc_pid_stat(5)) is fields[n - 3].
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let boot = proc_stat.and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    Process {
        cpu_seconds: field(14)
            .zip(field(15))
            .map(|(utime, stime)| (utime + stime) as f64 / ticks),
        virtual_bytes: field(23),
        resident_bytes: field(24).map(|pages| pages * page),
        start_time_seconds: field(22)
            .zip(boot)
            .map(|(start, boot)| boot as f64 + start as f64 / ticks),
        open_fds: None,
        max_fds: None,
    }
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).unwrap_or(4096)
}

fn max_fds() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid resource and a pointer to an rlimit we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) };
    (rc == 0).then_some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with spaces and a parenthesis, then fields 3.. of proc_pid_stat(5):
        // utime 250 and stime 50 ticks, starttime 1000 ticks, vsize 8 MiB, rss 256 pages.
        let stat = "42 (icmp (guard) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 8388608 256 18446744073709551615";
        let p = from_stat(stat, Some("cpu 1 2 3\nbtime 1795800000\n"), 100.0, 4096);
        assert_eq!(p.cpu_seconds, Some(3.0));
        assert_eq!(p.virtual_bytes, Some(8_388_608));
        assert_eq!(p.resident_bytes, Some(256 * 4096));
        assert_eq!(p.start_time_seconds, Some(1_795_800_010.0));
        assert_eq!(from_stat("garbage", None, 100.0, 4096), Process::default());
    }

    #[test]
    fn this_process_reads() {
        let p = Process::read();
        assert!(p.cpu_seconds.is_some() && p.resident_bytes.is_some_and(|b| b > 0));
        assert!(p.open_fds.is_some_and(|n| n >= 3) && p.max_fds.is_some());
        assert!(p.start_time_seconds.is_some());
    }
}

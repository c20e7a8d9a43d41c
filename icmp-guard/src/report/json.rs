//! The JSON shapes of `status --json` and `stats --json`, built from a [`Snapshot`], and of
//! each line of `stats --watch --json`, built from [`Rates`].
//!
//! Fields are declared in alphabetical order, so the output keeps the key order it has always
//! had (scripts that diff it stay quiet).

use std::{collections::BTreeMap, path::Path, time::UNIX_EPOCH};

use serde::Serialize;

use super::{Rates, Snapshot};
use crate::{
    kernel::{AttachMode, IfaceName},
    pinned::health::Health,
    policy::{self, KNOBS},
};

/// One element of `status --json`.
#[derive(Debug, Serialize)]
pub struct Status<'a> {
    /// Seconds since the Unix epoch.
    pub attached_at: u64,
    pub dry_run: bool,
    /// Whether the guard is attached now, and if not, why.
    pub health: Health,
    pub ifindex: u32,
    pub interface: &'a IfaceName,
    /// Every knob by name.
    pub limits: BTreeMap<&'static str, u32>,
    pub lists: Lists,
    pub mode: AttachMode,
    /// The inode of the interface's network namespace (as `lsns -t net` lists it).
    pub netns: u64,
    pub pins: &'a Path,
    pub program_id: u32,
    pub sources: Fill,
    /// The policy in one line.
    pub summary: String,
}

/// Sizes of the allow and deny lists.
#[derive(Debug, Serialize)]
pub struct Lists {
    pub allow: usize,
    pub deny: usize,
}

/// How full the per-source map is, and what it costs.
#[derive(Debug, Serialize)]
pub struct Fill {
    /// Bytes the kernel charges for the map (all preallocated).
    pub bytes: u64,
    pub capacity: u32,
    pub tracked: usize,
}

/// `stats --json`.
#[derive(Debug, Serialize)]
pub struct Stats<'a> {
    /// Every counter by name.
    pub counters: BTreeMap<&'static str, u64>,
    pub dry_run: bool,
    /// Whether the guard is attached now: counters that do not move may mean it is not.
    pub health: Health,
    pub interface: &'a IfaceName,
    pub top_sources: Vec<TopSource>,
}

/// One of the top sources.
#[derive(Debug, Serialize)]
pub struct TopSource {
    pub dropped: u64,
    pub passed: u64,
    /// The prefix its bucket aggregates.
    pub source: String,
}

/// One line of `stats --watch --json`: `stats --json` with the rates since the line before.
#[derive(Debug, Serialize)]
pub struct Watch<'a> {
    /// Every counter's total by name.
    pub counters: BTreeMap<&'static str, u64>,
    pub dry_run: bool,
    /// Whether the guard is attached now: rates of 0 may mean it is not.
    pub health: Health,
    pub interface: &'a IfaceName,
    /// Seconds measured between this line's read and the one before: what the rates are over.
    pub interval_secs: f64,
    /// Every counter's change per second over `interval_secs`, by name.
    pub rates: BTreeMap<&'static str, f64>,
    /// When the counters were read: seconds since the Unix epoch, to the millisecond.
    pub timestamp: f64,
    /// The sources dropping the most now (then passing the most); only those that moved.
    pub top_sources: Vec<SourceRates>,
}

/// One of the top sources of a `stats --watch --json` line.
#[derive(Debug, Serialize)]
pub struct SourceRates {
    pub dropped: u64,
    pub dropped_per_sec: f64,
    pub passed: u64,
    pub passed_per_sec: f64,
    /// The prefix its bucket aggregates.
    pub source: String,
}

impl Rates<'_> {
    /// These rates as a line of `stats --watch --json` shows them, with `top` sources.
    #[must_use]
    pub fn json(&self, top: usize) -> Watch<'_> {
        let millis = self
            .at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        Watch {
            counters: self
                .counters
                .iter()
                .map(|(r, n, _)| (r.name(), *n))
                .collect(),
            dry_run: self.now.config.dry_run(),
            health: self.now.health,
            interface: &self.now.interface,
            interval_secs: self.elapsed.as_secs_f64(),
            rates: self
                .counters
                .iter()
                .map(|(r, _, rate)| (r.name(), *rate))
                .collect(),
            timestamp: millis as f64 / 1000.0,
            top_sources: self
                .top(top)
                .iter()
                .map(|s| SourceRates {
                    dropped: s.dropped,
                    dropped_per_sec: s.dropped_per_sec,
                    passed: s.passed,
                    passed_per_sec: s.passed_per_sec,
                    source: self.now.source_name(&s.key),
                })
                .collect(),
        }
    }
}

impl Snapshot {
    /// This guard as `status --json` lists it.
    #[must_use]
    pub fn status(&self) -> Status<'_> {
        let cfg = &self.config;
        Status {
            attached_at: cfg.attached_at,
            dry_run: cfg.dry_run(),
            health: self.health,
            ifindex: cfg.ifindex,
            interface: &self.interface,
            limits: KNOBS.iter().map(|k| (k.name, (k.get)(cfg))).collect(),
            lists: Lists {
                allow: self.allow,
                deny: self.deny,
            },
            mode: self.mode,
            netns: self.netns.inode,
            pins: &self.pins,
            program_id: self.program_id,
            sources: Fill {
                bytes: self.table.bytes,
                capacity: self.table.capacity,
                tracked: self.tracked,
            },
            summary: policy::describe(cfg),
        }
    }

    /// This guard as `stats --json` shows it, with `top` sources.
    #[must_use]
    pub fn stats(&self, top: usize) -> Stats<'_> {
        Stats {
            counters: self.counters.iter().map(|(r, n)| (r.name(), *n)).collect(),
            dry_run: self.config.dry_run(),
            health: self.health,
            interface: &self.interface,
            top_sources: self
                .top(top)
                .iter()
                .map(|s| TopSource {
                    dropped: s.dropped,
                    passed: s.passed,
                    source: self.source_name(&s.key),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::{Rates, rates::tests::moved, tests::sample};

    /// A `stats --watch --json` line: one object on one line, its rates over the time measured.
    #[test]
    fn a_watch_line_is_one_object_with_rates_and_totals() {
        let (before, now) = moved();
        let at = UNIX_EPOCH + Duration::from_millis(1_795_876_339_250);
        let rates = Rates::between(&before, &now, Duration::from_millis(500), at);
        let line = serde_json::to_string(&rates.json(1)).unwrap();
        assert!(!line.contains('\n'), "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["timestamp"], 1_795_876_339.25, "{line}");
        assert_eq!(value["interval_secs"], 0.5, "{line}");
        assert_eq!(value["interface"], "eth0", "{line}");
        assert_eq!(value["counters"]["passed"], 21, "{line}");
        assert_eq!(value["rates"]["passed"], 40.0, "{line}");
        assert_eq!(value["rates"]["passed_exempt"], 0.0, "{line}");
        assert_eq!(
            value["top_sources"],
            serde_json::json!([{"dropped": 12, "dropped_per_sec": 20.0, "passed": 4,
                "passed_per_sec": 0.0, "source": "198.51.100.0/24"}]),
            "{line}"
        );
        let keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "counters",
                "dry_run",
                "health",
                "interface",
                "interval_secs",
                "rates",
                "timestamp",
                "top_sources"
            ]
        );
    }

    /// The shapes as they were before the read model (same keys, same order, same values),
    /// plus `health` and `netns`.
    #[test]
    fn the_shapes_are_unchanged() {
        let s = sample();
        assert_eq!(
            serde_json::to_string(&[s.status()]).unwrap(),
            r#"[{"attached_at":1795876339,"dry_run":false,"health":{"state":"attached"},"ifindex":7,"interface":"eth0","limits":{"echo_burst":50,"echo_rate":20,"exempt_burst":20000,"exempt_rate":10000,"global_burst":4000,"global_rate":2000,"max_echo_size":9216,"max_sources":65536,"new_source_burst":200,"new_source_rate":100,"reply_burst":200,"reply_rate":100,"v4_prefix":24,"v6_prefix":64},"lists":{"allow":1,"deny":0},"mode":"native","netns":4026531840,"pins":"/sys/fs/bpf/icmp-guard/netns:4026531840:1/eth0","program_id":13,"sources":{"bytes":7340032,"capacity":65536,"tracked":2},"summary":"echo 20/s burst 50 per source, replies 100/s burst 200, global 2000/s burst 4000, new sources 100/s burst 200, exempt 10000/s burst 20000, sources by /24 and /64, max echo size 9216 bytes, up to 65536 sources"}]"#
        );
        assert_eq!(
            serde_json::to_string(&s.stats(1)).unwrap(),
            r#"{"counters":{"allowed":8,"dropped_broadcast":11,"dropped_denied":12,"dropped_ext_headers":15,"dropped_malformed":5,"dropped_martian":13,"dropped_new_source":16,"dropped_oversize":6,"dropped_rate_exempt":17,"dropped_rate_global":9,"dropped_rate_reply":10,"dropped_rate_source":7,"dropped_unknown_type":14,"passed":1,"passed_exempt":2,"passed_non_icmp":0,"passed_unmetered":3,"passed_unparsed":4},"dry_run":false,"health":{"state":"attached"},"interface":"eth0","top_sources":[{"dropped":2,"passed":4,"source":"198.51.100.0/24"}]}"#
        );
    }
}

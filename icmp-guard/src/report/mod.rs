//! The read model: one [`Snapshot`] of a guarded interface, read once by [`Snapshot::read`],
//! and rendered by `status`, `stats` (text, JSON, `--watch`) and the Prometheus endpoint.
//! No view reads a map, the kernel or the pins itself, so they cannot drift apart.
//!
//! - [`rates`]: what `stats --watch` shows, the rates between two snapshots;
//! - [`json`]: the `Serialize` shapes of `status --json`, `stats --json` and each line of
//!   `stats --watch --json`;
//! - [`text`]: the tables of `status`, `stats` and `stats --watch`;
//! - [`prometheus`]: the exposition served on `/metrics`;
//! - [`process`]: the service process's own resources, for `/metrics`.

pub mod json;
pub mod process;
pub mod prometheus;
pub mod rates;
pub mod text;

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use icmp_guard_common::{Config, Reason, SourceKey, policy::List};

pub use self::rates::Rates;
use crate::{
    Error,
    kernel::{AttachMode, IfaceName, netlink, netns::Netns},
    pinned::{
        Guard, Pins,
        health::Health,
        maps::{SourceTable, SourceTotals},
    },
};

/// Everything the views show about one guarded interface, read at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub interface: IfaceName,
    /// The folder of its pins.
    pub pins: PathBuf,
    /// The network namespace of the interface.
    pub netns: Netns,
    /// Whether the guard is attached, as the kernel says now.
    pub health: Health,
    /// The config map's value: limits, dry-run, where and when it was attached.
    pub config: Config,
    /// The program the pinned link holds.
    pub program_id: u32,
    /// The attach mode, by [`reported_mode`].
    pub mode: AttachMode,
    /// Every counter, in [`Reason::ALL`] order.
    pub counters: Vec<(Reason, u64)>,
    /// The tracked source prefixes read with their totals, most drops first (see [`rank`]):
    /// all of them, or the first few ([`Keep`]).
    pub sources: Vec<SourceTotals>,
    /// How many source prefixes are tracked.
    pub tracked: usize,
    /// Capacity and memory of the per-source map.
    pub table: SourceTable,
    /// Prefixes in the allow and deny lists.
    pub allow: usize,
    pub deny: usize,
}

/// Which sources a [`Snapshot`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Every one: for rates, which compare two reads source by source.
    All,
    /// The first `n` by rank, and the count of the rest: for views that show only those,
    /// which then hold `n` sources however large the table (16,777,216 entries would take
    /// 768 MiB read whole).
    Top(usize),
}

impl Snapshot {
    /// Reads the guard of `iface` under `bpffs`.
    pub fn open(bpffs: &Path, iface: &IfaceName, keep: Keep) -> Result<Self, Error> {
        Self::read(&Guard::open(Pins::new(bpffs, iface)?)?, keep)
    }

    /// Reads every fact the views show from an open guard.
    pub fn read(guard: &Guard, keep: Keep) -> Result<Self, Error> {
        let config = guard.maps.config()?;
        let program_id = guard.program_id()?;
        let health = Health::of(guard)?;
        let (sources, tracked) = match keep {
            Keep::All => {
                let mut sources = guard.maps.sources()?;
                rank(&mut sources);
                let tracked = sources.len();
                (sources, tracked)
            }
            Keep::Top(n) => guard.maps.top_sources(n)?,
        };
        Ok(Self {
            interface: guard.pins.iface.clone(),
            pins: guard.pins.dir.clone(),
            netns: guard.pins.netns,
            health,
            mode: reported_mode(&config, program_id),
            program_id,
            counters: guard.maps.counters()?,
            sources,
            tracked,
            table: guard.maps.source_table()?,
            allow: guard.maps.list(List::Allow)?.len(),
            deny: guard.maps.list(List::Deny)?.len(),
            config,
        })
    }

    /// The `n` sources with the most drops (then the most passes).
    #[must_use]
    pub fn top(&self, n: usize) -> &[SourceTotals] {
        &self.sources[..n.min(self.sources.len())]
    }

    /// Frames passed, all reasons together.
    #[must_use]
    pub fn passed(&self) -> u64 {
        total(&self.counters, false)
    }

    /// Frames dropped (or that would be, in a dry run), all reasons together.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        total(&self.counters, true)
    }

    /// One counter.
    #[must_use]
    pub fn counter(&self, reason: Reason) -> u64 {
        counter(&self.counters, reason)
    }

    /// A source key as the prefix its bucket aggregates under this guard's config.
    #[must_use]
    pub fn source_name(&self, key: &SourceKey) -> String {
        format_source(key, &self.config)
    }
}

/// The attach mode to report: the kernel's word when the interface still carries the
/// program the pinned link holds, else the mode the loader recorded at attach. The one
/// place that decides it.
#[must_use]
pub fn reported_mode(config: &Config, program_id: u32) -> AttachMode {
    netlink::xdp_state(config.ifindex)
        .ok()
        .flatten()
        .filter(|state| state.program_id == program_id)
        .map_or_else(
            || AttachMode::from_recorded(config.attach_mode),
            |state| state.mode,
        )
}

/// Frames counted under drop reasons (`drops`) or pass reasons, all together: for every
/// list of counters by reason (a guard's, a replay's).
#[must_use]
pub fn total(counters: &[(Reason, u64)], drops: bool) -> u64 {
    counters
        .iter()
        .filter(|(r, _)| r.is_drop() == drops)
        .map(|(_, n)| n)
        .sum()
}

/// One counter of a list of counters by reason; 0 if it is not there.
#[must_use]
pub fn counter(counters: &[(Reason, u64)], reason: Reason) -> u64 {
    counters
        .iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| *n)
}

/// Orders sources most drops first, then most passes, then by key.
pub fn rank(sources: &mut [SourceTotals]) {
    sources.sort_unstable_by_key(|s| std::cmp::Reverse(s.rank()));
}

/// A source key as the prefix it aggregates, e.g. `198.51.100.0/24` or `2001:db8:1::/64`.
#[must_use]
pub fn format_source(key: &SourceKey, cfg: &Config) -> String {
    match key.as_v4() {
        Some(v4) => format!("{}/{}", Ipv4Addr::from(v4), cfg.v4_prefix),
        None => format!("{}/{}", Ipv6Addr::from(key.addr), cfg.v6_prefix),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn totals(last: u8, passed: u64, dropped: u64) -> SourceTotals {
        SourceTotals {
            key: SourceKey::v4([198, 51, 100, last]),
            passed,
            dropped,
        }
    }

    /// A snapshot with fixed contents, for the views' tests.
    pub(crate) fn sample() -> Snapshot {
        let mut config = Config::with_defaults();
        config.v4_prefix = 24;
        config.ifindex = 7;
        config.attached_at = 1_795_876_339;
        config.attach_mode = AttachMode::Native.recorded();
        let counters = Reason::ALL
            .iter()
            .enumerate()
            .map(|(i, r)| (*r, i as u64))
            .collect();
        let mut sources = vec![totals(0, 4, 2), totals(9, 1, 0)];
        rank(&mut sources);
        let tracked = sources.len();
        Snapshot {
            interface: "eth0".parse().unwrap(),
            pins: PathBuf::from("/sys/fs/bpf/icmp-guard/netns:4026531840:1/eth0"),
            netns: Netns {
                inode: 4_026_531_840,
                cookie: 1,
            },
            health: Health::Attached,
            config,
            program_id: 13,
            mode: AttachMode::Native,
            counters,
            sources,
            tracked,
            table: SourceTable {
                capacity: 65536,
                bytes: 7_340_032,
            },
            allow: 1,
            deny: 0,
        }
    }

    #[test]
    fn sources_rank_by_drops_then_passes() {
        let mut sources = vec![
            totals(1, 5, 0),
            totals(2, 1, 9),
            totals(3, 7, 9),
            totals(4, 0, 1),
        ];
        rank(&mut sources);
        let order: Vec<_> = sources.iter().map(|s| s.key.addr[15]).collect();
        assert_eq!(order, [3, 2, 4, 1]);
    }

    #[test]
    fn sources_read_as_their_prefix() {
        let mut cfg = Config::with_defaults();
        assert_eq!(
            format_source(&SourceKey::v4([203, 0, 113, 9]), &cfg),
            "203.0.113.9/32"
        );
        cfg.v4_prefix = 24;
        assert_eq!(
            format_source(&SourceKey::v4([203, 0, 113, 0]), &cfg),
            "203.0.113.0/24"
        );
        let mut v6 = SourceKey { addr: [0; 16] };
        v6.addr[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1]);
        assert_eq!(format_source(&v6, &cfg), "2001:db8:1::/64");
    }

    #[test]
    fn totals_split_by_verdict() {
        let s = sample();
        let all: u64 = s.counters.iter().map(|(_, n)| n).sum();
        assert_eq!(s.passed() + s.dropped(), all);
        assert_eq!(s.top(1).len(), 1);
        assert_eq!(s.top(10).len(), 2);
    }
}

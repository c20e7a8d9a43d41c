//! `icmp-guard replay`: what a policy would have done to a captured flood.
//!
//! Every frame of a capture ([`capture`]) goes through the program's own decision code
//! ([`icmp_guard_common::policy::judge`]) over the host model ([`crate::model::HostEnv`]),
//! with the capture's time stamps as the clock, quantized as the program's coarse clock is:
//! `now` steps once per clock tick (a jiffy, [`crate::kernel::clock_tick_ns`]), counted from
//! the first frame, which is taken to arrive on a tick. A time stamp earlier than the one
//! before (captures from several queues interleave) is taken as the one before, as the
//! program's monotonic clock would. [`Replay::finish`] gives a [`Summary`]: counts by
//! reason, the top sources, a per-second timeline and, asked for, per-source peak rates
//! ([`suggest`]) and the frames the real program judged otherwise ([`kernel`]).

pub mod capture;
pub mod kernel;
pub mod policy;
pub mod progress;
pub mod render;
pub mod suggest;

use std::collections::{BTreeMap, HashMap};

use icmp_guard_common::{
    Config, Reason, SourceKey,
    bucket::Class,
    parse,
    policy::{Kind, kind_of, screening_drop_of_a_source, with_known_source},
};

use crate::{
    model::{CLOCK_START_NS, HostEnv},
    pinned::maps::SourceTotals,
    policy::Cidr,
    report,
};

/// Sources whose passes and drops are tallied one by one; beyond this many, a capture of
/// spoofed sources would hold memory without bound, so the rest are tallied together.
pub const TALLY_MAX: usize = 1 << 16;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Whether `reason` is an outcome of metering a source: the load `--suggest` measures, and
/// (with the screening's drops of sources that have an entry) what `stats` attributes to a
/// source.
#[must_use]
pub const fn metered(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::Passed
            | Reason::PassedUnmetered
            | Reason::DroppedRateSource
            | Reason::DroppedRateGlobal
            | Reason::DroppedRateReply
            | Reason::DroppedNewSource
    )
}

/// Passes and drops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub dropped: u64,
}

impl Tally {
    fn add(&mut self, reason: Reason) {
        if reason.is_drop() {
            self.dropped += 1;
        } else {
            self.passed += 1;
        }
    }
}

/// A replay in progress.
pub struct Replay {
    env: HostEnv,
    tick_ns: u64,
    first_ts: Option<u64>,
    last_ts: u64,
    out_of_order: u64,
    frames: u64,
    truncated: u64,
    first_truncated: Option<(u64, u32, u32)>,
    outgoing: u64,
    other_link: u64,
    first_other_link: Option<(u64, u32)>,
    sources: HashMap<SourceKey, Tally>,
    untallied: Tally,
    timeline: BTreeMap<u64, Tally>,
    rates: Option<suggest::Meters>,
}

/// What a replay found.
#[derive(Debug)]
pub struct Summary {
    pub config: Config,
    pub tick_ns: u64,
    /// Records read: judged, truncated, outgoing and other links' ones.
    pub frames: u64,
    /// Frames judged.
    pub judged: u64,
    /// Frames the capture holds only part of, skipped; the first one: (number, captured,
    /// original length).
    pub truncated: u64,
    pub first_truncated: Option<(u64, u32, u32)>,
    /// Frames the capturing host sent, skipped: XDP never sees them.
    pub outgoing: u64,
    /// Frames of pcapng interfaces whose link type replay does not read, skipped; the first
    /// one: (number, link type).
    pub other_link: u64,
    pub first_other_link: Option<(u64, u32)>,
    /// Time stamps earlier than the one before, taken as that one.
    pub out_of_order: u64,
    /// The first judged frame's time stamp (ns since the epoch) and the capture's length.
    pub start_ns: Option<u64>,
    pub duration_ns: u64,
    /// Every reason with its count, in `Reason::ALL` order.
    pub counters: Vec<(Reason, u64)>,
    /// Sources by the prefix they are metered as, most drops first.
    pub sources: Vec<SourceTotals>,
    /// Frames counted per source (as `stats` would) of sources beyond [`TALLY_MAX`].
    pub untallied: Tally,
    /// Sources the model's table evicted to stay within `max_sources`.
    pub evicted: u64,
    /// Passes and drops per second since the first frame (seconds without frames left out).
    pub timeline: Vec<(u64, Tally)>,
    pub rates: Option<suggest::Measured>,
}

impl Summary {
    /// The count of `reason`.
    #[must_use]
    pub fn counter(&self, reason: Reason) -> u64 {
        report::counter(&self.counters, reason)
    }

    /// Frames judged to drop (in a dry run: that would be dropped if enforcing).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        report::total(&self.counters, true)
    }

    /// A source as the prefix it is metered as.
    #[must_use]
    pub fn source_name(&self, key: &SourceKey) -> String {
        report::format_source(key, &self.config)
    }
}

impl Replay {
    /// A replay of `config` (derived for `tick_ns`) with the lists; with `measure`, the
    /// per-source rates `--suggest` needs are measured too.
    #[must_use]
    pub fn new(config: Config, allow: &[Cidr], deny: &[Cidr], tick_ns: u64, measure: bool) -> Self {
        Self {
            env: HostEnv::new(config, allow, deny),
            tick_ns: tick_ns.max(1),
            first_ts: None,
            last_ts: 0,
            out_of_order: 0,
            frames: 0,
            truncated: 0,
            first_truncated: None,
            outgoing: 0,
            other_link: 0,
            first_other_link: None,
            sources: HashMap::new(),
            untallied: Tally::default(),
            timeline: BTreeMap::new(),
            rates: measure.then(suggest::Meters::default),
        }
    }

    /// The config in force, with the list sizes.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.env.config
    }

    /// The program's clock when a frame stamped `ts_ns` arrives: whole ticks since the first
    /// frame, from [`CLOCK_START_NS`].
    #[must_use]
    pub fn clock_at(first_ts: u64, ts_ns: u64, tick_ns: u64) -> u64 {
        let since = ts_ns.saturating_sub(first_ts);
        CLOCK_START_NS.saturating_add(since / tick_ns * tick_ns)
    }

    /// Takes one record of the capture; the reason of a judged frame.
    pub fn take(&mut self, record: &capture::Record) -> Option<Reason> {
        self.frames += 1;
        match record {
            capture::Record::Frame { ts_ns, frame, .. } => Some(self.judge(*ts_ns, frame)),
            capture::Record::Truncated {
                number,
                captured,
                original,
            } => {
                self.truncated += 1;
                self.first_truncated
                    .get_or_insert((*number, *captured, *original));
                None
            }
            capture::Record::Outgoing { .. } => {
                self.outgoing += 1;
                None
            }
            capture::Record::OtherLink { number, linktype } => {
                self.other_link += 1;
                self.first_other_link.get_or_insert((*number, *linktype));
                None
            }
        }
    }

    /// Judges a frame that arrived at `ts_ns` (ns since the epoch).
    pub fn judge(&mut self, ts_ns: u64, frame: &[u8]) -> Reason {
        let first = *self.first_ts.get_or_insert(ts_ns);
        let ts = if ts_ns < self.last_ts {
            self.out_of_order += 1;
            self.last_ts
        } else {
            ts_ns
        };
        self.last_ts = ts;
        self.env.now_ns = Self::clock_at(first, ts, self.tick_ns);
        let reason = self.env.run(frame);
        let since = ts - first;
        self.timeline
            .entry(since / NS_PER_SEC)
            .or_default()
            .add(reason);
        let screened = screening_drop_of_a_source(reason);
        if (metered(reason) || screened)
            && let Ok(pkt) = parse::parse_frame(frame)
        {
            let cfg = &self.env.config;
            let key = pkt.src.masked(cfg.mask(pkt.family));
            // As the program counts them: metered frames in their source's entry, but for
            // sources refused admission, which get none; screening drops in the entry of a
            // source that has one (the filter and the entry are as the judgement left them).
            let counted = if screened {
                with_known_source(&self.env, cfg, &key, |_| ()).is_some()
            } else {
                reason != Reason::DroppedNewSource
            };
            if counted {
                let full = self.sources.len() >= TALLY_MAX;
                match self.sources.get_mut(&key) {
                    Some(tally) => tally.add(reason),
                    None if full => self.untallied.add(reason),
                    None => self.sources.entry(key).or_default().add(reason),
                }
            }
            if !screened && let Some(rates) = &mut self.rates {
                let class = match kind_of(&pkt) {
                    Kind::Reply => Class::Reply,
                    _ => Class::Echo,
                };
                rates.add(key, class, since);
            }
        }
        reason
    }

    /// What the replay found.
    #[must_use]
    pub fn finish(self) -> Summary {
        let mut sources: Vec<SourceTotals> = self
            .sources
            .into_iter()
            .map(|(key, t)| SourceTotals {
                key,
                passed: t.passed,
                dropped: t.dropped,
            })
            .collect();
        report::rank(&mut sources);
        let counters = Reason::ALL
            .iter()
            .map(|r| (*r, self.env.counters[r.slot() as usize]))
            .collect();
        let judged = self.frames - self.truncated - self.outgoing - self.other_link;
        let evicted = self.env.sources.borrow().evicted;
        Summary {
            config: self.env.config,
            tick_ns: self.tick_ns,
            frames: self.frames,
            judged,
            truncated: self.truncated,
            first_truncated: self.first_truncated,
            outgoing: self.outgoing,
            other_link: self.other_link,
            first_other_link: self.first_other_link,
            out_of_order: self.out_of_order,
            start_ns: self.first_ts,
            duration_ns: self.first_ts.map_or(0, |f| self.last_ts - f),
            counters,
            sources,
            untallied: self.untallied,
            evicted,
            timeline: self.timeline.into_iter().collect(),
            rates: self.rates.map(suggest::Meters::finish),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (first time stamp, frame's time stamp, tick, the clock).
    #[test]
    fn the_clock_steps_once_per_tick_from_the_first_frame() {
        let s = NS_PER_SEC;
        for (first, ts, tick, clock) in [
            (5 * s, 5 * s, 4_000_000, CLOCK_START_NS),
            (5 * s, 5 * s + 3_999_999, 4_000_000, CLOCK_START_NS),
            (
                5 * s,
                5 * s + 4_000_000,
                4_000_000,
                CLOCK_START_NS + 4_000_000,
            ),
            (5 * s, 6 * s + 9_999_999, 10_000_000, CLOCK_START_NS + s),
            (5 * s, 4 * s, 4_000_000, CLOCK_START_NS),
        ] {
            assert_eq!(
                Replay::clock_at(first, ts, tick),
                clock,
                "{first} {ts} {tick}"
            );
        }
    }
}

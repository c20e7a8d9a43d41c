//! `replay --suggest`: per-source peak rates and the limits that would have passed the
//! sources below a percentile.
//!
//! Each source prefix's echo requests and its replies are counted apart, in 100 ms bins; a
//! peak is the most packets in any 10 consecutive bins (1 s) or 100 (10 s), so windows start
//! on 100 ms boundaries from the first frame (a peak straddling bins may be undercounted by
//! what falls outside the aligned window). Then, for a percentile P and a headroom H:
//!
//! - rate = ceil(H x P-th percentile of the 10 s peaks / W), W = 10 s or the capture's
//!   length in whole seconds when shorter (at least 1): a sustained rate;
//! - burst = ceil(H x P-th percentile of the 1 s peaks): a whole second at the peak fits in
//!   the bucket even if it comes back to back;
//! - global rate and burst the same way from the peaks of all metered ICMP together, and the
//!   rate at least twice the new-source rate plus one, which `set` requires.
//!
//! The percentile is nearest-rank: the smallest peak at least P % of the sources stay at or
//! below.

use std::{collections::HashMap, fmt::Write as _};

use icmp_guard_common::{
    Config, SourceKey,
    bucket::{Class, MAX_RATE},
};

use super::TALLY_MAX;
use crate::policy::{KNOBS, Overrides};

const BIN_NS: u64 = 100_000_000;
const BINS: usize = 100;
const BINS_PER_SEC: u64 = 10;

/// The peaks of one stream of packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peaks {
    /// Most packets in any 1 s window.
    pub one_sec: u64,
    /// Most packets in any 10 s window.
    pub ten_sec: u64,
    pub total: u64,
}

/// A sliding count over the last 100 bins.
#[derive(Clone, Debug)]
pub struct Meter {
    ring: Box<[u32; BINS]>,
    bin: Option<u64>,
    sum_1s: u64,
    sum_10s: u64,
    pub peaks: Peaks,
}

impl Default for Meter {
    fn default() -> Self {
        Self {
            ring: Box::new([0; BINS]),
            bin: None,
            sum_1s: 0,
            sum_10s: 0,
            peaks: Peaks::default(),
        }
    }
}

impl Meter {
    /// Counts a packet `since_ns` after the capture's first frame (never earlier than the
    /// packet before).
    pub fn add(&mut self, since_ns: u64) {
        let b = since_ns / BIN_NS;
        match self.bin {
            Some(current) if b > current => {
                if b - current >= BINS as u64 {
                    *self.ring = [0; BINS];
                    self.sum_1s = 0;
                    self.sum_10s = 0;
                } else {
                    for k in current + 1..=b {
                        // Bin k - 100 leaves the 10 s window (its slot is reused for k), bin
                        // k - 10 the 1 s window.
                        let slot = (k % BINS as u64) as usize;
                        self.sum_10s -= u64::from(self.ring[slot]);
                        self.ring[slot] = 0;
                        if k >= BINS_PER_SEC {
                            let old = ((k - BINS_PER_SEC) % BINS as u64) as usize;
                            self.sum_1s -= u64::from(self.ring[old]);
                        }
                    }
                }
                self.bin = Some(b);
            }
            Some(_) => {}
            None => self.bin = Some(b),
        }
        let slot = (self.bin.unwrap_or(b) % BINS as u64) as usize;
        self.ring[slot] = self.ring[slot].saturating_add(1);
        self.sum_1s += 1;
        self.sum_10s += 1;
        self.peaks.one_sec = self.peaks.one_sec.max(self.sum_1s);
        self.peaks.ten_sec = self.peaks.ten_sec.max(self.sum_10s);
        self.peaks.total += 1;
    }
}

/// Meters per source and class, and one over all metered ICMP.
#[derive(Default)]
pub struct Meters {
    /// By source and class (its slot: `Class` is not `Hash`).
    sources: HashMap<(SourceKey, u32), Meter>,
    all: Meter,
    /// Packets of sources beyond [`TALLY_MAX`], in the aggregate only.
    unmeasured: u64,
}

impl Meters {
    pub fn add(&mut self, key: SourceKey, class: Class, since_ns: u64) {
        self.all.add(since_ns);
        let full = self.sources.len() >= TALLY_MAX;
        match self.sources.get_mut(&(key, class.slot())) {
            Some(meter) => meter.add(since_ns),
            None if full => self.unmeasured += 1,
            None => self
                .sources
                .entry((key, class.slot()))
                .or_default()
                .add(since_ns),
        }
    }

    #[must_use]
    pub fn finish(self) -> Measured {
        let mut sources: Vec<(SourceKey, Class, Peaks)> = self
            .sources
            .into_iter()
            .map(|((key, slot), m)| {
                let class = if slot == Class::Reply.slot() {
                    Class::Reply
                } else {
                    Class::Echo
                };
                (key, class, m.peaks)
            })
            .collect();
        sources.sort_unstable_by(|a, b| {
            (b.2.one_sec, b.2.ten_sec, a.0, a.1.slot()).cmp(&(
                a.2.one_sec,
                a.2.ten_sec,
                b.0,
                b.1.slot(),
            ))
        });
        Measured {
            sources,
            all: self.all.peaks,
            unmeasured: self.unmeasured,
        }
    }
}

/// What was measured: peaks per source and class, highest 1 s peak first, and of all.
#[derive(Debug, Clone)]
pub struct Measured {
    pub sources: Vec<(SourceKey, Class, Peaks)>,
    pub all: Peaks,
    pub unmeasured: u64,
}

/// `x` rounded up, but not past a whole number it misses only by floating-point error:
/// 7% of 100 is 7.000000000000001 and 1.1 x 100 is 110.00000000000001, which must give 7 and
/// 110, not 8 and 111.
fn ceil(x: f64) -> f64 {
    (x * (1.0 - 1e-12)).ceil()
}

/// The nearest-rank `percentile` (0 < p <= 100) of `values`; 0 for none.
#[must_use]
pub fn percentile(values: &mut [u64], percentile: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let n = values.len();
    let rank = ceil(percentile / 100.0 * n as f64);
    #[expect(clippy::cast_sign_loss, reason = "clamped to 1..=n below, and p > 0")]
    let rank = (rank as usize).clamp(1, n);
    values[rank - 1]
}

/// `headroom x value / per`, rounded up, within `min..=max`.
#[must_use]
pub fn scaled(value: u64, headroom: f64, per: u64, min: u32, max: u32) -> u32 {
    let x = ceil(value as f64 * headroom / per.max(1) as f64);
    if x.is_nan() || x < f64::from(min) {
        min
    } else if x >= f64::from(max) {
        max
    } else {
        #[expect(clippy::cast_sign_loss, reason = "x is within min..max here")]
        let x = x as u32;
        x
    }
}

/// A suggested rate and burst, with the numbers behind them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Sources (or 1 for the aggregate) measured.
    pub sources: usize,
    /// The percentile's 1 s and 10 s peaks (the aggregate's own for the global limits).
    pub peak_1s: u64,
    pub peak_10s: u64,
    pub rate: u32,
    pub burst: u32,
}

/// The suggested limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub percentile: f64,
    pub headroom: f64,
    /// The window the sustained rate is measured over, in seconds.
    pub window_secs: u64,
    pub echo: Option<Limits>,
    pub reply: Option<Limits>,
    pub global: Option<Limits>,
    /// Set when the global rate was raised to stay above twice the new-source rate.
    pub global_raised_for_new_sources: bool,
}

impl Suggestion {
    /// The limits for `measured` over a capture of `duration_ns`, under `config` (for the
    /// new-source rate).
    #[must_use]
    pub fn new(
        measured: &Measured,
        duration_ns: u64,
        config: &Config,
        pct: f64,
        headroom: f64,
    ) -> Self {
        let window_secs = duration_ns.div_ceil(1_000_000_000).clamp(1, 10);
        let class_limits = |class: Class| {
            let (mut ones, mut tens): (Vec<u64>, Vec<u64>) = measured
                .sources
                .iter()
                .filter(|(_, c, _)| *c == class)
                .map(|(_, _, p)| (p.one_sec, p.ten_sec))
                .unzip();
            if ones.is_empty() {
                return None;
            }
            let second = percentile(&mut ones, pct);
            let ten_seconds = percentile(&mut tens, pct);
            Some(Limits {
                sources: ones.len(),
                peak_1s: second,
                peak_10s: ten_seconds,
                rate: scaled(ten_seconds, headroom, window_secs, 1, MAX_RATE),
                burst: scaled(second, headroom, 1, 1, u32::MAX),
            })
        };
        let mut raised = false;
        let global = (measured.all.total > 0).then(|| {
            let floor = config
                .new_source
                .rate
                .saturating_mul(2)
                .saturating_add(1)
                .min(MAX_RATE);
            let rate = scaled(measured.all.ten_sec, headroom, window_secs, 1, MAX_RATE);
            raised = rate < floor;
            Limits {
                sources: 1,
                peak_1s: measured.all.one_sec,
                peak_10s: measured.all.ten_sec,
                rate: rate.max(floor),
                burst: scaled(measured.all.one_sec, headroom, 1, 1, u32::MAX),
            }
        });
        Self {
            percentile: pct,
            headroom,
            window_secs,
            echo: class_limits(Class::Echo),
            reply: class_limits(Class::Reply),
            global,
            global_raised_for_new_sources: raised,
        }
    }

    /// Checks the suggested limits over `config` as `set` would check them: a suggestion the
    /// CLI would refuse is an error, never printed.
    pub fn check(&self, config: &Config, tick_ns: u64) -> Result<(), crate::Error> {
        let mut overrides = Overrides::default();
        for (name, value) in self.values() {
            if let Some(knob) = KNOBS.iter().find(|k| k.name == name) {
                overrides.set(knob, value);
            }
        }
        overrides.apply(config, tick_ns).map(|_| ())
    }

    /// The knobs and their values, in the knob table's order.
    #[must_use]
    pub fn values(&self) -> Vec<(&'static str, u32)> {
        let mut out = Vec::new();
        for (limits, rate, burst) in [
            (self.echo, "echo_rate", "echo_burst"),
            (self.reply, "reply_rate", "reply_burst"),
            (self.global, "global_rate", "global_burst"),
        ] {
            if let Some(l) = limits {
                out.push((rate, l.rate));
                out.push((burst, l.burst));
            }
        }
        out
    }

    /// The `icmp-guard set` command that applies the limits to `iface`.
    #[must_use]
    pub fn set_command(&self, iface: &str) -> String {
        let mut line = format!("icmp-guard set {iface}");
        for (name, value) in self.values() {
            let _ = write!(line, " --{} {value}", name.replace('_', "-"));
        }
        line
    }

    /// The same limits as a config file's `[interface.limits]` table.
    #[must_use]
    pub fn toml(&self) -> String {
        let mut out = String::from("[interface.limits]\n");
        for (name, value) in self.values() {
            let _ = writeln!(out, "{name} = {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_ranks_and_limits_are_not_rounded_past_by_float_error() {
        let mut values: Vec<u64> = (1..=100).collect();
        // (percentile, rank)
        for (p, rank) in [
            (7.0, 7),
            (14.0, 14),
            (28.0, 28),
            (55.0, 55),
            (56.0, 56),
            (7.5, 8),
        ] {
            assert_eq!(percentile(&mut values, p), rank, "p{p}");
        }
        // (value, headroom, scaled)
        for (value, headroom, want) in [(100, 1.1, 110), (100, 1.0, 100), (100, 1.105, 111)] {
            assert_eq!(
                scaled(value, headroom, 1, 0, u32::MAX),
                want,
                "{value} x {headroom}"
            );
        }
    }

    /// (packet times in ms, 1 s peak, 10 s peak).
    #[test]
    fn peaks_are_the_most_packets_in_aligned_windows() {
        for (times, one, ten) in [
            (&[][..], 0, 0),
            (&[0][..], 1, 1),
            (&[0, 50, 99], 3, 3),
            // 999 ms is in bin 9, 1000 ms in bin 10: by then bin 0 has left the 1 s window.
            (&[0, 999, 1000], 2, 3),
            (&[0, 1000, 1001], 2, 3),
            (&[0, 100, 200, 5000, 9999, 10_000], 3, 5),
            // A gap longer than 10 s empties both windows.
            (&[0, 0, 0, 20_000], 3, 3),
            (&[0, 20_000, 20_000, 20_000, 20_050], 4, 4),
        ] {
            let mut m = Meter::default();
            for t in times {
                m.add(t * 1_000_000);
            }
            assert_eq!((m.peaks.one_sec, m.peaks.ten_sec), (one, ten), "{times:?}");
            assert_eq!(m.peaks.total, times.len() as u64);
        }
    }

    /// A steady stream of `pps` for `secs`: 1 s peak pps, 10 s peak pps x min(secs, 10).
    #[test]
    fn a_steady_stream_peaks_at_its_rate() {
        for (pps, secs) in [(10_u64, 3_u64), (50, 12), (1, 30)] {
            let mut m = Meter::default();
            let step = 1_000_000_000 / pps;
            for i in 0..pps * secs {
                m.add(i * step);
            }
            assert_eq!(m.peaks.one_sec, pps, "{pps} {secs}");
            assert_eq!(m.peaks.ten_sec, pps * secs.min(10), "{pps} {secs}");
        }
    }

    /// (values, percentile, nearest rank).
    #[test]
    fn percentiles_are_nearest_rank() {
        for (values, p, wanted) in [
            (&[][..], 99.0, 0),
            (&[7][..], 50.0, 7),
            (&[1, 2, 3, 4], 50.0, 2),
            (&[1, 2, 3, 4], 75.0, 3),
            (&[1, 2, 3, 4], 76.0, 4),
            (&[4, 3, 2, 1], 100.0, 4),
            (&[5, 1, 9, 3, 7, 2, 8, 4, 6, 10], 90.0, 9),
            (&[5, 1, 9, 3, 7, 2, 8, 4, 6, 10], 99.0, 10),
            (&[5, 1, 9], 0.1, 1),
        ] {
            let mut v = values.to_vec();
            assert_eq!(percentile(&mut v, p), wanted, "{values:?} {p}");
        }
    }

    /// (value, headroom, per, min, max, result).
    #[test]
    fn scaling_rounds_up_within_bounds() {
        for (value, headroom, per, min, max, wanted) in [
            (10, 1.5, 1, 1, 100, 15),
            (11, 1.5, 1, 1, 100, 17),
            (100, 1.5, 10, 1, 100, 15),
            (0, 1.5, 10, 1, 100, 1),
            (1000, 2.0, 1, 1, 100, 100),
            (7, 1.0, 0, 1, 100, 7),
        ] {
            assert_eq!(
                scaled(value, headroom, per, min, max),
                wanted,
                "{value} {headroom} {per}"
            );
        }
    }

    fn measured(sources: &[(u8, Class, u64, u64)], all: (u64, u64)) -> Measured {
        Measured {
            sources: sources
                .iter()
                .map(|&(last, class, one_sec, ten_sec)| {
                    let peaks = Peaks {
                        one_sec,
                        ten_sec,
                        total: ten_sec,
                    };
                    (SourceKey::v4([198, 51, 100, last]), class, peaks)
                })
                .collect(),
            all: Peaks {
                one_sec: all.0,
                ten_sec: all.1,
                total: all.1,
            },
            unmeasured: 0,
        }
    }

    /// (sources, aggregate peaks, capture length in s, percentile, headroom, the set line).
    #[test]
    fn suggestions_follow_the_percentile_and_the_headroom() {
        use Class::{Echo, Reply};
        for (sources, all, secs, p, h, wanted) in [
            (
                &[(1, Echo, 10, 100)][..],
                (10, 100),
                60,
                99.0,
                1.5,
                "icmp-guard set eth0 --echo-rate 15 --echo-burst 15 --global-rate 201 --global-burst 15",
            ),
            (
                // Nine quiet sources and a flooder: the 90th percentile leaves it out.
                &[
                    (1, Echo, 2, 20),
                    (2, Echo, 2, 20),
                    (3, Echo, 2, 20),
                    (4, Echo, 2, 20),
                    (5, Echo, 2, 20),
                    (6, Echo, 2, 20),
                    (7, Echo, 2, 20),
                    (8, Echo, 2, 20),
                    (9, Echo, 4, 30),
                    (10, Echo, 1000, 10_000),
                ],
                (1020, 10_190),
                60,
                90.0,
                2.0,
                "icmp-guard set eth0 --echo-rate 6 --echo-burst 8 --global-rate 2038 --global-burst 2040",
            ),
            (
                // A 4 s capture: the sustained rate is over 4 s, not 10.
                &[(1, Echo, 30, 100), (2, Reply, 40, 160)],
                (70, 260),
                4,
                99.0,
                1.0,
                "icmp-guard set eth0 --echo-rate 25 --echo-burst 30 --reply-rate 40 --reply-burst 40 --global-rate 201 --global-burst 70",
            ),
        ] {
            let m = measured(sources, all);
            let s = Suggestion::new(&m, secs * 1_000_000_000, &Config::with_defaults(), p, h);
            assert_eq!(s.set_command("eth0"), wanted, "{sources:?}");
            assert_eq!(
                s.global_raised_for_new_sources,
                s.global.is_some_and(|g| g.rate == 201)
            );
            let toml = s.toml();
            assert!(toml.starts_with("[interface.limits]\n"), "{toml}");
            assert_eq!(toml.lines().count(), s.values().len() + 1, "{toml}");
        }
    }
}

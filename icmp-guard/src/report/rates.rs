//! What `stats --watch` shows: the change between two [`Snapshot`]s of one guard, per second
//! of the time measured between the two reads. Computed once here, rendered as a screen by
//! [`super::text::watch`] and as a JSON line by [`Rates::json`](super::json).

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use icmp_guard_common::{Reason, SourceKey};

use super::Snapshot;

/// Per-second rates between two snapshots.
#[derive(Clone, Debug)]
pub struct Rates<'a> {
    /// The later snapshot: its totals, names and config.
    pub now: &'a Snapshot,
    /// The time measured between the two reads: the interval asked for plus the time reading
    /// takes, so rates are not overstated when a read is slow.
    pub elapsed: Duration,
    /// When the later snapshot was read.
    pub at: SystemTime,
    /// Every counter's total and rate, in [`Reason::ALL`] order.
    pub counters: Vec<(Reason, u64, f64)>,
    /// The sources that passed or dropped anything in between, most drops per second first
    /// (then most passes).
    pub sources: Vec<SourceRate>,
}

/// One source's totals and rates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SourceRate {
    pub key: SourceKey,
    pub passed: u64,
    pub dropped: u64,
    pub passed_per_sec: f64,
    pub dropped_per_sec: f64,
}

impl<'a> Rates<'a> {
    /// The rates from `before` to `now`, read `elapsed` apart, the later at `at`.
    #[must_use]
    pub fn between(
        before: &Snapshot,
        now: &'a Snapshot,
        elapsed: Duration,
        at: SystemTime,
    ) -> Self {
        let secs = elapsed.as_secs_f64();
        // A counter that went down (a source evicted and admitted again) moved by nothing
        // we can know: 0, not a negative rate. No time elapsed: no rate either.
        let per_sec = |new: u64, old: u64| {
            if secs > 0.0 {
                new.saturating_sub(old) as f64 / secs
            } else {
                0.0
            }
        };
        let counters = now
            .counters
            .iter()
            .map(|&(reason, n)| (reason, n, per_sec(n, before.counter(reason))))
            .collect();
        let earlier: HashMap<SourceKey, (u64, u64)> = before
            .sources
            .iter()
            .map(|s| (s.key, (s.passed, s.dropped)))
            .collect();
        let mut sources: Vec<SourceRate> = now
            .sources
            .iter()
            .map(|s| {
                let (passed, dropped) = earlier.get(&s.key).copied().unwrap_or((0, 0));
                SourceRate {
                    key: s.key,
                    passed: s.passed,
                    dropped: s.dropped,
                    passed_per_sec: per_sec(s.passed, passed),
                    dropped_per_sec: per_sec(s.dropped, dropped),
                }
            })
            .filter(|s| s.passed_per_sec > 0.0 || s.dropped_per_sec > 0.0)
            .collect();
        sources.sort_by(|a, b| {
            b.dropped_per_sec
                .total_cmp(&a.dropped_per_sec)
                .then(b.passed_per_sec.total_cmp(&a.passed_per_sec))
                .then(a.key.cmp(&b.key))
        });
        Self {
            now,
            elapsed,
            at,
            counters,
            sources,
        }
    }

    /// One counter's rate.
    #[must_use]
    pub fn rate(&self, reason: Reason) -> f64 {
        self.counters
            .iter()
            .find(|(r, _, _)| *r == reason)
            .map_or(0.0, |(_, _, rate)| *rate)
    }

    /// The `n` sources dropping the most now.
    #[must_use]
    pub fn top(&self, n: usize) -> &[SourceRate] {
        &self.sources[..n.min(self.sources.len())]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{super::tests::sample, *};

    /// `sample()` and the same guard after 20 more `Reason::ALL[1]` frames and 10 more drops
    /// of its top source.
    pub(crate) fn moved() -> (Snapshot, Snapshot) {
        let before = sample();
        let mut now = sample();
        now.counters[1].1 += 20;
        now.sources[0].dropped += 10;
        (before, now)
    }

    /// (time measured between the reads, the counter's rate, the source's drops per second):
    /// rates divide by the time measured, whatever the interval asked for.
    #[test]
    #[expect(
        clippy::float_cmp,
        reason = "the rates are exact: small integers divided by powers of two and 2.5"
    )]
    fn rates_are_per_second_of_the_time_measured() {
        let (before, now) = moved();
        for (elapsed, counter, source) in [
            (Duration::from_secs(2), 10.0, 5.0),
            (Duration::from_millis(500), 40.0, 20.0),
            (Duration::from_millis(2500), 8.0, 4.0),
            (Duration::ZERO, 0.0, 0.0),
        ] {
            let rates = Rates::between(&before, &now, elapsed, SystemTime::UNIX_EPOCH);
            assert_eq!(rates.rate(Reason::ALL[1]), counter, "{elapsed:?}");
            assert_eq!(rates.rate(Reason::ALL[2]), 0.0, "{elapsed:?}");
            assert_eq!(
                rates.top(5).first().map(|s| s.dropped_per_sec),
                (source > 0.0).then_some(source),
                "{elapsed:?}"
            );
        }
    }

    #[test]
    #[expect(clippy::float_cmp, reason = "no movement is exactly 0")]
    fn only_moving_sources_are_listed_most_drops_first() {
        let (before, mut now) = moved();
        now.sources[1].passed += 100;
        let rates = Rates::between(
            &before,
            &now,
            Duration::from_secs(1),
            SystemTime::UNIX_EPOCH,
        );
        let order: Vec<_> = rates.sources.iter().map(|s| s.dropped_per_sec).collect();
        assert_eq!(order, [10.0, 0.0]);
        // A counter that went down is no movement.
        let rates = Rates::between(
            &now,
            &before,
            Duration::from_secs(1),
            SystemTime::UNIX_EPOCH,
        );
        assert!(rates.sources.is_empty(), "{:?}", rates.sources);
        assert_eq!(rates.rate(Reason::ALL[1]), 0.0);
    }
}

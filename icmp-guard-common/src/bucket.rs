//! Token buckets kept as GCRA ("virtual scheduling") state, shared by every CPU.
//!
//! A bucket of `burst` packets refilled at `rate` packets per second is the same as a
//! theoretical arrival time (TAT) that advances by `interval = 1 s / rate` per packet: a packet
//! passes when accepting it would not put the TAT more than `burst` intervals ahead of now.
//! One `u64` of state, no division and no overflow on the per-packet path, and exact for any
//! idle time (an idle source is simply behind the clock and gets a full burst).
//!
//! Every bucket lives in memory all CPUs share (one value per source, not one per CPU), so
//! a source gets its quota once however many receive queues its packets land on. A packet
//! that passes moves the TAT with one compare-and-swap; a packet over the limit only reads
//! it, so a flood writes nothing to the bucket and its cache line is not bounced between CPUs.
//! The budgets every source shares (global, exempt) are taken a few tokens at a time per CPU
//! ([`take_shared`]), so most packets that pass them swap nothing.

use core::{
    cell::Cell,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// Highest accepted rate: one packet per nanosecond would make the interval zero.
pub const MAX_RATE: u32 = 100_000_000;

/// Compare-and-swap attempts before a packet is refused: each failed attempt means another
/// CPU took a token from the same bucket in between, so a refusal after this many is a
/// bucket that is being emptied, not a packet refused while tokens stood unused.
pub const CAS_ATTEMPTS: u32 = 4;

/// A rate limit: `rate` packets per second with bursts of up to `burst` packets.
///
/// Built with [`Limit::new`], which derives the interval, so the kernel never divides.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Sustained packets per second (1..=[`MAX_RATE`]).
    pub rate: u32,
    /// Packets that may arrive back to back (>= 1).
    pub burst: u32,
    /// Nanoseconds per token: `NS_PER_SEC / rate`.
    pub interval_ns: u64,
    /// How far the TAT may run ahead of now: `burst * interval_ns`, raised to one clock tick
    /// by [`Limit::on_clock`].
    pub tolerance_ns: u64,
}

const _: () = assert!(size_of::<Limit>() == 24);

impl Limit {
    /// A limit of `rate` packets per second and `burst` packets on an exact clock; `None`
    /// when either is zero or the rate exceeds [`MAX_RATE`].
    #[must_use]
    pub const fn new(rate: u32, burst: u32) -> Option<Self> {
        if rate == 0 || rate > MAX_RATE || burst == 0 {
            return None;
        }
        let interval_ns = NS_PER_SEC / rate as u64;
        Some(Self {
            rate,
            burst,
            interval_ns,
            tolerance_ns: burst as u64 * interval_ns,
        })
    }

    /// The limit as a clock that advances in steps of `tick_ns` can keep it.
    ///
    /// The program reads the coarse clock, which stands still for a whole tick (a jiffy:
    /// 4 ms at `HZ=250`). A packet passes at the first tick at or after the moment its token
    /// is due, so each pass can be late by up to a tick; when the tolerance is less than one
    /// interval plus one tick, that lateness is lost for good and the bucket falls short of
    /// its rate (burst 1 at 1000/s would pass 250/s, burst 1 at 200/s 125/s). With the
    /// tolerance raised to `interval + tick` where it is shorter, every late token is still
    /// taken and the long-run rate is the configured one; the price is that a full bucket may
    /// pass up to `1 + rate * tick` packets at once instead of `burst` (41 instead of 1 at
    /// 10,000/s and 4 ms).
    #[must_use]
    pub const fn on_clock(self, tick_ns: u64) -> Self {
        let floor = self.interval_ns + tick_ns;
        Self {
            tolerance_ns: if self.tolerance_ns > floor {
                self.tolerance_ns
            } else {
                floor
            },
            ..self
        }
    }
}

/// Takes one token from the bucket whose TAT is `tat` for a packet arriving at `now_ns`;
/// false (and no write) when the bucket is empty.
#[inline(always)]
pub fn take(tat: &AtomicU64, now_ns: u64, limit: &Limit) -> bool {
    let mut old = crate::atomic::load(tat);
    let mut attempt = 0;
    while attempt < CAS_ATTEMPTS {
        let start = if old > now_ns { old } else { now_ns };
        let new = start.wrapping_add(limit.interval_ns);
        // `new > now_ns` always holds here, so the subtraction cannot wrap.
        if new - now_ns > limit.tolerance_ns {
            return false;
        }
        match crate::atomic::compare_exchange(tat, old, new) {
            Ok(_) => return true,
            Err(current) => old = current,
        }
        attempt += 1;
    }
    false
}

/// The TAT `tat`, taken under `old`, moved for `new` at `now_ns` (when userspace changes a
/// budget's limits), so the change neither blocks the bucket nor refills it: the tokens it is
/// short of (`tat - now` in `old` intervals) stay short in `new` intervals, at most a whole
/// `new` tolerance (empty). Left as it is, a TAT an old, larger tolerance put far ahead would
/// hold the bucket shut until now caught up with it: lowering a global burst of 100,000 to
/// 4,000 at 2,000/s refused everything for 48 s, and raising the rate tenfold for 1.8 s.
#[must_use]
pub fn rebase(tat: u64, now_ns: u64, old: &Limit, new: &Limit) -> u64 {
    if tat <= now_ns || old.interval_ns == 0 {
        return tat;
    }
    let short =
        u128::from(tat - now_ns) * u128::from(new.interval_ns) / u128::from(old.interval_ns);
    let short = u64::try_from(short)
        .unwrap_or(u64::MAX)
        .min(new.tolerance_ns);
    now_ns.saturating_add(short)
}

/// Most tokens a CPU takes from a shared budget at once (see [`take_ahead`]).
pub const MAX_AHEAD: u32 = 16;

/// The divisor of a shared budget's burst that bounds what all CPUs together hold taken ahead:
/// 20, so under 5% of the burst.
pub const AHEAD_SHARE: u32 = 20;

/// How many tokens a CPU takes at once from a budget of `burst` shared by `cpus` CPUs: as
/// many as keep what all of them can hold ahead (one fewer each) under `burst /`
/// [`AHEAD_SHARE`], at most [`MAX_AHEAD`], at least one, which is no taking ahead: small
/// bursts, hosts with many CPUs, and `cpus` 0 (not known).
#[inline(always)]
#[must_use]
pub const fn ahead(burst: u32, cpus: u32) -> u32 {
    if cpus == 0 {
        return 1;
    }
    let share = burst / AHEAD_SHARE / cpus;
    if share > MAX_AHEAD {
        MAX_AHEAD
    } else if share == 0 {
        1
    } else {
        share
    }
}

/// Takes tokens from the bucket whose TAT is `tat` for a packet arriving at `now_ns`: `want`
/// if the bucket holds that many, else one; how many were taken (zero, and no write, when the
/// bucket is empty). The caller keeps what it did not spend for its next packets, so a budget
/// every CPU draws from costs one compare-and-swap per `want` packets, not one per packet.
///
/// The loop of [`take`] with a second choice: kept apart, not `take` as `take_ahead(.., 1)`,
/// because that form measured 1 to 5 ns more on the per-source path (a different layout of
/// the program) and a form sharing the loop through a closure 4 to 6 ns more and refused by
/// the verifier without `CAP_PERFMON`.
#[inline(always)]
pub fn take_ahead(tat: &AtomicU64, now_ns: u64, limit: &Limit, want: u32) -> u32 {
    let mut old = crate::atomic::load(tat);
    let mut attempt = 0;
    while attempt < CAS_ATTEMPTS {
        let start = if old > now_ns { old } else { now_ns };
        let mut taken = want;
        let mut new = start.wrapping_add(limit.interval_ns * u64::from(want));
        // `new > now_ns` always holds here, so the subtractions cannot wrap.
        if new - now_ns > limit.tolerance_ns {
            taken = 1;
            new = start.wrapping_add(limit.interval_ns);
            if new - now_ns > limit.tolerance_ns {
                return 0;
            }
        }
        match crate::atomic::compare_exchange(tat, old, new) {
            Ok(_) => return taken,
            Err(current) => old = current,
        }
        attempt += 1;
    }
    0
}

/// Takes one token of a budget that `cpus` CPUs draw from, whose TAT is `tat`, for one packet
/// on this CPU: one of the `held` tokens this CPU took ahead, if it has any; else
/// [`ahead`] of them from the bucket when it has that many (the rest kept in `held`), or one
/// when it has fewer.
///
/// So a budget every CPU shares costs one compare-and-swap on its bucket per few packets
/// instead of one per packet. Tokens leave the bucket only as it allows, so the budget's rate
/// holds over any time; what the CPUs hold between them is less than `burst /`
/// [`AHEAD_SHARE`], which is all a burst can exceed `burst` by (a token taken ahead may be
/// spent after the bucket has refilled, and held tokens do not expire). After a limit is
/// lowered, tokens taken under the old one are still spent: at most `MAX_AHEAD - 1` per CPU.
/// With that few in play, a CPU that holds none may refuse a packet while another still holds
/// some.
#[inline(always)]
pub fn take_shared(
    tat: &AtomicU64,
    held: &Cell<u64>,
    now_ns: u64,
    limit: &Limit,
    cpus: u32,
) -> bool {
    let ahead_now = held.get();
    if ahead_now > 0 {
        held.set(ahead_now - 1);
        return true;
    }
    let taken = take_ahead(tat, now_ns, limit, ahead(limit.burst, cpus));
    if taken > 1 {
        held.set(u64::from(taken - 1));
    }
    taken > 0
}

/// The first 12 bytes of an IPv4-mapped IPv6 address (`::ffff:0:0/96`).
pub const V4_MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// Key of the per-source map: the source address as an IPv6 address, IPv4 mapped into
/// `::ffff:0:0/96`, so one map and one code path serve both families. Aligned to 8 so it is
/// masked and hashed as two words, not sixteen bytes.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey {
    pub addr: [u8; 16],
}

const _: () = assert!(size_of::<SourceKey>() == 16);

impl SourceKey {
    /// The key of an IPv4 source.
    #[inline(always)]
    #[must_use]
    pub const fn v4(a: [u8; 4]) -> Self {
        Self::from_words([
            0,
            u64::from_ne_bytes([0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3]]),
        ])
    }

    /// The key whose address is `words` (two native-endian words, as [`SourceKey::words`]
    /// gives them): two stores, where building sixteen bytes takes sixteen.
    #[inline(always)]
    #[must_use]
    pub const fn from_words(words: [u64; 2]) -> Self {
        // SAFETY: two u64 are sixteen bytes, and every bit pattern is a valid [u8; 16].
        Self {
            addr: unsafe { core::mem::transmute::<[u64; 2], [u8; 16]>(words) },
        }
    }

    /// The key with every bit outside `mask` (two native-endian words, as
    /// [`crate::Config::mask`] gives it) cleared: sources in one prefix share a bucket.
    #[inline(always)]
    #[must_use]
    pub const fn masked(&self, mask: [u64; 2]) -> Self {
        let [hi, lo] = self.words();
        Self::from_words([hi & mask[0], lo & mask[1]])
    }

    /// The address as two native-endian words.
    #[inline(always)]
    #[must_use]
    pub const fn words(&self) -> [u64; 2] {
        // SAFETY: sixteen bytes are two u64, and every bit pattern is a valid u64.
        unsafe { core::mem::transmute::<[u8; 16], [u64; 2]>(self.addr) }
    }

    /// The IPv4 address, when this key holds one.
    #[must_use]
    pub fn as_v4(&self) -> Option<[u8; 4]> {
        let (prefix, v4) = self.addr.split_at(12);
        if prefix == V4_MAPPED_PREFIX {
            v4.try_into().ok()
        } else {
            None
        }
    }
}

/// One GCRA bucket as stored in a map: the theoretical arrival time of the next packet.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Bucket {
    /// In `bpf_ktime_get_coarse_ns` time; zero is a full bucket.
    pub tat_ns: AtomicU64,
}

const _: () = assert!(size_of::<Bucket>() == 8 && align_of::<Bucket>() == 8);

impl Bucket {
    /// Takes one token for a packet arriving at `now_ns`; see [`take`].
    #[inline(always)]
    pub fn take(&self, now_ns: u64, limit: &Limit) -> bool {
        take(&self.tat_ns, now_ns, limit)
    }
}

/// A [`SourceState`] as userspace reads it out of the map: the same bytes, plain integers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceRecord {
    pub echo_tat_ns: u64,
    pub reply_tat_ns: u64,
    pub passed: u64,
    pub dropped: u64,
}

const _: () = assert!(size_of::<SourceRecord>() == size_of::<SourceState>());

/// Which of a source's buckets a packet is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Echo and timestamp requests, extended echo, and later fragments.
    Echo,
    /// Echo, timestamp and extended echo replies.
    Reply,
}

impl Class {
    /// The class's slot in per-class arrays (the admission budgets).
    #[inline(always)]
    #[must_use]
    pub const fn slot(self) -> u32 {
        match self {
            Self::Echo => 0,
            Self::Reply => 1,
        }
    }
}

/// Value of the per-source map: the source's buckets and what became of its packets. One
/// value per source, shared by every CPU; every field is only touched atomically.
#[repr(C)]
#[derive(Debug, Default)]
pub struct SourceState {
    pub echo: AtomicU64,
    pub reply: AtomicU64,
    /// Packets of this source that passed (both classes).
    pub passed: AtomicU64,
    /// Packets of this source that were dropped: by its own buckets, by the global budget, or
    /// by the screening while the source was recent (see `policy`).
    pub dropped: AtomicU64,
}

const _: () = assert!(size_of::<SourceState>() == 32 && align_of::<SourceState>() == 8);

impl SourceState {
    /// The state of a source seen for the first time, its first packet charged (a burst of at
    /// least one always lets it pass). Built field by field: on the XDP side, zeroing the
    /// whole value first would become a `memset` call the verifier refuses without
    /// `CAP_PERFMON`.
    #[inline(always)]
    #[must_use]
    pub fn first(class: Class, now_ns: u64, limit: &Limit) -> Self {
        let charged = now_ns.wrapping_add(limit.interval_ns);
        let (echo, reply) = match class {
            Class::Echo => (charged, 0),
            Class::Reply => (0, charged),
        };
        Self {
            echo: AtomicU64::new(echo),
            reply: AtomicU64::new(reply),
            passed: AtomicU64::new(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// The state of a source admitted while the global budget was empty: its buckets full,
    /// its first packet counted as dropped, so the drop is attributed to it.
    #[inline(always)]
    #[must_use]
    pub fn first_dropped() -> Self {
        Self {
            echo: AtomicU64::new(0),
            reply: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            dropped: AtomicU64::new(1),
        }
    }

    /// Charges one packet of `class` arriving at `now_ns` to its bucket; whether it is within
    /// the limit. A packet over the limit is counted as dropped here; one within it is not
    /// counted yet (the global budget may still drop it): see [`Self::count`].
    #[inline(always)]
    pub fn charge(&self, class: Class, now_ns: u64, limit: &Limit) -> bool {
        // One branch per field, not a reference picked per class: on the XDP side `self` is a
        // map value, and a pointer plus a per-path offset is refused without CAP_PERFMON.
        let passed = match class {
            Class::Echo => take(&self.echo, now_ns, limit),
            Class::Reply => take(&self.reply, now_ns, limit),
        };
        if !passed {
            crate::atomic::add(&self.dropped, 1);
        }
        passed
    }

    /// Counts one packet of this source as passed or dropped: one atomic add either way.
    #[inline(always)]
    pub fn count(&self, passed: bool) {
        if passed {
            crate::atomic::add(&self.passed, 1);
        } else {
            self.count_dropped();
        }
    }

    /// Counts one dropped packet. Kept out of line: inlined, LLVM merges it with the add to
    /// `passed` into one add on a pointer picked per path, which the verifier refuses without
    /// CAP_PERFMON. Drops after the bucket passed (the global budget's) and by the screening
    /// are the rare paths, so they pay the call.
    #[inline(never)]
    pub(crate) fn count_dropped(&self) {
        crate::atomic::add(&self.dropped, 1);
    }

    /// The totals, for reports.
    #[must_use]
    pub fn totals(&self) -> (u64, u64) {
        (self.passed.load(Relaxed), self.dropped.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn run(limit: &Limit, arrivals_ns: impl IntoIterator<Item = u64>) -> (u64, u64) {
        let s = SourceState::default();
        for t in arrivals_ns {
            if s.charge(Class::Echo, t, limit) {
                s.count(true);
            }
        }
        s.totals()
    }

    /// (what, old rate and burst, tokens the bucket was short of, new rate and burst, tokens
    /// short after the change): a change keeps what was taken, in tokens, within the new
    /// burst; it neither shuts the bucket past the new tolerance nor fills it.
    #[test]
    fn a_change_of_limits_keeps_the_tokens_taken_within_the_new_burst() {
        type Change = (&'static str, (u32, u32), u64, (u32, u32), u64);
        let now = 1_000 * NS_PER_SEC;
        let cases: [Change; 6] = [
            (
                "a full bucket stays full",
                (2000, 100_000),
                0,
                (2000, 4000),
                0,
            ),
            (
                "an empty bucket of a smaller burst is empty, not shut for 48 s",
                (2000, 100_000),
                100_000,
                (2000, 4000),
                4000,
            ),
            (
                "what was taken stays taken within the new burst",
                (2000, 100_000),
                3000,
                (2000, 4000),
                3000,
            ),
            (
                "a tenfold rate: the same tokens, ten times shorter",
                (2000, 4000),
                4000,
                (20_000, 4000),
                4000,
            ),
            (
                "a tenth of the rate: the same tokens, ten times longer",
                (2000, 4000),
                1000,
                (200, 4000),
                1000,
            ),
            (
                "a larger burst: the tokens taken, not a fuller bucket",
                (20, 50),
                50,
                (20, 500),
                50,
            ),
        ];
        for (what, (r0, b0), short, (r1, b1), wanted) in cases {
            let (old, new) = (Limit::new(r0, b0).unwrap(), Limit::new(r1, b1).unwrap());
            let tat = now + short * old.interval_ns;
            let moved = rebase(tat, now, &old, &new);
            assert_eq!(moved - now, wanted * new.interval_ns, "{what}");
            // The bucket is as short as that under the new limit: with tokens left, one
            // passes now; empty, the next passes one new interval later, not sooner.
            let bucket = AtomicU64::new(moved);
            if wanted < u64::from(b1) {
                assert!(take(&bucket, now, &new), "{what}: passes now");
            } else {
                assert!(!take(&bucket, now, &new), "{what}: empty");
                assert!(
                    take(&bucket, now + new.interval_ns, &new),
                    "{what}: refills"
                );
            }
        }
        // A TAT behind the clock is a full bucket under any limit.
        let (old, new) = (Limit::new(10, 5).unwrap(), Limit::new(1, 1).unwrap());
        assert_eq!(rebase(now - 1, now, &old, &new), now - 1);
    }

    #[test]
    fn rejects_zero_and_absurd_limits() {
        assert_eq!(Limit::new(0, 5), None);
        assert_eq!(Limit::new(5, 0), None);
        assert_eq!(Limit::new(MAX_RATE + 1, 5), None);
        assert!(Limit::new(MAX_RATE, u32::MAX).is_some());
    }

    #[test]
    fn table() {
        struct Case {
            what: &'static str,
            rate: u32,
            burst: u32,
            arrivals: &'static [u64],
            passed: u64,
        }
        let cases = [
            Case {
                what: "burst passes back to back",
                rate: 1,
                burst: 5,
                arrivals: &[1; 5],
                passed: 5,
            },
            Case {
                what: "one past the burst drops",
                rate: 1,
                burst: 5,
                arrivals: &[1; 6],
                passed: 5,
            },
            Case {
                what: "burst of one",
                rate: 10,
                burst: 1,
                arrivals: &[7, 7, 7],
                passed: 1,
            },
            Case {
                what: "refill after one interval",
                rate: 10,
                burst: 1,
                arrivals: &[0, 100 * MS, 200 * MS, 250 * MS],
                passed: 3,
            },
            Case {
                what: "clock at zero is a valid start",
                rate: 1,
                burst: 2,
                arrivals: &[0, 0, 0],
                passed: 2,
            },
            Case {
                what: "idle for a day gets exactly a full burst back",
                rate: 1,
                burst: 3,
                arrivals: &[
                    1,
                    1,
                    1,
                    86_400 * NS_PER_SEC,
                    86_400 * NS_PER_SEC,
                    86_400 * NS_PER_SEC,
                    86_400 * NS_PER_SEC,
                ],
                passed: 6,
            },
        ];
        for c in cases {
            let limit = Limit::new(c.rate, c.burst).unwrap();
            let (passed, dropped) = run(&limit, c.arrivals.iter().copied());
            assert_eq!(passed, c.passed, "{}", c.what);
            assert_eq!(passed + dropped, c.arrivals.len() as u64, "{}", c.what);
        }
    }

    #[test]
    fn long_flood_converges_to_burst_plus_rate_times_time() {
        // 10 s of 1000 pps against 50 pps, burst 20.
        let limit = Limit::new(50, 20).unwrap();
        let (passed, _) = run(&limit, (0..10_000u64).map(|i| i * MS));
        let expected = 20 + 50 * 10;
        assert!(
            passed.abs_diff(expected) <= 1,
            "passed {passed}, expected ~{expected}"
        );
    }

    /// Every rate and burst of the grid, flooded at 20,000 packets a second (or three times
    /// the rate) for long enough to pass at least 200 packets, on a clock that steps like the
    /// coarse clock (4 ms at HZ=250, 10 ms at HZ=100): what passes stays within 5% of
    /// `burst + rate * t`.
    #[test]
    fn coarse_clock_keeps_the_promise_for_every_rate_and_burst() {
        let rates = [
            1, 2, 3, 5, 7, 10, 20, 50, 100, 200, 300, 500, 1000, 2000, 5000, 10_000,
        ];
        let bursts = [1, 2, 3, 5, 10, 20, 50, 100];
        for tick in [4 * MS, 10 * MS] {
            for rate in rates {
                for burst in bursts {
                    let limit = Limit::new(rate, burst).unwrap().on_clock(tick);
                    let seconds = (200 / u64::from(rate)).max(2);
                    let pps = (3 * u64::from(rate)).max(20_000);
                    let spacing = NS_PER_SEC / pps;
                    // Start mid-tick, and read the clock as the coarse clock gives it.
                    let clock = (0..pps * seconds).map(|i| (tick / 3 + i * spacing) / tick * tick);
                    let (passed, _) = run(&limit, clock);
                    let promised = f64::from(burst) + f64::from(rate) * seconds as f64;
                    let error = (passed as f64 - promised).abs() / promised;
                    assert!(
                        error <= 0.05,
                        "tick {tick} ns, rate {rate}/s, burst {burst}: passed {passed} in \
                         {seconds} s, promised {promised} ({:.1}% off)",
                        error * 100.0
                    );
                }
            }
        }
    }

    #[test]
    fn without_the_tick_a_short_tolerance_loses_most_of_the_rate() {
        // The failure `on_clock` exists for: burst 1 at 1000/s on a 4 ms clock.
        let limit = Limit::new(1000, 1).unwrap();
        let clock = (0..30_000u64).map(|i| (i * 100_000) / (4 * MS) * (4 * MS));
        let (passed, _) = run(&limit, clock);
        assert!(passed < 800, "passed {passed} of ~3000");
    }

    #[test]
    fn one_bucket_shared_by_threads_passes_its_quota_once() {
        extern crate std;
        // Four threads take from one bucket at a clock that stands still: exactly the burst
        // passes, however the compare-and-swaps interleave.
        let limit = Limit::new(1, 1000).unwrap();
        let bucket = Bucket::default();
        let passed = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        if bucket.take(5, &limit) {
                            passed.fetch_add(1, Relaxed);
                        }
                    }
                });
            }
        });
        let passed = passed.load(Relaxed);
        // A take refused after CAS_ATTEMPTS lost races may leave a token unused: never more.
        assert!((990..=1000).contains(&passed), "passed {passed}");
    }

    #[test]
    fn a_budget_taken_ahead_by_threads_passes_its_burst_once() {
        extern crate std;
        // Four threads, each a CPU with its own tokens taken ahead, draw from one budget at a
        // clock that stands still: what passed and what they still hold is the burst, however
        // the compare-and-swaps interleave.
        const CPUS: u32 = 4;
        let limit = Limit::new(1, 4000).unwrap();
        assert_eq!(ahead(limit.burst, CPUS), MAX_AHEAD);
        let tat = AtomicU64::new(0);
        let passed = AtomicU64::new(0);
        let held = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..CPUS {
                scope.spawn(|| {
                    let mine = Cell::new(0);
                    for _ in 0..10_000 {
                        if take_shared(&tat, &mine, 5, &limit, CPUS) {
                            passed.fetch_add(1, Relaxed);
                        }
                    }
                    held.fetch_add(mine.get(), Relaxed);
                });
            }
        });
        let (passed, held) = (passed.load(Relaxed), held.load(Relaxed));
        // A take refused after CAS_ATTEMPTS lost races may leave tokens unused: never more.
        assert!(
            (3990..=4000).contains(&(passed + held)),
            "passed {passed}, held {held}"
        );
        assert!(held < u64::from(CPUS * MAX_AHEAD), "held {held}");
    }

    #[test]
    fn cpus_hold_at_most_a_twentieth_of_a_burst_ahead() {
        // (burst, cpus, tokens a CPU takes at once)
        for (burst, cpus, want) in [
            (4000, 2, MAX_AHEAD),
            (4000, 64, 3),
            (4000, 256, 1),
            (20_000, 2, MAX_AHEAD),
            (1000, 2, MAX_AHEAD),
            (100, 2, 2),
            (10, 1, 1),
            (u32::MAX, 4096, MAX_AHEAD),
            (u32::MAX, 0, 1),
        ] {
            assert_eq!(ahead(burst, cpus), want, "burst {burst}, {cpus} CPUs");
        }
        for burst in (1..5000).step_by(7).chain([u32::MAX]) {
            for cpus in [1, 2, 3, 8, 64, 1000] {
                let want = ahead(burst, cpus);
                assert!((1..=MAX_AHEAD).contains(&want));
                assert!(
                    want == 1
                        || u64::from(cpus) * u64::from(want) <= u64::from(burst / AHEAD_SHARE),
                    "burst {burst}, {cpus} CPUs: {want} each"
                );
            }
        }
    }

    #[test]
    fn taking_ahead_takes_all_it_wants_or_one_or_none() {
        let limit = Limit::new(1000, 20).unwrap();
        // (TAT before, tokens wanted, taken, TAT after), all at now = 1 s.
        let now = NS_PER_SEC;
        let i = limit.interval_ns;
        for (before, want, taken, after) in [
            (0, 16, 16, now + 16 * i),
            (now + 17 * i, 16, 1, now + 18 * i),
            (now + 4 * i, 16, 16, now + 20 * i),
            (now + 20 * i, 16, 0, now + 20 * i),
            (now + 19 * i, 1, 1, now + 20 * i),
        ] {
            let tat = AtomicU64::new(before);
            assert_eq!(take_ahead(&tat, now, &limit, want), taken, "TAT {before}");
            assert_eq!(tat.load(Relaxed), after, "TAT {before}");
        }
    }

    /// `cpus` CPUs flood one shared budget in turn for 10 s (one packet every 100 us, ten
    /// times its rate), on a clock of 4 ms ticks, then go quiet for 10 s and send a burst:
    /// what passes, against one token at a time.
    fn shared_flood(cpus: u32, take_at_once: bool) -> (u64, u64) {
        let limit = Limit::new(1000, 4000).unwrap().on_clock(4 * MS);
        let tat = AtomicU64::new(0);
        let held: [Cell<u64>; 64] = core::array::from_fn(|_| Cell::new(0));
        let take = |cpu: usize, now: u64| {
            if take_at_once {
                take_shared(&tat, &held[cpu], now, &limit, cpus)
            } else {
                take(&tat, now, &limit)
            }
        };
        let tick = |t: u64| t - t % (4 * MS);
        let mut flood = 0;
        for n in 0..100_000_u64 {
            let now = tick(n * 100_000);
            flood += u64::from(take((n % u64::from(cpus)) as usize, now));
        }
        let mut burst = 0;
        for n in 0..10_000_u64 {
            burst += u64::from(take((n % u64::from(cpus)) as usize, tick(20 * NS_PER_SEC)));
        }
        (flood, burst)
    }

    #[test]
    fn a_budget_taken_ahead_keeps_its_rate_and_burst() {
        // One token at a time, the CPUs' turns make no difference: 10 s at 1000/s after a
        // burst of 4000 (the last tick's tokens not yet due), then the burst.
        let (flood_one, burst_one) = shared_flood(1, false);
        assert!(
            (13_990..=14_000).contains(&flood_one),
            "one at a time: {flood_one}"
        );
        assert_eq!(burst_one, 4000, "one at a time");
        for cpus in [1, 2, 8, 64] {
            let (flood, burst) = shared_flood(cpus, true);
            let held = u64::from(cpus * (ahead(4000, cpus) - 1));
            assert!(
                flood.abs_diff(flood_one) <= held,
                "{cpus} CPUs: {flood} passed in the flood, {flood_one} one at a time"
            );
            assert!(
                burst >= burst_one && burst <= burst_one + held,
                "{cpus} CPUs: {burst} passed in the burst, {burst_one} one at a time"
            );
            assert!(held <= 4000 / u64::from(AHEAD_SHARE));
        }
    }

    #[test]
    fn largest_limit_does_not_overflow() {
        // burst * interval is the largest product on the path: u32::MAX * 1 s fits in u64.
        let limit = Limit::new(1, u32::MAX).unwrap();
        assert_eq!(limit.tolerance_ns, u64::from(u32::MAX) * NS_PER_SEC);
        let s = SourceState::default();
        for _ in 0..1000 {
            assert!(s.charge(Class::Echo, 5, &limit));
        }
    }

    #[test]
    fn first_is_a_fresh_state_charged_once() {
        let limit = Limit::new(3, 2).unwrap();
        for class in [Class::Echo, Class::Reply] {
            let fresh = SourceState::default();
            assert!(fresh.charge(class, 77, &limit));
            fresh.count(true);
            let first = SourceState::first(class, 77, &limit);
            let tats = |s: &SourceState| (s.echo.load(Relaxed), s.reply.load(Relaxed));
            assert_eq!(tats(&first), tats(&fresh), "{class:?}");
            assert_eq!(first.totals(), fresh.totals(), "{class:?}");
        }
    }

    #[test]
    fn echo_and_reply_buckets_are_separate() {
        let limit = Limit::new(1, 2).unwrap();
        let s = SourceState::default();
        assert!(s.charge(Class::Echo, 1, &limit));
        assert!(s.charge(Class::Echo, 1, &limit));
        assert!(!s.charge(Class::Echo, 1, &limit));
        assert!(s.charge(Class::Reply, 1, &limit));
        assert_eq!(s.totals(), (0, 1), "passes are counted by the caller");
    }

    #[test]
    fn masking_aggregates_a_prefix() {
        let mut mask = [0xff; 16];
        mask[15] = 0;
        let mask = SourceKey { addr: mask }.words();
        let a = SourceKey::v4([198, 51, 100, 7]).masked(mask);
        let b = SourceKey::v4([198, 51, 100, 200]).masked(mask);
        assert_eq!(a, b);
        assert_eq!(a.as_v4(), Some([198, 51, 100, 0]));
        assert_eq!(
            SourceKey::v4([198, 51, 100, 7]).masked([!0; 2]).as_v4(),
            Some([198, 51, 100, 7])
        );
    }

    #[test]
    fn v4_keys_round_trip() {
        let k = SourceKey::v4([198, 51, 100, 7]);
        assert_eq!(k.as_v4(), Some([198, 51, 100, 7]));
        let mut v6 = k;
        v6.addr[0] = 0x20;
        assert_eq!(v6.as_v4(), None);
    }
}

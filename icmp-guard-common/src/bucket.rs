//! Per-source token buckets, kept as GCRA ("virtual scheduling") state.
//!
//! A bucket of `burst` packets refilled at `rate` packets per second is the same as a
//! theoretical arrival time (TAT) that advances by `interval = 1 s / rate` per packet: a packet
//! passes when accepting it would not put the TAT more than `burst` intervals ahead of now.
//! One `u64` of state, no division and no overflow on the per-packet path, and exact for any
//! idle time (an idle source is simply behind the clock and gets a full burst).

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// Highest accepted rate: one packet per nanosecond would make the interval zero.
pub const MAX_RATE: u32 = 100_000_000;

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
    /// How far the TAT may run ahead of now: `burst * interval_ns`.
    pub tolerance_ns: u64,
}

const _: () = assert!(size_of::<Limit>() == 24);

impl Limit {
    /// A limit of `rate` packets per second and `burst` packets; `None` when either is zero or
    /// the rate exceeds [`MAX_RATE`].
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

    /// The share of `rate` and `burst` that each of `cpus` CPUs enforces: both divided by
    /// the number of CPUs, rounded up, so the CPUs together allow at most about the total.
    #[must_use]
    pub const fn per_cpu(rate: u32, burst: u32, cpus: u32) -> Option<Self> {
        if cpus == 0 {
            return None;
        }
        Self::new(rate.div_ceil(cpus), burst.div_ceil(cpus))
    }
}

/// The first 12 bytes of an IPv4-mapped IPv6 address (`::ffff:0:0/96`).
pub const V4_MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// Key of the per-source map: the source address as an IPv6 address, IPv4 mapped into
/// `::ffff:0:0/96`, so one map and one code path serve both families.
#[repr(C)]
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
        Self {
            addr: [
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
            ],
        }
    }

    /// The key with every bit outside `mask` cleared: sources in one prefix share a bucket.
    #[inline(always)]
    #[must_use]
    pub fn masked(&self, mask: &[u8; 16]) -> Self {
        let mut addr = self.addr;
        let mut i = 0;
        while i < 16 {
            addr[i] &= mask[i];
            i += 1;
        }
        Self { addr }
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

/// One GCRA bucket: the theoretical arrival time of the next packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// In `bpf_ktime_get_coarse_ns` time; zero is a full bucket.
    pub tat_ns: u64,
}

const _: () = assert!(size_of::<Bucket>() == 8);

impl Bucket {
    /// Takes one token for a packet arriving at `now_ns`; false (and no change) when the
    /// bucket is empty.
    #[inline(always)]
    pub fn take(&mut self, now_ns: u64, limit: &Limit) -> bool {
        let start = if self.tat_ns > now_ns {
            self.tat_ns
        } else {
            now_ns
        };
        let tat = start.wrapping_add(limit.interval_ns);
        // `tat > now_ns` always holds here, so the subtraction cannot wrap.
        if tat - now_ns > limit.tolerance_ns {
            false
        } else {
            self.tat_ns = tat;
            true
        }
    }
}

/// Which of a source's buckets a packet is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Echo and timestamp requests, extended echo, and later fragments.
    Echo,
    /// Echo, timestamp and extended echo replies.
    Reply,
}

/// Value of the per-source map, one per CPU: the buckets and what they let through.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceState {
    pub echo: Bucket,
    pub reply: Bucket,
    /// Packets this source passed (both classes).
    pub passed: u64,
    /// Packets this source's buckets dropped (both classes).
    pub dropped: u64,
}

const _: () = assert!(size_of::<SourceState>() == 32);

impl SourceState {
    /// The state of a source seen for the first time, its first packet charged (a burst of at
    /// least one always lets it pass). Built field by field: on the XDP side, zeroing the
    /// whole value first would become a `memset` call the verifier refuses without
    /// `CAP_PERFMON`.
    #[inline(always)]
    #[must_use]
    pub fn first(class: Class, now_ns: u64, limit: &Limit) -> Self {
        let charged = Bucket {
            tat_ns: now_ns.wrapping_add(limit.interval_ns),
        };
        match class {
            Class::Echo => Self {
                echo: charged,
                reply: Bucket { tat_ns: 0 },
                passed: 1,
                dropped: 0,
            },
            Class::Reply => Self {
                echo: Bucket { tat_ns: 0 },
                reply: charged,
                passed: 1,
                dropped: 0,
            },
        }
    }

    /// Charges one packet of `class` arriving at `now_ns`; returns whether it is within the
    /// limit, and counts it either way. A new source starts from the zeroed state, i.e. full.
    #[inline(always)]
    pub fn charge(&mut self, class: Class, now_ns: u64, limit: &Limit) -> bool {
        // One branch per field, not a reference picked per class: on the XDP side `self` is a
        // map value, and a pointer plus a per-path offset is refused without CAP_PERFMON.
        let passed = match class {
            Class::Echo => self.echo.take(now_ns, limit),
            Class::Reply => self.reply.take(now_ns, limit),
        };
        if passed {
            self.passed = self.passed.wrapping_add(1);
            true
        } else {
            self.dropped = self.dropped.wrapping_add(1);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn run(limit: &Limit, arrivals_ns: impl IntoIterator<Item = u64>) -> (u64, u64) {
        let mut s = SourceState::default();
        for t in arrivals_ns {
            s.charge(Class::Echo, t, limit);
        }
        (s.passed, s.dropped)
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

    #[test]
    fn largest_limit_does_not_overflow() {
        // burst * interval is the largest product on the path: u32::MAX * 1 s fits in u64.
        let limit = Limit::new(1, u32::MAX).unwrap();
        assert_eq!(limit.tolerance_ns, u64::from(u32::MAX) * NS_PER_SEC);
        let mut s = SourceState::default();
        for _ in 0..1000 {
            assert!(s.charge(Class::Echo, 5, &limit));
        }
    }

    #[test]
    fn first_is_a_fresh_state_charged_once() {
        let limit = Limit::new(3, 2).unwrap();
        for class in [Class::Echo, Class::Reply] {
            let mut fresh = SourceState::default();
            assert!(fresh.charge(class, 77, &limit));
            assert_eq!(SourceState::first(class, 77, &limit), fresh, "{class:?}");
        }
    }

    #[test]
    fn echo_and_reply_buckets_are_separate() {
        let limit = Limit::new(1, 2).unwrap();
        let mut s = SourceState::default();
        assert!(s.charge(Class::Echo, 1, &limit));
        assert!(s.charge(Class::Echo, 1, &limit));
        assert!(!s.charge(Class::Echo, 1, &limit));
        assert!(s.charge(Class::Reply, 1, &limit));
        assert_eq!((s.passed, s.dropped), (3, 1));
    }

    #[test]
    fn masking_aggregates_a_prefix() {
        let mut mask = [0xff; 16];
        mask[15] = 0;
        let a = SourceKey::v4([198, 51, 100, 7]).masked(&mask);
        let b = SourceKey::v4([198, 51, 100, 200]).masked(&mask);
        assert_eq!(a, b);
        assert_eq!(a.as_v4(), Some([198, 51, 100, 0]));
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

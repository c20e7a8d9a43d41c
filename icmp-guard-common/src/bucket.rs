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
}

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

    /// The IPv4 address, when this key holds one.
    #[must_use]
    pub const fn as_v4(&self) -> Option<[u8; 4]> {
        let a = &self.addr;
        if a[0] == 0
            && a[1] == 0
            && a[2] == 0
            && a[3] == 0
            && a[4] == 0
            && a[5] == 0
            && a[6] == 0
            && a[7] == 0
            && a[8] == 0
            && a[9] == 0
            && a[10] == 0xff
            && a[11] == 0xff
        {
            Some([a[12], a[13], a[14], a[15]])
        } else {
            None
        }
    }
}

/// Value of the per-source map, one per CPU: the bucket and what it let through.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceState {
    /// Theoretical arrival time of the next packet, in `bpf_ktime_get_coarse_ns` time.
    pub tat_ns: u64,
    /// Packets this bucket passed.
    pub passed: u64,
    /// Packets this bucket dropped.
    pub dropped: u64,
}

const _: () = assert!(size_of::<SourceState>() == 24);

impl SourceState {
    /// Charges one packet arriving at `now_ns`; returns whether it is within the limit, and
    /// counts it either way. A new source starts from the zeroed state, i.e. a full bucket.
    #[inline(always)]
    pub fn charge(&mut self, now_ns: u64, limit: &Limit) -> bool {
        let start = if self.tat_ns > now_ns {
            self.tat_ns
        } else {
            now_ns
        };
        let tat = start.wrapping_add(limit.interval_ns);
        // `tat > now_ns` always holds here, so the subtraction cannot wrap.
        if tat - now_ns > limit.tolerance_ns {
            self.dropped = self.dropped.wrapping_add(1);
            false
        } else {
            self.tat_ns = tat;
            self.passed = self.passed.wrapping_add(1);
            true
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
            s.charge(t, limit);
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
            assert!(s.charge(5, &limit));
        }
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

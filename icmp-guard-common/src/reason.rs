//! Why a frame got its verdict: one counter slot per reason.
//!
//! Every frame the program sees increments exactly one counter, so the counters add up to the
//! frames received and every drop is explained.

/// Counter slots in the counters map. Larger than [`Reason::ALL`] so new reasons can be added
/// without changing the map's layout.
pub const COUNTER_SLOTS: u32 = 32;

/// The reason behind a verdict; its value is the counter slot.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not ICMP (other ethertypes, TCP, UDP, ...): passed untouched.
    PassedNonIcmp = 0,
    /// ICMP metered against a source's quota and within it.
    Passed = 1,
    /// ICMP that is never rate limited (errors: unreachable, fragmentation needed, time
    /// exceeded, parameter problem) or not limited by this version (echo replies, others).
    PassedExempt = 2,
    /// Metered ICMP passed without a bucket because the per-source map refused the insert
    /// (fail open; should stay at zero).
    PassedUnmetered = 3,
    /// More VLAN tags than the parser follows: passed, not inspected.
    PassedUnparsed = 4,
    /// Malformed IPv4 or ICMP: bad header length, truncated, version mismatch, bad fragment.
    DroppedMalformed = 5,
    /// ICMP fragment reaching past 65535 bytes (ping of death) or past the configured maximum
    /// echo size, or an unfragmented echo larger than that size.
    DroppedOversize = 6,
    /// Over the source's token bucket.
    DroppedRateSource = 7,
}

impl Reason {
    /// Every reason, in counter-slot order.
    pub const ALL: [Self; 8] = [
        Self::PassedNonIcmp,
        Self::Passed,
        Self::PassedExempt,
        Self::PassedUnmetered,
        Self::PassedUnparsed,
        Self::DroppedMalformed,
        Self::DroppedOversize,
        Self::DroppedRateSource,
    ];

    /// The counter slot.
    #[inline(always)]
    #[must_use]
    pub const fn slot(self) -> u32 {
        self as u32
    }

    /// Whether the verdict for this reason is to drop the frame.
    #[inline(always)]
    #[must_use]
    pub const fn is_drop(self) -> bool {
        matches!(
            self,
            Self::DroppedMalformed | Self::DroppedOversize | Self::DroppedRateSource
        )
    }

    /// The counter's name in `stats` output.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::PassedNonIcmp => "passed_non_icmp",
            Self::Passed => "passed",
            Self::PassedExempt => "passed_exempt",
            Self::PassedUnmetered => "passed_unmetered",
            Self::PassedUnparsed => "passed_unparsed",
            Self::DroppedMalformed => "dropped_malformed",
            Self::DroppedOversize => "dropped_oversize",
            Self::DroppedRateSource => "dropped_rate_source",
        }
    }

    /// One line for operators: what the counter means.
    #[must_use]
    pub const fn help(self) -> &'static str {
        match self {
            Self::PassedNonIcmp => "frames that are not ICMP, passed untouched",
            Self::Passed => "ICMP within its source's quota",
            Self::PassedExempt => "ICMP never rate limited (errors, PMTU, replies)",
            Self::PassedUnmetered => "ICMP passed because the source map refused an insert",
            Self::PassedUnparsed => "frames with more VLAN tags than the parser follows",
            Self::DroppedMalformed => "malformed IPv4/ICMP headers or fragments",
            Self::DroppedOversize => "ping of death or fragments/echo over --max-echo-size",
            Self::DroppedRateSource => "echo over its source's token bucket",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_dense_unique_and_fit() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.slot() as usize, i, "{r:?}");
        }
        assert!(Reason::ALL.len() <= COUNTER_SLOTS as usize);
    }

    #[test]
    fn drop_reasons_are_named_dropped() {
        for r in Reason::ALL {
            assert_eq!(r.is_drop(), r.name().starts_with("dropped_"), "{r:?}");
        }
    }
}

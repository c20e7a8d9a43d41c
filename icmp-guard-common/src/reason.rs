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
    /// ICMP metered against a source's quota (and the global budget) and within it.
    Passed = 1,
    /// ICMP that no source quota limits: errors (unreachable, fragmentation needed, packet too
    /// big, time exceeded, parameter problem), neighbour discovery, MLD, and other known
    /// informational types that are not echo; all but neighbour discovery within the exempt
    /// budget.
    PassedExempt = 2,
    /// Metered ICMP passed without a bucket because the per-source map refused the insert
    /// (fail open; should stay at zero).
    PassedUnmetered = 3,
    /// More VLAN tags than the parser follows: passed, not inspected.
    PassedUnparsed = 4,
    /// Malformed IP or ICMP: bad header length, truncated, version mismatch, bad fragment,
    /// bad extension header, neighbour discovery with a hop limit other than 255 or fragmented.
    DroppedMalformed = 5,
    /// Fragment reaching past 65535 bytes (ping of death) or past the configured maximum echo
    /// size, or an unfragmented echo larger than that size.
    DroppedOversize = 6,
    /// Over the source's echo bucket.
    DroppedRateSource = 7,
    /// From an allow-listed source: passed without any rate limit.
    Allowed = 8,
    /// Over the global ICMP budget (counted in the source's entry too).
    DroppedRateGlobal = 9,
    /// An echo reply over the source's reply bucket (the Smurf victim's side).
    DroppedRateReply = 10,
    /// Echo to a broadcast or multicast destination, by IP or by Ethernet address (Smurf).
    DroppedBroadcast = 11,
    /// From a deny-listed source.
    DroppedDenied = 12,
    /// From a source that cannot be on the wire: 0/8, 127/8, 224/4, 240/4; IPv6 multicast,
    /// loopback, or unspecified (except duplicate address detection).
    DroppedMartian = 13,
    /// A deprecated or unknown ICMP type, or an unknown ICMPv6 informational type.
    DroppedUnknownType = 14,
    /// An IPv6 extension-header chain longer than the parser walks.
    DroppedExtHeaders = 15,
    /// From a source not seen lately while the admission budget for new sources of its class
    /// is empty (a flood of spoofed or fresh sources); the source gets no entry.
    DroppedNewSource = 16,
    /// ICMP that no source quota limits (errors, packet too big, fragmentation needed, MLD,
    /// informational types) over the interface's budget for it.
    DroppedRateExempt = 17,
}

impl Reason {
    /// Every reason, in counter-slot order.
    pub const ALL: [Self; 18] = [
        Self::PassedNonIcmp,
        Self::Passed,
        Self::PassedExempt,
        Self::PassedUnmetered,
        Self::PassedUnparsed,
        Self::DroppedMalformed,
        Self::DroppedOversize,
        Self::DroppedRateSource,
        Self::Allowed,
        Self::DroppedRateGlobal,
        Self::DroppedRateReply,
        Self::DroppedBroadcast,
        Self::DroppedDenied,
        Self::DroppedMartian,
        Self::DroppedUnknownType,
        Self::DroppedExtHeaders,
        Self::DroppedNewSource,
        Self::DroppedRateExempt,
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
            Self::DroppedMalformed
                | Self::DroppedOversize
                | Self::DroppedRateSource
                | Self::DroppedRateGlobal
                | Self::DroppedRateReply
                | Self::DroppedBroadcast
                | Self::DroppedDenied
                | Self::DroppedMartian
                | Self::DroppedUnknownType
                | Self::DroppedExtHeaders
                | Self::DroppedNewSource
                | Self::DroppedRateExempt
        )
    }

    /// Whether this is a verdict on an ICMP frame (every drop, and the passes the policy
    /// judged): what `capture --all` samples.
    #[inline(always)]
    #[must_use]
    pub const fn is_judged_icmp(self) -> bool {
        self.is_drop()
            || matches!(
                self,
                Self::Passed | Self::PassedExempt | Self::PassedUnmetered | Self::Allowed
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
            Self::Allowed => "allowed",
            Self::DroppedRateGlobal => "dropped_rate_global",
            Self::DroppedRateReply => "dropped_rate_reply",
            Self::DroppedBroadcast => "dropped_broadcast",
            Self::DroppedDenied => "dropped_denied",
            Self::DroppedMartian => "dropped_martian",
            Self::DroppedUnknownType => "dropped_unknown_type",
            Self::DroppedExtHeaders => "dropped_ext_headers",
            Self::DroppedNewSource => "dropped_new_source",
            Self::DroppedRateExempt => "dropped_rate_exempt",
        }
    }

    /// One line for operators: what the counter means.
    #[must_use]
    pub const fn help(self) -> &'static str {
        match self {
            Self::PassedNonIcmp => "frames that are not ICMP, passed untouched",
            Self::Passed => "ICMP within its source's quota and the global budget",
            Self::PassedExempt => "ICMP no source quota limits (errors, PMTU, NDP, MLD)",
            Self::PassedUnmetered => "ICMP passed because the source map refused an insert",
            Self::PassedUnparsed => "frames with more VLAN tags than the parser follows",
            Self::DroppedMalformed => "malformed IP/ICMP headers, fragments or NDP",
            Self::DroppedOversize => "ping of death or fragments/echo over --max-echo-size",
            Self::DroppedRateSource => "echo over its source's bucket",
            Self::Allowed => "ICMP from the allow list, never limited",
            Self::DroppedRateGlobal => "ICMP over the global budget",
            Self::DroppedRateReply => "echo replies over their source's reply bucket",
            Self::DroppedBroadcast => "echo to broadcast or multicast (Smurf)",
            Self::DroppedDenied => "ICMP from the deny list",
            Self::DroppedMartian => "ICMP from impossible sources (0/8, 127/8, 224/4, ...)",
            Self::DroppedUnknownType => "deprecated or unknown ICMP types",
            Self::DroppedExtHeaders => "IPv6 extension-header chains over the parse budget",
            Self::DroppedNewSource => {
                "ICMP from sources not seen lately, over the admission budget"
            }
            Self::DroppedRateExempt => {
                "ICMP no source quota limits (errors, PMTU, MLD), over the exempt budget"
            }
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

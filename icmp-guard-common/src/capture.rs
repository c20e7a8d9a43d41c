//! Sampling judged frames into a ring buffer for `icmp-guard capture`.
//!
//! Nobody capturing costs a judged frame one test of a bit of the flags its verdict carries
//! ([`crate::config::flags::CAPTURE`], next to dry-run). While the bit is
//! set, the program reads [`Control`] (one entry of `IG_CAPTURE_CTL`): the capture's lease,
//! the reasons it wants, its sample rate and snap length. A frame whose reason is wanted and
//! that the sample bucket admits is copied (at most [`MAX_SNAPLEN`] bytes) with a
//! [`SampleHeader`] into the `IG_CAPTURE` ring buffer; when the ring is full the sample is
//! counted in [`Control::lost`] instead.
//!
//! The lease makes a capture that cannot clear the bit (killed with SIGKILL) harmless: the
//! capture renews [`Control::lease_until_ns`] every [`LEASE_RENEW_NS`], and once it has expired
//! the program stops sampling at the cost of one compare; the next `capture` of the interface
//! clears the bit for good (`set` and a reload keep it, as they keep every capture bit).

use crate::{Limit, Reason};

/// Most bytes of a frame a sample carries: the headers of any ICMP packet the parser reads
/// (Ethernet, two VLAN tags, IPv6 with extension headers) and the start of its payload.
/// A fixed bound, so the ring-buffer record has a fixed size the verifier knows.
pub const MAX_SNAPLEN: u32 = 256;

// The program bounds the copy with a mask of `MAX_SNAPLEN - 1`.
const _: () = assert!(MAX_SNAPLEN.is_power_of_two());

/// Fewest bytes `--snaplen` may ask for: the Ethernet header, the eight VLAN tags the parser
/// walks and an IPv6 header's addresses, so every sample carries its source address.
pub const MIN_SNAPLEN: u32 = 96;

/// Samples per second by default (`--rate`).
pub const DEFAULT_RATE: u32 = 1000;

/// Samples the program may send back to back: a tenth of a second at the rate, at least one.
#[must_use]
pub const fn burst_of(rate: u32) -> u32 {
    if rate < 10 { 1 } else { rate / 10 }
}

/// Size of the ring buffer, bytes: 1 MiB holds about 3,600 samples (280 bytes and the ring's
/// 8-byte record header each), over three seconds at the
/// default rate, so a reader that stalls for a moment loses nothing.
pub const RING_BYTES: u32 = 1 << 20;

/// How long a lease lasts past its last renewal (`bpf_ktime_get_coarse_ns`, i.e.
/// `CLOCK_MONOTONIC`, nanoseconds).
pub const LEASE_NS: u64 = 3_000_000_000;

/// How often a running capture renews its lease.
pub const LEASE_RENEW_NS: u64 = 1_000_000_000;

/// What a running capture asks of the program: one entry of `IG_CAPTURE_CTL`.
///
/// Userspace writes the whole value when a capture starts and then only renews the lease
/// (through a mapping of the map: one 8-byte store);
/// the program updates the bucket and the counters atomically (the fields are plain `u64`
/// here so the same type is the map's value on both sides; the program makes atomic views
/// of them).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    /// Until when the program samples (monotonic ns); later, the capture is gone.
    pub lease_until_ns: u64,
    /// The sample rate: [`DEFAULT_RATE`] unless `--rate`.
    pub limit: Limit,
    /// The sample bucket's theoretical arrival time.
    pub tat_ns: u64,
    /// Samples the ring buffer had no room for.
    pub lost: u64,
    /// Wanted frames the sample bucket refused (over `--rate`).
    pub over_rate: u64,
    /// Bit `Reason::slot()` set for each reason to sample.
    pub reasons: u32,
    /// Bytes of each frame to copy, `1..=MAX_SNAPLEN`.
    pub snaplen: u32,
}

const _: () = assert!(size_of::<Control>() == 64);

impl Control {
    /// Whether frames of `reason` are sampled.
    #[inline(always)]
    #[must_use]
    pub const fn wants(&self, reason: Reason) -> bool {
        self.reasons & (1 << reason.slot()) != 0
    }

    /// The reason bits of every drop reason.
    #[must_use]
    pub const fn drops() -> u32 {
        reason_bits(false)
    }

    /// The reason bits of every verdict on an ICMP frame (`--all`).
    #[must_use]
    pub const fn judged() -> u32 {
        reason_bits(true)
    }
}

/// The bits of the reasons that are drops, or with `judged` every verdict on an ICMP frame.
const fn reason_bits(judged: bool) -> u32 {
    let mut bits = 0;
    let mut i = 0;
    while i < Reason::ALL.len() {
        let reason = Reason::ALL[i];
        if (judged && reason.is_judged_icmp()) || (!judged && reason.is_drop()) {
            bits |= 1 << reason.slot();
        }
        i += 1;
    }
    bits
}

/// What precedes the frame's bytes in a sample.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleHeader {
    /// When the frame was judged, `bpf_ktime_get_ns` (monotonic ns).
    pub time_ns: u64,
    /// The verdict's reason, [`Reason::slot`].
    pub reason: u32,
    /// The frame's length, fragments included.
    pub orig_len: u32,
    /// Bytes of it that follow, at most [`MAX_SNAPLEN`].
    pub cap_len: u32,
    pub reserved: u32,
}

const _: () = assert!(size_of::<SampleHeader>() == 24);

/// One ring-buffer record: the header and [`MAX_SNAPLEN`] bytes, of which
/// [`SampleHeader::cap_len`] are the frame's.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub header: SampleHeader,
    pub data: [u8; MAX_SNAPLEN as usize],
}

impl Sample {
    /// Reads a record as userspace gets it from the ring; `None` if it is too short or its
    /// header does not fit the record.
    #[must_use]
    pub fn parse(record: &[u8]) -> Option<(SampleHeader, &[u8])> {
        let head = record.get(..size_of::<SampleHeader>())?;
        let word =
            |at: usize| u32::from_ne_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let mut time = [0u8; 8];
        time.copy_from_slice(&head[..8]);
        let header = SampleHeader {
            time_ns: u64::from_ne_bytes(time),
            reason: word(8),
            orig_len: word(12),
            cap_len: word(16),
            reserved: word(20),
        };
        if header.cap_len > MAX_SNAPLEN {
            return None;
        }
        let data = record.get(size_of::<SampleHeader>()..)?;
        let data = data.get(..header.cap_len as usize)?;
        Some((header, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_and_judged_bits() {
        let drops = Control::drops();
        let judged = Control::judged();
        for reason in Reason::ALL {
            let bit = 1 << reason.slot();
            assert_eq!(drops & bit != 0, reason.is_drop(), "{reason:?}");
            assert_eq!(judged & bit != 0, reason.is_judged_icmp(), "{reason:?}");
        }
        assert_eq!(judged & (1 << Reason::PassedNonIcmp.slot()), 0);
        assert_eq!(drops & !judged, 0, "every drop is a judged ICMP verdict");
    }

    #[test]
    fn records_parse_and_short_ones_do_not() {
        let mut record = [0u8; size_of::<Sample>()];
        record[..8].copy_from_slice(&0x0102_0304_0506_0708u64.to_ne_bytes());
        record[8..12].copy_from_slice(&7u32.to_ne_bytes());
        record[12..16].copy_from_slice(&1500u32.to_ne_bytes());
        record[16..20].copy_from_slice(&3u32.to_ne_bytes());
        record[24..27].copy_from_slice(&[9, 8, 7]);
        let (header, data) = Sample::parse(&record).unwrap();
        assert_eq!(header.time_ns, 0x0102_0304_0506_0708);
        assert_eq!(
            (header.reason, header.orig_len, header.cap_len),
            (7, 1500, 3)
        );
        assert_eq!(data, &[9, 8, 7]);
        assert!(Sample::parse(&record[..20]).is_none());
        record[16..20].copy_from_slice(&(MAX_SNAPLEN + 1).to_ne_bytes());
        assert!(Sample::parse(&record).is_none());
    }

    #[test]
    fn bursts() {
        for (rate, burst) in [(1, 1), (9, 1), (10, 1), (1000, 100)] {
            assert_eq!(burst_of(rate), burst);
        }
    }
}

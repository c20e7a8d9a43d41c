//! The configuration the XDP program reads for every ICMP packet.

use crate::{
    bucket::{Class, Limit},
    parse::Family,
};

/// Defaults, shared by the CLI's `--help`, the README and the tests.
pub mod defaults {
    /// Echo requests per second per source.
    pub const ECHO_RATE: u32 = 20;
    /// Echo requests a source may send back to back.
    pub const ECHO_BURST: u32 = 50;
    /// Echo replies per second per source: generous, so this host's own pings to a busy peer
    /// still work, while a reflected (Smurf) flood is cut.
    pub const REPLY_RATE: u32 = 100;
    /// Echo replies a source may send back to back.
    pub const REPLY_BURST: u32 = 200;
    /// Metered ICMP per second from all sources together.
    pub const GLOBAL_RATE: u32 = 2000;
    /// Metered ICMP from all sources that may arrive back to back.
    pub const GLOBAL_BURST: u32 = 4000;
    /// Sources not seen before admitted per second, per class (requests, replies): all a
    /// flood of spoofed sources can take from the global budget.
    pub const NEW_SOURCE_RATE: u32 = 100;
    /// New sources that may be admitted back to back, per class.
    pub const NEW_SOURCE_BURST: u32 = 200;
    /// ICMP that no source quota limits (errors, packet too big, fragmentation needed, MLD,
    /// informational types) per second, all sources together: far above what a host
    /// receives in normal operation, so only a flood of them meets it.
    pub const EXEMPT_RATE: u32 = 10_000;
    /// Such ICMP that may arrive back to back.
    pub const EXEMPT_BURST: u32 = 20_000;
    /// Source prefixes tracked at once (the per-source table's capacity).
    pub const MAX_SOURCES: u32 = 65_536;
    /// Largest ICMP datagram (IP header included) accepted for an echo or any ICMP fragment:
    /// the largest common jumbo MTU, so `ping -M do -s 9188` MTU checks still work.
    pub const MAX_ECHO_SIZE: u32 = 9216;
    /// IPv4 sources share a bucket per this prefix length.
    pub const V4_PREFIX: u32 = 32;
    /// IPv6 sources share a bucket per this prefix length (a /64 is one host's, RFC 8981).
    pub const V6_PREFIX: u32 = 64;
}

/// Largest IPv4 datagram, and largest IPv6 payload; a fragment reaching past it is a ping of
/// death.
pub const MAX_DATAGRAM: u32 = 65535;

/// Bits of [`Config::flags`].
pub mod flags {
    /// Count every verdict as usual but pass every frame.
    pub const DRY_RUN: u32 = 1;
    /// A capture runs: sample drops into the capture ring (see [`crate::capture`]). Set by
    /// `icmp-guard capture` while it runs; the program also checks its lease.
    pub const CAPTURE: u32 = 2;
    /// With [`CAPTURE`]: sample passed ICMP too (`capture --all`).
    pub const CAPTURE_ALL: u32 = 4;
    /// Both capture bits: what a capture sets and clears.
    pub const CAPTURE_BITS: u32 = CAPTURE | CAPTURE_ALL;

    /// Whether a frame judged under `flags` goes to the capture (if its reason, lease and
    /// sample rate agree): a drop while a capture runs, or any judged ICMP under `--all`.
    #[inline(always)]
    #[must_use]
    pub const fn capturing(flags: u32, drop: bool) -> bool {
        // Two tests against zero, not `flags & want == want`: LLVM's BPF backend turns that
        // into `(flags | !want) == -1` compared as 64 bits on a zero-extended 32-bit value,
        // which the verifier rightly finds never true, and removes the capture as dead code.
        flags & CAPTURE != 0 && (drop || flags & CAPTURE_ALL != 0)
    }

    /// Whether `flags` say dry-run.
    #[inline(always)]
    #[must_use]
    pub const fn dry_run(flags: u32) -> bool {
        flags & DRY_RUN != 0
    }
}

/// XDP attach mode actually in effect, recorded for `status`.
pub mod attach_mode {
    pub const UNKNOWN: u32 = 0;
    pub const NATIVE: u32 = 1;
    pub const GENERIC: u32 = 2;
    /// Set with [`GENERIC`] when `auto` was asked for and native mode was refused, so a
    /// guard attached again (its interface recreated) tries native first, as it was asked.
    pub const FELL_BACK: u32 = 1 << 8;
}

/// The single value of the config map.
///
/// Built by userspace (derived fields such as masks and intervals are computed there, so the
/// program never divides); the loader also records where and how it attached (`ifindex`,
/// `attach_mode`, `attached_at`) for `status`. Userspace rewrites the whole value; each field
/// is naturally aligned, so a reader racing an update sees every field either old or new, and
/// any mix of old and new limits is a valid limit.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Per-source limit on echo, timestamp and extended-echo requests and later fragments.
    pub echo: Limit,
    /// Per-source limit on echo, timestamp and extended-echo replies.
    pub reply: Limit,
    /// Metered ICMP from all sources together: one budget every CPU draws from.
    pub global: Limit,
    /// How fast sources not seen before are admitted, per class: one budget for requests,
    /// one for replies, each of this size.
    pub new_source: Limit,
    /// ICMP that no source quota limits (everything exempt or essential but neighbour
    /// discovery), all sources together: one budget every CPU draws from.
    pub exempt: Limit,
    /// Mask applied to IPv4 sources (IPv4-mapped: `96 + v4_prefix` bits).
    pub v4_mask: [u8; 16],
    /// Mask applied to IPv6 sources.
    pub v6_mask: [u8; 16],
    pub v4_prefix: u32,
    pub v6_prefix: u32,
    /// See [`defaults::MAX_ECHO_SIZE`]; at most [`MAX_DATAGRAM`].
    pub max_echo_size: u32,
    /// See [`flags`].
    pub flags: u32,
    /// Entries in the allow list's active bank; the program skips the lookup when zero.
    pub allow_entries: u32,
    /// Entries in the deny list's active bank; the program skips the lookup when zero.
    pub deny_entries: u32,
    /// Interface index the program is attached to.
    pub ifindex: u32,
    /// One of [`attach_mode`].
    pub attach_mode: u32,
    /// Capacity of the per-source table, fixed when the table is created.
    pub max_sources: u32,
    /// Which bank of the lists the program reads (see [`Config::list_bank`]): 0 for
    /// `IG_ALLOW` and `IG_DENY`, 1 for `IG_ALLOW_B` and `IG_DENY_B`. Userspace writes a new
    /// list into the other bank, then this field with the counts above in one config update:
    /// that update is the only moment a list changes. Zero in older versions (bank 0).
    pub list_bank: u32,
    /// Keys the hash that places sources in the recently-seen filter, so an attacker cannot
    /// aim spoofed addresses at the lines of known sources (to overflow them). Random per attach.
    pub seen_seed: u64,
    /// Attach time, seconds since the Unix epoch.
    pub attached_at: u64,
}

const _: () = assert!(size_of::<Config>() == 208);
// `Config::mask` reads the masks as aligned words.
const _: () = assert!(align_of::<Config>() == 8);
const _: () = assert!(core::mem::offset_of!(Config, v4_mask) % 8 == 0);
const _: () = assert!(core::mem::offset_of!(Config, v6_mask) % 8 == 0);

/// A 16-byte mask of `len` leading one bits (`len` at most 128).
#[must_use]
pub const fn prefix_mask(len: u32) -> [u8; 16] {
    let full = (len / 8) as usize;
    let rem = len % 8;
    let mut mask = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        mask[i] = if i < full {
            0xff
        } else if i == full && rem > 0 {
            !(0xffu8 >> rem)
        } else {
            0
        };
        i += 1;
    }
    mask
}

impl Config {
    /// The configuration with every limit at its default, on an exact clock (see
    /// [`Config::derive`] for the coarse one).
    #[must_use]
    pub const fn with_defaults() -> Self {
        Self {
            echo: unwrap(Limit::new(defaults::ECHO_RATE, defaults::ECHO_BURST)),
            reply: unwrap(Limit::new(defaults::REPLY_RATE, defaults::REPLY_BURST)),
            global: unwrap(Limit::new(defaults::GLOBAL_RATE, defaults::GLOBAL_BURST)),
            new_source: unwrap(Limit::new(
                defaults::NEW_SOURCE_RATE,
                defaults::NEW_SOURCE_BURST,
            )),
            exempt: unwrap(Limit::new(defaults::EXEMPT_RATE, defaults::EXEMPT_BURST)),
            v4_mask: prefix_mask(96 + defaults::V4_PREFIX),
            v6_mask: prefix_mask(defaults::V6_PREFIX),
            v4_prefix: defaults::V4_PREFIX,
            v6_prefix: defaults::V6_PREFIX,
            max_echo_size: defaults::MAX_ECHO_SIZE,
            flags: 0,
            allow_entries: 0,
            deny_entries: 0,
            ifindex: 0,
            attach_mode: attach_mode::UNKNOWN,
            max_sources: defaults::MAX_SOURCES,
            list_bank: 0,
            seen_seed: 0,
            attached_at: 0,
        }
    }

    /// `self` with its derived fields (each limit's interval and tolerance, the source masks)
    /// computed from the primary ones (rates, bursts, prefix lengths) for a clock that steps
    /// every `tick_ns` (see [`Limit::on_clock`]); `None` when a primary value is out of range.
    #[must_use]
    pub fn derive(self, tick_ns: u64) -> Option<Self> {
        if self.v4_prefix > 32
            || self.v6_prefix > 128
            || self.max_echo_size > MAX_DATAGRAM
            || self.max_sources == 0
        {
            return None;
        }
        let limit = |l: Limit| Some(Limit::new(l.rate, l.burst)?.on_clock(tick_ns));
        Some(Self {
            echo: limit(self.echo)?,
            reply: limit(self.reply)?,
            global: limit(self.global)?,
            new_source: limit(self.new_source)?,
            exempt: limit(self.exempt)?,
            v4_mask: prefix_mask(96 + self.v4_prefix),
            v6_mask: prefix_mask(self.v6_prefix),
            ..self
        })
    }

    /// The per-source limit of `class`.
    ///
    /// Both limits are read (volatile) and one is chosen by value. Otherwise LLVM turns the
    /// choice into one load from `config + (0 or 24)`: on the XDP side a map-value pointer
    /// plus an offset that differs between paths, which the verifier refuses to programs
    /// without `CAP_PERFMON`.
    #[inline(always)]
    #[must_use]
    pub fn limit(&self, class: Class) -> Limit {
        // SAFETY: both are plain reads of fields of a valid reference.
        let (echo, reply) = unsafe {
            (
                core::ptr::read_volatile(&raw const self.echo),
                core::ptr::read_volatile(&raw const self.reply),
            )
        };
        match class {
            Class::Echo => echo,
            Class::Reply => reply,
        }
    }

    /// The source mask of `family` as two native-endian words, chosen like [`Config::limit`]
    /// and for the same reason. Read as words (the masks sit at 8-byte aligned offsets of an
    /// 8-byte aligned value): read as bytes, they cost 32 loads a packet.
    #[inline(always)]
    #[must_use]
    pub fn mask(&self, family: Family) -> [u64; 2] {
        let words = |mask: &[u8; 16]| -> [u64; 2] {
            #[expect(
                clippy::cast_ptr_alignment,
                reason = "the field is 8-byte aligned: asserted under the struct"
            )]
            let at = core::ptr::from_ref(mask).cast::<u64>();
            // SAFETY: reads of a valid field, 8-byte aligned (see the layout assertions).
            unsafe {
                [
                    core::ptr::read_volatile(at),
                    core::ptr::read_volatile(at.add(1)),
                ]
            }
        };
        let (v4, v6) = (words(&self.v4_mask), words(&self.v6_mask));
        match family {
            Family::V4 => v4,
            Family::V6 => v6,
        }
    }

    /// The bank of the lists in force, 0 or 1 (any other value reads as its low bit).
    #[inline(always)]
    #[must_use]
    pub const fn list_bank(&self) -> u32 {
        self.list_bank & 1
    }

    /// Whether dry-run is on.
    #[inline(always)]
    #[must_use]
    pub const fn dry_run(&self) -> bool {
        flags::dry_run(self.flags)
    }
}

const fn unwrap(limit: Option<Limit>) -> Limit {
    match limit {
        Some(l) => l,
        None => panic!("default limits are valid"),
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY (all four): repr(C), only integer fields, no implicit padding (sizes asserted).
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for crate::bucket::Limit {}
    unsafe impl aya::Pod for crate::bucket::SourceKey {}
    unsafe impl aya::Pod for crate::bucket::SourceRecord {}
    // SAFETY: repr(C), integer fields and a `Limit`, no implicit padding (size asserted).
    unsafe impl aya::Pod for crate::capture::Control {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(prefix_mask(0), [0; 16]);
        assert_eq!(prefix_mask(128), [0xff; 16]);
        let m = prefix_mask(96 + 24);
        assert_eq!(&m[..15], &[0xff; 15]);
        assert_eq!(m[15], 0);
        let m = prefix_mask(61);
        assert_eq!(&m[..7], &[0xff; 7]);
        assert_eq!(m[7], 0xf8);
        assert_eq!(&m[8..], &[0; 8]);
    }
}

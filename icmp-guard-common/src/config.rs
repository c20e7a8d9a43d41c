//! The configuration the XDP program reads on every metered packet.

use crate::bucket::Limit;

/// Defaults, shared by the CLI's `--help`, the README and the tests.
pub mod defaults {
    /// Echo requests per second per source.
    pub const ECHO_RATE: u32 = 20;
    /// Echo requests a source may send back to back.
    pub const ECHO_BURST: u32 = 50;
    /// Largest ICMP datagram (IP header included) accepted for an echo or any ICMP fragment:
    /// the largest common jumbo MTU, so `ping -M do -s 9188` MTU checks still work.
    pub const MAX_ECHO_SIZE: u32 = 9216;
}

/// Largest IPv4 datagram; a fragment reaching past it is a ping of death.
pub const MAX_DATAGRAM: u32 = 65535;

/// XDP attach mode actually in effect, recorded for `status`.
pub mod attach_mode {
    pub const UNKNOWN: u32 = 0;
    pub const NATIVE: u32 = 1;
    pub const GENERIC: u32 = 2;
}

/// The single value of the config map.
///
/// The program reads `echo` and `max_echo_size`; the loader also records where and how it
/// attached (`ifindex`, `attach_mode`, `attached_at`) so `status` can report it from the pins
/// alone. Userspace rewrites the whole value; each field is naturally aligned, so a reader
/// racing an update sees every field either old or new, and any mix of old and new limits is a
/// valid limit.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Per-source limit on echo and timestamp requests and on non-first ICMP fragments.
    pub echo: Limit,
    /// See [`defaults::MAX_ECHO_SIZE`]; at most [`MAX_DATAGRAM`].
    pub max_echo_size: u32,
    /// Interface index the program is attached to.
    pub ifindex: u32,
    /// One of [`attach_mode`].
    pub attach_mode: u32,
    /// Explicit padding (always zero): keeps the layout free of implicit holes.
    pub reserved: u32,
    /// Attach time, seconds since the Unix epoch.
    pub attached_at: u64,
}

const _: () = assert!(size_of::<Config>() == 48);

impl Config {
    /// The configuration with every limit at its default.
    #[must_use]
    pub const fn with_defaults() -> Self {
        Self {
            echo: match Limit::new(defaults::ECHO_RATE, defaults::ECHO_BURST) {
                Some(l) => l,
                None => panic!("default limit is valid"),
            },
            max_echo_size: defaults::MAX_ECHO_SIZE,
            ifindex: 0,
            attach_mode: attach_mode::UNKNOWN,
            reserved: 0,
            attached_at: 0,
        }
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: repr(C), only integer fields, no implicit padding (asserted by size above).
    unsafe impl aya::Pod for super::Config {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::bucket::SourceKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for crate::bucket::SourceState {}
}

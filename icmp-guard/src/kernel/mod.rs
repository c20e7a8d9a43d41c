//! Talking to the kernel: the embedded XDP object ([`object`]), loading, attaching and
//! replacing it ([`loader`]), interface names and indexes ([`iface`]), the network namespace
//! ([`netns`]), the state of an XDP link ([`link`]), the attach mode
//! ([`mode`]), rtnetlink queries ([`netlink`]), why a driver refused native XDP
//! ([`refusal`]), who owns a foreign XDP program ([`owner`]), capability checks
//! ([`privilege`]) and whether the kernel can run the program at all ([`support`]).

pub mod iface;
pub mod link;
pub mod loader;
pub mod mode;
pub mod netlink;
pub mod netns;
pub mod object;
pub mod owner;
pub mod privilege;
pub mod refusal;
pub mod support;

pub use iface::IfaceName;
pub use mode::AttachMode;

/// How far the program's clock (`bpf_ktime_get_coarse_ns`) jumps at each step: the
/// resolution of `CLOCK_MONOTONIC_COARSE`, one jiffy (4 ms at `HZ=250`). The buckets are
/// derived for it (see `Limit::on_clock`); 10 ms (`HZ=100`, the coarsest) if it cannot be read.
#[must_use]
pub fn clock_tick_ns() -> u64 {
    const COARSEST: u64 = 10_000_000;
    let mut res = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec we own.
    let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &raw mut res) };
    if rc != 0 {
        return COARSEST;
    }
    let ns = u64::try_from(res.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(res.tv_nsec).unwrap_or(0));
    if ns == 0 { COARSEST } else { ns }
}

/// The time of `clock` in nanoseconds: `CLOCK_MONOTONIC_COARSE` is the buckets' clock
/// (`bpf_ktime_get_coarse_ns`), `CLOCK_MONOTONIC` the capture's (`bpf_ktime_get_ns`).
#[must_use]
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec we own.
    unsafe { libc::clock_gettime(clock, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// A random seed for the recently-seen filter's hash, from the kernel's generator.
#[must_use]
pub fn random_seed() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: writes at most buf.len() bytes into buf.
    let got = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if got != 8 {
        // getrandom(2) cannot fail for 8 bytes once the pool is ready; the time is a poorer
        // seed, but a seed: it only makes aiming spoofed addresses at slots harder.
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
    }
    u64::from_ne_bytes(buf)
}

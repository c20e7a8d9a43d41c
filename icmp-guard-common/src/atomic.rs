//! The atomic operations the buckets need, on every target.
//!
//! Rust's BPF target does not declare compare-and-swap support, so `AtomicU64` offers no
//! `compare_exchange` or `fetch_add` there, although the instructions exist (`BPF_CMPXCHG`
//! and `BPF_ADD` with `BPF_ATOMIC`, since Linux 5.12); and LLVM's BPF backend cannot select
//! an atomic load or store, although an aligned 8-byte load or store is one instruction and
//! so never torn. On BPF these use the compiler's atomic intrinsics and volatile accesses;
//! elsewhere the standard methods.

use core::sync::atomic::AtomicU64;
#[cfg(not(target_arch = "bpf"))]
use core::sync::atomic::Ordering::Relaxed;

/// Stores `new` if the value is `old`: `Ok(old)` on success, `Err(current)` otherwise.
#[inline(always)]
pub fn compare_exchange(cell: &AtomicU64, old: u64, new: u64) -> Result<u64, u64> {
    #[cfg(target_arch = "bpf")]
    {
        use core::intrinsics::{AtomicOrdering::Relaxed, atomic_cxchg};
        // SAFETY: `as_ptr` is valid and aligned for as long as `cell` is borrowed, and every
        // access to it is atomic.
        let (current, stored) =
            unsafe { atomic_cxchg::<u64, { Relaxed }, { Relaxed }>(cell.as_ptr(), old, new) };
        if stored { Ok(current) } else { Err(current) }
    }
    #[cfg(not(target_arch = "bpf"))]
    cell.compare_exchange(old, new, Relaxed, Relaxed)
}

/// Adds `n`, without reading the result (a plain `BPF_ADD`, no fetch).
#[inline(always)]
pub fn add(cell: &AtomicU64, n: u64) {
    #[cfg(target_arch = "bpf")]
    {
        use core::intrinsics::{AtomicOrdering::Relaxed, atomic_xadd};
        // SAFETY: as in `compare_exchange`.
        unsafe { atomic_xadd::<u64, u64, { Relaxed }>(cell.as_ptr(), n) };
    }
    #[cfg(not(target_arch = "bpf"))]
    cell.fetch_add(n, Relaxed);
}

/// Reads the value (relaxed).
#[inline(always)]
#[must_use]
pub fn load(cell: &AtomicU64) -> u64 {
    #[cfg(target_arch = "bpf")]
    // SAFETY: aligned and valid while borrowed; one BPF_LDX of 8 bytes, never torn.
    return unsafe { core::ptr::read_volatile(cell.as_ptr()) };
    #[cfg(not(target_arch = "bpf"))]
    cell.load(Relaxed)
}

/// Writes the value (relaxed).
#[inline(always)]
pub fn store(cell: &AtomicU64, value: u64) {
    #[cfg(target_arch = "bpf")]
    // SAFETY: aligned and valid while borrowed; one BPF_STX of 8 bytes, never torn.
    unsafe {
        core::ptr::write_volatile(cell.as_ptr(), value);
    };
    #[cfg(not(target_arch = "bpf"))]
    cell.store(value, Relaxed);
}

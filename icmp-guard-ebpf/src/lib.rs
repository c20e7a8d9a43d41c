//! What every XDP object of this crate carries besides its program: the panic handler a
//! `no_std` binary must have, and the license the kernel reads from the `license` section
//! (helpers such as `bpf_xdp_load_bytes` are only offered to GPL-compatible programs); and
//! [`per_cpu_cell`], which icmp-guard and the bench's floor use alike. The binaries,
//! `src/main.rs` and the bench's programs in `src/bin/`, link them with
//! `extern crate icmp_guard_ebpf;`.
//!
//! The library target also lets `icmp-guard` list this crate as a build-dependency, so cargo
//! rebuilds the embedded programs when they change; there it is built for the host, where both
//! items are left out.

#![no_std]

use core::cell::Cell;

/// A slot of a per-CPU map, this CPU's copy, as a `Cell`: what `bucket::take_shared` keeps the
/// tokens taken ahead of a shared budget in.
///
/// # Safety
///
/// `slot` must be a value of a per-CPU map looked up in this run of the program: it lives for
/// the run, and no other CPU touches it (the program runs with preemption disabled), so plain
/// reads and writes through the `Cell` are never raced.
#[inline(always)]
#[must_use]
pub unsafe fn per_cpu_cell<'run>(slot: *mut u64) -> &'run Cell<u64> {
    // SAFETY: by the caller's promise; `Cell<u64>` has the layout of `u64`.
    unsafe { &*slot.cast::<Cell<u64>>() }
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The kernel's name for "MIT or GPL-2.0, at your option", this crate's licence: GPL-compatible,
/// as the kernel requires of a program calling GPL-only helpers. The `icmp-guard-common` code
/// compiled into the programs comes under its MIT option.
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

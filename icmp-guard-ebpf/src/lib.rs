//! What every XDP object of this crate carries besides its program: the panic handler a
//! `no_std` binary must have, and the license the kernel reads from the `license` section
//! (helpers such as `bpf_xdp_load_bytes` are only offered to GPL-compatible programs). The
//! binaries, `src/main.rs` and the bench's programs in `src/bin/`, link them with
//! `extern crate icmp_guard_ebpf;`.
//!
//! The library target also lets `icmp-guard` list this crate as a build-dependency, so cargo
//! rebuilds the embedded programs when they change; there it is built for the host, where both
//! items are left out.

#![no_std]

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

//! The traffic generator of the live table of `cargo xtask bench`. `BPF_PROG_TEST_RUN` runs it
//! in live-frames mode (`BPF_F_TEST_XDP_LIVE_FRAMES`) on the sender's end of a veth pair: every
//! frame it returns `XDP_TX` for leaves through that veth and arrives at the peer, where the
//! program under test is attached.
//!
//! With `GEN_STATE[SPOOF]` set, each frame first gets a new IPv4 source, walking
//! [`SPOOF_BASE`] + n over 2^26 addresses (10.0.0.0 to 73.255.255.255: none martian), with the
//! header checksum updated incrementally (RFC 1624). The frame is read, not assumed: the kernel
//! may hand the program a page that still holds the previous run's rewrite, so the old source
//! is taken from the packet.

#![no_std]
#![no_main]

use core::mem::offset_of;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::Array,
    programs::XdpContext,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};
// The panic handler and the license.
extern crate icmp_guard_ebpf;

/// The IPv4 ethertype.
const ETH_P_IP: u16 = 0x0800;
/// `GEN_STATE` slot: non-zero to give every frame a new source.
const SPOOF: u32 = 0;
/// `GEN_STATE` slot: how many sources were handed out (the next one's index).
const NEXT: u32 = 1;
/// First spoofed source, 10.0.0.0.
const SPOOF_BASE: u32 = 0x0a00_0000;
/// Spoofed sources walk 2^26 addresses from the base.
const SPOOF_MASK: u32 = (1 << 26) - 1;

/// The generator's switch and counter, set and read by the bench.
#[map(name = "GEN_STATE")]
static GEN_STATE: Array<u32> = Array::with_max_entries(2, 0);

#[xdp]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] macro fixes the signature"
)]
pub fn xdp_gen(ctx: XdpContext) -> u32 {
    match try_gen(&ctx) {
        Some(()) => xdp_action::XDP_TX,
        // Not a frame the generator can rewrite: the bench sees nothing arrive.
        None => xdp_action::XDP_ABORTED,
    }
}

#[inline(always)]
fn try_gen(ctx: &XdpContext) -> Option<()> {
    if GEN_STATE.get(SPOOF).copied()? == 0 {
        return Some(());
    }
    let ether_type: *const [u8; 2] = ptr_at(ctx, offset_of!(EthHdr, ether_type))?;
    // SAFETY: bounds-checked by ptr_at; a byte array has no alignment.
    if u16::from_be_bytes(unsafe { *ether_type }) != ETH_P_IP {
        return None;
    }
    let src: *mut [u8; 4] = ptr_at(ctx, EthHdr::LEN + offset_of!(Ipv4Hdr, src_addr))?;
    let check: *mut [u8; 2] = ptr_at(ctx, EthHdr::LEN + offset_of!(Ipv4Hdr, check))?;
    let next = GEN_STATE.get_ptr_mut(NEXT)?;
    // SAFETY: one slot of an array map; the bench runs the generator on one CPU at a time.
    let n = unsafe {
        let n = *next;
        *next = n.wrapping_add(1);
        n
    };
    let new = SPOOF_BASE + (n & SPOOF_MASK);
    // SAFETY: both bounds-checked by ptr_at; byte arrays have no alignment.
    unsafe {
        let old = u32::from_be_bytes(*src);
        let sum = u16::from_be_bytes(*check);
        *src = new.to_be_bytes();
        *check = checksum_replace(sum, old, new).to_be_bytes();
    }
    Some(())
}

/// The header checksum after a 32-bit field changed from `old` to `new`, RFC 1624 eqn. 3:
/// `HC' = ~(~HC + ~m + m')`, one 16-bit word at a time, carries folded back in.
#[inline(always)]
const fn checksum_replace(check: u16, old: u32, new: u32) -> u16 {
    let old = !old;
    let mut sum = (!check) as u32 + (old >> 16) + (old & 0xffff) + (new >> 16) + (new & 0xffff);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// A pointer to a `T` at `offset` in the frame, if the frame holds all of it.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let at = ctx.data() + offset;
    if at + size_of::<T>() > ctx.data_end() {
        return None;
    }
    Some(at as *mut T)
}

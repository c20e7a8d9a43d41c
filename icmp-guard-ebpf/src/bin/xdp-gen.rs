//! The traffic generator of the live table of `cargo xtask bench`. `BPF_PROG_TEST_RUN` runs it
//! in live-frames mode (`BPF_F_TEST_XDP_LIVE_FRAMES`) on the sender's end of a veth pair: every
//! frame it returns `XDP_TX` for leaves through that veth and arrives at the peer, where the
//! program under test is attached.
//!
//! `GEN_STATE[MODE]` says what happens to each frame before it leaves:
//!
//! - [`LEAVE`]: nothing. The kernel reuses its pages for the next frames, so their bytes stay
//!   as they were, and the receiving CPU finds them still in its own cache.
//! - [`REWRITE`]: its IPv4 source and header checksum are written back unchanged, so every
//!   frame reaches the receiver freshly written by the sending CPU, as a NIC writes every
//!   frame it receives into memory, and the receiving CPU must fetch it.
//! - [`SPOOF`]: it gets a new IPv4 source, walking [`SPOOF_BASE`] + n over 2^26 addresses
//!   (10.0.0.0 to 73.255.255.255: none martian), with the header checksum updated
//!   incrementally (RFC 1624). The frame is read, not assumed: the kernel may hand the program
//!   a page that still holds the previous run's rewrite, so the old source is taken from the
//!   packet.

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
/// `GEN_STATE` slot: what to do to each frame, one of the modes below.
const MODE: u32 = 0;
/// `GEN_STATE` slot: how many sources were handed out (the next one's index).
const NEXT: u32 = 1;
/// Mode: send the frame as it is.
const LEAVE: u32 = 0;
/// Mode: write the frame's source and checksum back unchanged.
const REWRITE: u32 = 1;
/// Mode: give the frame a new source.
const SPOOF: u32 = 2;
/// First spoofed source, 10.0.0.0.
const SPOOF_BASE: u32 = 0x0a00_0000;
/// Spoofed sources walk 2^26 addresses from the base.
const SPOOF_MASK: u32 = (1 << 26) - 1;

/// The generator's mode and counter, set and read by the bench.
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
    let mode = GEN_STATE.get(MODE).copied()?;
    if mode == LEAVE {
        return Some(());
    }
    let ether_type: *const [u8; 2] = ptr_at(ctx, offset_of!(EthHdr, ether_type))?;
    // SAFETY: bounds-checked by ptr_at; a byte array has no alignment.
    if u16::from_be_bytes(unsafe { *ether_type }) != ETH_P_IP {
        return None;
    }
    let src: *mut [u8; 4] = ptr_at(ctx, EthHdr::LEN + offset_of!(Ipv4Hdr, src_addr))?;
    let check: *mut [u8; 2] = ptr_at(ctx, EthHdr::LEN + offset_of!(Ipv4Hdr, check))?;
    // SAFETY: both bounds-checked by ptr_at; byte arrays have no alignment.
    let (old, sum) = unsafe { (u32::from_be_bytes(*src), u16::from_be_bytes(*check)) };
    let (new, new_sum) = match mode {
        REWRITE => (old, sum),
        SPOOF => {
            let next = GEN_STATE.get_ptr_mut(NEXT)?;
            // SAFETY: one slot of an array map; the bench runs the generator on one CPU at a
            // time.
            let n = unsafe {
                let n = *next;
                *next = n.wrapping_add(1);
                n
            };
            let new = SPOOF_BASE + (n & SPOOF_MASK);
            (new, checksum_replace(sum, old, new))
        }
        // Not a mode: the bench sees nothing arrive.
        _ => return None,
    };
    // SAFETY: as above. Volatile, so that writing back the bytes just read (REWRITE) is not
    // optimised away: the point is that the sending CPU writes the frame.
    unsafe {
        src.write_volatile(new.to_be_bytes());
        check.write_volatile(new_sum.to_be_bytes());
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

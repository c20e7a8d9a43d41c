//! The traffic generator of the live table of `cargo xtask bench`. `BPF_PROG_TEST_RUN` runs it
//! in live-frames mode (`BPF_F_TEST_XDP_LIVE_FRAMES`) on the sender's end of a veth pair: every
//! frame it returns `XDP_TX` for leaves through that veth and arrives at the peer, where the
//! program under test is attached.
//!
//! The state map's mode slot says what happens to each frame before it leaves (the modes and
//! slots are in `icmp_guard_common::generator`):
//!
//! - `LEAVE`: nothing. The kernel reuses its pages for the next frames, so their bytes stay as
//!   they were, and the receiving CPU finds them still in its own cache.
//! - `REWRITE`: two bytes in every 32 are written back unchanged, so every cache line of the
//!   frame reaches the receiver freshly written by the sending CPU, as a NIC writes every frame
//!   it receives into memory, and the receiving CPU must fetch it.
//! - `SPOOF`: as `REWRITE`, after the frame got a new IPv4 source, the next of `SPOOF_BASE` +
//!   n, with the header checksum updated incrementally (RFC 1624). The frame is read, not
//!   assumed: the kernel may hand the program a page that still holds the previous run's
//!   rewrite, so the old source is taken from the packet.

#![no_std]
#![no_main]

use core::mem::offset_of;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::Array,
    programs::XdpContext,
};
use icmp_guard_common::{
    generator::{
        LEAVE, MODE_SLOT, NEXT_SLOT, REWRITE, SPOOF, SPOOF_BASE, SPOOF_SOURCES, WRITE_STRIDE,
    },
    parse::ethertype,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};
// The panic handler and the license.
extern crate icmp_guard_ebpf;

/// Frames are written whole up to this many bytes (the bench's are 98).
const WRITTEN_MAX: usize = 512;

/// The generator's mode and counter (`icmp_guard_common::generator::STATE`), set and read by
/// the bench.
#[map(name = "GEN_STATE")]
static GEN_STATE: Array<u32> = Array::with_max_entries(NEXT_SLOT + 1, 0);

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
    let mode = GEN_STATE.get(MODE_SLOT).copied()?;
    if mode == LEAVE {
        return Some(());
    }
    let ether_type: *const [u8; 2] = ptr_at(ctx, offset_of!(EthHdr, ether_type))?;
    // SAFETY: bounds-checked by ptr_at; a byte array has no alignment.
    if u16::from_be_bytes(unsafe { *ether_type }) != ethertype::IPV4 {
        return None;
    }
    match mode {
        REWRITE => {}
        SPOOF => spoof(ctx)?,
        // Not a mode: the bench sees nothing arrive.
        _ => return None,
    }
    // Two bytes in every WRITE_STRIDE, read and written back (volatile, so neither is
    // optimised away): every cache line of the frame is written by this CPU. (Two, not one:
    // LLVM turns a one-byte bounds check into `data < data_end`, from which the verifier
    // learns no readable range.)
    let mut offset = 0;
    while offset < WRITTEN_MAX {
        let Some(bytes) = ptr_at::<[u8; 2]>(ctx, offset) else {
            break;
        };
        // SAFETY: bounds-checked by ptr_at; a byte array has no alignment.
        unsafe { bytes.write_volatile(bytes.read_volatile()) };
        offset += WRITE_STRIDE;
    }
    Some(())
}

/// Gives the frame the next spoofed IPv4 source and the header checksum that goes with it.
#[inline(always)]
fn spoof(ctx: &XdpContext) -> Option<()> {
    let src: *mut [u8; 4] = ptr_at(ctx, EthHdr::LEN + offset_of!(Ipv4Hdr, src_addr))?;
    let check: *mut [u8; 2] = ptr_at(ctx, EthHdr::LEN + offset_of!(Ipv4Hdr, check))?;
    let next = GEN_STATE.get_ptr_mut(NEXT_SLOT)?;
    // SAFETY: one slot of an array map; the bench runs the generator on one CPU at a time.
    let n = unsafe {
        let n = *next;
        *next = n.wrapping_add(1);
        n
    };
    let new = SPOOF_BASE + n % SPOOF_SOURCES;
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

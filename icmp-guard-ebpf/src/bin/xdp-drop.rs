//! Bare `XDP_DROP` programs: the receive-side baselines of the live table of `cargo xtask
//! bench`. `xdp_drop` is the least any XDP program can cost on the receiver; `xdp_read_drop`
//! first reads two bytes any parser must (of the ethertype and the IPv4 protocol), so it pays
//! what touching a frame costs (the cache misses of a frame another CPU wrote) and nothing
//! else.

#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
// The panic handler and the license.
extern crate icmp_guard_ebpf;

#[xdp]
pub fn xdp_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

/// Offset of the IPv4 protocol in an untagged frame: 14 bytes of Ethernet, then byte 9.
const IPV4_PROTOCOL: usize = 14 + 9;

#[xdp]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] macro fixes the signature"
)]
pub fn xdp_read_drop(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + IPV4_PROTOCOL < end {
        // SAFETY: bounds-checked just above. Volatile, so the reads are not optimised away.
        let (ethertype, protocol) = unsafe {
            (
                core::ptr::read_volatile((start + 12) as *const u8),
                core::ptr::read_volatile((start + IPV4_PROTOCOL) as *const u8),
            )
        };
        // Both reads feed the verdict, as in a parser: a frame that is neither IPv4 (0x08 the
        // ethertype's first byte) nor ICMP would pass.
        if ethertype != 0x08 && protocol != 1 {
            return xdp_action::XDP_PASS;
        }
    }
    xdp_action::XDP_DROP
}

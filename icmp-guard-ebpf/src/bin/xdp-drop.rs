//! A bare `XDP_DROP` program: the receive-side baseline of the live table of `cargo xtask
//! bench`, the least any XDP program can cost on the receiver.

#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
// The panic handler and the license.
extern crate icmp_guard_ebpf;

#[xdp]
pub fn xdp_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

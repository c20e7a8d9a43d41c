//! A bare `XDP_PASS` program: the baseline of `cargo xtask bench`.

#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
// The panic handler and the license.
extern crate icmp_guard_ebpf;

#[xdp]
pub fn xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

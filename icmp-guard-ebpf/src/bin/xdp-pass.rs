//! A bare `XDP_PASS` program: the baseline of `cargo xtask bench`. Built for multi-buffer XDP
//! like the guard (`xdp.frags`), so both run the same frames the same way.

#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
// The panic handler and the license.
extern crate icmp_guard_ebpf;

#[xdp(frags)]
pub fn xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

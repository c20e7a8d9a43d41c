//! The least a frame can cost: the floor rows of the program table of `cargo xtask bench`,
//! measured on the same frames and in the same rounds as icmp-guard, and built like it for
//! multi-buffer XDP.
//!
//! Each program does only what the targets themselves require of that frame, with the
//! shared code icmp-guard uses (its key, its GCRA `take`, its per-source value) and none of its
//! screening: no VLAN tags, no IPv6, no length, fragment, martian or group checks, no lists, no
//! recently-seen filter, no dry-run or capture flags.
//! - `xdp_floor_pass`, for a frame that is not ICMP: read the ethertype and the IPv4 protocol
//!   and count the verdict per CPU (so every verdict stays counted), then pass.
//! - `xdp_floor_source`: read the Ethernet and IPv4 headers and the ICMP type directly, read
//!   the coarse clock, look the source up in a shared LRU hash of 16-byte keys (one value per
//!   source, so a source gets its quota once over all CPUs), take a token from its bucket with
//!   one compare-and-swap, count the verdict per CPU.
//! - `xdp_floor`: the same, plus a token of the global budget every CPU draws from, taken
//!   ahead as icmp-guard takes it (a compare-and-swap on the shared bucket once per
//!   `bucket::ahead` packets, a per-CPU count otherwise), and the count of the source's passed
//!   packets that `stats` and `top_sources` report (an atomic add).

#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::bpf_ktime_get_coarse_ns,
    macros::{map, xdp},
    maps::{Array, LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use icmp_guard_common::{
    Limit, SourceKey, SourceState,
    bucket::{self, Bucket, Class},
    config::defaults::MAX_SOURCES,
    floor,
    parse::{ethertype, proto},
    policy::icmp_type,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};
// The panic handler and the license.
extern crate icmp_guard_ebpf;

/// The source bucket's limit and the global budget's (`floor::ECHO_SLOT`, `floor::GLOBAL_SLOT`),
/// written by the bench. The map names are `icmp_guard_common::floor`'s.
#[map(name = "FLOOR_LIMITS")]
static FLOOR_LIMITS: Array<Limit> = Array::with_max_entries(2, 0);

/// One value per source, shared by every CPU, sized like icmp-guard's default table.
#[map(name = "FLOOR_SOURCES")]
static FLOOR_SOURCES: LruHashMap<SourceKey, SourceState> =
    LruHashMap::with_max_entries(MAX_SOURCES, 0);

/// The global budget's bucket.
#[map(name = "FLOOR_GLOBAL")]
static FLOOR_GLOBAL: Array<Bucket> = Array::with_max_entries(1, 0);

/// The global budget's tokens this CPU took ahead.
#[map(name = "FLOOR_AHEAD")]
static FLOOR_AHEAD: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Possible CPUs, set by the bench as icmp-guard's loader sets its own.
#[unsafe(no_mangle)]
static FLOOR_POSSIBLE_CPUS: u32 = 0;

/// Packets per action, per CPU (slot = the XDP action).
#[map(name = "FLOOR_COUNTERS")]
static FLOOR_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(4, 0);

/// Where the ICMP header starts in an untagged frame without IPv4 options, and its end.
const ICMP_AT: usize = EthHdr::LEN + Ipv4Hdr::LEN;
const HEADERS_END: usize = ICMP_AT + 8;
/// Where the ethertype, the IPv4 protocol and the IPv4 source are in such a frame.
const ETHERTYPE_AT: usize = 12;
const PROTOCOL_AT: usize = EthHdr::LEN + 9;
const SOURCE_AT: usize = EthHdr::LEN + 12;

#[xdp(frags)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] macro fixes the signature"
)]
pub fn xdp_floor_pass(ctx: XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + ICMP_AT <= end {
        // SAFETY: bounds-checked just above; plain bytes.
        let (ether_type, protocol) = unsafe {
            (
                core::ptr::read_unaligned((start + ETHERTYPE_AT) as *const [u8; 2]),
                *((start + PROTOCOL_AT) as *const u8),
            )
        };
        if ether_type == ethertype::IPV4.to_be_bytes() && protocol != proto::ICMP {
            return counted(xdp_action::XDP_PASS);
        }
    }
    // Anything else would be parsed further; this floor only measures the frame that is not.
    counted(xdp_action::XDP_ABORTED)
}

#[xdp(frags)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] macro fixes the signature"
)]
pub fn xdp_floor_source(ctx: XdpContext) -> u32 {
    counted(judge::<false>(&ctx))
}

#[xdp(frags)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] macro fixes the signature"
)]
pub fn xdp_floor(ctx: XdpContext) -> u32 {
    counted(judge::<true>(&ctx))
}

#[inline(always)]
fn counted(action: u32) -> u32 {
    if let Some(count) = FLOOR_COUNTERS.get_ptr_mut(action) {
        // SAFETY: a per-CPU slot, touched only by this CPU with preemption disabled.
        unsafe { *count += 1 };
    }
    action
}

/// The action for one frame: echo requests over IPv4 are metered, everything else passes.
#[inline(always)]
fn judge<const GLOBAL_AND_COUNT: bool>(ctx: &XdpContext) -> u32 {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + HEADERS_END > end {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: all within the HEADERS_END bytes bounds-checked above; plain bytes.
    let (ether_type, protocol, src, icmp) = unsafe {
        (
            core::ptr::read_unaligned((start + ETHERTYPE_AT) as *const [u8; 2]),
            *((start + PROTOCOL_AT) as *const u8),
            core::ptr::read_unaligned((start + SOURCE_AT) as *const [u8; 4]),
            *((start + ICMP_AT) as *const u8),
        )
    };
    if ether_type != ethertype::IPV4.to_be_bytes()
        || protocol != proto::ICMP
        || icmp != icmp_type::ECHO_REQUEST
    {
        return xdp_action::XDP_PASS;
    }
    let key = SourceKey::v4(src);
    // SAFETY: a helper without arguments or side effects.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let Some(limit) = FLOOR_LIMITS.get(floor::ECHO_SLOT) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: the value lives as long as the program run; every field is an atomic.
    let Some(state) = (unsafe { FLOOR_SOURCES.get(key) }) else {
        let _ = FLOOR_SOURCES.insert(key, SourceState::first(Class::Echo, now, limit), 0);
        return xdp_action::XDP_PASS;
    };
    if !state.charge(Class::Echo, now, limit) {
        return xdp_action::XDP_DROP;
    }
    if GLOBAL_AND_COUNT {
        let global_ok = global_token(now);
        state.count(global_ok);
        if !global_ok {
            return xdp_action::XDP_DROP;
        }
    }
    xdp_action::XDP_PASS
}

/// A token of the global budget, taken as icmp-guard takes it (`bucket::take_shared`).
#[inline(always)]
fn global_token(now: u64) -> bool {
    let (Some(bucket), Some(global), Some(held)) = (
        FLOOR_GLOBAL.get(0),
        FLOOR_LIMITS.get(floor::GLOBAL_SLOT),
        FLOOR_AHEAD.get_ptr_mut(0),
    ) else {
        return true;
    };
    // SAFETY: this CPU's slot of a per-CPU map, looked up in this run.
    let held = unsafe { icmp_guard_ebpf::per_cpu_cell(held) };
    // SAFETY: a plain integer the bench sets before loading, read-only after.
    let cpus = unsafe { core::ptr::read_volatile(&raw const FLOOR_POSSIBLE_CPUS) };
    bucket::take_shared(&bucket.tat_ns, held, now, global, cpus)
}

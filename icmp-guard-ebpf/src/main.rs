//! The icmp-guard XDP program.
//!
//! A thin entry over [`try_icmp_guard`], which returns the [`Reason`] for every frame; the entry
//! records that reason's counter and turns it into the action, so every verdict is counted in
//! one place. Parsing, policy and buckets are the shared, host-tested code in
//! `icmp-guard-common`; this file only supplies the packet bytes, the clock and the maps.

#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![expect(
    internal_features,
    reason = "is_val_statically_known picks the packet access path"
)]

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_NOEXIST, xdp_action, xdp_md},
    helpers::generated::{
        bpf_ktime_get_coarse_ns, bpf_ktime_get_ns, bpf_xdp_get_buff_len, bpf_xdp_load_bytes,
    },
    macros::{map, xdp},
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, RingBuf, lpm_trie::Key},
    programs::XdpContext,
};
use aya_log_ebpf::warn;
use core::{cell::Cell, sync::atomic::AtomicU64};
use icmp_guard_common::{
    Config, Reason, SourceKey, SourceState, atomic,
    bucket::{self, Bucket, Class},
    capture::{self, Control, Sample, SampleHeader},
    config::{defaults::MAX_SOURCES, flags},
    maps::LIST_MAX_ENTRIES,
    parse::Frame,
    policy::{self, Budget, Env, Insert, List, Verdict},
    reason::COUNTER_SLOTS,
    seen,
};
// The panic handler and the license.
extern crate icmp_guard_ebpf;

/// Linux's errno for "exists", which a map update with `BPF_NOEXIST` returns negated.
const EEXIST: i32 = 17;

/// Limits, prefixes, flags and list sizes, written by the CLI; one entry.
#[map(name = "IG_CONFIG")]
static IG_CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Packets per verdict reason, per CPU so the hot path needs no atomics; userspace sums them.
/// Sized with headroom over `Reason::ALL` so new reasons keep the layout.
#[map(name = "IG_COUNTERS")]
static IG_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Buckets per source prefix, one value shared by every CPU (so a source gets its quota once
/// however its packets are spread over receive queues), changed only atomically. LRU, so
/// the stalest sources make room; inserts are bounded by the admission budget, so the common
/// LRU's lock is rare. Declared with the default capacity; the loader sets the real one from
/// `--max-sources` before creating the map: about 112 bytes a source whatever the CPU count,
/// 7 MiB for 65,536.
#[map(name = "IG_SOURCES")]
static IG_SOURCES: LruHashMap<SourceKey, SourceState> =
    LruHashMap::with_max_entries(MAX_SOURCES, 0);

/// The global budget of metered ICMP and the budget of ICMP no source quota limits, one
/// bucket each that every CPU draws from (`maps::GLOBAL_SLOT`, `maps::EXEMPT_SLOT`).
#[map(name = "IG_GLOBAL")]
static IG_GLOBAL: Array<Bucket> = Array::with_max_entries(2, 0);

/// The tokens of those two budgets each CPU took ahead and has not spent (same slots), so a
/// CPU swaps the shared bucket once per few packets; under `burst / bucket::AHEAD_SHARE` in
/// all (`bucket::take_shared`).
#[map(name = "IG_AHEAD")]
static IG_AHEAD: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

/// Possible CPUs, set by the loader (`maps::POSSIBLE_CPUS`): how many tokens a CPU may take
/// ahead. Read-only, so the verifier knows its value; 0 if not set (one token at a time).
#[unsafe(no_mangle)]
static IG_POSSIBLE_CPUS: u32 = 0;

/// The admission budgets for sources not seen lately: one bucket per class (requests,
/// replies), so a spoofed echo flood cannot starve the replies to this host's own pings.
#[map(name = "IG_ADMISSION")]
static IG_ADMISSION: Array<Bucket> = Array::with_max_entries(2, 0);

/// The recently-seen filter (see `icmp_guard_common::seen`): one 64-byte line of stamped
/// fingerprints per hash, 512 KiB (stays in L2 under a flood), so refusing a spoofed source
/// needs no miss in `IG_SOURCES`.
#[map(name = "IG_SEEN")]
static IG_SEEN: Array<seen::Line> = Array::with_max_entries(seen::LINES, 0);

/// Allow-listed prefixes, IPv4 mapped, bank 0; looked up only when the config says bank 0
/// is in force and the list is not empty.
#[map(name = "IG_ALLOW")]
static IG_ALLOW: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(LIST_MAX_ENTRIES, 0);

/// Deny-listed prefixes, IPv4 mapped, bank 0.
#[map(name = "IG_DENY")]
static IG_DENY: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(LIST_MAX_ENTRIES, 0);

/// The allow list's bank 1: userspace writes a new list into the bank not in force, then
/// switches `Config::list_bank` together with the counts in one config update.
#[map(name = "IG_ALLOW_B")]
static IG_ALLOW_B: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(LIST_MAX_ENTRIES, 0);

/// The deny list's bank 1.
#[map(name = "IG_DENY_B")]
static IG_DENY_B: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(LIST_MAX_ENTRIES, 0);

/// Frames sampled for `icmp-guard capture`: a header and up to 256 bytes each (a fixed-size
/// record of about 280 bytes). 1 MiB, over three seconds of samples at the default rate of
/// 1000 a second; written only while a capture runs, and a full ring loses samples, never
/// delays a verdict.
#[map(name = "IG_CAPTURE")]
static IG_CAPTURE: RingBuf = RingBuf::with_byte_size(capture::RING_BYTES, 0);

/// The running capture's lease, reasons, sample rate and snap length, and its lost and
/// over-rate counters; one entry, read only while `Config::flags` says a capture runs.
/// Mmapable, so the capture renews its lease with one store to that field and never
/// rewrites the counters the program adds to.
#[map(name = "IG_CAPTURE_CTL")]
static IG_CAPTURE_CTL: Array<Control> = Array::with_max_entries(1, BPF_F_MMAPABLE);

// `frags`: built for multi-buffer XDP (section `xdp.frags`, loaded with BPF_F_XDP_HAS_FRAGS),
// so drivers accept it above a page of MTU (jumbo frames) and hand it frames in several
// buffers. The program never assumes a frame is linear: see `XdpFrame`.
// `inline(always)` goes to the function the macro wraps: called instead, it would be a BPF
// subprogram with its own stack, one more call per frame.
#[xdp(frags)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the #[xdp] macro fixes the signature"
)]
#[inline(always)]
pub fn icmp_guard(ctx: XdpContext) -> u32 {
    let Verdict { reason, flags } = try_icmp_guard(&ctx);
    if let Some(count) = IG_COUNTERS.get_ptr_mut(reason.slot()) {
        // SAFETY: a per-CPU slot, touched only by this CPU with preemption disabled.
        unsafe { *count += 1 };
    }
    // The flags come with the verdict, as read for judged ICMP (zero for other traffic):
    // dry-run and a capture cost a bit test each, no second look at the config.
    let drop = reason.is_drop();
    if flags::capturing(flags, drop) {
        sample(&ctx, reason);
    }
    if drop && !flags::dry_run(flags) {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// Copies the frame into the capture ring if the running capture wants its reason, its
/// lease holds and its sample bucket has a token; a full ring counts the sample as lost.
///
/// A BPF subprogram of its own, with its own stack: inlined, LLVM gave its 32-bit spills
/// slots where the verdict's path had spilled map pointers, which the verifier refuses
/// without `CAP_PERFMON` ("attempt to corrupt spilled pointer on stack"). Only frames a
/// running capture may take pay the call.
#[inline(never)]
fn sample(ctx: &XdpContext, reason: Reason) {
    let Some(ctl) = IG_CAPTURE_CTL.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: the helper has no arguments or side effects.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    // SAFETY: a valid map value for the whole run. Userspace writes the lease, reasons, rate
    // and snap length while the program reads them (each naturally aligned, so never torn;
    // a mix misjudges at most the samples taken during the write); the bucket and counters are
    // only changed atomically.
    let (lease_until, wanted) = unsafe {
        (
            core::ptr::read_volatile(&raw const (*ctl).lease_until_ns),
            (*ctl).wants(reason),
        )
    };
    if now > lease_until || !wanted {
        return;
    }
    // SAFETY: the fields are u64, naturally aligned, and every access to them is atomic.
    let (tat, lost, over_rate) = unsafe {
        (
            AtomicU64::from_ptr(&raw mut (*ctl).tat_ns),
            AtomicU64::from_ptr(&raw mut (*ctl).lost),
            AtomicU64::from_ptr(&raw mut (*ctl).over_rate),
        )
    };
    // SAFETY: as above; the limit is plain integers.
    let limit = unsafe { core::ptr::read_volatile(&raw const (*ctl).limit) };
    if !bucket::take(tat, now, &limit) {
        atomic::add(over_rate, 1);
        return;
    }
    let Some(mut entry) = IG_CAPTURE.reserve::<Sample>(0) else {
        atomic::add(lost, 1);
        return;
    };
    // SAFETY: ctx is the program's context.
    let orig_len = unsafe { bpf_xdp_get_buff_len(ctx.ctx) } as u32;
    // SAFETY: as above.
    let snaplen = unsafe { core::ptr::read_volatile(&raw const (*ctl).snaplen) };
    let wanted_len = if orig_len < snaplen {
        orig_len
    } else {
        snaplen
    };
    if wanted_len == 0 {
        entry.discard(0);
        return;
    }
    // 1..=MAX_SNAPLEN in a form the verifier follows (a mask, not a comparison it may see on
    // another register): lengths already in range are unchanged.
    let cap_len = ((wanted_len - 1) & (capture::MAX_SNAPLEN - 1)) + 1;
    let record = entry.as_mut_ptr();
    // SAFETY: `record` is the reserved, writable record of size_of::<Sample>() bytes; the
    // helper copies `cap_len` (at most MAX_SNAPLEN, the size of `data`) bytes into it.
    let rc = unsafe { bpf_xdp_load_bytes(ctx.ctx, 0, (&raw mut (*record).data).cast(), cap_len) };
    if rc != 0 {
        entry.discard(0);
        atomic::add(lost, 1);
        return;
    }
    // SAFETY: as above; the header is plain integers.
    unsafe {
        (&raw mut (*record).header).write(SampleHeader {
            time_ns: bpf_ktime_get_ns(),
            reason: reason.slot(),
            orig_len,
            cap_len,
            reserved: 0,
        });
    }
    entry.submit(0);
}

/// The verdict for one frame.
#[inline(always)]
fn try_icmp_guard(ctx: &XdpContext) -> Verdict {
    let frame = XdpFrame { ctx: ctx.ctx };
    policy::verdict(&frame, &Maps { ctx })
}

/// The program's maps and clock, as the shared policy sees them.
struct Maps<'a> {
    ctx: &'a XdpContext,
}

impl Env for Maps<'_> {
    #[inline(always)]
    fn config(&self) -> Option<&Config> {
        IG_CONFIG.get(0)
    }

    #[inline(always)]
    fn now_ns(&self) -> u64 {
        // SAFETY: a helper without arguments or side effects. The coarse clock (jiffy
        // resolution) costs half of bpf_ktime_get_ns; GCRA tolerates its steps.
        unsafe { bpf_ktime_get_coarse_ns() }
    }

    #[inline(always)]
    fn with_source<R>(&self, key: &SourceKey, f: impl FnOnce(&SourceState) -> R) -> Option<R> {
        // SAFETY: the value lives as long as the program run (RCU); shared between CPUs, and
        // every field is an atomic, so a shared reference is all we hand out.
        unsafe { IG_SOURCES.get(key) }.map(f)
    }

    #[inline(always)]
    fn insert_source(&self, key: &SourceKey, state: &SourceState) -> Insert {
        // Never over an entry another CPU created since this one looked: that would lose the
        // other packet's count and token.
        match IG_SOURCES.insert(key, state, u64::from(BPF_NOEXIST)) {
            Ok(()) => Insert::Created,
            Err(err) if err == -EEXIST => Insert::Exists,
            Err(err) => {
                // Rare: LRU maps evict instead of failing, so this means memory pressure.
                warn!(self.ctx, "icmp-guard: source map insert failed: {}", err);
                Insert::Refused
            }
        }
    }

    #[inline(always)]
    fn with_budget<R>(
        &self,
        budget: Budget,
        f: impl FnOnce(&Bucket, &Cell<u64>) -> R,
    ) -> Option<R> {
        let bucket = IG_GLOBAL.get(budget.slot())?;
        let held = IG_AHEAD.get_ptr_mut(budget.slot())?;
        // SAFETY: this CPU's slot of a per-CPU map, looked up in this run.
        Some(f(bucket, unsafe { icmp_guard_ebpf::per_cpu_cell(held) }))
    }

    #[inline(always)]
    fn cpus(&self) -> u32 {
        // SAFETY: a plain integer the loader may set before loading, read-only after.
        unsafe { core::ptr::read_volatile(&raw const IG_POSSIBLE_CPUS) }
    }

    #[inline(always)]
    fn with_admission<R>(&self, class: Class, f: impl FnOnce(&Bucket) -> R) -> Option<R> {
        IG_ADMISSION.get(class.slot()).map(f)
    }

    #[inline(always)]
    fn with_seen<R>(&self, line: u32, f: impl FnOnce(&seen::Line) -> R) -> Option<R> {
        // Every word of a line is only accessed atomically, so a shared reference will do.
        IG_SEEN.get(line).map(f)
    }

    #[inline(always)]
    fn listed(&self, list: List, bank: u32, addr: &[u8; 16]) -> bool {
        let key = Key::new(128, *addr);
        // One branch per map: each lookup has its own constant map, no pointer chosen by
        // value.
        match (list, bank) {
            (List::Allow, 0) => IG_ALLOW.get(&key).is_some(),
            (List::Allow, _) => IG_ALLOW_B.get(&key).is_some(),
            (List::Deny, 0) => IG_DENY.get(&key).is_some(),
            (List::Deny, _) => IG_DENY_B.get(&key).is_some(),
        }
    }
}

/// The frame as the verifier sees it: the context, from which each direct read takes the
/// linear part of packet memory (`data..data_end`) afresh, and the helpers their argument.
///
/// A multi-buffer frame (jumbo MTU, `xdp.frags`) has only its first part between `data` and
/// `data_end`; the rest is in fragments the program cannot address. So reads at offsets the
/// compiler knows are direct when they fit in the linear part (bounds-checked against
/// `data_end`, the common case), and go through `bpf_xdp_load_bytes`, which reads across
/// fragments, when they do not. Reads at offsets that depend on the packet (after `ihl`, IPv6
/// extension headers, VLAN tags) always go through the helper, and lengths are judged against
/// the whole frame with `bpf_xdp_get_buff_len`, fragments included: a packet pointer plus a
/// variable is only allowed to programs that may bypass the verifier's Spectre v1 sanitising
/// (`CAP_PERFMON`), and the helpers need no more than `CAP_BPF`. They also keep LLVM from
/// deriving one bounds check from another, which the verifier could not follow.
struct XdpFrame {
    ctx: *mut xdp_md,
}

impl XdpFrame {
    /// `data` and `data_end`, loaded from the context at each use (volatile, so LLVM cannot
    /// keep them): packet pointers held across the parse get spilled to the stack, and a
    /// later 32-bit spill into a slot a pointer held is refused to programs without
    /// `CAP_PERFMON` ("attempt to corrupt spilled pointer on stack"). A context load costs
    /// less than the spill and fill it replaces.
    #[inline(always)]
    fn linear(&self) -> (usize, usize) {
        // SAFETY: ctx is the program's context; its fields are readable for the whole run.
        unsafe {
            (
                core::ptr::read_volatile(&raw const (*self.ctx).data) as usize,
                core::ptr::read_volatile(&raw const (*self.ctx).data_end) as usize,
            )
        }
    }
}

impl Frame for XdpFrame {
    #[inline(always)]
    fn peek<T: Copy>(&self, offset: usize) -> Option<T> {
        let (start, end) = self.linear();
        let at = start + offset;
        // SAFETY: bounds-checked against data_end; headers are plain integers.
        (at + size_of::<T>() <= end).then(|| unsafe { core::ptr::read_unaligned(at as *const T) })
    }

    #[inline(always)]
    fn has(&self, offset: usize, len: usize) -> bool {
        // SAFETY: ctx is the program's context. The length of the whole frame, fragments
        // included.
        let frame_len = unsafe { bpf_xdp_get_buff_len(self.ctx) };
        (offset + len) as u64 <= frame_len
    }

    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        if core::intrinsics::is_val_statically_known(offset) {
            let (start, end) = self.linear();
            let at = start + offset;
            if at + size_of::<T>() <= end {
                // SAFETY: bounds-checked against data_end just above; headers are plain
                // integers.
                return Some(unsafe { core::ptr::read_unaligned(at as *const T) });
            }
            // Past the linear part: in a fragment, or past the end (the helper says which).
        }
        let mut out = core::mem::MaybeUninit::<T>::uninit();
        // SAFETY: the helper copies size_of::<T>() bytes into `out` or fails without writing
        // past it; it reads across fragments and fails past the end of the frame. Offsets
        // fit in u32: even a multi-buffer frame is far below 4 GiB.
        let rc = unsafe {
            bpf_xdp_load_bytes(
                self.ctx,
                offset as u32,
                out.as_mut_ptr().cast(),
                size_of::<T>() as u32,
            )
        };
        // SAFETY: on success every byte of `out` was written.
        (rc == 0).then(|| unsafe { out.assume_init() })
    }
}

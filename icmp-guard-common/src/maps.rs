//! Names of the program, its maps and their pins: defined once, used by both sides.
//!
//! The eBPF crate's map statics carry these names; the userspace loader opens maps and pins by
//! them, so a rename that forgets one side fails at load time, not silently.

/// The XDP program (the `#[xdp]` function's name).
pub const PROGRAM: &str = "icmp_guard";
/// `Array<Config>`, one entry: limits.
pub const CONFIG: &str = "IG_CONFIG";
/// `PerCpuArray<u64>`, one slot per [`crate::Reason`].
pub const COUNTERS: &str = "IG_COUNTERS";
/// `LruPerCpuHashMap<SourceKey, SourceState>`: the token buckets.
pub const SOURCES: &str = "IG_SOURCES";

/// Entries of the per-source map. Each CPU keeps its own value per entry, 24 bytes, so the
/// map costs about `SOURCES_MAX_ENTRIES * (64 + 24 * ncpus)` bytes: ~5 MiB on 2 CPUs.
pub const SOURCES_MAX_ENTRIES: u32 = 65_536;

/// The pinned link under the interface's pin folder.
pub const LINK_PIN: &str = "link";

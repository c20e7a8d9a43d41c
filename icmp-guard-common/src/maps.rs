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
/// `LruPerCpuHashMap<SourceKey, SourceState>`: the per-source buckets.
pub const SOURCES: &str = "IG_SOURCES";
/// `PerCpuArray<Bucket>`, one entry: each CPU's share of the global budget.
pub const GLOBAL: &str = "IG_GLOBAL";
/// `LpmTrie<[u8; 16], u8>`: allow-listed prefixes (IPv4 mapped).
pub const ALLOW: &str = "IG_ALLOW";
/// `LpmTrie<[u8; 16], u8>`: deny-listed prefixes (IPv4 mapped).
pub const DENY: &str = "IG_DENY";

/// Entries of the per-source map. Each CPU keeps its own 32-byte value per entry, so the map
/// costs about `SOURCES_MAX_ENTRIES * (64 + 32 * ncpus)` bytes: ~8 MiB on 2 CPUs.
pub const SOURCES_MAX_ENTRIES: u32 = 65_536;

/// Entries of each of the allow and deny lists (the tries are not preallocated).
pub const LIST_MAX_ENTRIES: u32 = 4096;

/// The pinned link under the interface's pin folder.
pub const LINK_PIN: &str = "link";

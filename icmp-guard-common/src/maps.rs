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
/// `LruHashMap<SourceKey, SourceState>`: the per-source buckets, shared by every CPU.
pub const SOURCES: &str = "IG_SOURCES";
/// `Array<Bucket>` of two entries, each shared by every CPU: the global budget of metered
/// ICMP ([`GLOBAL_SLOT`]) and the budget of ICMP no source quota limits ([`EXEMPT_SLOT`]).
pub const GLOBAL: &str = "IG_GLOBAL";
/// The global budget's entry in [`GLOBAL`].
pub const GLOBAL_SLOT: u32 = 0;
/// The exempt budget's entry in [`GLOBAL`].
pub const EXEMPT_SLOT: u32 = 1;
/// `PerCpuArray<u64>` of two entries, slots as in [`GLOBAL`]: the tokens of each budget a CPU
/// took ahead and has not spent yet (`policy::Budget`).
pub const AHEAD: &str = "IG_AHEAD";
/// The read-only global the loader sets to the number of possible CPUs (`policy::Env::cpus`).
pub const POSSIBLE_CPUS: &str = "IG_POSSIBLE_CPUS";
/// `Array<Bucket>`, one entry per [`crate::bucket::Class`]: the admission budgets for new
/// sources.
pub const ADMISSION: &str = "IG_ADMISSION";
/// `Array<seen::Line>` of [`crate::seen::LINES`]: the recently-seen filter.
pub const SEEN: &str = "IG_SEEN";
/// `LpmTrie<[u8; 16], u8>`: allow-listed prefixes (IPv4 mapped), bank 0.
pub const ALLOW: &str = "IG_ALLOW";
/// `LpmTrie<[u8; 16], u8>`: deny-listed prefixes (IPv4 mapped), bank 0.
pub const DENY: &str = "IG_DENY";
/// The allow list's bank 1: a change is written into the bank not in force, then the config
/// switches banks (`Config::list_bank`).
pub const ALLOW_B: &str = "IG_ALLOW_B";
/// The deny list's bank 1.
pub const DENY_B: &str = "IG_DENY_B";

/// `RingBuf` of [`crate::capture::RING_BYTES`]: frames sampled for `icmp-guard capture`, each a
/// [`crate::capture::Sample`].
pub const CAPTURE: &str = "IG_CAPTURE";
/// `Array<capture::Control>`, one entry: the running capture's lease, reasons, rate and snap
/// length, and its lost and over-rate counters.
pub const CAPTURE_CTL: &str = "IG_CAPTURE_CTL";

/// Entries of each of the allow and deny lists (the tries are not preallocated).
pub const LIST_MAX_ENTRIES: u32 = 4096;

/// The pinned link under the interface's pin folder.
pub const LINK_PIN: &str = "link";

//! The bench's floor programs (`xdp-floor` in the eBPF crate) and the bench and test that load
//! them share these: their maps, the limits' slots and the CPU count's global. Not part of the
//! guard. The program's `#[map]` attributes spell the names again (the macro takes a literal);
//! a mismatch fails the floor test when it loads the object.

/// `Array<Limit>` of two entries: [`ECHO_SLOT`] and [`GLOBAL_SLOT`].
pub const LIMITS: &str = "FLOOR_LIMITS";
/// The source bucket's limit in [`LIMITS`].
pub const ECHO_SLOT: u32 = 0;
/// The global budget's limit in [`LIMITS`].
pub const GLOBAL_SLOT: u32 = 1;
/// `LruHashMap<SourceKey, SourceState>`: one value per source, shared by every CPU.
pub const SOURCES: &str = "FLOOR_SOURCES";
/// `PerCpuArray<u64>`: packets per XDP action (the slot), per CPU.
pub const COUNTERS: &str = "FLOOR_COUNTERS";
/// The read-only global set to the number of possible CPUs, as icmp-guard's loader sets
/// [`crate::maps::POSSIBLE_CPUS`].
pub const POSSIBLE_CPUS: &str = "FLOOR_POSSIBLE_CPUS";

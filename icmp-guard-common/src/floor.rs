//! The bench's floor programs (`xdp-floor` in the eBPF crate) and the bench and test that load
//! them share these: their maps, the limits' slots and the CPU count's global. Not part of the
//! guard. The program's `#[map]` attributes spell the names again (the macro takes a literal);
//! a mismatch fails the floor test when it loads the object.

/// The program that reads the ethertype and the protocol, counts and passes.
pub const PASS_PROGRAM: &str = "xdp_floor_pass";
/// The program that meters a source with one compare-and-swap on its bucket.
pub const SOURCE_PROGRAM: &str = "xdp_floor_source";
/// The same, with a token of the global budget and the source's count: the floor of a
/// per-source meter, in the program table and the live table alike.
pub const METER_PROGRAM: &str = "xdp_floor";

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

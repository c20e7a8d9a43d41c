//! The XDP objects, built by `build.rs` and embedded in the binary.

/// The icmp-guard program.
pub static ICMP_GUARD: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/icmp-guard"));

/// A bare `XDP_PASS` program, the benchmark baseline.
pub static XDP_PASS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp-pass"));

/// A bare `XDP_DROP` program, the receive-side baseline of the bench's live table.
pub static XDP_DROP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp-drop"));

/// The least an echo within quota can cost, the floor rows of the bench's program table.
pub static XDP_FLOOR: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp-floor"));

/// The bench's live-traffic generator (`BPF_PROG_TEST_RUN` with live frames).
pub static XDP_GEN: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp-gen"));

/// The number of possible CPUs (what per-CPU maps are sized by), 0 when it cannot be read.
#[must_use]
pub fn possible_cpus() -> u32 {
    *possible_cpus_read_once()
}

fn possible_cpus_read_once() -> &'static u32 {
    static CPUS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    CPUS.get_or_init(|| aya::util::nr_cpus().map_or(0, |n| u32::try_from(n).unwrap_or(0)))
}

/// A loader for [`ICMP_GUARD`] that tells the program the number of possible CPUs
/// ([`possible_cpus`]), which sizes the tokens a CPU takes ahead from the budgets all CPUs
/// share (`icmp_guard_common::bucket::ahead`). Every load of the program goes through it.
#[must_use]
pub fn loader() -> aya::EbpfLoader<'static> {
    let mut loader = aya::EbpfLoader::new();
    loader.override_global(
        icmp_guard_common::maps::POSSIBLE_CPUS,
        possible_cpus_read_once(),
        true,
    );
    loader
}

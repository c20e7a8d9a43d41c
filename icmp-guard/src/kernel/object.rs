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

//! The XDP objects, built by `build.rs` and embedded in the binary.

/// The icmp-guard program.
pub static ICMP_GUARD: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/icmp-guard"));

/// A bare `XDP_PASS` program, the benchmark baseline.
pub static XDP_PASS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp-pass"));

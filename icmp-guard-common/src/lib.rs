//! Types and decision logic shared by the icmp-guard XDP program and its userspace.
//!
//! Everything here is `no_std` and free of kernel helpers, so the same parser, token bucket
//! and policy that run in the XDP program also run (and are unit-tested, and checked against
//! the real program with the fixture table) on the host.
//! The kernel side only supplies packet bytes, the clock and the maps.

#![no_std]
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(
    target_arch = "bpf",
    expect(internal_features, reason = "atomic intrinsics: see the atomic module")
)]

pub mod atomic;
pub mod bucket;
pub mod capture;
pub mod config;
pub mod floor;
pub mod generator;
pub mod maps;
pub mod parse;
pub mod policy;
pub mod reason;
pub mod seen;

pub use bucket::{Limit, SourceKey, SourceRecord, SourceState};
pub use config::Config;
pub use reason::Reason;

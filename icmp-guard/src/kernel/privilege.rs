//! Up-front capability check, so a missing privilege is reported by name instead of as a bare
//! EPERM from deep inside a syscall.
//!
//! Loading and attaching the program needs `CAP_BPF` and `CAP_NET_ADMIN` (XDP); the program
//! is written so that it needs no `CAP_PERFMON` (see `XdpFrame` in the eBPF crate). Every
//! other command works on pinned maps and links and needs `CAP_BPF` alone. `CAP_SYS_ADMIN`
//! covers all of them.

use crate::Error;

/// A capability and its number (linux/capability.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap(pub &'static str, pub u32);

pub const CAP_NET_ADMIN: Cap = Cap("CAP_NET_ADMIN", 12);
pub const CAP_SYS_ADMIN: Cap = Cap("CAP_SYS_ADMIN", 21);
pub const CAP_BPF: Cap = Cap("CAP_BPF", 39);

/// What loading and attaching the program needs.
pub const LOAD: &[Cap] = &[CAP_BPF, CAP_NET_ADMIN];
/// What working on pinned state needs.
pub const PINS: &[Cap] = &[CAP_BPF];

/// Fails unless the process has every capability of `needed` (or `CAP_SYS_ADMIN`, which
/// stands in for all of them).
pub fn require(action: &'static str, needed: &'static [Cap]) -> Result<(), Error> {
    let Some(caps) = effective_caps() else {
        // Unknown: the kernel has the last word.
        return Ok(());
    };
    let has = |cap: Cap| caps & (1 << cap.1) != 0;
    let missing: Vec<&'static str> = needed
        .iter()
        .filter(|c| !has(**c) && !has(CAP_SYS_ADMIN))
        .map(|c| c.0)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Privilege {
        action,
        needed: needed.iter().map(|c| c.0).collect::<Vec<_>>().join(", "),
        missing: missing.join(", "),
    })
}

/// The effective capability set, from `/proc/self/status`.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

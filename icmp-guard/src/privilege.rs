//! Up-front capability check, so a missing privilege is reported by name instead of as a bare
//! EPERM from deep inside a syscall.

use crate::Error;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Fails unless the process may load BPF programs and attach them to interfaces.
pub fn require(action: &'static str) -> Result<(), Error> {
    let caps = effective_caps().unwrap_or(u64::MAX);
    let has = |cap: u32| caps & (1 << cap) != 0;
    if (has(CAP_BPF) || has(CAP_SYS_ADMIN)) && (has(CAP_NET_ADMIN) || has(CAP_SYS_ADMIN)) {
        Ok(())
    } else {
        Err(Error::Privilege { action })
    }
}

/// The effective capability set, from `/proc/self/status`; `None` if it cannot be read (then
/// the kernel has the last word).
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

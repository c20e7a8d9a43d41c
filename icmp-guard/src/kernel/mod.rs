//! Talking to the kernel: the embedded XDP object ([`object`]), loading, attaching and
//! replacing it ([`loader`]), interface names and indexes ([`iface`]), the attach mode
//! ([`mode`]), rtnetlink queries ([`netlink`]), why a driver refused native XDP
//! ([`refusal`]) and capability checks ([`privilege`]).

pub mod iface;
pub mod loader;
pub mod mode;
pub mod netlink;
pub mod object;
pub mod privilege;
pub mod refusal;

pub use iface::IfaceName;
pub use mode::AttachMode;

/// CPUs that process packets, over which the global budget is split.
#[must_use]
pub fn online_cpus() -> u32 {
    aya::util::online_cpus().map_or(1, |cpus| cpus.len().max(1) as u32)
}

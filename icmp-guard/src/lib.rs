//! The icmp-guard userspace: loads, attaches and steers the XDP program, and reports on it.
//!
//! - [`cli`]: the command line; [`commands`]: one thin module per subcommand.
//! - [`policy`]: the knobs (one table: flag, config key, unit, range, default), the policy
//!   they make, and CIDR prefixes.
//! - [`config_file`]: the TOML file, validated whole, and applying it to an interface.
//! - [`pinned`]: everything under the bpffs: pin layout, lock, typed map handles, layout check.
//! - [`kernel`]: the embedded object, load/attach/replace, interface names, netlink,
//!   privileges.
//! - [`capture`]: sampling what the program drops into a pcapng (`icmp-guard capture`).
//! - [`model`]: the program's verdict logic over host maps (what `replay` runs captures through).
//! - [`report`]: the read model (one snapshot of a guard) and its renderings: text, JSON,
//!   Prometheus.
//! - [`replay`]: a capture judged by the program's decision code (`icmp-guard replay`).
//! - [`daemon`]: the service loop and its HTTP listener.
//! - [`error`]: typed errors naming the interface, the value and the fix.

pub mod capture;
pub mod cli;
pub mod commands;
pub mod config_file;
pub mod daemon;
pub mod error;
pub mod kernel;
pub mod model;
pub mod pinned;
pub mod policy;
pub mod replay;
pub mod report;

pub use error::Error;

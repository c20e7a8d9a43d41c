//! The icmp-guard userspace: loads, attaches and steers the XDP program.
//!
//! One module per subcommand under [`commands`]; pin layout in [`pins`]; the pinned maps in
//! [`guard`]; limits and their validation in [`limits`]; typed errors in [`error`].

pub mod apply;
pub mod batch;
pub mod bpffs;
pub mod cidr;
pub mod cli;
pub mod commands;
pub mod config_file;
pub mod error;
pub mod guard;
pub mod iface;
pub mod limits;
pub mod loader;
pub mod lock;
pub mod metrics;
pub mod netlink;
pub mod object;
pub mod pins;
pub mod privilege;
pub mod schema;

pub use error::Error;

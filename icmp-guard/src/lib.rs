//! The icmp-guard userspace: loads, attaches and steers the XDP program.
pub mod object;

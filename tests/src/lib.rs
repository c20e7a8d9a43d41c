//! Test support for icmp-guard: a frame builder, the fixture table, network-namespace labs,
//! a frame injector and a host model of the XDP program.

pub mod fixtures;
pub mod harness;
pub mod host;
pub mod lab;
pub mod live;
pub mod packet;
pub mod recording;

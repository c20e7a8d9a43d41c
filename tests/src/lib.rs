//! Test support for icmp-guard: a frame builder, the fixture table, network-namespace labs,
//! a frame injector, a host model of the XDP program and the differential fuzzer that holds
//! the model and the program to each other.

pub mod fixtures;
pub mod fuzz;
pub mod harness;
pub mod host;
pub mod lab;
pub mod live;
pub mod packet;
pub mod recording;

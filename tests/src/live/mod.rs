//! Live traffic for the bench: frames sent by an XDP generator through a veth pair, received
//! by the program under test, costed on the receiving CPU.
//!
//! The lab is the usual one ([`Lab`](crate::lab::Lab)): the client namespace sends, the
//! guarded one receives. [`generator`] runs `xdp-gen` with `BPF_PROG_TEST_RUN` in live-frames
//! mode on [`SENDER_CPU`]; [`receiver`] makes the receiving veth's NAPI threaded, pins that
//! thread to [`RECEIVER_CPU`] and reads what it cost; [`bench`] runs the cases and
//! [`report`] shows them. The product is used through its CLI only.

pub mod bench;
pub mod generator;
pub mod receiver;
pub mod report;

/// The CPU the generator runs on.
pub const SENDER_CPU: usize = 0;
/// The CPU the receiver's NAPI thread, and so the whole receive path, runs on.
pub const RECEIVER_CPU: usize = 1;

//! The bench's live-traffic generator (`xdp-gen` in the eBPF crate) and the bench that drives
//! it share these: its state map, the map's slots and the generator's modes. Not part of the
//! guard.

/// `Array<u32>` of two entries: [`MODE_SLOT`] and [`NEXT_SLOT`].
pub const STATE: &str = "GEN_STATE";
/// What happens to each frame before it is sent: one of the modes below.
pub const MODE_SLOT: u32 = 0;
/// How many spoofed sources were handed out (the next one's index).
pub const NEXT_SLOT: u32 = 1;

/// Mode: the frame is sent as it is.
pub const LEAVE: u32 = 0;
/// Mode: the sender writes the frame before it leaves (two bytes of every [`WRITE_STRIDE`]
/// written back unchanged, so every cache line the frame touches is written), as a NIC writes
/// each frame it receives into memory.
pub const REWRITE: u32 = 1;
/// Mode: as [`REWRITE`], and the frame's IPv4 source becomes [`SPOOF_BASE`] + n for the n-th
/// spoofed frame, over [`SPOOF_SOURCES`] addresses, its header checksum updated to match.
pub const SPOOF: u32 = 2;

/// The first spoofed source, 10.0.0.0.
pub const SPOOF_BASE: u32 = 0x0a00_0000;
/// Spoofed sources walk this many addresses from [`SPOOF_BASE`] (10.0.0.0 to 41.255.255.255:
/// none martian), then start again: about 160 s of the generator's 3.3 Mpps, longer than a
/// whole bench. With 2^26, the monitor's 21-s flood came back to the sources the table was
/// filled with just before it (at 3.2 Mpps, after 20.5 s): tens of thousands of known sources
/// in a few milliseconds, each passed by its own bucket and all of them together emptying the
/// global budget, which a real flood of random sources (one known source in 65,000 of 2^32)
/// never does.
pub const SPOOF_SOURCES: u32 = 1 << 29;

/// Bytes from one write-back to the next: half a cache line, so a frame at any alignment is
/// written in every line it touches but one that holds only bytes after the last write-back
/// (for the bench's 98-byte frame, written at 0, 32, 64 and 96: only its last byte).
pub const WRITE_STRIDE: usize = 32;

//! The frames the fixture table, the benchmark and the injector share, between the hosts of
//! the test network ([`crate::fixtures`]'s addresses).

use super::{
    Ext, IPPROTO_ICMP, IPPROTO_TCP, Ipv4, Ipv6, JUMBO_MTU, MF, PacketBuilder, echo_request,
    icmp_type::{CODE_FRAG_NEEDED, DEST_UNREACHABLE, ECHO_REPLY},
    icmpv6_type::{ECHO_REQUEST, NEIGHBOUR_SOLICITATION, PACKET_TOO_BIG},
    ipv4_frame,
};
use crate::fixtures::{GUARDED, GUARDED6, OTHER, OTHER6, SOLICITED, SRC, SRC6};

/// An IPv4 ICMP packet from [`SRC`] to [`GUARDED`].
#[must_use]
pub fn icmp4(payload: Vec<u8>) -> Ipv4 {
    Ipv4::new(SRC, GUARDED, IPPROTO_ICMP, payload)
}

/// An ICMP message of type `ty`, code `code`, from [`SRC`], with 28 bytes of data.
#[must_use]
pub fn icmp4_frame(ty: u8, code: u8) -> Vec<u8> {
    PacketBuilder::new()
        .ipv4(SRC, GUARDED)
        .icmp(ty)
        .code(code)
        .rest([0, 1, 0, 1])
        .data(&[0; 28])
        .build()
}

/// A 98-byte echo request frame (`ping`'s default 56 data bytes) from `src`.
#[must_use]
pub fn echo_from(src: [u8; 4]) -> Vec<u8> {
    ipv4_frame(&Ipv4::new(src, GUARDED, IPPROTO_ICMP, echo_request(56)))
}

/// An echo reply (type 0, `ping`'s default 56 data bytes) from `src`: the answer to one of
/// this host's pings.
#[must_use]
pub fn echo_reply_from(src: [u8; 4]) -> Vec<u8> {
    PacketBuilder::new()
        .ipv4(src, GUARDED)
        .icmp(ECHO_REPLY)
        .rest([0, 1, 0, 1])
        .data(&[0x5a; 56])
        .build()
}

/// An echo request from [`SRC`] whose datagram fills a [`JUMBO_MTU`] link: 9014 bytes on the
/// wire.
#[must_use]
pub fn jumbo_echo() -> Vec<u8> {
    ipv4_frame(&icmp4(echo_request(JUMBO_MTU - 28)))
}

/// An echo request from `src` one byte over the default `--max-echo-size`, unfragmented.
#[must_use]
pub fn oversize_echo_from(src: [u8; 4]) -> Vec<u8> {
    let data = icmp_guard_common::config::defaults::MAX_ECHO_SIZE as usize - 28 + 1;
    ipv4_frame(&Ipv4::new(src, GUARDED, IPPROTO_ICMP, echo_request(data)))
}

/// An echo request from [`SRC`] to `dst`.
#[must_use]
pub fn echo_to(dst: [u8; 4]) -> Vec<u8> {
    ipv4_frame(&Ipv4::new(SRC, dst, IPPROTO_ICMP, echo_request(56)))
}

/// An IPv4 ICMP fragment from [`SRC`]: `offset` in bytes, `data_len` bytes of payload.
#[must_use]
pub fn fragment(offset: usize, more: bool, data_len: usize) -> Vec<u8> {
    let mut ip = icmp4(vec![0xab; data_len]);
    ip.frag = (offset / 8) as u16 | if more { MF } else { 0 };
    ipv4_frame(&ip)
}

/// Fragmentation needed (type 3 code 4) quoting one of our packets, next-hop MTU `mtu`.
#[must_use]
pub fn frag_needed(mtu: u16) -> Vec<u8> {
    PacketBuilder::new()
        .ipv4(SRC, GUARDED)
        .icmp(DEST_UNREACHABLE)
        .code(CODE_FRAG_NEEDED)
        .next_hop_mtu(mtu)
        .data(&Ipv4::new(GUARDED, OTHER, IPPROTO_TCP, vec![0; 8]).bytes())
        .build()
}

/// A TCP or UDP frame from [`SRC`].
#[must_use]
pub fn l4_frame(proto: u8) -> Vec<u8> {
    ipv4_frame(&Ipv4::new(SRC, GUARDED, proto, vec![0; 20]))
}

/// An ICMPv6 echo request from `src` to [`GUARDED6`], 56 data bytes.
#[must_use]
pub fn echo6_from(src: [u8; 16]) -> Vec<u8> {
    PacketBuilder::new()
        .ipv6(src, GUARDED6)
        .icmpv6(ECHO_REQUEST)
        .data(&[0x5a; 56])
        .build()
}

/// An ICMPv6 echo request from [`SRC6`] behind the given extension headers.
#[must_use]
pub fn echo6_behind(exts: Vec<Ext>, data_len: usize) -> Vec<u8> {
    PacketBuilder::new()
        .ipv6(SRC6, GUARDED6)
        .exts(exts)
        .icmpv6(ECHO_REQUEST)
        .data(&vec![0x5a; data_len])
        .build()
}

/// A neighbour solicitation for [`GUARDED6`] from `src` with `hop_limit`.
#[must_use]
pub fn neighbour_solicitation(src: [u8; 16], hop_limit: u8) -> Vec<u8> {
    PacketBuilder::new()
        .ipv6(src, SOLICITED)
        .hop_limit(hop_limit)
        .icmpv6(NEIGHBOUR_SOLICITATION)
        .data(&GUARDED6)
        .build()
}

/// Packet too big from [`SRC6`] (a router on the path) announcing `mtu`.
#[must_use]
pub fn packet_too_big(mtu: u32) -> Vec<u8> {
    PacketBuilder::new()
        .ipv6(SRC6, GUARDED6)
        .icmpv6(PACKET_TOO_BIG)
        .mtu(mtu)
        .data(&Ipv6::new(GUARDED6, OTHER6, IPPROTO_TCP, vec![0; 8]).bytes())
        .build()
}

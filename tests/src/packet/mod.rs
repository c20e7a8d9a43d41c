//! Frame builders for tests, able to build the malformed frames the fixtures need; the one
//! place frames are made, for the fixture table, the benchmark and the injector.
//!
//! Well-formed frames read like the packet, outside in, with [`PacketBuilder`]:
//! `PacketBuilder::new().ipv6(src, dst).hop_limit(255).icmpv6(NEIGHBOUR_SOLICITATION)`, then
//! `.data(..).build()`. Malformed ones set the wrong field on [`Ipv4`] or [`Ipv6`] and keep
//! the rest.
//!
//! The wire numbers below (ethertypes, protocols, ICMP and ICMPv6 types) are written out here
//! on purpose rather than taken from `icmp_guard_common`: the tests are an oracle for the
//! parser and the policy, and a wrong constant in the product must not build the frames that
//! would catch it.

mod builder;
mod frames;
mod ipv4;
mod ipv6;

pub use builder::{IcmpBuilder, Icmpv6Builder, Ipv4Builder, Ipv6Builder, PacketBuilder};
pub use frames::{
    echo_from, echo_reply_from, echo_to, echo6_behind, echo6_from, frag_needed, fragment, icmp4,
    icmp4_frame, jumbo_echo, l4_frame, neighbour_solicitation, oversize_echo_from, packet_too_big,
};
pub use ipv4::{Ipv4, echo_request, icmp, ipv4_frame};
pub use ipv6::{Ext, Ipv6, icmpv6, ipv6_frame};

/// Ethernet destination of test frames: a locally administered unicast address.
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Ethernet source of test frames.
pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// The Ethernet broadcast address.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
/// The nearest-bridge group LLDP is sent to.
pub const LLDP_MAC: [u8; 6] = [0x01, 0x80, 0xc2, 0, 0, 0x0e];
/// The Ethernet group of 224.0.0.1.
pub const ALL_HOSTS_MAC: [u8; 6] = [0x01, 0, 0x5e, 0, 0, 1];

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_8021AD: u16 = 0x88A8;
pub const ETH_P_LLDP: u16 = 0x88CC;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_AH: u8 = 51;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DSTOPTS: u8 = 60;

/// The jumbo MTU the tests use: the common 9000, more than two pages, so a frame that fills it
/// reaches an XDP program in several buffers.
pub const JUMBO_MTU: usize = 9000;

/// IPv4 "more fragments" flag in the flags/offset word.
pub const MF: u16 = 0x2000;
/// IPv4 "don't fragment" flag.
pub const DF: u16 = 0x4000;

/// ICMP types (RFC 792 and successors) and the codes the tests use.
pub mod icmp_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    /// Destination unreachable, code 1.
    pub const CODE_HOST_UNREACHABLE: u8 = 1;
    /// Destination unreachable, code 4: fragmentation needed and DF set.
    pub const CODE_FRAG_NEEDED: u8 = 4;
    pub const REDIRECT: u8 = 5;
    /// Redirect, code 1: for the host.
    pub const CODE_REDIRECT_HOST: u8 = 1;
    pub const ECHO_REQUEST: u8 = 8;
    pub const ROUTER_ADVERTISEMENT: u8 = 9;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const TIMESTAMP: u8 = 13;
    /// RFC 8335.
    pub const EXTENDED_ECHO_REQUEST: u8 = 42;
}

/// ICMPv6 types (RFC 4443, RFC 4861, RFC 3810).
pub mod icmpv6_type {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const MLD_QUERY: u8 = 130;
    pub const ROUTER_ADVERTISEMENT: u8 = 134;
    pub const NEIGHBOUR_SOLICITATION: u8 = 135;
    pub const MLDV2_REPORT: u8 = 143;
}

/// Offsets of checksums in an untagged frame, from the header lengths.
pub const ETH_LEN: usize = 14;
pub const IPV4_CHECKSUM: usize = ETH_LEN + 10;
pub const ICMP_CHECKSUM: usize = ETH_LEN + 20 + 2;
pub const ICMPV6_CHECKSUM: usize = ETH_LEN + 40 + 2;

/// An IPv6 address from its eight groups.
#[must_use]
pub const fn v6(groups: [u16; 8]) -> [u8; 16] {
    let mut out = [0; 16];
    let mut i = 0;
    while i < 8 {
        let [hi, lo] = groups[i].to_be_bytes();
        out[2 * i] = hi;
        out[2 * i + 1] = lo;
        i += 1;
    }
    out
}

/// The Internet checksum (RFC 1071).
#[must_use]
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame to [`DST_MAC`] with the given VLAN tags (TPIDs, outermost first).
#[must_use]
pub fn ether(ethertype: u16, tags: &[u16], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * tags.len() + payload.len());
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    for (i, tpid) in tags.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        // TCI: VLAN id 100 + depth.
        f.extend_from_slice(&(100 + i as u16).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// `frame` (untagged) with the given VLAN tags inserted.
#[must_use]
pub fn retag(frame: &[u8], tags: &[u16]) -> Vec<u8> {
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let mut tagged = ether(ethertype, tags, &frame[14..]);
    tagged[..12].copy_from_slice(&frame[..12]);
    tagged
}

/// `frame` with its Ethernet destination replaced.
#[must_use]
pub fn to_mac(mut frame: Vec<u8>, dst: [u8; 6]) -> Vec<u8> {
    frame[..6].copy_from_slice(&dst);
    frame
}

/// `frame` zero-padded to `len` bytes, as a NIC pads short frames to 60.
#[must_use]
pub fn padded(mut frame: Vec<u8>, len: usize) -> Vec<u8> {
    if frame.len() < len {
        frame.resize(len, 0);
    }
    frame
}

/// `frame` with the byte at `offset` inverted: a broken checksum.
#[must_use]
pub fn flipped(mut frame: Vec<u8>, offset: usize) -> Vec<u8> {
    frame[offset] ^= 0xff;
    frame
}

/// An ARP request frame (who-has `target` tell `sender`).
#[must_use]
pub fn arp_request(sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&SRC_MAC);
    a.extend_from_slice(&sender);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&target);
    let mut f = ether(ETH_P_ARP, &[], &a);
    f[..6].copy_from_slice(&[0xff; 6]);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify_to_zero() {
        let ip = Ipv4::new(
            [198, 51, 100, 2],
            [198, 51, 100, 1],
            IPPROTO_ICMP,
            echo_request(56),
        )
        .bytes();
        assert_eq!(checksum(&ip[..20]), 0);
        assert_eq!(checksum(&ip[20..]), 0);
        assert_eq!(ip.len(), 84);
    }

    #[test]
    fn the_builder_makes_what_the_structs_make() {
        let (src, dst) = ([0xfe; 16], [0xff; 16]);
        let by_hand = ipv6_frame(&Ipv6 {
            hop_limit: 255,
            ..Ipv6::new(
                src,
                dst,
                IPPROTO_ICMPV6,
                icmpv6(&src, &dst, 135, 0, [0x12, 0x34, 0, 1], &[7; 16]),
            )
        });
        let built = PacketBuilder::new()
            .ipv6(src, dst)
            .hop_limit(255)
            .icmpv6(icmpv6_type::NEIGHBOUR_SOLICITATION)
            .data(&[7; 16])
            .build();
        assert_eq!(built, by_hand);
    }

    #[test]
    fn the_ethernet_destination_can_be_set() {
        let frame = PacketBuilder::new()
            .eth_to(BROADCAST_MAC)
            .ipv4([198, 51, 100, 2], [198, 51, 100, 1])
            .icmp(icmp_type::ECHO_REQUEST)
            .build();
        assert_eq!(frame[..6], BROADCAST_MAC);
        assert_eq!(frame[6..12], SRC_MAC);
        assert_eq!(checksum(&frame[ETH_LEN + 20..]), 0);
    }
}

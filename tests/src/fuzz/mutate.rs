//! Frames made by mutating the fixture table's frames: bit flips and byte writes, truncation
//! and padding, VLAN stacks (802.1Q and 802.1ad, past the parser's depth too), IPv4 options,
//! header fields and fragment fields, IPv6 extension chains of random kinds and lengths with
//! random fragment fields, and random ICMP types and codes, sources, destinations and
//! Ethernet destinations.
//!
//! Mutations work on bytes and find the headers themselves (through VLAN tags and IPv6
//! extension headers), so each one applies to whatever an earlier one left, malformed or not.
//! Wire numbers come from [`crate::packet`], like the fixtures' own.

use crate::{
    fixtures::{ALL_NODES, GUARDED, GUARDED6, LINK_LOCAL, OTHER, OTHER6, SOLICITED, SRC, SRC6},
    packet::{
        ALL_HOSTS_MAC, BROADCAST_MAC, DF, DST_MAC, ETH_P_8021AD, ETH_P_8021Q, ETH_P_ARP, ETH_P_IP,
        ETH_P_IPV6, IPPROTO_AH, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS, IPPROTO_ICMP,
        IPPROTO_ICMPV6, IPPROTO_ROUTING, IPPROTO_TCP, IPPROTO_UDP, LLDP_MAC, MF, v6,
    },
};

use super::rng::Rng;

/// Smallest frame `BPF_PROG_TEST_RUN` accepts for XDP: an Ethernet header.
pub const MIN_FRAME: usize = 14;

/// Largest frame `BPF_PROG_TEST_RUN` hands an XDP program in one buffer (x86-64, 4 KiB
/// pages): a page less `XDP_PACKET_HEADROOM` (256) and the aligned `skb_shared_info` (320).
/// Longer frames would arrive as multi-buffer XDP, which icmp-guard does not support (the
/// README's known gaps), so the mutations cut frames to this.
pub const MAX_FRAME: usize = 3520;

/// Mutations applied to one frame at most.
const MAX_MUTATIONS: u64 = 4;

/// VLAN tags a stack may get: past the parser's eight, so both ends of the walk are reached.
const MAX_TAGS: u64 = 10;

/// Bytes at the front of a frame where the headers live: most byte mutations land there.
const HEADER_BYTES: usize = 96;

/// ICMP and ICMPv6 types worth more draws than the rest: every type the policy names, and the
/// edges of its ranges.
const TYPES: [u8; 30] = [
    0, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15, 40, 41, 42, 43, 1, 2, 127, 128, 129, 130, 131, 132,
    133, 135, 137, 143, 158, 161,
];

/// The sources and destinations of one batch: a few sources, so buckets fill and lists
/// match, drawn from hosts of the test network, documentation and random addresses, and
/// addresses the policy screens (martians, groups, IPv4-mapped).
#[derive(Clone, Debug)]
pub struct Addresses {
    pub v4: Vec<[u8; 4]>,
    pub v6: Vec<[u8; 16]>,
}

impl Addresses {
    /// One to four addresses of each family.
    pub fn draw(rng: &mut Rng) -> Self {
        Self {
            v4: (0..rng.between(1, 4)).map(|_| any_v4(rng)).collect(),
            v6: (0..rng.between(1, 4)).map(|_| any_v6(rng)).collect(),
        }
    }
}

/// An IPv4 address worth trying as a source or a list entry.
pub fn any_v4(rng: &mut Rng) -> [u8; 4] {
    let fourth = rng.byte();
    match rng.below(12) {
        0 => SRC,
        1 => OTHER,
        2 => GUARDED,
        3 | 4 => [198, 51, 100, fourth],
        5 => [203, 0, 113, fourth],
        // Martian: this network, loopback, multicast, reserved, limited broadcast.
        6 => *rng.pick(&[
            [0, 1, 2, 3],
            [127, 0, 0, 1],
            [224, 0, 0, 1],
            [240, 1, 2, 3],
            [255, 255, 255, 255],
        ]),
        7 => [192, 0, 2, fourth],
        _ => [rng.byte(), rng.byte(), rng.byte(), fourth],
    }
}

/// An IPv6 address worth trying as a source or a list entry.
pub fn any_v6(rng: &mut Rng) -> [u8; 16] {
    let low = rng.below(0x1_0000) as u16;
    match rng.below(14) {
        0 => SRC6,
        1 => OTHER6,
        2 => LINK_LOCAL,
        // Hopping inside the sender's /64, and the /64 next to it.
        3 | 4 => v6([0x2001, 0xdb8, 0, 0, 0, 0, 0xbeef, low]),
        5 => v6([0x2001, 0xdb8, 0, 1, low, 0, 0, 1]),
        // Screened: unspecified, loopback, multicast, IPv4-mapped.
        6 => *rng.pick(&[[0; 16], v6([0, 0, 0, 0, 0, 0, 0, 1]), ALL_NODES, SOLICITED]),
        7 => v6([0, 0, 0, 0, 0, 0xffff, 0xc633, low]),
        8 => GUARDED6,
        _ => {
            let mut a = [0; 16];
            for b in &mut a {
                *b = rng.byte();
            }
            a
        }
    }
}

/// `frame` with zero to [`MAX_MUTATIONS`] mutations, between [`MIN_FRAME`] and
/// [`MAX_FRAME`] bytes long.
pub fn mutate(rng: &mut Rng, frame: &[u8], addrs: &Addresses) -> Vec<u8> {
    let mut f = frame.to_vec();
    for _ in 0..rng.below(MAX_MUTATIONS + 1) {
        match rng.below(16) {
            0 => flip_bits(rng, &mut f),
            1 => set_byte(rng, &mut f),
            2 => truncate(rng, &mut f),
            3 => extend(rng, &mut f),
            4 => vlan_stack(rng, &mut f),
            5 => ethertype(rng, &mut f),
            6 => eth_dst(rng, &mut f),
            7 => ipv4_options(rng, &mut f),
            8 => ipv4_fields(rng, &mut f),
            9 => ipv4_fragment(rng, &mut f),
            10 => ipv6_chain(rng, &mut f),
            11 => ipv6_fields(rng, &mut f),
            12 => ipv6_fragment(rng, &mut f),
            13 => icmp_type(rng, &mut f),
            14 => source(rng, &mut f, addrs),
            _ => destination(rng, &mut f),
        }
    }
    if f.len() < MIN_FRAME {
        f.resize(MIN_FRAME, 0);
    }
    f.truncate(MAX_FRAME);
    f
}

/// A position in `f` (not empty), mostly among the headers.
fn position(rng: &mut Rng, f: &[u8]) -> usize {
    if rng.one_in(3) {
        rng.index(f.len())
    } else {
        rng.index(f.len().min(HEADER_BYTES))
    }
}

fn flip_bits(rng: &mut Rng, f: &mut [u8]) {
    if f.is_empty() {
        return;
    }
    for _ in 0..rng.between(1, 4) {
        let at = position(rng, f);
        f[at] ^= 1 << rng.below(8);
    }
}

fn set_byte(rng: &mut Rng, f: &mut [u8]) {
    if f.is_empty() {
        return;
    }
    let at = position(rng, f);
    f[at] = match rng.below(6) {
        0 => 0,
        1 => 0xff,
        2 => 0x80,
        3 => 0x7f,
        _ => rng.byte(),
    };
}

fn truncate(rng: &mut Rng, f: &mut Vec<u8>) {
    let len = rng.between(0, f.len() as u64) as usize;
    f.truncate(len);
}

/// Ethernet padding, or garbage, after the packet.
fn extend(rng: &mut Rng, f: &mut Vec<u8>) {
    let n = rng.between(1, 64) as usize;
    if rng.one_in(2) {
        f.resize(f.len() + n, 0);
    } else {
        f.extend(rng.bytes(n));
    }
}

/// The frame's tags replaced by zero to [`MAX_TAGS`] tags of either kind.
fn vlan_stack(rng: &mut Rng, f: &mut Vec<u8>) {
    let Some(net) = network(f) else { return };
    let inner = f[net.ethertype_at..].to_vec();
    f.truncate(12);
    for depth in 0..rng.below(MAX_TAGS + 1) {
        let tpid = if rng.one_in(2) {
            ETH_P_8021Q
        } else {
            ETH_P_8021AD
        };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + depth as u16).to_be_bytes());
    }
    f.extend_from_slice(&inner);
}

/// The innermost ethertype replaced.
fn ethertype(rng: &mut Rng, f: &mut [u8]) {
    let Some(net) = network(f) else { return };
    let ty = match rng.below(7) {
        0 => ETH_P_IP,
        1 => ETH_P_IPV6,
        2 => ETH_P_8021Q,
        3 => ETH_P_8021AD,
        4 => ETH_P_ARP,
        _ => rng.below(0x1_0000) as u16,
    };
    f[net.ethertype_at..net.l3].copy_from_slice(&ty.to_be_bytes());
}

fn eth_dst(rng: &mut Rng, f: &mut [u8]) {
    if f.len() < 6 {
        return;
    }
    let mac = *rng.pick(&[DST_MAC, BROADCAST_MAC, ALL_HOSTS_MAC, LLDP_MAC]);
    f[..6].copy_from_slice(&mac);
}

/// Options inserted into an IPv4 header: a whole number of words or not, the header length
/// and total length updated (or, sometimes, left to disagree).
fn ipv4_options(rng: &mut Rng, f: &mut Vec<u8>) {
    let Some(l3) = network(f).and_then(Network::ipv4) else {
        return;
    };
    let Some(&vihl) = f.get(l3) else { return };
    let header_len = usize::from(vihl & 0x0f) * 4;
    if f.len() < l3 + header_len.max(20) {
        return;
    }
    let len = if rng.one_in(4) {
        rng.between(1, 40) as usize
    } else {
        4 * rng.between(1, 10) as usize
    };
    let options: Vec<u8> = match rng.below(3) {
        // No-operations, then end of options.
        0 => (0..len).map(|i| u8::from(i + 1 != len)).collect(),
        _ => rng.bytes(len),
    };
    let at = l3 + header_len.max(20);
    f.splice(at..at, options);
    if !rng.one_in(5) {
        let words = (header_len.max(20) + len) / 4;
        f[l3] = (vihl & 0xf0) | (words.min(15) as u8);
    }
    if !rng.one_in(5) {
        let tot = be16(f, l3 + 2).unwrap_or(0);
        f[l3 + 2..l3 + 4].copy_from_slice(&tot.wrapping_add(len as u16).to_be_bytes());
    }
}

/// One IPv4 header field set to an edge or a random value.
fn ipv4_fields(rng: &mut Rng, f: &mut [u8]) {
    let Some(l3) = network(f).and_then(Network::ipv4) else {
        return;
    };
    if f.len() < l3 + 20 {
        return;
    }
    match rng.below(5) {
        0 => {
            let tot = be16(f, l3 + 2).unwrap_or(0);
            let new = match rng.below(5) {
                0 => 0,
                1 => 0xffff,
                2 => tot.wrapping_add(rng.between(1, 8) as u16),
                3 => tot.wrapping_sub(rng.between(1, 8) as u16),
                _ => rng.below(0x1_0000) as u16,
            };
            f[l3 + 2..l3 + 4].copy_from_slice(&new.to_be_bytes());
        }
        1 => f[l3] = (f[l3] & 0xf0) | rng.below(16) as u8,
        2 => f[l3] = ((rng.below(16) as u8) << 4) | (f[l3] & 0x0f),
        3 => f[l3 + 8] = *rng.pick(&[0, 1, 64, 255]),
        _ => {
            let any = rng.byte();
            f[l3 + 9] = *rng.pick(&[
                IPPROTO_ICMP,
                IPPROTO_ICMP,
                IPPROTO_TCP,
                IPPROTO_UDP,
                IPPROTO_ICMPV6,
                any,
            ]);
        }
    }
}

/// The IPv4 flags and fragment offset: first, middle, last and lone fragments, offsets at
/// the edges (the last one reaches past 65535).
fn ipv4_fragment(rng: &mut Rng, f: &mut [u8]) {
    let Some(l3) = network(f).and_then(Network::ipv4) else {
        return;
    };
    if f.len() < l3 + 8 {
        return;
    }
    let offset = fragment_offset(rng) >> 3;
    let mut word = offset & 0x1fff;
    if rng.one_in(2) {
        word |= MF;
    }
    if rng.one_in(3) {
        word |= DF;
    }
    if rng.one_in(8) {
        word |= 0x8000;
    }
    f[l3 + 6..l3 + 8].copy_from_slice(&word.to_be_bytes());
}

/// A fragment offset in bytes (a multiple of 8): zero, small, or near the end of a datagram.
fn fragment_offset(rng: &mut Rng) -> u16 {
    match rng.below(5) {
        0 => 0,
        1 => 8 * rng.between(1, 4) as u16,
        2 => 65528 - 8 * rng.below(4) as u16,
        _ => 8 * rng.below(8192) as u16,
    }
}

/// A chain of one to six extension headers of random kinds and lengths inserted after the
/// IPv6 header, ending in what the packet carried; the payload length updated (or not).
fn ipv6_chain(rng: &mut Rng, f: &mut Vec<u8>) {
    let Some(l3) = network(f).and_then(Network::ipv6) else {
        return;
    };
    if f.len() < l3 + 40 {
        return;
    }
    let mut next = f[l3 + 6];
    let mut chain = Vec::new();
    // Built back to front: each header names the one after it.
    for _ in 0..rng.between(1, 6) {
        let any = rng.byte();
        let kind = *rng.pick(&[
            IPPROTO_HOPOPTS,
            IPPROTO_ROUTING,
            IPPROTO_FRAGMENT,
            IPPROTO_FRAGMENT,
            IPPROTO_AH,
            IPPROTO_DSTOPTS,
            IPPROTO_DSTOPTS,
            any,
        ]);
        let header = ext_header(rng, kind, next);
        chain.splice(0..0, header);
        next = kind;
    }
    let added = chain.len();
    f.splice(l3 + 40..l3 + 40, chain);
    f[l3 + 6] = next;
    if !rng.one_in(5) {
        let len = be16(f, l3 + 4).unwrap_or(0);
        f[l3 + 4..l3 + 6].copy_from_slice(&len.wrapping_add(added as u16).to_be_bytes());
    }
}

/// One extension header of `kind` followed by `next`: a fragment header with random fields,
/// an authentication header in 4-byte units, any other in 8-byte units.
fn ext_header(rng: &mut Rng, kind: u8, next: u8) -> Vec<u8> {
    if kind == IPPROTO_FRAGMENT {
        let offlg = fragment_offset(rng) | u16::from(rng.one_in(2));
        let mut h = vec![next, 0];
        h.extend_from_slice(&offlg.to_be_bytes());
        h.extend(rng.bytes(4));
        return h;
    }
    let units = if rng.one_in(16) {
        rng.byte()
    } else {
        rng.below(4) as u8
    };
    let len = if kind == IPPROTO_AH {
        (usize::from(units) + 2) * 4
    } else {
        (usize::from(units) + 1) * 8
    };
    let mut h = vec![next, units];
    if rng.one_in(2) {
        h.resize(len, 0);
    } else {
        h.extend(rng.bytes(len - 2));
    }
    h
}

/// One IPv6 header field set to an edge or a random value.
fn ipv6_fields(rng: &mut Rng, f: &mut [u8]) {
    let Some(l3) = network(f).and_then(Network::ipv6) else {
        return;
    };
    if f.len() < l3 + 40 {
        return;
    }
    match rng.below(4) {
        0 => {
            let len = be16(f, l3 + 4).unwrap_or(0);
            let new = match rng.below(4) {
                0 => 0,
                1 => len.wrapping_add(rng.between(1, 8) as u16),
                2 => len.wrapping_sub(rng.between(1, 8) as u16),
                _ => rng.below(0x1_0000) as u16,
            };
            f[l3 + 4..l3 + 6].copy_from_slice(&new.to_be_bytes());
        }
        1 => f[l3] = ((rng.below(16) as u8) << 4) | (f[l3] & 0x0f),
        2 => {
            let any = rng.byte();
            f[l3 + 7] = *rng.pick(&[255, 255, 1, 64, 254, any]);
        }
        _ => {
            let any = rng.byte();
            f[l3 + 6] = *rng.pick(&[
                IPPROTO_ICMPV6,
                IPPROTO_HOPOPTS,
                IPPROTO_FRAGMENT,
                IPPROTO_ICMP,
                IPPROTO_TCP,
                any,
            ]);
        }
    }
}

/// The offset, M flag and reserved bits of the first fragment header in the chain.
fn ipv6_fragment(rng: &mut Rng, f: &mut [u8]) {
    let Some(l3) = network(f).and_then(Network::ipv6) else {
        return;
    };
    let Some(at) = ipv6_walk(f, l3)
        .into_iter()
        .find(|&(_, kind)| kind == IPPROTO_FRAGMENT)
        .map(|(at, _)| at)
    else {
        return;
    };
    if f.len() < at + 4 {
        return;
    }
    let mut offlg = fragment_offset(rng) | u16::from(rng.one_in(2));
    if rng.one_in(8) {
        offlg |= rng.below(3) as u16 * 2;
    }
    f[at + 2..at + 4].copy_from_slice(&offlg.to_be_bytes());
}

/// The ICMP or ICMPv6 type (and sometimes code) of the message, where one can be found.
fn icmp_type(rng: &mut Rng, f: &mut [u8]) {
    let Some(at) = icmp_offset(f) else { return };
    if f.len() < at + 2 {
        return;
    }
    f[at] = if rng.one_in(3) {
        rng.byte()
    } else {
        *rng.pick(&TYPES)
    };
    if rng.one_in(3) {
        let any = rng.byte();
        f[at + 1] = *rng.pick(&[0, 1, 4, any]);
    }
}

/// The source replaced by one of the batch's addresses of its family.
fn source(rng: &mut Rng, f: &mut [u8], addrs: &Addresses) {
    let Some(net) = network(f) else { return };
    if let Some(l3) = net.ipv4() {
        let src = *rng.pick(&addrs.v4);
        if let Some(field) = f.get_mut(l3 + 12..l3 + 16) {
            field.copy_from_slice(&src);
        }
    } else if let Some(l3) = net.ipv6() {
        let src = *rng.pick(&addrs.v6);
        if let Some(field) = f.get_mut(l3 + 8..l3 + 24) {
            field.copy_from_slice(&src);
        }
    }
}

/// The destination replaced: the guarded host, a group, or any address.
fn destination(rng: &mut Rng, f: &mut [u8]) {
    let Some(net) = network(f) else { return };
    if let Some(l3) = net.ipv4() {
        let dst = match rng.below(5) {
            0 => GUARDED,
            1 => [255, 255, 255, 255],
            2 => [224, 0, 0, 1],
            3 => [198, 51, 100, 255],
            _ => any_v4(rng),
        };
        if let Some(field) = f.get_mut(l3 + 16..l3 + 20) {
            field.copy_from_slice(&dst);
        }
    } else if let Some(l3) = net.ipv6() {
        let dst = match rng.below(4) {
            0 => GUARDED6,
            1 => ALL_NODES,
            2 => SOLICITED,
            _ => any_v6(rng),
        };
        if let Some(field) = f.get_mut(l3 + 24..l3 + 40) {
            field.copy_from_slice(&dst);
        }
    }
}

/// Where the network header of a frame is.
#[derive(Clone, Copy, Debug)]
struct Network {
    /// Offset of the innermost ethertype.
    ethertype_at: usize,
    ethertype: u16,
    /// Offset of the network header.
    l3: usize,
}

impl Network {
    fn ipv4(self) -> Option<usize> {
        (self.ethertype == ETH_P_IP).then_some(self.l3)
    }

    fn ipv6(self) -> Option<usize> {
        (self.ethertype == ETH_P_IPV6).then_some(self.l3)
    }
}

/// The network header behind any number of VLAN tags; `None` when the frame ends first.
fn network(f: &[u8]) -> Option<Network> {
    let mut at = 12;
    loop {
        let ethertype = be16(f, at)?;
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            return Some(Network {
                ethertype_at: at,
                ethertype,
                l3: at + 2,
            });
        }
        at += 4;
    }
}

/// The IPv6 extension headers of the packet at `l3`, as (offset, kind), up to the first
/// header that is not one or the end of the frame.
fn ipv6_walk(f: &[u8], l3: usize) -> Vec<(usize, u8)> {
    let mut out = Vec::new();
    let Some(&first) = f.get(l3 + 6) else {
        return out;
    };
    let (mut at, mut next) = (l3 + 40, first);
    while out.len() < 16 {
        let len = match next {
            IPPROTO_FRAGMENT => 8,
            IPPROTO_AH => (usize::from(*f.get(at + 1).unwrap_or(&0)) + 2) * 4,
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                (usize::from(*f.get(at + 1).unwrap_or(&0)) + 1) * 8
            }
            _ => break,
        };
        out.push((at, next));
        let Some(&n) = f.get(at) else { break };
        next = n;
        at += len;
    }
    out.push((at, next));
    out
}

/// Where the ICMP or ICMPv6 header of the frame starts, if it carries one.
fn icmp_offset(f: &[u8]) -> Option<usize> {
    let layers = network(f)?;
    if let Some(l3) = layers.ipv4() {
        let ihl = usize::from(f.get(l3)? & 0x0f) * 4;
        return (*f.get(l3 + 9)? == IPPROTO_ICMP).then_some(l3 + ihl.max(20));
    }
    let l3 = layers.ipv6()?;
    let &(at, kind) = ipv6_walk(f, l3).last()?;
    (kind == IPPROTO_ICMPV6).then_some(at)
}

fn be16(f: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Ext, echo_from, echo6_behind, echo6_from, retag};

    /// Where the locators find the headers of known frames: (frame, ethertype, l3, ICMP).
    #[test]
    fn headers_are_found_through_tags_and_extension_headers() {
        let cases = [
            (echo_from(SRC), ETH_P_IP, 14, Some(34)),
            (
                retag(&echo_from(SRC), &[ETH_P_8021AD, ETH_P_8021Q]),
                ETH_P_IP,
                22,
                Some(42),
            ),
            (echo6_from(SRC6), ETH_P_IPV6, 14, Some(54)),
            (
                echo6_behind(
                    vec![Ext::padn(IPPROTO_DSTOPTS), Ext::fragment(0, true, 7)],
                    8,
                ),
                ETH_P_IPV6,
                14,
                Some(70),
            ),
            (vec![0; 13], 0, 0, None),
        ];
        for (frame, ethertype, l3, icmp) in cases {
            let net = network(&frame);
            assert_eq!(
                net.map(|n| (n.ethertype, n.l3)),
                (l3 > 0).then_some((ethertype, l3))
            );
            assert_eq!(icmp_offset(&frame), icmp);
        }
    }

    #[test]
    fn every_mutated_frame_fits_a_test_run() {
        let mut rng = Rng::new(1);
        let addrs = Addresses::draw(&mut rng);
        for base in [echo_from(SRC), echo6_from(SRC6), vec![0; 1]] {
            for _ in 0..2000 {
                let f = mutate(&mut rng, &base, &addrs);
                assert!((MIN_FRAME..=MAX_FRAME).contains(&f.len()), "{}", f.len());
            }
        }
    }

    #[test]
    fn a_chain_is_inserted_with_its_payload_length() {
        let mut rng = Rng::new(3);
        let base = echo6_from(SRC6);
        let mut grew = 0;
        for _ in 0..200 {
            let mut f = base.clone();
            ipv6_chain(&mut rng, &mut f);
            let added = f.len() - base.len();
            assert!(added >= 8);
            // The chain ends in what the packet carried.
            let walk = ipv6_walk(&f, 14);
            if walk
                .iter()
                .all(|&(_, k)| is_known_ext(k) || k == IPPROTO_ICMPV6)
            {
                assert_eq!(walk.last().map(|w| w.1), Some(IPPROTO_ICMPV6));
            }
            if be16(&f, 18) == Some(be16(&base, 18).unwrap() + added as u16) {
                grew += 1;
            }
        }
        assert!(
            (120..200).contains(&grew),
            "payload length updated {grew} times in 200"
        );
    }

    fn is_known_ext(kind: u8) -> bool {
        [
            IPPROTO_HOPOPTS,
            IPPROTO_ROUTING,
            IPPROTO_FRAGMENT,
            IPPROTO_AH,
            IPPROTO_DSTOPTS,
        ]
        .contains(&kind)
    }
}

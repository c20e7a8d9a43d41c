//! Bounds-checked parsing of Ethernet, VLAN tags, IPv4 and ICMP.
//!
//! The parser reads through [`Frame`], implemented by the XDP program over `data..data_end`
//! and on the host over a byte slice, so the exact code the verifier checks is the code the
//! unit tests and fuzzers run. Every offset comes from a header length (`ihl` for IPv4), never
//! from a literal.

use network_types::{eth::EthHdr, icmp::Icmpv4Hdr, ip::Ipv4Hdr, vlan::VlanHdr};

use crate::Reason;

/// Ethertypes the parser knows.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const VLAN_8021Q: u16 = 0x8100;
    pub const VLAN_8021AD: u16 = 0x88A8;
}

/// IPv4 protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;

/// VLAN tags the parser walks, like the kernel's `VLAN_MAX_DEPTH`.
pub const VLAN_MAX_DEPTH: usize = 8;

/// Smallest ICMP message: type, code, checksum and four bytes of rest-of-header (RFC 792); the
/// kernel's `icmp_rcv` pulls this much before looking at any type.
pub const ICMP_HEADER_LEN: usize = Icmpv4Hdr::LEN;

/// Packet bytes, read through bounds checks.
pub trait Frame {
    /// Bytes in the frame.
    fn size(&self) -> usize;

    /// A copy of the `T` stored at `offset`, or `None` if it does not fit in the frame.
    fn read<T: Copy>(&self, offset: usize) -> Option<T>;
}

impl Frame for [u8] {
    fn size(&self) -> usize {
        self.len()
    }

    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        let bytes = self.get(offset..offset.checked_add(size_of::<T>())?)?;
        // SAFETY: `bytes` holds exactly size_of::<T>() initialised bytes; read_unaligned has no
        // alignment requirement; T is Copy plain data (packet headers made of integers).
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
    }
}

/// Where an ICMP packet sits among fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// A whole datagram (offset 0, no more fragments).
    None,
    /// The first fragment (offset 0, more fragments follow): carries the ICMP header.
    First,
    /// Any later fragment: carries no ICMP header.
    Later,
}

/// What the parser learned about an ICMP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpPacket {
    /// IPv4 source address.
    pub src: [u8; 4],
    /// IPv4 destination address.
    pub dst: [u8; 4],
    /// The IPv4 total length.
    pub ip_len: u32,
    /// Bytes the reassembled datagram reaches at least: header + fragment offset + payload.
    pub datagram_end: u32,
    /// Fragment position.
    pub fragment: Fragment,
    /// ICMP type, when this packet carries the ICMP header (not a later fragment).
    pub icmp_type: u8,
    /// ICMP code, likewise.
    pub icmp_code: u8,
}

impl IcmpPacket {
    /// Whether the packet carries the ICMP header.
    #[must_use]
    pub const fn has_header(&self) -> bool {
        !matches!(self.fragment, Fragment::Later)
    }
}

/// Parses a frame; `Ok` for ICMP over IPv4 that is well formed, `Err` with the final reason
/// for everything else (not ICMP, unparsed, malformed).
#[inline(always)]
pub fn parse_frame<F: Frame + ?Sized>(frame: &F) -> Result<IcmpPacket, Reason> {
    // Runt frames are the driver's business; nothing to judge here.
    let eth: EthHdr = frame.read(0).ok_or(Reason::PassedNonIcmp)?;
    let mut proto = u16::from_be(eth.ether_type);
    let mut l3 = EthHdr::LEN;
    for _ in 0..VLAN_MAX_DEPTH {
        if !is_vlan(proto) {
            break;
        }
        let tag: VlanHdr = frame.read(l3).ok_or(Reason::PassedNonIcmp)?;
        proto = u16::from_be(tag.ether_type);
        l3 += VlanHdr::LEN;
    }
    match proto {
        ethertype::IPV4 => parse_ipv4(frame, l3),
        p if is_vlan(p) => Err(Reason::PassedUnparsed),
        _ => Err(Reason::PassedNonIcmp),
    }
}

#[inline(always)]
const fn is_vlan(proto: u16) -> bool {
    proto == ethertype::VLAN_8021Q || proto == ethertype::VLAN_8021AD
}

/// Parses IPv4 at `l3` and, for ICMP, validates it as the kernel's `ip_rcv_core` and
/// `ip_frag_queue` would.
#[inline(always)]
fn parse_ipv4<F: Frame + ?Sized>(frame: &F, l3: usize) -> Result<IcmpPacket, Reason> {
    use Reason::DroppedMalformed as Malformed;

    // An IPv4 ethertype without room for the fixed header is truncated: no protocol to pass on.
    let ip: Ipv4Hdr = frame.read(l3).ok_or(Malformed)?;
    if ip.proto != IPPROTO_ICMP {
        return Err(Reason::PassedNonIcmp);
    }
    if ip.vihl >> 4 != 4 {
        return Err(Malformed);
    }
    let header_len = usize::from(ip.vihl & 0x0f) * 4;
    if header_len < Ipv4Hdr::LEN {
        return Err(Malformed);
    }
    // Bytes from the IP header to the end of the frame; shorter than total length means
    // truncated, longer is Ethernet padding and legal.
    let captured = frame.size() - l3;
    let ip_len = usize::from(u16::from_be_bytes(ip.tot_len));
    if ip_len > captured || header_len > ip_len {
        return Err(Malformed);
    }
    let payload = ip_len - header_len;

    let frag = u16::from_be_bytes(ip.frags);
    let more_fragments = frag & 0x2000 != 0;
    let offset = usize::from(frag & 0x1fff) * 8;
    let fragment = match (offset, more_fragments) {
        (0, false) => Fragment::None,
        (0, true) => Fragment::First,
        _ => Fragment::Later,
    };
    if !matches!(fragment, Fragment::None) {
        // RFC 791: every fragment but the last carries a multiple of 8 bytes, and a fragment
        // carries data at all.
        if payload == 0 || (more_fragments && payload % 8 != 0) {
            return Err(Malformed);
        }
    }

    let (icmp_type, icmp_code) = if offset == 0 {
        // The ICMP header must be whole in this packet: a shorter message or a tiny first
        // fragment (RFC 1858) is malformed.
        if payload < ICMP_HEADER_LEN {
            return Err(Malformed);
        }
        let icmp: Icmpv4Hdr = frame.read(l3 + header_len).ok_or(Malformed)?;
        (icmp.type_, icmp.code)
    } else {
        (0, 0)
    };

    Ok(IcmpPacket {
        src: ip.src_addr,
        dst: ip.dst_addr,
        ip_len: ip_len as u32,
        datagram_end: (header_len + offset + payload) as u32,
        fragment,
        icmp_type,
        icmp_code,
    })
}

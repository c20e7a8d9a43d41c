//! Bounds-checked parsing of Ethernet, VLAN tags, IPv4, IPv6 with its extension headers, ICMP
//! and ICMPv6.
//!
//! The parser reads through [`Frame`], implemented by the XDP program over the packet (direct
//! reads at constant offsets within the linear part, `bpf_xdp_load_bytes` at packet-dependent
//! ones and past the linear part) and on the host over a byte slice, so the exact code the
//! verifier checks is the code the host model and the fixture table run (every truncation of
//! every fixture frame included). Every offset comes from a header length (`ihl` for IPv4,
//! the length field of each IPv6 extension header), never from a literal.
//!
//! Nothing here assumes a frame is one piece of memory: a multi-buffer (jumbo) frame reaches
//! XDP as a linear part and fragments, and [`Frame`] reads any byte of it and measures all of
//! it, so lengths (the IPv4 total length, the IPv6 payload length, hence the ping-of-death and
//! `--max-echo-size` checks) are judged against the whole frame.

use network_types::{eth::EthHdr, icmp::Icmpv4Hdr, ip::Ipv4Hdr, ip::Ipv6Hdr, vlan::VlanHdr};

use crate::{Reason, bucket::SourceKey, config::MAX_DATAGRAM};

/// `::1` as two native-endian words ([`SourceKey::words`]).
pub const LOOPBACK_V6: [u64; 2] = [0, u64::from_ne_bytes([0, 0, 0, 0, 0, 0, 0, 1])];

/// Ethertypes the parser knows.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86DD;
    pub const VLAN_8021Q: u16 = 0x8100;
    pub const VLAN_8021AD: u16 = 0x88A8;
}

/// IP protocol / IPv6 next-header numbers the parser knows.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const DEST_OPTS: u8 = 60;
}

/// VLAN tags the parser walks, like the kernel's `VLAN_MAX_DEPTH`.
pub const VLAN_MAX_DEPTH: usize = 8;

/// IPv6 extension headers the parser walks after an optional hop-by-hop header; a longer
/// chain is dropped (RFC 9288 allows it; passing it unparsed would be a bypass). Real chains
/// in front of ICMPv6 hold one or two (fragment, destination options, routing); the verifier
/// explores every step of the walk, so the budget is also what keeps the program loadable
/// without `CAP_PERFMON` (see `the_verifier_has_headroom`).
pub const EXT_HEADER_BUDGET: usize = 4;

/// Smallest ICMP or ICMPv6 message: type, code, checksum and four bytes (RFC 792, RFC 4443);
/// the kernel pulls this much before looking at any type.
pub const ICMP_HEADER_LEN: usize = Icmpv4Hdr::LEN;

/// Packet bytes, read through bounds checks.
pub trait Frame {
    /// Whether the frame holds the `len` bytes at `offset`: `offset + len` against the frame's
    /// whole length, fragments included, without reading anything. The XDP side gets the
    /// length from `bpf_xdp_get_buff_len` rather than comparing `data + offset` with
    /// `data_end`, which bounds only the linear part: adding a packet-dependent offset to a
    /// packet pointer needs `CAP_PERFMON`, the helper only `CAP_BPF`.
    fn has(&self, offset: usize, len: usize) -> bool;

    /// A copy of the `T` stored at `offset`, or `None` if it does not fit in the frame; on XDP
    /// it may straddle the linear part and the fragments.
    fn read<T: Copy>(&self, offset: usize) -> Option<T>;

    /// Like [`Frame::read`] where that is cheap, else `None`: on XDP, only reads within the
    /// linear part. For fast paths whose `None` falls back to the full parse.
    fn peek<T: Copy>(&self, offset: usize) -> Option<T> {
        self.read(offset)
    }
}

impl Frame for [u8] {
    fn has(&self, offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.len())
    }

    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        let bytes = self.get(offset..offset.checked_add(size_of::<T>())?)?;
        // SAFETY: `bytes` holds exactly size_of::<T>() initialised bytes; read_unaligned has no
        // alignment requirement; T is Copy plain data (packet headers made of integers).
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
    }
}

/// IP version of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The largest datagram, IP header included, a fragment may reach: 65535 bytes for IPv4
    /// (the total length), a 65535-byte payload for IPv6.
    #[must_use]
    pub const fn max_datagram(self) -> u32 {
        match self {
            Self::V4 => MAX_DATAGRAM,
            Self::V6 => MAX_DATAGRAM + Ipv6Hdr::LEN as u32,
        }
    }
}

/// Where an ICMP packet sits among fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// A whole datagram (including an IPv6 atomic fragment: offset 0, no more fragments).
    None,
    /// The first fragment: carries the ICMP header.
    First,
    /// Any later fragment: carries no ICMP header.
    Later,
}

/// What the parser learned about an ICMP or ICMPv6 packet.
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent facts the policy tests one by one; they live in registers, not memory"
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpPacket {
    pub family: Family,
    /// Source address, IPv4 mapped into `::ffff:0:0/96`: the per-source key before masking,
    /// built as two words.
    pub src: SourceKey,
    /// The Ethernet destination is a group (broadcast or multicast) address.
    pub l2_group: bool,
    /// The IP destination is a group: IPv4 multicast, reserved or the limited broadcast
    /// (224.0.0.0 and up), or IPv6 multicast (`ff00::/8`).
    pub ip_group: bool,
    /// The IP destination is the IPv6 loopback address `::1` (never for IPv4).
    pub dst_loopback: bool,
    /// IPv4 TTL or IPv6 hop limit.
    pub hop_limit: u8,
    /// Bytes of the IP packet: the IPv4 total length, or 40 + the IPv6 payload length.
    pub ip_len: u32,
    /// Bytes the reassembled datagram reaches at least, IP header included.
    pub datagram_end: u32,
    pub fragment: Fragment,
    /// An IPv6 fragment header was present, an atomic one included (which `fragment` counts
    /// as a whole packet).
    pub fragment_header: bool,
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

/// Parses a frame; `Ok` for ICMP over IPv4 or ICMPv6 over IPv6 that is well formed, `Err`
/// with the final reason for everything else (not ICMP, unparsed, malformed).
#[inline(always)]
pub fn parse_frame<F: Frame + ?Sized>(frame: &F) -> Result<IcmpPacket, Reason> {
    // The commonest frames first, from one read of the untagged Ethernet and fixed IP headers
    // and the ICMP type and code, all in the linear part: IPv4 that is not ICMP is passed
    // after two compares, and a whole ICMP packet without IPv4 options or IPv6 extension
    // headers is parsed without reading its headers again. Anything else (a short frame, a
    // tag, options, extension headers, a fragment) takes the general path below, which
    // decides these frames the same way.
    if let Some(head) = frame.peek::<Untagged<Ipv4Hdr>>(0) {
        match u16::from_be_bytes([head.eth[12], head.eth[13]]) {
            ethertype::IPV4 => {
                if head.ip.proto != proto::ICMP {
                    return Err(Reason::PassedNonIcmp);
                }
                if let Some(pkt) = plain_icmpv4(frame, &head) {
                    return Ok(pkt);
                }
            }
            ethertype::IPV6 => {
                if let Some(pkt) = frame
                    .peek::<Untagged<Ipv6Hdr>>(0)
                    .and_then(|head| plain_icmpv6(frame, &head))
                {
                    return Ok(pkt);
                }
            }
            _ => {}
        }
    }
    // Runt frames are the driver's business; nothing to judge here. Read as bytes, so only
    // the three used are loaded (through `EthHdr`, LLVM loads eight to build the type).
    let eth: [u8; EthHdr::LEN] = frame.read(0).ok_or(Reason::PassedNonIcmp)?;
    let l2_group = eth[0] & 1 != 0;
    let mut proto = u16::from_be_bytes([eth[12], eth[13]]);
    // Untagged frames first, with the network header at a constant offset: the XDP side
    // reads constant offsets directly and variable ones through a helper.
    match proto {
        ethertype::IPV4 => return parse_ipv4(frame, EthHdr::LEN, l2_group),
        ethertype::IPV6 => return parse_ipv6(frame, EthHdr::LEN, l2_group),
        _ => {}
    }
    let mut l3 = EthHdr::LEN;
    for _ in 0..VLAN_MAX_DEPTH {
        if !is_vlan(proto) {
            break;
        }
        // Tags to the end of the frame: nothing left to parse.
        let tag: VlanHdr = frame.read(l3).ok_or(Reason::PassedUnparsed)?;
        proto = u16::from_be(tag.ether_type);
        l3 += VlanHdr::LEN;
    }
    match proto {
        ethertype::IPV4 => parse_ipv4(frame, l3, l2_group),
        ethertype::IPV6 => parse_ipv6(frame, l3, l2_group),
        p if is_vlan(p) => Err(Reason::PassedUnparsed),
        _ => Err(Reason::PassedNonIcmp),
    }
}

#[inline(always)]
const fn is_vlan(proto: u16) -> bool {
    proto == ethertype::VLAN_8021Q || proto == ethertype::VLAN_8021AD
}

/// The IPv4 "more fragments" flag and fragment offset (in 8-byte units) of the flags and
/// offset field.
const IPV4_MORE_FRAGMENTS: u16 = 0x2000;
const IPV4_OFFSET: u16 = 0x1fff;

/// An untagged Ethernet header, the fixed IP header `H` after it, and the type and code of the
/// ICMP header that follows when there are no IPv4 options or IPv6 extension headers: what
/// the fast paths read at once.
#[repr(C)]
#[derive(Clone, Copy)]
struct Untagged<H> {
    eth: [u8; EthHdr::LEN],
    ip: H,
    icmp: [u8; 2],
}

const _: () = assert!(size_of::<Untagged<Ipv4Hdr>>() == EthHdr::LEN + Ipv4Hdr::LEN + 2);
const _: () = assert!(size_of::<Untagged<Ipv6Hdr>>() == EthHdr::LEN + Ipv6Hdr::LEN + 2);

/// The packet of an untagged IPv4 ICMP frame `head` was peeked from, when it is the plain
/// case: version 4 without options, not a fragment, its total length whole in the frame and
/// long enough for an ICMP header. `None` leaves the frame to [`parse_ipv4`], which decides
/// the plain case the same way (and everything else).
#[inline(always)]
fn plain_icmpv4<F: Frame + ?Sized>(frame: &F, head: &Untagged<Ipv4Hdr>) -> Option<IcmpPacket> {
    let ip = &head.ip;
    let ip_len = u16::from_be_bytes(ip.tot_len);
    // The "don't fragment" bit alone may be set.
    let whole = u16::from_be_bytes(ip.frags) & (IPV4_MORE_FRAGMENTS | IPV4_OFFSET) == 0;
    let plain = ip.vihl == 0x45
        && whole
        && usize::from(ip_len) >= Ipv4Hdr::LEN + ICMP_HEADER_LEN
        && frame.has(EthHdr::LEN, usize::from(ip_len));
    plain.then(|| {
        icmpv4_packet(
            ip,
            head.eth[0] & 1 != 0,
            Fragment::None,
            u32::from(ip_len),
            head.icmp,
        )
    })
}

/// An ICMP packet carried by `ip` (IPv4), given what the parse found beyond the fixed header.
#[inline(always)]
fn icmpv4_packet(
    ip: &Ipv4Hdr,
    l2_group: bool,
    fragment: Fragment,
    datagram_end: u32,
    icmp: [u8; 2],
) -> IcmpPacket {
    IcmpPacket {
        family: Family::V4,
        src: SourceKey::v4(ip.src_addr),
        l2_group,
        ip_group: ip.dst_addr[0] >= 224,
        dst_loopback: false,
        hop_limit: ip.ttl,
        ip_len: u32::from(u16::from_be_bytes(ip.tot_len)),
        datagram_end,
        fragment,
        fragment_header: false,
        icmp_type: icmp[0],
        icmp_code: icmp[1],
    }
}

/// The packet of an untagged IPv6 frame `head` was peeked from, when it is plain ICMPv6:
/// version 6, ICMPv6 right after the fixed header, its payload whole in the frame and long
/// enough for an ICMPv6 header. `None` leaves the frame to [`parse_ipv6`], which decides the
/// plain case the same way (and everything else).
#[inline(always)]
fn plain_icmpv6<F: Frame + ?Sized>(frame: &F, head: &Untagged<Ipv6Hdr>) -> Option<IcmpPacket> {
    let ip = &head.ip;
    let payload_len = usize::from(u16::from_be_bytes(ip.payload_len));
    let plain = ip.vcf[0] >> 4 == 6
        && ip.next_hdr == proto::ICMPV6
        && payload_len >= ICMP_HEADER_LEN
        && frame.has(EthHdr::LEN, Ipv6Hdr::LEN + payload_len);
    plain.then(|| {
        icmpv6_packet(
            ip,
            head.eth[0] & 1 != 0,
            Fragment::None,
            false,
            (Ipv6Hdr::LEN + payload_len) as u32,
            head.icmp,
        )
    })
}

/// An ICMPv6 packet carried by `ip`, given what the parse found beyond the fixed header.
#[inline(always)]
fn icmpv6_packet(
    ip: &Ipv6Hdr,
    l2_group: bool,
    fragment: Fragment,
    fragment_header: bool,
    datagram_end: u32,
    icmp: [u8; 2],
) -> IcmpPacket {
    IcmpPacket {
        family: Family::V6,
        src: SourceKey { addr: ip.src_addr },
        l2_group,
        ip_group: ip.dst_addr[0] == 0xff,
        dst_loopback: SourceKey { addr: ip.dst_addr }.words() == LOOPBACK_V6,
        hop_limit: ip.hop_limit,
        ip_len: (Ipv6Hdr::LEN + usize::from(u16::from_be_bytes(ip.payload_len))) as u32,
        datagram_end,
        fragment,
        fragment_header,
        icmp_type: icmp[0],
        icmp_code: icmp[1],
    }
}

/// Parses IPv4 at `l3` and, for ICMP, validates it as the kernel's `ip_rcv_core` and
/// `ip_frag_queue` would.
#[inline(always)]
fn parse_ipv4<F: Frame + ?Sized>(
    frame: &F,
    l3: usize,
    l2_group: bool,
) -> Result<IcmpPacket, Reason> {
    use Reason::DroppedMalformed as Malformed;

    // An IPv4 ethertype without room for the fixed header is truncated: no protocol to pass on.
    let ip: Ipv4Hdr = frame.read(l3).ok_or(Malformed)?;
    if ip.proto != proto::ICMP {
        return Err(Reason::PassedNonIcmp);
    }
    if ip.vihl >> 4 != 4 {
        return Err(Malformed);
    }
    let header_len = usize::from(ip.vihl & 0x0f) * 4;
    if header_len < Ipv4Hdr::LEN {
        return Err(Malformed);
    }
    // A frame shorter than the total length is truncated; longer is Ethernet padding and
    // legal.
    let ip_len = usize::from(u16::from_be_bytes(ip.tot_len));
    if !frame.has(l3, ip_len) || header_len > ip_len {
        return Err(Malformed);
    }
    let payload = ip_len - header_len;

    let frag = u16::from_be_bytes(ip.frags);
    let more = frag & IPV4_MORE_FRAGMENTS != 0;
    let offset = usize::from(frag & IPV4_OFFSET) * 8;
    let fragment = fragment_kind(offset, more);
    if !matches!(fragment, Fragment::None) && !fragment_data_ok(payload, more) {
        return Err(Malformed);
    }

    let icmp = if offset == 0 {
        // The ICMP header must be whole in this packet: a shorter message or a tiny first
        // fragment (RFC 1858) is malformed.
        if payload < ICMP_HEADER_LEN {
            return Err(Malformed);
        }
        // Without options (nearly always) the offset is a constant: a direct read on XDP.
        let header: Icmpv4Hdr = if header_len == Ipv4Hdr::LEN {
            frame.read(l3 + Ipv4Hdr::LEN)
        } else {
            frame.read(l3 + header_len)
        }
        .ok_or(Malformed)?;
        [header.type_, header.code]
    } else {
        [0, 0]
    };
    Ok(icmpv4_packet(
        &ip,
        l2_group,
        fragment,
        (header_len + offset + payload) as u32,
        icmp,
    ))
}

/// Parses IPv6 at `l3`, walks its extension headers and, for ICMPv6, validates the chain and
/// fragments as RFC 8200 asks.
#[inline(always)]
fn parse_ipv6<F: Frame + ?Sized>(
    frame: &F,
    l3: usize,
    l2_group: bool,
) -> Result<IcmpPacket, Reason> {
    use Reason::DroppedMalformed as Malformed;

    let ip: Ipv6Hdr = frame.read(l3).ok_or(Malformed)?;
    if ip.vcf[0] >> 4 != 6 {
        return Err(Malformed);
    }
    let payload_len = usize::from(u16::from_be_bytes(ip.payload_len));
    // A zero payload length is only legal with a jumbo option, which needs a link with a
    // 64 KiB+ MTU; Ethernet padding past the payload is legal.
    if payload_len == 0 || !frame.has(l3, Ipv6Hdr::LEN + payload_len) {
        return Err(Malformed);
    }
    let first_ext = l3 + Ipv6Hdr::LEN;
    let end = first_ext + payload_len;

    let packet = |fragment, fragment_header, datagram_end, icmp| {
        icmpv6_packet(&ip, l2_group, fragment, fragment_header, datagram_end, icmp)
    };
    // No extension headers (nearly always): the ICMPv6 header sits at a constant offset.
    if ip.next_hdr == proto::ICMPV6 {
        if ICMP_HEADER_LEN > payload_len {
            return Err(Malformed);
        }
        let icmp: [u8; 2] = frame.read(first_ext).ok_or(Malformed)?;
        return Ok(packet(
            Fragment::None,
            false,
            (Ipv6Hdr::LEN + payload_len) as u32,
            icmp,
        ));
    }

    let Walk {
        off,
        fragment,
        fragment_header,
        datagram_end,
    } = walk_extensions(frame, l3, ip.next_hdr, end)?;
    let icmp = if matches!(fragment, Fragment::Later) {
        [0, 0]
    } else {
        // The ICMPv6 header must be in this packet: a first fragment whose chain leaves it
        // for a later one is dropped (RFC 7112).
        if off + ICMP_HEADER_LEN > end {
            return Err(Malformed);
        }
        frame.read(off).ok_or(Malformed)?
    };
    Ok(packet(fragment, fragment_header, datagram_end, icmp))
}

/// Where an extension-header walk found the ICMPv6 header (or, for a later fragment, its
/// data), and what it learned about fragmentation.
struct Walk {
    off: usize,
    fragment: Fragment,
    fragment_header: bool,
    datagram_end: u32,
}

/// Walks the extension headers of the IPv6 packet at `l3` (payload ending at `end`), starting
/// with `next`; `Err` with the reason when the chain is bad, too long, or not ICMPv6.
#[inline(always)]
fn walk_extensions<F: Frame + ?Sized>(
    frame: &F,
    l3: usize,
    mut next: u8,
    end: usize,
) -> Result<Walk, Reason> {
    use Reason::DroppedMalformed as Malformed;

    let mut off = l3 + Ipv6Hdr::LEN;
    // Hop-by-hop may only come first (RFC 8200 section 4.1); MLD needs it (router alert).
    if next == proto::HOP_BY_HOP {
        let (nh, len) = ext_header(frame, off, end, next)?;
        next = nh;
        off += len;
    }
    let mut fragment = Fragment::None;
    let mut seen_fragment = false;
    let mut datagram_end = (end - l3) as u32;
    for _ in 0..EXT_HEADER_BUDGET {
        match next {
            proto::ICMPV6 => {
                return Ok(Walk {
                    off,
                    fragment,
                    fragment_header: seen_fragment,
                    datagram_end,
                });
            }
            proto::HOP_BY_HOP => return Err(Malformed),
            proto::ROUTING | proto::DEST_OPTS | proto::AH => {
                let (nh, len) = ext_header(frame, off, end, next)?;
                next = nh;
                off += len;
            }
            proto::FRAGMENT => {
                // Two fragment headers in one packet are never legitimate.
                if seen_fragment {
                    return Err(Malformed);
                }
                seen_fragment = true;
                let hdr: [u8; 4] = frame.read(off).ok_or(Malformed)?;
                let data = end.checked_sub(off + 8).ok_or(Malformed)?;
                let offlg = u16::from_be_bytes([hdr[2], hdr[3]]);
                let offset = usize::from(offlg & 0xfff8);
                let more = offlg & 1 != 0;
                // The IPv6 header and the extension headers before this one.
                let unfragmentable = off - l3;
                next = hdr[0];
                off += 8;
                // An atomic fragment (offset 0, no more) is a whole packet (RFC 6946).
                fragment = fragment_kind(offset, more);
                if matches!(fragment, Fragment::None) {
                    continue;
                }
                if !fragment_data_ok(data, more) {
                    return Err(Malformed);
                }
                // The unfragmentable part, then this fragment's data at its offset.
                datagram_end = (unfragmentable + offset + data) as u32;
                if matches!(fragment, Fragment::Later) {
                    // No headers follow in a later fragment; its next header names the first
                    // header of the fragmentable part. Hop-by-hop only comes first, and a
                    // second fragment header is never legitimate (the fragmentable part of a
                    // datagram is after its one fragment header).
                    if matches!(next, proto::HOP_BY_HOP | proto::FRAGMENT) {
                        return Err(Malformed);
                    }
                    // ICMPv6, or an extension header that may lead to it (which only the
                    // first fragment shows), so it is size-checked and metered like one.
                    if next == proto::ICMPV6 || is_ext_header(next) {
                        return Ok(Walk {
                            off,
                            fragment,
                            fragment_header: true,
                            datagram_end,
                        });
                    }
                    // Any other name proves nothing: Linux queues fragments by addresses and
                    // id and takes the next header from the first fragment (RFC 8200 4.5), so
                    // a later fragment labelled UDP may belong to an echo. Such a fragment is
                    // passed (metering it would charge fragmented UDP to ICMP quotas), but
                    // not one that ends past the largest datagram, which the kernel refuses
                    // whatever it carries.
                    return Err(if datagram_end > Family::V6.max_datagram() {
                        Reason::DroppedOversize
                    } else {
                        Reason::PassedNonIcmp
                    });
                }
            }
            // Anything else (TCP, UDP, ESP, no next header, ...) is not ICMPv6.
            _ => return Err(Reason::PassedNonIcmp),
        }
    }
    // The budget's last header may lead straight to ICMPv6; hop-by-hop there is misplaced,
    // as within the budget; anything else left in the chain is too long to judge.
    match next {
        proto::ICMPV6 => Ok(Walk {
            off,
            fragment,
            fragment_header: seen_fragment,
            datagram_end,
        }),
        proto::HOP_BY_HOP => Err(Malformed),
        proto::FRAGMENT if seen_fragment => Err(Malformed),
        n if is_ext_header(n) => Err(Reason::DroppedExtHeaders),
        _ => Err(Reason::PassedNonIcmp),
    }
}

/// Reads the (next header, length in bytes) of the extension header `kind` at `off`, which
/// must end within the packet (`end`).
#[inline(always)]
fn ext_header<F: Frame + ?Sized>(
    frame: &F,
    off: usize,
    end: usize,
    kind: u8,
) -> Result<(u8, usize), Reason> {
    let hdr: [u8; 2] = frame.read(off).ok_or(Reason::DroppedMalformed)?;
    let len = if kind == proto::AH {
        (usize::from(hdr[1]) + 2) * 4
    } else {
        (usize::from(hdr[1]) + 1) * 8
    };
    if off + len > end {
        return Err(Reason::DroppedMalformed);
    }
    Ok((hdr[0], len))
}

#[inline(always)]
const fn is_ext_header(next: u8) -> bool {
    matches!(
        next,
        proto::HOP_BY_HOP | proto::ROUTING | proto::FRAGMENT | proto::AH | proto::DEST_OPTS
    )
}

#[inline(always)]
const fn fragment_kind(offset: usize, more: bool) -> Fragment {
    match (offset, more) {
        (0, false) => Fragment::None,
        (0, true) => Fragment::First,
        _ => Fragment::Later,
    }
}

/// RFC 791 and RFC 8200: a fragment carries data, and every fragment but the last carries a
/// multiple of 8 bytes.
#[inline(always)]
const fn fragment_data_ok(data: usize, more: bool) -> bool {
    data != 0 && (!more || data.is_multiple_of(8))
}

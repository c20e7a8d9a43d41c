//! [`PacketBuilder`]: a well-formed frame written outside in, as it reads on the wire.
//!
//! ```
//! use icmp_guard_tests::packet::{PacketBuilder, icmpv6_type::PACKET_TOO_BIG};
//! let frame = PacketBuilder::new()
//!     .ipv6([0xfe; 16], [0xfd; 16])
//!     .icmpv6(PACKET_TOO_BIG)
//!     .mtu(1280)
//!     .build();
//! assert_eq!(frame.len(), 14 + 40 + 8);
//! ```

use super::{DST_MAC, Ext, IPPROTO_ICMP, IPPROTO_ICMPV6, Ipv4, Ipv6, icmp, icmpv6, to_mac};

/// Rest of the ICMP header unless set: identifier 0x1234, sequence 1, as an echo carries.
const REST: [u8; 4] = [0x12, 0x34, 0, 1];

/// The Ethernet header: an untagged frame from [`SRC_MAC`](super::SRC_MAC) to [`DST_MAC`]
/// unless [`eth_to`](Self::eth_to) says otherwise.
#[derive(Clone, Debug)]
pub struct PacketBuilder {
    dst_mac: [u8; 6],
}

impl Default for PacketBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketBuilder {
    #[must_use]
    pub const fn new() -> Self {
        Self { dst_mac: DST_MAC }
    }

    /// The Ethernet destination.
    #[must_use]
    pub const fn eth_to(self, dst_mac: [u8; 6]) -> Self {
        Self { dst_mac }
    }

    /// An IPv4 header from `src` to `dst`: TTL 64, DF set.
    #[must_use]
    pub fn ipv4(self, src: [u8; 4], dst: [u8; 4]) -> Ipv4Builder {
        Ipv4Builder {
            eth: self,
            ip: Ipv4::new(src, dst, IPPROTO_ICMP, Vec::new()),
        }
    }

    /// An IPv6 header from `src` to `dst`: hop limit 64, no extension headers.
    #[must_use]
    pub fn ipv6(self, src: [u8; 16], dst: [u8; 16]) -> Ipv6Builder {
        Ipv6Builder {
            eth: self,
            ip: Ipv6::new(src, dst, IPPROTO_ICMPV6, Vec::new()),
        }
    }

    fn frame(&self, frame: Vec<u8>) -> Vec<u8> {
        to_mac(frame, self.dst_mac)
    }
}

/// An IPv4 header, waiting for its payload.
#[derive(Clone, Debug)]
pub struct Ipv4Builder {
    eth: PacketBuilder,
    ip: Ipv4,
}

impl Ipv4Builder {
    /// An ICMP message of `icmp_type`, code 0 unless set.
    #[must_use]
    pub fn icmp(self, icmp_type: u8) -> IcmpBuilder {
        IcmpMessage::new(self, icmp_type)
    }
}

/// An ICMP or ICMPv6 message inside its IP packet `Ip` ([`Ipv4Builder`] or [`Ipv6Builder`]).
#[derive(Clone, Debug)]
pub struct IcmpMessage<Ip> {
    ip: Ip,
    icmp_type: u8,
    code: u8,
    rest: [u8; 4],
    data: Vec<u8>,
}

/// An ICMP message inside its IPv4 packet.
pub type IcmpBuilder = IcmpMessage<Ipv4Builder>;

/// An ICMPv6 message inside its IPv6 packet.
pub type Icmpv6Builder = IcmpMessage<Ipv6Builder>;

impl<Ip> IcmpMessage<Ip> {
    const fn new(ip: Ip, icmp_type: u8) -> Self {
        Self {
            ip,
            icmp_type,
            code: 0,
            rest: REST,
            data: Vec::new(),
        }
    }

    #[must_use]
    pub fn code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }

    /// The four bytes after the checksum.
    #[must_use]
    pub fn rest(mut self, rest: [u8; 4]) -> Self {
        self.rest = rest;
        self
    }

    /// The bytes after the eight-byte header: echo data, the target of a neighbour
    /// solicitation, or the quoted packet of an error.
    #[must_use]
    pub fn data(mut self, data: &[u8]) -> Self {
        self.data = data.to_vec();
        self
    }
}

impl IcmpBuilder {
    /// The next-hop MTU of a fragmentation-needed message (RFC 1191).
    #[must_use]
    pub fn next_hop_mtu(self, mtu: u16) -> Self {
        let [hi, lo] = mtu.to_be_bytes();
        self.rest([0, 0, hi, lo])
    }

    /// The frame, checksums included.
    #[must_use]
    pub fn build(self) -> Vec<u8> {
        let Ipv4Builder { eth, ip } = self.ip;
        let payload = icmp(self.icmp_type, self.code, self.rest, &self.data);
        eth.frame(super::ipv4_frame(&Ipv4 { payload, ..ip }))
    }
}

/// An IPv6 header, waiting for its payload.
#[derive(Clone, Debug)]
pub struct Ipv6Builder {
    eth: PacketBuilder,
    ip: Ipv6,
}

impl Ipv6Builder {
    #[must_use]
    pub const fn hop_limit(mut self, hop_limit: u8) -> Self {
        self.ip.hop_limit = hop_limit;
        self
    }

    /// An extension header after those already added.
    #[must_use]
    pub fn ext(mut self, ext: Ext) -> Self {
        self.ip.exts.push(ext);
        self
    }

    /// Extension headers, in order, after those already added.
    #[must_use]
    pub fn exts(mut self, exts: impl IntoIterator<Item = Ext>) -> Self {
        self.ip.exts.extend(exts);
        self
    }

    /// A payload length that is not the true one.
    #[must_use]
    pub const fn payload_len(mut self, len: u16) -> Self {
        self.ip.payload_len = Some(len);
        self
    }

    /// An ICMPv6 message of `icmp_type`, code 0 unless set.
    #[must_use]
    pub fn icmpv6(self, icmp_type: u8) -> Icmpv6Builder {
        IcmpMessage::new(self, icmp_type)
    }
}

impl Icmpv6Builder {
    /// The MTU of a packet-too-big message.
    #[must_use]
    pub fn mtu(self, mtu: u32) -> Self {
        self.rest(mtu.to_be_bytes())
    }

    /// The frame, the checksum over the pseudo-header included.
    #[must_use]
    pub fn build(self) -> Vec<u8> {
        let Ipv6Builder { eth, ip } = self.ip;
        let payload = icmpv6(
            &ip.src,
            &ip.dst,
            self.icmp_type,
            self.code,
            self.rest,
            &self.data,
        );
        eth.frame(super::ipv6_frame(&Ipv6 { payload, ..ip }))
    }
}

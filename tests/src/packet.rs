//! A small frame builder for tests, able to build the malformed frames the fixtures need.

/// Ethernet destination of test frames: a locally administered unicast address.
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Ethernet source of test frames.
pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// IPv4 "more fragments" flag in the flags/offset word.
pub const MF: u16 = 0x2000;
/// IPv4 "don't fragment" flag.
pub const DF: u16 = 0x4000;

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

/// An ICMP message with a correct checksum: `type`, `code`, four bytes of rest-of-header, data.
#[must_use]
pub fn icmp(icmp_type: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut m = vec![icmp_type, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(data);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An echo request with `data_len` bytes of data.
#[must_use]
pub fn echo_request(data_len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..data_len).map(|i| i as u8).collect();
    icmp(8, 0, [0x12, 0x34, 0, 1], &data)
}

/// An IPv4 header and payload; every field can be set to something wrong.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    pub version: u8,
    /// Header length in 32-bit words; `None` computes it from the options.
    pub ihl: Option<u8>,
    /// Total length; `None` computes it.
    pub tot_len: Option<u16>,
    pub id: u16,
    /// Flags and fragment offset (in 8-byte units), as on the wire.
    pub frag: u16,
    pub ttl: u8,
    pub proto: u8,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub options: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Ipv4 {
    /// A well-formed packet from `src` to `dst` carrying `payload` as `proto`.
    #[must_use]
    pub fn new(src: [u8; 4], dst: [u8; 4], proto: u8, payload: Vec<u8>) -> Self {
        Self {
            version: 4,
            ihl: None,
            tot_len: None,
            id: 0x4242,
            frag: DF,
            ttl: 64,
            proto,
            src,
            dst,
            options: Vec::new(),
            payload,
        }
    }

    /// The packet as bytes, header checksum included.
    #[must_use]
    pub fn bytes(&self) -> Vec<u8> {
        let header_len = 20 + self.options.len();
        let ihl = self.ihl.unwrap_or((header_len / 4) as u8);
        let tot_len = self
            .tot_len
            .unwrap_or((header_len + self.payload.len()) as u16);
        let mut h = vec![(self.version << 4) | (ihl & 0x0f), 0];
        h.extend_from_slice(&tot_len.to_be_bytes());
        h.extend_from_slice(&self.id.to_be_bytes());
        h.extend_from_slice(&self.frag.to_be_bytes());
        h.extend_from_slice(&[self.ttl, self.proto, 0, 0]);
        h.extend_from_slice(&self.src);
        h.extend_from_slice(&self.dst);
        h.extend_from_slice(&self.options);
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(&self.payload);
        h
    }
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

/// An untagged IPv4 frame.
#[must_use]
pub fn ipv4_frame(ip: &Ipv4) -> Vec<u8> {
    ether(ETH_P_IP, &[], &ip.bytes())
}

/// `frame` zero-padded to `len` bytes, as a NIC pads short frames to 60.
#[must_use]
pub fn padded(mut frame: Vec<u8>, len: usize) -> Vec<u8> {
    if frame.len() < len {
        frame.resize(len, 0);
    }
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
}

pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_LLDP: u16 = 0x88CC;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DSTOPTS: u8 = 60;

/// An IPv6 extension header: its kind and its body after the next-header byte (the builder
/// fills in next header; `body[0]` must hold the length field).
#[derive(Clone, Debug)]
pub struct Ext {
    pub kind: u8,
    pub body: Vec<u8>,
}

impl Ext {
    /// A destination-options (or hop-by-hop, with `kind`) header padded to 8 bytes with PadN.
    #[must_use]
    pub fn padn(kind: u8) -> Self {
        Self {
            kind,
            body: vec![0, 1, 4, 0, 0, 0, 0],
        }
    }

    /// A hop-by-hop header with a router alert (MLD) option.
    #[must_use]
    pub fn router_alert() -> Self {
        Self {
            kind: IPPROTO_HOPOPTS,
            body: vec![0, 5, 2, 0, 0, 1, 0],
        }
    }

    /// A fragment header: `offset` in bytes (multiple of 8), `more` fragments follow.
    #[must_use]
    pub fn fragment(offset: u16, more: bool, id: u32) -> Self {
        let offlg = offset | u16::from(more);
        let mut body = vec![0];
        body.extend_from_slice(&offlg.to_be_bytes());
        body.extend_from_slice(&id.to_be_bytes());
        Self {
            kind: IPPROTO_FRAGMENT,
            body,
        }
    }
}

/// An IPv6 packet; every field can be set to something wrong.
#[derive(Clone, Debug)]
pub struct Ipv6 {
    pub version: u8,
    /// Payload length; `None` computes it.
    pub payload_len: Option<u16>,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub exts: Vec<Ext>,
    /// The upper-layer protocol after the extension headers.
    pub proto: u8,
    pub payload: Vec<u8>,
}

impl Ipv6 {
    /// A well-formed packet from `src` to `dst` carrying `payload` as `proto`.
    #[must_use]
    pub fn new(src: [u8; 16], dst: [u8; 16], proto: u8, payload: Vec<u8>) -> Self {
        Self {
            version: 6,
            payload_len: None,
            hop_limit: 64,
            src,
            dst,
            exts: Vec::new(),
            proto,
            payload,
        }
    }

    /// The packet as bytes.
    #[must_use]
    pub fn bytes(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for (i, ext) in self.exts.iter().enumerate() {
            body.push(self.exts.get(i + 1).map_or(self.proto, |e| e.kind));
            body.extend_from_slice(&ext.body);
        }
        body.extend_from_slice(&self.payload);
        let first = self.exts.first().map_or(self.proto, |e| e.kind);
        let mut p = vec![self.version << 4, 0, 0, 0];
        p.extend_from_slice(&self.payload_len.unwrap_or(body.len() as u16).to_be_bytes());
        p.extend_from_slice(&[first, self.hop_limit]);
        p.extend_from_slice(&self.src);
        p.extend_from_slice(&self.dst);
        p.extend_from_slice(&body);
        p
    }
}

/// An ICMPv6 message from `src` to `dst` with a correct checksum (RFC 4443 2.3).
#[must_use]
pub fn icmpv6(
    src: &[u8; 16],
    dst: &[u8; 16],
    icmp_type: u8,
    code: u8,
    rest: [u8; 4],
    data: &[u8],
) -> Vec<u8> {
    let mut m = vec![icmp_type, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(data);
    let mut pseudo = Vec::with_capacity(40 + m.len());
    pseudo.extend_from_slice(src);
    pseudo.extend_from_slice(dst);
    pseudo.extend_from_slice(&(m.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_ICMPV6]);
    pseudo.extend_from_slice(&m);
    let c = checksum(&pseudo);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An untagged IPv6 frame.
#[must_use]
pub fn ipv6_frame(ip: &Ipv6) -> Vec<u8> {
    ether(ETH_P_IPV6, &[], &ip.bytes())
}

/// `frame` with its Ethernet destination replaced.
#[must_use]
pub fn to_mac(mut frame: Vec<u8>, dst: [u8; 6]) -> Vec<u8> {
    frame[..6].copy_from_slice(&dst);
    frame
}

/// The Ethernet broadcast address.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

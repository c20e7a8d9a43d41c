//! IPv6, its extension headers, and ICMPv6.

use super::{ETH_P_IPV6, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS, IPPROTO_ICMPV6, checksum, ether};

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

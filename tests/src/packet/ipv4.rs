//! IPv4 and ICMP.

use super::{DF, ETH_P_IP, checksum, ether};

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
    icmp(super::icmp_type::ECHO_REQUEST, 0, [0x12, 0x34, 0, 1], &data)
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

/// An untagged IPv4 frame.
#[must_use]
pub fn ipv4_frame(ip: &Ipv4) -> Vec<u8> {
    ether(ETH_P_IP, &[], &ip.bytes())
}

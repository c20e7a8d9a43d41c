//! The few pcapng blocks a capture needs, written by hand (draft-ietf-opsawg-pcapng): a
//! section header, one Ethernet interface with nanosecond timestamps, and an enhanced packet
//! block per frame with its comment (`opt_comment`), which `tshark -T fields -e frame.comment`
//! and Wireshark show. Host byte order, as the section header's magic tells readers.

use std::io::{self, Write};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const LINKTYPE_ETHERNET: u16 = 1;
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
/// `if_tsresol` of 9: timestamps count nanoseconds.
const NANOSECONDS: u8 = 9;

/// A pcapng stream: the section and interface are written by [`Writer::new`], then one block
/// per [`Writer::packet`].
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    /// Starts a section with one Ethernet interface named `iface`, whose frames are cut at
    /// `snaplen` bytes.
    pub fn new(mut out: W, iface: &str, snaplen: u32) -> io::Result<Self> {
        let mut shb = Vec::new();
        shb.extend_from_slice(&BYTE_ORDER_MAGIC.to_ne_bytes());
        shb.extend_from_slice(&1u16.to_ne_bytes());
        shb.extend_from_slice(&0u16.to_ne_bytes());
        // Section length unknown: the stream may go to a pipe.
        shb.extend_from_slice(&(-1i64).to_ne_bytes());
        end_options(&mut shb);
        block(&mut out, SHB, &shb)?;

        let mut idb = Vec::new();
        idb.extend_from_slice(&LINKTYPE_ETHERNET.to_ne_bytes());
        idb.extend_from_slice(&0u16.to_ne_bytes());
        idb.extend_from_slice(&snaplen.to_ne_bytes());
        option(&mut idb, IF_NAME, iface.as_bytes());
        option(&mut idb, IF_TSRESOL, &[NANOSECONDS]);
        end_options(&mut idb);
        block(&mut out, IDB, &idb)?;
        Ok(Self { out })
    }

    /// Appends one frame: its first bytes `data`, its length on the wire `orig_len`, when it
    /// arrived (ns since the Unix epoch) and its comment.
    pub fn packet(
        &mut self,
        time_ns: u64,
        data: &[u8],
        orig_len: u32,
        comment: &str,
    ) -> io::Result<()> {
        let mut epb = Vec::with_capacity(32 + data.len() + comment.len());
        epb.extend_from_slice(&0u32.to_ne_bytes());
        epb.extend_from_slice(&((time_ns >> 32) as u32).to_ne_bytes());
        epb.extend_from_slice(&(time_ns as u32).to_ne_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_ne_bytes());
        epb.extend_from_slice(&orig_len.max(data.len() as u32).to_ne_bytes());
        epb.extend_from_slice(data);
        pad(&mut epb);
        option(&mut epb, OPT_COMMENT, comment.as_bytes());
        end_options(&mut epb);
        block(&mut self.out, EPB, &epb)
    }

    /// Pushes what is buffered to the output (a pipe reader sees each frame promptly).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes one block: type, total length, `body` (already padded to 4), total length again.
fn block(out: &mut impl Write, kind: u32, body: &[u8]) -> io::Result<()> {
    let total = (12 + body.len()) as u32;
    let mut bytes = Vec::with_capacity(total as usize);
    bytes.extend_from_slice(&kind.to_ne_bytes());
    bytes.extend_from_slice(&total.to_ne_bytes());
    bytes.extend_from_slice(body);
    bytes.extend_from_slice(&total.to_ne_bytes());
    out.write_all(&bytes)
}

fn option(body: &mut Vec<u8>, code: u16, value: &[u8]) {
    body.extend_from_slice(&code.to_ne_bytes());
    body.extend_from_slice(&(value.len() as u16).to_ne_bytes());
    body.extend_from_slice(value);
    pad(body);
}

fn end_options(body: &mut Vec<u8>) {
    body.extend_from_slice(&OPT_END.to_ne_bytes());
    body.extend_from_slice(&0u16.to_ne_bytes());
}

fn pad(body: &mut Vec<u8>) {
    body.resize(body.len().next_multiple_of(4), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    /// Walks the blocks: each starts and ends with the same total length, a multiple of 4.
    fn blocks(bytes: &[u8]) -> Vec<(u32, &[u8])> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let total = u32_at(bytes, at + 4) as usize;
            assert_eq!(total % 4, 0, "block at {at}");
            assert_eq!(
                u32_at(bytes, at + total - 4) as usize,
                total,
                "block at {at}"
            );
            out.push((u32_at(bytes, at), &bytes[at + 8..at + total - 4]));
            at += total;
        }
        out
    }

    #[test]
    fn blocks_are_framed_and_padded() {
        let cases: [(&[u8], &str); 4] = [
            (&[], ""),
            (&[1], "a"),
            (
                &[1, 2, 3, 4],
                "reason=dropped_rate_source source=198.51.100.7/32",
            ),
            (&[9; 61], "abc"),
        ];
        for (data, comment) in cases {
            let mut bytes = Vec::new();
            let mut w = Writer::new(&mut bytes, "veth0", 256).unwrap();
            w.packet(1_700_000_000_123_456_789, data, 1500, comment)
                .unwrap();
            let blocks = blocks(&bytes);
            let kinds: Vec<u32> = blocks.iter().map(|b| b.0).collect();
            assert_eq!(kinds, [SHB, IDB, EPB], "{comment:?}");
            assert_eq!(u32_at(blocks[0].1, 0), BYTE_ORDER_MAGIC);
            let epb = blocks[2].1;
            let ts = (u64::from(u32_at(epb, 4)) << 32) | u64::from(u32_at(epb, 8));
            assert_eq!(ts, 1_700_000_000_123_456_789);
            assert_eq!(u32_at(epb, 12) as usize, data.len());
            assert_eq!(u32_at(epb, 16), 1500);
            assert_eq!(&epb[20..20 + data.len()], data);
            let opts = 20 + data.len().next_multiple_of(4);
            assert_eq!(u16::from_ne_bytes([epb[opts], epb[opts + 1]]), OPT_COMMENT);
            let len = u16::from_ne_bytes([epb[opts + 2], epb[opts + 3]]) as usize;
            assert_eq!(&epb[opts + 4..opts + 4 + len], comment.as_bytes());
        }
    }
}

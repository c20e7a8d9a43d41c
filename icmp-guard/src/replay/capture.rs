//! Reading a capture, one frame at a time: pcap (microsecond or nanosecond) and pcapng, with
//! Ethernet frames or Linux cooked headers (SLL, SLL2) turned into the Ethernet frames the
//! program parses. The file is streamed: memory is the reader's buffer and one frame.

use std::{
    cell::Cell,
    collections::BTreeSet,
    io::{self, Read},
    rc::Rc,
};

use pcap_file::{
    DataLink, PcapError,
    pcap::{PcapReader, RawPcapPacket},
    pcapng::{
        Block, PcapNgReader,
        blocks::{
            enhanced_packet::EnhancedPacketOption,
            interface_description::InterfaceDescriptionOption,
        },
    },
};

/// Link types replay reads, by number (tcpdump.org/linktypes.html).
pub const ETHERNET: u32 = 1;
pub const LINUX_SLL: u32 = 113;
pub const LINUX_SLL2: u32 = 276;

/// The Linux packet type of a frame the capturing host sent (`PACKET_OUTGOING`).
const PACKET_OUTGOING: u16 = 4;

/// What is wrong with a capture, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureError {
    /// The frame (counted from 1) that could not be read; `None` for the file's header.
    pub frame: Option<u64>,
    pub what: String,
    /// Whether the file ends inside this record (a capture cut short: tcpdump killed, a
    /// full disk, a copy of a file still being written); what came before it is whole.
    pub cut: bool,
}

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.frame {
            Some(n) => write!(f, "frame {n}: {}", self.what),
            None => write!(f, "{}", self.what),
        }
    }
}

/// One record of the capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A whole frame as the program would see it, with its time stamp (ns since the epoch).
    Frame {
        number: u64,
        ts_ns: u64,
        frame: Vec<u8>,
    },
    /// A frame the capture kept only `captured` bytes of (a snap length below `original`): it
    /// cannot be judged as it was received.
    Truncated {
        number: u64,
        captured: u32,
        original: u32,
    },
    /// A frame the capturing host sent (a cooked capture's packet type, or a pcapng
    /// direction flag): XDP never sees it.
    Outgoing { number: u64 },
    /// A frame of a pcapng interface whose link type replay does not read (`linktype`), among
    /// interfaces it does: skipped, so the others are still judged.
    OtherLink { number: u64, linktype: u32 },
}

impl Record {
    /// The frame's number in the capture, from 1.
    #[must_use]
    pub const fn number(&self) -> u64 {
        match self {
            Self::Frame { number, .. }
            | Self::Truncated { number, .. }
            | Self::Outgoing { number }
            | Self::OtherLink { number, .. } => *number,
        }
    }
}

/// How the link layer of an interface's frames is turned into Ethernet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Ethernet,
    Sll,
    Sll2,
}

/// Why frames of link type `linktype` are not read, and what to capture instead.
#[must_use]
pub fn unread_link(linktype: u32) -> String {
    Link::of(DataLink::from(linktype)).err().unwrap_or_default()
}

impl Link {
    fn of(linktype: DataLink) -> Result<Self, String> {
        match u32::from(linktype) {
            ETHERNET => Ok(Self::Ethernet),
            LINUX_SLL => Ok(Self::Sll),
            LINUX_SLL2 => Ok(Self::Sll2),
            n => Err(format!(
                "link type {n} ({linktype:?}) is not one replay reads: Ethernet ({ETHERNET}), \
                 Linux cooked SLL ({LINUX_SLL}) or SLL2 ({LINUX_SLL2}); capture on an Ethernet \
                 interface, where `tcpdump -i IFACE -Q in` records what arrives"
            )),
        }
    }
}

/// A pcapng interface: its link and how its time stamps count.
#[derive(Clone, Copy, Debug)]
struct Interface {
    link: Result<Link, u32>,
    /// Time stamp units per second, as a power: (base 10 or 2, exponent).
    resolution: (bool, u8),
    /// `if_tsoffset`: seconds added to every time stamp, signed (pcapng reads it as a
    /// 64-bit integer, which pcap-file hands over unsigned).
    offset_secs: i64,
    /// The most bytes of a frame the file holds (0: no limit): what bounds a simple packet
    /// block's frame, whose data is padded to 4 bytes.
    snaplen: u32,
}

enum Inner<R: Read> {
    Pcap {
        reader: PcapReader<R>,
        link: Link,
        nanos: bool,
    },
    Ng {
        reader: PcapNgReader<R>,
        interfaces: Vec<Interface>,
        last_ts_ns: u64,
    },
}

/// A capture being read.
pub struct Capture<R: Read> {
    inner: Inner<R>,
    number: u64,
    failed: bool,
    /// Where the judged frames arrived: (pcapng interface, SLL2 ifindex), 0 where the file
    /// does not say; at most [`ARRIVED_MAX`] kept.
    arrived: BTreeSet<(u32, u32)>,
    /// Whether the file's end was reached (see [`Tracked`]).
    end: Rc<Cell<bool>>,
}

/// Interfaces of arrival counted: enough to say there were several.
const ARRIVED_MAX: usize = 64;

const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

fn header_error(what: impl std::fmt::Display) -> CaptureError {
    CaptureError {
        frame: None,
        what: format!("{what}"),
        cut: false,
    }
}

/// A file's bytes, its first four (read to tell the format) put back in front.
pub type Stream<R> = io::Chain<io::Cursor<[u8; 4]>, Tracked<R>>;

/// A reader that remembers whether it reached the end of the file: pcap-file says "unexpected
/// end of file" also for a record too long for its buffer (a corrupt length field), which
/// is no file cut short.
pub struct Tracked<R> {
    inner: R,
    end: Rc<Cell<bool>>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.end.set(true);
        }
        Ok(n)
    }
}

impl<R: Read> Capture<Stream<R>> {
    /// Reads the file's header: pcap or pcapng, told by its first four bytes.
    pub fn new(mut reader: R) -> Result<Self, CaptureError> {
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match reader.read(&mut magic[got..]) {
                Ok(0) => {
                    return Err(header_error(format!(
                        "is {got} bytes long: not a capture (a pcap or pcapng file starts with a \
                         header of 24 bytes or more)"
                    )));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(header_error(format!("cannot be read: {e}"))),
            }
        }
        let end = Rc::new(Cell::new(false));
        let stream = io::Cursor::new(magic).chain(Tracked {
            inner: reader,
            end: end.clone(),
        });
        let inner = if PCAP_MAGICS.contains(&magic) {
            let reader = PcapReader::new(stream)
                .map_err(|e| header_error(format!("has a broken pcap header: {}", why(&e))))?;
            let header = reader.header();
            let link = Link::of(header.datalink).map_err(header_error)?;
            Inner::Pcap {
                link,
                nanos: header.ts_resolution == pcap_file::TsResolution::NanoSecond,
                reader,
            }
        } else if magic == PCAPNG_MAGIC {
            let reader = PcapNgReader::new(stream).map_err(|e| {
                header_error(format!("has a broken pcapng section header: {}", why(&e)))
            })?;
            Inner::Ng {
                reader,
                interfaces: Vec::new(),
                last_ts_ns: 0,
            }
        } else {
            return Err(header_error(format!(
                "is not a pcap or pcapng capture (it starts with {magic:02x?}); write one with \
                 `tcpdump -w FILE` or `dumpcap -w FILE`"
            )));
        };
        Ok(Self {
            inner,
            number: 0,
            failed: false,
            arrived: BTreeSet::new(),
            end,
        })
    }
}

impl<R: Read> Capture<R> {
    /// The error reading record `number`: a file cut short inside it, or, when the file goes
    /// on, a length no reader would take.
    fn read_error(&self, number: u64, e: &PcapError) -> CaptureError {
        let cut = ends_inside(e) && self.end.get();
        let what = if ends_inside(e) && !cut {
            "says it is longer than replay reads (8 MB): a corrupt length field".to_owned()
        } else {
            why(e)
        };
        CaptureError {
            frame: Some(number),
            what,
            cut,
        }
    }
}

/// Whether a reader's error is the file ending inside a record.
fn ends_inside(e: &PcapError) -> bool {
    match e {
        PcapError::IoError(io) => io.kind() == io::ErrorKind::UnexpectedEof,
        PcapError::IncompleteBuffer => true,
        _ => false,
    }
}

/// A reader's error in words.
fn why(e: &PcapError) -> String {
    match e {
        PcapError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            "the file ends inside it (a truncated file, or a corrupt length field)".to_owned()
        }
        PcapError::IncompleteBuffer => "the file ends inside it (a truncated file)".to_owned(),
        PcapError::IoError(io) => format!("cannot be read: {io}"),
        other => other.to_string(),
    }
}

impl<R: Read> Iterator for Capture<R> {
    type Item = Result<Record, CaptureError>;

    /// The next record; after an error, nothing more.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.read_next();
        if let Some(Err(_)) = &next {
            self.failed = true;
        }
        next
    }
}

impl<R: Read> Capture<R> {
    #[expect(
        clippy::too_many_lines,
        reason = "one match over the two formats reads best whole: each arm is one record"
    )]
    fn read_next(&mut self) -> Option<Result<Record, CaptureError>> {
        let number = self.number + 1;
        let fail = |what: String| {
            Some(Err(CaptureError {
                frame: Some(number),
                what,
                cut: false,
            }))
        };
        match &mut self.inner {
            Inner::Pcap {
                reader,
                link,
                nanos,
            } => {
                let packet = match reader.next_raw_packet()? {
                    Ok(p) => p,
                    Err(e) => return Some(Err(self.read_error(number, &e))),
                };
                self.number = number;
                let RawPcapPacket {
                    ts_sec,
                    ts_frac,
                    incl_len,
                    orig_len,
                    data,
                } = packet;
                let (limit, scale) = if *nanos {
                    (1_000_000_000, 1)
                } else {
                    (1_000_000, 1000)
                };
                if ts_frac >= limit {
                    return fail(format!(
                        "its time stamp's fraction {ts_frac} is not below {limit}: a corrupt record"
                    ));
                }
                let ts_ns = u64::from(ts_sec) * 1_000_000_000 + u64::from(ts_frac) * scale;
                let read = record(number, ts_ns, *link, incl_len, orig_len, &data, false);
                note_arrival(&mut self.arrived, &read, 0, *link, &data);
                Some(read)
            }
            Inner::Ng {
                reader,
                interfaces,
                last_ts_ns,
            } => loop {
                // Of the section this block is in (a section header read here changes it for
                // the blocks after it).
                let little = reader.section().endianness == pcap_file::Endianness::Little;
                let block = match reader.next_block()? {
                    Ok(b) => b,
                    Err(e) => return Some(Err(self.read_error(number, &e))),
                };
                let (id, units, original, data, outgoing) = match block {
                    Block::SectionHeader(_) => {
                        interfaces.clear();
                        continue;
                    }
                    Block::InterfaceDescription(idb) => {
                        interfaces.push(interface(&idb));
                        continue;
                    }
                    Block::EnhancedPacket(epb) => {
                        let outgoing = epb
                            .options
                            .iter()
                            .any(|o| matches!(o, EnhancedPacketOption::Flags(f) if f & 3 == 2));
                        let units = u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX);
                        (
                            epb.interface_id,
                            Some(units),
                            epb.original_len,
                            epb.data,
                            outgoing,
                        )
                    }
                    Block::SimplePacket(spb) => (0, None, spb.original_len, spb.data, false),
                    // The obsolete packet block's time stamp is two 32-bit words, high first,
                    // each in the section's byte order; pcap-file reads them as one u64, which
                    // swaps them in a little-endian section.
                    Block::Packet(pb) => (
                        u32::from(pb.interface_id),
                        Some(if little {
                            pb.timestamp.rotate_left(32)
                        } else {
                            pb.timestamp
                        }),
                        pb.original_len,
                        pb.data,
                        false,
                    ),
                    _ => continue,
                };
                self.number = number;
                let Some(iface) = interfaces.get(id as usize).copied() else {
                    return fail(format!(
                        "names interface {id}, but the section describes {} (a corrupt capture)",
                        interfaces.len()
                    ));
                };
                let link = match iface.link {
                    Ok(link) => link,
                    Err(linktype) => {
                        return Some(Ok(Record::OtherLink { number, linktype }));
                    }
                };
                if let Some(units) = units {
                    *last_ts_ns = offset(to_ns(units, iface.resolution), iface.offset_secs);
                }
                let captured = u32::try_from(data.len()).unwrap_or(u32::MAX);
                // A simple packet block holds min(original, snap length) bytes plus padding
                // (and no time stamp: the last one stands).
                let captured = if units.is_none() {
                    let snaplen = if iface.snaplen == 0 {
                        u32::MAX
                    } else {
                        iface.snaplen
                    };
                    captured.min(original).min(snaplen)
                } else {
                    captured
                };
                let data = &data[..captured as usize];
                let read = record(
                    number,
                    *last_ts_ns,
                    link,
                    captured,
                    original,
                    data,
                    outgoing,
                );
                note_arrival(&mut self.arrived, &read, id, link, data);
                return Some(read);
            },
        }
    }
}

fn interface(
    idb: &pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock,
) -> Interface {
    let mut resolution = (true, 6);
    let mut offset_secs = 0;
    for option in &idb.options {
        match option {
            InterfaceDescriptionOption::IfTsResol(r) => {
                resolution = (r & 0x80 == 0, r & 0x7f);
            }
            InterfaceDescriptionOption::IfTsOffset(o) => offset_secs = o.cast_signed(),
            _ => {}
        }
    }
    Interface {
        link: Link::of(idb.linktype).map_err(|_| u32::from(idb.linktype)),
        resolution,
        offset_secs,
        snaplen: idb.snaplen,
    }
}

/// `ns` moved by `offset_secs` (`if_tsoffset`, which may be negative), within 0..=u64::MAX.
fn offset(ns: u64, offset_secs: i64) -> u64 {
    let shift = i128::from(offset_secs) * 1_000_000_000;
    u64::try_from((i128::from(ns) + shift).max(0)).unwrap_or(u64::MAX)
}

/// `units` of 10^-exp (decimal) or 2^-exp seconds, in nanoseconds (saturating).
#[must_use]
pub fn to_ns(units: u64, (decimal, exp): (bool, u8)) -> u64 {
    let wide = u128::from(units);
    let ns = if decimal {
        if exp <= 9 {
            wide.saturating_mul(10u128.pow(u32::from(9 - exp)))
        } else if exp < 38 {
            wide / 10u128.pow(u32::from(exp - 9))
        } else {
            0
        }
    } else if exp < 64 {
        wide.saturating_mul(1_000_000_000) >> exp
    } else {
        0
    };
    u64::try_from(ns).unwrap_or(u64::MAX)
}

impl<R: Read> Capture<R> {
    /// How many interfaces the judged frames arrived on, as far as the file tells (pcapng
    /// interfaces, and the ifindex of Linux cooked v2 frames, as `tcpdump -i any` writes):
    /// more than one, and replay judges them all as if they had arrived on one.
    #[must_use]
    pub fn interfaces(&self) -> usize {
        self.arrived.len()
    }
}

/// Records where a judged frame (`read`) arrived: pcapng interface `id`, and the ifindex a
/// Linux cooked v2 header gives.
fn note_arrival(
    arrived: &mut BTreeSet<(u32, u32)>,
    read: &Result<Record, CaptureError>,
    id: u32,
    link: Link,
    data: &[u8],
) {
    if !matches!(read, Ok(Record::Frame { .. })) || arrived.len() >= ARRIVED_MAX {
        return;
    }
    let ifindex = match (link, data.get(4..8)) {
        (Link::Sll2, Some(bytes)) => u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        _ => 0,
    };
    arrived.insert((id, ifindex));
}

/// A packet record as replay sees it.
fn record(
    number: u64,
    ts_ns: u64,
    link: Link,
    captured: u32,
    original: u32,
    data: &[u8],
    outgoing: bool,
) -> Result<Record, CaptureError> {
    if captured > original {
        return Err(CaptureError {
            frame: Some(number),
            what: format!(
                "holds {captured} bytes of a frame said to be {original} bytes long: a corrupt record"
            ),
            cut: false,
        });
    }
    // Before the truncation: a cut-off frame the host sent is skipped as sent, not counted
    // as a truncated one to judge (XDP would never have seen it whole or not).
    if outgoing || packet_type(link, data) == Some(PACKET_OUTGOING) {
        return Ok(Record::Outgoing { number });
    }
    if captured < original {
        return Ok(Record::Truncated {
            number,
            captured,
            original,
        });
    }
    let frame = match link {
        Link::Ethernet => data.to_vec(),
        Link::Sll | Link::Sll2 => match cooked(link, data) {
            Cooked::Frame(frame) => frame,
            Cooked::Outgoing => return Ok(Record::Outgoing { number }),
            Cooked::Short(needed) => {
                return Err(CaptureError {
                    frame: Some(number),
                    what: format!(
                        "is {} bytes, shorter than the {needed}-byte Linux cooked header: a corrupt record",
                        data.len()
                    ),
                    cut: false,
                });
            }
        },
    };
    Ok(Record::Frame {
        number,
        ts_ns,
        frame,
    })
}

/// The Linux packet type of a cooked frame (SLL: bytes 0-1, SLL2: byte 10), when the bytes
/// kept hold it; `None` for Ethernet.
fn packet_type(link: Link, data: &[u8]) -> Option<u16> {
    match link {
        Link::Ethernet => None,
        Link::Sll => data.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])),
        Link::Sll2 => data.get(10).map(|&b| u16::from(b)),
    }
}

enum Cooked {
    Frame(Vec<u8>),
    Outgoing,
    Short(usize),
}

/// Destination addresses for a cooked frame, by Linux packet type: to this host, broadcast,
/// multicast, another host. Only whether it is a group address matters to the program.
const UNICAST_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const BROADCAST_DST: [u8; 6] = [0xff; 6];
const MULTICAST_DST: [u8; 6] = [0x01, 0x00, 0x5e, 0, 0, 0x01];

/// An Ethernet frame made from a Linux cooked one: the destination from the packet type, the
/// source from the link-layer address (when it is 6 bytes), the ethertype from the protocol.
fn cooked(link: Link, data: &[u8]) -> Cooked {
    // SLL: type(2) arphrd(2) addr_len(2) addr(8) protocol(2).
    // SLL2: protocol(2) reserved(2) ifindex(4) arphrd(2) type(1) addr_len(1) addr(8).
    let (header, kind, addr_len, addr, protocol) = match link {
        Link::Sll if data.len() >= 16 => (
            16,
            u16::from_be_bytes([data[0], data[1]]),
            u16::from_be_bytes([data[4], data[5]]),
            &data[6..14],
            [data[14], data[15]],
        ),
        Link::Sll2 if data.len() >= 20 => (
            20,
            u16::from(data[10]),
            u16::from(data[11]),
            &data[12..20],
            [data[0], data[1]],
        ),
        Link::Sll => return Cooked::Short(16),
        _ => return Cooked::Short(20),
    };
    let dst = match kind {
        PACKET_OUTGOING => return Cooked::Outgoing,
        1 => BROADCAST_DST,
        2 => MULTICAST_DST,
        _ => UNICAST_DST,
    };
    let mut frame = Vec::with_capacity(14 + data.len() - header);
    frame.extend_from_slice(&dst);
    if addr_len == 6 {
        frame.extend_from_slice(&addr[..6]);
    } else {
        frame.extend_from_slice(&[0; 6]);
    }
    frame.extend_from_slice(&protocol);
    frame.extend_from_slice(&data[header..]);
    Cooked::Frame(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pcapng of `endianness` with one interface (snap length 62, microseconds) and
    /// `blocks`.
    fn pcapng(endianness: pcap_file::Endianness, blocks: &[Block]) -> Vec<u8> {
        use pcap_file::pcapng::{
            PcapNgWriter, blocks::interface_description::InterfaceDescriptionBlock,
        };
        let mut writer = PcapNgWriter::with_endianness(Vec::new(), endianness).unwrap();
        writer
            .write_block(&Block::InterfaceDescription(InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen: 62,
                options: vec![],
            }))
            .unwrap();
        for block in blocks {
            writer.write_block(block).unwrap();
        }
        writer.into_inner()
    }

    #[test]
    fn simple_and_obsolete_packet_blocks_are_read_as_the_format_says() {
        use pcap_file::pcapng::blocks::{packet::PacketBlock, simple_packet::SimplePacketBlock};
        use std::borrow::Cow;
        let frame = [0x5au8; 64];
        // pcap-file writes the u64 1 + 2 << 32 as the words high 1, low 2 in a little-endian
        // section, and as high 2, low 1 in a big-endian one.
        for (endianness, micros) in [
            (pcap_file::Endianness::Little, (1u64 << 32) + 2),
            (pcap_file::Endianness::Big, (2u64 << 32) + 1),
        ] {
            let bytes = pcapng(
                endianness,
                &[
                    Block::Packet(PacketBlock {
                        interface_id: 0,
                        drop_count: 0,
                        timestamp: 1 + (2 << 32),
                        captured_len: 62,
                        original_len: 62,
                        data: Cow::Borrowed(&frame[..62]),
                        options: vec![],
                    }),
                    // 62 bytes kept of a 64-byte frame, padded to 64 in the file.
                    Block::SimplePacket(SimplePacketBlock {
                        original_len: 64,
                        data: Cow::Borrowed(&frame[..62]),
                    }),
                ],
            );
            let records: Vec<Record> = Capture::new(bytes.as_slice())
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                matches!(&records[0], Record::Frame { ts_ns, .. } if *ts_ns == micros * 1000),
                "{endianness:?}: {records:?}"
            );
            assert!(
                matches!(
                    records[1],
                    Record::Truncated {
                        captured: 62,
                        original: 64,
                        ..
                    }
                ),
                "the padding is no frame byte: {records:?}"
            );
        }
    }

    /// Linux cooked v2 frames from two ifindexes (`tcpdump -i any`): two interfaces of
    /// arrival; from one: one.
    #[test]
    fn the_interfaces_of_arrival_are_counted() {
        use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
        let sll2 = |ifindex: u32| {
            let mut f = vec![0x08, 0x00, 0, 0];
            f.extend_from_slice(&ifindex.to_be_bytes());
            f.extend_from_slice(&[0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            f.extend_from_slice(&[0x45; 28]);
            f
        };
        for (ifindexes, interfaces) in [(&[3, 3][..], 1), (&[3, 7, 3][..], 2)] {
            let header = PcapHeader {
                datalink: DataLink::LINUX_SLL2,
                ..PcapHeader::default()
            };
            let mut writer = PcapWriter::with_header(Vec::new(), header).unwrap();
            for &ifindex in ifindexes {
                let data = sll2(ifindex);
                let packet = PcapPacket::new(std::time::Duration::ZERO, 48, &data);
                writer.write_packet(&packet).unwrap();
            }
            let bytes = writer.into_writer();
            let mut capture = Capture::new(bytes.as_slice()).unwrap();
            let frames = capture
                .by_ref()
                .filter(|r| matches!(r, Ok(Record::Frame { .. })));
            assert_eq!(frames.count(), ifindexes.len(), "{ifindexes:?}");
            assert_eq!(capture.interfaces(), interfaces, "{ifindexes:?}");
        }
    }

    #[test]
    fn a_time_stamp_offset_may_be_negative() {
        const S: u64 = 1_000_000_000;
        // (time stamp, if_tsoffset as the file holds it, the time)
        for (ns, offset_secs, want) in [
            (5 * S, 0, 5 * S),
            (5 * S, 2, 7 * S),
            (5 * S, -2, 3 * S),
            (5 * S, -7, 0),
            (u64::MAX - 1, 5, u64::MAX),
            (5 * S, i64::MIN, 0),
        ] {
            assert_eq!(offset(ns, offset_secs), want, "{ns} {offset_secs}");
        }
        // The option's unsigned bits, read back signed.
        assert_eq!((-2i64).cast_unsigned().cast_signed(), -2);
    }

    /// (units, resolution, nanoseconds).
    #[test]
    fn time_stamps_convert_from_every_resolution() {
        for (units, resolution, ns) in [
            (1, (true, 6), 1000),
            (1, (true, 9), 1),
            (1_000, (true, 12), 1),
            (5, (true, 0), 5_000_000_000),
            (1, (false, 1), 500_000_000),
            (1 << 30, (false, 30), 1_000_000_000),
            (u64::MAX, (true, 0), u64::MAX),
            (7, (true, 100), 0),
            (7, (false, 127), 0),
        ] {
            assert_eq!(to_ns(units, resolution), ns, "{units} {resolution:?}");
        }
    }

    /// (link, cooked bytes, the Ethernet frame or None for an outgoing frame).
    #[test]
    fn cooked_headers_become_ethernet() {
        let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        let payload = [0x45, 0, 0, 20];
        let sll = |kind: u8, addr_len: u8| {
            let mut d = vec![0, kind, 0, 1, 0, addr_len];
            d.extend_from_slice(&mac);
            d.extend_from_slice(&[0, 0, 0x08, 0x00]);
            d.extend_from_slice(&payload);
            d
        };
        let sll2 = |kind: u8| {
            let mut d = vec![0x86, 0xdd, 0, 0, 0, 0, 0, 3, 0, 1, kind, 6];
            d.extend_from_slice(&mac);
            d.extend_from_slice(&[0, 0]);
            d.extend_from_slice(&payload);
            d
        };
        let eth = |dst: [u8; 6], src: [u8; 6], ty: [u8; 2]| {
            let mut f = dst.to_vec();
            f.extend_from_slice(&src);
            f.extend_from_slice(&ty);
            f.extend_from_slice(&payload);
            Some(f)
        };
        for (link, data, wanted) in [
            (Link::Sll, sll(0, 6), eth(UNICAST_DST, mac, [8, 0])),
            (Link::Sll, sll(1, 6), eth(BROADCAST_DST, mac, [8, 0])),
            (Link::Sll, sll(2, 6), eth(MULTICAST_DST, mac, [8, 0])),
            (Link::Sll, sll(3, 0), eth(UNICAST_DST, [0; 6], [8, 0])),
            (Link::Sll, sll(4, 6), None),
            (Link::Sll2, sll2(0), eth(UNICAST_DST, mac, [0x86, 0xdd])),
            (Link::Sll2, sll2(1), eth(BROADCAST_DST, mac, [0x86, 0xdd])),
            (Link::Sll2, sll2(4), None),
        ] {
            match (cooked(link, &data), wanted) {
                (Cooked::Frame(got), Some(wanted)) => assert_eq!(got, wanted, "{link:?} {data:?}"),
                (Cooked::Outgoing, None) => {}
                _ => panic!("{link:?} {data:?}"),
            }
        }
        assert!(matches!(cooked(Link::Sll, &[0; 15]), Cooked::Short(16)));
        assert!(matches!(cooked(Link::Sll2, &[0; 19]), Cooked::Short(20)));
    }

    #[test]
    fn link_types_outside_the_three_are_named() {
        for (n, ok) in [
            (1, true),
            (113, true),
            (276, true),
            (101, false),
            (105, false),
        ] {
            let got = Link::of(DataLink::from(n));
            assert_eq!(got.is_ok(), ok, "{n}");
            if let Err(why) = got {
                assert!(why.contains(&format!("link type {n}")), "{why}");
            }
        }
    }

    /// (link, cooked packet type, bytes kept of the 56, what the record is): a frame the
    /// capturing host sent is skipped as sent even when the snap length cut it; one cut
    /// before its packet type is truncated.
    #[test]
    fn outgoing_frames_are_skipped_before_truncation_is_counted() {
        let cooked_frame = |link: Link, kind: u8| {
            let mut d = match link {
                Link::Sll => vec![0, kind, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00],
                _ => vec![
                    0x08, 0, 0, 0, 0, 0, 0, 3, 0, 1, kind, 6, 2, 0, 0, 0, 0, 1, 0, 0,
                ],
            };
            d.resize(56, 0x45);
            d
        };
        let kind = |r: Result<Record, CaptureError>| match r {
            Ok(Record::Frame { .. }) => "frame",
            Ok(Record::Truncated { .. }) => "truncated",
            Ok(Record::Outgoing { .. }) => "outgoing",
            other => panic!("{other:?}"),
        };
        for (link, packet_type, kept, wanted) in [
            (Link::Sll, 4, 30, "outgoing"),
            (Link::Sll2, 4, 30, "outgoing"),
            (Link::Sll, 4, 56, "outgoing"),
            (Link::Sll2, 4, 56, "outgoing"),
            (Link::Sll, 0, 30, "truncated"),
            (Link::Sll2, 0, 30, "truncated"),
            (Link::Sll, 0, 56, "frame"),
            (Link::Sll, 4, 1, "truncated"),
            (Link::Sll2, 4, 10, "truncated"),
            (Link::Ethernet, 4, 30, "truncated"),
        ] {
            let data = cooked_frame(link, packet_type);
            let kept_bytes = &data[..kept];
            let got = record(1, 0, link, kept as u32, 56, kept_bytes, false);
            assert_eq!(
                kind(got),
                wanted,
                "{link:?} type {packet_type}, {kept} bytes kept"
            );
        }
    }

    /// A file header replay accepts: pcap (microseconds little-endian, nanoseconds
    /// big-endian) with link type 1, or a pcapng section header and an Ethernet interface
    /// (either byte order).
    fn valid_head(kind: usize) -> Vec<u8> {
        let pcap = |magic: u32, big: bool| {
            let mut h = word32(magic, big).to_vec();
            h.extend(word16(2, big));
            h.extend(word16(4, big));
            h.extend(word32(0, big));
            h.extend(word32(0, big));
            h.extend(word32(262_144, big));
            h.extend(word32(ETHERNET, big));
            h
        };
        let pcapng = |big: bool| {
            let mut h = PCAPNG_MAGIC.to_vec();
            h.extend(word32(28, big));
            h.extend(word32(0x1a2b_3c4d, big));
            h.extend(word16(1, big));
            h.extend(word16(0, big));
            h.extend((-1i64).to_le_bytes());
            h.extend(word32(28, big));
            h.extend(word32(1, big));
            h.extend(word32(20, big));
            h.extend(word16(1, big));
            h.extend(word16(0, big));
            h.extend(word32(0, big));
            h.extend(word32(20, big));
            h
        };
        match kind {
            0 => pcap(0xa1b2_c3d4, false),
            1 => pcap(0xa1b2_3c4d, true),
            2 => pcapng(false),
            _ => pcapng(true),
        }
    }

    /// `n` in big- or little-endian order.
    fn word16(n: u16, big: bool) -> [u8; 2] {
        if big {
            n.to_be_bytes()
        } else {
            n.to_le_bytes()
        }
    }

    /// `n` in big- or little-endian order.
    fn word32(n: u32, big: bool) -> [u8; 4] {
        if big {
            n.to_be_bytes()
        } else {
            n.to_le_bytes()
        }
    }

    /// What follows a valid head: records (pcap) or blocks (pcapng) whose lengths are mostly
    /// right and whose contents are random, some lengths and trailers wrong, and the file cut
    /// anywhere in the last one.
    fn random_body(next: &mut impl FnMut() -> u64, kind: usize) -> Vec<u8> {
        let big = kind % 2 == 1;
        let w32 = |n: u32| word32(n, big);
        let mut body = Vec::new();
        for _ in 0..next() % 8 {
            let len = (next() % 120) as u32;
            let wrong = next().is_multiple_of(8);
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if kind < 2 {
                body.extend(w32(next() as u32));
                // A valid fraction mostly: below 10^6 (microseconds) or 10^9.
                body.extend(w32((next() % 1_100_000) as u32));
                body.extend(w32(if wrong { next() as u32 } else { len }));
                body.extend(w32(len + (next() % 3) as u32));
                body.extend(&data);
            } else {
                // Section header, interface, packet, simple packet, enhanced packet, other.
                let types = [0x0a0d_0d0a, 1, 2, 3, 6, 6, 6, next() as u32];
                let kind = types[(next() % 8) as usize];
                let mut block = Vec::new();
                if kind == 6 && !wrong {
                    // An enhanced packet block of interface 0 whose lengths hold, random
                    // bytes for its frame and options.
                    block.extend(w32(0));
                    block.extend(w32(next() as u32));
                    block.extend(w32(next() as u32));
                    block.extend(w32(len));
                    block.extend(w32(len + (next() % 3) as u32));
                }
                block.extend(&data);
                block.resize(block.len().next_multiple_of(4), 0);
                let total = if wrong {
                    next() as u32 % 256
                } else {
                    12 + block.len() as u32
                };
                body.extend(w32(kind));
                body.extend(w32(total));
                body.extend(&block);
                body.extend(w32(total));
            }
        }
        let cut = (next() % 16) as usize;
        body.truncate(body.len().saturating_sub(cut));
        body
    }

    /// Random records behind valid file headers: every header accepted, records and blocks
    /// read or refused, never a panic. (Behind a bare magic number too, for the headers.)
    #[test]
    fn random_records_are_read_or_refused_without_panicking() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut read = [0u64; 4];
        // Bounded: each reader allocates its buffer, so 1,000 files of each take ~2 s.
        for i in 0..4_000 {
            let kind = i % 4;
            let mut bytes = valid_head(kind);
            bytes.extend(random_body(&mut next, kind));
            let capture = Capture::new(bytes.as_slice())
                .unwrap_or_else(|e| panic!("a valid head refused: {e}: {bytes:02x?}"));
            read[kind] += capture.take(1000).map_while(Result::ok).count() as u64;
        }
        // Records were read past the header, in every format.
        assert!(read.iter().all(|&n| n > 200), "records read: {read:?}");
        let magics: [&[u8]; 3] = [&[0xa1, 0xb2, 0x3c, 0x4d], &PCAPNG_MAGIC, &[]];
        for i in 0..600 {
            let mut bytes = magics[i % magics.len()].to_vec();
            bytes.extend((0..next() % 200).map(|_| next() as u8));
            if let Ok(capture) = Capture::new(bytes.as_slice()) {
                for _ in capture.take(1000) {}
            }
        }
    }
}

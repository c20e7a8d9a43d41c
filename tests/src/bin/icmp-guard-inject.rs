//! Sends crafted frames out of an interface over `AF_PACKET`: floods, ping-of-death fragment
//! trains, neighbour solicitations, packet-too-big messages and recorded fixture frames, none
//! of which `ping` can make. Bounded by `--count` (or the file); prints a JSON report.
//!
//! Run it inside a lab namespace (`ip netns exec`), towards the lab's own hosts only.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use clap::{Parser, ValueEnum};
use icmp_guard_tests::{
    lab::{monotonic_ns, pin_thread_to},
    packet::{
        ETH_P_8021Q, IPPROTO_ICMP, Ipv4, MF, echo_request, echo6_from, ipv4_frame,
        neighbour_solicitation, packet_too_big, retag,
    },
    recording,
};

#[derive(Parser)]
struct Args {
    /// Interface to send on
    #[arg(long)]
    iface: String,
    /// Destination MAC (the guarded interface)
    #[arg(long)]
    dst_mac: String,
    /// What to send
    #[arg(long, value_enum, default_value_t = Kind::Echo)]
    kind: Kind,
    /// Source address (the first of --sources consecutive ones)
    #[arg(long, default_value = "198.51.100.2")]
    src: Ipv4Addr,
    /// Destination address
    #[arg(long, default_value = "198.51.100.1")]
    dst: Ipv4Addr,
    /// IPv6 source address (the first of --sources consecutive ones), for echo6 and ns
    #[arg(long, default_value = "2001:db8::2")]
    src6: Ipv6Addr,
    /// Tag every frame with this 802.1Q VLAN id
    #[arg(long)]
    vlan: Option<u16>,
    /// Pin the sender to this CPU and send on the transmit queue of its number (modulo the
    /// queues): a veth hands the frames to its peer's receive queue of that number, whose
    /// NAPI runs on this CPU
    #[arg(long)]
    cpu: Option<usize>,
    /// Pace the frames at this many per second (default: as fast as possible)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pps: Option<u32>,
    /// Start sending at this time of `CLOCK_MONOTONIC`, in ns (at once if it has passed): how
    /// senders started one after the other send together
    #[arg(long)]
    start_at: Option<u64>,
    /// Frames recorded by the tests (kind `recorded`)
    #[arg(long)]
    frames: Option<PathBuf>,
    /// Frames to send (echo)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    count: u32,
    /// Consecutive source addresses to cycle through (echo)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    sources: u32,
    /// Echo data bytes
    #[arg(long, default_value_t = 56)]
    data: usize,
    /// Data bytes of each ping-of-death fragment but the last two, a multiple of 8 (pod);
    /// 8000 makes a jumbo one
    #[arg(long, default_value_t = 1480, value_parser = fragment_size)]
    piece: usize,
}

/// A fragment size: a multiple of 8 from 8 to 65464, so every offset stays one.
fn fragment_size(text: &str) -> Result<usize, String> {
    let bytes: usize = text.parse().map_err(|e| format!("{e}"))?;
    if bytes == 0 || bytes > 65_464 || !bytes.is_multiple_of(8) {
        return Err("a multiple of 8 from 8 to 65464".into());
    }
    Ok(bytes)
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// Echo requests
    Echo,
    /// A ping of death: an echo fragmented past 65535 bytes, in pieces of --piece bytes
    Pod,
    /// ICMPv6 echo requests
    Echo6,
    /// Neighbour solicitations (hop limit 255)
    Ns,
    /// ICMPv6 packet too big (MTU 1280)
    Ptb,
    /// The frames of --frames, each as often as recorded, in order
    Recorded,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dst_mac = parse_mac(&args.dst_mac)?;
    let src_mac = parse_mac(
        std::fs::read_to_string(format!("/sys/class/net/{}/address", args.iface))
            .with_context(|| format!("reading the MAC of {}", args.iface))?
            .trim(),
    )?;
    let v6_source =
        |i: u32| Ipv6Addr::from(u128::from(args.src6).wrapping_add(u128::from(i))).octets();
    // (frame, times) in sending order.
    let plan: Vec<(Vec<u8>, u32)> = match args.kind {
        Kind::Echo => (0..args.sources)
            .map(|i| {
                let src = Ipv4Addr::from(u32::from(args.src).wrapping_add(i));
                ipv4_frame(&Ipv4::new(
                    src.octets(),
                    args.dst.octets(),
                    IPPROTO_ICMP,
                    echo_request(args.data),
                ))
            })
            .cycle()
            .take(args.count as usize)
            .map(|f| (f, 1))
            .collect(),
        Kind::Echo6 => (0..args.sources)
            .map(|i| echo6_from(v6_source(i)))
            .cycle()
            .take(args.count as usize)
            .map(|f| (f, 1))
            .collect(),
        Kind::Ns => vec![(neighbour_solicitation(v6_source(0), 255), args.count)],
        Kind::Ptb => vec![(packet_too_big(1280), args.count)],
        Kind::Pod => ping_of_death(args.src.octets(), args.dst.octets(), args.piece)
            .into_iter()
            .map(|f| (f, 1))
            .collect(),
        Kind::Recorded => {
            let path = args
                .frames
                .as_ref()
                .context("--kind recorded needs --frames")?;
            recording::read(path)?
        }
    };
    if let Some(cpu) = args.cpu {
        pin_thread_to(cpu)?;
    }
    let socket = PacketSocket::bind(&args.iface)?;
    if args.cpu.is_some() {
        socket.queue_by_cpu()?;
    }
    if let Some(wait) = args.start_at.and_then(|at| at.checked_sub(monotonic_ns())) {
        std::thread::sleep(Duration::from_nanos(wait));
    }
    let started_ns = monotonic_ns();
    let started = Instant::now();
    let mut sent: u64 = 0;
    for (frame, times) in &plan {
        let mut frame = match args.vlan {
            Some(_) => retag(frame, &[ETH_P_8021Q]),
            None => frame.clone(),
        };
        if let Some(id) = args.vlan {
            frame[14..16].copy_from_slice(&id.to_be_bytes());
        }
        // Recorded frames keep their own addresses: the fixtures set them on purpose.
        if !matches!(args.kind, Kind::Recorded) {
            frame[..6].copy_from_slice(&dst_mac);
            frame[6..12].copy_from_slice(&src_mac);
        }
        for _ in 0..*times {
            if let Some(pps) = args.pps {
                // Frame n leaves at n / pps seconds; sleeping only when ahead.
                let due = started + Duration::from_secs_f64(sent as f64 / f64::from(pps));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            socket.send(&frame)?;
            sent += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // When it sent, on the monotonic clock, so that senders run together can be checked to
    // have overlapped.
    let report = serde_json::json!({
        "sent": sent,
        "seconds": seconds,
        "start_at_ns": args.start_at,
        "started_ns": started_ns,
        "ended_ns": monotonic_ns(),
    });
    println!("{report}");
    Ok(())
}

/// Fragments of one echo whose reassembly would reach 65555 bytes: pieces of `piece` bytes up
/// to offset 65464, then a last one there with 71 bytes (with 1480-byte pieces, the classic
/// ping of death; with 8000, a jumbo one).
fn ping_of_death(src: [u8; 4], dst: [u8; 4], piece: usize) -> Vec<Vec<u8>> {
    let echo = echo_request(65_464 + 71 - 8);
    let mut frames = Vec::new();
    let mut offset = 0;
    while offset < 65_464 {
        let end = (offset + piece).min(65_464);
        let mut ip = Ipv4::new(src, dst, IPPROTO_ICMP, echo[offset..end].to_vec());
        ip.id = 0x0bad;
        ip.frag = (offset / 8) as u16 | MF;
        frames.push(ipv4_frame(&ip));
        offset = end;
    }
    let mut last = Ipv4::new(src, dst, IPPROTO_ICMP, echo[65_464..].to_vec());
    last.id = 0x0bad;
    last.frag = (65_464 / 8) as u16;
    frames.push(ipv4_frame(&last));
    frames
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad MAC address {s:?}"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("bad MAC address {s:?}"))
}

/// An `AF_PACKET` raw socket bound to one interface.
struct PacketSocket(std::os::fd::OwnedFd);

impl PacketSocket {
    fn bind(iface: &str) -> Result<Self> {
        use std::os::fd::{AsRawFd as _, FromRawFd as _};
        let name = std::ffi::CString::new(iface)?;
        // SAFETY: valid NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        ensure!(ifindex != 0, "no interface {iface}");
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if fd < 0 {
            bail!("socket(AF_PACKET): {}", std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: all-zero sockaddr_ll is valid; fields set below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = i32::try_from(ifindex)?;
        // SAFETY: addr is a valid sockaddr_ll of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            bail!("bind to {iface}: {}", std::io::Error::last_os_error());
        }
        Ok(Self(fd))
    }

    /// Sends past the qdisc layer, which also picks the transmit queue by the sending CPU
    /// (`PACKET_QDISC_BYPASS`); otherwise a hash of the flow picks it, and every sender of
    /// one flow shares one queue whatever its CPU.
    fn queue_by_cpu(&self) -> Result<()> {
        use std::os::fd::AsRawFd as _;
        let on: libc::c_int = 1;
        // SAFETY: a valid descriptor and an int option of its size.
        let rc = unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&raw const on).cast(),
                size_of::<libc::c_int>() as u32,
            )
        };
        ensure!(
            rc == 0,
            "PACKET_QDISC_BYPASS: {}",
            std::io::Error::last_os_error()
        );
        Ok(())
    }

    fn send(&self, frame: &[u8]) -> Result<()> {
        use std::os::fd::AsRawFd as _;
        for _ in 0..10_000 {
            // SAFETY: frame is a valid buffer of frame.len() bytes.
            let n =
                unsafe { libc::send(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            if n >= 0 {
                return Ok(());
            }
            let err = std::io::Error::last_os_error();
            // The veth pushes back when its peer's ring is full (a busy queue, with the qdisc
            // bypassed); retry.
            if err.raw_os_error() != Some(libc::ENOBUFS) {
                bail!("send: {err}");
            }
            std::thread::yield_now();
        }
        bail!("send: the interface kept refusing frames (ENOBUFS)")
    }
}

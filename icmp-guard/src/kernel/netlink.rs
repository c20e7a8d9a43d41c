//! What the kernel says about an interface, over rtnetlink. One `RTM_GETLINK`, read for its
//! `IFLA_XDP` attributes and its MTU: used to name a foreign program before refusing to
//! replace it, to report the attach mode actually in effect, and to give the MTU when a driver
//! refuses native XDP. And, when a native attach fails, the driver's own words for why: the
//! same request made over `RTM_SETLINK`, whose error carries the driver's extended ack
//! message, which `bpf_link_create` drops.

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

use super::AttachMode;

/// `IFLA_MTU`, `IFLA_XDP` and its nested attributes (linux/if_link.h).
const IFLA_MTU: u16 = 4;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_EXPECTED_FD: u16 = 8;
const NLA_F_NESTED: u16 = 1 << 15;

/// `XDP_FLAGS_*` (linux/if_link.h).
const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1 << 0;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_FLAGS_REPLACE: u32 = 1 << 4;

/// The extended ack's message attribute (`NLMSGERR_ATTR_MSG`, linux/netlink.h).
const NLMSGERR_ATTR_MSG: u16 = 1;

const NLMSG_HDR: usize = 16;
const IFINFOMSG: usize = 16;
/// The XDP program attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpState {
    /// Program id (0 when several modes are attached at once and none is the main one).
    pub program_id: u32,
    /// Native, generic, offload or multiple.
    pub mode: AttachMode,
}

/// What rtnetlink reports about an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// The XDP program attached, if any.
    pub xdp: Option<XdpState>,
    /// The MTU.
    pub mtu: Option<u32>,
}

/// The XDP program on interface `ifindex`, if any.
pub fn xdp_state(ifindex: u32) -> io::Result<Option<XdpState>> {
    link(ifindex).map(|link| link.xdp)
}

/// What rtnetlink reports about interface `ifindex`.
pub fn link(ifindex: u32) -> io::Result<Link> {
    let socket = Socket::open(false)?;
    socket.send(&link_request(ifindex, libc::RTM_GETLINK, 0, &[])?)?;
    parse_reply(&socket.recv()?)
}

/// The driver's own words for refusing `program` in native mode on `ifindex`, if it gives
/// any: the native attach made once more over `RTM_SETLINK`, where the kernel returns the
/// driver's extended ack message (`bpf_link_create` returns only the errno). Call it only
/// after a native attach through `bpf_link_create` failed: the kernel runs the same checks
/// both ways, so this one fails too. Should it succeed anyway, the program it attached is
/// removed again at once (only that program: `XDP_FLAGS_REPLACE` with it as the expected one)
/// and there is nothing to report.
pub fn native_refusal(ifindex: u32, program: BorrowedFd<'_>) -> io::Result<Option<String>> {
    let fd = program.as_raw_fd();
    let socket = Socket::open(true)?;
    let attach = xdp_attrs(&[
        (IFLA_XDP_FD, fd),
        (
            IFLA_XDP_FLAGS,
            (XDP_FLAGS_DRV_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST).cast_signed(),
        ),
    ]);
    let ack = libc::NLM_F_ACK as u16;
    socket.send(&link_request(ifindex, libc::RTM_SETLINK, ack, &attach)?)?;
    match parse_ack(&socket.recv()?)? {
        Ack::Refused { message, .. } => Ok(message),
        Ack::Done => {
            log::warn!(
                "native XDP refused through bpf_link but accepted through rtnetlink on ifindex {ifindex}; removing it again"
            );
            let detach = xdp_attrs(&[
                (IFLA_XDP_FD, -1),
                (
                    IFLA_XDP_FLAGS,
                    (XDP_FLAGS_DRV_MODE | XDP_FLAGS_REPLACE).cast_signed(),
                ),
                (IFLA_XDP_EXPECTED_FD, fd),
            ]);
            socket.send(&link_request(ifindex, libc::RTM_SETLINK, ack, &detach)?)?;
            match parse_ack(&socket.recv()?)? {
                Ack::Done => Ok(None),
                Ack::Refused { errno, .. } => Err(io::Error::from_raw_os_error(errno)),
            }
        }
    }
}

/// A route netlink socket; with `ext_ack`, errors carry the kernel's message and not the
/// request they answer.
struct Socket(OwnedFd);

impl Socket {
    fn open(ext_ack: bool) -> io::Result<Self> {
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let socket = Self(unsafe { OwnedFd::from_raw_fd(fd) });
        if ext_ack {
            for option in [libc::NETLINK_EXT_ACK, libc::NETLINK_CAP_ACK] {
                let on: libc::c_int = 1;
                // SAFETY: setsockopt with a valid int option value of its size.
                let rc = unsafe {
                    libc::setsockopt(
                        socket.0.as_raw_fd(),
                        libc::SOL_NETLINK,
                        option,
                        (&raw const on).cast(),
                        size_of::<libc::c_int>() as u32,
                    )
                };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(socket)
    }

    /// Sends `msg`, again if a signal interrupted it (`capture` catches SIGINT and SIGTERM
    /// without `SA_RESTART`, and looks at its interface meanwhile).
    fn send(&self, msg: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: msg is a valid, initialised buffer of its length.
            let sent = unsafe { libc::send(self.0.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
            if sent >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// One message, again if a signal interrupted the wait (see [`Self::send`]).
    fn recv(&self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: buf is writable for its length.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                buf.truncate(n.cast_unsigned());
                return Ok(buf);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// An `RTM_*LINK` request for `ifindex` with `flags` besides `NLM_F_REQUEST`, followed by
/// `attrs` (already laid out).
fn link_request(ifindex: u32, kind: u16, flags: u16, attrs: &[u8]) -> io::Result<Vec<u8>> {
    let index = i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let len = NLMSG_HDR + IFINFOMSG + attrs.len();
    let mut msg = Vec::with_capacity(len);
    // struct nlmsghdr: length, type, flags, sequence, port id.
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&(libc::NLM_F_REQUEST as u16 | flags).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    // struct ifinfomsg: family, pad, type, index, flags, change.
    msg.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    msg.extend_from_slice(&index.to_ne_bytes());
    msg.extend_from_slice(&[0; 8]);
    msg.extend_from_slice(attrs);
    Ok(msg)
}

/// A nested `IFLA_XDP` attribute holding the given 32-bit attributes.
fn xdp_attrs(attrs: &[(u16, i32)]) -> Vec<u8> {
    let len = 4 + attrs.len() * 8;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&(IFLA_XDP | NLA_F_NESTED).to_ne_bytes());
    for (kind, value) in attrs {
        out.extend_from_slice(&8u16.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&value.to_ne_bytes());
    }
    out
}

/// The kernel's answer to a request sent with `NLM_F_ACK`.
#[derive(Debug, PartialEq, Eq)]
enum Ack {
    Done,
    Refused {
        errno: i32,
        /// The extended ack's message, when the kernel or the driver set one.
        message: Option<String>,
    },
}

fn parse_ack(msg: &[u8]) -> io::Result<Ack> {
    let short = || io::Error::other("short netlink reply");
    let kind = u16_at(msg, 4).ok_or_else(short)?;
    if kind != libc::NLMSG_ERROR as u16 {
        return Err(io::Error::other(format!(
            "netlink reply of type {kind}, not an ack"
        )));
    }
    let errno = u32_at(msg, NLMSG_HDR).ok_or_else(short)?.cast_signed();
    if errno == 0 {
        return Ok(Ack::Done);
    }
    // struct nlmsgerr: the error, then the request's header (its body left out with
    // NETLINK_CAP_ACK), then, with NLM_F_ACK_TLVS, the extended ack's attributes.
    let len = u32_at(msg, 0).map_or(0, |l| l as usize).min(msg.len());
    let flags = u16_at(msg, 6).unwrap_or(0);
    let message = if flags & libc::NLM_F_ACK_TLVS as u16 == 0 {
        None
    } else {
        msg.get(NLMSG_HDR + 4 + NLMSG_HDR..len)
            .and_then(|tlvs| attrs(tlvs).find(|(kind, _)| *kind == NLMSGERR_ATTR_MSG))
            .map(|(_, text)| {
                let text = text.split(|&b| b == 0).next().unwrap_or_default();
                String::from_utf8_lossy(text).trim().to_owned()
            })
            .filter(|text| !text.is_empty())
    };
    Ok(Ack::Refused {
        errno: -errno,
        message,
    })
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Walks route attributes: yields (type without flags, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(b, 0)?);
        let kind = u16_at(b, 2)? & !NLA_F_NESTED;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = b.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((kind, payload))
    })
}

fn parse_reply(msg: &[u8]) -> io::Result<Link> {
    let kind = u16_at(msg, 4).ok_or_else(|| io::Error::other("short netlink reply"))?;
    if kind == libc::NLMSG_ERROR as u16 {
        let errno = u32_at(msg, NLMSG_HDR).map_or(0, |e| -(e.cast_signed()));
        return Err(io::Error::from_raw_os_error(errno));
    }
    let len = u32_at(msg, 0).map_or(0, |l| l as usize).min(msg.len());
    let Some(body) = msg.get(NLMSG_HDR + IFINFOMSG..len) else {
        return Ok(Link::default());
    };
    let mut link = Link::default();
    for (kind, payload) in attrs(body) {
        match kind {
            IFLA_MTU => link.mtu = u32_at(payload, 0),
            IFLA_XDP => link.xdp = xdp_state_of(payload),
            _ => {}
        }
    }
    Ok(link)
}

/// The program and mode of a nested `IFLA_XDP` attribute, if one is attached.
fn xdp_state_of(payload: &[u8]) -> Option<XdpState> {
    let mut attached = 0;
    let mut program_id = 0;
    for (nested, value) in attrs(payload) {
        match nested {
            IFLA_XDP_ATTACHED => attached = value.first().copied().unwrap_or(0),
            IFLA_XDP_PROG_ID => program_id = u32_at(value, 0).unwrap_or(0),
            _ => {}
        }
    }
    AttachMode::from_netlink(attached).map(|mode| XdpState { program_id, mode })
}

/// The name of a loaded program, by id.
#[must_use]
pub fn program_name(id: u32) -> Option<String> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
        .and_then(|p| p.name_as_str().map(str::to_owned))
}

//! What the kernel says is attached to an interface: one `RTM_GETLINK` over rtnetlink, read
//! for its `IFLA_XDP` attributes. Used to name a foreign program before refusing to replace it,
//! and to report the attach mode actually in effect.

use std::{io, mem::size_of};

use super::AttachMode;

/// `IFLA_XDP` and its nested attributes (linux/if_link.h).
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_PROG_ID: u16 = 4;
const NLA_F_NESTED: u16 = 1 << 15;

/// The XDP program attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpState {
    /// Program id (0 when several modes are attached at once and none is the main one).
    pub program_id: u32,
    /// Native, generic, offload or multiple.
    pub mode: AttachMode,
}

#[repr(C)]
struct Request {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
    family: u8,
    pad: u8,
    ifi_type: u16,
    index: i32,
    ifi_flags: u32,
    change: u32,
}

/// The XDP program on interface `ifindex`, if any.
pub fn xdp_state(ifindex: u32) -> io::Result<Option<XdpState>> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

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
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let req = Request {
        len: size_of::<Request>() as u32,
        kind: libc::RTM_GETLINK,
        flags: libc::NLM_F_REQUEST as u16,
        seq: 1,
        pid: 0,
        family: libc::AF_UNSPEC as u8,
        pad: 0,
        ifi_type: 0,
        index: i32::try_from(ifindex).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        ifi_flags: 0,
        change: 0,
    };
    // SAFETY: req is a valid, fully initialised buffer of its size.
    let sent = unsafe {
        libc::send(
            fd.as_raw_fd(),
            (&raw const req).cast(),
            size_of::<Request>(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: buf is writable for its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    parse_reply(&buf[..n.cast_unsigned()])
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

fn parse_reply(msg: &[u8]) -> io::Result<Option<XdpState>> {
    const NLMSG_HDR: usize = 16;
    const IFINFOMSG: usize = 16;
    let kind = u16_at(msg, 4).ok_or_else(|| io::Error::other("short netlink reply"))?;
    if kind == libc::NLMSG_ERROR as u16 {
        let errno = u32_at(msg, NLMSG_HDR).map_or(0, |e| -(e.cast_signed()));
        return Err(io::Error::from_raw_os_error(errno));
    }
    let len = u32_at(msg, 0).map_or(0, |l| l as usize).min(msg.len());
    let Some(body) = msg.get(NLMSG_HDR + IFINFOMSG..len) else {
        return Ok(None);
    };
    for (kind, payload) in attrs(body) {
        if kind != IFLA_XDP {
            continue;
        }
        let mut attached = 0;
        let mut program_id = 0;
        for (nested, value) in attrs(payload) {
            match nested {
                IFLA_XDP_ATTACHED => attached = value.first().copied().unwrap_or(0),
                IFLA_XDP_PROG_ID => program_id = u32_at(value, 0).unwrap_or(0),
                _ => {}
            }
        }
        let Some(mode) = AttachMode::from_netlink(attached) else {
            return Ok(None);
        };
        return Ok(Some(XdpState { program_id, mode }));
    }
    Ok(None)
}

/// The name of a loaded program, by id.
#[must_use]
pub fn program_name(id: u32) -> Option<String> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
        .and_then(|p| p.name_as_str().map(str::to_owned))
}

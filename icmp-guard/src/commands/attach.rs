//! `icmp-guard attach`: load, configure, attach, pin.

use std::{
    ffi::CString,
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use aya::{
    Ebpf,
    programs::{ProgramError, Xdp, XdpMode, links::FdLink},
};
use icmp_guard_common::{Config, config::attach_mode, maps};

use crate::{
    Error, bpffs,
    cli::{AttachArgs, Mode},
    limits, object,
    pins::{self, Pins},
    privilege,
};

pub fn run(bpffs_path: &Path, args: &AttachArgs) -> Result<(), Error> {
    let iface = args.iface.as_str();
    // Validate everything before touching the system.
    let cpus = limits::online_cpus();
    let mut cfg = args.limits.apply(&Config::with_defaults(cpus), cpus)?;
    privilege::require("attach")?;
    let ifindex = ifindex(iface)?;
    if is_loopback(iface) {
        return Err(Error::Loopback {
            iface: iface.to_owned(),
        });
    }
    let pins = Pins::new(bpffs_path, iface);
    if pins.exist() {
        return Err(Error::AlreadyGuarded {
            iface: iface.to_owned(),
            dir: pins.dir,
        });
    }
    bpffs::ensure_mounted(bpffs_path)?;

    cfg.ifindex = ifindex;
    cfg.attached_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut ebpf = Ebpf::load(object::ICMP_GUARD).map_err(|e| Error::Load(Box::new(e)))?;
    // Limits go in before the program can see a packet.
    write_config(&mut ebpf, &cfg)?;
    let (link, mode) = {
        let program: &mut Xdp = ebpf
            .program_mut(maps::PROGRAM)
            .ok_or_else(|| {
                Error::Load(format!("program {} missing from the object", maps::PROGRAM).into())
            })?
            .try_into()
            .map_err(|e: ProgramError| Error::Load(Box::new(e)))?;
        program.load().map_err(|e| Error::Load(Box::new(e)))?;
        let (link_id, mode) = attach(program, iface, args.mode)?;
        let link: FdLink = program
            .take_link(link_id)
            .map_err(|e| Error::Load(Box::new(e)))?
            .try_into()
            .map_err(|e| Error::Load(Box::new(e)))?;
        (link, mode)
    };
    cfg.attach_mode = mode;
    write_config(&mut ebpf, &cfg)?;

    // Pin maps first and the link last: the link's pin is what marks the interface guarded.
    // If anything fails, remove what was pinned; dropping `link` then detaches the program.
    if let Err(err) = pin_all(&ebpf, link, &pins) {
        remove_pins(&pins);
        return Err(err);
    }

    println!(
        "icmp-guard attached to {iface} (ifindex {ifindex}) in {} mode: {}",
        mode_name(mode),
        limits::describe(&cfg)
    );
    println!("pinned under {}", pins.dir.display());
    Ok(())
}

/// Attaches in the requested mode; `auto` tries native first, then generic.
fn attach(
    program: &mut Xdp,
    iface: &str,
    mode: Mode,
) -> Result<(aya::programs::xdp::XdpLinkId, u32), Error> {
    let try_mode = |program: &mut Xdp, xdp_mode: XdpMode, name: &'static str| {
        program
            .attach(iface, xdp_mode)
            .map_err(|source| classify_attach_error(iface, name, source))
    };
    match mode {
        Mode::Native => try_mode(program, XdpMode::Driver, "native")
            .map_err(|e| match e {
                Error::Attach { iface, source, .. } => Error::NativeUnavailable { iface, source },
                other => other,
            })
            .map(|id| (id, attach_mode::NATIVE)),
        Mode::Generic => {
            try_mode(program, XdpMode::Skb, "generic").map(|id| (id, attach_mode::GENERIC))
        }
        Mode::Auto => match try_mode(program, XdpMode::Driver, "native") {
            Ok(id) => Ok((id, attach_mode::NATIVE)),
            Err(Error::Attach { .. }) => {
                log::warn!("native XDP unavailable on {iface}; using generic mode");
                try_mode(program, XdpMode::Skb, "generic").map(|id| (id, attach_mode::GENERIC))
            }
            Err(other) => Err(other),
        },
    }
}

/// Turns the kernel's "busy" into the refusal to clobber another program.
fn classify_attach_error(iface: &str, mode: &'static str, source: ProgramError) -> Error {
    let busy = std::error::Error::source(&source)
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .and_then(std::io::Error::raw_os_error)
        .is_some_and(|errno| errno == libc::EBUSY || errno == libc::EEXIST);
    if busy {
        Error::ForeignProgram {
            iface: iface.to_owned(),
        }
    } else {
        Error::Attach {
            iface: iface.to_owned(),
            mode,
            source,
        }
    }
}

fn write_config(ebpf: &mut Ebpf, cfg: &Config) -> Result<(), Error> {
    let map = ebpf.map_mut(maps::CONFIG).ok_or_else(|| {
        Error::Load(format!("map {} missing from the object", maps::CONFIG).into())
    })?;
    let mut config: aya::maps::Array<_, Config> =
        aya::maps::Array::try_from(map).map_err(Error::map(maps::CONFIG))?;
    config
        .set(0, cfg, 0)
        .map_err(Error::map("writing the initial config"))
}

fn pin_all(ebpf: &Ebpf, link: FdLink, pins: &Pins) -> Result<(), Error> {
    std::fs::create_dir_all(&pins.dir).map_err(Error::io("creating the pin folder", &pins.dir))?;
    for name in pins::MAPS {
        let map = ebpf
            .map(name)
            .ok_or_else(|| Error::Load(format!("map {name} missing from the object").into()))?;
        let path = pins.map(name);
        map.pin(&path).map_err(Error::pin("pinning map", &path))?;
    }
    let path = pins.link();
    link.pin(&path)
        .map_err(Error::pin("pinning the link", &path))?;
    Ok(())
}

/// Best-effort removal of every pin of `pins` and its folder.
pub fn remove_pins(pins: &Pins) {
    let _ = std::fs::remove_file(pins.link());
    for name in pins::MAPS {
        let _ = std::fs::remove_file(pins.map(name));
    }
    let _ = std::fs::remove_dir(&pins.dir);
}

pub(crate) fn ifindex(iface: &str) -> Result<u32, Error> {
    let unknown = || Error::UnknownInterface {
        iface: iface.to_owned(),
    };
    let c_iface = CString::new(iface).map_err(|_| unknown())?;
    // SAFETY: c_iface is a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(c_iface.as_ptr()) } {
        0 => Err(unknown()),
        index => Ok(index),
    }
}

/// Whether `iface` is a loopback device (`IFF_LOOPBACK`): its 127/8 and ::1 traffic is
/// martian everywhere else, and nothing on it comes from the network.
fn is_loopback(iface: &str) -> bool {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return false;
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero ifreq is valid; the name is copied in below, NUL-terminated.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(iface.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = libc::c_char::from_ne_bytes([src]);
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of a valid ifreq.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &raw mut req) };
    // SAFETY: on success the kernel filled ifru_flags.
    rc == 0 && (i32::from(unsafe { req.ifr_ifru.ifru_flags }) & libc::IFF_LOOPBACK) != 0
}

/// The name of an [`attach_mode`] value.
#[must_use]
pub const fn mode_name(mode: u32) -> &'static str {
    match mode {
        attach_mode::NATIVE => "native",
        attach_mode::GENERIC => "generic",
        _ => "unknown",
    }
}

//! What the kernel says of an XDP link: the program it holds and the interface it is attached
//! to. aya reads a link's id and program but not its interface, and that is the one fact that
//! tells a live guard from a dead one: the kernel sets it to 0 when the interface is deleted
//! or someone detaches the link (`bpftool link detach`), while the pinned link lives on.

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::Path,
};

/// `BPF_OBJ_GET` from linux/bpf.h.
const BPF_OBJ_GET: libc::c_long = 7;

/// `BPF_OBJ_GET_INFO_BY_FD` from linux/bpf.h.
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// `BPF_LINK_DETACH` from linux/bpf.h.
const BPF_LINK_DETACH: libc::c_long = 34;

/// `BPF_LINK_TYPE_XDP` from linux/bpf.h.
const BPF_LINK_TYPE_XDP: u32 = 6;

/// `struct bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`: bpf_fd, info_len, info (a pointer).
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `struct bpf_attr` for `BPF_OBJ_GET`: pathname (a pointer), bpf_fd, file_flags.
#[repr(C)]
struct GetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// A link as the kernel sees it now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkState {
    pub program_id: u32,
    /// The interface the link is attached to; 0 once it is detached.
    pub ifindex: u32,
}

impl LinkState {
    /// Whether the kernel still has the link attached to an interface.
    #[must_use]
    pub fn attached(self) -> bool {
        self.ifindex != 0
    }
}

/// Reads the state of the XDP link pinned at `path`.
pub fn pinned_state(path: &Path) -> io::Result<LinkState> {
    let fd = open_pin(path)?;
    // A program or a map pinned under the link's name would pass the type check below (XDP
    // links, XDP programs and per-CPU arrays are all type 6): the descriptor must be a link.
    let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
    if !fdinfo.lines().any(|l| l.starts_with("link_type:")) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the pin is not a BPF link",
        ));
    }
    // struct bpf_link_info: type, id, prog_id, then a union at offset 16 (8-byte aligned)
    // whose `xdp` member starts with the ifindex. 64 bytes hold every member read here; the
    // kernel copies the smaller of its size and ours.
    let mut info = [0u32; 16];
    let mut attr = InfoAttr {
        bpf_fd: u32::try_from(fd.as_raw_fd()).map_err(io::Error::other)?,
        info_len: u32::try_from(size_of_val(&info)).map_err(io::Error::other)?,
        info: info.as_mut_ptr() as u64,
    };
    bpf(
        BPF_OBJ_GET_INFO_BY_FD,
        (&raw mut attr).cast(),
        size_of::<InfoAttr>(),
    )?;
    let [link_type, _id, program_id, _pad, ifindex, ..] = info;
    if link_type != BPF_LINK_TYPE_XDP {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("link type {link_type} is not XDP ({BPF_LINK_TYPE_XDP})"),
        ));
    }
    Ok(LinkState {
        program_id,
        ifindex,
    })
}

/// Detaches the link pinned at `path` from its interface now (`BPF_LINK_DETACH`): the
/// program is off the interface when this returns, the link defunct but still pinned.
/// Unlinking the last reference to a link detaches it too, but later, from a kernel work
/// item, so a command that runs right after might still find the program attached.
pub fn detach_pinned(path: &Path) -> io::Result<()> {
    let fd = open_pin(path)?;
    // struct bpf_attr's link_detach member: the link's descriptor.
    let mut link_fd = u32::try_from(fd.as_raw_fd()).map_err(io::Error::other)?;
    bpf(BPF_LINK_DETACH, (&raw mut link_fd).cast(), size_of::<u32>())?;
    Ok(())
}

/// Opens a pinned BPF object (`BPF_OBJ_GET`).
fn open_pin(path: &Path) -> io::Result<OwnedFd> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut attr = GetAttr {
        pathname: c_path.as_ptr() as u64,
        bpf_fd: 0,
        // The kernel opens links read-write only (other flags are EINVAL).
        file_flags: 0,
    };
    let fd = bpf(BPF_OBJ_GET, (&raw mut attr).cast(), size_of::<GetAttr>())?;
    let fd = i32::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: BPF_OBJ_GET returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The `bpf(2)` system call.
fn bpf(cmd: libc::c_long, attr: *mut libc::c_void, size: usize) -> io::Result<libc::c_long> {
    // SAFETY: every caller passes a bpf_attr prefix valid for `cmd`, of `size` bytes, whose
    // pointers are valid while the call runs.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr, size) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

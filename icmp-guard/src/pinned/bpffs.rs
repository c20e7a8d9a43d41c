//! Finding, and if needed mounting, the BPF filesystem that holds the pins.

use std::{ffi::CString, io, os::unix::ffi::OsStrExt as _, path::Path};

use crate::Error;

/// `BPF_FS_MAGIC` from linux/magic.h.
const BPF_FS_MAGIC: u32 = 0xcafe_4a11;

/// Whether `path` is the root of (or inside) a mounted bpffs.
#[must_use]
pub fn is_bpffs(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statfs is a valid out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is NUL-terminated; st is a valid, writable statfs.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &raw mut st) };
    // f_type is signed on glibc and unsigned on musl: let the comparison pick the type.
    rc == 0 && u64::try_from(st.f_type).is_ok_and(|t| t == u64::from(BPF_FS_MAGIC))
}

/// Makes sure `path` is a bpffs, mounting one there (as bpftool does) if it is not.
pub fn ensure_mounted(path: &Path) -> Result<(), Error> {
    if is_bpffs(path) {
        return Ok(());
    }
    let fail = |source| Error::Mount {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path).map_err(fail)?;
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| fail(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    // SAFETY: all pointers are valid NUL-terminated strings; no mount data.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            c_path.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    log::warn!(
        "mounted a bpffs at {}; in a private mount namespace (e.g. under `ip netns exec`) it and the pins vanish when the command exits: mount it from the host namespace first",
        path.display()
    );
    Ok(())
}

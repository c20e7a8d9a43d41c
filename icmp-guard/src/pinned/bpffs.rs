//! Finding, and if needed mounting, the BPF filesystem that holds the pins.

use std::{
    ffi::CString,
    io,
    os::unix::{ffi::OsStrExt as _, fs::DirBuilderExt as _, fs::MetadataExt as _},
    path::Path,
};

use super::private;
use crate::{Error, error::shown};

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

/// For commands that only read: `path` must be a bpffs, or the pins cannot be there (a
/// mistyped `--bpffs` is an error, not an empty listing).
pub fn require(path: &Path) -> Result<(), Error> {
    if is_bpffs(path) {
        Ok(())
    } else {
        Err(Error::NotBpffs {
            path: path.to_path_buf(),
        })
    }
}

/// Makes sure `path` is a bpffs, mounting one there (as bpftool does) if it is not.
///
/// A bpffs is mounted only on a folder that is plainly ours to cover: a path that does not
/// exist yet (created mode 0700), or an empty folder of root's that no one else can write.
/// Anything else is refused, naming what is there: a symbolic link (`--bpffs` pointing at a
/// link to `/` once mounted a bpffs over `/`), a file, a folder that holds something (it would
/// be hidden), or a folder of another user. The bpffs is mounted mode 0700 (the kernel's
/// default is 1777, where any user could create `icmp-guard` before root does).
pub fn ensure_mounted(path: &Path) -> Result<(), Error> {
    if is_bpffs(path) {
        return Ok(());
    }
    let refuse = |why: String| Error::MountRefused {
        path: path.to_path_buf(),
        why,
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(private::DIR_MODE)
                .create(path)
                .map_err(Error::io("creating the bpffs folder", path))?;
        }
        Err(e) => return Err(Error::io("inspecting the bpffs folder", path)(e)),
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = std::fs::read_link(path).map_or_else(|_| "?".into(), |t| shown(&t));
            return Err(refuse(format!(
                "is a symbolic link (to {target}), and a bpffs mounted through it would cover its target"
            )));
        }
        Ok(meta) if !meta.is_dir() => return Err(refuse("is not a directory".into())),
        Ok(meta) if !private::trusted_owner(meta.uid()) => {
            return Err(refuse(format!(
                "is owned by {}, not root",
                private::user(meta.uid())
            )));
        }
        Ok(meta) if meta.mode() & 0o022 != 0 => {
            return Err(refuse(format!(
                "is writable by its group or by others (mode {:04o})",
                meta.mode() & 0o7777
            )));
        }
        Ok(_) => {
            let mut entries =
                std::fs::read_dir(path).map_err(Error::io("listing the bpffs folder", path))?;
            if let Some(entry) = entries.next() {
                let name = entry.map_or_else(|_| "?".into(), |e| shown(e.file_name()));
                return Err(refuse(format!(
                    "is a folder that is not empty (it holds \"{name}\"), which a bpffs would hide"
                )));
            }
        }
    }
    let fail = |source| Error::Mount {
        path: path.to_path_buf(),
        source,
    };
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| fail(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    // SAFETY: all pointers are valid NUL-terminated strings; the mount data is a string too.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            c_path.as_ptr(),
            c"bpf".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    log::warn!(
        "mounted a bpffs at {} (mode 0700); in a private mount namespace (e.g. under `ip netns exec`) it and the pins vanish when the command exits: mount it from the host namespace first",
        shown(path)
    );
    Ok(())
}

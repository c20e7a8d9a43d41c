//! Finding, and if needed mounting, the BPF filesystem that holds the pins.

use std::{
    ffi::CString,
    io,
    os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    path::{Path, PathBuf},
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
/// be hidden), or a folder of another user. The folders it is in are resolved first and must
/// be root's too (see [`resolve_folders`]): mount(2) follows links in every part of the path,
/// so whoever can change one of them could put a link there between the checks and the
/// mount, and have root cover any folder of the system. The bpffs is mounted mode 0700 (the
/// kernel's default is 1777, where any user could create `icmp-guard` before root does).
pub fn ensure_mounted(path: &Path) -> Result<(), Error> {
    if is_bpffs(path) {
        return Ok(());
    }
    let refuse = |why: String| Error::MountRefused {
        path: path.to_path_buf(),
        why,
    };
    let (resolved, missing) = resolve_folders(path).map_err(refuse)?;
    let path = resolved.as_path();
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // One folder at a time, each ours (0700) before the next goes in it.
            let mut at = path.to_path_buf();
            for _ in 0..missing {
                at.pop();
            }
            for part in path.iter().skip(path.iter().count() - missing) {
                at.push(part);
                private::make_dir(&at)?;
            }
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

/// `path` made absolute with the links of the folders it is in resolved (its last part is
/// left as it is: a link there is refused by the caller), and how many of its parts do not
/// exist yet, counted from its end (its last part included). Every folder of the existing
/// part, from `/` down, must be root's, and none may be writable by its group or by others
/// unless it is sticky (`/tmp`), where no one can rename or remove an entry of root's: so no
/// one but root can change which folder the path names until the mount. The error says which
/// folder is not so, and why.
fn resolve_folders(path: &Path) -> Result<(PathBuf, usize), String> {
    let absolute =
        std::path::absolute(path).map_err(|e| format!("cannot be made absolute: {e}"))?;
    let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name()) else {
        return Err("names no folder of its own (it is / or ends in ..)".into());
    };
    // The longest part that exists, resolved; the rest is made by the caller.
    let mut existing = parent;
    let mut missing = vec![name];
    let resolved = loop {
        match existing.canonicalize() {
            Ok(real) => break real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match (existing.parent(), existing.file_name()) {
                    (Some(up), Some(part)) => {
                        missing.push(part);
                        existing = up;
                    }
                    _ => return Err(format!("has no folder that exists ({e})")),
                }
            }
            Err(e) => {
                return Err(format!(
                    "is in {}, which cannot be resolved: {e}",
                    shown(existing)
                ));
            }
        }
    };
    for folder in resolved.ancestors() {
        let meta = std::fs::symlink_metadata(folder)
            .map_err(|e| format!("is in {}, which cannot be inspected: {e}", shown(folder)))?;
        let sticky = meta.mode() & libc::S_ISVTX != 0;
        let problem = if !meta.is_dir() {
            Some("which is not a directory".to_owned())
        } else if !private::trusted_owner(meta.uid()) {
            Some(format!(
                "which is owned by {}, not root",
                private::user(meta.uid())
            ))
        } else if meta.mode() & 0o022 != 0 && !sticky {
            Some(format!(
                "which is writable by its group or by others (mode {:04o}) and not sticky",
                meta.mode() & 0o7777
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(format!(
                "is in {}, {problem}: whoever can change it could replace what the path names with a link before the mount",
                shown(folder)
            ));
        }
    }
    let count = missing.len();
    Ok((
        missing
            .into_iter()
            .rev()
            .fold(resolved, |p, part| p.join(part)),
        count,
    ))
}

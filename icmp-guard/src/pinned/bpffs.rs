//! Finding, and if needed mounting, the BPF filesystem that holds the pins.

use std::{
    ffi::{CString, OsString},
    io,
    os::unix::{ffi::OsStrExt as _, fs::DirBuilderExt as _, fs::MetadataExt as _},
    path::{Component, Path, PathBuf},
};

use super::private;
use crate::{Error, error::shown};

/// `BPF_FS_MAGIC` from linux/magic.h.
const BPF_FS_MAGIC: u32 = 0xcafe_4a11;

/// Whether `path` is the root of (or inside) a mounted bpffs.
#[must_use]
pub fn is_bpffs(path: &Path) -> bool {
    fs_type(path) == Some(BPF_FS_MAGIC)
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
/// be hidden), or a folder of another user. The folders it is in, and the links among them,
/// must be root's too, also for a bpffs that is there (see [`resolve_folders`]): mount(2)
/// follows links in every part of the path, so whoever can change one of them could put a
/// link there between the checks and the mount, and have root cover any folder of the
/// system. The bpffs is mounted mode 0700 (the kernel's default is 1777, where any user could
/// create `icmp-guard` before root does).
pub fn ensure_mounted(path: &Path) -> Result<(), Error> {
    let refuse = |why: String| Error::MountRefused {
        path: path.to_path_buf(),
        why,
    };
    // Also for a bpffs that is there, itself included (its last part may be a link, or a
    // folder of someone else's in a bpffs open to all): the other commands use the path as
    // given.
    let given = path;
    let (mut at, rest) = resolve_folders(path).map_err(refuse)?;
    let (last, missing) = rest.split_last().expect("the last part is always there");
    // Only a path whose folders all exist can be a bpffs already.
    if missing.is_empty() && is_bpffs(&at.join(last)) {
        // The folders before it were checked: the last part is walked on from there.
        return walk_from(at, vec![last.clone()])
            .map(|_| ())
            .map_err(|why| Error::Untrusted {
                path: given.to_path_buf(),
                problem: format!("is a bpffs whose path {why}"),
                fix: "pass --bpffs a bpffs whose folders and links are all root's".into(),
            });
    }
    // The folders missing before the last one, made one at a time, each root's (0700)
    // before the next goes in it; then the last one, which must be new, or pass the checks.
    for part in missing {
        at.push(part);
        private::make_dir(&at)?;
    }
    at.push(last);
    let path = at.as_path();
    match std::fs::DirBuilder::new()
        .mode(private::DIR_MODE)
        .create(path)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            ours_to_cover(path).map_err(refuse)?;
        }
        Err(e) => return Err(Error::io("creating the bpffs folder", path)(e)),
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

/// Checks that the folder at `path`, which exists, is plainly ours to cover with a mount:
/// not a link, a folder of root's that no one else can write, and empty.
fn ours_to_cover(path: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("cannot be inspected: {e}"))?;
    match private::Flaw::of_folder(&meta, false) {
        None => {}
        Some(private::Flaw::Link) => {
            let target = std::fs::read_link(path).map_or_else(|_| "?".into(), |t| shown(&t));
            return Err(format!(
                "is a symbolic link (to {target}), and a bpffs mounted through it would cover its target"
            ));
        }
        Some(flaw) => return Err(flaw.to_string()),
    }
    let mut entries = std::fs::read_dir(path).map_err(|e| format!("cannot be listed: {e}"))?;
    if let Some(entry) = entries.next() {
        let name = entry.map_or_else(|_| "?".into(), |e| shown(e.file_name()));
        return Err(format!(
            "is a folder that is not empty (it holds \"{name}\"), which a bpffs would hide"
        ));
    }
    Ok(())
}

/// Links followed at most while resolving a path, as the kernel's `MAXSYMLINKS`.
const MAX_LINKS: u32 = 40;

/// `path` made absolute with the links of the folders it is in resolved (its last part is
/// left as it is: a link there is refused by the caller), as the folder its existing part
/// names and the parts the caller is to make or check after it: the folders that do not
/// exist yet, and the last part, whether it exists or not.
///
/// The folders are walked from `/` one part at a time, as the kernel walks them. Every folder
/// must be root's, and none may be writable by its group or by others unless it is sticky
/// (`/tmp`), where no one can rename or remove an entry of root's; a link is followed only if
/// it is root's (it sits in such a folder already). So no one but root can change which
/// folder the path names until the mount, or after it, when the other commands use the path
/// as given. The error says which folder or link is not so, and why.
fn resolve_folders(path: &Path) -> Result<(PathBuf, Vec<OsString>), String> {
    let absolute =
        std::path::absolute(path).map_err(|e| format!("cannot be made absolute: {e}"))?;
    let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name()) else {
        return Err("names no folder of its own (it is / or ends in ..)".into());
    };
    let (existing, mut rest) = walk(parent)?;
    rest.push(name.to_owned());
    Ok((existing, rest))
}

/// Walks the absolute `path` from `/` (see [`resolve_folders`]): the folder its existing
/// part names, every folder and link on the way checked, and the parts after it that do not
/// exist, in order.
fn walk(path: &Path) -> Result<(PathBuf, Vec<OsString>), String> {
    let root = PathBuf::from("/");
    trusted_folder(&root)?;
    walk_from(root, parts(path))
}

/// [`walk`] on from the folder `resolved`, checked already as every folder before it was,
/// through the parts `todo` still to walk (first part last).
fn walk_from(
    mut resolved: PathBuf,
    mut todo: Vec<OsString>,
) -> Result<(PathBuf, Vec<OsString>), String> {
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let next = resolved.join(&part);
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // This part and the rest are made by the caller, one folder at a time.
                let mut missing = vec![part];
                while let Some(part) = todo.pop() {
                    if part == ".." {
                        return Err(format!(
                            "has .. after {}, which does not exist",
                            shown(resolved.join(missing.iter().collect::<PathBuf>()))
                        ));
                    }
                    missing.push(part);
                }
                return Ok((resolved, missing));
            }
            Err(e) => {
                return Err(format!(
                    "is in {}, which cannot be inspected: {e}",
                    shown(&next)
                ));
            }
        };
        if meta.file_type().is_symlink() {
            follow(&resolved, &next, &meta)?;
            links += 1;
            if links > MAX_LINKS {
                return Err(format!("goes through more than {MAX_LINKS} links"));
            }
            let target = std::fs::read_link(&next).map_err(|e| {
                format!(
                    "goes through the link {}, which cannot be read: {e}",
                    shown(&next)
                )
            })?;
            if target.is_absolute() {
                resolved = PathBuf::from("/");
            }
            todo.extend(parts(&target));
            continue;
        }
        resolved = next;
        trusted_folder(&resolved)?;
    }
    Ok((resolved, Vec::new()))
}

/// `PROC_SUPER_MAGIC` from linux/magic.h.
const PROC_MAGIC: u32 = 0x9fa0;

/// Checks that the link `link` (in the folder `folder`, checked already; `meta` its own) may be
/// followed by its text: root's, and not one of `/proc`'s, which the kernel follows to what
/// they stand for (`/proc/PID/root` is a process's root, not `/`), not to their text.
fn follow(folder: &Path, link: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    if !private::trusted_owner(meta.uid()) {
        return Err(format!(
            "goes through the link {}, which is owned by {}, not root: its owner could point it elsewhere",
            shown(link),
            private::user(meta.uid())
        ));
    }
    if fs_type(folder) == Some(PROC_MAGIC) {
        return Err(format!(
            "goes through {}, a link of /proc, which stands for more than its text: give the path it leads to",
            shown(link)
        ));
    }
    Ok(())
}

/// The file system type (`statfs`'s `f_type`) of `path`, if it can be read.
fn fs_type(path: &Path) -> Option<u32> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statfs is a valid out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is NUL-terminated; st is a valid, writable statfs.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &raw mut st) };
    // f_type is signed on glibc and unsigned on musl: let the conversion pick the type.
    (rc == 0).then(|| u32::try_from(st.f_type).ok()).flatten()
}

/// The normal parts of `path` (`..` kept, `.` and the root dropped), last part first.
fn parts(path: &Path) -> Vec<OsString> {
    path.components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Checks that `folder` is a folder only root can change (see [`resolve_folders`]).
fn trusted_folder(folder: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(folder)
        .map_err(|e| format!("is in {}, which cannot be inspected: {e}", shown(folder)))?;
    let at = shown(folder);
    let which = match private::Flaw::of_folder(&meta, true) {
        None => return Ok(()),
        Some(private::Flaw::NotDir) => return Err(format!("is in {at}, which is not a directory")),
        Some(flaw @ private::Flaw::Writable(_)) => format!("{flaw} and not sticky"),
        Some(flaw) => flaw.to_string(),
    };
    Err(format!(
        "is in {at}, which {which}: whoever can change it could make the path name another folder"
    ))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// (the path under a scratch folder, what it resolves to and how many parts are missing,
    /// or words of the refusal): the folders are walked as the kernel walks them, links of
    /// root's followed (absolute, relative, after `..`), and what cannot name a folder of its
    /// own is refused.
    #[test]
    fn paths_are_resolved_through_folders_and_links_of_roots() {
        type Case = (&'static str, Result<(&'static str, usize), &'static str>);
        let base =
            std::env::temp_dir().join(format!("icmp-guard-bpffs-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        std::fs::set_permissions(base.join("real"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink(base.join("real"), base.join("absolute")).unwrap();
        std::os::unix::fs::symlink("real", base.join("relative")).unwrap();
        std::os::unix::fs::symlink("loop", base.join("loop")).unwrap();
        let name = base.file_name().unwrap().to_str().unwrap().to_owned();
        std::os::unix::fs::symlink(format!("../{name}/real"), base.join("up")).unwrap();
        std::fs::create_dir(base.join("open")).unwrap();
        std::fs::set_permissions(base.join("open"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        std::os::unix::fs::symlink(base.join("open"), base.join("to-open")).unwrap();
        let cases: [Case; 11] = [
            ("x", Ok(("x", 1))),
            ("new/deeper", Ok(("new/deeper", 2))),
            ("absolute/x", Ok(("real/x", 1))),
            ("relative/x", Ok(("real/x", 1))),
            ("real/../relative/x", Ok(("real/x", 1))),
            ("absolute/../real", Ok(("real", 1))),
            ("new/../x", Err("has .. after")),
            ("x/..", Err("names no folder of its own")),
            ("loop/x", Err("goes through more than 40 links")),
            ("up/x", Ok(("real/x", 1))),
            (
                "to-open/x",
                Err("writable by its group or by others (mode 0777) and not sticky"),
            ),
        ];
        for (path, want) in cases {
            let got = resolve_folders(&base.join(path)).map(|(existing, rest)| {
                (
                    rest.iter().fold(existing, |p, part| p.join(part)),
                    rest.len(),
                )
            });
            match want {
                Ok((resolved, missing)) => {
                    assert_eq!(got, Ok((base.join(resolved), missing)), "{path}");
                }
                Err(words) => {
                    let err = got.expect_err(path);
                    assert!(err.contains(words), "{path}: {err}");
                }
            }
        }
        assert!(resolve_folders(Path::new("/")).is_err());
        // `..` at `/` stays there, as in the kernel.
        let from_root = Path::new("/../..")
            .join(base.strip_prefix("/").unwrap())
            .join("x");
        assert_eq!(
            resolve_folders(&from_root),
            Ok((base.clone(), vec![OsString::from("x")]))
        );
        // A link of /proc stands for a process's root, not for its text.
        let err = resolve_folders(Path::new("/proc/self/root/x")).unwrap_err();
        assert!(err.contains("a link of /proc"), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}

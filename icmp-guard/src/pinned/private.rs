//! Folders icmp-guard trusts with its state: the pin root `<bpffs>/icmp-guard`, each
//! interface's folder under it, and the lock folder `/run/icmp-guard`. Whoever can write to
//! one of them can rename, swap or block what icmp-guard keeps there, so each must be a real
//! directory (not a symbolic link) owned by root (or by the user icmp-guard runs as) that
//! neither its group nor others can write. The ones icmp-guard creates are mode 0700; one
//! that breaks a rule is refused, naming the path, what is wrong and the fix. Nothing is
//! repaired silently: a folder someone else made may hold anything.

use std::{
    fs::DirBuilder,
    io,
    os::unix::fs::{DirBuilderExt as _, MetadataExt as _},
    path::Path,
};

use crate::{Error, error::shown};

/// The mode of every folder icmp-guard creates.
pub const DIR_MODE: u32 = 0o700;

/// Whether `uid` may own icmp-guard's folders and files: root, or the user running it.
#[must_use]
pub fn trusted_owner(uid: u32) -> bool {
    // SAFETY: geteuid cannot fail.
    uid == 0 || uid == unsafe { libc::geteuid() }
}

/// A user as messages name it: `nobody (uid 65534)`, or the bare uid when it has no name.
#[must_use]
pub fn user(uid: u32) -> String {
    // SAFETY: an all-zero passwd is a valid out-parameter.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut found = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives the use of pwd's strings.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &raw mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &raw mut found,
        )
    };
    if rc == 0 && !found.is_null() && !pwd.pw_name.is_null() {
        // SAFETY: getpwuid_r filled pw_name with a NUL-terminated string inside buf.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return format!("{} (uid {uid})", shown(name.to_string_lossy().as_ref()));
    }
    format!("uid {uid}")
}

/// What breaks the rules in a folder, as its own metadata (`symlink_metadata`) shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    Link,
    NotDir,
    /// Owned by this uid, not root (nor the user icmp-guard runs as).
    Owner(u32),
    /// Writable by its group or by others: the mode.
    Writable(u32),
}

impl Flaw {
    /// The first flaw of the folder `meta` describes, if any. With `sticky_ok`, a sticky
    /// folder that others may write (`/tmp`) passes: no one can rename or remove an entry of
    /// root's in it.
    #[must_use]
    pub fn of_folder(meta: &std::fs::Metadata, sticky_ok: bool) -> Option<Self> {
        let sticky = meta.mode() & libc::S_ISVTX != 0;
        if meta.file_type().is_symlink() {
            Some(Self::Link)
        } else if !meta.is_dir() {
            Some(Self::NotDir)
        } else if !trusted_owner(meta.uid()) {
            Some(Self::Owner(meta.uid()))
        } else if meta.mode() & 0o022 != 0 && !(sticky_ok && sticky) {
            Some(Self::Writable(meta.mode() & 0o7777))
        } else {
            None
        }
    }
}

impl std::fmt::Display for Flaw {
    /// The flaw as messages say it after the folder's name: "is owned by nobody ...".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Link => f.write_str("is a symbolic link"),
            Self::NotDir => f.write_str("is not a directory"),
            Self::Owner(uid) => write!(f, "is owned by {}, not root", user(*uid)),
            Self::Writable(mode) => {
                write!(f, "is writable by its group or by others (mode {mode:04o})")
            }
        }
    }
}

/// Checks an existing folder against the rules; `Ok(false)` when there is nothing at `path`.
pub fn check_dir(path: &Path) -> Result<bool, Error> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("inspecting", path)(e)),
    };
    let Some(flaw) = Flaw::of_folder(&meta, false) else {
        return Ok(true);
    };
    let at = shown(path);
    let fix = match flaw {
        Flaw::Link => format!(
            "icmp-guard follows no link in its state: remove it (`rm {at}`) and run the command again"
        ),
        Flaw::NotDir => format!("remove it (`rm {at}`) and run the command again"),
        Flaw::Owner(_) => format!(
            "its owner can rename or replace what icmp-guard keeps there: check what it holds, remove it (`rm -r {at}`) and run the command again, which creates it mode 0700"
        ),
        Flaw::Writable(_) => format!("make it root's alone: `chmod 0700 {at}`"),
    };
    Err(Error::Untrusted {
        path: path.to_path_buf(),
        problem: flaw.to_string(),
        fix,
    })
}

/// Creates the folder `path` (its parent must exist) with mode 0700, or checks the one that
/// is there.
pub fn make_dir(path: &Path) -> Result<(), Error> {
    match DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => check_dir(path).map(|_| ()),
        Err(e) => Err(Error::io("creating the folder", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("icmp-guard-private-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Each way a folder can be someone else's, as a table: what is there, and the words the
    /// refusal must carry (the path is always named).
    #[test]
    fn folders_of_others_are_refused_naming_the_path_the_owner_and_the_fix() {
        /// A case: its name, what it puts at the path, the words of the refusal if refused.
        type Case = (&'static str, fn(&Path), Option<&'static [&'static str]>);
        let base = scratch("refuse");
        let cases: [Case; 6] = [
            ("missing", |_| {}, None),
            ("ours", |p| make_dir(p).unwrap(), None),
            (
                "nobodys",
                |p| {
                    std::fs::create_dir(p).unwrap();
                    std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
                },
                Some(&["is owned by", "uid 65534", "not root", "rm -r"]),
            ),
            (
                "world-writable",
                |p| {
                    std::fs::create_dir(p).unwrap();
                    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o1777)).unwrap();
                },
                Some(&[
                    "writable by its group or by others (mode 1777)",
                    "chmod 0700",
                ]),
            ),
            (
                "a-link",
                |p| std::os::unix::fs::symlink("/", p).unwrap(),
                Some(&["is a symbolic link", "rm "]),
            ),
            (
                "a-file",
                |p| std::fs::write(p, b"").unwrap(),
                Some(&["is not a directory"]),
            ),
        ];
        for (name, make, refused) in cases {
            let path = base.join(name);
            make(&path);
            match (make_dir(&path), refused) {
                (Ok(()), None) => {
                    let meta = std::fs::symlink_metadata(&path).unwrap();
                    assert!(meta.is_dir(), "{name}");
                    assert_eq!(meta.mode() & 0o7777, DIR_MODE, "{name}");
                }
                (Err(err), Some(words)) => {
                    let err = err.to_string();
                    assert!(err.contains(&path.display().to_string()), "{name}: {err}");
                    for word in words {
                        assert!(err.contains(word), "{name}: {word:?} in {err}");
                    }
                }
                (result, _) => panic!("{name}: {result:?}"),
            }
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}

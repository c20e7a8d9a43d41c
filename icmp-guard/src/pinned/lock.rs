//! Serialises the commands that change a guard: an exclusive `flock` on a lock file that only
//! root can open, one per bpffs, held until dropped.
//!
//! The lock cannot live in the bpffs: it holds only folders and pinned objects (creating a
//! regular file there fails with `EPERM`), and a `flock` on a folder can be taken by anyone
//! who can open it (the pin root was 0755 once, so any user could stall every command). So it
//! is a regular file under [`RUN_DIR`] (`/run/icmp-guard`, a tmpfs, so no lock outlives a
//! boot): the folder is created mode 0700 and the file 0600, both root's, and either one found
//! owned by another user or open to others is refused (see [`super::private`]). Its name is
//! made from the bpffs path with its symbolic links resolved, so `--bpffs /sys/fs/bpf` and a
//! link to it share one lock; the file holds that path, for people.

use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    os::{
        fd::AsRawFd as _,
        unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::private;
use crate::{Error, error::shown};

/// How long a command waits for another one to finish.
pub const WAIT: Duration = Duration::from_secs(10);

/// The folder of the lock files.
pub const RUN_DIR: &str = "/run/icmp-guard";

/// The mode of a lock file.
const FILE_MODE: u32 = 0o600;

/// The exclusive lock; released on drop (the file is unlinked, then closing it releases the
/// `flock`).
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

/// The lock file of the pins under `bpffs`, in `run_dir`.
#[must_use]
pub fn path_in(run_dir: &Path, bpffs: &Path) -> PathBuf {
    let key = resolved(bpffs);
    let bytes = key.as_os_str().as_encoded_bytes();
    // FNV-1a: a short, stable name for a path of any length.
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    // A readable part too, for whoever lists the folder.
    let readable: String = key
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(64)
        .collect();
    run_dir.join(format!("{readable}.{hash:016x}.lock"))
}

/// The lock file of the pins under `bpffs`.
#[must_use]
pub fn path(bpffs: &Path) -> PathBuf {
    path_in(Path::new(RUN_DIR), bpffs)
}

/// `path` made absolute with the links of its longest existing part resolved: the same bpffs
/// gets the same lock before and after `attach` creates its folder.
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

impl Lock {
    /// Takes the lock of the pins under `bpffs`, waiting up to [`WAIT`] for another command.
    pub fn acquire(bpffs: &Path) -> Result<Self, Error> {
        Self::acquire_in(Path::new(RUN_DIR), bpffs, WAIT)
    }

    /// The same with another wait (zero: one try).
    pub fn acquire_within(bpffs: &Path, wait: Duration) -> Result<Self, Error> {
        Self::acquire_in(Path::new(RUN_DIR), bpffs, wait)
    }

    /// The same with the lock folder `run_dir` and another wait.
    pub fn acquire_in(run_dir: &Path, bpffs: &Path, wait: Duration) -> Result<Self, Error> {
        let path = path_in(run_dir, bpffs);
        let Some(mut file) = take(run_dir, &path, libc::LOCK_EX, Instant::now() + wait)? else {
            return Err(Error::Busy {
                lock: path,
                bpffs: bpffs.to_path_buf(),
                waited: wait,
            });
        };
        // For people: which bpffs this lock is for. Best effort; the lock is what counts.
        let _ = file
            .set_len(0)
            .and_then(|()| file.write_all(format!("{}\n", resolved(bpffs).display()).as_bytes()));
        Ok(Self { file, path })
    }
}

/// Takes the lock file `path` (in `run_dir`, both made as needed) with `flock` `mode`
/// (`LOCK_EX` or `LOCK_SH`), trying until `deadline`: the file held under the lock's name, or
/// `None` when others still held it then. A holder unlinks the file as it lets go: one that
/// did while this waited leaves a file no one else will lock, so the new one is taken, within
/// the same wait.
fn take(
    run_dir: &Path,
    path: &Path,
    mode: libc::c_int,
    deadline: Instant,
) -> Result<Option<File>, Error> {
    private::make_dir(run_dir)?;
    let mut file = open_trusted(path)?;
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), mode | libc::LOCK_NB) } == 0 {
            if same_file(&file, path) {
                return Ok(Some(file));
            }
            file = open_trusted(path)?;
            continue;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(Error::io("locking", path)(err));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A shared hold on the lock of a bpffs, for a reader that must not take a running command's
/// work for what a command cut short left (see [`Quiet::hold`]): while it lives, no command
/// can take the lock.
#[derive(Debug)]
pub struct Quiet {
    file: File,
    path: PathBuf,
}

impl Quiet {
    /// How long a reader waits for the lock: long enough for another reader that is letting
    /// go (it holds the lock exclusively for a moment, see `Drop`), far shorter than any
    /// command holds it.
    const WAIT: Duration = Duration::from_millis(100);

    /// A hold on the lock of the pins under `bpffs` if no command holds it (shared, waiting
    /// at most [`Self::WAIT`]), `None` if one does; an error when it cannot be told (a lock
    /// file or folder that cannot be trusted, or that cannot be made, say). The lock file is
    /// made if there is none, as a command makes it, so that a command that starts while the
    /// reader reads waits for it; the last reader to let go removes it again.
    pub fn hold(bpffs: &Path) -> Result<Option<Self>, Error> {
        Self::hold_in(Path::new(RUN_DIR), bpffs)
    }

    /// The same with the lock folder `run_dir`.
    fn hold_in(run_dir: &Path, bpffs: &Path) -> Result<Option<Self>, Error> {
        let path = path_in(run_dir, bpffs);
        let deadline = Instant::now() + Self::WAIT;
        Ok(take(run_dir, &path, libc::LOCK_SH, deadline)?.map(|file| Self { file, path }))
    }
}

impl Drop for Quiet {
    /// Unlinks the file, as a command does, if no one else holds it (an exclusive lock taken
    /// without waiting): another reader's hold stays a hold on the file under the lock's name.
    /// The conversion is not atomic: when it fails, this reader's shared hold is gone
    /// already, which at its end does not matter.
    fn drop(&mut self) {
        // SAFETY: flock on a descriptor we own.
        let alone =
            unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if alone {
            unlink_held(&self.file, &self.path);
        }
    }
}

/// Opens (creating it mode 0600 if needed) a lock file of root's that no one else can open;
/// one that is a link, not a regular file, another user's, or open to others is refused,
/// naming the fix.
pub(super) fn open_trusted(path: &Path) -> Result<File, Error> {
    let path = path.to_path_buf();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::Untrusted {
                    path: path.clone(),
                    problem: "is a symbolic link".into(),
                    fix: format!(
                        "remove it (`rm {}`) and run the command again",
                        shown(&path)
                    ),
                }
            } else {
                Error::io("opening the lock file", &path)(e)
            }
        })?;
    let meta = file
        .metadata()
        .map_err(Error::io("inspecting the lock file", &path))?;
    let problem = if !meta.is_file() {
        Some("is not a regular file".to_owned())
    } else if !private::trusted_owner(meta.uid()) {
        Some(format!(
            "is owned by {}, not root",
            private::user(meta.uid())
        ))
    } else if meta.mode() & 0o077 != 0 {
        Some(format!(
            "can be opened by its group or by others (mode {:04o}), who could hold the lock",
            meta.mode() & 0o7777
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(Error::Untrusted {
            problem,
            fix: format!(
                "remove it (`rm {}`) when no icmp-guard command runs; the next one creates it mode 0600",
                shown(&path)
            ),
            path,
        });
    }
    Ok(file)
}

/// Whether `path` still names the open `file`.
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

impl Drop for Lock {
    /// Unlinks the file while still holding it, so lock files do not pile up in /run (one per
    /// bpffs path ever used); a command that opened it meanwhile sees it is gone once it gets
    /// the `flock`, and starts over on a new file.
    fn drop(&mut self) {
        unlink_held(&self.file, &self.path);
    }
}

/// Unlinks the lock file `path` if it is still `file`, held exclusively by the caller: a
/// command that opened it meanwhile sees it is gone once it gets the `flock`, and starts over
/// on a new file.
fn unlink_held(file: &File, path: &Path) {
    if same_file(file, path) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("icmp-guard-lock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_lock_is_a_root_only_file_keyed_by_the_resolved_bpffs() {
        let base = scratch("file");
        let run = base.join("run");
        let bpffs = base.join("bpffs");
        std::fs::create_dir(&bpffs).unwrap();
        let lock = Lock::acquire_in(&run, &bpffs, Duration::ZERO).unwrap();
        let file = path_in(&run, &bpffs);
        assert_eq!(std::fs::metadata(&run).unwrap().mode() & 0o7777, 0o700);
        let meta = std::fs::metadata(&file).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o7777, 0o600);
        assert_eq!(meta.uid(), 0);
        // Nothing is made in the bpffs path.
        assert_eq!(std::fs::read_dir(&bpffs).unwrap().count(), 0);
        // A link to the bpffs, or a path through `..`, is the same lock.
        let link = base.join("link");
        std::os::unix::fs::symlink(&bpffs, &link).unwrap();
        assert_eq!(path_in(&run, &link), file);
        assert_eq!(path_in(&run, &bpffs.join("../bpffs")), file);
        // A folder that does not exist yet gets the lock it will have once made.
        assert_eq!(
            path_in(&run, &link.join("new")),
            path_in(&run, &bpffs.join("new"))
        );
        assert_ne!(path_in(&run, &base), file);
        // Held: a second command waits, then names the file.
        let err = Lock::acquire_in(&run, &link, Duration::from_millis(50)).unwrap_err();
        assert!(
            matches!(&err, Error::Busy { lock, .. } if *lock == file),
            "{err}"
        );
        // Released: the file is unlinked, so lock files do not pile up in /run.
        drop(lock);
        assert!(!file.exists());
        // A command that waited while the holder unlinked its file gets the lock on a file
        // that is still at the path: a third one waits for it, not on a ghost.
        let first = Lock::acquire_in(&run, &bpffs, Duration::ZERO).unwrap();
        let waiter = {
            let (run, bpffs) = (run.clone(), bpffs.clone());
            std::thread::spawn(move || Lock::acquire_in(&run, &bpffs, Duration::from_secs(5)))
        };
        std::thread::sleep(Duration::from_millis(100));
        drop(first);
        let second = waiter.join().unwrap().unwrap();
        assert!(file.exists());
        let err = Lock::acquire_in(&run, &link, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, Error::Busy { .. }), "{err}");
        drop(second);
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// (what is there, whether a reader gets a hold): a reader's shared hold is refused while a
    /// command holds the lock, and keeps a command from taking it while it lives, also where
    /// there was no lock file (it makes one, so a command that starts meanwhile waits); the
    /// last reader to let go leaves nothing behind; a lock file others could open cannot tell
    /// anything.
    #[test]
    fn a_reader_holds_the_lock_shared_only_when_no_command_does() {
        let base = scratch("quiet");
        let (run, bpffs) = (base.join("run"), base.join("bpffs"));
        std::fs::create_dir(&bpffs).unwrap();
        let file = path_in(&run, &bpffs);
        // No folder, no file: held, a command kept out meanwhile, and nothing left after.
        let reader = Quiet::hold_in(&run, &bpffs).unwrap().unwrap();
        let err = Lock::acquire_in(&run, &bpffs, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, Error::Busy { .. }), "{err}");
        drop(reader);
        assert!(!file.exists());
        // A command holds it: busy.
        let command = Lock::acquire_in(&run, &bpffs, Duration::ZERO).unwrap();
        assert!(Quiet::hold_in(&run, &bpffs).unwrap().is_none());
        drop(command);
        // A file left by a holder that died (no one holds it): held shared, which keeps a
        // command out until the last reader lets go; two readers share it, and the first to
        // let go leaves it to the other.
        std::fs::write(&file, b"").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let reader = Quiet::hold_in(&run, &bpffs).unwrap().unwrap();
        let second = Quiet::hold_in(&run, &bpffs).unwrap().unwrap();
        drop(second);
        assert!(file.exists());
        let err = Lock::acquire_in(&run, &bpffs, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, Error::Busy { .. }), "{err}");
        drop(reader);
        assert!(!file.exists());
        drop(Lock::acquire_in(&run, &bpffs, Duration::ZERO).unwrap());
        // Open to others: it cannot be told.
        std::fs::write(&file, b"").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = Quiet::hold_in(&run, &bpffs).unwrap_err();
        assert!(matches!(err, Error::Untrusted { .. }), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A lock folder or file that others could open or replace is refused, not used.
    #[test]
    fn a_lock_others_could_take_is_refused() {
        /// A case: its name, what it puts in place (the lock folder, the lock file), the refusal.
        type Case = (&'static str, fn(&Path, &Path), &'static str);
        let base = scratch("refuse");
        let bpffs = base.join("bpffs");
        std::fs::create_dir(&bpffs).unwrap();
        let cases: [Case; 5] = [
            (
                "folder of another user",
                |run, _| {
                    std::fs::create_dir(run).unwrap();
                    std::os::unix::fs::chown(run, Some(65534), None).unwrap();
                },
                "is owned by",
            ),
            (
                "world-writable folder",
                |run, _| {
                    std::fs::create_dir(run).unwrap();
                    std::fs::set_permissions(run, std::fs::Permissions::from_mode(0o777)).unwrap();
                },
                "writable by its group or by others",
            ),
            (
                "file others can open",
                |run, file| {
                    make_dir_for(run);
                    std::fs::write(file, b"").unwrap();
                    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
                },
                "can be opened by its group or by others (mode 0644)",
            ),
            (
                "file of another user",
                |run, file| {
                    make_dir_for(run);
                    std::fs::write(file, b"").unwrap();
                    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
                    std::os::unix::fs::chown(file, Some(65534), None).unwrap();
                },
                "is owned by",
            ),
            (
                "file that is a link",
                |run, file| {
                    make_dir_for(run);
                    std::os::unix::fs::symlink("/etc/passwd", file).unwrap();
                },
                "is a symbolic link",
            ),
        ];
        for (i, (name, make, words)) in cases.into_iter().enumerate() {
            let run = base.join(format!("run{i}"));
            let file = path_in(&run, &bpffs);
            make(&run, &file);
            let err = Lock::acquire_in(&run, &bpffs, Duration::ZERO)
                .unwrap_err()
                .to_string();
            assert!(err.contains(words), "{name}: {err}");
            assert!(err.contains("does not trust it"), "{name}: {err}");
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    fn make_dir_for(run: &Path) {
        private::make_dir(run).unwrap();
    }
}

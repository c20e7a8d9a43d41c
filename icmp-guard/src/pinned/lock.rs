//! Serialises the commands that change a guard: an exclusive `flock` on the pin root folder
//! (`<bpffs>/icmp-guard`), which bpffs supports like any folder. Held until dropped.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::layout as pins;
use crate::Error;

/// How long a command waits for another one to finish.
pub const WAIT: Duration = Duration::from_secs(10);

/// The exclusive lock; released on drop (closing the folder releases the `flock`).
#[derive(Debug)]
pub struct Lock {
    _dir: File,
}

impl Lock {
    /// Takes the lock of the pins under `bpffs`, waiting up to [`WAIT`] for another command.
    pub fn acquire(bpffs: &Path) -> Result<Self, Error> {
        Self::acquire_within(bpffs, WAIT)
    }

    /// The same with another wait.
    pub fn acquire_within(bpffs: &Path, wait: Duration) -> Result<Self, Error> {
        let root = pins::root(bpffs);
        std::fs::create_dir_all(&root).map_err(Error::io("creating the pin folder", &root))?;
        let dir = File::open(&root).map_err(Error::io("opening the pin folder", &root))?;
        let deadline = Instant::now() + wait;
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Self { _dir: dir });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(Error::io("locking the pin folder", &root)(err));
            }
            if Instant::now() >= deadline {
                return Err(Error::Busy {
                    lock: PathBuf::from(&root),
                    bpffs: bpffs.to_path_buf(),
                    waited: wait,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

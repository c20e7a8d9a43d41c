//! Which network namespace a command runs in. An interface name means something only inside
//! one namespace (two namespaces may each have an `eth0`), while a bpffs is shared by all of
//! them; so a guard's pins are filed under the namespace of its interface, and a command acts
//! only on the guards of its own.
//!
//! A namespace is known by two numbers. Its nsfs inode (of `/proc/thread-self/ns/net`) is the
//! one people see (`lsns -t net`, `ls -iL /run/netns/NAME`), but the kernel gives a freed
//! inode number to the next new namespace. Its cookie (`SO_NETNS_COOKIE`, Linux 5.14) is never
//! reused. The pin folder carries both, so a namespace that takes a dead one's number never
//! finds, revives or removes the dead one's guards.

use std::{
    fmt,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::fs::MetadataExt as _,
    },
    path::{Path, PathBuf},
};

use crate::Error;

/// The file of the calling thread's network namespace.
const THREAD_NS: &str = "/proc/thread-self/ns/net";

/// The file of the initial network namespace (that of PID 1, when this process can see it).
const INIT_NS: &str = "/proc/1/ns/net";

/// Where `ip netns add` keeps named namespaces.
const NAMED_NS_DIR: &str = "/run/netns";

/// `SO_NETNS_COOKIE` from asm-generic/socket.h.
const SO_NETNS_COOKIE: libc::c_int = 71;

/// What every namespace folder's name starts with.
const DIR_PREFIX: &str = "netns:";

/// A network namespace: its nsfs inode number and its cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Netns {
    pub inode: u64,
    pub cookie: u64,
}

impl Netns {
    /// The namespace the calling thread runs in.
    pub fn current() -> Result<Self, Error> {
        let inode = inode_of(Path::new(THREAD_NS))?;
        Ok(Self {
            inode,
            cookie: cookie_here()?,
        })
    }

    /// The namespace of a namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`), read from a
    /// thread that enters it (`setns`, which needs `CAP_SYS_ADMIN`).
    pub fn of(path: &Path) -> Result<Self, Error> {
        let file = std::fs::File::open(path).map_err(Error::io("opening the namespace", path))?;
        let entered = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: setns on a namespace descriptor we own, for this thread alone.
                    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Self::current().map_err(std::io::Error::other)
                })
                .join()
        });
        entered
            .unwrap_or_else(|_| Err(std::io::Error::other("the thread entering it panicked")))
            .map_err(Error::io("entering the namespace", path))
    }

    /// How people know this namespace: `host` for the initial one, the `ip netns` name of a
    /// named one (matched by inode), else nothing.
    #[must_use]
    pub fn name(self) -> Option<String> {
        if inode_of(Path::new(INIT_NS)).is_ok_and(|init| init == self.inode) {
            return Some("host".to_owned());
        }
        let entries = std::fs::read_dir(NAMED_NS_DIR).ok()?;
        entries
            .flatten()
            .find(|e| inode_of(&e.path()).is_ok_and(|inode| inode == self.inode))
            .map(|e| format!("{} (ip netns)", e.file_name().to_string_lossy()))
    }

    /// The folder name of this namespace's guards under the pin root:
    /// `netns:<inode>:<cookie>`. The colon keeps it apart from any interface name (the kernel
    /// refuses `:` in those), so folders an earlier version filed directly by interface name
    /// are never mistaken for it.
    #[must_use]
    pub fn dir_name(self) -> String {
        format!("{DIR_PREFIX}{}:{}", self.inode, self.cookie)
    }

    /// The namespace a folder name made by [`dir_name`](Self::dir_name) stands for.
    #[must_use]
    pub fn from_dir_name(name: &str) -> Option<Self> {
        let (inode, cookie) = name.strip_prefix(DIR_PREFIX)?.split_once(':')?;
        Some(Self {
            inode: inode.parse().ok()?,
            cookie: cookie.parse().ok()?,
        })
    }

    /// The folder of this namespace's guards under `root`.
    #[must_use]
    pub fn dir_in(self, root: &Path) -> PathBuf {
        root.join(self.dir_name())
    }
}

impl fmt::Display for Netns {
    /// `netns 4026531840 (host)`, or without the name when it has none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "netns {} {name}", self.inode),
            None => write!(f, "netns {}", self.inode),
        }
    }
}

fn inode_of(path: &Path) -> Result<u64, Error> {
    std::fs::metadata(path)
        .map(|meta| meta.ino())
        .map_err(Error::io("reading the network namespace of", path))
}

/// The cookie of the calling thread's namespace, from a socket made in it.
fn cookie_here() -> Result<u64, Error> {
    let fail = Error::io(
        "reading the network namespace cookie (Linux 5.14+) of",
        THREAD_NS,
    );
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(fail(std::io::Error::last_os_error()));
    }
    // SAFETY: a new descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut cookie = 0u64;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt on our socket into a u64 we own, with its length.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(fail(std::io::Error::last_os_error()));
    }
    Ok(cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_read_back_and_are_never_interface_names() {
        let ns = Netns {
            inode: 4_026_531_840,
            cookie: 1,
        };
        assert_eq!(ns.dir_name(), "netns:4026531840:1");
        assert_eq!(Netns::from_dir_name(&ns.dir_name()), Some(ns));
        for name in [
            "eth0",
            "netns:",
            "netns:x",
            "netns:1",
            "netns:1:x",
            "4026531840",
        ] {
            assert_eq!(Netns::from_dir_name(name), None, "{name}");
        }
        assert!(
            ns.dir_name().parse::<crate::kernel::IfaceName>().is_err(),
            "a namespace folder must not parse as an interface name"
        );
    }

    #[test]
    fn a_thread_that_enters_this_namespace_finds_it_by_its_file() {
        let here = Netns::current().unwrap();
        assert_eq!(
            here.inode,
            inode_of(Path::new("/proc/self/ns/net")).unwrap()
        );
        assert_ne!(here.cookie, 0, "cookies start at 1");
        assert_eq!(Netns::of(Path::new(THREAD_NS)).unwrap(), here);
    }
}

//! Which network namespace a command runs in. An interface name means something only inside
//! one namespace (two namespaces may each have an `eth0`), while a bpffs is shared by all of
//! them; so a guard's pins are filed under the namespace of its interface, and a command acts
//! only on the guards of its own.
//!
//! A namespace is known by the inode number of its `nsfs` file (`/proc/self/ns/net`), the
//! number `lsns -t net` and `ip netns identify` work from. The number stays the same for the
//! namespace's whole life; once it is gone the kernel may give the number to a new one, whose
//! interfaces then have other indexes, which the health check sees (see `report::Health`).

use std::{
    fmt,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use crate::Error;

/// The file of the calling thread's network namespace.
const SELF_NS: &str = "/proc/self/ns/net";

/// The file of the initial network namespace (that of PID 1, when this process can see it).
const INIT_NS: &str = "/proc/1/ns/net";

/// Where `ip netns add` keeps named namespaces.
const NAMED_NS_DIR: &str = "/run/netns";

/// A network namespace, by its nsfs inode number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Netns(pub u64);

impl Netns {
    /// The namespace this process runs in.
    pub fn current() -> Result<Self, Error> {
        Self::of(Path::new(SELF_NS))
    }

    /// The namespace of a namespace file (`/proc/PID/ns/net`, `/run/netns/NAME`).
    pub fn of(path: &Path) -> Result<Self, Error> {
        std::fs::metadata(path)
            .map(|meta| Self(meta.ino()))
            .map_err(Error::io("reading the network namespace of", path))
    }

    /// How people know this namespace: `host` for the initial one, the `ip netns` name of a
    /// named one, else nothing.
    #[must_use]
    pub fn name(self) -> Option<String> {
        if Self::of(Path::new(INIT_NS)).is_ok_and(|init| init == self) {
            return Some("host".to_owned());
        }
        let entries = std::fs::read_dir(NAMED_NS_DIR).ok()?;
        entries
            .flatten()
            .find(|e| Self::of(&e.path()).is_ok_and(|ns| ns == self))
            .map(|e| format!("{} (ip netns)", e.file_name().to_string_lossy()))
    }

    /// The folder name of this namespace's guards under the pin root: `netns:<inode>`. The
    /// colon keeps it apart from any interface name (the kernel refuses `:` in those), so
    /// folders an earlier version filed directly by interface name are never mistaken for it.
    #[must_use]
    pub fn dir_name(self) -> String {
        format!("{}{}", DIR_PREFIX, self.0)
    }

    /// The namespace a folder name made by [`dir_name`](Self::dir_name) stands for.
    #[must_use]
    pub fn from_dir_name(name: &str) -> Option<Self> {
        name.strip_prefix(DIR_PREFIX)?.parse().ok().map(Self)
    }

    /// The folder of this namespace's guards under `root`.
    #[must_use]
    pub fn dir_in(self, root: &Path) -> PathBuf {
        root.join(self.dir_name())
    }
}

/// What every namespace folder's name starts with.
const DIR_PREFIX: &str = "netns:";

impl fmt::Display for Netns {
    /// `netns 4026531840 (host)`, or without the name when it has none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "netns {} {name}", self.0),
            None => write!(f, "netns {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_read_back_and_are_never_interface_names() {
        let ns = Netns(4_026_531_840);
        assert_eq!(ns.dir_name(), "netns:4026531840");
        assert_eq!(Netns::from_dir_name(&ns.dir_name()), Some(ns));
        for name in ["eth0", "netns:", "netns:x", "netns-1", "4026531840"] {
            assert_eq!(Netns::from_dir_name(name), None, "{name}");
        }
        assert!(
            ns.dir_name().parse::<crate::kernel::IfaceName>().is_err(),
            "a namespace folder must not parse as an interface name"
        );
    }

    #[test]
    fn this_process_has_a_namespace() {
        let here = Netns::current().unwrap();
        assert_eq!(Netns::current().unwrap(), here, "stable across calls");
    }
}

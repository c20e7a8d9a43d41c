//! Where a guarded interface's state is pinned: `<bpffs>/icmp-guard/<IFACE>/`.

use std::path::{Path, PathBuf};

use icmp_guard_common::maps;

use crate::iface::IfaceName;

/// Default bpffs mount point.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf";

/// Environment variable that overrides the bpffs path.
pub const BPFFS_ENV: &str = "ICMP_GUARD_BPFFS";

/// Folder under the bpffs that holds one sub-folder per guarded interface.
pub const ROOT_DIR: &str = "icmp-guard";

/// Every map the program pins, in the order they are pinned.
pub const MAPS: [&str; 6] = [
    maps::CONFIG,
    maps::COUNTERS,
    maps::SOURCES,
    maps::GLOBAL,
    maps::ALLOW,
    maps::DENY,
];

/// The root of all icmp-guard pins on a bpffs.
#[must_use]
pub fn root(bpffs: &Path) -> PathBuf {
    bpffs.join(ROOT_DIR)
}

/// The pins of one interface.
#[derive(Clone, Debug)]
pub struct Pins {
    pub iface: IfaceName,
    pub dir: PathBuf,
}

impl Pins {
    #[must_use]
    pub fn new(bpffs: &Path, iface: &IfaceName) -> Self {
        // A validated name has no `/` and is not `..`: the folder is always directly inside
        // the root.
        Self {
            iface: iface.clone(),
            dir: root(bpffs).join(iface.as_str()),
        }
    }

    /// The pinned link that keeps the program attached.
    #[must_use]
    pub fn link(&self) -> PathBuf {
        self.dir.join(maps::LINK_PIN)
    }

    /// A pinned map, by name.
    #[must_use]
    pub fn map(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Every pin icmp-guard makes for this interface, the link first: the only files
    /// `detach` and `clean` ever remove.
    pub fn all(&self) -> impl Iterator<Item = PathBuf> + '_ {
        std::iter::once(self.link()).chain(MAPS.iter().map(|name| self.map(name)))
    }

    /// Whether this interface holds icmp-guard pins.
    #[must_use]
    pub fn exist(&self) -> bool {
        self.link().exists()
    }
}

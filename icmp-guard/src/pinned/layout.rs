//! Where a guarded interface's state is pinned: `<bpffs>/icmp-guard/<IFACE>/`.

use std::path::{Path, PathBuf};

use icmp_guard_common::maps;

use super::private;
use crate::{Error, kernel::IfaceName};

/// Default bpffs mount point.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf";

/// Environment variable that overrides the bpffs path.
pub const BPFFS_ENV: &str = "ICMP_GUARD_BPFFS";

/// Folder under the bpffs that holds one sub-folder per guarded interface.
pub const ROOT_DIR: &str = "icmp-guard";

/// How every map pin icmp-guard makes is named, in this version and the others.
pub const MAP_PREFIX: &str = "IG_";

/// Every map the program pins, in the order they are pinned.
pub const MAPS: [&str; 10] = [
    maps::CONFIG,
    maps::COUNTERS,
    maps::SOURCES,
    maps::GLOBAL,
    maps::ADMISSION,
    maps::SEEN,
    maps::ALLOW,
    maps::DENY,
    maps::ALLOW_B,
    maps::DENY_B,
];

/// The root of all icmp-guard pins on a bpffs.
#[must_use]
pub fn root(bpffs: &Path) -> PathBuf {
    bpffs.join(ROOT_DIR)
}

/// The interfaces with pins under `bpffs`, sorted by name; none when `bpffs` is not a bpffs.
pub fn guarded(bpffs: &Path) -> Result<Vec<IfaceName>, Error> {
    let root = root(bpffs);
    if !super::bpffs::is_bpffs(bpffs) || !private::check_dir(&root)? {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&root).map_err(Error::io("listing", &root))? {
        let entry = entry.map_err(Error::io("listing", &root))?;
        // A folder whose name is no interface name was not made by icmp-guard.
        let Some(name) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if Pins::new(bpffs, &name).exist() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
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

    /// The pin root, `<bpffs>/icmp-guard`, which holds this interface's folder.
    #[must_use]
    pub fn root(&self) -> &Path {
        self.dir.parent().unwrap_or(&self.dir)
    }

    /// Checks the pin root and this interface's folder, where they exist: each must be a
    /// directory of root's that no one else can write (see [`private`]), or someone else
    /// could rename or replace the pins. Every command calls it before it trusts a pin.
    pub fn check(&self) -> Result<(), Error> {
        private::check_dir(self.root())?;
        private::check_dir(&self.dir)?;
        Ok(())
    }

    /// Creates the pin root and this interface's folder, mode 0700, or checks those there.
    pub fn make_dirs(&self) -> Result<(), Error> {
        private::make_dir(self.root())?;
        private::make_dir(&self.dir)
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

    /// Removes the pins icmp-guard makes (the link first, which detaches the program, then
    /// every map pin: this version's, and any `IG_*` map an older or newer version pinned)
    /// and the interface's folder. Nothing else is ever unlinked: a file icmp-guard did not
    /// make stays, and is named in the error. A folder that is a symbolic link is refused.
    pub fn remove(&self) -> Result<(), Error> {
        self.check()?;
        match std::fs::symlink_metadata(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("inspecting the pin folder", &self.dir)(e)),
            Ok(meta) if !meta.is_dir() => {
                return Err(Error::ForeignFiles {
                    dir: self.dir.clone(),
                    files: "the folder itself is not a directory".into(),
                });
            }
            Ok(_) => {}
        }
        let older = std::fs::read_dir(&self.dir)
            .map_err(Error::io("listing the pin folder", &self.dir))?
            .flatten()
            .filter(|e| {
                e.file_type().is_ok_and(|t| t.is_file())
                    && e.file_name()
                        .to_str()
                        .is_some_and(|n| n.starts_with(MAP_PREFIX))
            })
            .map(|e| e.path());
        let pins: Vec<PathBuf> = self.all().chain(older).collect();
        for path in pins {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing the pin", &path)(e)),
            }
        }
        match std::fs::remove_dir(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                let foreign: Vec<String> = std::fs::read_dir(&self.dir)
                    .map(|entries| {
                        entries
                            .flatten()
                            .map(|e| format!("{:?}", e.file_name().to_string_lossy()))
                            .collect()
                    })
                    .unwrap_or_default();
                Err(Error::ForeignFiles {
                    dir: self.dir.clone(),
                    files: foreign.join(", "),
                })
            }
            Err(e) => Err(Error::io("removing the pin folder", &self.dir)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_map_pin_carries_the_prefix_remove_looks_for() {
        for name in MAPS {
            assert!(name.starts_with(MAP_PREFIX), "{name}");
        }
        assert!(!maps::LINK_PIN.starts_with(MAP_PREFIX));
    }
}

//! Where a guarded interface's state is pinned: `<bpffs>/icmp-guard/netns:<INODE>/<IFACE>/`,
//! under the network namespace of the interface (see [`Netns`]): a bpffs is shared by every
//! namespace, and an interface name means something only inside one.
//!
//! Versions before 0.2 pinned at `<bpffs>/icmp-guard/<IFACE>/`. Such a folder is *legacy*: a
//! command that changes the interface moves it under its namespace when its link is attached
//! to the interface of that name in the command's namespace ([`Pins::adopt_legacy`]); `status`
//! lists the others.

use std::path::{Path, PathBuf};

use icmp_guard_common::maps;

use super::private;
use crate::{
    Error,
    kernel::{IfaceName, iface::ifindex, link, netlink, netns::Netns},
};

/// Default bpffs mount point.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf";

/// Environment variable that overrides the bpffs path.
pub const BPFFS_ENV: &str = "ICMP_GUARD_BPFFS";

/// Folder under the bpffs that holds one sub-folder per guarded interface.
pub const ROOT_DIR: &str = "icmp-guard";

/// How every map pin icmp-guard makes is named, in this version and the others.
pub const MAP_PREFIX: &str = "IG_";

/// The name a new link is pinned under before it is renamed to the link pin (bpffs refuses
/// dots in pin names).
pub const LINK_STAGING: &str = "link_staging";

/// What an interface's folder is renamed to, `removing:<IFACE>` beside it, before its pins are
/// removed: a removal cut short (a kill, a crash) leaves that folder, which the next command
/// that changes the interface finishes removing, never the pins of a guard that an attach
/// would take for an interrupted attach of its own. (No interface name holds a `:`.)
pub const REMOVING_PREFIX: &str = "removing:";

/// Every map the program pins, in the order they are pinned.
pub const MAPS: [&str; 13] = [
    maps::CONFIG,
    maps::COUNTERS,
    maps::SOURCES,
    maps::GLOBAL,
    maps::AHEAD,
    maps::ADMISSION,
    maps::SEEN,
    maps::ALLOW,
    maps::DENY,
    maps::ALLOW_B,
    maps::DENY_B,
    maps::CAPTURE,
    maps::CAPTURE_CTL,
];

/// The root of all icmp-guard pins on a bpffs.
#[must_use]
pub fn root(bpffs: &Path) -> PathBuf {
    bpffs.join(ROOT_DIR)
}

/// A folder found under the pin root: its namespace (none for a legacy folder), interface and
/// what it holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    pub netns: Option<Netns>,
    pub iface: IfaceName,
    pub stage: Stage,
}

/// What an interface's folder holds: a guard, or what a command cut short left of one, which
/// `clean` removes in any stage and: [`Stage::Staged`] and [`Stage::Removing`], the next
/// command that changes the interface ([`Pins::to_change`]); [`Stage::Interrupted`], the next
/// `attach`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// A guard: its link is pinned.
    Guard,
    /// A link pinned under [`LINK_STAGING`]: an attach stopped between pinning its new link
    /// and renaming the pin (over the dead link's, when it attached the guard again). The new
    /// link is attached: the guard enforces.
    Staged,
    /// A folder without a link: an attach stopped before it attached. Nothing enforces; the
    /// next `attach` reuses the maps pinned there.
    Interrupted,
    /// The folder renamed aside as `removing:<IFACE>`: a `detach` or `clean` stopped before
    /// it removed every pin, maybe before it detached the link.
    Removing,
}

/// The folders under the pin root, and the namespace folders that could not be trusted or
/// listed, each with the error that says why (one such folder hides only its own guards).
#[derive(Debug, Default)]
pub struct Listing {
    /// Sorted.
    pub found: Vec<Found>,
    pub unreadable: Vec<(PathBuf, Error)>,
}

/// Every guard under `bpffs`, in every namespace and legacy ones, and what a command cut short
/// left of one; none when `bpffs` is not a bpffs. An error only when the pin root itself
/// cannot be trusted or listed.
pub fn everywhere(bpffs: &Path) -> Result<Listing, Error> {
    let root = root(bpffs);
    let mut listing = Listing::default();
    if !super::bpffs::is_bpffs(bpffs) || !private::check_dir(&root)? {
        return Ok(listing);
    }
    for entry in read_dir(&root)? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(netns) = Netns::from_dir_name(name) {
            let dir = entry.path();
            let entries = private::check_dir(&dir).and_then(|_| read_dir(&dir));
            match entries {
                Ok(entries) => listing.found.extend(entries.iter().filter_map(|entry| {
                    let (iface, stage) = folder_stage(&entry.path())?;
                    Some(Found {
                        netns: Some(netns),
                        iface,
                        stage,
                    })
                })),
                Err(e) => listing.unreadable.push((dir, e)),
            }
        } else if let Some((iface, stage)) = folder_stage(&entry.path()) {
            // Pins of an earlier version: their guard, or a removal of them cut short (a
            // legacy folder without a link is no guard: `clean` removes it).
            if matches!(stage, Stage::Guard | Stage::Removing) {
                listing.found.push(Found {
                    netns: None,
                    iface,
                    stage,
                });
            }
        }
    }
    listing.found.sort();
    Ok(listing)
}

/// The interface and stage of the folder at `path`, if it is an interface's folder:
/// `<IFACE>` or `removing:<IFACE>`, a directory. Anything else under the root was not made by
/// icmp-guard.
fn folder_stage(path: &Path) -> Option<(IfaceName, Stage)> {
    let name = path.file_name()?.to_str()?;
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        return None;
    }
    if let Some(iface) = name.strip_prefix(REMOVING_PREFIX) {
        return Some((iface.parse().ok()?, Stage::Removing));
    }
    let iface = name.parse().ok()?;
    // The staging name first: a guard attached again pins its new link there before it
    // renames it over the old, dead one.
    let stage = if path.join(LINK_STAGING).exists() {
        Stage::Staged
    } else if path.join(maps::LINK_PIN).exists() {
        Stage::Guard
    } else {
        let entries = read_dir(path).ok()?;
        let ours = |e: &std::fs::DirEntry| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(MAP_PREFIX))
        };
        if !entries.is_empty() && !entries.iter().any(ours) {
            // Only what someone else put there: a removal leaves such a folder (naming the
            // files), and nothing in it is icmp-guard's.
            return None;
        }
        // As `attach` takes it: a folder without a link is an attach to finish.
        Stage::Interrupted
    };
    Some((iface, stage))
}

/// The entries of a folder.
fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, Error> {
    std::fs::read_dir(dir)
        .map_err(Error::io("listing", dir))?
        .collect::<Result<_, _>>()
        .map_err(Error::io("listing", dir))
}

/// What an interface's pin folder holds (see [`Pins::contents`]).
struct Contents {
    /// icmp-guard's pins, the link first.
    pins: Vec<PathBuf>,
    /// The names of anything else.
    foreign: Vec<String>,
}

/// The pins of one interface.
#[derive(Clone, Debug)]
pub struct Pins {
    pub iface: IfaceName,
    /// The namespace of the interface.
    pub netns: Netns,
    pub dir: PathBuf,
    root: PathBuf,
}

impl Pins {
    /// The pins of `iface` in this process's network namespace.
    pub fn new(bpffs: &Path, iface: &IfaceName) -> Result<Self, Error> {
        Ok(Self::in_netns(bpffs, Netns::current()?, iface))
    }

    /// The pins of `iface` in this process's network namespace, for a command that changes
    /// them and holds the lock: a legacy folder of the interface is adopted first (see
    /// [`adopt_legacy`](Self::adopt_legacy)).
    pub fn to_change(bpffs: &Path, iface: &IfaceName) -> Result<Self, Error> {
        let pins = Self::new(bpffs, iface)?;
        pins.adopt_legacy()?;
        // A removal cut short, of this namespace's folder or of a legacy one: finish it (the
        // folder's name says it is no guard any more).
        for folder in [pins.clone(), pins.legacy()] {
            let removing = Self {
                dir: folder.removing_dir(),
                ..pins.clone()
            };
            if removing.dir.exists() {
                removing.remove_folder()?;
                log::warn!(
                    "{}: finished removing the pins at {}, which a detach or clean cut short",
                    pins.iface,
                    crate::error::shown(&removing.dir)
                );
            }
        }
        // A process that died between pinning a new link aside and renaming it left the live
        // link under the staging name: finish the rename.
        let staging = pins.link_staging();
        if staging.exists() {
            pins.check()?;
            std::fs::rename(&staging, pins.link())
                .map_err(Error::io("finishing the pin of the link", &staging))?;
        }
        Ok(pins)
    }

    /// The pins of `iface` in the namespace `netns`.
    #[must_use]
    pub fn in_netns(bpffs: &Path, netns: Netns, iface: &IfaceName) -> Self {
        let root = root(bpffs);
        // A validated name has no `/` and is not `..`: the folder is always directly inside
        // the namespace's folder.
        Self {
            iface: iface.clone(),
            netns,
            dir: netns.dir_in(&root).join(iface.as_str()),
            root,
        }
    }

    /// The pin root, `<bpffs>/icmp-guard`.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of the namespace's guards, which holds this interface's folder.
    #[must_use]
    pub fn netns_dir(&self) -> PathBuf {
        self.netns.dir_in(&self.root)
    }

    /// Where a version before 0.2 pinned this interface's state.
    #[must_use]
    pub fn legacy_dir(&self) -> PathBuf {
        self.root.join(self.iface.as_str())
    }

    /// The legacy folder of this interface as pins of their own, for `clean` to remove when
    /// no other namespace's interface holds their link (see [`legacy_is_ours`]).
    ///
    /// [`legacy_is_ours`]: Self::legacy_is_ours
    #[must_use]
    pub fn legacy(&self) -> Self {
        Self {
            dir: self.legacy_dir(),
            ..self.clone()
        }
    }

    /// Whether the legacy folder's link is dead, or attached to this namespace's interface of
    /// this name: then nothing of another namespace is lost by removing it.
    #[must_use]
    pub fn legacy_is_ours(&self) -> bool {
        link::pinned_state(&self.legacy_dir().join(maps::LINK_PIN))
            .map_or(true, |state| !state.attached() || self.carries(state))
    }

    /// Whether `state`, a live link's, is on this namespace's interface of this name. The
    /// index alone does not tell (every namespace numbers its interfaces from 1): the
    /// interface must also carry the link's program, as this namespace's rtnetlink says.
    fn carries(&self, state: link::LinkState) -> bool {
        ifindex(&self.iface).is_ok_and(|index| {
            index == state.ifindex
                && netlink::xdp_state(index)
                    .ok()
                    .flatten()
                    .is_some_and(|xdp| xdp.program_id == state.program_id)
        })
    }

    /// Moves a legacy folder of this interface here (an atomic rename inside the bpffs, which
    /// keeps the guard attached and its state), when its link is attached to the interface of
    /// this name in this namespace; a legacy folder of another namespace's interface, or one
    /// whose link is dead, stays where it is. Call it holding the lock. Returns whether it
    /// moved one.
    pub fn adopt_legacy(&self) -> Result<bool, Error> {
        let legacy = self.legacy_dir();
        // No bpffs there yet (attach mounts it, or refuses the path, later): nothing to adopt.
        let bpffs = self.root.parent().unwrap_or(&self.root);
        if !super::bpffs::is_bpffs(bpffs) || self.dir.exists() || !private::check_dir(&legacy)? {
            return Ok(false);
        }
        let ours = link::pinned_state(&legacy.join(maps::LINK_PIN))
            .is_ok_and(|state| state.attached() && self.carries(state));
        if !ours {
            return Ok(false);
        }
        private::make_dir(&self.root)?;
        private::make_dir(&self.netns_dir())?;
        std::fs::rename(&legacy, &self.dir)
            .map_err(Error::io("moving the legacy pins", &legacy))?;
        log::warn!(
            "{}: moved the pins of an earlier version from {} to {}",
            self.iface,
            crate::error::shown(&legacy),
            crate::error::shown(&self.dir)
        );
        Ok(true)
    }

    /// Checks the pin root, the namespace's folder and this interface's folder, where they
    /// exist: each must be a directory of root's that no one else can write (see
    /// [`private`]), or someone else could rename or replace the pins. Every command calls it
    /// before it trusts a pin.
    pub fn check(&self) -> Result<(), Error> {
        private::check_dir(self.root())?;
        private::check_dir(&self.netns_dir())?;
        private::check_dir(&self.dir)?;
        Ok(())
    }

    /// Creates the pin root and this interface's folder, mode 0700, or checks those there.
    pub fn make_dirs(&self) -> Result<(), Error> {
        private::make_dir(self.root())?;
        private::make_dir(&self.netns_dir())?;
        private::make_dir(&self.dir)
    }

    /// The pinned link that keeps the program attached.
    #[must_use]
    pub fn link(&self) -> PathBuf {
        self.dir.join(maps::LINK_PIN)
    }

    /// Where a new link is pinned before it is renamed over [`link`](Self::link): replacing a
    /// dead link leaves the old pin in place until the new one is attached and pinned.
    #[must_use]
    pub fn link_staging(&self) -> PathBuf {
        self.dir.join(LINK_STAGING)
    }

    /// A pinned map, by name.
    #[must_use]
    pub fn map(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Every pin icmp-guard makes for this interface, the link first: the only files
    /// `detach` and `clean` ever remove.
    pub fn all(&self) -> impl Iterator<Item = PathBuf> + '_ {
        [self.link(), self.link_staging()]
            .into_iter()
            .chain(MAPS.iter().map(|name| self.map(name)))
    }

    /// Whether this interface holds icmp-guard pins.
    #[must_use]
    pub fn exist(&self) -> bool {
        self.link().exists()
    }

    /// The folder this interface's is renamed to while its pins are removed (see
    /// [`REMOVING_PREFIX`]).
    #[must_use]
    pub fn removing_dir(&self) -> PathBuf {
        let parent = self.dir.parent().unwrap_or(&self.root);
        parent.join(format!("{REMOVING_PREFIX}{}", self.iface))
    }

    /// Removes the pins icmp-guard makes (the link first, which detaches the program, then
    /// every map pin: this version's, and any `IG_*` map an older or newer version pinned)
    /// and the interface's folder, after renaming the folder aside (see [`REMOVING_PREFIX`]),
    /// and what an earlier removal cut short left there. Nothing else is ever unlinked: a
    /// folder holding a file icmp-guard did not make is left as it was, and the file named in
    /// the error. A folder that is a symbolic link is refused.
    pub fn remove(&self) -> Result<(), Error> {
        self.check()?;
        let removing = Self {
            dir: self.removing_dir(),
            ..self.clone()
        };
        removing.remove_folder()?;
        let Some(Contents { foreign, .. }) = self.contents()? else {
            return Ok(());
        };
        if !foreign.is_empty() {
            // A file someone else put there would move with the folder: the pins are removed
            // in place (the link first), and the error names the file.
            return self.remove_folder();
        }
        std::fs::rename(&self.dir, &removing.dir)
            .map_err(Error::io("renaming the pin folder aside", &self.dir))?;
        removing.remove_folder()
    }

    /// The pins in this folder, the link first, and the names of anything else in it; `None`
    /// if there is no folder (or no folder above it). An error if it is not a directory.
    fn contents(&self) -> Result<Option<Contents>, Error> {
        match std::fs::symlink_metadata(&self.dir) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(Error::io("inspecting the pin folder", &self.dir)(e)),
            Ok(meta) if !meta.is_dir() => {
                return Err(Error::ForeignFiles {
                    dir: self.dir.clone(),
                    files: "the folder itself is not a directory".into(),
                });
            }
            Ok(_) => {}
        }
        // Root's alone, and in a folder of root's alone: no one else can have put a pin here.
        if let Some(parent) = self.dir.parent() {
            private::check_dir(parent)?;
        }
        private::check_dir(&self.dir)?;
        let ours: Vec<PathBuf> = self.all().collect();
        let mut older = Vec::new();
        let mut foreign = Vec::new();
        for entry in std::fs::read_dir(&self.dir)
            .map_err(Error::io("listing the pin folder", &self.dir))?
            .flatten()
        {
            let path = entry.path();
            let is_map = entry.file_type().is_ok_and(|t| t.is_file())
                && entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(MAP_PREFIX));
            if ours.contains(&path) {
                continue;
            }
            if is_map {
                older.push(path);
            } else {
                foreign.push(format!("{:?}", entry.file_name().to_string_lossy()));
            }
        }
        Ok(Some(Contents {
            pins: ours.into_iter().chain(older).collect(),
            foreign,
        }))
    }

    /// Unlinks every pin of this folder (the link first) and the folder; nothing when there is
    /// none.
    fn remove_folder(&self) -> Result<(), Error> {
        let Some(Contents { pins, .. }) = self.contents()? else {
            return Ok(());
        };
        // Off the interface before its pin goes, so the interface is free when this returns.
        // Best effort: unlinking the pin detaches it too, a moment later.
        let link = self.link();
        if link.exists() {
            let _ = link::detach_pinned(&link);
        }
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

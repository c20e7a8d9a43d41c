//! `icmp-guard status`: every guard of this network namespace under the bpffs, and a mark for
//! those of other namespaces (and legacy pins), which this namespace cannot see or act on.

use std::path::{Path, PathBuf};

use icmp_guard_common::maps;

use crate::{
    Error,
    cli::StatusArgs,
    error::shown,
    kernel::{iface::ifindex, link, netlink, netns::Netns, privilege},
    pinned::{
        Pins, bpffs,
        layout::{self, Found, Listing, Stage},
        lock::Quiet,
    },
    report::{Keep, Snapshot, text},
};

pub fn run(bpffs_path: &Path, args: &StatusArgs) -> Result<(), Error> {
    privilege::require("status", privilege::PINS)?;
    bpffs::require(bpffs_path)?;
    let here = Netns::current()?;
    let Listed {
        guards,
        left,
        unreadable,
        lock,
    } = listed(bpffs_path, here)?;
    let (local, elsewhere): (Vec<Found>, Vec<Found>) =
        guards.into_iter().partition(|f| f.netns == Some(here));
    let (left_here, left_elsewhere): (Vec<Left>, Vec<Left>) =
        left.into_iter().partition(|l| l.found.netns == Some(here));
    // One guard that cannot be read (pins of another version, say) is one row saying why,
    // not a status of none.
    let snapshots: Vec<(&Found, Result<Snapshot, Error>)> = local
        .iter()
        .map(|f| (f, Snapshot::open(bpffs_path, &f.iface, Keep::Top(0))))
        .collect();
    let lock_note = lock.note(bpffs_path);
    if args.json {
        let mut rows: Vec<serde_json::Value> = snapshots
            .iter()
            .map(|(found, snapshot)| match snapshot {
                Ok(snapshot) => serde_json::to_value(snapshot.status()),
                Err(e) => Ok(serde_json::json!({
                    "interface": found.iface.as_str(),
                    "error": crate::error::chain(e),
                })),
            })
            .collect::<Result<_, _>>()
            .map_err(Error::Json)?;
        rows.extend(left_here.iter().map(|left| {
            serde_json::json!({
                "interface": left.found.iface.as_str(),
                "netns": here.inode,
                "health": { "state": "cut_short" },
                "stage": left.stage_name(),
                "attached": left.attached,
                "pins": left.dir,
                "note": left.line(),
            })
        }));
        rows.extend(
            unreadable.iter().map(
                |(dir, e)| serde_json::json!({ "pins": dir, "error": crate::error::chain(e) }),
            ),
        );
        println!("{}", serde_json::to_string(&rows).map_err(Error::Json)?);
        // On stderr: the rows stay one per interface (or folder) for scripts that count them.
        if let Some(note) = lock_note {
            eprintln!("icmp-guard: warning: {note}");
        }
        return unreadable_error(&snapshots, &unreadable);
    }
    if snapshots.is_empty() && left_here.is_empty() {
        println!(
            "no interface is guarded in this network namespace ({here}; pins under {})",
            shown(here.dir_in(&layout::root(bpffs_path)))
        );
    }
    for (found, snapshot) in &snapshots {
        match snapshot {
            Ok(snapshot) => print!("{}", text::status(snapshot)),
            Err(e) => println!(
                "{}: cannot be read: {}",
                found.iface,
                crate::error::chain(e)
            ),
        }
    }
    for left in left_here.iter().chain(&left_elsewhere) {
        println!("{}", left.line());
    }
    for found in &elsewhere {
        println!("{}", elsewhere_line(bpffs_path, here, found));
    }
    for (_, e) in &unreadable {
        println!("(not listed: {})", crate::error::chain(e));
    }
    if let Some(note) = lock_note {
        println!("({note})");
    }
    unreadable_error(&snapshots, &unreadable)
}

/// The folders under the pin root, read in one go: the guards, what commands cut short left
/// (unless a command may be running), the namespace folders that could not be read, and what
/// the command lock said.
struct Listed {
    guards: Vec<Found>,
    left: Vec<Left>,
    unreadable: Vec<(PathBuf, Error)>,
    lock: LockSaid,
}

/// What the command lock said while `status` read the folders.
enum LockSaid {
    /// No command held it: what looks cut short was.
    Quiet,
    /// A command held it: what looks cut short may be its work.
    Changing,
    /// It could not be told (why).
    Unknown(String),
}

impl LockSaid {
    /// The line (on stderr with `--json`) that says why what looks cut short is not shown,
    /// or may be a command's work in progress.
    fn note(&self, bpffs: &Path) -> Option<String> {
        match self {
            Self::Quiet => None,
            Self::Changing => Some(format!(
                "another icmp-guard command is changing the guards under {} now: what it has not finished is not shown",
                shown(bpffs)
            )),
            Self::Unknown(why) => Some(format!(
                "whether another icmp-guard command is changing the guards cannot be told ({why}): what looks cut short may be its work in progress"
            )),
        }
    }
}

/// Reads the folders under the pin root holding the command lock shared, if no command holds
/// it (see [`Quiet`]): a command cut short leaves what a running command has not finished
/// yet, and only the lock tells them apart. The lock is let go before the guards are read.
fn listed(bpffs: &Path, here: Netns) -> Result<Listed, Error> {
    let quiet = Quiet::hold(bpffs);
    let lock = match &quiet {
        Ok(Some(_)) => LockSaid::Quiet,
        Ok(None) => LockSaid::Changing,
        Err(e) => LockSaid::Unknown(crate::error::chain(e)),
    };
    let Listing { found, unreadable } = layout::everywhere(bpffs)?;
    let (guards, others): (Vec<Found>, Vec<Found>) =
        found.into_iter().partition(|f| f.stage == Stage::Guard);
    // What a running command has not finished is not shown, so not looked at either.
    let left: Vec<Left> = if matches!(lock, LockSaid::Changing) {
        Vec::new()
    } else {
        others
            .into_iter()
            .map(|found| Left::of(bpffs, here, found))
            .collect()
    };
    drop(quiet);
    Ok(Listed {
        guards,
        left,
        unreadable,
        lock,
    })
}

/// The error for guards, or namespace folders, that could not be read, naming the first
/// one's reason (stderr then says why, as for any other command); `Ok` when every one was.
fn unreadable_error(
    snapshots: &[(&Found, Result<Snapshot, Error>)],
    folders: &[(PathBuf, Error)],
) -> Result<(), Error> {
    let mut errors = snapshots
        .iter()
        .filter_map(|(_, s)| s.as_ref().err())
        .chain(folders.iter().map(|(_, e)| e));
    let Some(first) = errors.next() else {
        return Ok(());
    };
    Err(Error::Unreadable {
        count: 1 + errors.count(),
        first: crate::error::chain(first),
    })
}

/// What a command cut short left of a guard (a [`Found`] of any stage but a guard's): where,
/// whether a link of it is still attached, and for an interrupted attach of this namespace,
/// the program the interface runs now (which makes `attach` refuse to finish it).
struct Left {
    found: Found,
    /// This process's namespace.
    here: Netns,
    dir: PathBuf,
    attached: bool,
    running: Option<u32>,
}

impl Left {
    fn of(bpffs: &Path, here: Netns, found: Found) -> Self {
        let pins = match found.netns {
            Some(netns) => Pins::in_netns(bpffs, netns, &found.iface),
            None => Pins::in_netns(bpffs, here, &found.iface).legacy(),
        };
        let (dir, link) = match found.stage {
            Stage::Removing => {
                let dir = pins.removing_dir();
                let link = dir.join(maps::LINK_PIN);
                (dir, link)
            }
            Stage::Staged => (pins.dir.clone(), pins.link_staging()),
            Stage::Guard | Stage::Interrupted => (pins.dir.clone(), pins.link()),
        };
        let attached = link::pinned_state(&link).is_ok_and(link::LinkState::attached);
        let running = (found.stage == Stage::Interrupted && found.netns == Some(here))
            .then(|| ifindex(&found.iface).ok())
            .flatten()
            .and_then(|index| netlink::xdp_state(index).ok().flatten())
            .map(|xdp| xdp.program_id);
        Self {
            found,
            here,
            dir,
            attached,
            running,
        }
    }

    fn stage_name(&self) -> &'static str {
        match self.found.stage {
            Stage::Guard => "guard",
            Stage::Staged => "staged",
            Stage::Interrupted => "interrupted",
            Stage::Removing => "removing",
        }
    }

    /// The line `status` prints.
    fn line(&self) -> String {
        let iface = &self.found.iface;
        let dir = shown(&self.dir);
        let what = match self.found.stage {
            Stage::Staged => format!(
                "an attach of {iface} stopped after it pinned its link under a temporary name at {dir}; {}; the next `set`, `allow`/`deny add` or `del` of {iface} names the pin, and `status` shows the guard again (`detach` or `clean` removes it)",
                if self.attached {
                    "the guard is attached and enforces"
                } else {
                    "its link is detached: it enforces nothing"
                }
            ),
            Stage::Interrupted => match self.running {
                None => format!(
                    "an attach of {iface} stopped before it attached: its folder {dir} holds no link, and nothing of it enforces; `icmp-guard attach {iface}` finishes it with the maps pinned there, `icmp-guard clean {iface}` removes them"
                ),
                Some(program) => format!(
                    "an attach of {iface} stopped before it attached: its folder {dir} holds no link, and nothing of it enforces; {iface} runs program {program}, which is not this folder's, so `attach` refuses to finish it: `icmp-guard clean {iface}` removes the folder's maps"
                ),
            },
            Stage::Removing => format!(
                "a detach or clean of {iface} stopped after it renamed the pins aside to {dir}; {}; `icmp-guard clean {iface}` (or any command that changes {iface}) finishes the removal",
                if self.attached {
                    "their link is still attached: the program runs on the interface"
                } else {
                    "their link is detached: they enforce nothing"
                }
            ),
            Stage::Guard => format!("{iface} is guarded (pins at {dir})"),
        };
        let whose = match self.found.netns {
            // A legacy removal is finished by a command in any namespace.
            None if self.found.stage == Stage::Removing => {
                " (pins of an earlier version)".to_owned()
            }
            None => " (pins of an earlier version; run the command in the interface's network namespace)".to_owned(),
            Some(netns) if netns != self.here => format!(
                " (in another network namespace, {netns}: run the command there; if that namespace is gone, `rm -r` the folder)"
            ),
            Some(_) => String::new(),
        };
        format!("(cut short: {what}{whose})")
    }
}

/// A guard this namespace does not show: another namespace's, or legacy pins.
fn elsewhere_line(bpffs: &Path, here: Netns, found: &Found) -> String {
    if let Some(netns) = found.netns {
        let dir = netns
            .dir_in(&layout::root(bpffs))
            .join(found.iface.as_str());
        // An attached link holds its interface, hence its namespace; a detached one enforces
        // nothing, whether the interface or the whole namespace is gone.
        let state = link::pinned_state(&dir.join("link"));
        let attached = state.as_ref().is_ok_and(|s| s.attached());
        if netns.inode == here.inode {
            // This namespace's number with another cookie: a namespace that is gone. Its
            // interface may live on elsewhere (a physical device returns to the initial
            // namespace when its namespace is destroyed), and its guard with it.
            if let (true, Ok(state)) = (attached, &state) {
                return format!(
                    "(also guarded: {} was guarded in a network namespace that no longer exists, whose number this one now has, and its link is still attached, to ifindex {} of the namespace the interface went to (a physical device returns to the initial one): the guard enforces there; removing its pins at {} would detach it)",
                    found.iface,
                    state.ifindex,
                    shown(&dir)
                );
            }
            return format!(
                "(stale: {} was guarded in a network namespace that no longer exists, whose number this one now has; its link is detached and its pins at {} enforce nothing: `rm -r` them)",
                found.iface,
                shown(&dir)
            );
        }
        if !attached {
            return format!(
                "(stale: {} of network namespace {netns} enforces nothing: its link is detached, because the interface or the namespace is gone; if the namespace is gone, `rm -r` its pins at {})",
                found.iface,
                shown(&dir)
            );
        }
        return format!(
            "(also guarded: {} in another network namespace, {netns}; run `icmp-guard status` there, e.g. with `nsenter --net=/run/netns/NAME`)",
            found.iface
        );
    }
    let legacy = Pins::new(bpffs, &found.iface).map(|p| p.legacy_dir());
    let attached = legacy.as_ref().is_ok_and(|dir| {
        link::pinned_state(&dir.join("link")).is_ok_and(link::LinkState::attached)
    });
    let shown_dir = legacy.map_or_else(|_| "?".to_owned(), |d| shown(&d));
    if !attached {
        // Only a live guard is adopted; a dead one is only removed.
        return format!(
            "(also: {} has pins of an earlier version at {shown_dir}, whose link is detached: they enforce nothing; `icmp-guard clean {}` in the interface's namespace removes them)",
            found.iface, found.iface
        );
    }
    format!(
        "(also: {} has pins of an earlier version at {shown_dir}, not bound to a network namespace; `icmp-guard attach {} --replace` in the interface's namespace adopts them, or `icmp-guard clean {}` there removes them)",
        found.iface, found.iface, found.iface
    )
}

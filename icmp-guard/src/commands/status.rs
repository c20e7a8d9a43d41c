//! `icmp-guard status`: every guard of this network namespace under the bpffs, and a mark for
//! those of other namespaces (and legacy pins), which this namespace cannot see or act on.

use std::path::Path;

use crate::{
    Error,
    cli::StatusArgs,
    error::shown,
    kernel::{link, netns::Netns, privilege},
    pinned::{
        Pins, bpffs,
        layout::{self, Found},
    },
    report::{Keep, Snapshot, text},
};

pub fn run(bpffs_path: &Path, args: &StatusArgs) -> Result<(), Error> {
    privilege::require("status", privilege::PINS)?;
    bpffs::require(bpffs_path)?;
    let here = Netns::current()?;
    let (local, elsewhere): (Vec<Found>, Vec<Found>) = layout::everywhere(bpffs_path)?
        .into_iter()
        .partition(|f| f.netns == Some(here));
    // One guard that cannot be read (pins of another version, say) is one row saying why,
    // not a status of none.
    let snapshots: Vec<(&Found, Result<Snapshot, Error>)> = local
        .iter()
        .map(|f| (f, Snapshot::open(bpffs_path, &f.iface, Keep::Top(0))))
        .collect();
    if args.json {
        let rows: Vec<serde_json::Value> = snapshots
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
        println!("{}", serde_json::to_string(&rows).map_err(Error::Json)?);
        return unreadable(&snapshots);
    }
    if snapshots.is_empty() {
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
    for found in &elsewhere {
        println!("{}", elsewhere_line(bpffs_path, here, found));
    }
    unreadable(&snapshots)
}

/// The error for guards that could not be read, naming the first one's reason (stderr then
/// says why, as for any other command); `Ok` when every one was.
fn unreadable(snapshots: &[(&Found, Result<Snapshot, Error>)]) -> Result<(), Error> {
    let mut errors = snapshots.iter().filter_map(|(_, s)| s.as_ref().err());
    let Some(first) = errors.next() else {
        return Ok(());
    };
    Err(Error::Unreadable {
        count: 1 + errors.count(),
        first: crate::error::chain(first),
    })
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

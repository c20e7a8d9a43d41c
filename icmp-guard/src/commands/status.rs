//! `icmp-guard status`: every guard of this network namespace under the bpffs, and a mark for
//! those of other namespaces (and legacy pins), which this namespace cannot see or act on.

use std::path::Path;

use crate::{
    Error,
    cli::StatusArgs,
    error::shown,
    kernel::{netns::Netns, privilege},
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
    let snapshots = local
        .iter()
        .map(|f| Snapshot::open(bpffs_path, &f.iface, Keep::Top(0)))
        .collect::<Result<Vec<_>, _>>()?;
    if args.json {
        let rows: Vec<_> = snapshots.iter().map(Snapshot::status).collect();
        println!("{}", serde_json::to_string(&rows).map_err(Error::Json)?);
        return Ok(());
    }
    if snapshots.is_empty() {
        println!(
            "no interface is guarded in this network namespace ({here}; pins under {})",
            shown(here.dir_in(&layout::root(bpffs_path)))
        );
    }
    for snapshot in &snapshots {
        print!("{}", text::status(snapshot));
    }
    for found in &elsewhere {
        println!("{}", elsewhere_line(bpffs_path, here, found));
    }
    Ok(())
}

/// A guard this namespace does not show: another namespace's, or legacy pins.
fn elsewhere_line(bpffs: &Path, here: Netns, found: &Found) -> String {
    if let Some(netns) = found.netns.filter(|ns| ns.inode == here.inode) {
        // This namespace's number with another cookie: a namespace that is gone.
        let dir = netns
            .dir_in(&layout::root(bpffs))
            .join(found.iface.as_str());
        return format!(
            "(stale: {} was guarded in a network namespace that no longer exists, whose number this one now has; its pins at {} enforce nothing: `rm -r` them)",
            found.iface,
            shown(&dir)
        );
    }
    if let Some(netns) = found.netns {
        return format!(
            "(also guarded: {} in another network namespace, {netns}; run `icmp-guard status` there, e.g. with `nsenter --net=/run/netns/NAME`)",
            found.iface
        );
    }
    let legacy = Pins::new(bpffs, &found.iface).map(|p| p.legacy_dir());
    format!(
        "(also: {} has pins of an earlier version at {}, not bound to a network namespace; `icmp-guard attach {} --replace` in the interface's namespace adopts them, or `icmp-guard clean {}` there removes them)",
        found.iface,
        legacy.map_or_else(|_| "?".to_owned(), |d| shown(&d)),
        found.iface,
        found.iface
    )
}

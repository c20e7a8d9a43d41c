//! `icmp-guard clean`: remove every pin of an interface, whatever state it is in (stale,
//! left by a crash, or made by an incompatible version). Removing the link pin detaches the
//! guard; the maps go with their pins.

use std::path::Path;

use crate::{
    Error,
    kernel::{IfaceName, privilege},
    pinned::{Lock, Pins},
};

pub fn run(bpffs: &Path, iface: &IfaceName) -> Result<(), Error> {
    privilege::require("clean", privilege::PINS)?;
    let _lock = Lock::acquire(bpffs)?;
    let pins = Pins::to_change(bpffs, iface)?;
    pins.check()?;
    // Pins of the earlier layout that were not adopted (their link is dead, say) are this
    // interface's too, unless another namespace's interface holds their link.
    let legacy = pins.legacy();
    let folders = [&pins, &legacy];
    let found: Vec<&&Pins> = folders
        .iter()
        .filter(|p| p.dir.exists() && (p.dir == pins.dir || pins.legacy_is_ours()))
        .collect();
    if found.is_empty() {
        println!("{iface}: nothing to clean under {}", pins.dir.display());
        return Ok(());
    }
    for p in found {
        p.remove()?;
        println!("{iface}: every pin under {} removed", p.dir.display());
    }
    Ok(())
}

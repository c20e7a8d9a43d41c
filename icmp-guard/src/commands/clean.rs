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
    if !pins.dir.exists() {
        println!("{iface}: nothing to clean under {}", pins.dir.display());
        return Ok(());
    }
    pins.remove()?;
    println!("{iface}: every pin under {} removed", pins.dir.display());
    Ok(())
}

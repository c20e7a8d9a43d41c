//! `icmp-guard detach`: remove every pin, the link's first (which detaches the program).

use std::path::Path;

use crate::{
    Error,
    kernel::{IfaceName, privilege},
    pinned::{Lock, Pins, health::Health},
};

pub fn run(bpffs: &Path, iface: &IfaceName) -> Result<(), Error> {
    privilege::require("detach", privilege::PINS)?;
    let _lock = Lock::acquire(bpffs)?;
    let pins = Pins::to_change(bpffs, iface)?;
    pins.check()?;
    if !pins.exist() {
        return Err(Error::NotGuarded {
            iface: iface.as_str().to_owned(),
            dir: pins.dir,
        });
    }
    // Where the guard really was, for the message: it follows its interface through a rename
    // or a move to another namespace.
    let elsewhere = match Health::of_pins(pins.clone()) {
        Ok(Health::Renamed { ifindex }) => {
            format!(" (its guard was on ifindex {ifindex}, which has another name now)")
        }
        Ok(Health::Moved { ifindex }) => format!(
            " (its guard was on the interface moved to another network namespace, ifindex {ifindex} there)"
        ),
        _ => String::new(),
    };
    // Unlinking the link's pin, its last reference, detaches the program; the folder is
    // renamed aside first, so a detach cut short is never taken for an interrupted attach.
    pins.remove()?;
    println!("icmp-guard detached from {iface}{elsewhere}; pins removed");
    Ok(())
}

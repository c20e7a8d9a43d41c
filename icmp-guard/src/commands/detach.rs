//! `icmp-guard detach`: unpin the link (which detaches the program) and remove every pin.

use std::path::Path;

use aya::programs::links::PinnedLink;

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
    let path = pins.link();
    let link = PinnedLink::from_pin(&path).map_err(Error::pin("opening the pinned link", &path))?;
    // Removing the pin leaves our fd as the link's last reference; dropping it detaches.
    let link = link
        .unpin()
        .map_err(Error::io("removing the pinned link", &path))?;
    drop(link);
    pins.remove()?;
    println!("icmp-guard detached from {iface}{elsewhere}; pins removed");
    Ok(())
}

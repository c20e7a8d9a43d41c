//! `icmp-guard set`: change limits live; buckets, counters and lists are kept (but a source
//! prefix length that changes removes the sources tracked under the old one).

use std::path::Path;

use crate::{
    Error,
    cli::SetArgs,
    kernel::{clock_tick_ns, privilege},
    pinned::{Guard, Lock, Pins},
    policy::{self, Overrides},
};

pub fn run(bpffs: &Path, args: &SetArgs) -> Result<(), Error> {
    if args.limits.is_empty() {
        return Err(Error::Usage(format!(
            "set {iface} needs at least one of {}, e.g. `icmp-guard set {iface} --echo-rate 50`",
            Overrides::flags(),
            iface = args.iface,
        )));
    }
    privilege::require("set", privilege::PINS)?;
    let _lock = Lock::acquire(bpffs)?;
    let mut guard = Guard::open(Pins::to_change(bpffs, &args.iface)?)?;
    let current = guard.maps.config()?;
    let new = args.limits.apply(&current, clock_tick_ns())?;
    policy::check_fixed(&args.iface, &current, &new)?;
    guard.maps.set_config(&new)?;
    println!("{}: {}", args.iface, policy::describe(&new));
    if let Some(note) = policy::prefix_note(&args.iface, &current, &new) {
        println!("{note}");
    }
    Ok(())
}

//! `icmp-guard set`: change limits live.

use std::path::Path;

use crate::{Error, cli::SetArgs, guard::Guard, limits, lock::Lock, pins::Pins, privilege};

pub fn run(bpffs: &Path, args: &SetArgs) -> Result<(), Error> {
    if args.limits.is_empty() {
        return Err(Error::InvalidLimit {
            what: "arguments",
            why: "no limit given; pass at least one of --echo-rate, --echo-burst, --max-echo-size"
                .into(),
        });
    }
    privilege::require("set", privilege::PINS)?;
    let _lock = Lock::acquire(bpffs)?;
    let mut guard = Guard::open(Pins::new(bpffs, &args.iface))?;
    let old = guard.config()?;
    let new = args.limits.apply(&old, limits::online_cpus())?;
    guard.set_config(&new)?;
    println!("{}: {}", args.iface, limits::describe(&new));
    Ok(())
}

//! `icmp-guard stats`: counters per reason and the top sources, once or `--watch`ed.

use std::{path::Path, time::Duration};

use crate::{
    Error,
    cli::StatsArgs,
    kernel::privilege,
    pinned::{Guard, Pins},
    report::{Snapshot, text},
};

pub fn run(bpffs: &Path, args: &StatsArgs) -> Result<(), Error> {
    privilege::require("stats", privilege::PINS)?;
    let guard = Guard::open(Pins::new(bpffs, &args.iface)?)?;
    let snapshot = Snapshot::read(&guard)?;
    if let Some(secs) = args.watch {
        return watch(&guard, snapshot, secs.max(1), args.top);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&snapshot.stats(args.top)).map_err(Error::Json)?
        );
    } else {
        print!("{}", text::stats(&snapshot, args.top));
    }
    Ok(())
}

/// `--watch`: redraws every `secs` seconds with per-second rates per reason and the sources
/// dropping the most right now, like `xdp-filter poll`. Runs until interrupted.
fn watch(guard: &Guard, mut before: Snapshot, secs: u64, top: usize) -> Result<(), Error> {
    loop {
        std::thread::sleep(Duration::from_secs(secs));
        let now = Snapshot::read(guard)?;
        print!("{}", text::watch(&before, &now, secs, top));
        let _ = std::io::Write::flush(&mut std::io::stdout());
        before = now;
    }
}

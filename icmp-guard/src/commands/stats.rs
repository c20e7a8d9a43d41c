//! `icmp-guard stats`: counters per reason and the top sources, once or `--watch`ed.

use std::{
    io::{self, IsTerminal as _, Write as _},
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use crate::{
    Error,
    cli::StatsArgs,
    kernel::privilege,
    pinned::{Guard, Pins},
    report::{Keep, Rates, Snapshot, text},
};

pub fn run(bpffs: &Path, args: &StatsArgs) -> Result<(), Error> {
    privilege::require("stats", privilege::PINS)?;
    let guard = Guard::open(Pins::new(bpffs, &args.iface)?)?;
    // Rates compare two reads source by source, so a watch reads every source.
    let keep = if args.watch.is_some() {
        Keep::All
    } else {
        Keep::Top(args.top)
    };
    let snapshot = Snapshot::read(&guard, keep)?;
    if let Some(every) = args.watch {
        return watch(guard, snapshot, every, args);
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

/// How long a watched guard may be found detached before the watch says so: longer than a
/// detach followed by an attach (a service restarted with `on_exit = "detach"`) takes.
const DETACHED_GRACE: Duration = Duration::from_secs(2);

/// `--watch`: every `every`, per-second rates per reason and the sources dropping the most
/// right now, over the time measured since the read before, like `xdp-filter poll`: a screen
/// (redrawn only on a terminal) or, with `--json`, one JSON object per line. Runs until
/// interrupted, or until the reader closes stdout (`| head`).
fn watch(
    mut guard: Guard,
    mut before: Snapshot,
    every: Duration,
    args: &StatsArgs,
) -> Result<(), Error> {
    let mut out = io::stdout().lock();
    let clear_screen = !args.json && out.is_terminal();
    let mut read_at = Instant::now();
    // Since when the guard has been found detached, and whether that was said.
    let mut detached: Option<(Instant, bool)> = None;
    loop {
        std::thread::sleep(every);
        // Detached and attached anew meanwhile: its new maps, counted from there (rates
        // across the two would compare counters of different maps).
        if !guard.still_pinned() {
            // Between a detach and the attach that follows (whose link is pinned last), the
            // pins are not there yet: wait for the next tick.
            match Guard::open(guard.pins.clone()) {
                Ok(new) => guard = new,
                Err(Error::NotGuarded { .. }) => {
                    // Still detached past the moment an attach would take: said once, on
                    // stderr, so neither a screen nor a JSON reader is left to guess.
                    let (since, said) = detached.get_or_insert((Instant::now(), false));
                    if !*said && since.elapsed() >= DETACHED_GRACE {
                        eprintln!(
                            "icmp-guard: {} is not guarded any more (detached); waiting for it to be attached again (Ctrl-C to stop)",
                            guard.pins.iface
                        );
                        *said = true;
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
            detached = None;
            before = Snapshot::read(&guard, Keep::All)?;
            read_at = Instant::now();
            eprintln!(
                "icmp-guard: {} was attached anew; its counters start over",
                guard.pins.iface
            );
            continue;
        }
        let now = Snapshot::read(&guard, Keep::All)?;
        let now_at = Instant::now();
        let rates = Rates::between(&before, &now, now_at - read_at, SystemTime::now());
        let shown = if args.json {
            let line = serde_json::to_string(&rates.json(args.top)).map_err(Error::Json)?;
            line + "\n"
        } else {
            text::watch(&rates, args.top, clear_screen)
        };
        match out.write_all(shown.as_bytes()).and_then(|()| out.flush()) {
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            written => written.map_err(Error::io("writing the stats to", "stdout"))?,
        }
        (before, read_at) = (now, now_at);
    }
}

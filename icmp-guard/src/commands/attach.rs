//! `icmp-guard attach`: load, configure, attach, pin; or, with `--replace`, swap the program
//! of a guarded interface in place; or, with `--config`, do it for a file's interfaces.

use std::path::Path;

use icmp_guard_common::Config;

use crate::{
    Error,
    cli::AttachArgs,
    config_file::{
        ConfigFile, InterfaceConfig,
        apply::{self, Applied},
    },
    kernel::{clock_tick_ns, iface::ifindex, loader, privilege, support},
    pinned::{Guard, Lock, Pins, health},
    policy::{self, describe},
};

pub fn run(bpffs: &Path, args: &AttachArgs) -> Result<(), Error> {
    let iface = match (&args.config, &args.iface) {
        (Some(file), _) => return from_file(bpffs, file, args),
        (None, Some(iface)) => iface,
        (None, None) => return Err(Error::Usage("attach needs IFACE or --config FILE".into())),
    };
    // Validate everything before touching the system.
    let cfg = args
        .limits
        .apply(&Config::with_defaults(), clock_tick_ns())?;
    privilege::require("attach", privilege::LOAD)?;
    support::require()?;
    let _lock = Lock::acquire(bpffs)?;
    let pins = Pins::to_change(bpffs, iface)?;
    // A guard kept (replaced, or attached again) keeps its state, changed by the flags given:
    // they must fit it before anything changes (`--max-sources` cannot change, say).
    if pins.exist()
        && let Ok(current) = Guard::open(pins.clone()).and_then(|g| g.maps.config())
    {
        let wanted = args.limits.apply(&current, clock_tick_ns())?;
        policy::check_fixed(iface, &current, &wanted)?;
    }
    // A guard that followed its interface to another name (or namespace) enforces there:
    // attaching "again", or upgrading it under this name, would say this name is guarded,
    // which it is not.
    if pins.exist() {
        health::Health::refuse_renamed(&pins)?;
    }
    if args.replace {
        return replace(&pins, args);
    }
    let attached = loader::attach(bpffs, &pins, args.mode, &cfg, None)?;
    if let Some(note) = attached.resumed_note(iface) {
        println!("{note}");
    }
    let cfg = if let Some(note) = attached.revived_note(iface) {
        println!("{note}");
        // The pinned state is kept; the flags given change it, as `set` would.
        let mut guard = Guard::open(pins.clone())?;
        let current = guard.maps.config()?;
        let cfg = args.limits.apply(&current, clock_tick_ns())?;
        policy::check_fixed(iface, &current, &cfg)?;
        guard.maps.set_config(&cfg)?;
        cfg
    } else if attached.resumed {
        // Finished with the tables the interrupted attach made: what runs is what they say.
        let running = Guard::open(pins.clone())?.maps.config()?;
        if running.max_sources != cfg.max_sources {
            println!(
                "{iface}: the source table of the interrupted attach holds {} sources, not {}: it was kept; `icmp-guard detach {iface}` then attach to size it anew",
                running.max_sources, cfg.max_sources
            );
        }
        running
    } else {
        cfg
    };
    println!(
        "icmp-guard attached to {iface} (ifindex {}) in {} mode as program {}: {}",
        attached.ifindex,
        attached.mode,
        attached.program_id,
        describe(&cfg)
    );
    if let Some(note) = attached.fallback_note(iface) {
        println!("{note}");
    }
    println!("pinned under {}", pins.dir.display());
    Ok(())
}

/// `--replace`: the new program through the pinned link, then the given flags. A guard
/// whose link is dead is attached again instead, with this version's program.
fn replace(pins: &Pins, args: &AttachArgs) -> Result<(), Error> {
    if !pins.exist() {
        return Err(Error::NotGuarded {
            iface: pins.iface.as_str().to_owned(),
            dir: pins.dir.clone(),
        });
    }
    let (old, new) = if let Some(revived) = loader::revive(pins, args.mode)? {
        if let Some(note) = revived.revived_note(&pins.iface) {
            println!("{note}");
        }
        (None, revived.program_id)
    } else {
        let replaced = loader::replace(pins)?;
        (Some(replaced.old_program), replaced.new_program)
    };
    let mut guard = Guard::open(pins.clone())?;
    let current = guard.maps.config()?;
    let cfg = args.limits.apply(&current, clock_tick_ns())?;
    policy::check_fixed(&pins.iface, &current, &cfg)?;
    guard.maps.set_config(&cfg)?;
    match old {
        Some(old) => println!(
            "icmp-guard on {} replaced program {old} with {new} atomically; counters, buckets and lists kept: {}",
            pins.iface,
            describe(&cfg)
        ),
        None => println!(
            "icmp-guard on {} runs program {new}: {}",
            pins.iface,
            describe(&cfg)
        ),
    }
    Ok(())
}

/// `--config FILE [IFACE]`: every interface of the file (or the one named), with its mode,
/// policy and lists; `--replace` upgrades the guarded ones in place first.
fn from_file(bpffs: &Path, file: &Path, args: &AttachArgs) -> Result<(), Error> {
    if !args.limits.is_empty() {
        return Err(Error::Usage(
            "policy flags and --config exclude each other: put the limits in the file".into(),
        ));
    }
    let cfg = ConfigFile::load(file)?;
    let chosen: Vec<_> = cfg
        .interfaces
        .iter()
        .filter(|ic| args.iface.as_ref().is_none_or(|name| *name == ic.name))
        .collect();
    if chosen.is_empty() {
        return Err(Error::ConfigFile {
            path: file.to_path_buf(),
            message: format!(
                "no [[interface]] named {}",
                args.iface.as_deref().unwrap_or_default()
            ),
        });
    }
    privilege::require("attach", privilege::LOAD)?;
    support::require()?;
    let bpffs = cfg.bpffs_or(bpffs);
    let _lock = Lock::acquire(&bpffs)?;
    // Every interface is checked before any changes, so a refusal leaves all as they were:
    // what would stop its attach, its upgrade or its policy.
    let mut todo = Vec::with_capacity(chosen.len());
    // The tables of the new guards checked so far: each must fit beside those before it.
    let mut planned = 0;
    for ic in chosen {
        let index = ifindex(&ic.name)?;
        let pins = Pins::to_change(&bpffs, &ic.name)?;
        // A guard whose link is dead is attached again below (`apply` revives it).
        let attached = pins.exist() && health::link_attached(&pins)?;
        if attached {
            health::Health::refuse_renamed(&pins)?;
        }
        if attached && !args.replace {
            return Err(Error::AlreadyGuarded {
                iface: ic.name.as_str().to_owned(),
                dir: pins.dir,
            });
        }
        let wanted = apply::policy(ic)?;
        // An interrupted attach is finished with what it made, unless the interface runs
        // another program since.
        if pins.dir.exists() && !pins.exist() {
            loader::interrupted(&pins, index)?;
        }
        if pins.exist()
            && let Ok(current) = Guard::open(pins.clone()).and_then(|g| g.maps.config())
        {
            policy::check_fixed(&ic.name, &current, &wanted)?;
            // A guard attached again takes the file's mode; a running one keeps its own.
            if attached {
                apply::check_mode(ic, &current)?;
            }
        } else if pins.dir.exists()
            && let Ok(capacity) = loader::pinned_capacity(&pins)
        {
            // An interrupted attach's table, or a guard's whose config cannot be read.
            let current = Config {
                max_sources: capacity,
                ..wanted
            };
            policy::check_fixed(&ic.name, &current, &wanted)?;
        } else if !pins.exist() {
            // A new guard, or an interrupted attach that made no table: the table is made
            // here.
            if pins.dir.exists() {
                loader::check_fits(&pins, wanted.max_sources, planned)?;
            } else {
                loader::check_new(&pins, index, wanted.max_sources, planned)?;
            }
            planned += loader::table_bytes(wanted.max_sources);
        }
        todo.push((ic, pins, attached));
    }
    // What the checks cannot foresee (the driver refusing native mode, the kernel refusing a
    // map) may still stop the file half way: the guards this command created are detached
    // again, and those it changed keep the change (a replaced program cannot be put back).
    let mut created: Vec<&Pins> = Vec::new();
    for (ic, pins, attached) in &todo {
        let fresh = !pins.dir.exists();
        let result = apply_one(&bpffs, ic, pins, *attached, args.replace);
        // Also one whose attach succeeded and whose policy or lists then failed.
        if fresh && pins.exist() {
            created.push(pins);
        }
        if let Err(e) = result {
            for pins in created {
                match pins.remove() {
                    Ok(()) => eprintln!(
                        "{}: detached again, as the file could not be applied whole",
                        pins.iface
                    ),
                    Err(undo) => eprintln!(
                        "{}: attached by this command, and could not be detached again: {}",
                        pins.iface,
                        crate::error::chain(&undo)
                    ),
                }
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Applies one interface of the file (upgrading its program first with `--replace`), saying
/// what it did.
fn apply_one(
    bpffs: &Path,
    ic: &InterfaceConfig,
    pins: &Pins,
    attached: bool,
    replace: bool,
) -> Result<(), Error> {
    if replace && attached {
        let replaced = loader::replace(pins)?;
        println!(
            "{}: replaced program {} with {}",
            ic.name, replaced.old_program, replaced.new_program
        );
    }
    let (applied, unchangeable) = apply::apply(bpffs, ic)?;
    // Checked above, before anything changed: only a change made meanwhile gets here.
    if let Some(e) = unchangeable.into_iter().next() {
        return Err(e);
    }
    match applied {
        Applied::Attached(a) => {
            for note in a.notes(&ic.name) {
                println!("{note}");
            }
            println!(
                "icmp-guard attached to {} (ifindex {}) in {} mode as program {}: {}",
                ic.name,
                a.ifindex,
                a.mode,
                a.program_id,
                describe(&apply::policy(ic)?)
            );
            if let Some(note) = a.fallback_note(&ic.name) {
                println!("{note}");
            }
        }
        Applied::Updated => println!("{}: {}", ic.name, describe(&apply::policy(ic)?)),
    }
    Ok(())
}

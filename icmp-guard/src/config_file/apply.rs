//! Making one interface match its entry of a configuration file: attach it if it is not
//! guarded, then put its policy and lists in force together (the lists prepared in the banks
//! not in force, then one config write: see [`crate::pinned::maps::Maps::switch_lists`]). Shared by
//! `attach --config` and the daemon.

use std::path::Path;

use icmp_guard_common::{Config, config::flags};

use crate::{
    Error,
    config_file::InterfaceConfig,
    kernel::{
        AttachMode, clock_tick_ns,
        iface::ifindex,
        loader::{self, Attached},
    },
    pinned::{Guard, Pins, maps::Lists},
    policy,
};

/// What applying did to an interface.
pub enum Applied {
    /// It was not guarded and now is.
    Attached(Box<Attached>),
    /// It was guarded; its policy and lists were updated.
    Updated,
}

/// The policy a file asks for, as a config over the defaults (not over the current one: a
/// key removed from the file goes back to its default).
pub fn policy(ic: &InterfaceConfig) -> Result<Config, Error> {
    ic.limits.apply(&Config::with_defaults(), clock_tick_ns())
}

/// Attaches `ic.name` if needed, then applies the file's policy and lists; with what the
/// file asks that the guard cannot change while it runs (its table's capacity, its mode),
/// each an error for the caller to report: the rest is applied all the same, and a guard
/// attached (or attached again) here stays attached.
pub fn apply(bpffs: &Path, ic: &InterfaceConfig) -> Result<(Applied, Vec<Error>), Error> {
    // A guard whose interface is gone cannot be brought back now: an error, not an update
    // of limits that enforce nothing.
    ifindex(&ic.name)?;
    let pins = Pins::to_change(bpffs, &ic.name)?;
    let wanted = policy(ic)?;
    let lists = Lists::new(&ic.allow, &ic.deny);
    let applied = if pins.exist() {
        // A guard whose link the kernel dropped is attached again first.
        match loader::revive(&pins, Some(ic.mode))? {
            Some(revived) => Applied::Attached(Box::new(revived)),
            None => Applied::Updated,
        }
    } else {
        // A new guard gets its lists before its link is pinned; the switch below then finds
        // nothing to change.
        Applied::Attached(Box::new(loader::attach(
            bpffs,
            &pins,
            Some(ic.mode),
            &wanted,
            Some(&lists),
        )?))
    };
    let mut guard = Guard::open(pins)?;
    let current = guard.maps.config()?;
    let unchangeable: Vec<Error> = [
        policy::check_fixed(&ic.name, &current, &wanted),
        check_mode(ic, &current),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    // Prepare, then swap: both lists go into the banks not in force, then one config write
    // puts the new limits, the new bank and its counts in force together.
    guard
        .maps
        .switch_lists(&keep_runtime(&wanted, &current), &lists)?;
    log::debug!("{}: {}", ic.name, policy::describe(&wanted));
    if let Some(note) = policy::prefix_note(&ic.name, &current, &wanted) {
        log::warn!("{note}");
    }
    Ok((applied, unchangeable))
}

/// Whether the mode the file asks for is the one the guard runs in (`auto` takes either): a
/// running guard keeps its mode, so a file that changes it is reported, not silently obeyed
/// in part.
pub fn check_mode(ic: &InterfaceConfig, current: &Config) -> Result<(), Error> {
    let running = AttachMode::from_recorded(current.attach_mode);
    if ic.mode == AttachMode::Auto || running == AttachMode::Unknown || running == ic.mode {
        return Ok(());
    }
    Err(Error::ModeFixed {
        iface: ic.name.as_str().to_owned(),
        current: running.as_str(),
        wanted: ic.mode.as_str(),
    })
}

/// `wanted` with the fields the loader, the lists and a running capture own (where and how it
/// is attached, the table's capacity, list bank and sizes, the capture bits of the flags)
/// taken from `current`.
#[must_use]
pub fn keep_runtime(wanted: &Config, current: &Config) -> Config {
    Config {
        ifindex: current.ifindex,
        attach_mode: current.attach_mode,
        attached_at: current.attached_at,
        max_sources: current.max_sources,
        allow_entries: current.allow_entries,
        deny_entries: current.deny_entries,
        list_bank: current.list_bank,
        seen_seed: current.seen_seed,
        flags: (wanted.flags & !flags::CAPTURE_BITS) | (current.flags & flags::CAPTURE_BITS),
        ..*wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reload changes dry-run as the file says, and never a running capture's bits.
    #[test]
    fn a_reload_keeps_the_capture_bits() {
        let cases = [
            (0, 0, 0),
            (flags::DRY_RUN, 0, flags::DRY_RUN),
            (0, flags::CAPTURE, flags::CAPTURE),
            (0, flags::CAPTURE_BITS | flags::DRY_RUN, flags::CAPTURE_BITS),
            (
                flags::DRY_RUN,
                flags::CAPTURE,
                flags::DRY_RUN | flags::CAPTURE,
            ),
        ];
        for (wanted, current, kept) in cases {
            let with = |f| Config {
                flags: f,
                ..Config::with_defaults()
            };
            assert_eq!(keep_runtime(&with(wanted), &with(current)).flags, kept);
        }
    }
}

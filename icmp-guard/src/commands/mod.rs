//! One thin module per subcommand, dispatched from [`execute`]: each checks its privileges,
//! takes the lock if it changes a guard, calls the library and prints the result.

pub mod attach;
pub mod capture;
pub mod clean;
pub mod config;
pub mod detach;
pub mod generate;
pub mod lists;
pub mod replay;
pub mod set;
pub mod stats;
pub mod status;

use std::path::Path;

use icmp_guard_common::policy::List;

use crate::{
    Error,
    cli::{Cli, Command, ListCommand},
    daemon,
    kernel::{IfaceName, iface::ifindex, link, privilege, support},
    pinned::{
        Pins,
        health::{self, Health},
        service,
    },
};

/// A change a command makes to one interface's guard.
struct Change<'a> {
    iface: &'a IfaceName,
    /// What the change is called in a warning.
    action: &'static str,
    /// Whether it changes only the guard's limits or lists, which works on its pins whatever
    /// its health (and is said to change nothing now when the guard enforces nothing).
    of_pinned_state: bool,
}

/// The change `command` makes to a guard, for the warnings when a running service manages
/// it or when the guard enforces nothing.
fn changes(command: &Command) -> Option<Change<'_>> {
    let change = |iface, action, of_pinned_state| Change {
        iface,
        action,
        of_pinned_state,
    };
    match command {
        Command::Attach(args) => args.iface.as_ref().map(|i| change(i, "this attach", false)),
        Command::Set(args) => Some(change(&args.iface, "this change of limits", true)),
        Command::Detach(args) => Some(change(&args.iface, "this detach", false)),
        Command::Clean(args) => Some(change(&args.iface, "this clean", false)),
        Command::Allow(ListCommand::Add { iface, .. } | ListCommand::Del { iface, .. })
        | Command::Deny(ListCommand::Add { iface, .. } | ListCommand::Del { iface, .. }) => {
            Some(change(iface, "this list change", true))
        }
        _ => None,
    }
}

/// Runs the parsed command line; output goes to stdout.
pub fn execute(cli: Cli) -> Result<(), Error> {
    let bpffs = cli.bpffs.as_path();
    let change = changes(&cli.command);
    // Said after the change is made: a command that fails changed nothing to warn about.
    let warning = change
        .as_ref()
        .and_then(|c| service::warning(bpffs, c.iface, c.action));
    // Looked at before the change (a change of limits or lists does not change it), so the
    // change stays the command's last write to the kernel: a command killed after it has
    // nothing left to do.
    let not_enforcing = change.filter(|c| c.of_pinned_state).and_then(|c| {
        not_enforcing(bpffs, c.iface).map(|health| (c.iface.clone(), c.action, health))
    });
    let result = run(bpffs, cli.command);
    if let (Ok(()), Some(warning)) = (&result, warning) {
        eprintln!("icmp-guard: {warning}");
    }
    // Made to a guard that enforces nothing on the interface of its name (gone, detached,
    // renamed), such a change is kept for when it is attached again, but changes nothing
    // now: said.
    if let (Ok(()), Some((iface, action, health))) = (&result, not_enforcing) {
        eprintln!(
            "icmp-guard: warning: {action} was made to the pinned state of {iface}, which is {health}"
        );
    }
    result
}

/// The health of the guard of `iface` when it enforces nothing on the interface of that name;
/// `None` when it does, or when there is no guard to tell of. One look at the pinned link in
/// the common case.
fn not_enforcing(bpffs: &Path, iface: &IfaceName) -> Option<Health> {
    let pins = Pins::new(bpffs, iface).ok()?;
    let path = pins.link();
    let on_its_name = link::pinned_state(&path).is_ok_and(|state| {
        state.attached()
            && ifindex(iface).ok() == Some(state.ifindex)
            && health::runs_here(&path, state)
    });
    if on_its_name {
        return None;
    }
    let health = Health::of_pins(pins).ok()?;
    (!health.attached()).then_some(health)
}

fn run(bpffs: &Path, command: Command) -> Result<(), Error> {
    match command {
        Command::Attach(args) => attach::run(bpffs, &args),
        Command::Set(args) => set::run(bpffs, &args),
        Command::Detach(args) => detach::run(bpffs, &args.iface),
        Command::Status(args) => status::run(bpffs, &args),
        Command::Stats(args) => stats::run(bpffs, &args),
        Command::Allow(command) => lists::run(bpffs, List::Allow, &command),
        Command::Deny(command) => lists::run(bpffs, List::Deny, &command),
        Command::Clean(args) => clean::run(bpffs, &args.iface),
        Command::Run(args) => {
            privilege::require("run", privilege::LOAD)?;
            support::require()?;
            daemon::run(bpffs, &args.config)
        }
        Command::Capture(args) => capture::run(bpffs, &args),
        Command::Config(command) => config::run(&command),
        Command::Generate(command) => generate::run(&command),
        Command::Replay(args) => replay::run(&args),
    }
}

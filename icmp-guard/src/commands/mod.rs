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
    pinned::{Pins, health::Health, service},
};

/// The interface a command changes, and what the change is called, for the warning when a
/// running service manages it.
fn changes(command: &Command) -> Option<(&IfaceName, &'static str)> {
    match command {
        Command::Attach(args) => args.iface.as_ref().map(|i| (i, "this attach")),
        Command::Set(args) => Some((&args.iface, "this change of limits")),
        Command::Detach(args) => Some((&args.iface, "this detach")),
        Command::Clean(args) => Some((&args.iface, "this clean")),
        Command::Allow(ListCommand::Add { iface, .. } | ListCommand::Del { iface, .. })
        | Command::Deny(ListCommand::Add { iface, .. } | ListCommand::Del { iface, .. }) => {
            Some((iface, "this list change"))
        }
        _ => None,
    }
}

/// Runs the parsed command line; output goes to stdout.
pub fn execute(cli: Cli) -> Result<(), Error> {
    let bpffs = cli.bpffs.as_path();
    // Said after the change is made: a command that fails changed nothing to warn about.
    let warning =
        changes(&cli.command).and_then(|(iface, action)| service::warning(bpffs, iface, action));
    // Changes to a guard's limits or lists, which work on its pins whatever its health.
    // Looked at before the change (a change of limits or lists does not change it), so the
    // change stays the command's last write to the kernel: a command killed after it has
    // nothing left to do.
    let not_enforcing = match &cli.command {
        Command::Set(_)
        | Command::Allow(ListCommand::Add { .. } | ListCommand::Del { .. })
        | Command::Deny(ListCommand::Add { .. } | ListCommand::Del { .. }) => changes(&cli.command)
            .and_then(|(iface, action)| {
                not_enforcing(bpffs, iface).map(|health| (iface.clone(), action, health))
            }),
        _ => None,
    };
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
    let on_its_name = link::pinned_state(&pins.link())
        .is_ok_and(|state| state.attached() && ifindex(iface).ok() == Some(state.ifindex));
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

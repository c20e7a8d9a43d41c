//! One thin module per subcommand, dispatched from [`execute`]: each checks its privileges,
//! takes the lock if it changes a guard, calls the library and prints the result.

pub mod attach;
pub mod clean;
pub mod config;
pub mod detach;
pub mod generate;
pub mod lists;
pub mod set;
pub mod stats;
pub mod status;

use icmp_guard_common::policy::List;

use crate::{
    Error,
    cli::{Cli, Command},
    daemon,
    kernel::privilege,
};

/// Runs the parsed command line; output goes to stdout.
pub fn execute(cli: Cli) -> Result<(), Error> {
    let bpffs = cli.bpffs.as_path();
    match cli.command {
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
            daemon::run(bpffs, &args.config)
        }
        Command::Config(command) => config::run(&command),
        Command::Generate(command) => generate::run(&command),
    }
}

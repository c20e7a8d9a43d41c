//! `icmp-guard config check`: validate a configuration file without touching anything.

use crate::{
    Error,
    cli::ConfigCommand,
    config_file::{ConfigFile, apply},
    policy,
};

pub fn run(command: &ConfigCommand) -> Result<(), Error> {
    match command {
        ConfigCommand::Check { file } => {
            let cfg = ConfigFile::load(file)?;
            for ic in &cfg.interfaces {
                // The file's limits must also make a valid policy together (derived values).
                let policy = apply::policy(ic)?;
                println!(
                    "{}: mode {}; {}; {} allowed, {} denied prefixes",
                    ic.name,
                    ic.mode,
                    policy::describe(&policy),
                    ic.allow.len(),
                    ic.deny.len()
                );
            }
            println!("{}: valid; metrics on {}", file.display(), cfg.metrics);
            Ok(())
        }
    }
}

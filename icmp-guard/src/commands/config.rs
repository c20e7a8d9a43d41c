//! `icmp-guard config check`: validate a configuration file without touching anything.

use clap::ValueEnum as _;

use crate::{Error, apply, cli::ConfigCommand, config_file::ConfigFile, limits};

pub fn run(command: &ConfigCommand) -> Result<(), Error> {
    match command {
        ConfigCommand::Check { file } => {
            let cfg = ConfigFile::load(file)?;
            for ic in &cfg.interfaces {
                // The file's limits must also make a valid policy together (derived values).
                let policy = apply::policy(ic)?;
                let mode = ic
                    .mode
                    .to_possible_value()
                    .map(|v| v.get_name().to_owned())
                    .unwrap_or_default();
                println!(
                    "{}: mode {mode}; {}; {} allowed, {} denied prefixes",
                    ic.name,
                    limits::describe(&policy),
                    ic.allow.len(),
                    ic.deny.len()
                );
            }
            println!("{}: valid; metrics on {}", file.display(), cfg.metrics);
            Ok(())
        }
    }
}

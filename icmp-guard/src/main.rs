//! `icmp-guard`: attach, tune and observe the XDP ICMP guard.

use std::process::ExitCode;

use clap::Parser as _;
use icmp_guard::{
    cli::{Cli, Command},
    commands,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon reports what it does; one-shot commands only warn.
    let level = if matches!(cli.command, Command::Run(_)) {
        "info"
    } else {
        "warn"
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    match commands::execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the error, then each cause after a colon.
            let mut msg = format!("icmp-guard: error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                msg = format!("{msg}: {cause}");
                source = cause.source();
            }
            eprintln!("{msg}");
            ExitCode::from(err.exit_code())
        }
    }
}

//! `icmp-guard`: attach, tune and observe the XDP ICMP guard.

use std::process::ExitCode;

use clap::Parser as _;
use icmp_guard::{cli::Cli, commands};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
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
            ExitCode::FAILURE
        }
    }
}

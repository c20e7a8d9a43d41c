//! `icmp-guard`: attach, tune and observe the XDP ICMP guard.

use std::{io::Write as _, process::ExitCode};

use clap::Parser as _;
use icmp_guard::{
    cli::{Cli, Command},
    commands,
    daemon::journal,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon reports what it does; one-shot commands only warn.
    let level = if matches!(cli.command, Command::Run(_)) {
        "info"
    } else {
        "warn"
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    if journal::stderr_is_journal() {
        // journald stamps each line with the time and unit: the line carries the priority
        // (sd-daemon(3) prefixes), so `journalctl -p err` finds the errors.
        logger.format(|buf, record| {
            writeln!(buf, "{}{}", journal::prefix(record.level()), record.args())
        });
    }
    logger.init();
    match commands::execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the error, then each cause after a colon.
            // Under journald the line carries the error priority too.
            let priority = if journal::stderr_is_journal() {
                journal::prefix(log::Level::Error)
            } else {
                ""
            };
            eprintln!(
                "{priority}icmp-guard: error: {}",
                icmp_guard::error::chain(&err)
            );
            ExitCode::from(err.exit_code())
        }
    }
}

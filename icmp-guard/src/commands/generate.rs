//! `icmp-guard generate man|completions SHELL` (hidden): documentation from the clap
//! definitions, so it never drifts from the CLI.

use clap::CommandFactory as _;

use crate::{
    Error,
    cli::{Cli, GenerateCommand},
};

pub fn run(command: &GenerateCommand) -> Result<(), Error> {
    let mut cli = Cli::command();
    let mut out = std::io::stdout();
    match command {
        GenerateCommand::Man => {
            clap_mangen::Man::new(cli)
                .render(&mut out)
                .map_err(Error::io("writing the man page to", "stdout"))?;
        }
        GenerateCommand::Completions { shell } => {
            clap_complete::generate(*shell, &mut cli, "icmp-guard", &mut out);
        }
    }
    Ok(())
}

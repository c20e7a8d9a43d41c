//! `icmp-guard generate man [--dir DIR]|completions SHELL` (hidden): documentation from the
//! clap definitions, so it never drifts from the CLI.

use std::{fs, path::Path};

use clap::CommandFactory as _;

use crate::{
    Error,
    cli::{self, Cli, GenerateCommand},
};

pub fn run(command: &GenerateCommand) -> Result<(), Error> {
    let mut out = std::io::stdout();
    match command {
        GenerateCommand::Man { dir: None } => {
            // The main page: the first of them all.
            if let Some(page) = cli::man_pages().first() {
                page.render(&mut out)
                    .map_err(Error::io("writing the man page to", "stdout"))?;
            }
        }
        GenerateCommand::Man { dir: Some(dir) } => write_pages(dir)?,
        GenerateCommand::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "icmp-guard", &mut out);
        }
    }
    Ok(())
}

/// Every page into `dir`, created if missing; prints each path written.
fn write_pages(dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(Error::io("creating the man page folder", dir))?;
    for page in cli::man_pages() {
        let path = dir.join(page.get_filename());
        let mut roff = Vec::new();
        page.render(&mut roff)
            .and_then(|()| fs::write(&path, roff))
            .map_err(Error::io("writing the man page", &path))?;
        println!("{}", path.display());
    }
    Ok(())
}

//! `icmp-guard capture`: frames the guard drops (or judges), sampled into a pcapng file.

use std::{
    fs::File,
    io::{self, BufWriter},
    path::Path,
};

use crate::{
    Error,
    capture::{Session, Settings},
    cli::CaptureArgs,
    kernel::privilege,
    pinned::Pins,
};

pub fn run(bpffs: &Path, args: &CaptureArgs) -> Result<(), Error> {
    let settings = Settings {
        reasons: args.reason.clone(),
        all: args.all,
        rate: args.rate,
        snaplen: args.snaplen,
        count: args.count,
    };
    // Usage errors first, before anything is asked of the system.
    settings.bits()?;
    privilege::require("capture", privilege::PINS)?;
    // Armed first, so a capture that cannot start leaves no empty file; a file that cannot
    // be created disarms it again (`Session`'s drop).
    let session = Session::start(bpffs, Pins::new(bpffs, &args.iface)?, settings)?;
    let out: Box<dyn io::Write> = if args.file.as_os_str() == "-" {
        Box::new(BufWriter::new(io::stdout().lock()))
    } else {
        let file =
            File::create(&args.file).map_err(Error::io("creating the capture file", &args.file))?;
        Box::new(BufWriter::new(file))
    };
    let summary = session.run(out, &args.file)?;
    eprintln!("{}", summary.render(args.iface.as_str()));
    Ok(())
}

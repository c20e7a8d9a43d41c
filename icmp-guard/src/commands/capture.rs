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
        Box::new(BufWriter::new(create(&args.file)?))
    };
    let summary = session.run(out, &args.file)?;
    eprintln!("{}", summary.render(&args.iface));
    Ok(())
}

/// Creates (or truncates) the capture file, never through a symbolic link: run as root, a
/// link someone else left in a shared folder such as `/tmp` would have the capture
/// overwrite whatever it points to.
fn create(path: &Path) -> Result<File, Error> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::Untrusted {
                    path: path.to_owned(),
                    problem: "is a symbolic link".into(),
                    fix: "give the path of the file itself (capture never writes through a link)"
                        .into(),
                }
            } else {
                Error::io("creating the capture file", path)(e)
            }
        })
}

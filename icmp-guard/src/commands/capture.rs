//! `icmp-guard capture`: frames the guard drops (or judges), sampled into a pcapng file.

use std::{fs::File, io, os::fd::AsFd as _, path::Path};

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
    // Unbuffered: `run` buffers above its check for a stop signal. Standard output is
    // written through a copy of its descriptor, past std's line buffer, which would retry a
    // write a signal interrupted (and block again on a reader that stopped reading).
    let out = if args.file.as_os_str() == "-" {
        io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .map_err(Error::io("writing the capture", &args.file))?
    } else {
        create(&args.file)?
    };
    let summary = session.run(out, &args.file)?;
    eprintln!("{}", summary.render(&args.iface));
    Ok(())
}

/// Creates (or truncates) the capture file, never through a symbolic link: run as root, a
/// link someone else left in a shared folder such as `/tmp` would have the capture
/// overwrite whatever it points to. A new file is created with mode 0600, for root's eyes
/// only: it holds frames of the host's traffic. A file that exists keeps its mode.
fn create(path: &Path) -> Result<File, Error> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
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

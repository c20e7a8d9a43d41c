//! `icmp-guard capture`: frames the guard drops (or judges), sampled into a pcapng file.

use std::{fs::File, io, os::fd::AsFd as _, path::Path};

use crate::{
    Error,
    capture::{Session, Settings},
    cli::CaptureArgs,
    error::shown,
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
    let summary = if args.file.as_os_str() == "-" {
        let out = io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .map_err(Error::io("writing the capture", &args.file))?;
        session.run(out, &args.file)?
    } else {
        // Once the path was a FIFO nobody read, it is only opened again, never created: a
        // FIFO removed meanwhile must not become a regular file the capture fills unasked.
        let mut waiting = false;
        session.run_when_open(&args.file, || {
            let file = open(&args.file, !waiting)?;
            if file.is_none() && !std::mem::replace(&mut waiting, true) {
                eprintln!(
                    "icmp-guard capture {}: {} is a FIFO nobody reads yet; waiting for a reader (Ctrl-C stops)",
                    args.iface,
                    shown(&args.file)
                );
            }
            Ok(file)
        })?
    };
    eprintln!("{}", summary.render(&args.iface));
    Ok(())
}

/// Creates (or truncates) the capture file, or with `create` false only opens the FIFO the
/// capture waits on, never through a symbolic link: run as root, a link someone else left in
/// a shared folder such as `/tmp` would have the capture overwrite whatever it points to. A
/// new file is created with mode 0600, for root's eyes only: it holds frames of the host's
/// traffic. A file that exists keeps its mode.
///
/// `None` for a FIFO that nobody reads yet: opened without waiting (`O_NONBLOCK`, which
/// `ENXIO` refuses then), so the caller can wait for a reader and still stop on a signal.
/// The file is written blocking: the flag is cleared once it is open.
fn open(path: &Path, create: bool) -> Result<Option<File>, Error> {
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let what = if create {
        "creating the capture file"
    } else {
        "opening the capture FIFO"
    };
    let opened = std::fs::OpenOptions::new()
        .write(true)
        .create(create)
        .truncate(create)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    match opened {
        Ok(file) if !create && !file.metadata().is_ok_and(|m| m.file_type().is_fifo()) => {
            Err(Error::io(what, path)(io::Error::other(
                "it was replaced while the capture waited for a reader: not a FIFO any more",
            )))
        }
        Ok(file) => blocking(&file)
            .map(|()| Some(file))
            .map_err(Error::io(what, path)),
        Err(e)
            if e.raw_os_error() == Some(libc::ENXIO)
                && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo()) =>
        {
            Ok(None)
        }
        Err(e) => Err(if e.raw_os_error() == Some(libc::ELOOP) {
            Error::Untrusted {
                path: path.to_owned(),
                problem: "is a symbolic link".into(),
                fix: "give the path of the file itself (capture never writes through a link)"
                    .into(),
            }
        } else {
            Error::io(what, path)(e)
        }),
    }
}

/// Clears `O_NONBLOCK` on `file`.
fn blocking(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor `file` owns; F_GETFL takes no argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above; F_SETFL takes the flags as an int.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

//! `icmp-guard capture`: frames the guard drops (or judges), sampled into a pcapng file.

use std::{
    fs::File,
    io,
    os::{fd::AsFd as _, unix::fs::MetadataExt as _},
    path::Path,
};

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
        // Once the path was a FIFO nobody read, that FIFO is held (`O_PATH`) and only it is
        // opened again: one removed meanwhile must not become a regular file the capture
        // fills unasked, nor another file that took its place be written.
        let mut fifo: Option<File> = None;
        session.run_when_open(&args.file, || {
            if let Some(held) = &fifo {
                return reopen(held, &args.file);
            }
            let file = create(&args.file)?;
            if file.is_none() {
                fifo = Some(hold_fifo(&args.file)?);
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

/// Creates (or truncates) the capture file, never through a symbolic link: run as root, a
/// link someone else left in a shared folder such as `/tmp` would have the capture overwrite
/// whatever it points to. A new file is created with mode 0600, for root's eyes only: it
/// holds frames of the host's traffic. A file that exists keeps its mode.
///
/// `None` for a FIFO that nobody reads yet: opened without waiting (`O_NONBLOCK`, which
/// `ENXIO` refuses then), so the caller can wait for a reader and still stop on a signal.
/// The file is written blocking: the flag is cleared once it is open.
fn create(path: &Path) -> Result<Option<File>, Error> {
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let opened = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    match opened {
        Err(e)
            if e.raw_os_error() == Some(libc::ENXIO)
                && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo()) =>
        {
            Ok(None)
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(Error::Untrusted {
            path: path.to_owned(),
            problem: "is a symbolic link".into(),
            fix: "give the path of the file itself (capture never writes through a link)".into(),
        }),
        opened => writing(opened, "creating the capture file", path),
    }
}

/// The FIFO at `path`, held (`O_PATH`: neither read nor written, so no writer to a reader)
/// while the capture waits for a reader of it.
fn hold_fifo(path: &Path) -> Result<File, Error> {
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let held = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)
        .map_err(Error::io("opening the capture FIFO", path))?;
    let fifo = held.metadata().is_ok_and(|m| m.file_type().is_fifo());
    if !fifo {
        return Err(Error::io("opening the capture FIFO", path)(
            io::Error::other("another file took its place as the capture found it"),
        ));
    }
    Ok(held)
}

/// The FIFO `held` (at `path`) opened for writing, once it has a reader; `None` until then.
/// Opened through the held descriptor, never the path again; one removed from its folder
/// (also to make room for another file) can never have a reader, so that is an error.
fn reopen(held: &File, path: &Path) -> Result<Option<File>, Error> {
    use std::os::{fd::AsRawFd as _, unix::fs::OpenOptionsExt as _};
    let what = "opening the capture FIFO";
    let links = held.metadata().map_err(Error::io(what, path))?.nlink();
    if links == 0 {
        return Err(Error::io(what, path)(io::Error::other(
            "it was removed while the capture waited for a reader",
        )));
    }
    let opened = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("/proc/self/fd/{}", held.as_raw_fd()));
    match opened {
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(None),
        opened => writing(opened, what, path),
    }
}

/// A file just opened (`O_NONBLOCK`) made ready to write, blocking; or its error, as `what`
/// was being done to `path`.
fn writing(
    opened: io::Result<File>,
    what: &'static str,
    path: &Path,
) -> Result<Option<File>, Error> {
    let file = opened.map_err(Error::io(what, path))?;
    blocking(&file).map_err(Error::io(what, path))?;
    Ok(Some(file))
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

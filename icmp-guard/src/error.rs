//! Typed errors. Each message names the interface or value at fault and how to fix it.

use std::{ffi::OsStr, io, path::PathBuf};

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("interface {iface:?} does not exist (see `ip link show`)")]
    UnknownInterface { iface: String },

    #[error(
        "{iface} is already guarded (pins in {}); change limits with `icmp-guard set {iface}`, apply a file to it with `icmp-guard attach --replace --config FILE`, or run `icmp-guard detach {iface}` first",
        shown(dir), iface = shown(iface))]
    AlreadyGuarded { iface: String, dir: PathBuf },

    #[error(
        "{iface} is not guarded (no pins in {}); run `icmp-guard attach {iface}` first, or pass the --bpffs used at attach",
        shown(dir), iface = shown(iface))]
    NotGuarded { iface: String, dir: PathBuf },

    #[error(
        "{action} needs {needed} (or root); missing {missing}: run it as root or grant them, e.g. `sudo icmp-guard ...` or systemd's AmbientCapabilities="
    )]
    Privilege {
        action: &'static str,
        needed: String,
        missing: String,
    },

    #[error(
        "kernel {kernel} is older than {minimum}, which icmp-guard needs for {needs}; run it on Linux {minimum} or newer"
    )]
    KernelTooOld {
        kernel: crate::kernel::support::Release,
        minimum: crate::kernel::support::Release,
        needs: String,
    },

    #[error("this kernel lacks {what}, which icmp-guard needs: {why}")]
    KernelLacks { what: &'static str, why: String },

    #[error(
        "cannot tell the kernel's version from its release {}; icmp-guard needs Linux {} or newer",
        shown(release),
        crate::kernel::support::MINIMUM
    )]
    KernelRelease { release: String },

    #[error("native XDP is not available on {iface}: {refusal}; {}", refusal.fix(&shown(iface)), iface = shown(iface))]
    NativeUnavailable {
        iface: String,
        /// The cause, in the driver's words when it gives them.
        refusal: Box<crate::kernel::refusal::NativeRefusal>,
        #[source]
        source: aya::programs::ProgramError,
    },

    #[error(
        "{iface} is a loopback interface: it carries only this host's own traffic, which icmp-guard would take for spoofed (martian) sources; attach to the interfaces facing the network", iface = shown(iface))]
    Loopback { iface: String },

    #[error(
        "{iface} already has an XDP program attached that is not icmp-guard's: {program}; icmp-guard will neither replace nor remove it: {}", program.fix(&shown(iface)), iface = shown(iface))]
    ForeignProgram {
        iface: String,
        /// The program, its owner as far as it can be told, and that owner's own command.
        program: Box<crate::kernel::owner::Foreign>,
    },

    #[error(
        "another icmp-guard command has held the lock {} (for the pins under {}) for {waited:?}; wait for it to finish, or find it with `fuser -v {}`",
        shown(lock),
        shown(bpffs),
        shown(lock)
    )]
    Busy {
        lock: PathBuf,
        bpffs: PathBuf,
        waited: std::time::Duration,
    },

    #[error(
        "another icmp-guard service ({holder}) already manages the guards under {} in this network namespace (it holds {}); one service at a time: {stop} first, or run this one with another --bpffs",
        shown(bpffs),
        shown(lock)
    )]
    ServiceRunning {
        bpffs: PathBuf,
        lock: PathBuf,
        /// Who: "pid 42 with /etc/icmp-guard/icmp-guard.toml".
        holder: String,
        /// How to stop it, from where this runs: "stop it (`systemctl stop icmp-guard`, or
        /// `kill` that pid)".
        stop: String,
    },

    #[error(
        "{} is not a bpffs (no icmp-guard pins can be there); pass the --bpffs the guards were attached with (default {})",
        shown(path),
        crate::pinned::layout::DEFAULT_BPFFS
    )]
    NotBpffs { path: PathBuf },

    #[error(
        "{iface}'s guard is pinned but not attached ({}): a program cannot be swapped into a detached link; run `icmp-guard attach {iface}` to attach it again with its state",
        health.label().replace('_', " "), iface = shown(iface))]
    NotAttached {
        iface: String,
        health: crate::pinned::health::Health,
    },

    #[error("{} {problem}, so icmp-guard does not trust it; {fix}", shown(path))]
    Untrusted {
        path: PathBuf,
        /// What is wrong, e.g. "is owned by nobody (uid 65534), not root".
        problem: String,
        fix: String,
    },

    #[error(
        "refusing to mount a bpffs on {}: it {why}; pass --bpffs a mounted bpffs (e.g. /sys/fs/bpf), or a path that does not exist yet or an empty folder of root's, in folders only root can change",
        shown(path)
    )]
    MountRefused { path: PathBuf, why: String },

    #[error("cannot capture on {iface}: {why}; {fix}", iface = shown(iface), why = shown(why), fix = shown(fix))]
    CaptureUnavailable {
        iface: String,
        /// Why, e.g. "its guard is NOT ATTACHED: the interface was recreated ...".
        why: String,
        fix: String,
    },

    #[error(
        "the pins of {iface} at {dir} cannot be opened: {cause}; if it is a lack of rights or of memory, fix that and try again; if they lack a map, another version of icmp-guard made them: `icmp-guard clean {iface}` removes them (dropping their counters and buckets)",
        iface = shown(iface), dir = shown(dir))]
    PinsUnreadable {
        iface: String,
        dir: PathBuf,
        cause: String,
    },

    #[error("{iface}: {health}", iface = shown(iface))]
    GuardElsewhere {
        iface: String,
        health: crate::pinned::health::Health,
    },

    #[error("{count} guard(s) could not be read (each is a row of the output); the first: {first}")]
    Unreadable { count: usize, first: String },

    #[error(
        "daemon.on_exit = \"detach\" failed for {} (see the errors above); `icmp-guard status` shows what is still guarded, and `icmp-guard detach IFACE` removes a guard by hand",
        shown(interfaces)
    )]
    NotDetached { interfaces: String },

    #[error(
        "{iface} has stale icmp-guard state: {why}; remove it with `icmp-guard clean {iface}`, then attach again", iface = shown(iface))]
    Stale { iface: String, why: String },

    #[error(
        "the state pinned for {iface} was made by an incompatible icmp-guard: map {map} has {field} {pinned}, this version needs {wanted}; remove it with `icmp-guard clean {iface}` (this drops its counters and buckets), then attach again", iface = shown(iface))]
    Incompatible {
        iface: String,
        map: &'static str,
        field: &'static str,
        pinned: u32,
        wanted: u32,
    },

    #[error(
        "{iface}: {knob} is {current} and is fixed when the guard's tables are created, so it cannot become {wanted} on a running guard; detach it (`icmp-guard detach {iface}`, which drops its counters and buckets) and attach it again with the new value", iface = shown(iface))]
    FixedAtAttach {
        iface: String,
        knob: &'static str,
        current: u32,
        wanted: u32,
    },

    #[error(
        "{iface}: the guard runs in {current} mode and the file asks for {wanted}; the mode is chosen when the guard is attached, so it is not changed: to change it, detach the guard (`icmp-guard detach {iface}`, which drops its counters and buckets) and reload, or put {current} (or auto) back", iface = shown(iface))]
    ModeFixed {
        iface: String,
        current: &'static str,
        wanted: &'static str,
    },

    #[error(
        "{iface}: max_sources (--max-sources) {wanted} needs about {needed_mib} MiB of kernel memory for the per-source table{besides}, more than half of the {available_mib} MiB {within}; {fix}",
        iface = shown(iface)
    )]
    TableTooLarge {
        iface: String,
        wanted: u32,
        needed_mib: u64,
        /// The tables of the other guards the same command creates, when there are any: " (and
        /// 42 MiB for the file's other new guards)".
        besides: String,
        available_mib: u64,
        /// Where that memory is: the host's, or what the process's memory cgroup allows.
        within: &'static str,
        /// "choose at most 172214, or give it more memory", or what to do when no table fits.
        fix: String,
    },

    #[error("cannot swap the program on {iface} through its pinned link", iface = shown(iface))]
    Replace {
        iface: String,
        #[source]
        source: aya::programs::ProgramError,
    },

    #[error("cannot attach to {iface} in {mode} mode", iface = shown(iface))]
    Attach {
        iface: String,
        mode: crate::kernel::AttachMode,
        #[source]
        source: aya::programs::ProgramError,
    },

    #[error(
        "{} is not a bpffs and mounting one there failed; mount it yourself (`mount -t bpf bpf {}`) or pass --bpffs",
        shown(path),
        shown(path)
    )]
    Mount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot serve metrics on {addr}; pick another daemon.metrics address")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },

    #[error("invalid {what}: {why}")]
    InvalidLimit { what: &'static str, why: String },

    /// `message` is made of icmp-guard's words and values already escaped with [`shown`].
    #[error("{}: {message}", shown(path))]
    ConfigFile { path: PathBuf, message: String },

    /// `message` names the frame at fault (counted from 1) and what is wrong with it.
    #[error("{}: {message}", shown(path))]
    Capture { path: PathBuf, message: String },

    #[error("invalid prefix: {0}")]
    InvalidCidr(String),

    #[error(
        "{cidr} is not in the {list} list of {iface}, so nothing was removed (see `icmp-guard {list} list {iface}`)",
        iface = shown(iface)
    )]
    NotListed {
        iface: String,
        list: &'static str,
        cidr: String,
    },

    #[error(
        "the {list} list of {iface} is full ({max} prefixes); remove some with `icmp-guard {list} del {iface} CIDR` or merge them into shorter prefixes", iface = shown(iface))]
    ListFull {
        iface: String,
        list: &'static str,
        max: u32,
    },

    #[error(
        "{target}: the kernel refused to load the XDP program: the kernel lacks something icmp-guard's checks do not test, or the verifier rejects this build (its log, if any, follows); report it with `uname -r` and this message",
        target = shown(target)
    )]
    Load {
        /// The interface, or the command the program was loaded for (`replay --kernel`).
        target: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error(
        "icmp-guard's embedded XDP object is damaged: {0}; this build is broken: rebuild it (`cargo xtask build`) or reinstall the package"
    )]
    Object(String),

    #[error(
        "{iface}: creating or opening the guard's maps failed (out of kernel memory, or of what the memory cgroup allows: try a smaller max_sources; or a pinned map this version cannot open: `icmp-guard clean {iface}` drops the old state)",
        iface = shown(iface)
    )]
    Maps {
        iface: String,
        #[source]
        source: Box<aya::EbpfError>,
    },

    #[error("{what} {}", shown(path))]
    Pin {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("{}", shown(what))]
    Map {
        what: String,
        #[source]
        source: aya::maps::MapError,
    },

    #[error(
        "{} holds files icmp-guard did not make ({files}); they were left in place: remove them yourself if they are yours to remove",
        shown(dir)
    )]
    ForeignFiles { dir: PathBuf, files: String },

    #[error("cannot print JSON")]
    Json(#[source] serde_json::Error),

    /// The command line asks for something impossible; exits 2 like clap's own usage errors.
    #[error("{0}")]
    Usage(String),

    #[error("{what} {}", shown(path))]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How a string from outside (an interface name, a path, a value, a parser's message that
/// quotes the input) appears in a message: printable text as it is; control characters (a
/// newline, a tab, an escape) and `\` escaped as Rust writes them (`\n`, `\u{1b}`, `\\`),
/// so an error is always one line and says what it means. Every error renders outside text
/// through this one function.
#[must_use]
pub fn shown(text: impl AsRef<OsStr>) -> String {
    let text = text.as_ref().to_string_lossy();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || c == '\\' {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

impl Error {
    /// The interface the error is about, when it names one.
    #[must_use]
    pub fn iface(&self) -> Option<&str> {
        match self {
            Self::UnknownInterface { iface }
            | Self::AlreadyGuarded { iface, .. }
            | Self::NotGuarded { iface, .. }
            | Self::NativeUnavailable { iface, .. }
            | Self::Loopback { iface }
            | Self::ForeignProgram { iface, .. }
            | Self::NotAttached { iface, .. }
            | Self::CaptureUnavailable { iface, .. }
            | Self::PinsUnreadable { iface, .. }
            | Self::GuardElsewhere { iface, .. }
            | Self::Stale { iface, .. }
            | Self::Incompatible { iface, .. }
            | Self::FixedAtAttach { iface, .. }
            | Self::ModeFixed { iface, .. }
            | Self::TableTooLarge { iface, .. }
            | Self::Replace { iface, .. }
            | Self::Attach { iface, .. }
            | Self::NotListed { iface, .. }
            | Self::ListFull { iface, .. }
            | Self::Maps { iface, .. }
            | Self::Load { target: iface, .. } => Some(iface),
            _ => None,
        }
    }

    /// The process exit code: 2 for usage errors, 1 for everything else.
    #[must_use]
    pub const fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            _ => 1,
        }
    }

    /// Wraps a map error with what was being done.
    pub fn map(what: impl Into<String>) -> impl FnOnce(aya::maps::MapError) -> Self {
        let what = what.into();
        move |source| Self::Map { what, source }
    }

    /// Wraps an I/O error with what was being done to which path.
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }

    /// Wraps an error of the kernel's loading the program for `target` (an interface).
    pub fn load<E>(target: impl AsRef<str>) -> impl FnOnce(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let target = target.as_ref().to_owned();
        move |source| Self::Load {
            target,
            source: Box::new(source),
        }
    }

    /// An error of loading the embedded object for `target`: the object's own fault (it
    /// does not parse) is [`Error::Object`], the rest the kernel's ([`Error::Load`]).
    #[must_use]
    pub fn of_object_load(target: impl AsRef<str>, e: aya::EbpfError) -> Self {
        match e {
            aya::EbpfError::ParseError(_) | aya::EbpfError::UnexpectedPinningType { .. } => {
                Self::Object(e.to_string())
            }
            e => Self::load(target)(e),
        }
    }

    /// Wraps a pinning error with what was being done to which path.
    pub fn pin<E>(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let path = path.into();
        move |source| Self::Pin {
            what,
            path,
            source: Box::new(source),
        }
    }
}

/// An error and each of its causes on one line, separated by colons: what a log line or the
/// last line of a failed command says.
#[must_use]
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        msg = format!("{msg}: {cause}");
        source = cause.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_is_escaped_once_and_only_when_needed() {
        for (text, expected) in [
            ("eth0", "eth0"),
            ("/sys/fs/bpf", "/sys/fs/bpf"),
            ("a b \"c\" 'd' é", "a b \"c\" 'd' é"),
            ("a\nb", r"a\nb"),
            ("a\r\tb", r"a\r\tb"),
            ("esc\u{1b}[31m", r"esc\u{1b}[31m"),
            ("back\\slash", r"back\\slash"),
            ("nul\0", r"nul\0"),
        ] {
            assert_eq!(shown(text), expected, "{text:?}");
        }
    }

    /// Every message that carries a name or a path stays one line, whatever they hold.
    #[test]
    fn every_message_with_outside_text_is_one_line() {
        let name = "eth0\nicmp-guard: error: forged".to_owned();
        let path = PathBuf::from("/tmp/x\ny");
        let errors = [
            Error::UnknownInterface {
                iface: name.clone(),
            },
            Error::AlreadyGuarded {
                iface: name.clone(),
                dir: path.clone(),
            },
            Error::NotGuarded {
                iface: name.clone(),
                dir: path.clone(),
            },
            Error::Loopback {
                iface: name.clone(),
            },
            Error::ForeignProgram {
                iface: name.clone(),
                program: Box::new(crate::kernel::owner::Foreign {
                    id: 7,
                    name: Some("x\ny".into()),
                    mode: crate::kernel::AttachMode::Native,
                    owner: crate::kernel::owner::Owner::Unknown,
                }),
            },
            Error::Stale {
                iface: name.clone(),
                why: "none".into(),
            },
            Error::ListFull {
                iface: name.clone(),
                list: "allow",
                max: 4096,
            },
            Error::Busy {
                lock: path.clone(),
                bpffs: path.clone(),
                waited: std::time::Duration::from_secs(10),
            },
            Error::NotDetached {
                interfaces: name.clone(),
            },
            Error::CaptureUnavailable {
                iface: name.clone(),
                why: format!("no {name}"),
                fix: format!("run `icmp-guard attach {name}`"),
            },
            Error::Map {
                what: format!("reading the capture control of {name}"),
                source: aya::maps::MapError::KeyNotFound,
            },
            Error::Untrusted {
                path: path.clone(),
                problem: "is owned by nobody".into(),
                fix: "remove it".into(),
            },
            Error::load(&name)(io::Error::other("refused")),
            Error::MountRefused {
                path: path.clone(),
                why: "is a symbolic link".into(),
            },
            Error::ServiceRunning {
                bpffs: path.clone(),
                lock: path.clone(),
                holder: "pid 1".into(),
                stop: "stop it".into(),
            },
            Error::NotBpffs { path: path.clone() },
            Error::ConfigFile {
                path: path.clone(),
                message: "bad".into(),
            },
            Error::ForeignFiles {
                dir: path.clone(),
                files: "\"x\"".into(),
            },
            Error::Io {
                what: "reading",
                path: path.clone(),
                source: io::Error::other("boom"),
            },
        ];
        for err in errors {
            let text = err.to_string();
            assert!(!text.contains('\n'), "{text}");
            assert!(
                text.contains(r"eth0\nicmp-guard") || text.contains(r"/tmp/x\ny"),
                "{text}"
            );
        }
    }
}

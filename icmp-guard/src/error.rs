//! Typed errors. Each message names the interface or value at fault and how to fix it.

use std::{io, path::PathBuf};

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("interface {iface:?} does not exist (see `ip link show`)")]
    UnknownInterface { iface: String },

    #[error(
        "{iface} is already guarded (pins in {}); change limits with `icmp-guard set {iface}` or run `icmp-guard detach {iface}` first",
        dir.display()
    )]
    AlreadyGuarded { iface: String, dir: PathBuf },

    #[error(
        "{iface} is not guarded (no pins in {}); run `icmp-guard attach {iface}` first, or pass the --bpffs used at attach",
        dir.display()
    )]
    NotGuarded { iface: String, dir: PathBuf },

    #[error(
        "{action} needs {needed} (or root); missing {missing}: run it as root or grant them, e.g. `sudo icmp-guard ...` or systemd's AmbientCapabilities="
    )]
    Privilege {
        action: &'static str,
        needed: String,
        missing: String,
    },

    #[error("native XDP is not available on {iface}: {refusal}; {}", refusal.fix(iface))]
    NativeUnavailable {
        iface: String,
        /// The cause, in the driver's words when it gives them.
        refusal: Box<crate::kernel::refusal::NativeRefusal>,
        #[source]
        source: aya::programs::ProgramError,
    },

    #[error(
        "{iface} is a loopback interface: it carries only this host's own traffic, which icmp-guard would take for spoofed (martian) sources; attach to the interfaces facing the network"
    )]
    Loopback { iface: String },

    #[error(
        "{iface} already has an XDP program attached that is not icmp-guard's ({program}); icmp-guard will not replace it (inspect it with `ip link show {iface}`, remove it with `ip link set {iface} xdp off`)"
    )]
    ForeignProgram { iface: String, program: String },

    #[error(
        "another icmp-guard command has held the lock on {} for {waited:?}; wait for it to finish, or find it with `fuser -v {}`",
        root.display(), root.display()
    )]
    Busy {
        root: PathBuf,
        waited: std::time::Duration,
    },

    #[error(
        "{iface} has stale icmp-guard state: {why}; remove it with `icmp-guard clean {iface}`, then attach again"
    )]
    Stale { iface: String, why: String },

    #[error(
        "the state pinned for {iface} was made by an incompatible icmp-guard: map {map} has {field} {pinned}, this version needs {wanted}; remove it with `icmp-guard clean {iface}` (this drops its counters and buckets), then attach again"
    )]
    Incompatible {
        iface: String,
        map: &'static str,
        field: &'static str,
        pinned: u32,
        wanted: u32,
    },

    #[error(
        "{iface}: {knob} is {current} and is fixed when the guard's tables are created, so it cannot become {wanted} on a running guard; detach it (`icmp-guard detach {iface}`, which drops its counters and buckets) and attach it again with the new value"
    )]
    FixedAtAttach {
        iface: String,
        knob: &'static str,
        current: u32,
        wanted: u32,
    },

    #[error(
        "--max-sources {wanted} needs about {needed_mib} MiB of kernel memory for the per-source table, more than half of the {available_mib} MiB available; choose at most {fits}"
    )]
    TableTooLarge {
        wanted: u32,
        needed_mib: u64,
        available_mib: u64,
        fits: u32,
    },

    #[error("cannot swap the program on {iface} through its pinned link")]
    Replace {
        iface: String,
        #[source]
        source: aya::programs::ProgramError,
    },

    #[error("cannot attach to {iface} in {mode} mode")]
    Attach {
        iface: String,
        mode: crate::kernel::AttachMode,
        #[source]
        source: aya::programs::ProgramError,
    },

    #[error(
        "{} is not a bpffs and mounting one there failed; mount it yourself (`mount -t bpf bpf {}`) or pass --bpffs",
        path.display(), path.display()
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

    #[error("{}: {message}", path.display())]
    ConfigFile { path: PathBuf, message: String },

    #[error("invalid prefix: {0}")]
    InvalidCidr(String),

    #[error(
        "the {list} list of {iface} is full ({max} prefixes); remove some with `icmp-guard {list} del {iface} CIDR` or merge them into shorter prefixes"
    )]
    ListFull {
        iface: String,
        list: &'static str,
        max: u32,
    },

    #[error("loading the XDP program failed (kernel too old, or the verifier refused it)")]
    Load(#[source] Box<dyn std::error::Error + Send + Sync>),

    #[error("{what} {}", path.display())]
    Pin {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("{what}")]
    Map {
        what: String,
        #[source]
        source: aya::maps::MapError,
    },

    #[error(
        "{} holds files icmp-guard did not make ({files}); they were left in place: remove them yourself if they are yours to remove",
        dir.display()
    )]
    ForeignFiles { dir: PathBuf, files: String },

    #[error("cannot print JSON")]
    Json(#[source] serde_json::Error),

    /// The command line asks for something impossible; exits 2 like clap's own usage errors.
    #[error("{0}")]
    Usage(String),

    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
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

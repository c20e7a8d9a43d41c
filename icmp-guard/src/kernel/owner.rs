//! Who owns a foreign XDP program, and that owner's own way to remove it.
//!
//! icmp-guard never replaces or removes a program it did not attach, and never tells the
//! operator to (`ip link set IFACE xdp off` would pull a program from under the tool that
//! manages it: libxdp's dispatcher and the programs it chains, bpfman's, Cilium's datapath).
//! The owner is told by the program's name and by the pins its tool leaves in known places;
//! the owner's own command is suggested where there is one, and for an unknown program only
//! the commands that inspect it.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use icmp_guard_common::maps;

use super::AttachMode;
use crate::error::shown;

/// The name libxdp gives its multi-program dispatcher (xdp-loader, xdp-filter, bpfman use it).
pub const LIBXDP_DISPATCHER: &str = "xdp_dispatcher";
/// The prefix of xdp-filter's program names (`xdpfilt_alw_all`, `xdpfilt_dny_ip`, ...).
pub const XDP_FILTER_PREFIX: &str = "xdpfilt_";
/// The prefix of Cilium's datapath programs (`cil_from_netdev`, `cil_xdp_entry`, ...).
pub const CILIUM_PREFIX: &str = "cil_";
/// The bpffs libxdp and xdp-filter pin under unless `LIBXDP_BPFFS` says otherwise: the same
/// default as icmp-guard's.
pub use crate::pinned::layout::DEFAULT_BPFFS;
/// bpfman's pins: `prog_<id>` for its programs; its XDP dispatchers as
/// `xdp/dispatcher_<ifindex>_<revision>` (older releases) or
/// `xdp/dispatcher_<netns id>_<ifindex>_<revision>` (current ones, with a `_link` sibling).
pub const BPFMAN_FS: &str = "/run/bpfman/fs";

/// The tool that manages a foreign program, as far as it can be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// xdp-filter's own program, attached alone (`xdpfilt_*`).
    XdpFilter,
    /// libxdp's dispatcher, pinned under `dir` (`<bpffs>/xdp/dispatch-<ifindex>-<id>`) when
    /// found; `xdp_filter` when xdp-filter's pins name this interface (one of its programs).
    Libxdp {
        dir: Option<PathBuf>,
        xdp_filter: bool,
    },
    /// bpfman's program or dispatcher (pins under /run/bpfman/fs).
    Bpfman,
    /// Cilium's datapath (`cil_*`), managed by its agent.
    Cilium,
    /// icmp-guard itself, attached with another `--bpffs`.
    IcmpGuard,
    /// The guard of another interface name under this `--bpffs`: the interface was renamed
    /// (or another took its name) since.
    GuardOf { iface: String },
    /// Nothing tells.
    Unknown,
}

/// What the filesystem says about a program: the pins its owner's tool left.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pins {
    /// libxdp's dispatcher folder for this program id (`dispatch-<ifindex>-<id>`).
    pub libxdp_dispatcher: Option<PathBuf>,
    /// xdp-filter's folder for this interface (`<bpffs>/xdp-filter/programs/<iface>`).
    pub xdp_filter: bool,
    /// bpfman's pin of this program id or its XDP dispatcher on this ifindex.
    pub bpfman: bool,
}

impl Pins {
    /// Looks in the known places: libxdp's bpffs (`$LIBXDP_BPFFS`, else /sys/fs/bpf) and
    /// bpfman's runtime folder.
    #[must_use]
    pub fn find(iface: &str, ifindex: u32, id: u32) -> Self {
        let mut roots = vec![PathBuf::from(DEFAULT_BPFFS)];
        if let Some(root) = std::env::var_os("LIBXDP_BPFFS") {
            roots.insert(0, PathBuf::from(root));
        }
        let dispatch_suffix = format!("-{id}");
        let libxdp_dispatcher = roots.iter().find_map(|root| {
            entries(&root.join("xdp"))
                .into_iter()
                .find(|name| name.starts_with("dispatch-") && name.ends_with(&dispatch_suffix))
                .map(|name| root.join("xdp").join(name))
        });
        let xdp_filter = Path::new(DEFAULT_BPFFS)
            .join("xdp-filter/programs")
            .join(iface)
            .is_dir();
        let bpfman_fs = Path::new(BPFMAN_FS);
        let bpfman = bpfman_fs.join(format!("prog_{id}")).exists()
            || entries(&bpfman_fs.join("xdp"))
                .iter()
                .any(|name| bpfman_dispatcher_of(name, ifindex));
        Self {
            libxdp_dispatcher,
            xdp_filter,
            bpfman,
        }
    }
}

/// Whether a name under bpfman's `xdp/` folder is the dispatcher of `ifindex`, in either of
/// its layouts: `dispatcher_<ifindex>_<rev>` or `dispatcher_<nsid>_<ifindex>_<rev>[_link]`.
#[must_use]
pub fn bpfman_dispatcher_of(name: &str, ifindex: u32) -> bool {
    let Some(rest) = name.strip_prefix("dispatcher_") else {
        return false;
    };
    let fields: Vec<&str> = rest.trim_end_matches("_link").split('_').collect();
    let index = ifindex.to_string();
    match fields.as_slice() {
        [i, _rev] => *i == index,
        [_nsid, i, _rev] => *i == index,
        _ => false,
    }
}

/// The names in a folder; none when it cannot be read.
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl Owner {
    /// The owner of a program named `name` (when it can be read) with `pins` found for it.
    #[must_use]
    pub fn identify(name: Option<&str>, pins: &Pins) -> Self {
        let name = name.unwrap_or_default();
        if pins.bpfman {
            return Self::Bpfman;
        }
        if name == LIBXDP_DISPATCHER || pins.libxdp_dispatcher.is_some() {
            return Self::Libxdp {
                dir: pins.libxdp_dispatcher.clone(),
                xdp_filter: pins.xdp_filter,
            };
        }
        if name.starts_with(XDP_FILTER_PREFIX) {
            return Self::XdpFilter;
        }
        if name.starts_with(CILIUM_PREFIX) {
            return Self::Cilium;
        }
        if name == maps::PROGRAM {
            return Self::IcmpGuard;
        }
        Self::Unknown
    }
}

/// A program attached to an interface that icmp-guard did not attach (or not under this
/// `--bpffs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Foreign {
    /// Its id; 0 when several modes are attached at once and the kernel names none.
    pub id: u32,
    /// Its name, when it can be read (that takes `CAP_SYS_ADMIN`).
    pub name: Option<String>,
    pub mode: AttachMode,
    pub owner: Owner,
}

impl Foreign {
    /// What to do about it on `iface`: the owner's own command, or how to inspect it. Never
    /// `ip link set ... xdp off`.
    #[must_use]
    pub fn fix(&self, iface: &str) -> String {
        let iface = shown(iface);
        let inspect = if self.id == 0 {
            format!("inspect it with `bpftool net show dev {iface}`")
        } else {
            format!(
                "inspect it with `bpftool net show dev {iface}` and `bpftool prog show id {}`",
                self.id
            )
        };
        match &self.owner {
            Owner::XdpFilter => format!(
                "if it is no longer wanted, remove it with xdp-filter's own `xdp-filter unload {iface}`"
            ),
            Owner::Libxdp { xdp_filter, .. } => {
                let filter = if *xdp_filter {
                    format!(
                        "xdp-filter's program is one of them (`xdp-filter unload {iface}` removes it); "
                    )
                } else {
                    String::new()
                };
                format!(
                    "it chains other programs: see them with `xdp-loader status {iface}`; {filter}remove those no longer wanted with the tool that loaded them, or all of them with `xdp-loader unload {iface} --all`"
                )
            }
            Owner::Bpfman => format!(
                "find its programs on {iface} with `bpfman list` and remove those no longer wanted with `bpfman unload ID`"
            ),
            Owner::Cilium => format!(
                "leave it: the Cilium agent manages it and would put it back; guard another interface, or {inspect}"
            ),
            Owner::IcmpGuard => format!(
                "if it is icmp-guard with another --bpffs, use that one: `icmp-guard --bpffs PATH status`; otherwise {inspect}"
            ),
            Owner::GuardOf { iface: was } => {
                let was = shown(was);
                format!(
                    "the interface was renamed since `icmp-guard attach {was}` (its guard follows it): `icmp-guard detach {was}` removes that guard, then attach {iface} anew; or rename the interface back"
                )
            }
            Owner::Unknown => format!("{inspect}, and ask whoever attached it"),
        }
    }
}

impl fmt::Display for Foreign {
    /// E.g. `program 12 "xdpfilt_alw_all" in native mode, xdp-filter's`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.id, &self.name) {
            (0, _) if self.mode == AttachMode::Multiple => {
                f.write_str("programs in several modes")?;
            }
            (0, _) => f.write_str("a program whose id cannot be read")?,
            (id, Some(name)) => write!(f, "program {id} \"{}\"", shown(name))?,
            (id, None) => write!(f, "program {id} (its name needs CAP_SYS_ADMIN to read)")?,
        }
        if self.id != 0 {
            write!(f, " in {} mode", self.mode)?;
        }
        match &self.owner {
            Owner::XdpFilter => f.write_str(", xdp-filter's"),
            Owner::Libxdp { dir: Some(dir), .. } => write!(
                f,
                ", libxdp's multi-program dispatcher (pinned at {})",
                shown(dir)
            ),
            Owner::Libxdp { dir: None, .. } => f.write_str(", libxdp's multi-program dispatcher"),
            Owner::Bpfman => f.write_str(", managed by bpfman"),
            Owner::Cilium => f.write_str(", Cilium's datapath"),
            Owner::IcmpGuard => f.write_str(", an icmp-guard program whose pins are not here"),
            Owner::GuardOf { iface } => write!(
                f,
                ", icmp-guard's guard of {}, pinned under that name here",
                shown(iface)
            ),
            Owner::Unknown => f.write_str(", owner unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every owner: what tells it, how it is named, and the fix it gets.
    #[test]
    #[expect(
        clippy::too_many_lines,
        reason = "the table of owners reads best as one list"
    )]
    fn each_owner_is_named_with_its_own_command_and_never_xdp_off() {
        let dispatch = PathBuf::from("/sys/fs/bpf/xdp/dispatch-7-42");
        let none = Pins::default();
        let dispatcher_pins = Pins {
            libxdp_dispatcher: Some(dispatch.clone()),
            ..Pins::default()
        };
        let filter_in_dispatcher = Pins {
            libxdp_dispatcher: Some(dispatch.clone()),
            xdp_filter: true,
            ..Pins::default()
        };
        let bpfman = Pins {
            bpfman: true,
            ..Pins::default()
        };
        // (name, pins, owner, in the description, in the fix)
        let cases = [
            (
                Some("xdpfilt_alw_all"),
                &none,
                Owner::XdpFilter,
                "program 42 \"xdpfilt_alw_all\" in native mode, xdp-filter's",
                "`xdp-filter unload eth0`",
            ),
            (
                Some("xdp_dispatcher"),
                &dispatcher_pins,
                Owner::Libxdp {
                    dir: Some(dispatch.clone()),
                    xdp_filter: false,
                },
                "libxdp's multi-program dispatcher (pinned at /sys/fs/bpf/xdp/dispatch-7-42)",
                "`xdp-loader status eth0`; remove those no longer wanted with the tool that loaded them, or all of them with `xdp-loader unload eth0 --all`",
            ),
            (
                Some("xdp_dispatcher"),
                &filter_in_dispatcher,
                Owner::Libxdp {
                    dir: Some(dispatch.clone()),
                    xdp_filter: true,
                },
                "libxdp's multi-program dispatcher",
                "(`xdp-filter unload eth0` removes it)",
            ),
            (
                Some("xdp_dispatcher"),
                &none,
                Owner::Libxdp {
                    dir: None,
                    xdp_filter: false,
                },
                "\"xdp_dispatcher\" in native mode, libxdp's multi-program dispatcher",
                "`xdp-loader status eth0`",
            ),
            // Without CAP_SYS_ADMIN there is no name, but the pins still tell.
            (
                None,
                &dispatcher_pins,
                Owner::Libxdp {
                    dir: Some(dispatch.clone()),
                    xdp_filter: false,
                },
                "program 42 (its name needs CAP_SYS_ADMIN to read) in native mode, libxdp's",
                "`xdp-loader unload eth0 --all`",
            ),
            // bpfman's dispatcher has libxdp's name; its pins say bpfman.
            (
                Some("xdp_dispatcher"),
                &bpfman,
                Owner::Bpfman,
                "managed by bpfman",
                "`bpfman list` and remove those no longer wanted with `bpfman unload ID`",
            ),
            (
                Some("cil_xdp_entry"),
                &none,
                Owner::Cilium,
                "Cilium's datapath",
                "leave it: the Cilium agent manages it",
            ),
            (
                Some("icmp_guard"),
                &none,
                Owner::IcmpGuard,
                "an icmp-guard program whose pins are not here",
                "`icmp-guard --bpffs PATH status`",
            ),
            (
                Some("xsk_def_prog"),
                &none,
                Owner::Unknown,
                "program 42 \"xsk_def_prog\" in native mode, owner unknown",
                "inspect it with `bpftool net show dev eth0` and `bpftool prog show id 42`",
            ),
        ];
        for (name, pins, owner, text, fix) in cases {
            let foreign = Foreign {
                id: 42,
                name: name.map(str::to_owned),
                mode: AttachMode::Native,
                owner: Owner::identify(name, pins),
            };
            assert_eq!(foreign.owner, owner, "{name:?}");
            let (shown, advice) = (foreign.to_string(), foreign.fix("eth0"));
            assert!(shown.contains(text), "{name:?}: {shown}");
            assert!(advice.contains(fix), "{name:?}: {advice}");
            assert!(!advice.contains("xdp off"), "{name:?}: {advice}");
        }
    }

    /// Programs in several modes at once: no id to name, only the interface to inspect.
    #[test]
    fn several_modes_at_once_are_inspected_by_interface() {
        let foreign = Foreign {
            id: 0,
            name: None,
            mode: AttachMode::Multiple,
            owner: Owner::Unknown,
        };
        assert_eq!(
            foreign.to_string(),
            "programs in several modes, owner unknown"
        );
        assert_eq!(
            foreign.fix("eth0"),
            "inspect it with `bpftool net show dev eth0`, and ask whoever attached it"
        );
    }

    #[test]
    fn bpfman_dispatchers_are_found_in_both_layouts() {
        // (pin name, interface index asked, whether it is that interface's dispatcher)
        for (name, ifindex, want) in [
            ("dispatcher_7_1", 7, true),
            ("dispatcher_7_1", 17, false),
            ("dispatcher_4026531840_7_3", 7, true),
            ("dispatcher_4026531840_7_3_link", 7, true),
            ("dispatcher_4026531840_70_3", 7, false),
            ("dispatcher_7", 7, false),
            ("prog_7", 7, false),
        ] {
            assert_eq!(
                bpfman_dispatcher_of(name, ifindex),
                want,
                "{name} {ifindex}"
            );
        }
    }
}

//! A foreign program is never ours to remove (issue 10, item 1): `attach` on an interface
//! that carries another tool's XDP program refuses, names the program and its owner, says
//! the owner's own command (or how to inspect an unknown program), never `xdp off`, and
//! leaves the program attached.
//!
//! The foreign programs come from xdp-tools (Debian's `xdp-tools`, installed by `cargo xtask
//! setup`): xdp-filter, run inside the lab's network namespace with the host's mounts
//! (`nsenter --net`, as the CLI is), so its pins go to the host's /sys/fs/bpf/xdp-filter and
//! are removed by its own `unload`; and libxdp's AF_XDP default program, attached with `ip`,
//! which nothing names. This kernel refuses libxdp's dispatcher (its freplace programs fail
//! with EPERM), so xdp-filter falls back to a single program; the dispatcher's case is a unit
//! test (`kernel::owner`).

use std::{path::PathBuf, process::Command};

use icmp_guard_tests::lab::{Lab, Netns, ip, run, stderr_of};
use serde_json::Value;

/// The id and name of the XDP program on `iface` in `ns`, as `ip -j link` reports them.
fn attached(ns: &Netns, iface: &str) -> Option<(u64, String)> {
    let out = ip(&["-n", &ns.name, "-j", "link", "show", "dev", iface]).ok()?;
    let links: Value = serde_json::from_slice(&out.stdout).ok()?;
    let prog = &links[0]["xdp"]["prog"];
    Some((prog["id"].as_u64()?, prog["name"].as_str()?.to_owned()))
}

/// An object file of libxdp's (package libxdp1, a dependency of xdp-tools), wherever the
/// architecture's library folder is.
fn libxdp_object(name: &str) -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|dir| dir.path().join("bpf").join(name))
        .chain([PathBuf::from("/usr/lib/bpf").join(name)])
        .find(|path| path.is_file());
    found.unwrap_or_else(|| panic!("{name} not found under /usr/lib/*/bpf: install xdp-tools"))
}

/// How a case attaches its program to the lab's guarded interface, and removes it after.
#[derive(Clone, Copy, Debug)]
enum Foreign {
    /// `xdp-filter load [-m MODE] IFACE`.
    XdpFilter(&'static str),
    /// `ip link set dev IFACE xdp obj OBJECT sec xdp`.
    IpLink(&'static str),
}

impl Foreign {
    fn load(self, lab: &Lab) {
        let iface = lab.guarded_if.as_str();
        match self {
            Self::XdpFilter(mode) => {
                run(lab
                    .guarded
                    .enter("xdp-filter")
                    .args(["load", "-m", mode, iface]))
                .unwrap();
            }
            Self::IpLink(object) => {
                let object = libxdp_object(object);
                let object = object.to_str().unwrap();
                let ns = &lab.guarded.name;
                ip(&[
                    "-n", ns, "link", "set", "dev", iface, "xdp", "obj", object, "sec", "xdp",
                ])
                .unwrap();
            }
        }
    }

    /// Removed the owner's way; best effort, for the cleanup after a case.
    fn unload(self, lab: &Lab) {
        let iface = lab.guarded_if.as_str();
        let _ = match self {
            Self::XdpFilter(_) => lab
                .guarded
                .enter("xdp-filter")
                .args(["unload", iface])
                .output(),
            // Ours to remove: the test attached it.
            Self::IpLink(_) => Command::new("ip")
                .args(["-n", &lab.guarded.name, "link", "set", "dev", iface])
                .args(["xdp", "off"])
                .output(),
        };
    }
}

/// Unloads a case's program when the case ends, passed or failed: xdp-filter's pins live in
/// the host's bpffs and would outlive the lab.
struct Loaded<'a>(&'a Lab, Foreign);

impl Drop for Loaded<'_> {
    fn drop(&mut self) {
        self.1.unload(self.0);
    }
}

#[test]
fn a_foreign_program_is_named_with_its_owner_and_left_attached() {
    // (what is attached, the mode `attach` asks for, words naming the owner, the fix;
    // IFACE and ID stand for the interface and the program id)
    let cases = [
        (
            Foreign::XdpFilter("native"),
            "auto",
            "in native mode, xdp-filter's",
            "`xdp-filter unload IFACE`",
        ),
        (
            Foreign::XdpFilter("skb"),
            "generic",
            "in generic mode, xdp-filter's",
            "`xdp-filter unload IFACE`",
        ),
        (
            Foreign::XdpFilter("skb"),
            "native",
            "in generic mode, xdp-filter's",
            "`xdp-filter unload IFACE`",
        ),
        (
            Foreign::IpLink("xsk_def_xdp_prog_5.3.o"),
            "auto",
            "in native mode, owner unknown",
            "inspect it with `bpftool net show dev IFACE` and `bpftool prog show id ID`",
        ),
    ];
    for (foreign, mode, owner, fix) in cases {
        let lab = Lab::new().unwrap();
        let iface = lab.guarded_if.as_str();
        foreign.load(&lab);
        let _loaded = Loaded(&lab, foreign);
        let (id, name) = attached(&lab.guarded, iface)
            .unwrap_or_else(|| panic!("{foreign:?}: nothing attached to {iface}"));

        let out = lab.cli(&["attach", iface, "--mode", mode]).unwrap();
        let err = stderr_of(&out);
        let case = format!("{foreign:?}, attach --mode {mode}: {err}");
        assert!(!out.status.success(), "{case}");
        let fix = fix.replace("IFACE", iface).replace("ID", &id.to_string());
        for words in [
            format!("{iface} already has an XDP program attached that is not icmp-guard's"),
            format!("program {id} \"{name}\" {owner}"),
            "icmp-guard will neither replace nor remove it".to_owned(),
            fix,
        ] {
            assert!(err.contains(&words), "{case}\nmissing: {words}");
        }
        assert!(!err.contains("xdp off"), "{case}");
        assert_eq!(
            attached(&lab.guarded, iface),
            Some((id, name)),
            "{foreign:?}: the foreign program was touched"
        );
        assert!(
            !lab.pin_dir(iface).exists(),
            "{foreign:?}: a refused attach left pins"
        );
    }
}

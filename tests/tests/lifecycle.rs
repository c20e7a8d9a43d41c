//! A guard's life outside the lab's happy path (issue 10): state bound to the interface's
//! network namespace, not its name, on one shared bpffs; a guard whose link the kernel dropped
//! or someone detached is reported as not attached and `attach` brings it back with its state;
//! pins of an earlier layout are adopted; a mistyped `--bpffs` is an error.

use std::path::Path;

use icmp_guard_tests::lab::{Lab, Netns, counter, eventually, ip, run, stderr_of, unique};
use serde_json::Value;

/// `icmp-guard` in `ns` with the lab's bpffs; its output whatever the status.
fn cli_in(lab: &Lab, ns: &Netns, args: &[&str]) -> std::process::Output {
    let mut cmd = ns.enter(icmp_guard_tests::lab::workspace_bin("icmp-guard").unwrap());
    cmd.arg("--bpffs").arg(&lab.bpffs.path).args(args);
    cmd.output().unwrap()
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn health(lab: &Lab) -> Value {
    lab.status().unwrap()[0]["health"]["state"].clone()
}

/// Two namespaces, each with an interface of the same name, one bpffs: each command acts on
/// its own namespace's guard only, and `status` marks the other's.
#[test]
fn two_namespaces_with_the_same_interface_name_never_touch_each_other() {
    let lab = Lab::new().unwrap();
    let name = lab.guarded_if.clone();
    let other = Netns::new(unique('n')).unwrap();
    let peer = unique('p');
    ip(&[
        "-n",
        &other.name,
        "link",
        "add",
        &name,
        "type",
        "veth",
        "peer",
        "name",
        &peer,
    ])
    .unwrap();
    for iface in [&name, &peer] {
        ip(&["-n", &other.name, "link", "set", iface, "up"]).unwrap();
    }

    lab.cli_ok(&["attach", &name]).unwrap();
    let out = cli_in(&lab, &other, &["attach", &name, "--mode", "generic"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(lab.guarded_has_xdp() && other.has_xdp(&name));

    // Each namespace lists its own guard, with its namespace, and marks the other one.
    let here = lab.status().unwrap();
    assert_eq!(here.as_array().unwrap().len(), 1, "{here}");
    assert_eq!(here[0]["netns"], lab.guarded.id().inode, "{here}");
    let text = lab.cli_ok(&["status"]).unwrap();
    assert!(
        text.contains(&format!(
            "also guarded: {name} in another network namespace, netns {}",
            other.id().inode
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} (ip netns)", other.name)),
        "named by ip netns: {text}"
    );

    // A namespace folder icmp-guard cannot trust hides its own guards only: this namespace's
    // is still listed, the folder is named with the fix, and the exit status says so.
    let theirs_dir = other.id().dir_in(&lab.pin_root());
    std::os::unix::fs::chown(&theirs_dir, Some(65534), None).unwrap();
    for args in [&["status"][..], &["status", "--json"]] {
        let out = lab.cli(args).unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {said}");
        assert!(
            said.contains(&theirs_dir.display().to_string())
                && said.contains("is owned by nobody (uid 65534), not root"),
            "{args:?}: {said}"
        );
        assert!(
            said.contains(&lab.pin_dir(&name).display().to_string()),
            "{args:?}: this namespace's guard is listed: {said}"
        );
    }
    std::os::unix::fs::chown(&theirs_dir, Some(0), None).unwrap();

    // The other namespace's guard as an earlier version pinned it (`<root>/<IFACE>`): both
    // interfaces are index 2 in their namespaces, so only the program on the interface says
    // whose it is. A command here neither adopts nor cleans it.
    let theirs =
        icmp_guard::pinned::Pins::in_netns(&lab.bpffs.path, other.id(), &name.parse().unwrap());
    let legacy = theirs.legacy_dir();
    std::fs::rename(&theirs.dir, &legacy).unwrap();
    lab.cli_ok(&["set", &name, "--echo-rate", "5"]).unwrap();
    let out = lab.cli(&["clean", &name]).unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        legacy.join("link").exists(),
        "another namespace's legacy pins were taken"
    );
    assert!(other.has_xdp(&name), "and its guard still enforces");
    std::fs::rename(&legacy, &theirs.dir).unwrap();
    lab.cli_ok(&["attach", &name]).unwrap();

    // Detaching in the other namespace leaves this one's guard, pins and counters alone.
    assert_eq!(lab.ping(2, "0.2", 5).unwrap(), 2);
    let out = cli_in(&lab, &other, &["detach", &name]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!other.has_xdp(&name));
    assert!(
        lab.guarded_has_xdp(),
        "the other namespace's detach left ours"
    );
    assert!(counter(&lab.stats().unwrap(), "passed") >= 2);
    // And detaching there again finds nothing of its own to detach.
    let out = cli_in(&lab, &other, &["detach", &name]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("is not guarded"),
        "{}",
        stderr_of(&out)
    );
    assert!(lab.guarded_has_xdp());

    // A namespace deleted with its guard leaves pins that enforce nothing: marked stale,
    // not "also guarded".
    let out = cli_in(&lab, &other, &["attach", &name, "--mode", "generic"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let inode = other.id().inode;
    drop(other);
    // The kernel tears a namespace down from a work item: soon, not at once.
    eventually(30, "the deleted namespace's guard is marked stale", || {
        lab.cli_ok(&["status"]).is_ok_and(|text| {
            text.contains(&format!(
                "(stale: {name} of network namespace netns {inode}"
            ))
        })
    })
    .unwrap();
}

/// A guard that runs generic only because `auto` found native refused (a veth with fewer
/// receive queues than its peer transmits on) tries native again when its interface comes
/// back able to run it; one the operator attached generic keeps generic (the test below).
#[test]
fn a_guard_that_fell_back_to_generic_tries_native_when_its_interface_comes_back() {
    let lab = Lab::new().unwrap();
    let (iface, peer) = (unique('q'), unique('p'));
    let veth = |queues: &str| {
        let add = format!(
            "-n {} link add {iface} numrxqueues 1 numtxqueues 1 type veth peer name {peer} numrxqueues {queues} numtxqueues {queues}",
            lab.guarded.name
        );
        ip(&add.split_whitespace().collect::<Vec<_>>()).unwrap();
        ip(&["-n", &lab.guarded.name, "link", "set", &iface, "up"]).unwrap();
        ip(&["-n", &lab.guarded.name, "link", "set", &peer, "up"]).unwrap();
    };
    let mode = || lab.status().unwrap()[0]["mode"].clone();
    veth("2");
    let out = lab.cli_ok(&["attach", &iface]).unwrap();
    assert!(out.contains("in generic mode"), "{out}");
    assert_eq!(mode(), "generic");
    ip(&["-n", &lab.guarded.name, "link", "del", &iface]).unwrap();
    veth("1");
    let out = lab.cli_ok(&["attach", &iface]).unwrap();
    assert!(
        out.contains("attached it again with its pinned state"),
        "{out}"
    );
    assert_eq!(mode(), "native", "{out}");
    lab.cli_ok(&["detach", &iface]).unwrap();
}

/// How a link dies, the state then reported, and the command that brings it back.
type Case<'a> = (&'a str, &'a dyn Fn(), &'a str, &'a [&'a str]);

/// The ways a pinned guard stops being attached, each reported as such by `status`, `stats`
/// and the JSON, and each undone by `attach` with the pinned state, in the mode it had (the
/// veth would take native: generic was the operator's choice).
#[test]
fn a_guard_whose_link_is_dead_is_reported_and_attach_brings_it_back() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    lab.cli_ok(&["attach", &iface, "--echo-rate", "7", "--mode", "generic"])
        .unwrap();
    assert_eq!(health(&lab), "attached");
    assert_eq!(lab.ping(2, "0.2", 5).unwrap(), 2);

    // (how the link dies, the state reported, the command that brings it back)
    let link = lab.pin_dir(&iface).join("link");
    let detach_link = || {
        run(std::process::Command::new("bpftool")
            .args(["link", "detach", "pinned"])
            .arg(&link))
        .unwrap();
    };
    let recreate = || lab.recreate_link().unwrap();
    let cases: [Case; 3] = [
        (
            "bpftool link detach",
            &detach_link,
            "link_detached",
            &["attach", &iface],
        ),
        (
            "interface recreated",
            &recreate,
            "interface_recreated",
            &["attach", &iface],
        ),
        (
            "detached, then --replace",
            &detach_link,
            "link_detached",
            &["attach", &iface, "--replace"],
        ),
    ];
    for (what, kill, state, revive) in cases {
        kill();
        assert!(!lab.guarded_has_xdp(), "{what}: nothing attached");
        assert_eq!(health(&lab), state, "{what}");
        let text = lab.cli_ok(&["status"]).unwrap();
        assert!(text.contains("NOT ATTACHED"), "{what}: {text}");
        let shown = lab.cli_ok(&["stats", &iface]).unwrap();
        assert!(shown.contains("NOT ATTACHED"), "{what}: {shown}");

        let out = lab.cli_ok(revive).unwrap();
        assert!(
            out.contains("attached it again with its pinned state"),
            "{what}: {out}"
        );
        assert!(lab.guarded_has_xdp(), "{what}");
        assert_eq!(health(&lab), "attached", "{what}");
        let status = lab.status().unwrap();
        assert_eq!(
            status[0]["limits"]["echo_rate"], 7,
            "{what}: the state was kept"
        );
        assert_eq!(status[0]["mode"], "generic", "{what}: the mode was kept");
        assert!(
            counter(&lab.stats().unwrap(), "passed") >= 2,
            "{what}: counters kept"
        );
        assert_eq!(lab.ping(1, "0.2", 5).unwrap(), 1, "{what}");
    }

    // The interface deleted for good: the guard is reported gone.
    ip(&["-n", &lab.guarded.name, "link", "del", &iface]).unwrap();
    let text = lab.cli_ok(&["status"]).unwrap();
    assert!(
        text.contains("NOT ATTACHED: the interface is gone"),
        "{text}"
    );
    assert_eq!(health(&lab), "interface_gone");
    // A change of limits is kept for when it comes back, but said to change nothing now.
    let out = lab.cli(&["set", &iface, "--echo-rate", "9"]).unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!(
            "warning: this change of limits was made to the pinned state of {iface}, which is NOT ATTACHED: the interface is gone"
        )),
        "{}",
        stderr_of(&out)
    );
    // A file naming it cannot bring it back now: an error, not "applied".
    let file = lab.scratch.file("icmp-guard.toml");
    std::fs::write(&file, format!("[[interface]]\nname = \"{iface}\"\n")).unwrap();
    let out = lab
        .cli(&["attach", "--config", file.to_str().unwrap(), "--replace"])
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("does not exist"),
        "{}",
        stderr_of(&out)
    );
}

/// A renamed interface keeps its guard under its new name: commands on the old name say
/// where the guard is instead of claiming the name is guarded, and an attach of the new name
/// names the guard it meets, not another tool's or another bpffs's program.
#[test]
fn a_renamed_interface_s_guard_is_reported_where_it_is() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    let renamed = unique('m');
    lab.cli_ok(&["attach", &iface]).unwrap();
    let ns = &lab.guarded.name;
    ip(&["-n", ns, "link", "set", &iface, "down"]).unwrap();
    ip(&["-n", ns, "link", "set", &iface, "name", &renamed]).unwrap();
    ip(&["-n", ns, "link", "set", &renamed, "up"]).unwrap();
    assert_eq!(health(&lab), "interface_renamed");

    // Neither a plain attach nor an upgrade calls the old name guarded: both say where the
    // guard is, and the upgrade swaps nothing first.
    let program = lab.status().unwrap()[0]["program_id"].clone();
    for args in [&["attach", &iface][..], &["attach", &iface, "--replace"]] {
        let out = lab.cli(args).unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr_of(&out).contains("which has another name now")
                && !stderr_of(&out).contains("already guarded"),
            "{args:?}: {}",
            stderr_of(&out)
        );
        assert_eq!(lab.status().unwrap()[0]["program_id"], program, "{args:?}");
    }
    let out = lab.cli(&["attach", &renamed]).unwrap();
    let err = stderr_of(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "icmp-guard's guard of {iface}, pinned under that name here"
        )) && err.contains(&format!("`icmp-guard detach {iface}` removes that guard"))
            && !err.contains("another --bpffs"),
        "{err}"
    );
    let out = lab.cli(&["allow", "add", &iface, "192.0.2.0/24"]).unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("warning: this list change was made to the pinned state"),
        "{}",
        stderr_of(&out)
    );
    assert!(lab.guarded.has_xdp(&renamed));
    let out = lab.cli_ok(&["detach", &iface]).unwrap();
    assert!(out.contains("which has another name now"), "{out}");
    assert!(!lab.guarded.has_xdp(&renamed), "the guard it had is gone");
}

/// An interface moved to another network namespace takes its guard with it: the pins stay
/// here, and every command here says where the guard went instead of calling it renamed or
/// guarded; `detach` here removes it, there too.
#[test]
fn a_guard_whose_interface_moved_to_another_namespace_is_reported_where_it_is() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    lab.cli_ok(&["attach", &iface]).unwrap();
    let index_in = |ns: &Netns, name: &str| -> String {
        let out = ip(&["-n", &ns.name, "-o", "link", "show", "dev", name]).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split(':').next().unwrap().trim().to_owned()
    };
    // Its index is taken there, so the kernel gives it another; and here an interface gets
    // that one: indexes are per namespace, and the guard is still not here.
    let here = index_in(&lab.guarded, &iface);
    let (taken, peer) = (unique('t'), unique('u'));
    // (The peer takes an index of its own, far from the small ones the lab uses.)
    let veth = |ns: &Netns, name: &str, peer: &str, index: &str| {
        ip(&[
            "-n", &ns.name, "link", "add", name, "index", index, "type", "veth", "peer", "name",
            peer, "index", "4000",
        ])
    };
    // (Either is refused when an interface has the index already: as good.)
    let _ = veth(&lab.client, &taken, &peer, &here);
    let has_index = |ns: &Netns, index: &str| {
        let listed = ip(&["-n", &ns.name, "-o", "link", "show"]).unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
        assert!(
            listed.lines().any(|l| l.starts_with(&format!("{index}:"))),
            "an interface of {} has index {index}: {listed}",
            ns.name
        );
    };
    has_index(&lab.client, &here);
    ip(&[
        "-n",
        &lab.guarded.name,
        "link",
        "set",
        &iface,
        "netns",
        &lab.client.name,
    ])
    .unwrap();
    assert!(lab.client.has_xdp(&iface), "the guard went with it");
    let there = index_in(&lab.client, &iface);
    assert_ne!(there, here, "renumbered");
    let _ = veth(&lab.guarded, &unique('v'), &unique('w'), &there);
    has_index(&lab.guarded, &there);
    assert_eq!(health(&lab), "interface_moved");
    let text = lab.cli_ok(&["status"]).unwrap();
    assert!(
        text.contains("the interface was moved to another network namespace")
            && !text.contains("renamed"),
        "{text}"
    );
    let out = lab.cli(&["attach", &iface]).unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("moved to another network namespace"),
        "{}",
        stderr_of(&out)
    );
    let out = lab.cli_ok(&["detach", &iface]).unwrap();
    assert!(out.contains("moved to another network namespace"), "{out}");
    assert!(!lab.client.has_xdp(&iface), "detached there too");
}

/// Pins an earlier version made at `<root>/<IFACE>` are adopted into the interface's
/// namespace by the next command that changes it, keeping the guard attached.
#[test]
fn pins_of_the_earlier_layout_are_adopted_in_place() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    lab.cli_ok(&["attach", &iface, "--echo-rate", "9"]).unwrap();
    let legacy = lab.pin_root().join(&iface);
    std::fs::rename(lab.pin_dir(&iface), &legacy).unwrap();

    let text = lab.cli_ok(&["status"]).unwrap();
    assert!(text.contains("has pins of an earlier version"), "{text}");
    assert!(
        text.contains(&format!("icmp-guard attach {iface} --replace")),
        "{text}"
    );

    let out = lab.cli(&["attach", &iface, "--replace"]).unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("moved the pins of an earlier version"),
        "{}",
        stderr_of(&out)
    );
    assert!(!legacy.exists() && lab.pin_dir(&iface).exists());
    assert!(lab.guarded_has_xdp());
    assert_eq!(lab.status().unwrap()[0]["limits"]["echo_rate"], 9);

    // Legacy pins whose link is dead cannot be adopted; `clean` removes them.
    std::fs::rename(lab.pin_dir(&iface), &legacy).unwrap();
    run(std::process::Command::new("bpftool")
        .args(["link", "detach", "pinned"])
        .arg(legacy.join("link")))
    .unwrap();
    let text = lab.cli_ok(&["status"]).unwrap();
    assert!(
        text.contains("whose link is detached: they enforce nothing")
            && !text.contains(&format!("icmp-guard attach {iface} --replace")),
        "{text}"
    );
    let out = lab.cli_ok(&["clean", &iface]).unwrap();
    assert!(out.contains("every pin under"), "{out}");
    assert!(!legacy.exists(), "{out}");
}

/// A namespace that took a dead one's inode number never sees the dead one's guards as its
/// own: the folder's cookie tells them apart. `status` says a guard whose link is still
/// attached (its interface lived on in another namespace) still enforces, and never to remove
/// its pins; one whose link is detached is stale.
#[test]
fn a_dead_namespace_s_guards_are_stale_not_ours() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    lab.cli_ok(&["attach", &iface]).unwrap();
    let ns = lab.guarded.id();
    let ours = lab.pins(&iface).netns_dir();
    // As if the guard had been made in an earlier namespace with this inode number.
    let dead = icmp_guard::kernel::netns::Netns {
        cookie: ns.cookie + 1_000_000,
        ..ns
    }
    .dir_in(&lab.pin_root());
    std::fs::rename(&ours, &dead).unwrap();
    let text = lab.cli_ok(&["status"]).unwrap();
    assert!(
        text.contains(&format!("(also guarded: {iface} was guarded"))
            && text.contains("the guard enforces there")
            && !text.contains("rm -r"),
        "{text}"
    );
    assert_eq!(lab.status().unwrap(), serde_json::json!([]), "not ours");
    run(std::process::Command::new("bpftool")
        .args(["link", "detach", "pinned"])
        .arg(dead.join(&iface).join("link")))
    .unwrap();
    let text = lab.cli_ok(&["status"]).unwrap();
    assert!(
        text.contains(&format!("(stale: {iface} was guarded")) && text.contains("`rm -r` them"),
        "{text}"
    );
    let out = lab.cli(&["detach", &iface]).unwrap();
    assert!(
        stderr_of(&out).contains("is not guarded"),
        "{}",
        stderr_of(&out)
    );
    std::fs::rename(&dead, &ours).unwrap();
    lab.cli_ok(&["detach", &iface]).unwrap();
}

/// Read commands pointed at a folder that is no bpffs say so, and fail.
#[test]
fn a_mistyped_bpffs_is_an_error_for_read_commands() {
    let lab = Lab::new().unwrap();
    let typo = lab.scratch.file("not-a-bpffs");
    std::fs::create_dir(&typo).unwrap();
    let iface = lab.guarded_if.as_str();
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["stats", iface],
        &["allow", "list", iface],
    ] {
        let out = lab.cli_command(Path::new(&typo), args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout_of(&out));
        let err = stderr_of(&out);
        assert!(err.contains("is not a bpffs"), "{args:?}: {err}");
        assert!(stdout_of(&out).is_empty(), "{args:?}: no green listing");
    }
}

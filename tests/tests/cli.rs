//! Small CLI truths (issue 10, item 7): what the binary promises on its command line, checked
//! on the built binary. The man pages and usage errors need no lab; attaching does.

use std::{
    collections::{BTreeSet, VecDeque},
    path::Path,
    process::{Command, Output},
};

use icmp_guard_tests::lab::{Lab, Scratch, stderr_of, workspace_bin};

/// The built CLI with `args`, run to completion outside any lab.
fn cli(args: &[&str]) -> Output {
    let bin = workspace_bin("icmp-guard").unwrap();
    Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawning {} {args:?}: {e}", bin.display()))
}

/// The `name(1)` pages a roff page names in its SUBCOMMANDS section, as file names.
fn named_pages(roff: &str) -> Vec<String> {
    roff.lines()
        .skip_while(|l| *l != ".SH SUBCOMMANDS")
        .skip(1)
        .take_while(|l| !l.starts_with(".SH"))
        .filter_map(|l| l.strip_suffix("(1)"))
        .map(|name| format!("{}.1", name.replace("\\-", "-")))
        .collect()
}

/// Renders `page` as man(1) would, with every groff warning on: it must render cleanly.
fn assert_renders(page: &Path) {
    let roff = std::fs::read_to_string(page).unwrap();
    assert!(
        roff.contains("\n.TH ") && roff.contains("\n.SH NAME\n") && roff.contains(".SH SYNOPSIS"),
        "{}: not a man page:\n{roff}",
        page.display()
    );
    let Ok(out) = Command::new("groff")
        // -P-cbou: plain text, no overstriking, so the headings read as words.
        .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
        .arg(page)
        .output()
    else {
        eprintln!(
            "groff not installed: {} checked for its sections only",
            page.display()
        );
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && out.stderr.is_empty() && text.contains("SYNOPSIS"),
        "{}: groff says {}",
        page.display(),
        stderr_of(&out)
    );
}

/// `generate man` printed one page that named icmp-guard-attach(1) and the others, which no
/// command made. `generate man --dir DIR` writes them all; every page a page names exists
/// and renders, and the main page is the one `generate man` still prints on stdout.
#[test]
fn every_man_page_the_main_page_names_exists_and_renders() {
    let scratch = Scratch::new().unwrap();
    let dir = scratch.file("man1");
    let out = cli(&["generate", "man", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let written: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            Path::new(l)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, on_disk, "it prints the pages it writes");

    let main = cli(&["generate", "man"]);
    assert!(main.status.success(), "{}", stderr_of(&main));
    assert_eq!(
        main.stdout,
        std::fs::read(dir.join("icmp-guard.1")).unwrap(),
        "`generate man` prints the main page"
    );

    // From the main page down, every page named is there; and every page is reached.
    let mut reached = BTreeSet::from(["icmp-guard.1".to_owned()]);
    let mut queue = VecDeque::from(["icmp-guard.1".to_owned()]);
    while let Some(name) = queue.pop_front() {
        let page = dir.join(&name);
        assert!(page.is_file(), "{name} is named but was not generated");
        assert_renders(&page);
        for sub in named_pages(&std::fs::read_to_string(&page).unwrap()) {
            if reached.insert(sub.clone()) {
                queue.push_back(sub);
            }
        }
    }
    assert_eq!(reached, on_disk);
    for page in [
        "icmp-guard-attach.1",
        "icmp-guard-stats.1",
        "icmp-guard-allow-add.1",
        "icmp-guard-deny-del.1",
        "icmp-guard-config-check.1",
    ] {
        assert!(reached.contains(page), "{page} missing: {reached:?}");
    }
}

/// (arguments, what stderr must say): usage errors exit 2, as clap's own do, before anything
/// runs, in one line that names the value and the fix. None needs a guard: each fails first
/// (and the bpffs named does not exist, so nothing could be touched if one did not).
#[test]
fn usage_errors_exit_2_naming_the_value_and_the_fix() {
    for (args, needles) in [
        (
            &["allow", "add", "eth0", "300.1.2.3/8"][..],
            &[
                "'300.1.2.3/8'",
                "\"300.1.2.3\" is not an IPv4 or IPv6 address",
                "write an address or ADDR/LEN, e.g. 198.51.100.0/24",
            ][..],
        ),
        (
            &["deny", "del", "eth0", "198.51.100.7/24"],
            &["did you mean 198.51.100.0/24?"],
        ),
        (
            &["allow", "add", "eth0", "198.51.100.0/33"],
            &["\"198.51.100.0/33\": the prefix length must be 0 to 32"],
        ),
        (
            &["set", "eth0"],
            &[
                "set eth0 needs at least one of --echo-rate",
                "--enforce",
                "e.g. `icmp-guard set eth0 --echo-rate 50`",
            ],
        ),
        (
            &["attach", "eth0", "--mode", "turbo"],
            &["'turbo'", "auto, native, generic"],
        ),
    ] {
        let mut argv = vec!["--bpffs", "/nonexistent/icmp-guard-cli-test"];
        argv.extend(args);
        let out = cli(&argv);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        for needle in needles {
            assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
        }
        let lines: Vec<_> = err.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one error line: {err}");
    }
}

/// (`--mode`, the mode attached): the kernel's names for the modes, `skb` and `drv`, attach in
/// generic and native mode (veth has native XDP), and `status` names the mode as always.
#[test]
fn the_kernels_mode_names_attach_in_the_modes_they_name() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    for (asked, mode) in [("skb", "generic"), ("drv", "native")] {
        let out = lab.cli_ok(&["attach", iface, "--mode", asked]).unwrap();
        assert!(out.contains(&format!("in {mode} mode")), "{asked}: {out}");
        assert_eq!(lab.status().unwrap()[0]["mode"], mode, "{asked}");
        lab.cli_ok(&["detach", iface]).unwrap();
    }
}

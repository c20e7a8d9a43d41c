//! Small CLI truths (issue 10, item 7): what the binary promises on its command line, checked
//! on the built binary. The man pages and usage errors need no lab; `stats --watch` runs
//! against a real guard in one, bounded in time.

use std::{
    collections::{BTreeSet, VecDeque},
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use icmp_guard_tests::lab::{Lab, Scratch, stderr_of, workspace_bin};
use serde_json::Value;

/// The built CLI with `args`, run to completion outside any lab.
fn cli(args: &[&str]) -> Output {
    let bin = workspace_bin("icmp-guard").unwrap();
    Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawning {} {args:?}: {e}", bin.display()))
}

/// Renders `page` as man(1) would, with every groff warning on: it must render cleanly.
fn assert_renders(page: &Path) {
    let roff = std::fs::read_to_string(page).unwrap();
    assert!(
        roff.contains("\n.TH ") && roff.contains("\n.SH NAME\n") && roff.contains(".SH SYNOPSIS"),
        "{}: not a man page:\n{roff}",
        page.display()
    );
    let out = Command::new("groff")
        // -P-cbou: plain text, no overstriking, so the headings read as words.
        .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
        .arg(page)
        .output()
        .unwrap_or_else(|e| panic!("groff (`cargo xtask setup` installs it): {e}"));
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
        for sub in icmp_guard::cli::named_pages(&std::fs::read_to_string(&page).unwrap()) {
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

/// How `--watch` says which intervals it takes.
const WATCH_RANGE: &str = "the interval must be 0.1 to 3600 seconds (fractions allowed)";

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
        // `--watch` takes seconds with fractions; not 0, negative, NaN, infinite or absurd.
        (
            &["stats", "eth0", "--watch", "0"],
            &["'0'", WATCH_RANGE, "e.g. --watch 0.5"],
        ),
        (&["stats", "eth0", "--watch", "-1"], &["'-1'", WATCH_RANGE]),
        (&["stats", "eth0", "--watch=-0.5"], &["'-0.5'", WATCH_RANGE]),
        (
            &["stats", "eth0", "--watch", "NaN"],
            &["'NaN'", WATCH_RANGE],
        ),
        (
            &["stats", "eth0", "--watch", "inf"],
            &["'inf'", WATCH_RANGE],
        ),
        (
            &["stats", "eth0", "--watch", "1e9"],
            &["'1e9'", WATCH_RANGE],
        ),
        (
            &["stats", "eth0", "--watch", "0.001"],
            &["'0.001'", WATCH_RANGE],
        ),
        (
            &["stats", "eth0", "--watch", "soon"],
            &["'soon'", WATCH_RANGE],
        ),
        // A reason capture never sees: refused before the bpffs or the privileges are looked
        // at (this table runs as nobody too).
        (
            &["capture", "eth0", "-w", "-", "--reason", "passed_non_icmp"],
            &[
                "--reason passed_non_icmp: capture sees only verdicts on ICMP frames",
                "pick from",
            ],
        ),
    ] {
        let mut argv = vec!["--bpffs", "/nonexistent/icmp-guard-cli-test"];
        argv.extend(args);
        let as_nobody = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(workspace_bin("icmp-guard").unwrap())
            .args(&argv)
            .output()
            .unwrap();
        assert_eq!(
            as_nobody.status.code(),
            Some(2),
            "{args:?} as nobody: {}",
            stderr_of(&as_nobody)
        );
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

/// Runs `cmd` with stdout to a pipe (not a terminal) and returns what it printed until `done`
/// holds for the lines so far, or `limit` passed; the process is killed either way.
fn lines_until(mut cmd: Command, limit: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if send.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    seen
}

/// Checks four lines of `stats IFACE --watch 0.25 --json --top 3` taken during a flood: each
/// one object, its rates the change of its counters over the interval it measured.
fn assert_json_lines(json: &[String], iface: &str) {
    assert_eq!(json.len(), 4, "{json:?}");
    let lines: Vec<Value> = json
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for (line, pair) in lines
        .iter()
        .zip(std::iter::once(None).chain(lines.iter().map(Some)))
    {
        assert_eq!(line["interface"], iface, "{line}");
        let interval = line["interval_secs"].as_f64().unwrap();
        assert!((0.25..2.0).contains(&interval), "{line}");
        assert!(line["timestamp"].as_f64().unwrap() > 1.0e9, "{line}");
        assert!(line["top_sources"].as_array().unwrap().len() <= 3, "{line}");
        let Some(before) = pair else { continue };
        assert!(
            line["timestamp"].as_f64() > before["timestamp"].as_f64(),
            "{line}"
        );
        // Each rate is the change of its counter over the interval measured.
        for (name, rate) in line["rates"].as_object().unwrap() {
            let moved = line["counters"][name].as_u64().unwrap()
                - before["counters"][name].as_u64().unwrap();
            let rate = rate.as_f64().unwrap();
            assert!(
                (rate - moved as f64 / interval).abs() < 1e-6,
                "{name}: {line}"
            );
        }
    }
    let rate = |name: &str| {
        lines
            .iter()
            .map(|l| l["rates"][name].as_f64().unwrap())
            .sum::<f64>()
    };
    assert!(
        rate("passed") + rate("dropped_rate_source") > 0.0,
        "the flood shows: {json:?}"
    );
}

/// Reads one line of `cmd`'s stdout, then closes the pipe, as `| head -n 1` does: `cmd` must
/// end within 10 s, with success and nothing on stderr (it is killed if it does not).
fn assert_ends_when_the_reader_leaves(mut cmd: Command) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut first = String::new();
        BufReader::new(stdout).read_line(&mut first).unwrap();
        first
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let first = reader.join().unwrap();
    assert!(first.starts_with('{'), "{first}");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{:?}: {}",
        out.status,
        stderr_of(&out)
    );
}

/// `stats --watch` took whole seconds only, redrew with terminal escapes into files and pipes
/// too, refused `--json`, and divided by the seconds asked for rather than those that passed.
/// Now, into a pipe: `--watch 0.25 --json` streams one object per line, its rates over the
/// interval it measured; `--watch 0.25` appends plain screens.
#[test]
fn stats_watch_streams_json_lines_and_plain_screens_into_a_pipe() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    lab.cli_ok(&["attach", iface, "--mode", "generic"]).unwrap();
    // Echoes at 200/s for 3 s while the watches run; bounded by count.
    let mut flood = lab
        .inject_command(&["--kind", "echo", "--count", "600", "--pps", "200"])
        .unwrap()
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let bpffs = &lab.bpffs.path;

    let json = lines_until(
        lab.cli_command(
            bpffs,
            &["stats", iface, "--watch", "0.25", "--json", "--top", "3"],
        ),
        Duration::from_secs(10),
        |lines| lines.len() >= 4,
    );
    assert_json_lines(&json, iface);

    // A reader that has read enough closes the pipe (`| head -n 1`): the watch ends.
    assert_ends_when_the_reader_leaves(
        lab.cli_command(bpffs, &["stats", iface, "--watch", "0.25", "--json"]),
    );

    let screens = lines_until(
        lab.cli_command(bpffs, &["stats", iface, "--watch", "0.25"]),
        Duration::from_secs(10),
        |lines| {
            lines
                .iter()
                .filter(|l| l.starts_with("icmp-guard on"))
                .count()
                >= 2
        },
    );
    let headers: Vec<_> = screens
        .iter()
        .filter(|l| l.starts_with("icmp-guard on"))
        .collect();
    assert_eq!(headers.len(), 2, "{screens:?}");
    assert!(
        headers.iter().all(|h| h.contains("rates over 0.")),
        "{headers:?}"
    );
    assert!(
        screens.iter().any(|l| l.contains("per second"))
            && screens.iter().any(|l| l.starts_with("top sources now")),
        "{screens:?}"
    );
    for line in json.iter().chain(&screens) {
        assert!(
            !line.chars().any(char::is_control),
            "control characters in {line:?}"
        );
    }

    assert!(flood.wait().unwrap().success());
    lab.cli_ok(&["detach", iface]).unwrap();
}

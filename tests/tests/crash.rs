//! Crash consistency, deterministically: each command that changes a guard (attach, set,
//! allow/deny add and del, and a reload's apply) is run once under `strace` to count its
//! `bpf()` calls, then once per call N with that call replaced by a SIGKILL (`strace -e
//! trace=bpf -e inject=bpf:signal=SIGKILL:when=N`: the signal is delivered on entry, so the
//! Nth call never runs; strace 6.1 injects only into traced calls, hence `trace=bpf` with the
//! output to `/dev/null`). After every kill:
//!
//! - what the CLI shows (`allow list --json`, `deny list --json`, `status --json`) is what
//!   the program enforces: the bank the config names, read through the product's own handles,
//!   holds exactly those prefixes, and the config's counts (the program skips a list whose
//!   count is 0) are their numbers;
//! - the limits and lists are all the old ones or all the new ones, never a mix;
//! - the next plain run of the command succeeds (finishing an interrupted attach) and leaves
//!   the new state.
//!
//! A reload is killed twice over: driven through `attach --config FILE --replace`, which
//! applies the file with the same function the service's SIGHUP does
//! (`config_file::apply::apply`), and in the service itself, on SIGHUP, with its interface
//! check slowed to an hour by a test hook (`ICMP_GUARD_TEST_TICK_SECS`), so that the reload's
//! are the only `bpf()` calls it makes while traced.

use std::{
    collections::BTreeSet,
    os::unix::process::ExitStatusExt as _,
    process::Output,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use icmp_guard::pinned::Guard;
use icmp_guard_common::policy::List;
use icmp_guard_tests::lab::{Daemon, Lab, eventually, stderr_of, workspace_bin};

/// More `bpf()` calls than any command makes: a bound on the kill loop.
const MAX_CALLS: usize = 1000;
/// A bound on each command's whole kill loop.
const BUDGET: Duration = Duration::from_secs(300);

/// The state of the guard that matters here: whether it is attached, its primary limits,
/// and the lists in force.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// No link pinned (nothing attached, maybe pins of an interrupted attach).
    Unguarded,
    Guarded {
        limits: [u32; 6],
        allow: BTreeSet<String>,
        deny: BTreeSet<String>,
    },
}

fn set(prefixes: &[&str]) -> BTreeSet<String> {
    prefixes.iter().map(|p| (*p).to_owned()).collect()
}

fn guarded(limits: [u32; 6], allow: &[&str], deny: &[&str]) -> State {
    State::Guarded {
        limits,
        allow: set(allow),
        deny: set(deny),
    }
}

/// The limits `file` and `set` write: echo, reply and global rate and burst.
const LIMITS: [u32; 6] = [20, 50, 100, 200, 2000, 4000];
const OTHER_LIMITS: [u32; 6] = [7, 9, 30, 60, 900, 1800];
const ALLOW: [&str; 2] = ["192.0.2.0/24", "2001:db8::/32"];
const DENY: [&str; 1] = ["203.0.113.0/24"];

/// A config file for the lab's interface.
fn file(lab: &Lab, name: &str, limits: [u32; 6], allow: &[&str], deny: &[&str]) -> String {
    let quoted = |l: &[&str]| {
        l.iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let path = lab.scratch.file(name);
    std::fs::write(
        &path,
        format!(
            "[[interface]]\nname = \"{}\"\nallow = [{}]\ndeny = [{}]\n[interface.limits]\n\
             echo_rate = {}\necho_burst = {}\nreply_rate = {}\nreply_burst = {}\n\
             global_rate = {}\nglobal_burst = {}\n",
            lab.guarded_if,
            quoted(allow),
            quoted(deny),
            limits[0],
            limits[1],
            limits[2],
            limits[3],
            limits[4],
            limits[5]
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

/// Reads the state, checking on the way that the CLI shows what the program enforces.
fn observe(lab: &Lab) -> Result<State> {
    let iface = lab.guarded_if.as_str();
    let pins = lab.pins(iface);
    if !pins.exist() {
        return Ok(State::Unguarded);
    }
    // The program's side: the config's bank and counts, and that bank's tries.
    let guard = Guard::open(pins)?;
    let cfg = guard.maps.config()?;
    let bank = cfg.list_bank();
    let mut lists = Vec::new();
    for (list, name, count) in [
        (List::Allow, "allow", cfg.allow_entries),
        (List::Deny, "deny", cfg.deny_entries),
    ] {
        let enforced: BTreeSet<String> = guard
            .maps
            .bank_list(list, bank)?
            .iter()
            .map(ToString::to_string)
            .collect();
        ensure!(
            enforced.len() == count as usize,
            "the {name} list's bank {bank} holds {enforced:?} but the config counts {count}"
        );
        // The CLI's side.
        let out = lab.cli_ok(&[name, "list", iface, "--json"])?;
        let json: serde_json::Value = serde_json::from_str(&out)?;
        let shown: BTreeSet<String> = json["prefixes"]
            .as_array()
            .context("prefixes")?
            .iter()
            .map(|p| p.as_str().unwrap_or_default().to_owned())
            .collect();
        ensure!(
            shown == enforced,
            "`{name} list` shows {shown:?}, the program enforces {enforced:?}"
        );
        ensure!(
            lab.status()?[0]["lists"][name] == enforced.len(),
            "status counts another {name} list"
        );
        lists.push(enforced);
    }
    let deny = lists.pop().unwrap_or_default();
    let allow = lists.pop().unwrap_or_default();
    Ok(State::Guarded {
        limits: [
            cfg.echo.rate,
            cfg.echo.burst,
            cfg.reply.rate,
            cfg.reply.burst,
            cfg.global.rate,
            cfg.global.burst,
        ],
        allow,
        deny,
    })
}

/// The CLI under strace in the guarded namespace, with `strace_args`.
fn traced(lab: &Lab, strace_args: &[&str], args: &[&str]) -> Result<Output> {
    let mut cmd = lab.guarded.enter("strace");
    cmd.args(["-f", "-qq"])
        .args(strace_args)
        .arg(workspace_bin("icmp-guard")?)
        .arg("--bpffs")
        .arg(&lab.bpffs.path)
        .args(args);
    cmd.output().with_context(|| format!("spawning {cmd:?}"))
}

/// Runs `args` once, counting its `bpf()` calls; it must succeed.
fn count_calls(lab: &Lab, args: &[&str]) -> Result<usize> {
    count_calls_of(lab, "bpf", args)
}

/// Runs `args` once, counting its calls of `syscall`; it must succeed.
fn count_calls_of(lab: &Lab, syscall: &str, args: &[&str]) -> Result<usize> {
    let trace = lab.scratch.file("calls.trace");
    let out = traced(
        lab,
        &[
            "-e",
            &format!("trace={syscall}"),
            "-o",
            trace.to_str().unwrap(),
        ],
        args,
    )?;
    ensure!(out.status.success(), "{args:?}: {}", stderr_of(&out));
    calls_in(&trace, syscall)
}

/// The `bpf()` calls in a trace strace wrote.
fn bpf_calls(trace: &std::path::Path) -> Result<usize> {
    calls_in(trace, "bpf")
}

/// The calls of `syscall` in a trace strace wrote.
fn calls_in(trace: &std::path::Path, syscall: &str) -> Result<usize> {
    let text = std::fs::read_to_string(trace)?;
    let call = format!("{syscall}(");
    Ok(text
        .lines()
        .filter(|l| l.contains(&call) && !l.contains("resumed>"))
        .count())
}

/// Kills `args` at each of its `bpf()` calls in turn. Before each run the guard is in
/// `old` (`restore` puts it back); after each kill it must be in `old` or `new` with the CLI
/// and the program agreeing, and `finish` (the next plain command) must succeed and leave
/// `new`.
///
/// What a list change writes depends on what the bank not in force holds, so the calls are
/// counted once the cycle (command, restore) has run once: from then on every run starts
/// from the same banks (see [`scramble`]), and makes the same calls.
fn kill_at_every_call(
    lab: &Lab,
    args: &[&str],
    old: &State,
    new: &State,
    finish: &[&str],
    restore: &dyn Fn() -> Result<()>,
) -> Result<usize> {
    assert_eq!(&observe(lab)?, old, "the starting state");
    count_calls(lab, args)?;
    restore()?;
    let calls = count_calls(lab, args)?;
    ensure!(
        calls > 0 && calls <= MAX_CALLS,
        "{args:?} made {calls} bpf() calls"
    );
    assert_eq!(&observe(lab)?, new, "{args:?} run whole");
    restore()?;
    let started = Instant::now();
    let mut seen = BTreeSet::new();
    for n in 1..=calls {
        ensure!(
            started.elapsed() < BUDGET,
            "{args:?}: out of time at kill point {n} of {calls}"
        );
        assert_eq!(&observe(lab)?, old, "restored before kill point {n}");
        let inject = format!("inject=bpf:signal=SIGKILL:when={n}");
        let out = traced(
            lab,
            &["-o", "/dev/null", "-e", "trace=bpf", "-e", &inject],
            args,
        )?;
        // The count is deterministic, so every run dies.
        ensure!(
            out.status.signal() == Some(libc::SIGKILL),
            "{args:?} at bpf() call {n} of {calls} was not killed: {:?} {}",
            out.status,
            stderr_of(&out)
        );
        let state = observe(lab).with_context(|| format!("{args:?} killed at call {n}"))?;
        ensure!(
            state == *old || state == *new,
            "{args:?} killed at bpf() call {n} left a mix: {state:?}"
        );
        seen.insert(state == *new);
        let out = lab.cli(finish)?;
        ensure!(
            out.status.success(),
            "after a kill at call {n}, {finish:?} failed: {}",
            stderr_of(&out)
        );
        ensure!(
            &observe(lab)? == new,
            "{finish:?} after a kill at call {n} did not reach the new state"
        );
        restore()?;
    }
    ensure!(
        seen.contains(&false),
        "{args:?}: no kill point left the old state"
    );
    Ok(calls)
}

/// The calls with which `detach` (and `clean`) change the pins and the link (`bpf`:
/// `BPF_LINK_DETACH`, and the reads before it): each is killed in turn.
const PIN_CALLS: [&str; 5] = ["rename", "bpf", "unlink", "unlinkat", "rmdir"];

/// A detach or clean renames the interface's folder aside before it unlinks a pin, so a kill
/// at any step leaves the guard whole or no guard, and the next attach starts afresh: never
/// the old maps, lists or counters taken for an interrupted attach to finish.
#[test]
fn a_kill_during_detach_leaves_the_guard_or_none_and_the_next_attach_starts_afresh() {
    let lab = lab();
    let iface = lab.guarded_if.as_str();
    let start = file(&lab, "start.toml", LIMITS, &ALLOW, &DENY);
    let old = guarded(LIMITS, &ALLOW, &DENY);
    let detached = || eventually(5, "the guard detaches", || !lab.guarded_has_xdp());
    let restore = || -> Result<()> {
        ok(&lab, &["detach", iface])?;
        detached()?;
        ok(&lab, &["attach", "--config", &start])
    };
    let started = Instant::now();
    let mut kills = 0;
    for syscall in PIN_CALLS {
        let calls = count_calls_of(&lab, syscall, &["detach", iface]).unwrap();
        assert!(calls <= MAX_CALLS, "{calls} {syscall}() calls");
        ok(&lab, &["attach", "--config", &start]).unwrap();
        for n in 1..=calls {
            assert!(started.elapsed() < BUDGET, "out of time at {syscall} {n}");
            assert_eq!(observe(&lab).unwrap(), old, "before {syscall} {n}");
            let inject = format!("inject={syscall}:signal=SIGKILL:when={n}");
            let trace = format!("trace={syscall}");
            let out = traced(
                &lab,
                &["-o", "/dev/null", "-e", &trace, "-e", &inject],
                &["detach", iface],
            )
            .unwrap();
            assert_eq!(
                out.status.signal(),
                Some(libc::SIGKILL),
                "detach at {syscall} call {n} was not killed: {}",
                stderr_of(&out)
            );
            kills += 1;
            let state = observe(&lab).unwrap();
            assert!(
                state == old || state == State::Unguarded,
                "a kill at {syscall} call {n} left {state:?}"
            );
            if lab.pins(iface).removing_dir().exists() {
                expect_cut_short(
                    &lab,
                    "removing",
                    lab.guarded_has_xdp(),
                    &format!("{syscall} {n}"),
                );
            }
            // Whole: detach it. Gone, its folder renamed aside and maybe its link still
            // attached (a kill before `BPF_LINK_DETACH`): the attach finishes the removal.
            if state == old {
                ok(&lab, &["detach", iface]).unwrap();
                detached().unwrap();
            }
            let removing = lab.pins(iface).removing_dir().exists();
            let attach = lab.cli(&["attach", iface]).unwrap();
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&attach.stdout),
                stderr_of(&attach)
            );
            assert!(attach.status.success(), "after {syscall} {n}: {said}");
            assert_eq!(
                said.contains("finished removing the pins at"),
                removing,
                "after {syscall} {n}, the attach says whether it finished a removal: {said}"
            );
            assert!(
                !said.contains("interrupted"),
                "after a kill at {syscall} call {n}, attach took the detached guard's pins for its own: {said}"
            );
            assert_eq!(
                observe(&lab).unwrap(),
                guarded(LIMITS, &[], &[]),
                "after {syscall} {n}: the defaults, no lists"
            );
            let guard = Guard::open(lab.pins(iface)).unwrap();
            for list in [List::Allow, List::Deny] {
                for bank in 0..2 {
                    assert!(
                        guard.maps.bank_list(list, bank).unwrap().is_empty(),
                        "after {syscall} {n}: bank {bank} of the {list:?} list kept old prefixes"
                    );
                }
            }
            drop(guard);
            assert!(
                !lab.pins(iface).removing_dir().exists(),
                "after {syscall} {n}: the removal cut short was not finished"
            );
            restore().unwrap();
        }
    }
    assert!(kills >= 3, "only {kills} kill points");
}

/// `status` shows what a kill left of the lab's guard: one row of `status --json`, of
/// `stage`, saying whether its link is `attached`, and a line of the text naming the folder.
fn expect_cut_short(lab: &Lab, stage: &str, attached: bool, at: &str) {
    let iface = lab.guarded_if.as_str();
    let rows = lab.status().unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{at}: {rows:?}");
    assert_eq!(rows[0]["interface"], iface, "{at}: {rows:?}");
    assert_eq!(rows[0]["stage"], stage, "{at}: {rows:?}");
    assert_eq!(rows[0]["attached"], attached, "{at}: {rows:?}");
    let text = lab.cli_ok(&["status"]).unwrap();
    let pins = lab.pins(iface);
    let dir = if stage == "removing" {
        pins.removing_dir()
    } else {
        pins.dir
    };
    assert!(
        text.contains("(cut short: ") && text.contains(&dir.display().to_string()),
        "{at}: {text}"
    );
}

/// A lab whose interface is guarded with `LIMITS`, `ALLOW` and `DENY` from a file.
fn lab() -> Lab {
    let lab = Lab::new().unwrap();
    let start = file(&lab, "start.toml", LIMITS, &ALLOW, &DENY);
    lab.cli_ok(&["attach", "--config", &start]).unwrap();
    assert_eq!(observe(&lab).unwrap(), guarded(LIMITS, &ALLOW, &DENY));
    lab
}

/// Leaves the lists as they are, with the bank not in force holding something else (the
/// lists and one more deny prefix): a change then deletes and inserts there before its
/// config write, so the kill points cover a half-written bank.
fn scramble(lab: &Lab) -> Result<()> {
    let iface = lab.guarded_if.as_str();
    ok(lab, &["deny", "add", iface, SCRAMBLE])?;
    ok(lab, &["deny", "del", iface, SCRAMBLE])
}

/// The prefix [`scramble`] adds and removes.
const SCRAMBLE: &str = "198.18.0.0/15";

fn ok(lab: &Lab, args: &[&str]) -> Result<()> {
    let out = lab.cli(args)?;
    if !out.status.success() {
        bail!("{args:?}: {}", stderr_of(&out));
    }
    Ok(())
}

#[test]
fn a_kill_during_attach_leaves_nothing_or_an_attach_the_next_one_finishes() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    let new = guarded([20, 50, 100, 200, 2000, 4000], &[], &[]);
    kill_a_first_attach(&lab, &["attach", &iface], &new, "attach");
}

/// A first attach from a file puts its limits and lists in the maps before it pins the link:
/// a kill leaves no guard or the whole file, never the file's limits with no lists.
#[test]
fn a_kill_during_a_first_attach_from_a_file_leaves_nothing_or_the_whole_file() {
    let lab = Lab::new().unwrap();
    let start = file(&lab, "start.toml", OTHER_LIMITS, &ALLOW, &DENY);
    let new = guarded(OTHER_LIMITS, &ALLOW, &DENY);
    kill_a_first_attach(
        &lab,
        &["attach", "--config", &start],
        &new,
        "attach --config",
    );
}

/// Kills the first attach `args` at each of its `bpf()` calls; after each, nothing is
/// attached and the pins are an attach to finish, or the guard is `new` and attached; the
/// next plain `args` (or `status`, when the guard is whole) finishes it.
fn kill_a_first_attach(lab: &Lab, args: &[&str], new: &State, label: &str) {
    let iface = lab.guarded_if.as_str();
    let new = new.clone();
    let restore = || {
        ok(lab, &["clean", iface])?;
        // Unlinking the link's pin releases it from a kernel work item: soon, not at once.
        eventually(5, "clean detaches", || !lab.guarded_has_xdp())
    };
    // `attach` finishes what a kill left; if the kill came after the link was pinned, the
    // guard is whole and `status` is the next command.
    let finish = |lab: &Lab| -> Vec<&str> {
        if observe(lab).is_ok_and(|s| s != State::Unguarded) {
            vec!["status"]
        } else {
            args.to_vec()
        }
    };
    let calls = count_calls(lab, args).unwrap();
    assert!(calls > 0 && calls <= MAX_CALLS, "{calls}");
    assert_eq!(observe(lab).unwrap(), new);
    restore().unwrap();
    let started = Instant::now();
    let mut resumed = 0;
    for n in 1..=calls {
        assert!(started.elapsed() < BUDGET, "out of time at kill point {n}");
        let inject = format!("inject=bpf:signal=SIGKILL:when={n}");
        let out = traced(
            lab,
            &["-o", "/dev/null", "-e", "trace=bpf", "-e", &inject],
            args,
        )
        .unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "call {n}");
        let state = observe(lab).unwrap();
        assert!(
            state == State::Unguarded || state == new,
            "killed at call {n}: {state:?}"
        );
        assert_eq!(
            lab.guarded_has_xdp(),
            state == new,
            "killed at call {n}: attached exactly when the link is pinned"
        );
        let interrupted = state == State::Unguarded && lab.pin_dir(iface).exists();
        if interrupted {
            expect_cut_short(lab, "interrupted", false, &format!("call {n}"));
        }
        let next = finish(lab);
        let out = lab.cli(&next).unwrap();
        assert!(
            out.status.success(),
            "after a kill at call {n}, {next:?}: {}",
            stderr_of(&out)
        );
        if interrupted {
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(
                said.contains(&format!("finished an interrupted attach of {iface}")),
                "call {n}: {said}"
            );
            resumed += 1;
        }
        assert_eq!(observe(lab).unwrap(), new, "call {n}");
        assert!(lab.guarded_has_xdp(), "call {n}");
        restore().unwrap();
    }
    assert!(resumed > 0, "no kill point left pins without a link");
    eprintln!("{label}: {calls} kill points, {resumed} left an attach to finish");
}

/// An attach that stops between pinning its new link under the staging name and renaming the
/// pin (a window no `bpf()` call falls in, so made here by renaming the pin back) leaves a
/// guard that enforces: `status` says so, and the next change names the pin.
#[test]
fn a_link_left_under_its_staging_name_is_shown_and_the_next_change_names_it() {
    let lab = lab();
    let iface = lab.guarded_if.as_str();
    let pins = lab.pins(iface);
    std::fs::rename(pins.link(), pins.link_staging()).unwrap();
    // While a command holds the lock, a folder it has not finished is its work in progress,
    // not a leftover: not shown, and the text says why.
    let held = icmp_guard::pinned::Lock::acquire(&lab.bpffs.path).unwrap();
    let out = lab.cli(&["status", "--json"]).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    assert!(
        stderr_of(&out).contains("warning: another icmp-guard command is changing"),
        "{}",
        stderr_of(&out)
    );
    let text = lab.cli_ok(&["status"]).unwrap();
    assert!(
        text.contains("another icmp-guard command is changing the guards")
            && !text.contains("cut short"),
        "{text}"
    );
    drop(held);
    expect_cut_short(&lab, "staged", true, "staged");
    ok(&lab, &["set", iface, "--echo-rate", "7"]).unwrap();
    assert!(pins.link().exists() && !pins.link_staging().exists());
    assert_eq!(lab.status().unwrap()[0]["limits"]["echo_rate"], 7);
    assert!(lab.guarded_has_xdp());
}

/// Maps an attach left without a link, on an interface that runs another program since:
/// `attach` refuses to finish them, so `status` says so and names `clean`.
#[test]
fn an_interrupted_attach_beside_another_program_points_to_clean() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    let other = lab.interrupted_beside_another(iface, "auto").unwrap();
    expect_cut_short(&lab, "interrupted", false, "beside another program");
    let text = lab.cli_ok(&["status"]).unwrap();
    assert!(
        text.contains("so `attach` refuses to finish it: `icmp-guard clean"),
        "{text}"
    );
    let out = lab.cli(&["attach", iface]).unwrap();
    assert!(!out.status.success(), "{}", stderr_of(&out));
    ok(&lab, &["clean", iface]).unwrap();
    let out = lab
        .cli_command(&other.path, &["detach", iface])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}

#[test]
fn a_kill_during_set_leaves_the_old_or_the_new_limits() {
    let lab = lab();
    let iface = lab.guarded_if.as_str();
    let flags = |l: [u32; 6]| -> Vec<String> {
        let mut v = vec!["set".to_owned(), iface.to_owned()];
        for (flag, value) in [
            "--echo-rate",
            "--echo-burst",
            "--reply-rate",
            "--reply-burst",
            "--global-rate",
            "--global-burst",
        ]
        .iter()
        .zip(l)
        {
            v.push((*flag).to_owned());
            v.push(value.to_string());
        }
        v
    };
    let new_args = flags(OTHER_LIMITS);
    let old_args = flags(LIMITS);
    let args: Vec<&str> = new_args.iter().map(String::as_str).collect();
    let back: Vec<&str> = old_args.iter().map(String::as_str).collect();
    let calls = kill_at_every_call(
        &lab,
        &args,
        &guarded(LIMITS, &ALLOW, &DENY),
        &guarded(OTHER_LIMITS, &ALLOW, &DENY),
        &args,
        &|| ok(&lab, &back),
    )
    .unwrap();
    eprintln!("set: {calls} kill points");
}

#[test]
fn a_kill_during_a_list_change_leaves_the_old_or_the_new_list() {
    let lab = lab();
    let iface = lab.guarded_if.as_str();
    let old = guarded(LIMITS, &ALLOW, &DENY);
    let added = "198.51.100.0/24";
    let cases: [(&str, &str, &str, State, &str); 4] = [
        (
            "allow",
            "add",
            added,
            guarded(LIMITS, &[ALLOW[0], ALLOW[1], added], &DENY),
            "del",
        ),
        (
            "allow",
            "del",
            ALLOW[0],
            guarded(LIMITS, &[ALLOW[1]], &DENY),
            "add",
        ),
        (
            "deny",
            "add",
            added,
            guarded(LIMITS, &ALLOW, &[DENY[0], added]),
            "del",
        ),
        ("deny", "del", DENY[0], guarded(LIMITS, &ALLOW, &[]), "add"),
    ];
    for (list, verb, cidr, new, undo) in cases {
        let args = [list, verb, iface, cidr];
        let calls = kill_at_every_call(&lab, &args, &old, &new, &args, &|| {
            ok(&lab, &[list, undo, iface, cidr])?;
            scramble(&lab)
        })
        .unwrap();
        eprintln!("{list} {verb}: {calls} kill points");
    }
}

/// The reload both reload tests kill: from the lab's starting file to one with other limits
/// and lists.
struct Reload {
    start: String,
    next: String,
    old: State,
    new: State,
}

impl Reload {
    fn files(lab: &Lab) -> Self {
        let next_lists = (["198.51.100.7/32"], ["203.0.113.0/24", "2001:db8:1::/48"]);
        Self {
            start: file(lab, "start.toml", LIMITS, &ALLOW, &DENY),
            next: file(lab, "next.toml", OTHER_LIMITS, &next_lists.0, &next_lists.1),
            old: guarded(LIMITS, &ALLOW, &DENY),
            new: guarded(OTHER_LIMITS, &next_lists.0, &next_lists.1),
        }
    }
}

#[test]
fn a_kill_during_a_reload_leaves_the_old_or_the_new_policy() {
    let lab = lab();
    let iface = lab.guarded_if.as_str();
    let Reload {
        start,
        next,
        old,
        new,
    } = Reload::files(&lab);
    let args = ["attach", "--config", &next, "--replace", iface];
    let calls = kill_at_every_call(&lab, &args, &old, &new, &args, &|| {
        ok(&lab, &["attach", "--config", &start, "--replace", iface])?;
        scramble(&lab)
    })
    .unwrap();
    eprintln!("reload: {calls} kill points");
}

/// The bank switch itself, through the library: a list change writes the bank not in force
/// and switches the config to it, leaving the bank that was in force as it was (a packet still
/// reading it finds the old list). What a kill between those writes leaves is what the kills
/// of `allow` and `deny` above check.
#[test]
fn a_list_change_switches_banks_and_leaves_the_bank_in_force_untouched() {
    let lab = lab();
    let pins = lab.pins(&lab.guarded_if);
    let guard = Guard::open(pins).unwrap();
    let before = guard.maps.config().unwrap();
    let bank = before.list_bank();
    let in_force = guard.maps.bank_list(List::Allow, bank).unwrap();
    drop(guard);
    ok(&lab, &["allow", "add", &lab.guarded_if, "198.51.100.0/24"]).unwrap();
    let pins = lab.pins(&lab.guarded_if);
    let guard = Guard::open(pins).unwrap();
    let after = guard.maps.config().unwrap();
    assert_eq!(after.list_bank(), 1 - bank, "the add switched banks");
    assert_eq!(
        guard.maps.bank_list(List::Allow, bank).unwrap(),
        in_force,
        "the old bank was not touched"
    );
    assert_eq!(after.allow_entries, before.allow_entries + 1);
}

/// The service, started on `config` with its interface check slowed to an hour by the test
/// hook, once it has applied the file and logged that it runs: from then on its only
/// `bpf()` calls are those of a reload. Killed when dropped, so a test that fails halfway
/// leaves no service behind.
fn quiet_service(lab: &Lab, config: &str, log: &std::path::Path) -> Result<Daemon> {
    let mut child = lab
        .daemon_command(std::path::Path::new(config), log)?
        .env("ICMP_GUARD_TEST_TICK_SECS", "3600")
        .spawn()
        .context("spawning the service")?;
    let started = eventually(10, "the service runs", || {
        std::fs::read_to_string(log).is_ok_and(|l| l.contains("daemon running"))
    });
    if let Err(e) = started {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e.context(std::fs::read_to_string(log).unwrap_or_default()));
    }
    Ok(Daemon { child })
}

/// `strace` attached to the running `pid` with `args`; returns once every thread is traced.
fn trace_pid(pid: u32, args: &[&str]) -> Result<std::process::Child> {
    let strace = std::process::Command::new("strace")
        .args(["-f", "-qq"])
        .args(args)
        .args(["-p", &pid.to_string()])
        .spawn()
        .context("spawning strace")?;
    eventually(10, "strace traces every thread of the service", || {
        std::fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|tasks| {
            tasks.flatten().all(|task| {
                std::fs::read_to_string(task.path().join("status")).is_ok_and(|status| {
                    status
                        .lines()
                        .any(|l| l.starts_with("TracerPid:") && l.trim_end() != "TracerPid:\t0")
                })
            })
        })
    })?;
    Ok(strace)
}

/// The service itself killed at every `bpf()` call of a SIGHUP reload, in turn (the reload
/// of [`a_kill_during_a_reload_leaves_the_old_or_the_new_policy`] driven by the service):
/// after each kill the guard holds the old or the new policy with the CLI showing what the
/// program enforces, and the service started again applies the file.
#[test]
fn a_kill_of_the_service_during_a_reload_leaves_the_old_or_the_new_policy() {
    let lab = lab();
    let iface = lab.guarded_if.as_str();
    let Reload {
        start,
        next,
        old,
        new,
    } = Reload::files(&lab);
    let config = lab.scratch.file("service.toml");
    let config_text = config.to_str().unwrap().to_owned();
    let log = lab.scratch.file("service.log");
    let trace = lab.scratch.file("reload.trace");
    let restore = || -> Result<()> {
        ok(&lab, &["attach", "--config", &start, "--replace", iface])?;
        scramble(&lab)?;
        std::fs::copy(&start, &config)?;
        Ok(())
    };
    // One reload whole, traced, to count its calls (after one first, so that every run
    // starts from the same banks).
    let reload = |inject: Option<usize>| -> Result<std::process::ExitStatus> {
        restore()?;
        ensure!(observe(&lab)? == old, "restored before the reload");
        let mut service = quiet_service(&lab, &config_text, &log)?;
        let injected = inject.map(|n| format!("inject=bpf:signal=SIGKILL:when={n}"));
        let mut args = vec!["-e", "trace=bpf", "-o"];
        args.push(if inject.is_some() {
            "/dev/null"
        } else {
            trace.to_str().unwrap()
        });
        if let Some(injected) = &injected {
            args.extend(["-e", injected.as_str()]);
        }
        let mut strace = trace_pid(service.child.id(), &args)?;
        std::fs::copy(&next, &config)?;
        // SAFETY: kill(2) on our own child's pid.
        ensure!(unsafe { libc::kill(i32::try_from(service.child.id())?, libc::SIGHUP) } == 0);
        let status = if inject.is_some() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = service.child.try_wait()? {
                    break status;
                }
                ensure!(Instant::now() < deadline, "the service outlived its kill");
                std::thread::sleep(Duration::from_millis(10));
            }
        } else {
            eventually(10, "the service reloads", || {
                observe(&lab).is_ok_and(|s| s == new)
            })?;
            service.child.kill()?;
            service.child.wait()?
        };
        let _ = strace.wait();
        Ok(status)
    };
    reload(None).unwrap();
    reload(None).unwrap();
    let calls = bpf_calls(&trace).unwrap();
    assert!(
        calls > 0 && calls <= MAX_CALLS,
        "a reload made {calls} bpf() calls"
    );
    let started = Instant::now();
    let mut seen = BTreeSet::new();
    for n in 1..=calls {
        assert!(
            started.elapsed() < BUDGET,
            "out of time at kill point {n} of {calls}"
        );
        let status = reload(Some(n)).unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "the service at bpf() call {n} of {calls}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let state = observe(&lab).unwrap();
        assert!(
            state == old || state == new,
            "the service killed at bpf() call {n} left a mix: {state:?}"
        );
        seen.insert(state == new);
        // Started again, the service applies the file.
        let mut service = quiet_service(&lab, &config_text, &log).unwrap();
        eventually(10, "the restarted service applies the file", || {
            observe(&lab).is_ok_and(|s| s == new)
        })
        .unwrap();
        service.child.kill().unwrap();
        service.child.wait().unwrap();
    }
    assert!(seen.contains(&false), "no kill point left the old state");
    eprintln!("service reload: {calls} kill points");
}

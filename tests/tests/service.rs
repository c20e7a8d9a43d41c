//! The operator's side, end to end: the daemon (config, metrics, SIGHUP, interface churn,
//! SIGKILL), in-place upgrades under a flood, the lock, stale and incompatible state,
//! capabilities, the shipped config and unit, and the generated docs.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Result;
use icmp_guard_tests::lab::{
    Daemon, Lab, Mounted, Scratch, bucket_allows, eventually, ip, stderr_of, unique, workspace_bin,
};

const METRICS: &str = "127.0.0.1:9966";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn write_config(lab: &Lab, path: &Path, echo_rate: u32) {
    std::fs::write(
        path,
        format!(
            "[daemon]\nmetrics = \"{METRICS}\"\n[[interface]]\nname = \"{}\"\nallow = [\"192.0.2.0/24\"]\n[interface.limits]\necho_rate = {echo_rate}\necho_burst = 20\n",
            lab.guarded_if
        ),
    )
    .unwrap();
}

/// Makes the interface `late` (a veth) in the lab's guarded namespace, where the service
/// logging to `log` names it in its file but did not find it at start, and waits for the
/// service to attach it.
fn late_interface_appears(lab: &Lab, late: &str, log: &Path) {
    ip(&[
        "-n",
        &lab.guarded.name,
        "link",
        "add",
        late,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{late}p"),
    ])
    .unwrap();
    let logged = || std::fs::read_to_string(log).unwrap_or_default();
    eventually(10, "the late interface is attached", || {
        logged().contains(&format!("{late}: the interface appeared (ifindex"))
    })
    .unwrap_or_else(|e| panic!("{e}: {}", logged()));
}

/// A service's config file in the lab's scratch folder, written by [`write_config`] with an
/// echo rate of 10, and the path of its log.
fn service_files(lab: &Lab) -> (PathBuf, PathBuf) {
    let config = lab.scratch.file("icmp-guard.toml");
    write_config(lab, &config, 10);
    (config, lab.scratch.file("daemon.log"))
}

/// A service's config file in the lab's scratch folder, holding `toml`, and the path of its
/// log.
fn service_files_with(lab: &Lab, toml: &str) -> (PathBuf, PathBuf) {
    let config = lab.scratch.file("icmp-guard.toml");
    std::fs::write(&config, toml).unwrap();
    (config, lab.scratch.file("daemon.log"))
}

/// The value of one sample of a scrape.
fn sample(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

/// Starts a second service with `config` beside the running one: it must refuse to start;
/// returns what it said.
fn second_service(lab: &Lab, config: &Path) -> String {
    let log = lab.scratch.file("second.log");
    let out = lab.daemon_command(config, &log).unwrap().output().unwrap();
    assert!(!out.status.success(), "a second service must not start");
    std::fs::read_to_string(&log).unwrap()
}

fn scrape(lab: &Lab) -> Result<prometheus_parse::Scrape> {
    let body = lab.guarded.http_get(METRICS, "/metrics")?;
    Ok(prometheus_parse::Scrape::parse(
        body.lines().map(|l| Ok(l.to_owned())),
    )?)
}

#[test]
#[expect(clippy::too_many_lines, reason = "one daemon's life, step by step")]
fn daemon_attaches_serves_metrics_reloads_and_survives_interface_churn_and_sigkill() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    let (config, log) = service_files(&lab);
    let mut daemon = lab.daemon(&config, &log).unwrap();
    eventually(10, "the daemon attaches", || {
        lab.status().unwrap_or_default()[0]["interface"] == iface.as_str()
    })
    .unwrap();
    assert_eq!(
        lab.status().unwrap_or_default()[0]["lists"]["allow"],
        1,
        "lists applied from the file"
    );

    // /metrics parses with a real Prometheus parser and says what the guard does.
    assert_eq!(lab.ping(2, "0.2", 5).unwrap(), 2);
    let metrics = scrape(&lab).unwrap();
    let on = [("interface", iface.as_str())];
    assert_eq!(sample(&metrics, "icmp_guard_up", &on), Some(1.0));
    assert_eq!(
        sample(
            &metrics,
            "icmp_guard_limit",
            &[("interface", &iface), ("limit", "echo_rate")]
        ),
        Some(10.0)
    );
    assert!(
        sample(
            &metrics,
            "icmp_guard_packets_total",
            &[
                ("interface", &iface),
                ("reason", "passed"),
                ("verdict", "pass")
            ]
        )
        .unwrap()
            >= 2.0
    );
    assert_eq!(
        sample(&metrics, "icmp_guard_sources_capacity", &on),
        Some(f64::from(icmp_guard_common::config::defaults::MAX_SOURCES))
    );
    assert!(sample(&metrics, "icmp_guard_sources", &on).unwrap() >= 1.0);
    assert_eq!(
        sample(
            &metrics,
            "icmp_guard_list_prefixes",
            &[("interface", &iface), ("list", "allow")]
        ),
        Some(1.0)
    );
    assert!(
        sample(
            &metrics,
            "icmp_guard_top_source_passed_packets",
            &[("interface", &iface), ("rank", "1")]
        )
        .unwrap()
            >= 2.0
    );
    // By rank alone unless the file asks for the sources' names (they would churn under a
    // spoofed flood).
    assert!(
        metrics
            .samples
            .iter()
            .all(|s| s.labels.get("source").is_none()),
        "a source label by default"
    );
    assert_eq!(
        sample(&metrics, "icmp_guard_source_insert_failures_total", &on),
        Some(0.0)
    );

    // SIGHUP with a changed limit takes effect.
    write_config(&lab, &config, 33);
    daemon.signal(libc::SIGHUP).unwrap();
    eventually(5, "the new limit", || {
        lab.status().unwrap_or_default()[0]["limits"]["echo_rate"] == 33
    })
    .unwrap();

    // SIGHUP with a broken file changes nothing: here limits each in range but invalid
    // together (twice the admission rate above the global rate), in a file that leaves the
    // lab's interface out, which a reload would detach before applying the rest.
    std::fs::write(
        &config,
        "[[interface]]\nname = \"x\"\n[interface.limits]\nglobal_rate = 150\n",
    )
    .unwrap();
    daemon.signal(libc::SIGHUP).unwrap();
    eventually(5, "the refusal is logged", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("reload refused")
    })
    .unwrap();
    assert!(daemon.running(), "the daemon survives a broken file");
    assert_eq!(
        lab.status().unwrap_or_default()[0]["limits"]["echo_rate"],
        33,
        "nothing changed"
    );
    // A refused reload changes nothing, the guard included: still ready.
    lab.guarded.http_get(METRICS, "/ready").unwrap();
    write_config(&lab, &config, 33);

    // The interface disappears and comes back with a new index: the guard comes back.
    let before = lab.status().unwrap()[0]["ifindex"].clone();
    lab.recreate_link().unwrap();
    eventually(10, "re-attached after the interface came back", || {
        lab.guarded_has_xdp() && lab.status().unwrap_or_default()[0]["ifindex"] != before
    })
    .unwrap();
    assert_eq!(
        lab.status().unwrap_or_default()[0]["limits"]["echo_rate"],
        33,
        "its maps were kept"
    );
    assert_eq!(lab.ping(2, "0.2", 5).unwrap(), 2);

    // SIGKILL leaves the program attached and enforcing.
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    assert!(lab.guarded_has_xdp());
    let dropped_before = lab.stats().unwrap()["counters"]["dropped_rate_source"]
        .as_u64()
        .unwrap();
    lab.inject(&["--kind", "echo", "--count", "1000"]).unwrap();
    let dropped_after = lab.stats().unwrap()["counters"]["dropped_rate_source"]
        .as_u64()
        .unwrap();
    assert!(
        dropped_after >= dropped_before + 900,
        "still enforcing: {dropped_before} -> {dropped_after}"
    );
}

/// A reload that cannot do all the file asks does the rest and says what it did not: a
/// running guard keeps its attach mode (the reload is marked failed, the limits still
/// change); the metrics move to a wildcard address on their own port, which cannot be bound
/// while the loopback address listens; an interface of the file that appears later is
/// attached, saying so (not that someone removed its pins); and a reload that waits out
/// another command's lock says the service is not ready, keeps the interface the file drops
/// guarded and in view, and detaches it once the lock is free, without another SIGHUP.
#[test]
#[expect(clippy::too_many_lines, reason = "one service's reloads, step by step")]
fn a_reload_applies_what_it_can_and_says_what_it_cannot() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    let late = unique('l');
    let config = lab.scratch.file("icmp-guard.toml");
    let log = lab.scratch.file("daemon.log");
    let write = |mode: &str, metrics: &str, echo_rate: u32| {
        std::fs::write(
            &config,
            format!(
                "[daemon]\nmetrics = \"{metrics}\"\nmetrics_public = true\n[[interface]]\nname = \"{iface}\"\nmode = \"{mode}\"\n[interface.limits]\necho_rate = {echo_rate}\n[[interface]]\nname = \"{late}\"\n"
            ),
        )
        .unwrap();
    };
    let reloaded = |daemon: &Daemon, step: &str| {
        let lines = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count();
        daemon.signal(libc::SIGHUP).unwrap();
        eventually(10, step, || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .skip(lines)
                .any(|l| l.contains("reloaded "))
        })
        .unwrap();
        std::fs::read_to_string(&log).unwrap()
    };
    let reload_ok = || {
        sample(
            &scrape(&lab).unwrap(),
            "icmp_guard_config_last_reload_successful",
            &[],
        )
    };
    write("native", METRICS, 10);
    let daemon = lab.daemon(&config, &log).unwrap();
    eventually(10, "the daemon attaches", || {
        lab.status().unwrap_or_default()[0]["mode"] == "native"
    })
    .unwrap();

    write("generic", METRICS, 33);
    let text = reloaded(&daemon, "the reload with another mode");
    assert!(
        text.contains("runs in native mode and the file asks for generic"),
        "{text}"
    );
    let status = lab.status().unwrap();
    assert_eq!(status[0]["mode"], "native", "{status}");
    assert_eq!(status[0]["limits"]["echo_rate"], 33, "the rest applied");
    assert_eq!(reload_ok(), Some(0.0));

    let wildcard = METRICS.replace("127.0.0.1", "0.0.0.0");
    write("auto", &wildcard, 33);
    let text = reloaded(&daemon, "the reload that moves the metrics");
    assert!(!text.contains("metrics stay on"), "{text}");
    let listening = Command::new("ip")
        .args(["netns", "exec", &lab.guarded.name, "ss", "-ltnH"])
        .output()
        .unwrap();
    let listening = String::from_utf8_lossy(&listening.stdout);
    assert!(listening.contains(&wildcard), "{listening}");
    assert_eq!(reload_ok(), Some(1.0));

    late_interface_appears(&lab, &late, &log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("its pins were removed"), "{text}");

    // The late interface leaves the file while another command holds the lock past the
    // service's 10 s wait: its guard stays, enforcing and in view, until the lock is free;
    // then the reload is done without another SIGHUP.
    std::fs::write(
        &config,
        format!(
            "[daemon]\nmetrics = \"{wildcard}\"\nmetrics_public = true\n[[interface]]\nname = \"{iface}\"\n"
        ),
    )
    .unwrap();
    // What this reload logs: the lines after those already there.
    let before = std::fs::read_to_string(&log).unwrap().lines().count();
    let logged = || -> String {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.lines().skip(before).collect::<Vec<_>>().join("\n")
    };
    let held = icmp_guard::pinned::Lock::acquire(&lab.bpffs.path).unwrap();
    daemon.signal(libc::SIGHUP).unwrap();
    // The reload waits 10 s for the lock; the metrics are served meanwhile (the scrape
    // times out after 5 s).
    std::thread::sleep(Duration::from_millis(500));
    let during = scrape(&lab).expect("a scrape while the reload waits for the lock");
    assert_eq!(
        sample(&during, "icmp_guard_up", &[("interface", &late)]),
        Some(1.0)
    );
    eventually(15, "the reload gives up waiting", || {
        logged().contains("is applied as soon as the lock is free")
    })
    .unwrap_or_else(|e| panic!("{e}: {}", logged()));
    let on_late = [("interface", late.as_str())];
    assert!(lab.guarded.has_xdp(&late));
    assert_eq!(
        sample(&scrape(&lab).unwrap(), "icmp_guard_up", &on_late),
        Some(1.0),
        "still in view"
    );
    assert_eq!(reload_ok(), Some(0.0));
    let unready = lab.guarded.http_get(METRICS, "/ready").unwrap_err();
    assert!(
        unready.to_string().contains("waits for the command lock"),
        "{unready}"
    );
    // Put off, not failed.
    assert!(!logged().contains("only in part"), "{}", logged());
    drop(held);
    eventually(5, "the reload once the lock is free", || {
        logged().contains("applied now that the command lock is free")
    })
    .unwrap_or_else(|e| panic!("{e}: {}", logged()));
    let text = logged();
    assert!(
        text.contains(&format!(
            "{late}: detached (no longer in the configuration)"
        )),
        "{text}"
    );
    assert!(!lab.guarded.has_xdp(&late));
    assert_eq!(
        sample(&scrape(&lab).unwrap(), "icmp_guard_up", &on_late),
        None
    );
    assert_eq!(reload_ok(), Some(1.0));
    eventually(5, "ready again", || {
        lab.guarded.http_get(METRICS, "/ready").is_ok()
    })
    .unwrap();
}

/// A service that starts while a command holds the lock past its 10 s wait applies its file
/// once the lock is free: an interface guarded before gets the file's limits (and this
/// version's program), and `/ready` says not ready until then.
#[test]
fn a_start_that_waits_out_the_lock_applies_the_file_when_it_is_free() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    lab.cli_ok(&["attach", &iface, "--echo-rate", "5"]).unwrap();
    let (config, log) = service_files(&lab);
    let held = icmp_guard::pinned::Lock::acquire(&lab.bpffs.path).unwrap();
    let mut daemon = lab.daemon(&config, &log).unwrap();
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually(20, "the start gives up waiting", || {
        logged().contains("is applied as soon as the lock is free")
    })
    .unwrap_or_else(|e| panic!("{e}: {}", logged()));
    let unready = lab.guarded.http_get(METRICS, "/ready").unwrap_err();
    assert!(
        unready.to_string().contains("503")
            && unready.to_string().contains("waits for the command lock"),
        "{unready}"
    );
    assert_eq!(lab.status().unwrap()[0]["limits"]["echo_rate"], 5);
    drop(held);
    eventually(5, "the file is applied", || {
        lab.status().unwrap_or_default()[0]["limits"]["echo_rate"] == 10
    })
    .unwrap_or_else(|e| panic!("{e}: {}", logged()));
    let text = logged();
    assert!(
        text.contains("applied now that the command lock is free")
            && text.contains(&format!("{iface}: program "))
            && !text.contains("its pins were removed"),
        "{text}"
    );
    lab.guarded.http_get(METRICS, "/ready").unwrap();
    assert!(daemon.running());
}

/// A service whose file names no interface this host has guards nothing, and says so on
/// `/ready` (a rollout stops there) until one appears, which it then guards.
#[test]
fn a_service_that_guards_nothing_is_not_ready() {
    let lab = Lab::new().unwrap();
    let late = unique('n');
    let (config, log) = service_files_with(
        &lab,
        &format!("[daemon]\nmetrics = \"{METRICS}\"\n[[interface]]\nname = \"{late}\"\n"),
    );
    let _daemon = lab.daemon(&config, &log).unwrap();
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually(10, "not ready, guarding nothing", || {
        lab.guarded
            .http_get(METRICS, "/ready")
            .is_err_and(|e| e.to_string().contains("none of the interfaces of"))
    })
    .unwrap_or_else(|e| panic!("{e}: {}", logged()));
    late_interface_appears(&lab, &late, &log);
    eventually(5, "ready once it guards the interface", || {
        lab.guarded.http_get(METRICS, "/ready").is_ok()
    })
    .unwrap_or_else(|e| panic!("{e}: {}", logged()));
}

/// An interface whose attach fails at start (another program holds it) is tried again, and
/// attached once that program is gone, the log naming the failure (not a removal of its
/// pins); `/ready` names the interface until then.
#[test]
fn an_interface_refused_at_start_is_attached_when_it_can_be() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    // Attached under another pin root, this guard is a foreign program to the service.
    let other = icmp_guard_tests::lab::Bpffs::new().unwrap();
    let foreign = lab
        .cli_command(&other.path, &["attach", &iface])
        .output()
        .unwrap();
    assert!(foreign.status.success(), "{}", stderr_of(&foreign));
    let (config, log) = service_files(&lab);
    let _daemon = lab.daemon(&config, &log).unwrap();
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually(10, "the start is refused", || {
        logged().contains("already has an XDP program")
    })
    .unwrap_or_else(|e| panic!("{e}: {}", logged()));
    eventually(5, "not ready, naming the interface", || {
        lab.guarded
            .http_get(METRICS, "/ready")
            .is_err_and(|e| e.to_string().contains("503"))
    })
    .unwrap();
    let gone = lab
        .cli_command(&other.path, &["detach", &iface])
        .output()
        .unwrap();
    assert!(gone.status.success(), "{}", stderr_of(&gone));
    eventually(20, "attached once the other program is gone", || {
        logged().contains(&format!(
            "{iface}: the file could not be applied to it when it was read; attached in"
        ))
    })
    .unwrap_or_else(|e| panic!("{e}: {}", logged()));
    assert!(!logged().contains("its pins were removed"), "{}", logged());
    eventually(5, "ready", || {
        lab.guarded.http_get(METRICS, "/ready").is_ok()
    })
    .unwrap();
}

/// A file whose `daemon.bpffs` is not mounted yet and whose interface appears only after the
/// start: the service attaches it when it appears, mounting the bpffs then (it used to find
/// no bpffs there and wait for ever).
#[test]
fn a_late_interface_under_a_bpffs_not_mounted_yet_is_attached_when_it_appears() {
    let lab = Lab::new().unwrap();
    let mount = Mounted(lab.scratch.file("bpf"));
    let late = unique('m');
    let (config, log) = service_files_with(
        &lab,
        &format!(
            "[daemon]\nmetrics = \"{METRICS}\"\nbpffs = \"{}\"\n[[interface]]\nname = \"{late}\"\n",
            mount.0.display()
        ),
    );
    let _daemon = lab.daemon(&config, &log).unwrap();
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually(10, "the start", || {
        logged().contains("no such interface yet")
    })
    .unwrap_or_else(|e| panic!("{e}: {}", logged()));
    assert!(!icmp_guard::pinned::bpffs::is_bpffs(&mount.0));
    late_interface_appears(&lab, &late, &log);
    assert!(lab.guarded.has_xdp(&late));
    assert!(icmp_guard::pinned::bpffs::is_bpffs(&mount.0));
    let out = lab
        .cli_command(&mount.0, &["detach", &late])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}

/// A file asking what a running guard cannot change (another table capacity) gets the rest
/// applied, and the refusal logged: the limits are the file's, the table stays.
#[test]
fn what_a_running_guard_cannot_change_leaves_the_rest_of_the_file_applied() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    lab.cli_ok(&["attach", &iface, "--max-sources", "4096"])
        .unwrap();
    let (config, log) = service_files_with(
        &lab,
        &format!(
            "[daemon]\nmetrics = \"{METRICS}\"\n[defaults]\nmax_sources = 8192\n[[interface]]\nname = \"{iface}\"\n[interface.limits]\necho_rate = 33\n"
        ),
    );
    let _daemon = lab.daemon(&config, &log).unwrap();
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually(10, "the refusal is logged", || {
        logged().contains("cannot become 8192")
    })
    .unwrap_or_else(|e| panic!("{e}: {}", logged()));
    eventually(5, "the rest applied", || {
        lab.status().unwrap_or_default()[0]["limits"]["echo_rate"] == 33
    })
    .unwrap_or_else(|e| panic!("{e}: {}", logged()));
    assert_eq!(lab.status().unwrap()[0]["sources"]["capacity"], 4096);
}

/// A service in a container (here: pid 1 of a PID namespace of its own, sharing the lock
/// folder) is named as such by a second service and by a command's warning: its pid and
/// its file's path mean nothing outside.
#[test]
fn a_service_in_another_pid_namespace_is_named_as_such() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    let (config, log) = service_files(&lab);
    let _daemon = lab.daemon_in_own_pid_namespace(&config, &log).unwrap();
    eventually(10, "the daemon attaches", || lab.guarded_has_xdp())
        .unwrap_or_else(|e| panic!("{e}: {}", std::fs::read_to_string(&log).unwrap()));
    let said = format!(
        "pid 1 of another PID namespace, e.g. a container's, with {} as it sees it",
        config.display()
    );
    let out = lab.cli(&["set", &iface, "--echo-rate", "9"]).unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!("the icmp-guard service ({said}) manages {iface}")),
        "{}",
        stderr_of(&out)
    );
    let text = second_service(&lab, &config);
    assert!(
        text.contains(&format!("another icmp-guard service ({said})"))
            && text.contains("stop it where it runs (its container")
            && !text.contains("kill"),
        "{text}"
    );
}

#[test]
fn daemon_detaches_on_sigterm_when_configured() {
    let lab = Lab::new().unwrap();
    let (config, log) = service_files_with(
        &lab,
        &format!(
            "[daemon]\nmetrics = \"{METRICS}\"\non_exit = \"detach\"\n[[interface]]\nname = \"{}\"\n",
            lab.guarded_if
        ),
    );
    let mut daemon = lab.daemon(&config, &log).unwrap();
    eventually(10, "the daemon attaches", || lab.guarded_has_xdp()).unwrap();
    daemon.signal(libc::SIGTERM).unwrap();
    eventually(10, "the daemon exits", || !daemon.running()).unwrap();
    assert!(!lab.guarded_has_xdp(), "detached on exit");
    assert!(daemon.child.wait().unwrap().success());

    // A detach that cannot happen (another command holds the lock past the service's 10 s
    // wait) leaves the guard, and the service says so in its exit status.
    let mut daemon = lab.daemon(&config, &log).unwrap();
    eventually(10, "the daemon attaches again", || lab.guarded_has_xdp()).unwrap();
    let held = icmp_guard::pinned::Lock::acquire(&lab.bpffs.path).unwrap();
    daemon.signal(libc::SIGTERM).unwrap();
    eventually(20, "the daemon gives up and exits", || !daemon.running()).unwrap();
    drop(held);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(daemon.child.wait().unwrap().code(), Some(1), "{text}");
    assert!(lab.guarded_has_xdp(), "still guarded: {text}");
    assert!(
        text.contains(&format!(
            "daemon.on_exit = \"detach\" failed for {} (see the errors above)",
            lab.guarded_if
        )),
        "{text}"
    );
}

#[test]
fn replace_under_a_flood_loses_no_counter_and_lets_no_burst_through() {
    const RATE: u64 = 10;
    const BURST: u64 = 20;
    const FLOOD: u64 = 6000;
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    let started = Instant::now();
    lab.cli_ok(&[
        "attach",
        iface,
        "--echo-rate",
        &RATE.to_string(),
        "--echo-burst",
        &BURST.to_string(),
    ])
    .unwrap();
    let old = lab.status().unwrap()[0]["program_id"].clone();
    // 3 s of flood at 2000 pps; the swap happens in the middle of it.
    let mut flood = lab
        .inject_command(&[
            "--kind",
            "echo",
            "--count",
            &FLOOD.to_string(),
            "--pps",
            "2000",
        ])
        .unwrap()
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let out = lab.cli_ok(&["attach", iface, "--replace"]).unwrap();
    assert!(out.contains("atomically"), "{out}");
    assert!(flood.wait().unwrap().success());
    let new = lab.status().unwrap()[0]["program_id"].clone();
    assert_ne!(old, new, "a new program");
    let stats = lab.stats().unwrap();
    let passed = stats["counters"]["passed"].as_u64().unwrap();
    let dropped = stats["counters"]["dropped_rate_source"].as_u64().unwrap();
    assert_eq!(
        passed + dropped,
        FLOOD,
        "no counter lost across the swap: {stats}"
    );
    // About 55 may pass (the burst and 10/s over the 3.5 s since the attach); a swap that
    // refilled the bucket would add another burst of 20.
    let ceiling = bucket_allows(BURST, RATE, started);
    assert!(
        passed <= ceiling,
        "no fresh burst after the swap: passed {passed} > {ceiling}"
    );
}

#[test]
fn concurrent_commands_wait_for_the_lock() {
    use std::os::fd::AsRawFd as _;
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    lab.cli_ok(&["attach", &iface]).unwrap();
    // The lock file the product takes for this bpffs (see `unprivileged_users_cannot_take_or_block_the_lock`).
    let root = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(icmp_guard::pinned::lock::path(&lab.bpffs.path))
            .unwrap()
    };
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(root.as_raw_fd(), libc::LOCK_EX) }, 0);
    let mut set = lab
        .cli_command(&lab.bpffs.path, &["set", &iface, "--echo-rate", "5"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        set.try_wait().unwrap().is_none(),
        "set waits while another command holds the lock"
    );
    drop(root);
    assert!(set.wait().unwrap().success());
    assert_eq!(
        lab.status().unwrap_or_default()[0]["limits"]["echo_rate"],
        5
    );
}

/// Pins an array map of `entries` with 4-byte keys and `value` -byte values at `path`, as
/// another version of icmp-guard might have.
fn pin_array(path: &Path, value: u32, entries: u32, name: &str) {
    pin_map(path, &MapShape::array(value as usize, entries), name);
}

/// A map's layout as `bpftool map create` takes it.
struct MapShape {
    /// `bpftool`'s name of the type: `array`, `percpu_array`, `lru_hash`...
    kind: &'static str,
    key: usize,
    value: usize,
    entries: u32,
    flags: u32,
}

impl MapShape {
    const fn array(value: usize, entries: u32) -> Self {
        Self {
            kind: "array",
            key: 4,
            value,
            entries,
            flags: 0,
        }
    }
}

/// Pins a map of `shape` named `name` at `path`.
fn pin_map(path: &Path, shape: &MapShape, name: &str) {
    let out = Command::new("bpftool")
        .args(["map", "create"])
        .arg(path)
        .args(["type", shape.kind])
        .args([
            "key",
            &shape.key.to_string(),
            "value",
            &shape.value.to_string(),
        ])
        .args(["entries", &shape.entries.to_string(), "name", name])
        .args(["flags", &shape.flags.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}

/// Maps of icmp-guard's names in another layout, one field of the check each: (map, its
/// shape, what `attach` must say of it).
fn incompatible_layouts() -> Vec<(&'static str, MapShape, String)> {
    let line = size_of::<icmp_guard_common::seen::Line>();
    vec![
        (
            "IG_CONFIG",
            MapShape::array(48, 1),
            format!(
                "map IG_CONFIG has value size 48, this version needs {}",
                size_of::<icmp_guard_common::Config>()
            ),
        ),
        // The previous release's recently-seen filter: one stamp a slot.
        (
            "IG_SEEN",
            MapShape::array(8, 131_072),
            format!("map IG_SEEN has value size 8, this version needs {line}"),
        ),
        // A filter of other lines: the right value, another capacity.
        (
            "IG_SEEN",
            MapShape::array(line, 1024),
            format!(
                "map IG_SEEN has capacity 1024, this version needs {}",
                icmp_guard_common::seen::LINES
            ),
        ),
        // Counters shared by every CPU, as an array: another type (2, not 6).
        (
            "IG_COUNTERS",
            MapShape::array(8, icmp_guard_common::reason::COUNTER_SLOTS),
            "map IG_COUNTERS has type 2, this version needs 6".to_owned(),
        ),
        // Sources keyed by IPv4 address and prefix alone: another key size.
        (
            "IG_SOURCES",
            MapShape {
                kind: "lru_hash",
                key: 8,
                value: size_of::<icmp_guard_common::SourceState>(),
                entries: 65_536,
                flags: 0,
            },
            format!(
                "map IG_SOURCES has key size 8, this version needs {}",
                size_of::<icmp_guard_common::SourceKey>()
            ),
        ),
        // The capture's control without `BPF_F_MMAPABLE`: other flags.
        (
            "IG_CAPTURE_CTL",
            MapShape::array(size_of::<icmp_guard_common::capture::Control>(), 1),
            "map IG_CAPTURE_CTL has flags 0, this version needs 1024".to_owned(),
        ),
    ]
}

/// `attach --config` checks an interrupted attach's table against the file before it
/// changes anything: a file asking another capacity is refused, naming both, and nothing is
/// attached; one that fits finishes the attach.
#[test]
fn attach_from_a_file_checks_an_interrupted_attach_before_finishing_it() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    lab.cli_ok(&["attach", iface]).unwrap();
    std::fs::remove_file(lab.pin_dir(iface).join("link")).unwrap();
    eventually(5, "the link pin held the program", || {
        !lab.guarded_has_xdp()
    })
    .unwrap();
    let file = |name: &str, extra: &str| {
        let path = lab.scratch.file(name);
        std::fs::write(&path, format!("{extra}[[interface]]\nname = \"{iface}\"\n")).unwrap();
        path
    };
    let other = file("other.toml", "[defaults]\nmax_sources = 4096\n");
    let out = lab
        .cli(&["attach", "--config", other.to_str().unwrap()])
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("max_sources is 65536")
            && stderr_of(&out).contains("cannot become 4096"),
        "{}",
        stderr_of(&out)
    );
    assert!(!lab.guarded_has_xdp(), "refused before attaching");
    let fits = file("fits.toml", "");
    let out = lab
        .cli_ok(&["attach", "--config", fits.to_str().unwrap()])
        .unwrap();
    assert!(
        out.contains(&format!("finished an interrupted attach of {iface}")),
        "{out}"
    );
    assert!(lab.guarded_has_xdp());
}

#[test]
fn stale_and_incompatible_state_is_reported_and_clean_removes_it() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    lab.cli_ok(&["attach", iface]).unwrap();
    // The maps the views (`status`, `stats`) open; the others (the filter, the capture's) they
    // never touch.
    let opened_by_views = {
        use icmp_guard_common::maps::{
            ADMISSION, AHEAD, ALLOW, ALLOW_B, CONFIG, COUNTERS, DENY, DENY_B, GLOBAL, SOURCES,
        };
        [
            CONFIG, COUNTERS, SOURCES, GLOBAL, AHEAD, ADMISSION, ALLOW, ALLOW_B, DENY, DENY_B,
        ]
    };
    for (map, shape, says) in incompatible_layouts() {
        let pin = lab.pin_dir(iface).join(map);
        std::fs::remove_file(&pin).unwrap();
        pin_map(&pin, &shape, map);
        let out = lab.cli(&["attach", iface, "--replace"]).unwrap();
        assert!(!out.status.success(), "{map}");
        let err = stderr_of(&out);
        assert!(err.contains(&says), "{err}");
        assert!(err.contains(&format!("icmp-guard clean {iface}")), "{err}");
        // The views: `status` gives the guard a row that says why when a map they open does
        // not open, never an error for every interface; `stats` says why, with the fix.
        let out = lab.cli(&["status", "--json"]).unwrap();
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rows[0]["interface"], iface, "{rows}");
        assert_eq!(
            rows[0]["error"].is_string(),
            opened_by_views.contains(&map),
            "{map}: {rows}"
        );
        if let Some(why) = rows[0]["error"].as_str() {
            assert!(!out.status.success(), "{map}: {rows}");
            assert!(why.contains(&says), "{map}: {why}");
            let out = lab.cli(&["stats", iface]).unwrap();
            let err = stderr_of(&out);
            assert!(!out.status.success() && err.contains(&says), "{map}: {err}");
            assert!(err.contains(&format!("icmp-guard clean {iface}")), "{err}");
        }
        lab.cli_ok(&["clean", iface]).unwrap();
        lab.cli_ok(&["attach", iface]).unwrap();
    }
    let pin = lab.pin_dir(iface).join("IG_CONFIG");
    std::fs::remove_file(&pin).unwrap();
    pin_array(&pin, 48, 1, "IG_CONFIG");
    // And a map pin this version does not know (a map another version had): clean removes
    // every `IG_*` pin, not only this version's.
    let retired = lab.pin_dir(iface).join("IG_RETIRED");
    pin_array(&retired, 4, 1, "IG_RETIRED");

    lab.cli_ok(&["clean", iface]).unwrap();
    assert!(!lab.guarded_has_xdp(), "clean detaches");
    assert!(!lab.pin_dir(iface).exists());

    // Pins without a link and nothing attached (an attach killed before it pinned the link:
    // the kernel detached the program with the process) are an attach that did not finish:
    // the next attach finishes it. An empty folder (killed right after making it) first.
    std::fs::create_dir_all(lab.pin_dir(iface)).unwrap();
    let out = lab.cli_ok(&["attach", iface]).unwrap();
    assert!(
        out.contains(&format!("finished an interrupted attach of {iface}")),
        "{out}"
    );
    assert!(lab.guarded_has_xdp());
    // Every map pinned but the link gone: the maps are reused, lists included, and the
    // config's counts say what the bank in force holds.
    lab.cli_ok(&["deny", "add", iface, "203.0.113.0/24"])
        .unwrap();
    std::fs::remove_file(lab.pin_dir(iface).join("link")).unwrap();
    // The link is released from a kernel work item: soon, not at once.
    eventually(5, "the link pin held the program", || {
        !lab.guarded_has_xdp()
    })
    .unwrap();
    // A capacity asked for now cannot change the table made then: said, not printed as if.
    let out = lab
        .cli_ok(&["attach", iface, "--max-sources", "4096"])
        .unwrap();
    assert!(
        out.contains(&format!("finished an interrupted attach of {iface}")),
        "{out}"
    );
    assert!(
        out.contains("holds 65536 sources, not 4096") && out.contains("up to 65536 sources"),
        "{out}"
    );
    assert!(lab.guarded_has_xdp());
    assert_eq!(lab.status().unwrap()[0]["lists"]["deny"], 1);
    let guard = icmp_guard::pinned::Guard::open(lab.pins(iface)).unwrap();
    assert_eq!(guard.maps.config().unwrap().deny_entries, 1);
    drop(guard);
    // Pins without a link whose layout does not fit still need `clean`.
    std::fs::remove_file(lab.pin_dir(iface).join("link")).unwrap();
    eventually(5, "the link pin held the program", || {
        !lab.guarded_has_xdp()
    })
    .unwrap();
    let pin = lab.pin_dir(iface).join("IG_CONFIG");
    std::fs::remove_file(&pin).unwrap();
    pin_array(&pin, 48, 1, "IG_CONFIG");
    let out = lab.cli(&["attach", iface]).unwrap();
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(err.contains("map IG_CONFIG has value size 48"), "{err}");
    assert!(err.contains(&format!("icmp-guard clean {iface}")), "{err}");
    assert!(
        lab.pin_dir(iface).join("IG_CONFIG").exists(),
        "left for clean"
    );
    lab.cli_ok(&["clean", iface]).unwrap();
    lab.cli_ok(&["attach", iface]).unwrap();
    assert!(lab.guarded_has_xdp());
}

/// An attach killed before it pinned the link leaves pins without a link; the service used
/// to log "stale state, run clean" every second and never guard the interface again. Now it
/// finishes that attach at start, with a line that says so.
#[test]
fn the_service_finishes_an_interrupted_attach() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    lab.cli_ok(&["attach", &iface]).unwrap();
    std::fs::remove_file(lab.pin_dir(&iface).join("link")).unwrap();
    eventually(5, "the link pin held the program", || {
        !lab.guarded_has_xdp()
    })
    .unwrap();
    let (config, log) = service_files(&lab);
    let _daemon = lab.daemon(&config, &log).unwrap();
    eventually(10, "the daemon finishes the attach", || {
        lab.guarded_has_xdp() && lab.pin_dir(&iface).join("link").exists()
    })
    .unwrap();
    eventually(10, "the file's list applied", || {
        lab.status().unwrap_or_default()[0]["lists"]["allow"] == 1
    })
    .unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains(&format!("finished an interrupted attach of {iface}")),
        "{logged}"
    );
    assert!(!logged.contains("stale"), "{logged}");
}

#[test]
fn a_foreign_program_is_named_and_never_clobbered() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    let attached = lab.cli_ok(&["attach", iface]).unwrap();
    let id = lab.status().unwrap()[0]["program_id"].clone();
    // Seen from another pin root, that program is foreign.
    let other = icmp_guard_tests::lab::Bpffs::new().unwrap();
    let out = lab
        .cli_command(&other.path, &["attach", iface])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{attached}");
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("program {id} \"icmp_guard\" in native mode")),
        "{err}"
    );
    assert_eq!(lab.status().unwrap()[0]["program_id"], id, "untouched");
}

/// What a scrape past idle connections met.
#[derive(Debug)]
struct PastIdle {
    /// Idle connections answered at once (with a 503), without sending anything.
    refused: usize,
    /// The scrape's status code, its whole answer (or why it could not be read to its end),
    /// and how long it took.
    status: Option<u16>,
    answer: Result<String, String>,
    took: Duration,
}

/// Opens `idle` connections to `METRICS` inside `lab`'s guarded namespace and holds them,
/// sending nothing, while a `GET /metrics` is made.
fn scrape_past_idle(lab: &Lab, idle: usize) -> PastIdle {
    use std::{
        io::{Read as _, Write as _},
        net::TcpStream,
    };
    let name = lab.guarded.name.clone();
    std::thread::spawn(move || {
        icmp_guard_tests::lab::enter_netns(&name).unwrap();
        let held: Vec<TcpStream> = (0..idle)
            .map(|_| TcpStream::connect(METRICS).unwrap())
            .collect();
        // Let the daemon accept them all before the scrape queues behind them.
        std::thread::sleep(Duration::from_millis(300));
        let refused = held
            .iter()
            .filter(|stream| {
                stream.set_nonblocking(true).unwrap();
                stream.peek(&mut [0u8; 12]).is_ok_and(|n| n > 0)
            })
            .count();
        let started = Instant::now();
        let mut stream = TcpStream::connect(METRICS).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
        // The whole answer, to its end: a reset would lose it.
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        let took = started.elapsed();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer.get(9..12).and_then(|code| code.parse().ok());
        drop(held);
        PastIdle {
            refused,
            status,
            answer: read.map(|_| answer).map_err(|e| e.to_string()),
            took,
        }
    })
    .join()
    .unwrap()
}

/// Idle connections cannot hold the metrics endpoint (issue 10, item 6): with four times as
/// many open as it serves at once, those beyond the bound are refused (503) at once, so is a
/// scrape while the others hold every slot, the daemon lives on, and once they are gone
/// scrapes are answered again.
#[test]
fn idle_connections_cannot_hold_the_metrics_endpoint() {
    let lab = Lab::new().unwrap();
    let (config, log) = service_files(&lab);
    let mut daemon = lab.daemon(&config, &log).unwrap();
    eventually(10, "the daemon serves /metrics", || scrape(&lab).is_ok()).unwrap();
    let slots = icmp_guard::daemon::http::MAX_CONNECTIONS;
    let met = scrape_past_idle(&lab, 4 * slots);
    assert_eq!(met.refused, 3 * slots, "{met:?}");
    assert_eq!(met.status, Some(503), "{met:?}");
    assert!(
        met.answer
            .as_ref()
            .is_ok_and(|a| a.ends_with("\r\n\r\ntoo many connections, try again\n")),
        "{met:?}"
    );
    assert!(met.took < Duration::from_secs(1), "{met:?}");
    assert!(
        daemon.running(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    eventually(
        10,
        "scrapes answered once the idle connections are gone",
        || scrape(&lab).is_ok(),
    )
    .unwrap();
}

/// The CLI with only `caps` (e.g. "+bpf,+net_admin").
fn with_caps(lab: &Lab, caps: &str, args: &[&str]) -> std::process::Output {
    lab.cli_with_caps(&format!("-all,{caps}"), args).unwrap()
}

#[test]
fn cap_bpf_and_cap_net_admin_are_enough_and_a_missing_one_is_named() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    let out = with_caps(&lab, "+bpf", &["attach", iface]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out)
            .contains("attach needs CAP_BPF, CAP_NET_ADMIN (or root); missing CAP_NET_ADMIN"),
        "{}",
        stderr_of(&out)
    );
    assert!(!lab.guarded_has_xdp());
    for args in [
        vec!["attach", iface, "--echo-rate", "7"],
        vec!["set", iface, "--echo-burst", "9"],
        vec!["deny", "add", iface, "203.0.113.0/24"],
        vec!["attach", iface, "--replace"],
        vec!["status"],
    ] {
        let out = with_caps(&lab, "+bpf,+net_admin", &args);
        assert!(
            out.status.success(),
            "{args:?} with CAP_BPF and CAP_NET_ADMIN only: {}",
            stderr_of(&out)
        );
    }
    assert!(lab.guarded_has_xdp());
    assert!(
        lab.ping(2, "0.2", 5).unwrap() == 2,
        "the program loaded without CAP_PERFMON works"
    );
    // Pinned state needs CAP_BPF alone.
    for args in [vec!["stats", iface, "--json"], vec!["detach", iface]] {
        let out = with_caps(&lab, "+bpf", &args);
        assert!(
            out.status.success(),
            "{args:?} with CAP_BPF only: {}",
            stderr_of(&out)
        );
    }
    assert!(!lab.guarded_has_xdp());
}

#[test]
fn the_shipped_config_and_unit_are_valid() {
    let example = repo().join("contrib/icmp-guard.toml");
    let out = Command::new(workspace_bin("icmp-guard").unwrap())
        .args(["config", "check"])
        .arg(&example)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("eth0:") && text.contains("eth1:") && text.contains("DRY RUN"),
        "{text}"
    );

    let scratch = Scratch::new().unwrap();
    let broken = scratch.file("broken.toml");
    std::fs::write(
        &broken,
        "[[interface]]\nname = \"eth0\"\n[interface.limits]\nv4_prefix = 40\n",
    )
    .unwrap();
    let out = Command::new(workspace_bin("icmp-guard").unwrap())
        .args(["config", "check"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains(&broken.display().to_string())
            && err.contains("interface[0] (eth0).limits.v4_prefix: 40 is outside 0..=32"),
        "{err}"
    );

    let unit = std::fs::read_to_string(repo().join("contrib/icmp-guard.service")).unwrap();
    for line in [
        "Type=notify",
        "ExecStart=/usr/bin/icmp-guard run --config /etc/icmp-guard/icmp-guard.toml",
        "ExecReload=/usr/bin/icmp-guard config check /etc/icmp-guard/icmp-guard.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "RuntimeDirectory=icmp-guard",
        "RuntimeDirectoryMode=0700",
        "ReadWritePaths=/sys/fs/bpf",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
    // systemd 252 to 257 mount /sys/fs/bpf read-only under ProtectKernelTunables=, whatever
    // ReadWritePaths= says: no pin could be made.
    assert!(
        !unit
            .lines()
            .any(|l| l.starts_with("ProtectKernelTunables=")),
        "{unit}"
    );
    // A bpffs the unit mounts is root's alone, as one the CLI mounts.
    assert!(
        unit.lines()
            .any(|l| l.starts_with("ExecStartPre=+") && l.contains("mount -t bpf -o mode=0700 ")),
        "{unit}"
    );
    let caps = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .unwrap();
    assert!(
        caps.contains("CAP_BPF")
            && caps.contains("CAP_NET_ADMIN")
            && !caps.contains("CAP_SYS_ADMIN"),
        "{caps}"
    );
    // systemd's own score of the sandbox (it was 2.7 before issue 10, 2.0 with
    // ProtectKernelTunables=, which its score counts but which cannot be used).
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(repo().join("contrib/icmp-guard.service"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for icmp-guard.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure in {text}{}", stderr_of(&out)));
    assert!(exposure <= 2.2, "exposure {exposure}");
}

#[test]
fn man_page_and_completions_come_from_the_cli() {
    let bin = workspace_bin("icmp-guard").unwrap();
    let man = Command::new(&bin)
        .args(["generate", "man"])
        .output()
        .unwrap();
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(
        man.contains(".TH icmp-guard 1") && man.contains("attach"),
        "{man}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(&bin)
            .args(["generate", "completions", shell])
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("icmp-guard"),
            "{shell}"
        );
    }
}

/// `icmp-guard stats` on the lab's guarded interface with `args`, ended by `timeout` after
/// `secs` seconds.
fn stats_for(lab: &Lab, secs: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg(secs)
        .arg("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.guarded.name))
        .arg("--")
        .arg(workspace_bin("icmp-guard").unwrap())
        .arg("--bpffs")
        .arg(&lab.bpffs.path)
        .args(["stats", &lab.guarded_if])
        .args(args);
    cmd
}

#[test]
fn stats_watch_shows_rates_per_second_and_top_offenders() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    lab.cli_ok(&["attach", iface, "--echo-rate", "1", "--echo-burst", "1"])
        .unwrap();
    // A paced flood runs while `--watch 1` redraws; both are bounded in time.
    let mut flood = lab
        .inject_command(&["--kind", "echo", "--count", "3000", "--pps", "1000"])
        .unwrap()
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = stats_for(&lab, "2.5", &["--watch", "1", "--top", "3"])
        .output()
        .unwrap();
    assert!(flood.wait().unwrap().success());
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen.contains("per second") && screen.contains("top sources now"),
        "{screen}"
    );
    // The last redraw shows the flooder dropping hundreds per second.
    let last = screen.rsplit("top sources now").next().unwrap();
    let line = last
        .lines()
        .find(|l| l.contains("198.51.100.2/32"))
        .unwrap_or_else(|| panic!("{screen}"));
    let dropped_per_sec: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
    assert!(dropped_per_sec > 300.0, "{line}");

    // Detached and attached anew under a running watch: it follows the new maps (with the
    // old ones it would show rates of 0 for ever), whenever its ticks fall.
    let mut watch = stats_for(&lab, "30", &["--watch", "0.5", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = {
        use std::io::BufRead as _;
        let stdout = std::io::BufReader::new(watch.stdout.take().unwrap());
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        lines
    };
    lines.recv_timeout(Duration::from_secs(10)).unwrap();
    lab.cli_ok(&["detach", iface]).unwrap();
    lab.cli_ok(&["attach", iface]).unwrap();
    assert_eq!(lab.ping(4, "0.2", 5).unwrap(), 4);
    // The new guard's counters (4 passes, none of the old guard's flood drops), within 20 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = serde_json::Value::Null;
    while last["counters"]["passed"] != 4 || last["counters"]["dropped_rate_source"] != 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no line shows the new guard's counters: {last}"));
        last = serde_json::from_str(&line).unwrap();
    }
    // Detached for good: the watch says so, past the moment an attach would take.
    lab.cli_ok(&["detach", iface]).unwrap();
    // Its grace of 2 s, a tick of 0.5 s to notice, and a margin.
    std::thread::sleep(Duration::from_secs(4));
    // SIGTERM, which `timeout` passes on to the watch (a SIGKILL would leave it running,
    // holding the pipes open).
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(i32::try_from(watch.id()).unwrap(), libc::SIGTERM) };
    let out = watch.wait_with_output().unwrap();
    let said = stderr_of(&out);
    assert!(
        said.contains(&format!("{iface} was attached anew"))
            && said.contains(&format!("{iface} is not guarded any more (detached)")),
        "{said}"
    );
}

/// Runs `args` as `nobody` (uid and gid 65534, no groups, no capabilities).
fn as_nobody(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(args)
        .output()
        .unwrap()
}

/// The lock was a `flock` on `<bpffs>/icmp-guard`, a folder of mode 0755: `nobody` could take
/// it and stall every `set` (and the service's runtime) for 10 s. The lock is now a file only
/// root can open, and the pin root is 0700: `nobody` can take neither, and `set` runs at once.
#[test]
fn unprivileged_users_cannot_take_or_block_the_lock() {
    use std::os::unix::fs::MetadataExt as _;
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    lab.cli_ok(&["attach", &iface]).unwrap();
    let lock = icmp_guard::pinned::lock::path(&lab.bpffs.path);
    let run_dir = Path::new(icmp_guard::pinned::lock::RUN_DIR);
    let meta = std::fs::metadata(run_dir).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o700));
    for folder in [lab.pin_root(), lab.pin_dir(&iface)] {
        let meta = std::fs::metadata(&folder).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o700, "{}", folder.display());
    }
    // Today's attack, on the old lock and on the new one: `flock` as nobody.
    for target in [lab.pin_root(), lock.clone()] {
        let out = as_nobody(&[
            "flock".as_ref(),
            "-n".as_ref(),
            target.as_os_str(),
            "true".as_ref(),
        ]);
        assert!(
            !out.status.success(),
            "nobody could lock {}",
            target.display()
        );
    }
    // And held in the background as long as nobody can, while root changes the guard.
    let mut holder = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "flock",
        ])
        .arg(lab.pin_root())
        .args(["sleep", "30"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    lab.cli_ok(&["set", &iface, "--echo-rate", "5"]).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "set waited {:?} for a lock nobody may hold",
        started.elapsed()
    );
    let _ = holder.kill();
    let _ = holder.wait();
    lab.cli_ok(&["detach", &iface]).unwrap();
}

/// Pins of a version with one list bank (no `IG_ALLOW_B`, `IG_DENY_B`): `attach --replace`
/// creates the missing maps and keeps the rest, and the lists work on.
#[test]
fn a_guard_pinned_with_one_list_bank_is_upgraded_in_place() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    lab.cli_ok(&["attach", iface]).unwrap();
    for map in ["IG_ALLOW_B", "IG_DENY_B"] {
        std::fs::remove_file(lab.pin_dir(iface).join(map)).unwrap();
    }
    let out = lab.cli_ok(&["attach", iface, "--replace"]).unwrap();
    assert!(out.contains("replaced program"), "{out}");
    for map in ["IG_ALLOW_B", "IG_DENY_B"] {
        assert!(lab.pin_dir(iface).join(map).exists(), "{map} pinned again");
    }
    lab.cli_ok(&["allow", "add", iface, "192.0.2.0/24"])
        .unwrap();
    let out = lab.cli_ok(&["allow", "list", iface]).unwrap();
    assert_eq!(out.trim(), "192.0.2.0/24");
    assert_eq!(lab.status().unwrap()[0]["lists"]["allow"], 1);
}

/// One service per bpffs and namespace: a second `run` is refused naming the first one's pid;
/// a CLI change to an interface the service manages warns; a guard removed or detached behind
/// the service's back is attached again, and the log says what happened.
#[test]
fn one_service_at_a_time_and_it_says_what_others_did() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    let (config, log) = service_files(&lab);
    let daemon = lab.daemon(&config, &log).unwrap();
    eventually(10, "the daemon attaches", || lab.guarded_has_xdp()).unwrap();

    let said = second_service(&lab, &config);
    assert!(
        said.contains(&format!(
            "another icmp-guard service (pid {}",
            daemon.child.id()
        )),
        "{said}"
    );

    // (what someone does behind the service's back, what the service's log then says)
    let link = lab.pin_dir(&iface).join("link");
    let cases: [(&str, &dyn Fn() -> String, &str); 2] = [
        (
            "icmp-guard detach",
            &|| {
                let out = lab.cli(&["detach", &iface]).unwrap();
                assert!(out.status.success(), "{}", stderr_of(&out));
                stderr_of(&out)
            },
            "its pins were removed outside this service",
        ),
        (
            "bpftool link detach",
            &|| {
                let out = Command::new("bpftool")
                    .args(["link", "detach", "pinned"])
                    .arg(&link)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", stderr_of(&out));
                String::new()
            },
            "link was detached from outside icmp-guard",
        ),
    ];
    for (what, act, logged) in cases {
        let warned = act();
        if what == "icmp-guard detach" {
            assert!(
                warned.contains(&format!(
                    "warning: the icmp-guard service (pid {} with {}) manages {iface}",
                    daemon.child.id(),
                    config.display()
                )),
                "{warned}"
            );
        }
        eventually(10, what, || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(logged)
                && lab.guarded_has_xdp()
        })
        .unwrap();
        assert_eq!(
            lab.status().unwrap()[0]["health"]["state"],
            "attached",
            "{what}"
        );
    }
    drop(daemon);
}

/// Under systemd: READY once attached, RELOADING then READY around each reload with a STATUS
/// that says whether it applied, priorities journald can filter on, and metrics that tell a
/// dead link (the check is slowed by the test hook so the service does not mend it first), a
/// refused reload and the build.
#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one service's conversation with systemd, step by step"
)]
fn systemd_and_journald_and_metrics_hear_the_truth() {
    use std::os::unix::{fs::MetadataExt as _, net::UnixDatagram};

    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    let (config, log) = service_files(&lab);
    let socket_path = lab.scratch.file("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut cmd = lab.daemon_command(&config, &log).unwrap();
    let stream = std::fs::metadata(&log).unwrap();
    cmd.env("NOTIFY_SOCKET", &socket_path)
        .env(
            "JOURNAL_STREAM",
            format!("{}:{}", stream.dev(), stream.ino()),
        )
        .env("ICMP_GUARD_TEST_TICK_SECS", "3600");
    let daemon = Daemon {
        child: cmd.spawn().unwrap(),
    };
    let next = || {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("a notification within 15 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };

    let ready = next();
    assert!(ready.contains("READY=1"), "{ready}");
    assert!(
        ready.contains("STATUS=configuration applied; 1 of 1 interface(s) guarded"),
        "{ready}"
    );
    assert!(lab.guarded_has_xdp(), "READY comes after the attach");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged
            .lines()
            .any(|l| l.starts_with("<6>") && l.contains("attached in")),
        "{logged}"
    );

    let metrics = scrape(&lab).unwrap();
    let on = [("interface", iface.as_str())];
    assert_eq!(sample(&metrics, "icmp_guard_up", &on), Some(1.0));
    assert_eq!(
        sample(&metrics, "icmp_guard_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert!(
        sample(
            &metrics,
            "icmp_guard_config_last_reload_success_timestamp_seconds",
            &[]
        )
        .unwrap()
            > 1e9
    );
    assert_eq!(
        sample(
            &metrics,
            "icmp_guard_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    for process in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(sample(&metrics, process, &[]).is_some(), "{process}");
    }

    // A link detached behind the service's back is down, with the reason.
    let out = Command::new("bpftool")
        .args(["link", "detach", "pinned"])
        .arg(lab.pin_dir(&iface).join("link"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let metrics = scrape(&lab).unwrap();
    assert_eq!(sample(&metrics, "icmp_guard_up", &on), Some(0.0));
    assert_eq!(
        sample(
            &metrics,
            "icmp_guard_down_reason",
            &[("interface", &iface), ("reason", "link_detached")]
        ),
        Some(1.0)
    );

    // A reload applies the file again, which attaches the guard again.
    daemon.signal(libc::SIGHUP).unwrap();
    assert!(next().contains("RELOADING=1"));
    let ready = next();
    assert!(
        ready.contains("READY=1") && ready.contains("configuration applied"),
        "{ready}"
    );
    assert_eq!(
        sample(&scrape(&lab).unwrap(), "icmp_guard_up", &on),
        Some(1.0)
    );

    // Reloads that are refused: a moved bpffs, then a missing file. Each is an error line
    // with its cause, a STATUS that says so, and the metric.
    let moved = std::fs::read_to_string(&config).unwrap().replace(
        "[daemon]\n",
        &format!(
            "[daemon]\nbpffs = \"{}\"\n",
            lab.scratch.file("elsewhere").display()
        ),
    );
    std::fs::write(&config, moved).unwrap();
    daemon.signal(libc::SIGHUP).unwrap();
    assert!(next().contains("RELOADING=1"));
    let ready = next();
    assert!(ready.contains("configuration NOT fully applied"), "{ready}");
    std::fs::remove_file(&config).unwrap();
    daemon.signal(libc::SIGHUP).unwrap();
    assert!(next().contains("RELOADING=1"));
    assert!(next().contains("NOT fully applied"));
    let logged = std::fs::read_to_string(&log).unwrap();
    let errors: Vec<&str> = logged.lines().filter(|l| l.starts_with("<3>")).collect();
    assert!(
        errors
            .iter()
            .any(|l| l.contains("reload refused, nothing changed: daemon.bpffs changed")),
        "{logged}"
    );
    assert!(
        errors
            .iter()
            .any(|l| l.contains("reload refused") && l.contains("No such file")),
        "the cause of a refused reload is logged: {logged}"
    );
    assert_eq!(
        sample(
            &scrape(&lab).unwrap(),
            "icmp_guard_config_last_reload_successful",
            &[]
        ),
        Some(0.0)
    );
    assert!(lab.guarded_has_xdp(), "refused reloads change nothing");
}

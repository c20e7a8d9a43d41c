//! The monitoring kit (`contrib/monitoring`, issue 11 item 3) against the real things.
//!
//! - `promtool` (Debian's `prometheus` package, installed by `cargo xtask setup`) checks the
//!   rules and the example configuration and runs the rules' unit tests, which must hold a
//!   firing and a silent case for every alert.
//! - A real Prometheus, started in the lab's guarded network namespace (where the service's
//!   loopback-only `/metrics` is) with the kit's own configuration at a 1 s scrape interval,
//!   scrapes a real `icmp-guard run` during floods that spend the global, admission and
//!   exempt budgets, with a second guarded interface deleted under the service so that the
//!   down path has series too. Then every rule's left-hand side and every dashboard query
//!   (its template variables replaced) goes through `/api/v1/query`: no data means a metric
//!   or label name the exporter does not have, and the test names the rule or panel.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use icmp_guard_tests::lab::{Lab, enter_netns, eventually, ip, unique};
use serde_json::Value;

/// The service's metrics address in the lab's namespace: the kit's scrape target as shipped.
const METRICS: &str = "127.0.0.1:9966";
/// The scrape job the kit's configuration and `IcmpGuardScrapeFailed` use.
const JOB: &str = "icmp-guard";
/// What the dashboard's template variables become in the queries.
const RATE_INTERVAL: &str = "30s";
const INTERVAL: &str = "5s";

fn kit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("contrib/monitoring")
}

fn read_kit(name: &str) -> String {
    std::fs::read_to_string(kit().join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
}

/// The alerts the rule file defines, by its `- alert: NAME` lines.
fn alerts_defined() -> BTreeSet<String> {
    read_kit("icmp-guard.rules.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn promtool_checks_the_kit_and_its_unit_tests_pass() {
    for (what, args) in [
        ("the rules", ["check", "rules", "icmp-guard.rules.yml"]),
        (
            "the rules' unit tests",
            ["test", "rules", "icmp-guard.rules.test.yml"],
        ),
        (
            "the example configuration",
            ["check", "config", "prometheus.yml"],
        ),
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(kit())
            .output()
            .expect("promtool runs (Debian's prometheus package: `cargo xtask setup`)");
        assert!(
            out.status.success(),
            "promtool {args:?} ({what}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every alert has a unit test in which it fires and one in which it must not: the test file's
/// `alertname: NAME` entries followed by `exp_alerts: []` (silent) or a list (firing).
#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let tests = read_kit("icmp-guard.rules.test.yml");
    let mut cases: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    let mut lines = tests.lines().map(str::trim).filter(|l| !l.is_empty());
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("alertname: ") {
            let expected = lines.next().unwrap_or_default();
            let entry = cases.entry(name).or_default();
            match expected {
                "exp_alerts: []" => entry.1 = true,
                "exp_alerts:" => entry.0 = true,
                other => panic!("{name}: unexpected line after alertname: {other}"),
            }
        }
    }
    let defined = alerts_defined();
    assert!(defined.len() >= 8, "{defined:?}");
    for alert in &defined {
        assert_eq!(
            cases.get(alert.as_str()),
            Some(&(true, true)),
            "{alert}: (firing, silent) cases in icmp-guard.rules.test.yml"
        );
    }
    let tested: BTreeSet<String> = cases.keys().map(|&k| k.to_owned()).collect();
    assert_eq!(
        tested, defined,
        "the unit tests name exactly the alerts defined"
    );
}

/// A Prometheus server in a network namespace, killed on drop.
struct Prometheus {
    child: Child,
    netns: String,
    addr: String,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Debian's `prometheus` in the lab's guarded namespace on a free loopback port,
    /// with the kit's configuration made to scrape and evaluate every second, its storage in
    /// the lab's scratch folder; waits (at most 20 s) until it says it is ready.
    fn start(lab: &Lab) -> Self {
        let rules = kit().join("icmp-guard.rules.yml");
        let mut config = read_kit("prometheus.yml");
        assert!(config.contains(&format!("\"{METRICS}\"")), "{config}");
        assert!(config.contains(&format!("job_name: {JOB}")), "{config}");
        for (from, to) in [
            ("scrape_interval: 15s", "scrape_interval: 1s".to_owned()),
            (
                "evaluation_interval: 15s",
                "evaluation_interval: 1s".to_owned(),
            ),
            ("- icmp-guard.rules.yml", format!("- {}", rules.display())),
        ] {
            assert_eq!(config.matches(from).count(), 1, "{from} in {config}");
            config = config.replace(from, &to);
        }
        let file = lab.scratch.file("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let storage = lab.scratch.file("tsdb");
        let log = lab.scratch.file("prometheus.log");
        let addr = format!("127.0.0.1:{}", free_port(&lab.guarded.name));
        let child = lab
            .guarded
            .enter("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!("--storage.tsdb.path={}", storage.display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("prometheus runs (Debian's prometheus package: `cargo xtask setup`)");
        let mut prometheus = Self {
            child,
            netns: lab.guarded.name.clone(),
            addr,
            log,
        };
        let ready = eventually(20, "Prometheus is ready", || {
            prometheus
                .get("/-/ready")
                .is_ok_and(|(status, _)| status == 200)
        });
        if let Err(e) = ready {
            let exited = prometheus.child.try_wait().ok().flatten();
            panic!("{e} (exited: {exited:?}): {}", prometheus.log_text());
        }
        prometheus
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An HTTP/1.0 GET (so the body is neither chunked nor kept alive) from a thread inside
    /// the namespace; the status and body. Bounded by a 5 s timeout.
    fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let (netns, addr, path) = (self.netns.clone(), self.addr.clone(), path.to_owned());
        std::thread::spawn(move || -> anyhow::Result<(u16, String)> {
            enter_netns(&netns)?;
            let timeout = Some(Duration::from_secs(5));
            let mut stream = std::net::TcpStream::connect(&addr)?;
            stream.set_read_timeout(timeout)?;
            stream.set_write_timeout(timeout)?;
            write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            let (head, body) = response
                .split_once("\r\n\r\n")
                .ok_or_else(|| anyhow::anyhow!("no end of the HTTP header in {response}"))?;
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("no status in {head}"))?;
            Ok((status, body.to_owned()))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the HTTP thread panicked"))?
    }

    /// The `data` of a successful API answer.
    fn api(&self, path: &str) -> Value {
        let (status, body) = self.get(path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let answer: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: {status} {e}: {body}"));
        assert!(
            status == 200 && answer["status"] == "success",
            "GET {path}: {status} {answer}"
        );
        answer["data"].clone()
    }

    /// The instant vector (or scalar) of `query` now.
    fn query(&self, query: &str) -> Vec<Value> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(query)));
        match data["resultType"].as_str() {
            Some("vector") => data["result"].as_array().cloned().unwrap_or_default(),
            Some("scalar") => vec![data["result"].clone()],
            other => panic!("{query}: result type {other:?}: {data}"),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free on the loopback of namespace `netns`, as the kernel picks one.
fn free_port(netns: &str) -> u16 {
    let netns = netns.to_owned();
    std::thread::spawn(move || {
        enter_netns(&netns).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    })
    .join()
    .unwrap()
}

/// `text` percent-encoded for a query string.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A rule's expression without its final comparison with a number (`X > 10` gives `X`): the
/// series the alert is judged on, which exist whether or not it fires.
fn left_hand_side(expr: &str) -> Option<&str> {
    let (rest, number) = expr.trim().rsplit_once(' ')?;
    number.parse::<f64>().ok()?;
    let (lhs, op) = rest.trim_end().rsplit_once(' ')?;
    ["==", "!=", ">", "<", ">=", "<="]
        .contains(&op)
        .then_some(lhs.trim_end())
}

#[test]
fn a_rules_left_hand_side_is_its_expression_without_the_threshold() {
    for (expr, lhs) in [
        ("icmp_guard_up == 0", Some("icmp_guard_up")),
        ("a / b > 0.9", Some("a / b")),
        (
            "sum by (x) (rate(c[5m])) > 10",
            Some("sum by (x) (rate(c[5m]))"),
        ),
        ("a >= 1e3", Some("a")),
        ("a > b", None),
        ("rate(c[5m])", None),
        ("a + 1", None),
    ] {
        assert_eq!(left_hand_side(expr), lhs, "{expr}");
    }
}

/// The labels a rule's annotations read (`$labels.NAME`).
fn labels_read(rule: &Value) -> BTreeSet<String> {
    rule["annotations"]
        .as_object()
        .into_iter()
        .flat_map(|a| a.values())
        .filter_map(Value::as_str)
        .flat_map(|text| text.split("$labels.").skip(1))
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// Every query panel of the dashboard, rows' own panels included.
fn dashboard_panels(dashboard: &Value) -> Vec<Value> {
    let mut all = Vec::new();
    let mut stack: Vec<Value> = dashboard["panels"].as_array().unwrap().clone();
    while let Some(panel) = stack.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            stack.extend(inner.iter().cloned());
        }
        if panel["targets"].is_array() {
            all.push(panel);
        }
    }
    all
}

/// The distinct `source` label values of the top-source gauges in one exposition.
fn top_sources(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| l.starts_with("icmp_guard_top_source_"))
        .filter_map(|l| l.split("source=\"").nth(1)?.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, step by step")]
fn every_rule_and_dashboard_query_returns_data_from_a_real_prometheus() {
    let started = Instant::now();
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.clone();
    // A second guarded interface, deleted once attached: the guard stays pinned, down, with
    // its reason.
    // (A veth pair inside the namespace: this kernel may have no dummy driver.)
    let (gone, peer) = (unique('d'), unique('e'));
    // A third the file names but the host never has: not down, absent.
    let absent = unique('a');
    let ns = lab.guarded.name.as_str();
    ip(&[
        "-n", ns, "link", "add", &gone, "type", "veth", "peer", "name", &peer,
    ])
    .unwrap();
    ip(&["-n", ns, "link", "set", &gone, "up"]).unwrap();
    let config = lab.scratch.file("icmp-guard.toml");
    std::fs::write(
        &config,
        format!(
            // The exporter names the sources only on request; the kit's scrape job must
            // drop that label whatever the exporter does, so the test asks for it.
            "[daemon]\nmetrics = \"{METRICS}\"\nmetrics_source_labels = true\n\
             [defaults]\necho_rate = 5\necho_burst = 5\nglobal_rate = 200\nglobal_burst = 200\n\
             new_source_rate = 50\nnew_source_burst = 50\nexempt_rate = 1000\nexempt_burst = 1000\n\
             max_sources = 1024\n\
             [[interface]]\nname = \"{iface}\"\n[[interface]]\nname = \"{gone}\"\nmode = \"generic\"\n\
             [[interface]]\nname = \"{absent}\"\n"
        ),
    )
    .unwrap();
    let log = lab.scratch.file("daemon.log");
    let _daemon = lab.daemon(&config, &log).unwrap();
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually(10, "the service guards both interfaces", || {
        lab.status()
            .is_ok_and(|s| s.as_array().is_some_and(|a| a.len() == 2))
    })
    .unwrap_or_else(|e| panic!("{e}: {}", daemon_log()));
    ip(&["-n", &lab.guarded.name, "link", "del", &gone]).unwrap();
    let down =
        format!("icmp_guard_down_reason{{interface=\"{gone}\",reason=\"interface_gone\"}} 1");
    eventually(5, "the deleted interface's guard is down", || {
        lab.guarded
            .http_get(METRICS, "/metrics")
            .is_ok_and(|m| m.lines().any(|l| l == down))
    })
    .unwrap_or_else(|e| panic!("{e}: {}", daemon_log()));

    let prometheus = Prometheus::start(&lab);
    // Scraping before the floods start, so that their counters rise between scrapes.
    let first_scrape = eventually(10, "Prometheus scrapes the service", || {
        !prometheus
            .query(&format!("up{{job=\"{JOB}\"}} == 1"))
            .is_empty()
    });
    if let Err(e) = first_scrape {
        panic!("{e}: {}", prometheus.log_text());
    }

    // A host pings before the floods, and is answered.
    assert_eq!(lab.ping(3, "0.2", 5).unwrap(), 3, "a host's ping passes");
    // Floods that spend every budget. First a hundred sources, each over its quota: alone,
    // all of them are admitted within a second or two and together they spend the global
    // budget. Started together with the spoofed flood they would have to win admission
    // tokens from it, a lottery that, on a loaded machine, left too few of them admitted to
    // reach the global budget. Then, while they go on, spoofed sources (admission) and
    // packet-too-big messages (exempt budget). The hundred sources run 10 s, the others start
    // within 4 s and run 5 s at most, so the global budget's drops are as recent as theirs
    // when the dashboards are queried.
    let spawn = |what: &'static str, args: &str| {
        let args: Vec<&str> = args.split_whitespace().collect();
        let child = lab
            .inject_command(&args)
            .unwrap()
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        (what, child)
    };
    let mut running = vec![spawn(
        "a hundred sources",
        "--src 203.0.113.100 --sources 100 --count 80000 --pps 8000",
    )];
    eventually(4, "the hundred sources spend the global budget", || {
        lab.stats()
            .is_ok_and(|s| s["counters"]["dropped_rate_global"].as_u64() > Some(0))
    })
    .unwrap_or_else(|e| panic!("{e}: {}", daemon_log()));
    running.extend([
        spawn(
            "spoofed sources",
            "--src 10.1.0.0 --sources 50000 --count 100000 --pps 20000",
        ),
        spawn("packet too big", "--kind ptb --count 8000 --pps 2000"),
    ]);
    // Meanwhile, the exporter's own top-source labels, scrape after scrape.
    let (mut seen, mut scrapes) = (BTreeSet::new(), 0);
    let flood_deadline = Instant::now() + Duration::from_secs(20);
    while running
        .iter_mut()
        .any(|(_, c)| matches!(c.try_wait(), Ok(None)))
    {
        assert!(Instant::now() < flood_deadline, "the floods outlast 20 s");
        if let Ok(body) = lab.guarded.http_get(METRICS, "/metrics") {
            seen.extend(top_sources(&body));
            scrapes += 1;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    for (what, mut child) in running {
        assert!(child.wait().unwrap().success(), "{what} flood failed");
    }

    // The rules are loaded, all of them, and evaluate without error; the floods and the
    // deleted interface make their alerts pending (every `for` is longer than this test).
    let defined = alerts_defined();
    let rules: Vec<Value> = prometheus.api("/api/v1/rules")["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    let loaded: BTreeSet<String> = rules
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(loaded, defined, "the rules Prometheus loaded");
    let pending = [
        ("IcmpGuardDown", gone.as_str()),
        ("IcmpGuardInterfaceAbsent", absent.as_str()),
        ("IcmpGuardGlobalBudgetExhausted", iface.as_str()),
        ("IcmpGuardAdmissionBudgetExhausted", iface.as_str()),
        ("IcmpGuardExemptBudgetExhausted", iface.as_str()),
    ];
    let mut alerts = Vec::new();
    let all_pending = eventually(20, "the alerts the floods cause are pending", || {
        alerts = prometheus.api("/api/v1/alerts")["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        pending.iter().all(|(name, on)| {
            alerts.iter().any(|a| {
                a["labels"]["alertname"] == *name
                    && a["labels"]["interface"] == *on
                    && a["state"] == "pending"
            })
        })
    });
    if let Err(e) = all_pending {
        let counters = prometheus.query("icmp_guard_packets_total{verdict=\"drop\"} > 0");
        panic!(
            "{e}: {pending:?} wanted, got {alerts:#?}\ndrop counters: {counters:?}\n{}",
            prometheus.log_text()
        );
    }
    let down_alert = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "IcmpGuardDown")
        .unwrap();
    assert!(
        down_alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("Reason: interface_gone."),
        "the down reason, from the exporter's own series: {down_alert}"
    );
    for (name, on) in [
        ("IcmpGuardDown", iface.as_str()),
        ("IcmpGuardDown", absent.as_str()),
        ("IcmpGuardScrapeFailed", METRICS),
        ("IcmpGuardReloadFailed", METRICS),
    ] {
        assert!(
            !alerts.iter().any(|a| a["labels"]["alertname"] == name
                && (a["labels"]["interface"] == on || a["labels"]["instance"] == on)),
            "{name} for {on}, which is fine: {alerts:#?}"
        );
    }

    // Every rule's left-hand side has series, with every label its annotations read.
    for rule in &rules {
        let name = rule["name"].as_str().unwrap();
        assert_eq!(rule["health"], "ok", "{name}: {rule}");
        let expr = rule["query"].as_str().unwrap();
        let lhs = left_hand_side(expr)
            .unwrap_or_else(|| panic!("{name}: {expr} does not end in a comparison"));
        let series = prometheus.query(lhs);
        assert!(!series.is_empty(), "rule {name}: no data for {lhs}");
        for label in labels_read(rule) {
            assert!(
                series.iter().all(|s| s["metric"][&label].is_string()),
                "rule {name}: its annotations read $labels.{label}, missing from {series:?}"
            );
        }
    }

    // Every dashboard query, with the template variables made concrete, has data; so has
    // each template variable's selector, with the label it lists.
    let dashboard: Value = serde_json::from_str(&read_kit("icmp-guard.dashboard.json")).unwrap();
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    let concrete = |expr: &str| {
        let expr = expr
            .replace("$__rate_interval", RATE_INTERVAL)
            .replace("$__interval", INTERVAL)
            .replace("$instance", METRICS)
            .replace("$interface", &format!("{iface}|{gone}"));
        assert!(!expr.contains('$'), "a template variable left in {expr}");
        expr
    };
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let names: BTreeSet<&str> = variables
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["instance", "interface"]));
    for variable in variables {
        let definition = variable["definition"].as_str().unwrap();
        let (selector, label) = definition
            .strip_prefix("label_values(")
            .and_then(|d| d.strip_suffix(')'))
            .and_then(|d| d.rsplit_once(", "))
            .unwrap_or_else(|| panic!("{definition} is not label_values(SELECTOR, LABEL)"));
        let series = prometheus.query(&concrete(selector));
        assert!(
            !series.is_empty() && series.iter().all(|s| s["metric"][label].is_string()),
            "variable {}: {definition} gives {series:?}",
            variable["name"]
        );
    }
    let panels = dashboard_panels(&dashboard);
    assert!(panels.len() >= 12, "{} panels", panels.len());
    let mut results: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for panel in &panels {
        let title = panel["title"].as_str().unwrap();
        for target in panel["targets"].as_array().unwrap() {
            let expr = concrete(target["expr"].as_str().unwrap());
            let series = prometheus.query(&expr);
            assert!(
                !series.is_empty(),
                "panel \"{title}\" target {}: no data for {expr}",
                target["refId"]
            );
            results.insert(
                format!("{title}/{}", target["refId"].as_str().unwrap()),
                series,
            );
        }
    }
    // The budget panel shows each budget spending on the flooded interface.
    let budgets = &results["Budget drops: global, admission, exempt/A"];
    for reason in [
        "dropped_rate_global",
        "dropped_new_source",
        "dropped_rate_exempt",
    ] {
        assert!(
            budgets.iter().any(|s| s["metric"]["reason"] == reason
                && s["metric"]["interface"] == iface.as_str()
                && s["value"][1].as_str().unwrap().parse::<f64>().unwrap() > 0.0),
            "{reason} not moving: {budgets:?}"
        );
    }

    // The kit's scrape job keeps the top sources to one series per interface, gauge and
    // rank, however many sources the exporter named.
    let window = started.elapsed().as_secs() + 60;
    let top_series = prometheus.api(&format!(
        "/api/v1/series?match[]={}&start={}",
        encode("{__name__=~\"icmp_guard_top_source_.+\"}"),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - window
    ));
    let top_series = top_series.as_array().unwrap();
    assert!(!top_series.is_empty());
    assert!(
        top_series.len() <= 2 * 10,
        "{} top-source series: {top_series:?}",
        top_series.len()
    );
    assert!(
        top_series.iter().all(|s| s.get("source").is_none()),
        "{top_series:?}"
    );
    eprintln!(
        "{} distinct source labels in the top 10 over {scrapes} scrapes of the exporter; {} \
         top-source series stored with the kit's scrape job; {:.1} s",
        seen.len(),
        top_series.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the test took {:?}",
        started.elapsed()
    );
}

//! Prometheus text exposition of every guarded interface: counters per interface and reason,
//! passes and drops, the per-source map's fill, failed inserts, the top sources as a bounded
//! set of gauges, the configured limits and the lists' sizes.

use std::{fmt::Write as _, path::Path};

use icmp_guard_common::Reason;

use super::{Keep, Snapshot, process::Process};
use crate::daemon::Served;
use crate::pinned::maps::SourceTotals;
use crate::{
    Error,
    kernel::{IfaceName, iface::ifindex},
    policy::KNOBS,
};

/// Top sources exported per interface: a bounded label set.
pub const TOP_SOURCES: usize = 10;

/// What one scrape read: the snapshots of the guards that could be read, and why each other
/// configured interface has none.
#[derive(Default)]
pub struct Scrape {
    pub snapshots: Vec<Snapshot>,
    pub unread: Vec<(IfaceName, Unread)>,
}

/// Why a configured interface has no snapshot: its `icmp_guard_down_reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unread {
    /// No interface has the name in this namespace, and nothing is pinned for it: a file
    /// shared by hosts that do not all have it (it is attached if it appears).
    InterfaceAbsent,
    /// The interface is there, but nothing is pinned for it: the service could not attach it
    /// (its log says why), or it is attaching it now.
    NotPinned,
    /// Something is pinned for it, but it could not be read (its log says why).
    Unreadable,
}

impl Unread {
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::InterfaceAbsent => "interface_absent",
            Self::NotPinned => "not_pinned",
            Self::Unreadable => "unreadable",
        }
    }
}

/// Reads every interface's snapshot; one that cannot be read is reported as
/// `icmp_guard_up 0` with the reason, which is logged too (at debug level when the
/// interface simply holds no guard, which the service already reports when it happens).
#[must_use]
pub fn read(bpffs: &Path, interfaces: &[IfaceName]) -> Scrape {
    let mut scrape = Scrape::default();
    for iface in interfaces {
        match Snapshot::open(bpffs, iface, Keep::Top(TOP_SOURCES)) {
            Ok(snapshot) => scrape.snapshots.push(snapshot),
            Err(e @ Error::NotGuarded { .. }) => {
                log::debug!("{iface}: icmp_guard_up 0: {e}");
                let why = if ifindex(iface).is_ok() {
                    Unread::NotPinned
                } else {
                    Unread::InterfaceAbsent
                };
                scrape.unread.push((iface.clone(), why));
            }
            Err(e) => {
                log::warn!("{iface}: reported as down (icmp_guard_up 0): {e}");
                scrape.unread.push((iface.clone(), Unread::Unreadable));
            }
        }
    }
    scrape
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition for the configured `interfaces`, from the snapshots of those that could
/// be read; the others are reported as not attached.
#[must_use]
#[expect(clippy::too_many_lines, reason = "one metric family after another")]
pub fn render(interfaces: &[IfaceName], scrape: &Scrape, source_labels: bool) -> String {
    let samples = scrape.snapshots.as_slice();
    let mut out = String::new();
    let mut family =
        |name: &str, kind: &str, help: &str, lines: &mut dyn Iterator<Item = String>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for line in lines {
                let _ = writeln!(out, "{name}{line}");
            }
        };
    let label = |s: &Snapshot| format!("interface=\"{}\"", escape(&s.interface));

    family(
        "icmp_guard_up",
        "gauge",
        "Whether the interface is guarded (1) or not (0): pinned, and attached as the kernel says now.",
        &mut interfaces.iter().map(|i| {
            let up = u8::from(
                samples
                    .iter()
                    .any(|s| &s.interface == i && s.health.attached()),
            );
            format!("{{interface=\"{}\"}} {up}", escape(i))
        }),
    );
    family(
        "icmp_guard_down_reason",
        "gauge",
        "Why a configured interface is not guarded (1 for the reason that holds): interface_gone, interface_recreated, link_detached, interface_renamed or interface_moved for a pinned guard the kernel does not run there; interface_absent (no such interface, nothing pinned), not_pinned (nothing pinned) or unreadable (the pins could not be read) otherwise.",
        &mut samples
            .iter()
            .filter(|s| !s.health.attached())
            .map(|s| format!("{{{},reason=\"{}\"}} 1", label(s), s.health.label()))
            .chain(scrape.unread.iter().map(|(iface, why)| {
                format!(
                    "{{interface=\"{}\",reason=\"{}\"}} 1",
                    escape(iface),
                    why.label()
                )
            })),
    );
    family(
        "icmp_guard_program_info",
        "gauge",
        "The attached program: id and the attach mode in effect (only for attached guards).",
        &mut samples.iter().filter(|s| s.health.attached()).map(|s| {
            format!(
                "{{{},program_id=\"{}\",mode=\"{}\"}} 1",
                label(s),
                s.program_id,
                s.mode
            )
        }),
    );
    family(
        "icmp_guard_packets_total",
        "counter",
        "Frames judged, by interface, verdict and reason; every frame counts once.",
        &mut samples.iter().flat_map(|s| {
            s.counters.iter().map(move |(r, n)| {
                let verdict = if r.is_drop() { "drop" } else { "pass" };
                format!(
                    "{{{},reason=\"{}\",verdict=\"{verdict}\"}} {n}",
                    label(s),
                    r.name()
                )
            })
        }),
    );
    family(
        "icmp_guard_passed_packets_total",
        "counter",
        "Frames passed, all reasons together.",
        &mut samples
            .iter()
            .map(|s| format!("{{{}}} {}", label(s), s.passed())),
    );
    family(
        "icmp_guard_dropped_packets_total",
        "counter",
        "Frames dropped (or that would be, in a dry run), all reasons together.",
        &mut samples
            .iter()
            .map(|s| format!("{{{}}} {}", label(s), s.dropped())),
    );
    family(
        "icmp_guard_source_insert_failures_total",
        "counter",
        "ICMP packets passed unmetered because the per-source map refused to track their source.",
        &mut samples
            .iter()
            .map(|s| format!("{{{}}} {}", label(s), s.counter(Reason::PassedUnmetered))),
    );
    family(
        "icmp_guard_sources",
        "gauge",
        "Source prefixes tracked in the per-source map.",
        &mut samples
            .iter()
            .map(|s| format!("{{{}}} {}", label(s), s.tracked)),
    );
    family(
        "icmp_guard_sources_capacity",
        "gauge",
        "Capacity of the per-source map; past it the least recently seen source is evicted.",
        &mut samples
            .iter()
            .map(|s| format!("{{{}}} {}", label(s), s.table.capacity)),
    );
    family(
        "icmp_guard_sources_bytes",
        "gauge",
        "Memory the kernel charges for the per-source map (preallocated: independent of its fill).",
        &mut samples
            .iter()
            .map(|s| format!("{{{}}} {}", label(s), s.table.bytes)),
    );
    // The top sources, one series per rank: a bounded label set. The source address is a
    // label only on request, as it is chosen by whoever sends the packets: under a spoofed
    // flood every scrape would name new sources and mint new series without bound.
    let top = |pick: fn(&SourceTotals) -> u64| {
        move |s: &Snapshot| {
            s.top(TOP_SOURCES)
                .iter()
                .enumerate()
                .map(|(rank, t)| {
                    let source = if source_labels {
                        format!(",source=\"{}\"", escape(&s.source_name(&t.key)))
                    } else {
                        String::new()
                    };
                    format!("{{{},rank=\"{}\"{source}}} {}", label(s), rank + 1, pick(t))
                })
                .collect::<Vec<_>>()
        }
    };
    family(
        "icmp_guard_top_source_dropped_packets",
        "gauge",
        "Packets of the top sources dropped, by any stage that counts them in the source's entry (at most 10 sources per interface).",
        &mut samples.iter().flat_map(top(|t| t.dropped)),
    );
    family(
        "icmp_guard_top_source_passed_packets",
        "gauge",
        "Packets of the top sources passed by their buckets and the global budget (at most 10 sources per interface).",
        &mut samples.iter().flat_map(top(|t| t.passed)),
    );
    family(
        "icmp_guard_limit",
        "gauge",
        "The configured limits, by knob: rates in packets per second, bursts in packets, max_echo_size in bytes, v4_prefix and v6_prefix in bits, max_sources in sources.",
        &mut samples.iter().flat_map(|s| {
            KNOBS.iter().map(move |k| {
                format!(
                    "{{{},limit=\"{}\"}} {}",
                    label(s),
                    k.name,
                    (k.get)(&s.config)
                )
            })
        }),
    );
    family(
        "icmp_guard_dry_run",
        "gauge",
        "Whether the guard only counts (1) or enforces (0).",
        &mut samples
            .iter()
            .map(|s| format!("{{{}}} {}", label(s), u8::from(s.config.dry_run()))),
    );
    family(
        "icmp_guard_list_prefixes",
        "gauge",
        "Prefixes in the allow and deny lists.",
        &mut samples.iter().flat_map(|s| {
            [("allow", s.allow), ("deny", s.deny)]
                .into_iter()
                .map(move |(list, n)| format!("{{{},list=\"{list}\"}} {n}", label(s)))
        }),
    );
    out
}

/// The service's own families: the build, how the last reload went, and the process's
/// resources (the `process_*` names Prometheus's client libraries use).
#[must_use]
pub fn render_service(served: &Served) -> String {
    render_service_with(served, &Process::read())
}

fn render_service_with(served: &Served, process: &Process) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: Option<String>| {
        if let Some(value) = value {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name}{value}");
        }
    };
    family(
        "icmp_guard_build_info",
        "gauge",
        "The running build: version and the target it was built for (always 1).",
        Some(format!(
            "{{version=\"{}\",target_arch=\"{}\",target_env=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH,
            if cfg!(target_env = "musl") {
                "musl"
            } else {
                "gnu"
            }
        )),
    );
    family(
        "icmp_guard_config_last_reload_successful",
        "gauge",
        "Whether the last start or reload applied the whole configuration file (1) or not (0); absent while the start applies it.",
        served.last_reload_ok.map(|ok| format!(" {}", u8::from(ok))),
    );
    family(
        "icmp_guard_config_last_reload_success_timestamp_seconds",
        "gauge",
        "When the configuration file was last applied whole, in seconds since the Unix epoch (0: never).",
        Some(format!(" {}", served.last_reload_success)),
    );
    let value = |v: Option<String>| v.map(|v| format!(" {v}"));
    family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        value(process.cpu_seconds.map(|v| v.to_string())),
    );
    family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        value(process.resident_bytes.map(|v| v.to_string())),
    );
    family(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        value(process.virtual_bytes.map(|v| v.to_string())),
    );
    family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch in seconds.",
        value(process.start_time_seconds.map(|v| v.to_string())),
    );
    family(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        value(process.open_fds.map(|v| v.to_string())),
    );
    family(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        value(process.max_fds.map(|v| v.to_string())),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::{super::tests::sample, *};
    use crate::pinned::health::Health;

    fn scrape(snapshots: Vec<Snapshot>, unread: &[(&str, Unread)]) -> Scrape {
        Scrape {
            snapshots,
            unread: unread
                .iter()
                .map(|(name, why)| (name.parse().unwrap(), *why))
                .collect(),
        }
    }

    #[test]
    fn an_unreadable_interface_is_down_and_every_family_renders() {
        let configured: Vec<IfaceName> = vec!["eth0".parse().unwrap(), "eth1".parse().unwrap()];
        let out = render(
            &configured,
            &scrape(vec![sample()], &[("eth1", Unread::InterfaceAbsent)]),
            false,
        );
        for line in [
            r#"icmp_guard_up{interface="eth0"} 1"#,
            r#"icmp_guard_up{interface="eth1"} 0"#,
            r#"icmp_guard_down_reason{interface="eth1",reason="interface_absent"} 1"#,
            r#"icmp_guard_program_info{interface="eth0",program_id="13",mode="native"} 1"#,
            r#"icmp_guard_top_source_dropped_packets{interface="eth0",rank="1"} 2"#,
            r#"icmp_guard_top_source_passed_packets{interface="eth0",rank="2"} 1"#,
            r#"icmp_guard_limit{interface="eth0",limit="max_echo_size"} 9216"#,
            r#"icmp_guard_sources{interface="eth0"} 2"#,
            r#"icmp_guard_list_prefixes{interface="eth0",list="allow"} 1"#,
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
        assert_eq!(
            out.lines()
                .filter(|l| l.contains(r#"interface="eth1""#))
                .count(),
            2,
            "eth1 is only down, with its reason: {out}"
        );
        assert!(
            !out.contains(r#"icmp_guard_down_reason{interface="eth0""#),
            "{out}"
        );
        assert!(
            !out.contains("source="),
            "no source label unless asked: {out}"
        );
        let named = render(&configured, &scrape(vec![sample()], &[]), true);
        for line in [
            r#"icmp_guard_top_source_dropped_packets{interface="eth0",rank="1",source="198.51.100.0/24"} 2"#,
            r#"icmp_guard_top_source_passed_packets{interface="eth0",rank="2",source="198.51.100.9/24"} 1"#,
        ] {
            assert!(
                named.lines().any(|l| l == line),
                "{line} missing from\n{named}"
            );
        }
    }

    #[test]
    fn the_service_reports_its_build_its_last_reload_and_its_process() {
        let served = Served {
            last_reload_ok: Some(true),
            last_reload_success: 1_795_876_339,
            ..Served::default()
        };
        let process = Process {
            cpu_seconds: Some(1.5),
            resident_bytes: Some(4096),
            open_fds: Some(9),
            ..Process::default()
        };
        let out = render_service_with(&served, &process);
        for line in [
            "icmp_guard_config_last_reload_successful 1",
            "icmp_guard_config_last_reload_success_timestamp_seconds 1795876339",
            "process_cpu_seconds_total 1.5",
            "process_resident_memory_bytes 4096",
            "process_open_fds 9",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
        assert!(out.contains(&format!(
            "icmp_guard_build_info{{version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        )));
        // A fact that could not be read is left out, not reported as 0.
        assert!(!out.contains("process_max_fds"), "{out}");
        // Before the start has applied the file, whether it did is not known yet.
        let starting = render_service_with(&Served::default(), &process);
        assert!(
            !starting.contains("icmp_guard_config_last_reload_successful"),
            "{starting}"
        );
    }

    #[test]
    fn a_configured_interface_without_a_guard_is_down_with_its_reason() {
        let configured: Vec<IfaceName> = ["eth0", "eth1", "eth2"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let out = render(
            &configured,
            &scrape(
                vec![],
                &[
                    ("eth0", Unread::InterfaceAbsent),
                    ("eth1", Unread::NotPinned),
                    ("eth2", Unread::Unreadable),
                ],
            ),
            false,
        );
        for (iface, reason) in [
            ("eth0", "interface_absent"),
            ("eth1", "not_pinned"),
            ("eth2", "unreadable"),
        ] {
            for line in [
                format!(r#"icmp_guard_up{{interface="{iface}"}} 0"#),
                format!(r#"icmp_guard_down_reason{{interface="{iface}",reason="{reason}"}} 1"#),
            ] {
                assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
            }
        }
    }

    #[test]
    fn a_guard_whose_link_the_kernel_dropped_is_down_with_its_reason() {
        let configured: Vec<IfaceName> = vec!["eth0".parse().unwrap()];
        let mut down = sample();
        down.health = Health::LinkDetached;
        let out = render(&configured, &scrape(vec![down], &[]), false);
        for line in [
            r#"icmp_guard_up{interface="eth0"} 0"#,
            r#"icmp_guard_down_reason{interface="eth0",reason="link_detached"} 1"#,
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
        assert!(
            !out.contains("icmp_guard_program_info{"),
            "no program runs there: {out}"
        );
    }
}

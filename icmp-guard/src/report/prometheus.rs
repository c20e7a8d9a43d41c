//! Prometheus text exposition of every guarded interface: counters per interface and reason,
//! passes and drops, the per-source map's fill, failed inserts, the top sources as a bounded
//! set of gauges, the configured limits and the lists' sizes.

use std::{fmt::Write as _, path::Path};

use icmp_guard_common::Reason;

use super::Snapshot;
use crate::pinned::maps::SourceTotals;
use crate::{Error, kernel::IfaceName, policy::KNOBS};

/// Top sources exported per interface: a bounded label set.
pub const TOP_SOURCES: usize = 10;

/// Reads every interface's snapshot; one that cannot be read is left out, which the
/// exposition shows as `icmp_guard_up 0`, and the reason is logged (at debug level when the
/// interface simply holds no guard, which the service already reports when it happens).
#[must_use]
pub fn read(bpffs: &Path, interfaces: &[IfaceName]) -> Vec<Snapshot> {
    interfaces
        .iter()
        .filter_map(|iface| {
            Snapshot::open(bpffs, iface)
                .map_err(|e| match e {
                    Error::NotGuarded { .. } => log::debug!("{iface}: icmp_guard_up 0: {e}"),
                    _ => log::warn!("{iface}: reported as down (icmp_guard_up 0): {e}"),
                })
                .ok()
        })
        .collect()
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
pub fn render(interfaces: &[IfaceName], samples: &[Snapshot]) -> String {
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
        "Whether the interface is guarded (1) or not (0).",
        &mut interfaces.iter().map(|i| {
            let up = u8::from(samples.iter().any(|s| &s.interface == i));
            format!("{{interface=\"{}\"}} {up}", escape(i))
        }),
    );
    family(
        "icmp_guard_program_info",
        "gauge",
        "The attached program: id and the attach mode in effect.",
        &mut samples.iter().map(|s| {
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
        "Sources the per-source map refused to track (their ICMP passed unmetered).",
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
            .map(|s| format!("{{{}}} {}", label(s), s.sources.len())),
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
    // The top sources: a bounded label set, one series per rank.
    let top = |pick: fn(&SourceTotals) -> u64| {
        move |s: &Snapshot| {
            s.top(TOP_SOURCES)
                .iter()
                .enumerate()
                .map(|(rank, t)| {
                    format!(
                        "{{{},rank=\"{}\",source=\"{}\"}} {}",
                        label(s),
                        rank + 1,
                        escape(&s.source_name(&t.key)),
                        pick(t)
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    family(
        "icmp_guard_top_source_dropped_packets",
        "gauge",
        "Packets dropped by the buckets of the top sources (at most 10 per interface).",
        &mut samples.iter().flat_map(top(|t| t.dropped)),
    );
    family(
        "icmp_guard_top_source_passed_packets",
        "gauge",
        "Packets passed by the buckets of the top sources (at most 10 per interface).",
        &mut samples.iter().flat_map(top(|t| t.passed)),
    );
    family(
        "icmp_guard_limit",
        "gauge",
        "The configured limits (rates in packets per second, bursts in packets, sizes in bytes).",
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

#[cfg(test)]
mod tests {
    use super::{super::tests::sample, *};

    #[test]
    fn an_unreadable_interface_is_down_and_every_family_renders() {
        let configured: Vec<IfaceName> = vec!["eth0".parse().unwrap(), "eth1".parse().unwrap()];
        let out = render(&configured, &[sample()]);
        for line in [
            r#"icmp_guard_up{interface="eth0"} 1"#,
            r#"icmp_guard_up{interface="eth1"} 0"#,
            r#"icmp_guard_program_info{interface="eth0",program_id="13",mode="native"} 1"#,
            r#"icmp_guard_top_source_dropped_packets{interface="eth0",rank="1",source="198.51.100.0/24"} 2"#,
            r#"icmp_guard_top_source_passed_packets{interface="eth0",rank="2",source="198.51.100.9/24"} 1"#,
            r#"icmp_guard_limit{interface="eth0",limit="max_echo_size"} 9216"#,
            r#"icmp_guard_sources{interface="eth0"} 2"#,
            r#"icmp_guard_list_prefixes{interface="eth0",list="allow"} 1"#,
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
        assert!(!out.contains(r#"interface="eth1","#), "{out}");
    }
}

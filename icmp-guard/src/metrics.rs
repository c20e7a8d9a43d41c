//! Prometheus text exposition of every guarded interface: counters per interface and reason,
//! passes and drops, the per-source map's fill, failed inserts, the top sources as a bounded
//! set of gauges, the configured limits and the lists' sizes.

use std::{fmt::Write as _, path::Path};

use icmp_guard_common::{Config, Reason, policy::List};

use crate::{
    commands::stats::{format_source, top_sources},
    guard::Guard,
    iface::IfaceName,
    loader, netlink,
    pins::Pins,
};

/// Top sources exported per interface: a bounded label set.
pub const TOP_SOURCES: usize = 10;

/// One interface's numbers, read from its pins.
struct Sample {
    iface: IfaceName,
    cfg: Config,
    program_id: u32,
    mode: &'static str,
    counters: Vec<(Reason, u64)>,
    sources: usize,
    capacity: u32,
    top: Vec<(String, u64, u64)>,
    allow: usize,
    deny: usize,
}

fn sample(bpffs: &Path, iface: &IfaceName) -> Option<Sample> {
    let guard = Guard::open(Pins::new(bpffs, iface)).ok()?;
    let cfg = guard.config().ok()?;
    let sources = guard.sources().ok()?;
    let count = sources.len();
    let top = top_sources(sources, TOP_SOURCES)
        .iter()
        .map(|s| (format_source(&s.key, &cfg), s.passed, s.dropped))
        .collect();
    let state = netlink::xdp_state(cfg.ifindex).ok().flatten();
    Some(Sample {
        iface: iface.clone(),
        program_id: guard.program_id().unwrap_or(0),
        mode: state.map_or(loader::mode_name(cfg.attach_mode), |s| s.mode),
        counters: guard.counters().ok()?,
        sources: count,
        capacity: icmp_guard_common::maps::SOURCES_MAX_ENTRIES,
        top,
        allow: guard.list(List::Allow).ok()?.len(),
        deny: guard.list(List::Deny).ok()?.len(),
        cfg,
    })
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition for `interfaces` under `bpffs`; interfaces without a guard are reported
/// as not attached.
#[must_use]
#[expect(clippy::too_many_lines, reason = "one metric family after another")]
pub fn render(bpffs: &Path, interfaces: &[IfaceName]) -> String {
    let samples: Vec<Sample> = interfaces.iter().filter_map(|i| sample(bpffs, i)).collect();
    let mut out = String::new();
    let mut family =
        |name: &str, kind: &str, help: &str, lines: &mut dyn Iterator<Item = String>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for line in lines {
                let _ = writeln!(out, "{name}{line}");
            }
        };
    let label = |s: &Sample| format!("interface=\"{}\"", escape(&s.iface));

    family(
        "icmp_guard_up",
        "gauge",
        "Whether the interface is guarded (1) or not (0).",
        &mut interfaces.iter().map(|i| {
            let up = u8::from(samples.iter().any(|s| &s.iface == i));
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
        &mut samples.iter().map(|s| {
            let n: u64 = s
                .counters
                .iter()
                .filter(|(r, _)| !r.is_drop())
                .map(|(_, n)| n)
                .sum();
            format!("{{{}}} {n}", label(s))
        }),
    );
    family(
        "icmp_guard_dropped_packets_total",
        "counter",
        "Frames dropped (or that would be, in a dry run), all reasons together.",
        &mut samples.iter().map(|s| {
            let n: u64 = s
                .counters
                .iter()
                .filter(|(r, _)| r.is_drop())
                .map(|(_, n)| n)
                .sum();
            format!("{{{}}} {n}", label(s))
        }),
    );
    family(
        "icmp_guard_source_insert_failures_total",
        "counter",
        "Sources the per-source map refused to track (their ICMP passed unmetered).",
        &mut samples.iter().map(|s| {
            let n = s
                .counters
                .iter()
                .find(|(r, _)| *r == Reason::PassedUnmetered)
                .map_or(0, |(_, n)| *n);
            format!("{{{}}} {n}", label(s))
        }),
    );
    family(
        "icmp_guard_sources",
        "gauge",
        "Source prefixes tracked in the per-source map.",
        &mut samples
            .iter()
            .map(|s| format!("{{{}}} {}", label(s), s.sources)),
    );
    family(
        "icmp_guard_sources_capacity",
        "gauge",
        "Capacity of the per-source map; past it the least recently seen source is evicted.",
        &mut samples
            .iter()
            .map(|s| format!("{{{}}} {}", label(s), s.capacity)),
    );
    family(
        "icmp_guard_top_source_dropped_packets",
        "gauge",
        "Packets dropped by the buckets of the top sources (at most 10 per interface).",
        &mut samples.iter().flat_map(|s| {
            s.top
                .iter()
                .enumerate()
                .map(move |(rank, (source, _, dropped))| {
                    format!(
                        "{{{},rank=\"{}\",source=\"{}\"}} {dropped}",
                        label(s),
                        rank + 1,
                        escape(source)
                    )
                })
        }),
    );
    family(
        "icmp_guard_top_source_passed_packets",
        "gauge",
        "Packets passed by the buckets of the top sources (at most 10 per interface).",
        &mut samples.iter().flat_map(|s| {
            s.top
                .iter()
                .enumerate()
                .map(move |(rank, (source, passed, _))| {
                    format!(
                        "{{{},rank=\"{}\",source=\"{}\"}} {passed}",
                        label(s),
                        rank + 1,
                        escape(source)
                    )
                })
        }),
    );
    family(
        "icmp_guard_limit",
        "gauge",
        "The configured limits (rates in packets per second, bursts in packets, sizes in bytes).",
        &mut samples.iter().flat_map(|s| {
            let c = &s.cfg;
            [
                ("echo_rate", u64::from(c.echo.rate)),
                ("echo_burst", u64::from(c.echo.burst)),
                ("reply_rate", u64::from(c.reply.rate)),
                ("reply_burst", u64::from(c.reply.burst)),
                ("global_rate", u64::from(c.global_rate)),
                ("global_burst", u64::from(c.global_burst)),
                ("v4_prefix", u64::from(c.v4_prefix)),
                ("v6_prefix", u64::from(c.v6_prefix)),
                ("max_echo_size", u64::from(c.max_echo_size)),
            ]
            .into_iter()
            .map(move |(limit, v)| format!("{{{},limit=\"{limit}\"}} {v}", label(s)))
        }),
    );
    family(
        "icmp_guard_dry_run",
        "gauge",
        "Whether the guard only counts (1) or enforces (0).",
        &mut samples
            .iter()
            .map(|s| format!("{{{}}} {}", label(s), u8::from(s.cfg.dry_run()))),
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

//! A replay's summary as text and as JSON.

use std::fmt::Write as _;

use icmp_guard_common::{Reason, bucket::Class};
use serde_json::{Value, json};

use super::{
    Summary,
    kernel::Comparison,
    suggest::{Limits, Suggestion},
};
use crate::{
    policy::describe,
    report::text::{SOURCE_WIDTH, sources_table, utc},
};

/// Most rows the text timeline prints; a longer capture is shown in steps of several seconds.
pub const TIMELINE_ROWS: u64 = 120;

fn class_name(class: Class) -> &'static str {
    match class {
        Class::Echo => "echo",
        Class::Reply => "reply",
    }
}

/// The timeline in rows of `step` seconds: (first second, passed, dropped).
#[must_use]
pub fn timeline_rows(s: &Summary) -> (u64, Vec<(u64, u64, u64)>) {
    let span = s.timeline.last().map_or(0, |(sec, _)| sec + 1);
    let step = span.div_ceil(TIMELINE_ROWS).max(1);
    let mut rows: Vec<(u64, u64, u64)> = Vec::new();
    for (sec, t) in &s.timeline {
        let start = sec / step * step;
        match rows.last_mut() {
            Some(row) if row.0 == start => {
                row.1 += t.passed;
                row.2 += t.dropped;
            }
            _ => rows.push((start, t.passed, t.dropped)),
        }
    }
    (step, rows)
}

#[expect(
    clippy::too_many_lines,
    reason = "the report's sections in the order they print, each a few lines"
)]
/// The summary as text: what was read, the counters, the top sources, the timeline, and
/// the comparison and suggestion when asked for.
#[must_use]
pub fn text(
    file: &str,
    s: &Summary,
    top: usize,
    kernel: Option<&Comparison>,
    suggestion: Option<(&Suggestion, &str)>,
) -> String {
    let mut out = String::new();
    let secs = s.duration_ns as f64 / 1e9;
    let _ = write!(out, "replay of {file}: {} frames", s.frames);
    let mut skipped = Vec::new();
    if s.truncated > 0 {
        skipped.push(format!("{} truncated in capture", s.truncated));
    }
    if s.outgoing > 0 {
        skipped.push(format!("{} sent by the capturing host", s.outgoing));
    }
    if let Some((_, linktype)) = s.first_other_link {
        skipped.push(format!(
            "{} on interfaces of a link type replay does not read (first: {linktype})",
            s.other_link
        ));
    }
    if !skipped.is_empty() {
        let _ = write!(
            out,
            " ({} judged; skipped: {})",
            s.judged,
            skipped.join(", ")
        );
    }
    match s.start_ns {
        Some(start) => {
            let _ = writeln!(out, ", {secs:.3} s from {}", utc(start / 1_000_000_000));
        }
        None => {
            let _ = writeln!(out);
        }
    }
    let _ = writeln!(out, "policy: {}", describe(&s.config));
    let _ = writeln!(
        out,
        "clock: time stamps counted from the first frame in steps of {} ms, as the program's \
         coarse clock ticks{}",
        s.tick_ns as f64 / 1e6,
        if s.out_of_order > 0 {
            format!(
                "; {} time stamps earlier than the one before were taken as that one",
                s.out_of_order
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "  {:<22} {:>12}  meaning", "counter", "packets");
    for (reason, n) in &s.counters {
        let _ = writeln!(out, "  {:<22} {:>12}  {}", reason.name(), n, reason.help());
    }
    let dry = if s.config.dry_run() {
        " (DRY RUN: counted, none dropped)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "  {:<22} {:>12}  of {} frames judged{dry}",
        "dropped in all",
        s.dropped(),
        s.judged
    );
    let _ = writeln!(out);
    if s.sources.is_empty() && s.counter(Reason::DroppedNewSource) == 0 {
        let _ = writeln!(out, "no metered sources");
    } else {
        sources_table(
            &mut out,
            s.sources
                .iter()
                .take(top)
                .map(|t| (s.source_name(&t.key), t.passed, t.dropped)),
            s.counter(Reason::DroppedNewSource),
        );
        if s.untallied != super::Tally::default() {
            let _ = writeln!(
                out,
                "  {:<SOURCE_WIDTH$} {:>12} {:>12}",
                format!("(sources past the first {})", super::TALLY_MAX),
                s.untallied.passed,
                s.untallied.dropped
            );
        }
    }
    if s.evicted > 0 {
        let _ = writeln!(
            out,
            "  {} sources were evicted from the table of {} (max_sources), as the program's LRU would",
            s.evicted, s.config.max_sources
        );
    }
    let _ = writeln!(out);
    let (step, rows) = timeline_rows(s);
    let unit = if step == 1 {
        "second".to_owned()
    } else {
        format!("{step} seconds")
    };
    let _ = writeln!(out, "timeline (per {unit}, from the first frame)");
    let _ = writeln!(out, "  {:>8} {:>12} {:>12}", "second", "passed", "dropped");
    for (start, passed, dropped) in rows {
        let _ = writeln!(out, "  {start:>8} {passed:>12} {dropped:>12}");
    }
    if let Some(c) = kernel {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "kernel: {} frames also run through the program (BPF_PROG_TEST_RUN); {} judged otherwise (metering outcomes compared as one stage)",
            c.compared, c.total
        );
        for d in c.differences.iter().take(20) {
            let _ = writeln!(
                out,
                "  frame {}: host {}, kernel {}",
                d.frame,
                d.host.name(),
                d.kernel.name()
            );
        }
        if c.total > 20 {
            let _ = writeln!(out, "  ... {} more (--json lists up to 1000)", c.total - 20);
        }
        if c.refused > 0 {
            let _ = writeln!(
                out,
                "kernel: {} frames left out of the comparison: BPF_PROG_TEST_RUN would not run them (it takes no frame under the 14 bytes of an Ethernet header, nor one larger than it lays out in pages)",
                c.refused
            );
            for r in c.refusals.iter().take(20) {
                let _ = writeln!(out, "  frame {}: {} bytes, {}", r.frame, r.bytes, r.why);
            }
            if c.refused > 20 {
                let _ = writeln!(
                    out,
                    "  ... {} more (--json lists up to 1000)",
                    c.refused - 20
                );
            }
        }
    }
    if let (Some((sug, iface)), Some(measured)) = (suggestion, &s.rates) {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "suggested limits: {}th percentile of sources, headroom {}, sustained rate over {} s",
            sug.percentile, sug.headroom, sug.window_secs
        );
        let line = |out: &mut String, what: &str, l: Option<Limits>, rate: &str, burst: &str| {
            let _ = match l {
                Some(l) => writeln!(
                    out,
                    "  {what}: {} source(s), peak {} in 1 s, {} in 10 s -> {rate} {}, {burst} {}",
                    l.sources, l.peak_1s, l.peak_10s, l.rate, l.burst
                ),
                None => writeln!(
                    out,
                    "  {what}: none in the capture; {rate} and {burst} left as they are"
                ),
            };
        };
        line(
            &mut out,
            "echo requests",
            sug.echo,
            "echo_rate",
            "echo_burst",
        );
        line(
            &mut out,
            "echo replies",
            sug.reply,
            "reply_rate",
            "reply_burst",
        );
        if let Some(g) = sug.global {
            let _ = writeln!(
                out,
                "  all metered ICMP: peak {} in 1 s, {} in 10 s -> global_rate {}, global_burst {}{}",
                g.peak_1s,
                g.peak_10s,
                g.rate,
                g.burst,
                if sug.global_raised_for_new_sources {
                    format!(
                        " (rate raised to twice new_source_rate {} plus one, as set requires)",
                        s.config.new_source.rate
                    )
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(out, "  peaks per source, highest first:");
        let _ = writeln!(
            out,
            "    {:<SOURCE_WIDTH$} {:>6} {:>10} {:>10} {:>10}",
            "source", "class", "1 s", "10 s", "packets"
        );
        for (key, class, p) in measured.sources.iter().take(top) {
            let _ = writeln!(
                out,
                "    {:<SOURCE_WIDTH$} {:>6} {:>10} {:>10} {:>10}",
                s.source_name(key),
                class_name(*class),
                p.one_sec,
                p.ten_sec,
                p.total
            );
        }
        if sug.values().is_empty() {
            let _ = writeln!(out, "  no metered ICMP in the capture: nothing to suggest");
        } else {
            let _ = writeln!(out);
            let _ = writeln!(out, "{}", sug.set_command(iface));
            let _ = writeln!(
                out,
                "  (checked against the policy replayed; `set` checks them again against the guard's own limits, e.g. a global rate at least twice its new-source rate)"
            );
            let _ = writeln!(out);
            let _ = write!(out, "{}", sug.toml());
        }
    }
    out
}

fn limits_json(l: Option<Limits>) -> Value {
    l.map_or(Value::Null, |l| {
        json!({"sources": l.sources, "peak_1s": l.peak_1s, "peak_10s": l.peak_10s, "rate": l.rate, "burst": l.burst})
    })
}

/// The summary as one JSON object.
#[must_use]
pub fn json(
    file: &str,
    s: &Summary,
    top: usize,
    kernel: Option<&Comparison>,
    suggestion: Option<(&Suggestion, &str)>,
) -> Value {
    let counters: serde_json::Map<String, Value> = s
        .counters
        .iter()
        .map(|(r, n)| (r.name().to_owned(), json!(n)))
        .collect();
    let mut out = json!({
        "file": file,
        "frames": s.frames,
        "judged": s.judged,
        "truncated_in_capture": s.truncated,
        "outgoing_skipped": s.outgoing,
        "other_link_skipped": s.other_link,
        "out_of_order": s.out_of_order,
        "start": s.start_ns.map(|ns| ns as f64 / 1e9),
        "duration_secs": s.duration_ns as f64 / 1e9,
        "clock_tick_ns": s.tick_ns,
        "policy": describe(&s.config),
        "dry_run": s.config.dry_run(),
        "counters": counters,
        "dropped": s.dropped(),
        "top_sources": s.sources.iter().take(top).map(|t| json!({
            "source": s.source_name(&t.key), "passed": t.passed, "dropped": t.dropped
        })).collect::<Vec<_>>(),
        "not_admitted": s.counter(Reason::DroppedNewSource),
        "untallied": {"passed": s.untallied.passed, "dropped": s.untallied.dropped},
        "sources_evicted": s.evicted,
        "timeline": s.timeline.iter().map(|(sec, t)| json!({
            "second": sec, "passed": t.passed, "dropped": t.dropped
        })).collect::<Vec<_>>(),
    });
    if let Some(c) = kernel {
        out["kernel"] = json!({
            "compared": c.compared,
            "differences_total": c.total,
            "differences": c.differences.iter().map(|d| json!({
                "frame": d.frame, "host": d.host.name(), "kernel": d.kernel.name()
            })).collect::<Vec<_>>(),
            "refused_total": c.refused,
            "refused": c.refusals.iter().map(|r| json!({
                "frame": r.frame, "bytes": r.bytes, "error": r.why
            })).collect::<Vec<_>>(),
        });
    }
    if let (Some((sug, iface)), Some(measured)) = (suggestion, &s.rates) {
        let limits: serde_json::Map<String, Value> = sug
            .values()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect();
        out["suggest"] = json!({
            "percentile": sug.percentile,
            "headroom": sug.headroom,
            "window_secs": sug.window_secs,
            "echo": limits_json(sug.echo),
            "reply": limits_json(sug.reply),
            "global": limits_json(sug.global),
            "global_raised_for_new_sources": sug.global_raised_for_new_sources,
            "limits": limits,
            "set": (!sug.values().is_empty()).then(|| sug.set_command(iface)),
            "toml": (!sug.values().is_empty()).then(|| sug.toml()),
            "sources": measured.sources.iter().take(top).map(|(key, class, p)| json!({
                "source": s.source_name(key), "class": class_name(*class),
                "peak_1s": p.one_sec, "peak_10s": p.ten_sec, "packets": p.total
            })).collect::<Vec<_>>(),
            "unmeasured": measured.unmeasured,
        });
    }
    out
}

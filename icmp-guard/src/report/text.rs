//! The tables people read: `status`, `stats` and `stats --watch`, from [`Snapshot`]s.

use std::{collections::HashMap, fmt::Write as _};

use icmp_guard_common::{Reason, SourceKey};

use super::Snapshot;
use crate::{pinned::health::Health, policy};

/// One guard as `status` lists it.
#[must_use]
pub fn status(s: &Snapshot) -> String {
    let attachment = if s.health == Health::Attached {
        format!("program {} in {} mode", s.program_id, s.mode)
    } else {
        format!("program {}: {}", s.program_id, s.health)
    };
    format!(
        "{} (ifindex {}): {attachment} since {}\n  {}\n  lists: {} allowed, {} denied prefixes; sources tracked: {} of {} ({:.1} MiB)\n",
        s.interface,
        s.config.ifindex,
        utc(s.config.attached_at),
        policy::describe(&s.config),
        s.allow,
        s.deny,
        s.sources.len(),
        s.table.capacity,
        s.table.bytes as f64 / f64::from(1u32 << 20)
    )
}

/// `secs` since the Unix epoch as a UTC date and time, `2026-11-28 16:20:39 UTC`.
#[must_use]
pub fn utc(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// `stats`: every counter with its meaning, the total, and the `top` sources by drops.
#[must_use]
pub fn stats(s: &Snapshot, top: usize) -> String {
    let mut out = String::new();
    if s.config.dry_run() {
        let _ = writeln!(
            out,
            "icmp-guard on {} (DRY RUN: drops are counted, nothing is dropped)",
            s.interface
        );
    } else {
        let _ = writeln!(out, "icmp-guard on {}", s.interface);
    }
    if !s.health.attached() {
        let _ = writeln!(out, "  {}", s.health);
    }
    let _ = writeln!(out, "  {:<22} {:>12}  meaning", "counter", "packets");
    for (reason, n) in &s.counters {
        let _ = writeln!(out, "  {:<22} {:>12}  {}", reason.name(), n, reason.help());
    }
    let _ = writeln!(
        out,
        "  {:<22} {:>12}  of {} frames seen",
        "dropped in all",
        s.dropped(),
        s.passed() + s.dropped()
    );
    let _ = writeln!(out);
    let top = s.top(top);
    if top.is_empty() {
        let _ = writeln!(out, "no metered sources yet");
        return out;
    }
    let _ = writeln!(out, "top sources by drops");
    let _ = writeln!(out, "  {:<40} {:>12} {:>12}", "source", "passed", "dropped");
    for source in top {
        let _ = writeln!(
            out,
            "  {:<40} {:>12} {:>12}",
            s.source_name(&source.key),
            source.passed,
            source.dropped
        );
    }
    let _ = writeln!(
        out,
        "  {:<40} {:>12} {:>12}",
        NOT_ADMITTED,
        "",
        s.counter(Reason::DroppedNewSource)
    );
    out
}

/// The line for drops of sources that never got an entry (`dropped_new_source`): attributed
/// to them together, since keeping them apart is what the admission budget avoids.
const NOT_ADMITTED: &str = "(sources not admitted, no entry)";

/// One screen of `stats --watch`: per-second rates per reason between `before` and `now`,
/// `secs` apart, and the `top` sources dropping the most right now.
#[must_use]
pub fn watch(before: &Snapshot, now: &Snapshot, secs: u64, top: usize) -> String {
    let per_sec = |new: u64, old: u64| new.saturating_sub(old) as f64 / secs as f64;
    let mut screen = String::new();
    let _ = writeln!(
        screen,
        "\x1b[2J\x1b[Hicmp-guard on {}, every {secs} s (Ctrl-C to stop){}",
        now.interface,
        if now.config.dry_run() {
            ", DRY RUN"
        } else {
            ""
        }
    );
    let _ = writeln!(
        screen,
        "  {:<22} {:>12} {:>12}",
        "counter", "total", "per second"
    );
    for ((reason, n), (_, old)) in now.counters.iter().zip(&before.counters) {
        let _ = writeln!(
            screen,
            "  {:<22} {:>12} {:>12.1}",
            reason.name(),
            n,
            per_sec(*n, *old)
        );
    }
    let earlier: HashMap<SourceKey, (u64, u64)> = before
        .sources
        .iter()
        .map(|s| (s.key, (s.passed, s.dropped)))
        .collect();
    let mut rates: Vec<(SourceKey, f64, f64)> = now
        .sources
        .iter()
        .map(|s| {
            let (passed, dropped) = earlier.get(&s.key).copied().unwrap_or((0, 0));
            (
                s.key,
                per_sec(s.passed, passed),
                per_sec(s.dropped, dropped),
            )
        })
        .filter(|(_, p, d)| *p > 0.0 || *d > 0.0)
        .collect();
    rates.sort_by(|a, b| b.2.total_cmp(&a.2).then(b.1.total_cmp(&a.1)));
    let _ = writeln!(screen, "\ntop sources now ({} tracked)", now.sources.len());
    let _ = writeln!(
        screen,
        "  {:<40} {:>12} {:>12}",
        "source", "passed/s", "dropped/s"
    );
    for (key, passed, dropped) in rates.iter().take(top) {
        let _ = writeln!(
            screen,
            "  {:<40} {passed:>12.1} {dropped:>12.1}",
            now.source_name(key)
        );
    }
    let not_admitted = |s: &Snapshot| s.counter(Reason::DroppedNewSource);
    let _ = writeln!(
        screen,
        "  {:<40} {:>12} {:>12.1}",
        NOT_ADMITTED,
        "",
        per_sec(not_admitted(now), not_admitted(before))
    );
    screen
}

#[cfg(test)]
mod tests {
    use super::{super::tests::sample, *};

    /// (seconds since the epoch, as `status` prints them): the epoch, leap days, a century.
    #[test]
    fn times_read_as_utc_dates() {
        for (secs, date) in [
            (0, "1970-01-01 00:00:00 UTC"),
            (68_256_000, "1972-03-01 00:00:00 UTC"),
            (951_782_400, "2000-02-29 00:00:00 UTC"),
            (1_795_876_339, "2026-11-28 14:32:19 UTC"),
            (4_102_444_799, "2099-12-31 23:59:59 UTC"),
        ] {
            assert_eq!(utc(secs), date, "{secs}");
        }
    }

    #[test]
    fn status_reads_as_before() {
        assert_eq!(
            status(&sample()),
            "eth0 (ifindex 7): program 13 in native mode since 2026-11-28 14:32:19 UTC\n  echo 20/s burst 50 per source, replies 100/s burst 200, global 2000/s burst 4000, new sources 100/s burst 200, exempt 10000/s burst 20000, sources by /24 and /64, max echo size 9216 bytes, up to 65536 sources\n  lists: 1 allowed, 0 denied prefixes; sources tracked: 2 of 65536 (7.0 MiB)\n"
        );
    }

    #[test]
    fn stats_lists_every_counter_and_the_top_sources() {
        let s = sample();
        let out = stats(&s, 10);
        assert!(out.starts_with("icmp-guard on eth0\n"), "{out}");
        for (reason, _) in &s.counters {
            assert!(out.contains(reason.name()), "{out}");
        }
        assert!(out.contains("dropped in all"), "{out}");
        assert!(out.contains("198.51.100.0/24"), "{out}");
        // Drops of sources without an entry are attributed to them together (counter 16).
        assert!(
            out.lines()
                .any(|l| l.contains(NOT_ADMITTED) && l.trim_end().ends_with(" 16")),
            "{out}"
        );
    }

    #[test]
    fn watch_shows_rates_between_two_snapshots() {
        let before = sample();
        let mut now = sample();
        now.counters[1].1 += 20;
        now.sources[0].dropped += 10;
        let out = watch(&before, &now, 2, 5);
        assert!(out.contains("10.0"), "{out}");
        assert!(out.contains("5.0"), "{out}");
    }
}

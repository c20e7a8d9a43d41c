//! The tables people read: `status`, `stats` and `stats --watch`, from [`Snapshot`]s.

use std::{fmt::Write as _, time::UNIX_EPOCH};

use icmp_guard_common::Reason;

use super::{Rates, Snapshot};
use crate::policy;

/// One guard as `status` lists it.
#[must_use]
pub fn status(s: &Snapshot) -> String {
    let attachment = if s.health.attached() {
        format!(
            "program {} in {} mode since {}",
            s.program_id,
            s.mode,
            utc(s.config.attached_at)
        )
    } else {
        format!(
            "program {} (attached {}): {}",
            s.program_id,
            utc(s.config.attached_at),
            s.health
        )
    };
    format!(
        "{} (ifindex {}): {attachment}\n  {}\n  lists: {} allowed, {} denied prefixes; sources tracked: {} of {} ({:.1} MiB)\n  pins: {} ({})\n",
        s.interface,
        s.config.ifindex,
        policy::describe(&s.config),
        s.allow,
        s.deny,
        s.tracked,
        s.table.capacity,
        s.table.bytes as f64 / f64::from(1u32 << 20),
        s.pins.display(),
        s.netns
    )
}

/// The top sources as `stats` and `replay` print them: a heading, one row per source prefix
/// (its name, passes, drops), and the row of sources refused admission, which have no entry.
pub fn sources_table(
    out: &mut String,
    rows: impl IntoIterator<Item = (String, u64, u64)>,
    not_admitted: u64,
) {
    let _ = writeln!(out, "top sources by drops");
    let _ = writeln!(
        out,
        "  {:<SOURCE_WIDTH$} {:>12} {:>12}",
        "source", "passed", "dropped"
    );
    for (name, passed, dropped) in rows {
        let _ = writeln!(out, "  {name:<SOURCE_WIDTH$} {passed:>12} {dropped:>12}");
    }
    let _ = writeln!(
        out,
        "  {NOT_ADMITTED:<SOURCE_WIDTH$} {:>12} {not_admitted:>12}",
        ""
    );
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
    let not_admitted = s.counter(Reason::DroppedNewSource);
    if top.is_empty() && not_admitted == 0 {
        let _ = writeln!(out, "no metered sources yet");
        return out;
    }
    sources_table(
        &mut out,
        top.iter()
            .map(|t| (s.source_name(&t.key), t.passed, t.dropped)),
        not_admitted,
    );
    out
}

/// The width of the source column: the longest name a source can have, an IPv6 `/128`
/// (`ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128`).
pub const SOURCE_WIDTH: usize = 43;

/// The line for drops of sources that never got an entry (`dropped_new_source`): attributed
/// to them together, since keeping them apart is what the admission budget avoids.
const NOT_ADMITTED: &str = "(sources not admitted, no entry)";

/// Clears a terminal and homes the cursor: how `stats --watch` redraws on a terminal.
pub const CLEAR_SCREEN: &str = "\x1b[2J\x1b[H";

/// One screen of `stats --watch`: per-second rates per reason and the `top` sources dropping
/// the most right now. With `clear_screen` it starts by clearing the terminal; without (stdout
/// is a file or a pipe) it holds no control characters and ends with a blank line, so
/// screens follow one another.
#[must_use]
pub fn watch(rates: &Rates, top: usize, clear_screen: bool) -> String {
    let now = rates.now;
    let mut screen = String::new();
    if clear_screen {
        screen.push_str(CLEAR_SCREEN);
    }
    let at = rates
        .at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let _ = writeln!(
        screen,
        "icmp-guard on {} at {}, rates over {:.2} s (Ctrl-C to stop){}",
        now.interface,
        utc(at),
        rates.elapsed.as_secs_f64(),
        if now.config.dry_run() {
            ", DRY RUN"
        } else {
            ""
        }
    );
    // As `stats` says it: a guard the kernel detached counts nothing more.
    if !now.health.attached() {
        let _ = writeln!(screen, "  {}", now.health);
    }
    let _ = writeln!(
        screen,
        "  {:<22} {:>12} {:>12}",
        "counter", "total", "per second"
    );
    for (reason, n, rate) in &rates.counters {
        let _ = writeln!(screen, "  {:<22} {n:>12} {rate:>12.1}", reason.name());
    }
    let _ = writeln!(screen, "\ntop sources now ({} tracked)", now.tracked);
    let _ = writeln!(
        screen,
        "  {:<SOURCE_WIDTH$} {:>12} {:>12}",
        "source", "passed/s", "dropped/s"
    );
    for source in rates.top(top) {
        let _ = writeln!(
            screen,
            "  {:<SOURCE_WIDTH$} {:>12.1} {:>12.1}",
            now.source_name(&source.key),
            source.passed_per_sec,
            source.dropped_per_sec
        );
    }
    let _ = writeln!(
        screen,
        "  {:<SOURCE_WIDTH$} {:>12} {:>12.1}",
        NOT_ADMITTED,
        "",
        rates.rate(Reason::DroppedNewSource)
    );
    if !clear_screen {
        screen.push('\n');
    }
    screen
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{super::tests::sample, *};
    use crate::pinned::health::Health;

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
    fn status_reads_as_before_and_says_where_the_pins_live() {
        let s = sample();
        assert_eq!(
            status(&s),
            format!(
                "eth0 (ifindex 7): program 13 in native mode since 2026-11-28 14:32:19 UTC\n  echo 20/s burst 50 per source, replies 100/s burst 200, global 2000/s burst 4000, new sources 100/s burst 200, exempt 10000/s burst 20000, sources by /24 and /64, max echo size 9216 bytes, up to 65536 sources\n  lists: 1 allowed, 0 denied prefixes; sources tracked: 2 of 65536 (7.0 MiB)\n  pins: /sys/fs/bpf/icmp-guard/netns:4026531840:1/eth0 ({})\n",
                s.netns
            )
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

    /// (time measured, clear the screen): rates over the time measured; control characters
    /// only when redrawing a terminal.
    #[test]
    fn watch_shows_rates_and_clears_only_a_terminal() {
        let (before, now) = crate::report::rates::tests::moved();
        for (elapsed, clear_screen, counter, source) in [
            (Duration::from_secs(2), true, "10.0", "5.0"),
            (Duration::from_secs(2), false, "10.0", "5.0"),
            (Duration::from_millis(500), false, "40.0", "20.0"),
        ] {
            let rates = Rates::between(&before, &now, elapsed, UNIX_EPOCH);
            let out = watch(&rates, 5, clear_screen);
            let name = Reason::ALL[1].name();
            assert!(
                out.lines()
                    .any(|l| l.contains(name) && l.trim_end().ends_with(counter)),
                "{out}"
            );
            assert!(
                out.lines()
                    .any(|l| l.contains("198.51.100.0/24") && l.ends_with(source)),
                "{out}"
            );
            assert!(out.contains("at 1970-01-01 00:00:00 UTC"), "{out}");
            assert!(
                out.contains(&format!("rates over {:.2} s", elapsed.as_secs_f64())),
                "{out}"
            );
            assert!(!out.contains(&Health::LinkDetached.to_string()), "{out}");
            if clear_screen {
                assert!(out.starts_with(CLEAR_SCREEN), "{out:?}");
                assert_eq!(out.matches('\x1b').count(), 2, "{out:?}");
            } else {
                assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
                assert!(out.ends_with("\n\n"), "{out:?}");
            }
        }
    }

    /// A guard the kernel detached says so on every screen, as `stats` does.
    #[test]
    fn watch_says_when_the_guard_is_no_longer_attached() {
        let (before, mut now) = crate::report::rates::tests::moved();
        now.health = Health::LinkDetached;
        let rates = Rates::between(&before, &now, Duration::from_secs(1), UNIX_EPOCH);
        let out = watch(&rates, 5, false);
        let second = out.lines().nth(1).unwrap();
        assert_eq!(second, format!("  {}", Health::LinkDetached), "{out}");
    }
}

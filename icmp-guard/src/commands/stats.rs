//! `icmp-guard stats`: counters per reason and the top sources.

use std::{
    collections::HashMap,
    fmt::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
    time::Duration,
};

use icmp_guard_common::{Config, Reason, SourceKey};
use serde_json::{Map, Value, json};

use crate::{
    Error,
    cli::StatsArgs,
    guard::{Guard, SourceTotals},
    pins::Pins,
    privilege,
};

pub fn run(bpffs: &Path, args: &StatsArgs) -> Result<(), Error> {
    privilege::require("stats", privilege::PINS)?;
    let guard = Guard::open(Pins::new(bpffs, &args.iface))?;
    if let Some(secs) = args.watch {
        return watch(&guard, &args.iface, secs.max(1), args.top);
    }
    let cfg = guard.config()?;
    let counters = guard.counters()?;
    let top = top_sources(guard.sources()?, args.top);
    if args.json {
        println!("{}", to_json(&args.iface, &cfg, &counters, &top));
    } else {
        print_table(&args.iface, &cfg, &counters, &top);
    }
    Ok(())
}

/// `--watch`: redraws every `secs` seconds with per-second rates per reason and the sources
/// dropping the most right now, like `xdp-filter poll`. Runs until interrupted.
fn watch(guard: &Guard, iface: &str, secs: u64, top: usize) -> Result<(), Error> {
    let mut before = guard.counters()?;
    let mut sources_before: HashMap<SourceKey, (u64, u64)> = guard
        .sources()?
        .into_iter()
        .map(|s| (s.key, (s.passed, s.dropped)))
        .collect();
    loop {
        std::thread::sleep(Duration::from_secs(secs));
        let cfg = guard.config()?;
        let now = guard.counters()?;
        let sources = guard.sources()?;
        let per_sec = |new: u64, old: u64| new.saturating_sub(old) as f64 / secs as f64;
        let mut screen = String::new();
        let _ = writeln!(
            screen,
            "\x1b[2J\x1b[Hicmp-guard on {iface}, every {secs} s (Ctrl-C to stop){}",
            if cfg.dry_run() { ", DRY RUN" } else { "" }
        );
        let _ = writeln!(
            screen,
            "  {:<22} {:>12} {:>12}",
            "counter", "total", "per second"
        );
        for ((reason, n), (_, old)) in now.iter().zip(&before) {
            let _ = writeln!(
                screen,
                "  {:<22} {:>12} {:>12.1}",
                reason.name(),
                n,
                per_sec(*n, *old)
            );
        }
        let mut rates: Vec<(SourceKey, f64, f64)> = sources
            .iter()
            .map(|s| {
                let (passed, dropped) = sources_before.get(&s.key).copied().unwrap_or((0, 0));
                (
                    s.key,
                    per_sec(s.passed, passed),
                    per_sec(s.dropped, dropped),
                )
            })
            .filter(|(_, p, d)| *p > 0.0 || *d > 0.0)
            .collect();
        rates.sort_by(|a, b| b.2.total_cmp(&a.2).then(b.1.total_cmp(&a.1)));
        let _ = writeln!(screen, "\ntop sources now ({} tracked)", sources.len());
        let _ = writeln!(
            screen,
            "  {:<40} {:>12} {:>12}",
            "source", "passed/s", "dropped/s"
        );
        for (key, passed, dropped) in rates.iter().take(top) {
            let _ = writeln!(
                screen,
                "  {:<40} {passed:>12.1} {dropped:>12.1}",
                format_source(key, &cfg)
            );
        }
        print!("{screen}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        before = now;
        sources_before = sources
            .into_iter()
            .map(|s| (s.key, (s.passed, s.dropped)))
            .collect();
    }
}

/// The `n` sources with the most drops (then the most passes), in descending order.
#[must_use]
pub fn top_sources(mut sources: Vec<SourceTotals>, n: usize) -> Vec<SourceTotals> {
    sources
        .sort_unstable_by(|a, b| (b.dropped, b.passed, a.key).cmp(&(a.dropped, a.passed, b.key)));
    sources.truncate(n);
    sources
}

/// A source key as the prefix it aggregates, e.g. `198.51.100.0/24` or `2001:db8:1::/64`.
#[must_use]
pub fn format_source(key: &SourceKey, cfg: &Config) -> String {
    match key.as_v4() {
        Some(v4) => format!("{}/{}", Ipv4Addr::from(v4), cfg.v4_prefix),
        None => format!("{}/{}", Ipv6Addr::from(key.addr), cfg.v6_prefix),
    }
}

fn to_json(iface: &str, cfg: &Config, counters: &[(Reason, u64)], top: &[SourceTotals]) -> Value {
    let counters: Map<String, Value> = counters
        .iter()
        .map(|(reason, n)| (reason.name().to_owned(), json!(n)))
        .collect();
    let top: Vec<Value> = top
        .iter()
        .map(|s| json!({"source": format_source(&s.key, cfg), "passed": s.passed, "dropped": s.dropped}))
        .collect();
    json!({"interface": iface, "dry_run": cfg.dry_run(), "counters": counters, "top_sources": top})
}

fn print_table(iface: &str, cfg: &Config, counters: &[(Reason, u64)], top: &[SourceTotals]) {
    if cfg.dry_run() {
        println!("icmp-guard on {iface} (DRY RUN: drops are counted, nothing is dropped)");
    } else {
        println!("icmp-guard on {iface}");
    }
    println!("  {:<22} {:>12}  meaning", "counter", "packets");
    for (reason, n) in counters {
        println!("  {:<22} {:>12}  {}", reason.name(), n, reason.help());
    }
    let dropped: u64 = counters
        .iter()
        .filter(|(r, _)| r.is_drop())
        .map(|(_, n)| n)
        .sum();
    let total: u64 = counters.iter().map(|(_, n)| n).sum();
    println!(
        "  {:<22} {:>12}  of {total} frames seen",
        "dropped in all", dropped
    );
    println!();
    if top.is_empty() {
        println!("no metered sources yet");
        return;
    }
    println!("top sources by drops");
    println!("  {:<40} {:>12} {:>12}", "source", "passed", "dropped");
    for s in top {
        println!(
            "  {:<40} {:>12} {:>12}",
            format_source(&s.key, cfg),
            s.passed,
            s.dropped
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(last: u8, passed: u64, dropped: u64) -> SourceTotals {
        SourceTotals {
            key: SourceKey::v4([198, 51, 100, last]),
            passed,
            dropped,
        }
    }

    #[test]
    fn top_sources_by_drops_then_passes() {
        let top = top_sources(
            vec![
                totals(1, 5, 0),
                totals(2, 1, 9),
                totals(3, 7, 9),
                totals(4, 0, 1),
            ],
            3,
        );
        let order: Vec<_> = top.iter().map(|s| s.key.addr[15]).collect();
        assert_eq!(order, [3, 2, 4]);
    }

    #[test]
    fn formats_sources_as_their_prefix() {
        let mut cfg = Config::with_defaults(1);
        assert_eq!(
            format_source(&SourceKey::v4([203, 0, 113, 9]), &cfg),
            "203.0.113.9/32"
        );
        cfg.v4_prefix = 24;
        assert_eq!(
            format_source(&SourceKey::v4([203, 0, 113, 0]), &cfg),
            "203.0.113.0/24"
        );
        let mut v6 = SourceKey { addr: [0; 16] };
        v6.addr[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1]);
        assert_eq!(format_source(&v6, &cfg), "2001:db8:1::/64");
    }
}

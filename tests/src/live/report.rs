//! The live table as text and as JSON, with the targets beside the measured ratios.

use std::fmt::Write as _;

use icmp_guard_common::generator::SPOOF_BASE;
use serde_json::{Value, json};

use super::{
    RECEIVER_CPU, SENDER_CPU,
    bench::{
        Case, FLOOD_FRAMES, FLOOD_SRC, Live, MONITOR_INTERVAL, MONITOR_INTRODUCTION, MONITOR_LEAD,
        MONITOR_PINGS, Measured, Monitor, ROUNDS,
    },
};
use crate::lab::CLIENT_ADDR;

/// The median of `values` (the upper one of an even count); NaN when there are none.
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A case's medians over its rounds, each column on its own.
#[derive(Clone, Copy, Debug)]
pub struct Medians {
    pub sent: f64,
    pub sent_pps: f64,
    pub received: f64,
    pub passed: f64,
    pub dropped: f64,
    /// NaN without an XDP program.
    pub prog_ns: f64,
    pub receive_ns: f64,
    /// NaN without an XDP program.
    pub receive_ns_with_stats: f64,
    pub napi_busy: f64,
}

impl Medians {
    fn of(rounds: &[Measured]) -> Self {
        let m = |f: fn(&Measured) -> f64| median(rounds.iter().map(f));
        Self {
            sent: m(|r| r.sent.frames as f64),
            sent_pps: m(Measured::sent_pps),
            received: m(|r| r.received as f64),
            passed: m(|r| r.passed as f64),
            dropped: m(|r| r.dropped() as f64),
            prog_ns: m(|r| r.prog_ns().unwrap_or(f64::NAN)),
            receive_ns: m(Measured::receive_ns),
            receive_ns_with_stats: m(|r| r.receive_ns_with_stats().unwrap_or(f64::NAN)),
            napi_busy: m(Measured::napi_busy),
        }
    }
}

/// A target of the issue and what was measured against it.
#[derive(Clone, Debug)]
pub struct Target {
    pub what: &'static str,
    pub measured: f64,
    /// "%" or "x".
    pub unit: &'static str,
    pub at_least: bool,
    pub bound: f64,
}

impl Target {
    #[must_use]
    pub fn met(&self) -> Option<bool> {
        if self.measured.is_nan() {
            return None;
        }
        Some(if self.at_least {
            self.measured >= self.bound
        } else {
            self.measured <= self.bound
        })
    }

    fn bound_text(&self) -> String {
        let op = if self.at_least { ">=" } else { "<=" };
        format!("{op} {}{}", self.bound, self.unit)
    }
}

/// The medians of every case and the targets, computed once for both renderings.
pub struct Summary<'a> {
    pub live: &'a Live,
    pub medians: Vec<(Case, Medians)>,
    pub targets: Vec<Target>,
}

impl<'a> Summary<'a> {
    #[must_use]
    pub fn new(live: &'a Live) -> Self {
        let medians: Vec<(Case, Medians)> = live
            .cases
            .iter()
            .map(|(case, rounds)| (*case, Medians::of(rounds)))
            .collect();
        let ratio = |a, b, f| round_ratio(live, a, b, f);
        let prog_ns = |m: &Measured| m.prog_ns().unwrap_or(f64::NAN);
        let monitor = &live.monitor;
        let targets = vec![
            Target {
                what: "monitor answered during the spoofed flood",
                measured: 100.0 * f64::from(monitor.answered) / f64::from(monitor.sent.max(1)),
                unit: "%",
                at_least: true,
                bound: 99.0,
            },
            Target {
                what: "program ns/pkt, spoofed / 1 source",
                measured: ratio(Case::GuardSpoofed, Case::GuardSingle, prog_ns),
                unit: "x",
                at_least: false,
                bound: 1.2,
            },
            Target {
                what: "receive CPU/pkt, 1 source / bare XDP_DROP",
                measured: ratio(Case::GuardSingle, Case::XdpDrop, Measured::receive_ns),
                unit: "x",
                at_least: false,
                bound: 1.5,
            },
            Target {
                what: "receive CPU/pkt, nftables meter / 1 source",
                measured: ratio(Case::Nft, Case::GuardSingle, Measured::receive_ns),
                unit: "x",
                at_least: true,
                bound: 3.0,
            },
        ];
        Self {
            live,
            medians,
            targets,
        }
    }

    /// The floor's receive cost against the bare and the reading `XDP_DROP`, and the nftables
    /// meter's and icmp-guard's against the floor's, by their keys in JSON.
    fn floor_ratios(&self) -> [(&'static str, f64); 4] {
        [
            ("floor_vs_xdp_drop", Case::FloorSingle, Case::XdpDrop),
            (
                "floor_vs_xdp_read_drop",
                Case::FloorSingle,
                Case::XdpReadDrop,
            ),
            ("nftables_vs_floor", Case::Nft, Case::FloorSingle),
            (
                "guard_single_source_vs_floor",
                Case::GuardSingle,
                Case::FloorSingle,
            ),
        ]
        .map(|(key, a, b)| (key, self.receive_ratio(a, b)))
    }

    /// The median of the rounds' own ratios of `a`'s receive ns to `b`'s.
    fn receive_ratio(&self, a: Case, b: Case) -> f64 {
        round_ratio(self.live, a, b, Measured::receive_ns)
    }

    fn baseline_receive_ns(&self) -> f64 {
        self.receive_ns(Case::XdpDrop)
    }

    /// The median receive ns of `case`; NaN when it did not run.
    fn receive_ns(&self, case: Case) -> f64 {
        self.median(case, |m| m.receive_ns)
    }

    /// A median of `case`; NaN when it did not run.
    fn median(&self, case: Case, f: fn(&Medians) -> f64) -> f64 {
        self.medians
            .iter()
            .find(|(c, _)| *c == case)
            .map_or(f64::NAN, |(_, m)| f(m))
    }

    /// The table, the monitor and the targets, as the bench prints them.
    #[must_use]
    pub fn text(&self) -> String {
        let live = self.live;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "live traffic: xdp-gen sends 98-byte echo requests through a veth pair (BPF_PROG_TEST_RUN live frames, XDP_TX, CPU {SENDER_CPU}); the receiver's threaded NAPI ({}) runs on CPU {RECEIVER_CPU}, XDP native; {FLOOD_FRAMES} frames per case, median of {ROUNDS} rounds",
            live.napi_thread
        );
        let _ = writeln!(
            out,
            "{:<26} {:>8} {:>5} {:>8} {:>7} {:>8} {:>8} {:>10} {:>8} {:>5}",
            "case",
            "sent",
            "Mpps",
            "received",
            "passed",
            "dropped",
            "prog ns",
            "receive ns",
            "vs drop",
            "NAPI"
        );
        let base = self.baseline_receive_ns();
        for (case, m) in &self.medians {
            let prog = if m.prog_ns.is_nan() {
                "-".to_owned()
            } else {
                format!("{:.1}", m.prog_ns)
            };
            let _ = writeln!(
                out,
                "{:<26} {:>8.0} {:>5.2} {:>8.0} {:>7.0} {:>8.0} {prog:>8} {:>10.1} {:>7.2}x {:>4.0}%",
                case.label(),
                m.sent,
                m.sent_pps / 1e6,
                m.received,
                m.passed,
                m.dropped,
                m.receive_ns,
                m.receive_ns / base,
                m.napi_busy * 100.0
            );
        }
        out += &self.notes();
        out += &monitor_line(&live.monitor);
        let _ = writeln!(
            out,
            "{:<46} {:>9} {:>8} {:>8}",
            "target", "measured", "target", ""
        );
        for t in &self.targets {
            let met = match t.met() {
                Some(true) => "met",
                Some(false) => "not met",
                None => "unknown",
            };
            let measured = if t.unit == "%" {
                format!("{:.1}%", t.measured)
            } else {
                format!("{:.2}x", t.measured)
            };
            let _ = writeln!(
                out,
                "{:<46} {measured:>9} {:>8} {met:>8}",
                t.what,
                t.bound_text()
            );
        }
        out
    }

    /// The lines under the table: what the cases were and what their ratios say.
    fn notes(&self) -> String {
        let live = self.live;
        let mut out = String::new();
        let src = std::net::Ipv4Addr::from(FLOOD_SRC);
        let base = self.baseline_receive_ns();
        let (rate, burst) = live.echo_limit;
        let spoof_base = std::net::Ipv4Addr::from(SPOOF_BASE);
        let _ = writeln!(
            out,
            "  1 source: {src}. spoofed: a new source per frame ({spoof_base} up), the source table {} before each flood. nftables: ingress hook, a dynamic set, {rate}/s burst {burst} per source (icmp-guard's echo limit), no XDP.",
            fills(live)
        );
        let _ = writeln!(
            out,
            "  receive ns: the NAPI thread's CPU time / frames received, BPF statistics off; prog ns: the receiver's XDP program (run time / runs) in a second flood with BPF run-time statistics on, which add {:.1} ns of receive time per frame to the bare XDP_DROP; NAPI: the NAPI thread's CPU time over the flood's duration, on CPU {RECEIVER_CPU} (the drain after the flood included). Each column is a median of its own, so dropped need not be received less passed exactly; the targets take the median of the rounds' own ratios.",
            self.median(Case::XdpDrop, |m| m.receive_ns_with_stats) - base
        );
        let reads = self.receive_ns(Case::XdpReadDrop);
        let _ = writeln!(
            out,
            "  touching the frame: XDP_DROP that reads two bytes of it costs {:.2}x the bare one; icmp-guard with one source {:.2}x that.",
            reads / base,
            self.receive_ns(Case::GuardSingle) / reads
        );
        let [floor_drop, floor_reads, nft_floor, guard_floor] =
            self.floor_ratios().map(|(_, ratio)| ratio);
        let _ = writeln!(
            out,
            "  the floor of a per-source meter (xdp_floor: an untagged IPv4 echo's source looked up in a shared LRU hash, its bucket charged, the drop counted in its entry; none of icmp-guard's screening) with one source costs {floor_drop:.2}x the bare XDP_DROP and {floor_reads:.2}x the reading one; the nftables meter costs {nft_floor:.2}x the floor, icmp-guard {guard_floor:.2}x it (medians of the rounds' own ratios).",
        );
        let prog = |case| self.median(case, |m| m.prog_ns);
        let _ = writeln!(
            out,
            "  frames: the sender writes each one before it leaves (a NIC writes every frame it receives), so the receiving CPU fetches it from the sender's cache; the warm rows get frames the sender leaves as they are, still in the receiver's cache from the page's last use. Fetching the frame: {:.1} ns of XDP_DROP's program time (reads frame, minus warm), {:.1} ns of icmp-guard's (1 source, minus warm).",
            prog(Case::XdpReadDrop) - prog(Case::XdpReadDropWarm),
            prog(Case::GuardSingle) - prog(Case::GuardSingleWarm)
        );
        out
    }

    /// Everything, rounds included, as JSON.
    #[must_use]
    pub fn json(&self) -> Value {
        let live = self.live;
        let number = |x: f64| if x.is_nan() { Value::Null } else { json!(x) };
        let cases: Vec<Value> = self
            .medians
            .iter()
            .map(|(case, m)| {
                json!({
                    "case": case.key(),
                    "label": case.label(),
                    "frames": case.frames().key(),
                    "median": {
                        "sent": number(m.sent),
                        "sent_pps": number(m.sent_pps),
                        "received": number(m.received),
                        "passed": number(m.passed),
                        "dropped": number(m.dropped),
                        "prog_ns_per_pkt": number(m.prog_ns),
                        "receive_cpu_ns_per_pkt": number(m.receive_ns),
                        "receive_cpu_ns_per_pkt_with_bpf_stats": number(m.receive_ns_with_stats),
                        "receive_vs_xdp_drop": number(m.receive_ns / self.baseline_receive_ns()),
                        "napi_busy": number(m.napi_busy),
                    },
                    "rounds": live.rounds(*case).iter().map(|r| json!({
                        "sent": r.sent.frames,
                        "seconds": r.sent.seconds,
                        "received": r.received,
                        "passed": r.passed,
                        "dropped": r.dropped(),
                        "napi_cpu_ns": r.napi_ns,
                        "prog_run_ns": r.prog.map(|p| p.0),
                        "prog_runs": r.prog.map(|p| p.1),
                        "with_bpf_stats": r.with_stats.map(|(napi_ns, received)| json!({
                            "napi_cpu_ns": napi_ns,
                            "received": received,
                        })),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let m = &live.monitor;
        json!({
            "setup": {
                "transport": "veth pair, native XDP on the receiver",
                "generator": "xdp-gen, BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES, XDP_TX",
                "sender_cpu": SENDER_CPU,
                "receiver_cpu": RECEIVER_CPU,
                "napi_thread": live.napi_thread,
                "frames_per_case": FLOOD_FRAMES,
                "rounds": ROUNDS,
                "single_source": std::net::Ipv4Addr::from(FLOOD_SRC).to_string(),
                "echo_limit": { "rate": live.echo_limit.0, "burst": live.echo_limit.1 },
            },
            "cases": cases,
            "source_table_fill": live.fills.iter().map(|f| json!({
                "tracked": f.tracked, "capacity": f.capacity,
            })).collect::<Vec<_>>(),
            "monitor": {
                "source": CLIENT_ADDR,
                "interval": MONITOR_INTERVAL,
                "pings_before_the_flood": MONITOR_INTRODUCTION,
                "sent": m.sent,
                "answered": m.answered,
                "stack_echo_replies": m.replied,
                "counters": m.verdicts,
                "guard_stats": m.seen.as_ref().map(|(source, passed, dropped)| json!({
                    "source": source, "passed": passed, "dropped": dropped,
                })),
                "flood_frames": m.flood.frames,
                "flood_seconds": m.flood.seconds,
                "source_table": { "tracked": m.fill.tracked, "capacity": m.fill.capacity },
            },
            "floor_ratios": self
                .floor_ratios()
                .into_iter()
                .map(|(key, ratio)| (key.to_owned(), number(ratio)))
                .collect::<serde_json::Map<_, _>>(),
            "targets": self.targets.iter().map(|t| json!({
                "target": t.what,
                "measured": number(t.measured),
                "unit": t.unit,
                "bound": t.bound_text(),
                "met": t.met(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// The median of the rounds' own ratios of `f` of `a` to `f` of `b`: the rounds are
/// interleaved (each runs every case once, in turn), so a ratio is judged per round, not as a
/// ratio of two medians taken from different rounds.
fn round_ratio(live: &Live, a: Case, b: Case, f: fn(&Measured) -> f64) -> f64 {
    median(
        live.rounds(a)
            .iter()
            .zip(live.rounds(b))
            .map(|(a, b)| f(a) / f(b)),
    )
}

/// The source table's fill before the spoofed floods: the least full round.
fn fills(live: &Live) -> String {
    live.fills.iter().min_by_key(|f| f.tracked).map_or_else(
        || "unknown".to_owned(),
        |f| format!("at least {}/{} full", f.tracked, f.capacity),
    )
}

fn monitor_line(m: &Monitor) -> String {
    let seen = m.seen.as_ref().map_or_else(
        || "it is not among the top sources of `icmp-guard stats`".to_owned(),
        |(source, passed, dropped)| {
            format!("icmp-guard stats for {source}: passed {passed}, dropped {dropped}")
        },
    );
    let verdicts = m
        .verdicts
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "monitor: from {CLIENT_ADDR}, {MONITOR_INTRODUCTION} pings before a spoofed flood (so its source is known), then ping -c {MONITOR_PINGS} -i {MONITOR_INTERVAL} started {:.1} s into the flood, which lasts until it ends ({:.2} Mpps sent, source table {}/{}): {}/{} answered; {seen}; the receiver's stack sent {} echo replies meanwhile (the flood's sources have no route back, so these are the monitor's); icmp-guard's counters over the flood: {verdicts}.\n",
        MONITOR_LEAD.as_secs_f64(),
        m.flood.frames as f64 / m.flood.seconds / 1e6,
        m.fill.tracked,
        m.fill.capacity,
        m.answered,
        m.sent,
        m.replied
    )
}

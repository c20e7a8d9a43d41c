//! The cases of the live table and how each is measured.
//!
//! Every round floods each case with the same number of frames: a bare `XDP_DROP` on the
//! receiver, and one that reads two bytes of each frame; the floor of a per-source meter
//! (`xdp_floor`) and icmp-guard, both with icmp-guard's default limits, against one source;
//! icmp-guard against a spoofed flood (a new source per frame) into a full
//! source table; and, without XDP, an nftables per-source meter with icmp-guard's echo limits.
//! The sender writes every frame before it leaves, as a NIC writes each frame it receives; two
//! more cases repeat the reading `XDP_DROP` and icmp-guard's single source with frames it
//! leaves as they are, which the receiving CPU still has in its cache, to show what that
//! write costs. A window around each flood gives the receiver's NAPI CPU time and packets,
//! with BPF run-time statistics off (they add two clock reads to every run of a program); for
//! XDP cases a second flood, with them on, gives the program's own run time.
//! After the rounds, a real `ping` from the client runs through a spoofed flood (the monitor).

use std::{
    process::Stdio,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use aya::sys::{Stats, enable_stats};
use icmp_guard::kernel::clock_tick_ns;
use icmp_guard_common::Config;

use super::{
    generator::{Frames, Generator, Sent, Until},
    receiver::{NftMeter, Receiver, Snapshot, XdpProgram},
};
use crate::{
    lab::{CLIENT_ADDR, GUARDED_ADDR, Lab, ip, ping_summary},
    packet::echo_from,
};

/// Rounds; the table shows medians.
pub const ROUNDS: usize = 5;
/// Frames per case and round.
pub const FLOOD_FRAMES: u64 = 3_000_000;
/// A flood stops after this long even if it has not sent all its frames.
const FLOOD_TIME: Duration = Duration::from_secs(5);
/// The single-source flood's source: a documentation address, no host has it.
pub const FLOOD_SRC: [u8; 4] = [203, 0, 113, 7];
/// The global and admission limits while the source table is prefilled: high enough that
/// every new source is admitted and inserted (admission at most half the global rate, as the
/// CLI requires).
const LIFTED_GLOBAL: &str = "10000000";
const LIFTED_NEW_SOURCE: &str = "4000000";
/// At most this many passes of spoofed frames to fill the source table.
const PREFILL_PASSES: u32 = 32;
/// The table counts as full from this share of its capacity (an LRU map may evict a little
/// before its last slot is used).
const FULL_PERCENT: u64 = 99;
/// The monitor: `ping -c MONITOR_PINGS -i MONITOR_INTERVAL -w MONITOR_DEADLINE`, which stops
/// after that many replies or at the deadline (sending more while replies are missing).
pub const MONITOR_PINGS: u32 = 100;
pub const MONITOR_INTERVAL: &str = "0.2";
const MONITOR_DEADLINE: u32 = 30;
/// Pings the monitor sends before the flood, so its source is known; not counted.
pub const MONITOR_INTRODUCTION: u32 = 3;
/// How long the flood runs before the counted pings start, so that each of them meets it.
pub const MONITOR_LEAD: Duration = Duration::from_millis(500);
/// How long the receiver gets to empty its ring after a flood, before the window closes.
const DRAIN: Duration = Duration::from_millis(50);

/// What the receiver runs, and the frames it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// A bare `XDP_DROP`: the least any XDP program costs.
    XdpDrop,
    /// `XDP_DROP` after reading the ethertype and the IPv4 protocol: what touching the frame
    /// costs, the floor of any program that parses.
    XdpReadDrop,
    /// The floor of any per-source meter whose quotas hold over all CPUs (`xdp_floor`, the
    /// program table's last floor row), with icmp-guard's default echo and global limits, a
    /// flood from one source: it parses only an untagged IPv4 echo, looks the source up in a
    /// shared LRU hash and charges its bucket, and counts the drop in its entry.
    FloorSingle,
    /// icmp-guard with default limits, a flood from one source.
    GuardSingle,
    /// icmp-guard with default limits, a new source per frame, the source table full.
    GuardSpoofed,
    /// No XDP; an nftables ingress meter per source, icmp-guard's echo limits; one source.
    Nft,
    /// [`Case::XdpReadDrop`] on frames the sender leaves as they are ([`Frames::Warm`]).
    XdpReadDropWarm,
    /// [`Case::GuardSingle`] on frames the sender leaves as they are.
    GuardSingleWarm,
}

impl Case {
    pub const ALL: [Self; 8] = [
        Self::XdpDrop,
        Self::XdpReadDrop,
        Self::FloorSingle,
        Self::GuardSingle,
        Self::GuardSpoofed,
        Self::Nft,
        Self::XdpReadDropWarm,
        Self::GuardSingleWarm,
    ];

    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::XdpDrop => "bare XDP_DROP",
            Self::XdpReadDrop => "XDP_DROP, reads frame",
            Self::FloorSingle => "floor, 1 source",
            Self::GuardSingle => "icmp-guard, 1 source",
            Self::GuardSpoofed => "icmp-guard, spoofed",
            Self::Nft => "nftables meter",
            Self::XdpReadDropWarm => "XDP_DROP, reads, warm",
            Self::GuardSingleWarm => "icmp-guard, 1 source, warm",
        }
    }

    /// The case's key in JSON.
    #[must_use]
    pub const fn key(self) -> &'static str {
        match self {
            Self::XdpDrop => "xdp_drop",
            Self::XdpReadDrop => "xdp_read_drop",
            Self::FloorSingle => "floor_single_source",
            Self::GuardSingle => "guard_single_source",
            Self::GuardSpoofed => "guard_spoofed",
            Self::Nft => "nftables_meter",
            Self::XdpReadDropWarm => "xdp_read_drop_warm",
            Self::GuardSingleWarm => "guard_single_source_warm",
        }
    }

    /// The frames the case is flooded with: written by the sender, as a NIC writes every
    /// frame, except in the two warm cases, which show what that costs.
    #[must_use]
    pub const fn frames(self) -> Frames {
        match self {
            Self::GuardSpoofed => Frames::Spoofed,
            Self::XdpReadDropWarm | Self::GuardSingleWarm => Frames::Warm,
            Self::XdpDrop
            | Self::XdpReadDrop
            | Self::FloorSingle
            | Self::GuardSingle
            | Self::Nft => Frames::Written,
        }
    }
}

/// One case in one round: the window around a flood with BPF statistics off, and for an XDP
/// program the window around a second flood with them on.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    /// Frames the generator sent, and for how long.
    pub sent: Sent,
    /// Frames the receiving veth took off its ring.
    pub received: u64,
    /// Echo requests that reached the receiver's ICMP stack.
    pub passed: u64,
    /// CPU time of the receiver's NAPI thread.
    pub napi_ns: u64,
    /// The XDP program's run time and runs, when one is attached: from the second flood.
    pub prog: Option<(u64, u64)>,
    /// The second flood's NAPI CPU time and frames received: what the statistics cost.
    pub with_stats: Option<(u64, u64)>,
}

/// One flood's window.
struct Window {
    sent: Sent,
    received: u64,
    passed: u64,
    napi_ns: u64,
    prog: Option<(u64, u64)>,
}

impl Window {
    fn between(sent: Sent, before: &Snapshot, after: &Snapshot) -> Result<Self> {
        let prog = match (before.prog, after.prog) {
            (Some(b), Some(a)) => {
                ensure!(a.id == b.id, "the XDP program changed during the flood");
                Some((a.run_ns - b.run_ns, a.runs - b.runs))
            }
            (None, None) => None,
            _ => bail!("an XDP program came or went during the flood"),
        };
        Ok(Self {
            sent,
            received: after.rx_packets - before.rx_packets,
            passed: after.in_echos - before.in_echos,
            napi_ns: after.napi_ns - before.napi_ns,
            prog,
        })
    }
}

impl Measured {
    /// The receive path from `plain`; the program's run time from `stats`, if there is one.
    fn of(plain: &Window, stats: Option<&Window>) -> Self {
        Self {
            sent: plain.sent,
            received: plain.received,
            passed: plain.passed,
            napi_ns: plain.napi_ns,
            prog: stats.and_then(|w| w.prog),
            with_stats: stats.map(|w| (w.napi_ns, w.received)),
        }
    }

    /// The whole receive path's CPU ns per received frame with BPF statistics on.
    #[must_use]
    pub fn receive_ns_with_stats(&self) -> Option<f64> {
        self.with_stats
            .map(|(napi_ns, received)| napi_ns as f64 / received.max(1) as f64)
    }

    /// Frames received and not passed to the stack.
    #[must_use]
    pub const fn dropped(&self) -> u64 {
        self.received.saturating_sub(self.passed)
    }

    /// The XDP program's ns per run.
    #[must_use]
    pub fn prog_ns(&self) -> Option<f64> {
        self.prog
            .filter(|(_, runs)| *runs > 0)
            .map(|(ns, runs)| ns as f64 / runs as f64)
    }

    /// The whole receive path's CPU ns per received frame.
    #[must_use]
    pub fn receive_ns(&self) -> f64 {
        self.napi_ns as f64 / self.received.max(1) as f64
    }

    /// The NAPI thread's share of a CPU while the flood ran.
    #[must_use]
    pub fn napi_busy(&self) -> f64 {
        self.napi_ns as f64 / (self.sent.seconds * 1e9)
    }

    /// Frames per second the generator sent.
    #[must_use]
    pub fn sent_pps(&self) -> f64 {
        self.sent.frames as f64 / self.sent.seconds
    }
}

/// How full icmp-guard's source table was.
#[derive(Clone, Copy, Debug)]
pub struct Fill {
    pub tracked: u64,
    pub capacity: u64,
}

/// The monitor's ping through a spoofed flood, followed along its path.
#[derive(Clone, Debug)]
pub struct Monitor {
    /// Echo requests ping sent.
    pub sent: u32,
    /// Replies ping received.
    pub answered: u32,
    /// `stats --json` for the monitor's source: (prefix, passed, dropped), if listed; drops
    /// by its own bucket and by the global budget alike.
    pub seen: Option<(String, u64, u64)>,
    /// Echo replies the receiver's stack sent while the monitor ran (`Icmp: OutEchoReps`):
    /// the monitor's only, since the flood's sources have no route back.
    pub replied: u64,
    /// icmp-guard's counters that moved while the monitor ran (`stats --json`'s `counters`,
    /// after less before), every frame of the flood and of the monitor: by name.
    pub verdicts: std::collections::BTreeMap<String, u64>,
    pub flood: Sent,
    pub fill: Fill,
}

/// Everything the live table shows.
#[derive(Clone, Debug)]
pub struct Live {
    /// Per case, in [`Case::ALL`] order, one measurement per round.
    pub cases: Vec<(Case, Vec<Measured>)>,
    /// The source table before each spoofed round.
    pub fills: Vec<Fill>,
    pub monitor: Monitor,
    /// icmp-guard's default echo limit, which the nftables meter copies.
    pub echo_limit: (u32, u32),
    /// The receiver's NAPI thread.
    pub napi_thread: String,
}

impl Live {
    /// The rounds of `case`.
    #[must_use]
    pub fn rounds(&self, case: Case) -> &[Measured] {
        self.cases
            .iter()
            .find(|(c, _)| *c == case)
            .map_or(&[], |(_, m)| m)
    }
}

/// Runs the live table: builds the lab, measures [`ROUNDS`] rounds of every case and the
/// monitor, and removes the lab (also on failure). `stop` (set on Ctrl-C) ends it early.
pub fn run(stop: &AtomicBool) -> Result<Live> {
    let lab = Lab::new()?;
    ensure!(
        !stats_on()?,
        "kernel.bpf_stats_enabled is 1: BPF run-time statistics add two clock reads to every run of a program, which the receive windows must not count; set it to 0 (the bench turns them on for the program's own windows)"
    );
    let rx = Receiver::setup(&lab.guarded, &lab.guarded_if)?;
    let mut bench = Bench::new(&lab, rx, stop)?;
    let mut cases: Vec<(Case, Vec<Measured>)> = Case::ALL.iter().map(|c| (*c, vec![])).collect();
    let mut fills = Vec::with_capacity(ROUNDS);
    let mut echo_limit = None;
    // icmp-guard's default limits as its attach writes them, for the floor.
    let defaults = Config::with_defaults()
        .derive(clock_tick_ns())
        .context("icmp-guard's default limits")?;
    for _ in 0..ROUNDS {
        for (case, rounds) in &mut cases {
            let frames = case.frames();
            let measured = match case {
                Case::XdpDrop => {
                    let _drop = XdpProgram::bare(&bench.rx)?;
                    bench.measure(frames)?
                }
                Case::XdpReadDrop | Case::XdpReadDropWarm => {
                    let _drop = XdpProgram::reads(&bench.rx)?;
                    bench.measure(frames)?
                }
                Case::FloorSingle => {
                    let _floor = XdpProgram::floor(&bench.rx, defaults.echo, defaults.global)?;
                    bench.measure(frames)?
                }
                Case::GuardSingle | Case::GuardSingleWarm => {
                    bench.attach_guard()?;
                    let measured = bench.defaults(&defaults).and_then(|limit| {
                        echo_limit = Some(limit);
                        bench.measure(frames)
                    });
                    bench.detach_guard()?;
                    measured?
                }
                Case::GuardSpoofed => {
                    bench.attach_guard()?;
                    let measured = bench.prefill().and_then(|fill| {
                        fills.push(fill);
                        bench.measure(frames)
                    });
                    bench.detach_guard()?;
                    measured?
                }
                Case::Nft => {
                    let (rate, burst) = echo_limit.context("icmp-guard's echo limit")?;
                    let _nft =
                        NftMeter::add(&bench.rx, &lab.scratch.file("meter.nft"), rate, burst)?;
                    bench.measure(frames)?
                }
            };
            rounds.push(measured);
        }
    }
    let monitor = bench.monitor()?;
    Ok(Live {
        cases,
        fills,
        monitor,
        echo_limit: echo_limit.context("icmp-guard's echo limit")?,
        napi_thread: bench.rx.napi.name.clone(),
    })
}

/// The lab, the receiver, the generator and the frame they share.
struct Bench<'a> {
    lab: &'a Lab,
    rx: Receiver<'a>,
    generator: Generator,
    /// The sender's veth, in the client namespace.
    ifindex: u32,
    frame: Vec<u8>,
    stop: &'a AtomicBool,
}

impl<'a> Bench<'a> {
    fn new(lab: &'a Lab, rx: Receiver<'a>, stop: &'a AtomicBool) -> Result<Self> {
        let link = ip(&[
            "-n",
            &lab.client.name,
            "-j",
            "link",
            "show",
            "dev",
            &lab.client_if,
        ])?;
        let link: serde_json::Value = serde_json::from_slice(&link.stdout)?;
        let ifindex = link[0]["ifindex"]
            .as_u64()
            .context("the sender's ifindex")?;
        // A 98-byte echo request (ping's size) between the lab's MACs.
        let mut frame = echo_from(FLOOD_SRC);
        frame[..6].copy_from_slice(&mac(&lab.mac(&lab.guarded, &lab.guarded_if)?)?);
        frame[6..12].copy_from_slice(&mac(&lab.mac(&lab.client, &lab.client_if)?)?);
        Ok(Self {
            lab,
            rx,
            generator: Generator::load()?,
            ifindex: u32::try_from(ifindex)?,
            frame,
            stop,
        })
    }

    fn checkpoint(&self) -> Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        Ok(())
    }

    /// Floods the receiver with up to `count` frames, made as `frames` says, within `time`.
    fn flood(&mut self, frames: Frames, count: u64, time: Duration) -> Result<Sent> {
        self.checkpoint()?;
        self.generator.frames(frames)?;
        let until = Until {
            frames: count,
            time,
            stop: self.stop,
        };
        self.generator
            .send(&self.lab.client.name, self.ifindex, &self.frame, &until)
    }

    /// One flood of [`FLOOD_FRAMES`] with BPF statistics off and the receiver's window around
    /// it; then, if an XDP program runs, another with them on, for its run time.
    fn measure(&mut self, frames: Frames) -> Result<Measured> {
        ensure!(!stats_on()?, "BPF run-time statistics were turned on");
        let plain = self.window(frames)?;
        if plain.prog.is_none() {
            return Ok(Measured::of(&plain, None));
        }
        // Counted only while a descriptor holds them on (like `sysctl
        // kernel.bpf_stats_enabled=1`), until it is closed, however the bench ends.
        let stats = enable_stats(Stats::RunTime).context("BPF_ENABLE_STATS")?;
        let with_stats = self.window(frames);
        drop(stats);
        Ok(Measured::of(&plain, Some(&with_stats?)))
    }

    /// One flood of [`FLOOD_FRAMES`], and the receiver's window around it.
    fn window(&mut self, frames: Frames) -> Result<Window> {
        self.rx.napi.pin()?;
        let before = self.rx.snapshot()?;
        let sent = self.flood(frames, FLOOD_FRAMES, FLOOD_TIME)?;
        std::thread::sleep(DRAIN);
        let after = self.rx.snapshot()?;
        Window::between(sent, &before, &after)
    }

    fn attach_guard(&self) -> Result<()> {
        self.lab
            .cli_ok(&["attach", &self.lab.guarded_if, "--mode", "native"])?;
        Ok(())
    }

    fn detach_guard(&self) -> Result<()> {
        self.lab.cli_ok(&["detach", &self.lab.guarded_if])?;
        Ok(())
    }

    /// The guard's entry of `status --json`.
    fn status(&self) -> Result<serde_json::Value> {
        let all = self.lab.status()?;
        all.as_array()
            .and_then(|guards| {
                guards
                    .iter()
                    .find(|g| g["interface"] == self.lab.guarded_if.as_str())
            })
            .cloned()
            .with_context(|| format!("{} not in status: {all}", self.lab.guarded_if))
    }

    /// A limit of `status --json`.
    fn limit(status: &serde_json::Value, name: &str) -> Result<u32> {
        let value = status["limits"][name]
            .as_u64()
            .with_context(|| format!("no limit {name} in status"))?;
        Ok(u32::try_from(value)?)
    }

    /// The attached guard's echo rate and burst, checked to be `defaults`' as its global
    /// limit is: those the floor meters with.
    fn defaults(&self, defaults: &Config) -> Result<(u32, u32)> {
        let status = self.status()?;
        let limit = |rate, burst| -> Result<(u32, u32)> {
            Ok((Self::limit(&status, rate)?, Self::limit(&status, burst)?))
        };
        let (echo, global) = (
            limit("echo_rate", "echo_burst")?,
            limit("global_rate", "global_burst")?,
        );
        ensure!(
            echo == (defaults.echo.rate, defaults.echo.burst)
                && global == (defaults.global.rate, defaults.global.burst),
            "icmp-guard attached with the echo limit {echo:?} and the global limit {global:?}, not its defaults, which the floor meters with"
        );
        Ok(echo)
    }

    fn fill(&self) -> Result<Fill> {
        let status = self.status()?;
        let sources = &status["sources"];
        Ok(Fill {
            tracked: sources["tracked"].as_u64().context("sources tracked")?,
            capacity: sources["capacity"].as_u64().context("sources capacity")?,
        })
    }

    /// Fills the attached guard's source table with spoofed sources: with the global and
    /// admission limits lifted every new source is inserted; then both go back to what they
    /// were.
    fn prefill(&mut self) -> Result<Fill> {
        let status = self.status()?;
        let lab = self.lab;
        let iface = &lab.guarded_if;
        let knobs = [
            "global_rate",
            "global_burst",
            "new_source_rate",
            "new_source_burst",
        ];
        let mut saved = Vec::with_capacity(knobs.len());
        for knob in knobs {
            saved.push(Self::limit(&status, knob)?.to_string());
        }
        let limits = |values: [&str; 4]| {
            lab.cli_ok(&[
                "set",
                iface,
                "--global-rate",
                values[0],
                "--global-burst",
                values[1],
                "--new-source-rate",
                values[2],
                "--new-source-burst",
                values[3],
            ])
        };
        limits([
            LIFTED_GLOBAL,
            LIFTED_GLOBAL,
            LIFTED_NEW_SOURCE,
            LIFTED_NEW_SOURCE,
        ])?;
        let mut fill = self.fill()?;
        for _ in 0..PREFILL_PASSES {
            if fill.tracked * 100 >= fill.capacity * FULL_PERCENT {
                break;
            }
            // Only what is missing (frames are lost on the way in), so the table fills with
            // about as many sources as it holds: all of them are recent to the filter, as
            // on a host whose table filled within the last minute, and no more.
            let missing = fill.capacity.saturating_sub(fill.tracked);
            self.flood(Frames::Spoofed, missing.max(fill.capacity / 64), FLOOD_TIME)?;
            std::thread::sleep(DRAIN);
            fill = self.fill()?;
        }
        limits([&saved[0], &saved[1], &saved[2], &saved[3]])?;
        Ok(fill)
    }

    /// A real ping from the client through a spoofed flood into a full table: how many
    /// replies came back, and what icmp-guard counted for the monitor's source.
    fn monitor(&mut self) -> Result<Monitor> {
        self.attach_guard()?;
        let result = self.monitor_attached();
        self.detach_guard()?;
        result
    }

    fn monitor_attached(&mut self) -> Result<Monitor> {
        let fill = self.prefill()?;
        self.checkpoint()?;
        // Known before the flood: a few answered pings, not counted.
        let introduction = monitor_ping(self.lab, MONITOR_INTRODUCTION)?;
        let (_, introduced) = ping_summary(&introduction)?;
        ensure!(
            introduced == MONITOR_INTRODUCTION,
            "the monitor's pings before the flood: {introduced} of {MONITOR_INTRODUCTION} answered"
        );
        let before = self.rx.snapshot()?;
        let counted_before = self.lab.stats()?;
        let done = AtomicBool::new(false);
        self.generator.frames(Frames::Spoofed)?;
        let (generator, lab) = (&self.generator, self.lab);
        let (ifindex, frame) = (self.ifindex, &self.frame);
        let (flood, out) = std::thread::scope(|s| {
            let flood = s.spawn(|| {
                let until = Until {
                    frames: u64::MAX,
                    time: Duration::from_secs(MONITOR_DEADLINE.into()) + 2 * MONITOR_LEAD,
                    stop: &done,
                };
                generator.send(&lab.client.name, ifindex, frame, &until)
            });
            // Every counted ping meets the flood: it runs before the first and until the last
            // has its answer or its deadline (ping ends by itself, after its count of replies
            // or its deadline).
            std::thread::sleep(MONITOR_LEAD);
            let out = if flood.is_finished() {
                Err(anyhow!("the flood ended before the monitor started"))
            } else {
                monitor_ping(lab, MONITOR_PINGS)
            };
            let ended_first = flood.is_finished();
            done.store(true, Ordering::Relaxed);
            (
                flood.join(),
                out.and_then(|out| {
                    ensure!(
                        !ended_first,
                        "the flood ended before the monitor's last ping"
                    );
                    Ok(out)
                }),
            )
        });
        let flood = flood.map_err(|_| anyhow!("the flood thread panicked"))??;
        let (sent, answered) = ping_summary(&out?)?;
        let after = self.rx.snapshot()?;
        let stats = self.lab.stats()?;
        let verdicts = counters_moved(&counted_before, &stats)?;
        let prefix = format!("{CLIENT_ADDR}/");
        let seen = stats["top_sources"].as_array().and_then(|top| {
            top.iter().find_map(|s| {
                let source = s["source"].as_str()?;
                (source == CLIENT_ADDR || source.starts_with(&prefix)).then(|| {
                    (
                        source.to_owned(),
                        s["passed"].as_u64().unwrap_or(0),
                        s["dropped"].as_u64().unwrap_or(0),
                    )
                })
            })
        });
        Ok(Monitor {
            sent,
            answered,
            seen,
            replied: after.out_echo_reps - before.out_echo_reps,
            verdicts,
            flood,
            fill,
        })
    }
}

/// The counters of `stats --json` that moved from `before` to `after`, by name.
fn counters_moved(
    before: &serde_json::Value,
    after: &serde_json::Value,
) -> Result<std::collections::BTreeMap<String, u64>> {
    let counters = |stats: &serde_json::Value| {
        stats["counters"]
            .as_object()
            .context("stats --json has counters")
            .cloned()
    };
    let (before, after) = (counters(before)?, counters(after)?);
    let mut moved = std::collections::BTreeMap::new();
    for (name, n) in &after {
        let now = n.as_u64().context("a counter is a number")?;
        // A counter new since (a newer program swapped in) started at 0.
        let was = before
            .get(name)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let by = now.checked_sub(was).with_context(|| {
            format!("counter {name} went down, from {was} to {now}: the guard was attached anew")
        })?;
        if by > 0 {
            moved.insert(name.clone(), by);
        }
    }
    Ok(moved)
}

/// The monitor's `ping -c count` from the client to the guarded side, run to its end.
fn monitor_ping(lab: &Lab, count: u32) -> Result<std::process::Output> {
    lab.ping_command(GUARDED_ADDR, count, MONITOR_INTERVAL, MONITOR_DEADLINE)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .context("running ping")
}

/// "aa:bb:cc:dd:ee:ff" as bytes.
fn mac(text: &str) -> Result<[u8; 6]> {
    let bytes = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<Vec<u8>, _>>()
        .with_context(|| format!("MAC {text}"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow!("MAC {text}: not 6 bytes"))
}

/// Whether BPF run-time statistics are on (`kernel.bpf_stats_enabled`, which also reads 1 while
/// a `BPF_ENABLE_STATS` descriptor is open).
fn stats_on() -> Result<bool> {
    let path = "/proc/sys/kernel/bpf_stats_enabled";
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    Ok(text.trim() != "0")
}

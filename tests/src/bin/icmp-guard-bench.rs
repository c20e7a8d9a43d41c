//! `cargo xtask bench`: ns per packet through `BPF_PROG_TEST_RUN`, icmp-guard against a bare
//! `XDP_PASS` program measured in the same run on the same frame.
//!
//! The cases are the fixture table's rows tagged `Tag::Bench`: each row's last frame, under
//! the row's config and checked against the row's verdict. The thread is pinned to one CPU;
//! each round runs every case in turn on both programs with `REPEAT` repetitions and takes
//! the thread's CPU time per packet; the table shows medians over `ROUNDS` rounds, the median
//! of the per-round differences in ns, the ratio of the medians, and the difference of the
//! fastest rounds (`least`): the machine's neighbours only ever add time, so a program's
//! fastest round is its cost with the least of them. Rounds are short and many, so some of
//! them are likely to fall where the machine runs at full speed. The capture table uses the
//! same rounds.
//!
//! A second table checks that a source gets its quota once however many CPUs see it: on a lab
//! veth with one and with two receive queues, one source floods from two CPUs at once, and the
//! packets that passed are compared with what one bucket allows over the same time (median of
//! rounds).
//!
//! A third, the live table ([`icmp_guard_tests::live`]), sends real frames through a veth pair
//! and costs what the receiving CPU spends on them: icmp-guard against a bare `XDP_DROP` and
//! an nftables meter, and a monitoring ping through a spoofed flood.
//!
//! `--json` prints all four as one JSON object instead of the tables. Ctrl-C stops the live
//! table and removes its lab.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context as _, Result, ensure};
use aya::{
    Ebpf,
    maps::{Array, MapData, RingBuf},
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use clap::Parser;
use icmp_guard::kernel::object;
use icmp_guard_common::{
    Config, Limit,
    bucket::MAX_RATE,
    capture::{self, Control},
    config::flags,
    floor, maps,
};
use icmp_guard_tests::{
    fixtures::{Tag, Verdict, cases},
    harness::{load_floor, load_programs},
    lab::{Lab, monotonic_ns, pin_to_current_cpu, sending_span},
    live::{self, report::Summary},
};
use serde_json::{Value, json};

const ROUNDS: usize = 45;
const REPEAT: u32 = 200_000;

/// A fixture row as the benchmark runs it.
struct Case {
    what: &'static str,
    frame: Vec<u8>,
    config: Config,
    verdict: Verdict,
}

/// The fixture table's rows tagged `Tag::Bench`, in table order: the last frame of each, with
/// the row's config (limits lifted where the tag says so) and verdict.
fn bench_cases() -> Result<Vec<Case>> {
    let lifted = Limit::new(MAX_RATE, u32::MAX).context("limit")?;
    let mut out = Vec::new();
    for row in cases() {
        for tag in &row.tags {
            let Tag::Bench { name, lift_limits } = *tag else {
                continue;
            };
            ensure!(
                row.allow.is_empty() && row.deny.is_empty(),
                "{name}: the benchmark loads no allow or deny list"
            );
            let config = row.effective_config();
            out.push(Case {
                what: name,
                frame: row
                    .steps
                    .last()
                    .context("a row sends a frame")?
                    .frame
                    .clone(),
                config: if lift_limits {
                    Config {
                        echo: lifted,
                        global: lifted,
                        new_source: lifted,
                        exempt: lifted,
                        ..config
                    }
                } else {
                    config
                },
                verdict: row.verdict,
            });
        }
    }
    ensure!(!out.is_empty(), "no fixture row is tagged Bench");
    Ok(out)
}

#[derive(Parser)]
#[command(about = "icmp-guard benchmarks: ns per packet, per-CPU quota, live traffic (needs root)")]
struct Args {
    /// Print the whole bench as one JSON object instead of tables
    #[arg(long)]
    json: bool,
    /// Run only these tables (repeat the flag, or separate with commas); all by default
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Table>,
    /// Also run the program table on another build of the XDP program, interleaved with this
    /// one, and show the difference: its object file, e.g. another checkout's
    /// target/release/build/icmp-guard-*/out/icmp-guard (the config layouts must match: only
    /// their sizes are checked)
    #[arg(long, value_name = "OBJECT")]
    compare: Option<std::path::PathBuf>,
}

/// The bench's tables, in the order they run.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Table {
    /// ns per packet through `BPF_PROG_TEST_RUN`, against a bare `XDP_PASS`
    Programs,
    /// the drop path in each state a capture can leave it in
    Capture,
    /// one source flooding from two CPUs against one bucket's allowance
    Quota,
    /// real frames through a veth pair: receive cost, nftables, the monitor
    Live,
}

impl Args {
    fn wants(&self, table: Table) -> bool {
        self.only.is_empty() || self.only.contains(&table)
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn main() -> Result<()> {
    let args = Args::parse();
    // SAFETY: installs an async-signal-safe handler that only stores to an atomic.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    // The program tables run on a thread pinned to one CPU; the lab measurements need all.
    let programs = if args.wants(Table::Programs) {
        Some(
            std::thread::spawn({
                let compare = args.compare.clone();
                move || program_table(compare.as_deref())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the benchmark thread panicked"))??,
        )
    } else {
        None
    };
    let capture = if args.wants(Table::Capture) {
        Some(
            std::thread::spawn(capture_table)
                .join()
                .map_err(|_| anyhow::anyhow!("the capture benchmark thread panicked"))??,
        )
    } else {
        None
    };
    if !args.json {
        if let Some(programs) = &programs {
            print!("{}", programs_text(programs));
            println!();
            print!("{}", floors_text(programs));
            println!();
        }
        if let Some(capture) = &capture {
            print!("{}", capture_text(capture));
            println!();
        }
    }
    interrupted()?;
    let cpus = aya::util::online_cpus().map_or(1, |c| c.len());
    let quota = if !args.wants(Table::Quota) || cpus < 2 {
        None
    } else {
        Some(shared_quota()?)
    };
    if !args.json && args.wants(Table::Quota) {
        match &quota {
            Some(rows) => print!("{}", quota_text(rows)),
            None => println!("per-CPU quota: skipped, this machine has one CPU"),
        }
        println!();
    }
    interrupted()?;
    let live = if !args.wants(Table::Live) || cpus < 2 {
        None
    } else {
        Some(live::bench::run(&INTERRUPTED).context("the live table")?)
    };
    let live = live.as_ref().map(Summary::new);
    if args.json {
        let json = json!({
            "programs": programs.as_ref().map(programs_json),
            "capture": capture.as_deref().map(capture_json),
            "shared_quota": quota.as_deref().map(quota_json),
            "live": live.as_ref().map(Summary::json),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else if args.wants(Table::Live) {
        match &live {
            Some(live) => print!("{}", live.text()),
            None => println!("live traffic: skipped, this machine has one CPU"),
        }
    }
    Ok(())
}

fn interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        anyhow::bail!("interrupted");
    }
    Ok(())
}

/// The program table and its floor rows.
struct Programs {
    rows: Vec<ProgramRow>,
    floors: Vec<FloorRow>,
}

/// A row of the program table: medians of ns per packet, and of the difference per round.
struct ProgramRow {
    what: &'static str,
    ours: f64,
    baseline: f64,
    diff: f64,
    /// icmp-guard's fastest round less `XDP_PASS`'s fastest round on the same frame.
    least: f64,
    /// The difference of each round, in the order run.
    rounds: Vec<f64>,
    /// With `--compare`: the other build's median, and the median of the per-round
    /// differences of this build to it.
    other: Option<(f64, f64)>,
}

/// The bench cases the floor programs run.
const FLOOR_PASS_CASE: &str = "TCP frame";
const FLOOR_ECHO_CASE: &str = "echo within quota";

/// The programs of `xdp-floor`: a frame with nothing done to it but what the targets require
/// (see that program's docs).
#[derive(Clone, Copy)]
enum Floor {
    /// A frame that is not ICMP: read the ethertype and the protocol, count, pass.
    Pass,
    /// An echo within quota: parse, clock, the shared per-source LRU hash and one
    /// compare-and-swap on its bucket.
    Source,
    /// And a token of the global budget, taken ahead as icmp-guard takes it, and the source's
    /// count of passed packets.
    GlobalAndCount,
}

impl Floor {
    const ALL: [Self; 3] = [Self::Pass, Self::Source, Self::GlobalAndCount];

    const fn program(self) -> &'static str {
        match self {
            Self::Pass => floor::PASS_PROGRAM,
            Self::Source => floor::SOURCE_PROGRAM,
            Self::GlobalAndCount => floor::METER_PROGRAM,
        }
    }

    /// The bench case it runs.
    const fn case(self) -> &'static str {
        match self {
            Self::Pass => FLOOR_PASS_CASE,
            Self::Source | Self::GlobalAndCount => FLOOR_ECHO_CASE,
        }
    }

    const fn label(self) -> &'static str {
        match self {
            Self::Pass => "read ethertype, protocol, count, pass",
            Self::Source => "parse, clock, LRU lookup, source CAS",
            Self::GlobalAndCount => "  + global token, passed count",
        }
    }
}

/// A floor row: the floor program's median ns per packet, the median of its per-round
/// differences to `XDP_PASS`, and its fastest round less `XDP_PASS`'s.
struct FloorRow {
    floor: Floor,
    ns: f64,
    diff: f64,
    least: f64,
    /// The difference of each round to `XDP_PASS`, in the order run.
    rounds: Vec<f64>,
}

/// The `xdp-floor` object with its programs loaded and its limits set to those of the echo
/// `case`.
fn load_floors(case: &Case) -> Result<Ebpf> {
    load_floor(
        &Floor::ALL.map(Floor::program),
        case.config.echo,
        case.config.global,
    )
}

/// Runs the floor programs whose case is `case` once (`REPEAT` frames after a warm-up),
/// adding their ns per packet and their difference to this round's `XDP_PASS` figure.
fn run_floors(
    programs: &Ebpf,
    case: &Case,
    baseline_ns: f64,
    floors: &mut [Vec<f64>],
    diffs: &mut [Vec<f64>],
) -> Result<()> {
    for (f, floor) in Floor::ALL.into_iter().enumerate() {
        if floor.case() != case.what {
            continue;
        }
        run(programs, floor.program(), &case.frame, 1000)?;
        let (ns, action) = run(programs, floor.program(), &case.frame, REPEAT)?;
        ensure!(
            action == case.verdict.action(),
            "floor {}: got action {action}",
            floor.label()
        );
        floors[f].push(ns);
        diffs[f].push(ns - baseline_ns);
    }
    Ok(())
}

fn program_table(compare: Option<&std::path::Path>) -> Result<Programs> {
    pin_to_current_cpu()?;
    let mut guard = load_guard()?;
    let base = load(object::XDP_PASS, "xdp_pass")?;
    let mut other = compare.map(load_compared).transpose()?;
    let cases = bench_cases()?;
    for floor in Floor::ALL {
        ensure!(
            cases.iter().any(|c| c.what == floor.case()),
            "the floor case {:?} is a Bench row",
            floor.case()
        );
    }
    let echo_case = cases
        .iter()
        .find(|c| c.what == FLOOR_ECHO_CASE)
        .context("the echo floor case")?;
    let floor_programs = load_floors(echo_case)?;
    let mut floors = vec![Vec::with_capacity(ROUNDS); Floor::ALL.len()];
    let mut floor_diffs = vec![Vec::with_capacity(ROUNDS); Floor::ALL.len()];
    let mut ours = vec![Vec::with_capacity(ROUNDS); cases.len()];
    let mut baseline = vec![Vec::with_capacity(ROUNDS); cases.len()];
    let mut others = vec![Vec::with_capacity(ROUNDS); cases.len()];
    // Rounds outside, cases inside: a burst of noise from the machine's neighbours then
    // lands on every case, not on the rounds of one.
    for round in 0..ROUNDS {
        for (i, case) in cases.iter().enumerate() {
            // Warmed up as the programs are below, so the pairs differ only in the program.
            run(&base, "xdp_pass", &case.frame, 1000)?;
            baseline[i].push(run(&base, "xdp_pass", &case.frame, REPEAT)?.0);
            let mut builds = [
                Some((&mut guard, &mut ours[i])),
                other.as_mut().map(|o| (o, &mut others[i])),
            ];
            // The compared build first every other round, so neither always runs second.
            if round % 2 == 1 {
                builds.reverse();
            }
            for (ebpf, into) in builds.into_iter().flatten() {
                let mut cfg: Array<&mut MapData, Config> =
                    Array::try_from(ebpf.map_mut(maps::CONFIG).context("config map")?)
                        .context("the config map (do the builds share its layout?)")?;
                cfg.set(0, case.config, 0)?;
                // Warm up (and bring the source's bucket to the case's state), checking the
                // verdict is the intended one.
                let action = run(ebpf, maps::PROGRAM, &case.frame, 1000)?.1;
                ensure!(
                    action == case.verdict.action(),
                    "{}: got action {action}",
                    case.what
                );
                let (ns, action) = run(ebpf, maps::PROGRAM, &case.frame, REPEAT)?;
                ensure!(
                    action == case.verdict.action(),
                    "{}: got action {action}",
                    case.what
                );
                into.push(ns);
            }
            run_floors(
                &floor_programs,
                case,
                baseline[i][round],
                &mut floors,
                &mut floor_diffs,
            )?;
        }
    }
    // Differences paired round by round: the runs of a round share its noise.
    let paired =
        |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(a, b)| a - b).collect() };
    let rows = cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let rounds = paired(&ours[i], &baseline[i]);
            ProgramRow {
                what: case.what,
                ours: median(&mut ours[i].clone()),
                baseline: median(&mut baseline[i].clone()),
                diff: median(&mut rounds.clone()),
                least: fastest(&ours[i]) - fastest(&baseline[i]),
                rounds,
                other: other.is_some().then(|| {
                    (
                        median(&mut others[i].clone()),
                        median(&mut paired(&ours[i], &others[i])),
                    )
                }),
            }
        })
        .collect();
    Ok(Programs {
        rows,
        floors: floor_rows(&cases, &floors, &floor_diffs, &baseline)?,
    })
}

/// The floor rows from each floor's rounds (`floors`, `diffs`: ns and difference to
/// `XDP_PASS` per round) and the `XDP_PASS` rounds of every case (`baseline`).
fn floor_rows(
    cases: &[Case],
    floors: &[Vec<f64>],
    diffs: &[Vec<f64>],
    baseline: &[Vec<f64>],
) -> Result<Vec<FloorRow>> {
    Floor::ALL
        .into_iter()
        .zip(floors.iter().zip(diffs))
        .map(|(floor, (ns, diffs))| {
            let case = cases
                .iter()
                .position(|c| c.what == floor.case())
                .context("the floor's case")?;
            Ok(FloorRow {
                floor,
                ns: median(&mut ns.clone()),
                diff: median(&mut diffs.clone()),
                least: fastest(ns) - fastest(&baseline[case]),
                rounds: diffs.clone(),
            })
        })
        .collect()
}

fn programs_text(Programs { rows, .. }: &Programs) -> String {
    let compared = rows.iter().any(|r| r.other.is_some());
    let mut out = format!(
        "BPF_PROG_TEST_RUN, {REPEAT} packets x {ROUNDS} rounds, cases interleaved in each round, thread CPU time, medians (diff: of the per-round differences; least: fastest round less XDP_PASS's fastest)\n{:<24} {:>12} {:>12} {:>10} {:>8} {:>10}",
        "case", "icmp-guard", "XDP_PASS", "diff", "ratio", "least"
    );
    if compared {
        let _ = write!(out, " {:>12} {:>10}", "--compare", "vs it");
    }
    out.push('\n');
    for r in rows {
        let _ = write!(
            out,
            "{:<24} {:>9.1} ns {:>9.1} ns {:>+7.1} ns {:>7.2}x {:>+7.1} ns",
            r.what,
            r.ours,
            r.baseline,
            r.diff,
            r.ours / r.baseline,
            r.least
        );
        if let Some((other, vs)) = r.other {
            let _ = write!(out, " {other:>9.1} ns {vs:>+7.1} ns");
        }
        out.push('\n');
    }
    out
}

fn programs_json(Programs { rows, floors }: &Programs) -> Value {
    json!({
        "method": "BPF_PROG_TEST_RUN, thread CPU time per packet, medians; diff_ns the median of the per-round differences; least_diff_ns the fastest round less XDP_PASS's fastest round",
        "packets": REPEAT,
        "rounds": ROUNDS,
        "cases": rows.iter().map(|r| json!({
            "case": r.what,
            "icmp_guard_ns": r.ours,
            "xdp_pass_ns": r.baseline,
            "diff_ns": r.diff,
            "least_diff_ns": r.least,
            "round_diffs_ns": r.rounds,
            "ratio": r.ours / r.baseline,
            "compared_ns": r.other.map(|o| o.0),
            "diff_to_compared_ns": r.other.map(|o| o.1),
        })).collect::<Vec<_>>(),
        "floors": floors.iter().map(|f| json!({
            "floor": f.floor.label().trim_start(),
            "program": f.floor.program(),
            "case": f.floor.case(),
            "ns": f.ns,
            "diff_ns": f.diff,
            "least_diff_ns": f.least,
            "round_diffs_ns": f.rounds,
        })).collect::<Vec<_>>(),
    })
}

/// The floor rows, each followed by icmp-guard's own row on its case for comparison.
fn floors_text(Programs { rows, floors }: &Programs) -> String {
    let mut out = format!(
        "the least a frame can cost: programs doing only what the targets require, on the same frames in the same rounds (xdp-floor)\n{:<38} {:<18} {:>12} {:>10} {:>10}\n",
        "floor", "frame", "ns", "diff", "least"
    );
    let mut line = |what: &str, case: &str, ns: f64, diff: f64, least: f64| {
        let _ = writeln!(
            out,
            "{what:<38} {case:<18} {ns:>9.1} ns {diff:>+7.1} ns {least:>+7.1} ns"
        );
    };
    for (i, f) in floors.iter().enumerate() {
        line(f.floor.label(), f.floor.case(), f.ns, f.diff, f.least);
        let last_of_case = floors
            .get(i + 1)
            .is_none_or(|next| next.floor.case() != f.floor.case());
        if let Some(ours) = rows.iter().find(|r| r.what == f.floor.case())
            && last_of_case
        {
            line("icmp-guard", ours.what, ours.ours, ours.diff, ours.least);
        }
    }
    out
}

/// The drop-path case the capture table measures.
const CAPTURE_CASE: &str = "echo over quota";

/// The states of a capture the drop path is measured in.
#[derive(Clone, Copy)]
enum CaptureState {
    /// No capture: the flag is clear (the cost every guard pays).
    Off,
    /// The flag left set by a capture killed with SIGKILL, its lease run out.
    Expired,
    /// A capture at the default rate: most drops of a flood meet the sample bucket empty.
    DefaultRate,
    /// A capture sampling every drop with no reader: the ring fills and drops are lost.
    RingFull,
}

impl CaptureState {
    const ALL: [Self; 4] = [Self::Off, Self::Expired, Self::DefaultRate, Self::RingFull];

    fn label(self) -> &'static str {
        match self {
            Self::Off => "off (flag clear)",
            Self::Expired => "lease expired (SIGKILL)",
            Self::DefaultRate => "on, 1000 samples/s",
            Self::RingFull => "on, every drop, ring full",
        }
    }

    /// The flags and capture control of this state, over `config`.
    fn apply(self, config: Config) -> Result<(Config, Control)> {
        let now = monotonic_ns();
        let rate = match self {
            Self::RingFull => MAX_RATE,
            _ => capture::DEFAULT_RATE,
        };
        let control = Control {
            lease_until_ns: match self {
                Self::Expired => 1,
                _ => now + 3_600_000_000_000,
            },
            limit: Limit::new(rate, capture::burst_of(rate)).context("capture limit")?,
            tat_ns: 0,
            lost: 0,
            over_rate: 0,
            reasons: Control::drops(),
            snaplen: capture::MAX_SNAPLEN,
        };
        let flags = match self {
            Self::Off => config.flags & !flags::CAPTURE_BITS,
            _ => config.flags | flags::CAPTURE,
        };
        Ok((Config { flags, ..config }, control))
    }
}

/// A row of the capture table: the drop path's median ns per packet in one state.
struct CaptureRow {
    state: CaptureState,
    ns: f64,
    /// The median of the per-round differences to the first state's run.
    vs_off: f64,
}

/// The drop path (`CAPTURE_CASE`) in each capture state, the states interleaved in every
/// round so they share the machine's noise.
fn capture_table() -> Result<Vec<CaptureRow>> {
    pin_to_current_cpu()?;
    let case = bench_cases()?
        .into_iter()
        .find(|c| c.what == CAPTURE_CASE)
        .context("the capture case is a Bench row")?;
    let mut guard = load_guard()?;
    // Drained before each state, so each starts with an empty ring (no reader runs while a
    // state is measured: a state that samples more than the ring holds then loses the rest).
    let mut ring = RingBuf::try_from(guard.take_map(maps::CAPTURE).context("capture ring")?)?;
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); CaptureState::ALL.len()];
    for _ in 0..ROUNDS {
        for (i, state) in CaptureState::ALL.into_iter().enumerate() {
            let (config, control) = state.apply(case.config)?;
            let mut cfg: Array<&mut MapData, Config> =
                Array::try_from(guard.map_mut(maps::CONFIG).context("config map")?)?;
            cfg.set(0, config, 0)?;
            let mut ctl: Array<&mut MapData, Control> = Array::try_from(
                guard
                    .map_mut(maps::CAPTURE_CTL)
                    .context("capture control map")?,
            )?;
            ctl.set(0, control, 0)?;
            while ring.next().is_some() {}
            // Warm up: the source's bucket empties, so every frame is dropped.
            run(&guard, maps::PROGRAM, &case.frame, 1000)?;
            let (ns, action) = run(&guard, maps::PROGRAM, &case.frame, REPEAT)?;
            ensure!(
                action == case.verdict.action(),
                "{}, capture {}: got action {action}",
                case.what,
                state.label()
            );
            samples[i].push(ns);
        }
    }
    let off = samples[0].clone();
    Ok(CaptureState::ALL
        .into_iter()
        .zip(samples.iter_mut())
        .map(|(state, s)| {
            let mut diffs: Vec<f64> = s.iter().zip(&off).map(|(a, b)| a - b).collect();
            CaptureRow {
                state,
                ns: median(s),
                vs_off: median(&mut diffs),
            }
        })
        .collect())
}

fn capture_text(rows: &[CaptureRow]) -> String {
    let mut out = format!(
        "capture on the drop path ({CAPTURE_CASE}), states interleaved, {REPEAT} packets x {ROUNDS} rounds, medians (vs off: of the per-round differences)\n{:<28} {:>12} {:>10}\n",
        "capture", "icmp-guard", "vs off"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<28} {:>9.1} ns {:>+7.1} ns",
            r.state.label(),
            r.ns,
            r.vs_off
        );
    }
    out
}

fn capture_json(rows: &[CaptureRow]) -> Value {
    json!({
        "case": CAPTURE_CASE,
        "states": rows.iter().map(|r| json!({
            "capture": r.state.label(),
            "icmp_guard_ns": r.ns,
            "vs_off_ns": r.vs_off,
        })).collect::<Vec<_>>(),
    })
}

/// Echo limit of the per-CPU measurement.
const LAB_RATE: f64 = 10.0;
const LAB_BURST: f64 = 20.0;
const LAB_FLOOD: u32 = 2000;
/// Each CPU's flood a second: 8000, so the 2000 frames of each last a quarter of a second,
/// sent together.
const LAB_PPS: u32 = 8000;
const LAB_ROUNDS: usize = 5;

/// A row of the per-CPU quota table: the median round of one queue count.
struct QuotaRow {
    queues: u32,
    passed: u64,
    allowed: f64,
    ratio: f64,
}

fn shared_quota() -> Result<Vec<QuotaRow>> {
    let mut rows = Vec::with_capacity(2);
    for queues in [1, 2] {
        let mut rounds = Vec::with_capacity(LAB_ROUNDS);
        for _ in 0..LAB_ROUNDS {
            rounds.push(flood_from_two_cpus(queues)?);
        }
        rounds.sort_by(|a, b| a.2.total_cmp(&b.2));
        let (passed, allowed, ratio) = rounds[rounds.len() / 2];
        rows.push(QuotaRow {
            queues,
            passed,
            allowed,
            ratio,
        });
    }
    Ok(rows)
}

fn quota_text(rows: &[QuotaRow]) -> String {
    let mut out = format!(
        "shared buckets: one source floods {LAB_FLOOD} echoes from each of CPUs 0 and 1 at once, {LAB_PPS}/s each (lab veth, native XDP, echo {LAB_RATE}/s burst {LAB_BURST}), the round of median ratio of {LAB_ROUNDS}\n{:<10} {:>8} {:>8} {:>18} {:>8}\n",
        "rx queues", "sent", "passed", "one bucket allows", "ratio"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<10} {:>8} {:>8} {:>18.1} {:>7.2}x",
            r.queues,
            2 * LAB_FLOOD,
            r.passed,
            r.allowed,
            r.ratio
        );
    }
    out
}

fn quota_json(rows: &[QuotaRow]) -> Value {
    json!({
        "flood_per_cpu": LAB_FLOOD,
        "pps_per_cpu": LAB_PPS,
        "echo_rate": LAB_RATE,
        "echo_burst": LAB_BURST,
        "rounds": LAB_ROUNDS,
        "queues": rows.iter().map(|r| json!({
            "rx_queues": r.queues,
            "sent": 2 * LAB_FLOOD,
            "passed": r.passed,
            "one_bucket_allows": r.allowed,
            "ratio": r.ratio,
        })).collect::<Vec<_>>(),
    })
}

/// Returns (passed, what one bucket allows over the flood's time, their ratio).
fn flood_from_two_cpus(queues: u32) -> Result<(u64, f64, f64)> {
    let lab = Lab::with_queues(queues)?;
    lab.silence_client()?;
    let iface = lab.guarded_if.as_str();
    lab.cli_ok(&[
        "attach",
        iface,
        "--mode",
        "native",
        "--echo-rate",
        "10",
        "--echo-burst",
        "20",
    ])?;
    let (count, pps) = (LAB_FLOOD.to_string(), LAB_PPS.to_string());
    // Checked to have sent together, and to have been judged on both CPUs (with two queues,
    // each CPU's frames on a queue of their own): see `Lab::flood_from_cpus`.
    let reports = lab.flood_from_cpus(
        iface,
        &[0, 1],
        &["--kind", "echo", "--count", &count, "--pps", &pps],
        u64::from(LAB_FLOOD),
    )?;
    let stats = lab.stats()?;
    let passed = stats["counters"]["passed"]
        .as_u64()
        .context("passed counter")?;
    // The flood's own time, from the first frame sent to the last: the bucket was full
    // before it.
    let seconds = sending_span(&reports)?.as_secs_f64();
    let allowed = LAB_BURST + LAB_RATE * seconds;
    Ok((passed, allowed, passed as f64 / allowed))
}

/// Loads icmp-guard as the product does.
fn load_guard() -> Result<Ebpf> {
    load_programs(object::loader().load(object::ICMP_GUARD)?, &[maps::PROGRAM])
}

/// Loads another build of icmp-guard from `path` for `--compare`, told the CPU count like
/// this one.
fn load_compared(path: &std::path::Path) -> Result<Ebpf> {
    // An older build may not read the CPU count: then it takes one token at a time.
    let cpus = object::possible_cpus();
    let ebpf = aya::EbpfLoader::new()
        .override_global(maps::POSSIBLE_CPUS, &cpus, false)
        .load_file(path)
        .with_context(|| format!("loading {}", path.display()))?;
    load_programs(ebpf, &[maps::PROGRAM])
}

fn load(object: &[u8], program: &str) -> Result<Ebpf> {
    load_programs(Ebpf::load(object)?, &[program])
}

/// Runs `frame` `repeat` times; returns CPU ns per packet and the action.
fn run(ebpf: &Ebpf, program: &str, frame: &[u8], repeat: u32) -> Result<(f64, u32)> {
    let prog: &Xdp = ebpf
        .program(program)
        .context("program in object")?
        .try_into()?;
    let mut out = vec![0u8; frame.len() + 256];
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(&mut out);
    opts.repeat = repeat;
    let start = thread_cpu_ns();
    let result = prog.test_run(opts)?;
    let spent = thread_cpu_ns() - start;
    Ok((spent as f64 / f64::from(repeat), result.return_value))
}

/// The fastest of a program's rounds: its cost with the least of the machine's noise, which
/// only ever adds time.
fn fastest(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn thread_cpu_ns() -> u64 {
    // SAFETY: zeroed timespec is valid; clock_gettime writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    ts.tv_sec.cast_unsigned() * 1_000_000_000 + ts.tv_nsec.cast_unsigned()
}

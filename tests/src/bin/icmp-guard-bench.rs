//! `cargo xtask bench`: ns per packet through `BPF_PROG_TEST_RUN`, icmp-guard against a bare
//! `XDP_PASS` program measured in the same run on the same frame.
//!
//! The cases are the fixture table's rows tagged `Tag::Bench`: each row's last frame, under
//! the row's config and checked against the row's verdict. The thread is pinned to one CPU;
//! each round runs every case on both programs with `REPEAT` repetitions and takes the
//! thread's CPU time per packet; the table shows medians over `ROUNDS` rounds, the difference
//! in ns and the ratio.
//!
//! A second table checks that a source gets its quota once however many CPUs see it: on a lab veth with one
//! and with two receive queues, one source floods from two CPUs at once, and the packets that
//! passed are compared with what one bucket allows over the same time (median of rounds).

use std::{process::Stdio, time::Instant};

use anyhow::{Context as _, Result, ensure};
use aya::{
    Ebpf,
    maps::{Array, MapData},
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use icmp_guard::kernel::object;
use icmp_guard_common::{Config, Limit, bucket::MAX_RATE, maps};
use icmp_guard_tests::{
    fixtures::{Tag, Verdict, cases},
    lab::{Lab, pin_thread_to},
};

const ROUNDS: usize = 9;
const REPEAT: u32 = 1_000_000;

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

fn main() -> Result<()> {
    // The program table runs on a thread pinned to one CPU; the lab measurement needs all.
    std::thread::spawn(program_table)
        .join()
        .map_err(|_| anyhow::anyhow!("the benchmark thread panicked"))??;
    per_cpu_quota()
}

fn program_table() -> Result<()> {
    pin_to_current_cpu()?;
    let mut guard = load(object::ICMP_GUARD, maps::PROGRAM)?;
    let base = load(object::XDP_PASS, "xdp_pass")?;
    let cases = bench_cases()?;

    println!("BPF_PROG_TEST_RUN, {REPEAT} packets x {ROUNDS} rounds, thread CPU time, medians");
    println!(
        "{:<24} {:>12} {:>12} {:>10} {:>8}",
        "case", "icmp-guard", "XDP_PASS", "diff", "ratio"
    );
    for case in &cases {
        let mut cfg: Array<&mut MapData, Config> =
            Array::try_from(guard.map_mut(maps::CONFIG).context("config map")?)?;
        cfg.set(0, case.config, 0)?;
        // Warm up (and create the source's bucket), checking the verdict is the intended one.
        let action = run(&guard, maps::PROGRAM, &case.frame, 1000)?.1;
        ensure!(
            action == case.verdict.action(),
            "{}: got action {action}",
            case.what
        );
        let mut ours = Vec::with_capacity(ROUNDS);
        let mut baseline = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            baseline.push(run(&base, "xdp_pass", &case.frame, REPEAT)?.0);
            let (ns, action) = run(&guard, maps::PROGRAM, &case.frame, REPEAT)?;
            ensure!(
                action == case.verdict.action(),
                "{}: got action {action}",
                case.what
            );
            ours.push(ns);
        }
        let (ours, baseline) = (median(&mut ours), median(&mut baseline));
        println!(
            "{:<24} {:>9.1} ns {:>9.1} ns {:>+7.1} ns {:>7.2}x",
            case.what,
            ours,
            baseline,
            ours - baseline,
            ours / baseline
        );
    }
    Ok(())
}

/// Echo limit of the per-CPU measurement.
const LAB_RATE: f64 = 10.0;
const LAB_BURST: f64 = 20.0;
const LAB_FLOOD: u32 = 2000;
const LAB_ROUNDS: usize = 5;

fn per_cpu_quota() -> Result<()> {
    let cpus = aya::util::online_cpus().map_or(1, |c| c.len());
    println!();
    if cpus < 2 {
        println!("per-CPU quota: skipped, this machine has one CPU");
        return Ok(());
    }
    println!(
        "shared buckets: one source floods {LAB_FLOOD} echoes from each of CPUs 0 and 1 (lab veth, native XDP, echo {LAB_RATE}/s burst {LAB_BURST}), median of {LAB_ROUNDS} rounds"
    );
    println!(
        "{:<10} {:>8} {:>8} {:>18} {:>8}",
        "rx queues", "sent", "passed", "one bucket allows", "ratio"
    );
    for queues in [1, 2] {
        let mut rounds = Vec::with_capacity(LAB_ROUNDS);
        for _ in 0..LAB_ROUNDS {
            rounds.push(flood_from_two_cpus(queues)?);
        }
        rounds.sort_by(|a, b| a.2.total_cmp(&b.2));
        let (passed, allowed, ratio) = rounds[rounds.len() / 2];
        println!(
            "{queues:<10} {:>8} {passed:>8} {allowed:>18.1} {ratio:>7.2}x",
            2 * LAB_FLOOD
        );
    }
    Ok(())
}

/// Returns (passed, what one bucket allows over the flood's time, their ratio).
fn flood_from_two_cpus(queues: u32) -> Result<(u64, f64, f64)> {
    let lab = Lab::with_queues(queues)?;
    lab.cli_ok(&[
        "attach",
        &lab.guarded_if,
        "--mode",
        "native",
        "--echo-rate",
        "10",
        "--echo-burst",
        "20",
    ])?;
    let count = LAB_FLOOD.to_string();
    let started = Instant::now();
    let mut senders = ["0", "1"]
        .iter()
        .map(|cpu| {
            lab.inject_command(&["--kind", "echo", "--count", &count, "--cpu", cpu])?
                .stdout(Stdio::null())
                .spawn()
                .context("spawning the injector")
        })
        .collect::<Result<Vec<_>>>()?;
    for sender in &mut senders {
        ensure!(sender.wait()?.success(), "injector failed");
    }
    let seconds = started.elapsed().as_secs_f64();
    let stats = lab.stats()?;
    let passed = stats["counters"]["passed"]
        .as_u64()
        .context("passed counter")?;
    let allowed = LAB_BURST + LAB_RATE * seconds;
    Ok((passed, allowed, passed as f64 / allowed))
}

fn load(object: &[u8], program: &str) -> Result<Ebpf> {
    let mut ebpf = Ebpf::load(object)?;
    let prog: &mut Xdp = ebpf
        .program_mut(program)
        .context("program in object")?
        .try_into()?;
    prog.load()?;
    Ok(ebpf)
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

/// Pins this thread to the CPU it runs on, so per-CPU maps and caches stay put.
fn pin_to_current_cpu() -> Result<()> {
    // SAFETY: sched_getcpu has no preconditions.
    let cpu = unsafe { libc::sched_getcpu() };
    ensure!(cpu >= 0, "sched_getcpu failed");
    pin_thread_to(cpu.cast_unsigned() as usize)
}

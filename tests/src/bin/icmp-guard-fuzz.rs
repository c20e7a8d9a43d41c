//! The differential fuzzer (`cargo xtask fuzz`): mutated fixture frames through the host
//! model and through the real program with `BPF_PROG_TEST_RUN`, compared frame by frame (see
//! `icmp_guard_tests::fuzz`). Prints `N frames, M disagreements` last and exits non-zero when
//! M is not zero; each disagreement is written to `--out` as a file `--replay` runs again.
//! Needs root (it loads the XDP program).

use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Result;
use clap::Parser;
use icmp_guard::kernel::random_seed;
use icmp_guard_tests::fuzz::{self, Options, engine::BatchResult, record::Replayable};

#[derive(Parser)]
struct Args {
    /// Frames to compare
    #[arg(long, default_value_t = 100_000)]
    frames: u64,
    /// Seed of the frames, policies and presets (default: a random one, printed)
    #[arg(long)]
    seed: Option<u64>,
    /// Folder for the disagreement files
    #[arg(long, default_value = "target/fuzz")]
    out: PathBuf,
    /// Run a disagreement file again instead of fuzzing
    #[arg(long, value_name = "FILE", conflicts_with_all = ["frames", "seed"])]
    replay: Option<PathBuf>,
}

/// How often the run reports how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

fn main() -> Result<ExitCode> {
    let args = Args::parse();
    if let Some(path) = args.replay {
        return replay(&path);
    }
    let options = Options {
        frames: args.frames,
        seed: args.seed.unwrap_or_else(random_seed),
        out: Some(args.out),
    };
    println!(
        "seed {}: {} frames through the host model and BPF_PROG_TEST_RUN",
        options.seed, options.frames
    );
    let started = Instant::now();
    let mut last_report = started;
    let summary = fuzz::run(&options, |summary| {
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            eprintln!(
                "  {} frames, {} disagreements, {:.0} s",
                summary.frames,
                summary.disagreements.len(),
                started.elapsed().as_secs_f64()
            );
        }
    })?;
    println!("{:.1} s", started.elapsed().as_secs_f64());
    for line in summary.lines() {
        println!("{line}");
    }
    Ok(if summary.disagreements.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs a record again and says whether the sides still disagree; fails when they do.
fn replay(path: &std::path::Path) -> Result<ExitCode> {
    let replayable = Replayable::read(path)?;
    let frames: u64 = replayable
        .batch
        .sent
        .iter()
        .map(|s| u64::from(s.repeat))
        .sum();
    let report = fuzz::replay(&replayable)?;
    match report.result {
        BatchResult::Agreed => {
            println!("{frames} frames replayed: the model and the program agree");
            Ok(ExitCode::SUCCESS)
        }
        BatchResult::Disagreed(d) => {
            println!(
                "frame {} of {} (sent {} times so far; clock {} ns): the model and the program \
                 disagree",
                d.index + 1,
                replayable.batch.sent.len(),
                d.repetition + 1,
                d.clock_ns
            );
            for line in d.differences() {
                println!("  {line}");
            }
            Ok(ExitCode::FAILURE)
        }
        BatchResult::Skipped => {
            anyhow::bail!("every replay had a clock tick inside a run; try again")
        }
    }
}

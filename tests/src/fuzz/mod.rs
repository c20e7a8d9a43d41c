//! The differential fuzzer: frames made by mutating every fixture frame are judged by the
//! host model ([`crate::host`], the shared `judge` over `HashMap`s) and by the real,
//! verifier-checked program through `BPF_PROG_TEST_RUN`, and the two must agree, after every
//! frame, on the XDP action, on the change of every counter, and on the metering state: every
//! source's record (bucket times and totals), the global and admission budgets, and the
//! recently-seen filter's lines of every source either side knows.
//!
//! - **Frames** ([`mutate`]): the fixture rows' frames, each mutated zero to four times (bit
//!   flips, byte writes, truncation, padding, VLAN stacks, IPv4 options and fragment fields,
//!   IPv6 extension chains with random kinds, lengths and fragment fields, ICMP types and
//!   codes, sources from a few per batch, destinations), 14 to 3520 bytes long: what
//!   `BPF_PROG_TEST_RUN` hands a single-buffer XDP program.
//! - **Policies** ([`policy`]): limits drawn from each knob's range and validated and derived
//!   by the CLI's own code, dry-run, a seed for the filter, and allow and deny lists parsed
//!   by the CLI's parser; a new one every [`POLICY_EVERY`] batches, one time in four the
//!   limits and lists of a fixture row.
//! - **Batches** ([`generate`]): one to 48 frames from one row (the rows in turn, so every
//!   fixture frame is a seed), some sent up to 64 times in a row, after a preset state:
//!   budgets and buckets part spent, sources known before, filter stamps fresh, due for a
//!   restamp, or older than the window.
//! - **Time** ([`engine`]): the program reads the coarse clock. Before each batch both sides
//!   are cleared and preset from the same clock reading; the clock is read before and after
//!   each run, and when the two reads agree (a run takes about a microsecond, a tick 4 ms)
//!   that is the value the program saw, and the model's clock is set to it before it judges
//!   the same frame. So time-dependent outcomes (refills, restamps, expiry of the filter's
//!   window) are computed from the same clock on both sides and compared exactly; when a
//!   tick falls inside a run the batch is started again. No difference is ever put down to
//!   clock noise, and none is hidden by a tolerance.
//! - **Disagreements** ([`record`]): the first differing frame of a batch ends it (the sides'
//!   states have parted); it is replayed alone, after its preset, and with the batch up to
//!   it, and the smallest that disagrees again is written as a JSON file to replay with
//!   `--replay`.
//!
//! One seed fixes every frame, policy and preset. The clock does not repeat: outcomes that
//! depend on the time between frames may differ between two runs of one seed, each run
//! compared exactly.

pub mod engine;
pub mod generate;
pub mod mutate;
pub mod policy;
pub mod record;
pub mod rng;

use std::path::PathBuf;

use anyhow::{Result, bail};
use icmp_guard::kernel::clock_tick_ns;
use icmp_guard_common::Reason;

use self::{
    engine::{Batch, BatchReport, BatchResult, Disagreement, Engine, Preset, Sent},
    policy::Policy,
    record::{Record, Replayable},
    rng::Rng,
};
use crate::fixtures::cases;

/// Batches run under one policy before the next is drawn.
pub const POLICY_EVERY: u64 = 8;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Frames to compare.
    pub frames: u64,
    pub seed: u64,
    /// Where disagreements are written; `None` keeps them in the summary only.
    pub out: Option<PathBuf>,
}

/// A disagreement and where it was written.
#[derive(Clone, Debug)]
pub struct Found {
    pub record: Record,
    pub path: Option<PathBuf>,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Frames compared, each repetition of a frame counted.
    pub frames: u64,
    pub batches: u64,
    pub policies: u64,
    /// Batch attempts started again after a clock tick inside a run.
    pub retries: u64,
    /// Batches given up after [`engine::ATTEMPTS`] ticks (their frames are not counted).
    pub skipped: u64,
    /// The verdicts on the frames compared, by reason (in [`Reason::ALL`] order): how deep
    /// the frames reached.
    pub verdicts: Vec<u64>,
    pub disagreements: Vec<Found>,
}

impl Summary {
    /// The report, one line each; the last is `N frames, M disagreements`.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![
            format!("{} batches under {} policies", self.batches, self.policies),
            format!(
                "{} batch restarts after a clock tick inside a run, {} batches skipped",
                self.retries, self.skipped
            ),
            format!(
                "verdicts: {}",
                Reason::ALL
                    .iter()
                    .zip(&self.verdicts)
                    .map(|(r, n)| format!("{} {n}", r.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ];
        for found in &self.disagreements {
            let record = &found.record;
            let place = found
                .path
                .as_ref()
                .map_or_else(|| record.file_name(), |p| p.display().to_string());
            out.push(format!(
                "disagreement in batch {} ({}): {}",
                record.batch_number,
                if record.reproduced {
                    "replays"
                } else {
                    "did not replay"
                },
                place
            ));
            out.extend(record.found.differences().iter().map(|d| format!("  {d}")));
        }
        out.push(format!(
            "{} frames, {} disagreements",
            self.frames,
            self.disagreements.len()
        ));
        out
    }
}

/// Runs `options.frames` frames through both sides; `progress` sees the summary after every
/// batch.
pub fn run(options: &Options, mut progress: impl FnMut(&Summary)) -> Result<Summary> {
    let cases = cases();
    let tick_ns = clock_tick_ns();
    let mut rng = Rng::new(options.seed);
    let mut engine = Engine::new(&Policy::random(&mut rng, tick_ns))?;
    let mut summary = Summary {
        policies: 1,
        verdicts: vec![0; Reason::ALL.len()],
        ..Summary::default()
    };
    while summary.frames < options.frames {
        let number = summary.batches;
        if number > 0 && number.is_multiple_of(POLICY_EVERY) {
            let policy = if rng.one_in(4) {
                Policy::of_case(rng.pick(&cases), &mut rng, tick_ns)
            } else {
                Policy::random(&mut rng, tick_ns)
            };
            engine.set_policy(&policy)?;
            summary.policies += 1;
        }
        let case = &cases[(number % cases.len() as u64) as usize];
        let left = options.frames - summary.frames;
        let batch = generate::batch(&mut rng, case, &cases, engine.config(), left);
        let BatchReport {
            result,
            retries,
            verdicts,
        } = engine.run_batch(&batch)?;
        summary.batches += 1;
        summary.retries += u64::from(retries);
        for (total, n) in summary.verdicts.iter_mut().zip(verdicts) {
            *total += n;
        }
        let sent =
            |upto: usize| -> u64 { batch.sent[..upto].iter().map(|s| u64::from(s.repeat)).sum() };
        summary.frames += match &result {
            BatchResult::Agreed => sent(batch.sent.len()),
            BatchResult::Disagreed(d) => sent(d.index) + u64::from(d.repetition) + 1,
            BatchResult::Skipped => 0,
        };
        match result {
            BatchResult::Disagreed(found) => {
                let (shrunk, reproduced) = shrink(&mut engine, &batch, &found)?;
                let record = Record {
                    seed: options.seed,
                    batch_number: number,
                    policy: engine.policy().clone(),
                    batch: shrunk,
                    reproduced,
                    found: *found,
                };
                let path = match &options.out {
                    Some(dir) => Some(record.write(dir)?),
                    None => None,
                };
                summary.disagreements.push(Found { record, path });
            }
            BatchResult::Skipped => {
                summary.skipped += 1;
                if summary.skipped > 100 && summary.skipped * 10 > summary.batches {
                    bail!(
                        "{} of {} batches had a clock tick inside a run {} times over: the \
                         machine is too busy to compare",
                        summary.skipped,
                        summary.batches,
                        engine::ATTEMPTS
                    );
                }
            }
            BatchResult::Agreed => {}
        }
        progress(&summary);
    }
    Ok(summary)
}

/// The smallest replay of a disagreement that disagrees again: the frame alone (as many
/// times as it was sent up to the disagreement), the same after the batch's preset, or the
/// batch up to the frame (returned, with false, when none does).
fn shrink(engine: &mut Engine, batch: &Batch, found: &Disagreement) -> Result<(Batch, bool)> {
    let culprit = Sent {
        repeat: found.repetition + 1,
        ..batch.sent[found.index].clone()
    };
    let candidates = [
        Batch {
            preset: Preset::default(),
            sent: vec![culprit.clone()],
        },
        Batch {
            preset: batch.preset.clone(),
            sent: vec![culprit.clone()],
        },
        Batch {
            preset: batch.preset.clone(),
            sent: batch.sent[..found.index]
                .iter()
                .cloned()
                .chain([culprit])
                .collect(),
        },
    ];
    for candidate in &candidates {
        if let BatchResult::Disagreed(_) = engine.run_batch(candidate)?.result {
            return Ok((candidate.clone(), true));
        }
    }
    let [_, _, whole] = candidates;
    Ok((whole, false))
}

/// Runs a record's frames again on a freshly loaded program and the model.
pub fn replay(replayable: &Replayable) -> Result<BatchReport> {
    Engine::new(&replayable.policy)?.run_batch(&replayable.batch)
}

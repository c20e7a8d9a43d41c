//! Both sides of the comparison: the real program through `BPF_PROG_TEST_RUN` and the host
//! model, given the same policy, the same starting state and the same clock, one batch of
//! frames at a time. After every frame, the XDP action, every counter's change and the whole
//! metering state (every source's record, the global, exempt and admission budgets, and the lines of
//! the recently-seen filter where any source lands) must be equal.
//!
//! After every frame the program's table is read for the sources the model knows; a source
//! only the program made shows up in the read of the whole table at the end of the batch,
//! and is reported against the batch's last frame.
//!
//! The clock: the program reads `bpf_ktime_get_coarse_ns`, which is `CLOCK_MONOTONIC_COARSE`
//! and steps once a tick. The engine reads that clock just before and just after each run;
//! when both reads agree the run saw exactly that value, and the model's clock is set to it,
//! so refills, stamps and expiries are the same arithmetic on both sides. When a tick fell
//! inside a run, the program's clock is unknown: the batch is run again from its start (state
//! cleared and preset again). No comparison rests on a guessed clock, and none is dropped
//! because of one.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{Ipv4Addr, Ipv6Addr},
    sync::atomic::Ordering::Relaxed,
};

use anyhow::{Context as _, Result};
use icmp_guard::kernel::object;
use icmp_guard_common::{
    Config, Reason, SourceKey, SourceRecord,
    bucket::{Class, NS_PER_SEC},
    seen,
};

use super::policy::Policy;
use crate::{fixtures::Verdict, harness::TestProgram, host::HostEnv, lab::pin_to_current_cpu};

/// Attempts at one batch; each retry follows a clock tick inside a run. A batch that never
/// gets through (a machine too loaded to finish a run within a tick, sixteen times) is
/// reported as skipped, its frames not counted as compared.
pub const ATTEMPTS: u32 = 16;

/// One frame, sent `repeat` times back to back. Each repetition is its own
/// `BPF_PROG_TEST_RUN` call with its own comparison: a call with a repeat count above one
/// costs about 16 ms on the 6.18 kernel (a microsecond with one), and would let the clock
/// step between repetitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub frame: Vec<u8>,
    pub repeat: u32,
}

/// A time relative to the clock at the start of a batch; `None` is zero: a full bucket.
pub type Offset = Option<i64>;

/// A source already known when a batch starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresetSource {
    pub key: SourceKey,
    pub echo: Offset,
    pub reply: Offset,
    pub passed: u64,
    pub dropped: u64,
}

/// State written to both sides before a batch's first frame, so a short batch also meets
/// budgets half spent, sources idle past the recently-seen window, and filter lines stamped
/// by others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preset {
    pub global: Offset,
    pub exempt: Offset,
    /// By [`Class::slot`].
    pub admission: [Offset; 2],
    pub sources: Vec<PresetSource>,
    /// Stamps of the recently-seen filter for these sources, made in this order.
    pub seen: Vec<(SourceKey, i64)>,
}

/// Frames judged from one starting state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub preset: Preset,
    pub sent: Vec<Sent>,
}

/// The metering state of one side after a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    pub sources: BTreeMap<SourceKey, SourceRecord>,
    pub global: u64,
    pub exempt: u64,
    /// By [`Class::slot`].
    pub admission: [u64; 2],
    /// The filter's lines where either side's sources, or the preset's, land.
    pub seen: BTreeMap<u32, [u64; seen::WORDS]>,
}

/// What one side did with a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub action: u32,
    /// How far each counter moved, in [`Reason::ALL`] order.
    pub counters: Vec<u64>,
    pub state: State,
}

/// The first frame of a batch whose outcomes differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disagreement {
    /// Index in the batch.
    pub index: usize,
    /// Which repetition of that frame (from 0).
    pub repetition: u32,
    /// The clock both sides read for it.
    pub clock_ns: u64,
    pub model: Outcome,
    pub program: Outcome,
}

impl Disagreement {
    /// Every difference, one line each.
    #[must_use]
    pub fn differences(&self) -> Vec<String> {
        differences(&self.model, &self.program)
    }
}

/// How a batch ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchResult {
    /// Every frame agreed.
    Agreed,
    /// The first disagreement; the frames after it were not compared.
    Disagreed(Box<Disagreement>),
    /// Every attempt had a clock tick inside a run.
    Skipped,
}

/// A batch's result, how many times it was started again after a clock tick, and the
/// model's verdicts on the frames compared (the change of each counter, in [`Reason::ALL`]
/// order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchReport {
    pub result: BatchResult,
    pub retries: u32,
    pub verdicts: Vec<u64>,
}

/// The program and the model under one policy.
pub struct Engine {
    program: TestProgram,
    model: HostEnv,
    policy: Policy,
    config: Config,
    /// Lines of the recently-seen filter either side may have stamped since they were last
    /// cleared: every stamp is made for a source that then has an entry, so the lines of the
    /// sources both sides held at the end of each attempt, and the preset's, are all.
    dirty: BTreeSet<u32>,
}

/// The model of the program under `config` and `policy`'s lists, its budgets shared by as
/// many CPUs as the program's, so both take the same tokens ahead.
fn model(config: Config, policy: &Policy) -> HostEnv {
    let mut model = HostEnv::new(config, &policy.allow, &policy.deny);
    model.cpus = object::possible_cpus();
    model
}

impl Engine {
    /// Loads the program and sets `policy` on both sides. Pins the calling thread to its CPU:
    /// the model is one CPU, and the tokens a CPU takes ahead from the budgets every CPU
    /// shares are its own, so the program must run on one CPU too.
    pub fn new(policy: &Policy) -> Result<Self> {
        pin_to_current_cpu()?;
        let config = policy.config()?;
        let mut engine = Self {
            program: TestProgram::load()?,
            model: model(config, policy),
            policy: policy.clone(),
            config,
            dirty: BTreeSet::new(),
        };
        engine.set_policy(policy)?;
        Ok(engine)
    }

    /// Sets `policy` on both sides; the recently-seen filters are kept, equal as they are.
    pub fn set_policy(&mut self, policy: &Policy) -> Result<()> {
        self.config = policy.config()?;
        self.policy = policy.clone();
        self.program
            .maps
            .set_policy(&self.config, &policy.allow, &policy.deny)?;
        let seen = std::mem::take(&mut self.model.seen);
        self.model = model(self.config, policy);
        self.model.seen = seen;
        Ok(())
    }

    /// The policy both sides judge by.
    #[must_use]
    pub const fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Its config.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// The model, for tests that plant a difference between the sides.
    pub const fn model_mut(&mut self) -> &mut HostEnv {
        &mut self.model
    }

    /// Runs `batch` on both sides from its preset state, comparing after every frame.
    pub fn run_batch(&mut self, batch: &Batch) -> Result<BatchReport> {
        for retries in 0..ATTEMPTS {
            self.clear()?;
            self.preset(&batch.preset, coarse_now())?;
            let before = self.model.counters;
            let attempt = self.attempt(batch);
            let disagreed = matches!(attempt, Ok(Some(BatchResult::Disagreed(_))));
            self.mark_dirty(&batch.preset, disagreed)?;
            if let Some(result) = attempt? {
                let verdicts = Reason::ALL
                    .iter()
                    .map(|r| self.model.counters[r.slot() as usize] - before[r.slot() as usize])
                    .collect();
                return Ok(BatchReport {
                    result,
                    retries,
                    verdicts,
                });
            }
        }
        Ok(BatchReport {
            result: BatchResult::Skipped,
            retries: ATTEMPTS,
            verdicts: vec![0; Reason::ALL.len()],
        })
    }

    /// Empties both sides' buckets and the filter lines either may have stamped.
    fn clear(&mut self) -> Result<()> {
        self.program.maps.reset_buckets()?;
        self.model.reset_buckets();
        for &line in &self.dirty {
            self.program.meters.set_seen(line, [0; seen::WORDS])?;
            self.model.seen[line as usize].set_words([0; seen::WORDS]);
        }
        self.dirty.clear();
        Ok(())
    }

    /// Writes `preset` to both sides, its offsets taken from `start_ns`.
    fn preset(&mut self, preset: &Preset, start_ns: u64) -> Result<()> {
        let at = |offset: Offset| offset.map_or(0, |o| start_ns.saturating_add_signed(o).max(1));
        self.program.meters.set_global(at(preset.global))?;
        self.model.global.tat_ns.store(at(preset.global), Relaxed);
        self.program.meters.set_exempt(at(preset.exempt))?;
        self.model.exempt.tat_ns.store(at(preset.exempt), Relaxed);
        for class in [Class::Echo, Class::Reply] {
            let tat = at(preset.admission[class.slot() as usize]);
            self.program.meters.set_admission(class, tat)?;
            self.model.admission[class.slot() as usize]
                .tat_ns
                .store(tat, Relaxed);
        }
        for source in &preset.sources {
            let record = SourceRecord {
                echo_tat_ns: at(source.echo),
                reply_tat_ns: at(source.reply),
                passed: source.passed,
                dropped: source.dropped,
            };
            self.program.meters.set_source(&source.key, &record)?;
            self.model.set_source(source.key, &record);
        }
        // Stamped on the model as the program would have, in order, then copied over.
        let mut lines = BTreeSet::new();
        for (key, offset) in &preset.seen {
            let place = seen::place(key, self.config.seen_seed);
            let line = &self.model.seen[place.line as usize];
            let now = at(Some(*offset));
            seen::stamp(line, place, seen::look(line, place, now), now);
            lines.insert(place.line);
        }
        for line in lines {
            self.dirty.insert(line);
            self.program
                .meters
                .set_seen(line, self.model.seen[line as usize].words())?;
        }
        Ok(())
    }

    /// One pass over the batch; `None` when a clock tick fell inside a run.
    fn attempt(&mut self, batch: &Batch) -> Result<Option<BatchResult>> {
        let mut program_before = self.program.maps.counters()?;
        let mut model_before = self.model.counters;
        let mut last = None;
        for (index, sent) in batch.sent.iter().enumerate() {
            for repetition in 0..sent.repeat {
                let before = coarse_now();
                let action = self.program.run(&sent.frame, 1)?;
                let clock_ns = coarse_now();
                if clock_ns != before {
                    return Ok(None);
                }
                self.model.now_ns = clock_ns;
                let reason = self.model.run(&sent.frame);
                let program_after = self.program.maps.counters()?;
                let (model_state, program_state) = self.states(&batch.preset, false)?;
                let program = Outcome {
                    action,
                    counters: program_after
                        .iter()
                        .zip(&program_before)
                        .map(|(after, before)| after.wrapping_sub(*before))
                        .collect(),
                    state: program_state,
                };
                let model = Outcome {
                    action: Verdict::of(reason, &self.model.config).action(),
                    counters: Reason::ALL
                        .iter()
                        .map(|r| {
                            let slot = r.slot() as usize;
                            self.model.counters[slot] - model_before[slot]
                        })
                        .collect(),
                    state: model_state,
                };
                let compared = Disagreement {
                    index,
                    repetition,
                    clock_ns,
                    model,
                    program,
                };
                if compared.model != compared.program {
                    return Ok(Some(BatchResult::Disagreed(Box::new(compared))));
                }
                last = Some(compared);
                program_before = program_after;
                model_before = self.model.counters;
            }
        }
        // The program's whole table: an entry the model never made is found here.
        let (model, program) = self.states(&batch.preset, true)?;
        match last {
            Some(mut last) if model != program => {
                last.model.state = model;
                last.program.state = program;
                Ok(Some(BatchResult::Disagreed(Box::new(last))))
            }
            _ => Ok(Some(BatchResult::Agreed)),
        }
    }

    /// Both sides' metering state: (model, program). The program's sources are those the
    /// model or the preset knows, or with `whole`, its whole table (one read that walks every
    /// bucket of the table, about 100 µs).
    fn states(&self, preset: &Preset, whole: bool) -> Result<(State, State)> {
        let model_sources = self.model.records();
        let program_sources = if whole {
            self.program.meters.sources()?
        } else {
            let mut found = BTreeMap::new();
            for key in model_sources
                .keys()
                .chain(preset.sources.iter().map(|s| &s.key))
            {
                if let Some(record) = self.program.meters.source(key)? {
                    found.insert(*key, record);
                }
            }
            found
        };
        let keys: BTreeSet<&SourceKey> = program_sources
            .keys()
            .chain(model_sources.keys())
            .chain(preset.seen.iter().map(|(key, _)| key))
            .chain(preset.sources.iter().map(|s| &s.key))
            .collect();
        let mut program_seen = BTreeMap::new();
        let mut model_seen = BTreeMap::new();
        for key in keys {
            let line = seen::place(key, self.config.seen_seed).line;
            program_seen.insert(line, self.program.meters.seen(line)?);
            model_seen.insert(line, self.model.seen[line as usize].words());
        }
        let program = State {
            sources: program_sources,
            global: self.program.meters.global()?,
            exempt: self.program.meters.exempt()?,
            admission: [
                self.program.meters.admission(Class::Echo)?,
                self.program.meters.admission(Class::Reply)?,
            ],
            seen: program_seen,
        };
        let model = State {
            sources: model_sources,
            global: self.model.global.tat_ns.load(Relaxed),
            exempt: self.model.exempt.tat_ns.load(Relaxed),
            admission: [Class::Echo, Class::Reply]
                .map(|c| self.model.admission[c.slot() as usize].tat_ns.load(Relaxed)),
            seen: model_seen,
        };
        Ok((model, program))
    }

    /// Records the filter lines the attempt may have stamped; after a disagreement, where a
    /// stamp may have no entry behind it, every stamped line of both sides.
    fn mark_dirty(&mut self, preset: &Preset, everything: bool) -> Result<()> {
        let (model, program) = self.states(preset, true)?;
        self.dirty
            .extend(model.seen.keys().chain(program.seen.keys()));
        if everything {
            self.dirty.extend(self.program.meters.stamped_lines()?);
            self.dirty.extend(
                (0..seen::LINES)
                    .filter(|&line| self.model.seen[line as usize].words() != [0; seen::WORDS]),
            );
        }
        Ok(())
    }
}

/// The clock the program reads (`bpf_ktime_get_coarse_ns` is `CLOCK_MONOTONIC_COARSE`).
#[must_use]
pub fn coarse_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &raw mut ts) };
    assert_eq!(rc, 0, "CLOCK_MONOTONIC_COARSE is always readable");
    u64::try_from(ts.tv_sec).unwrap_or(0) * NS_PER_SEC + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// A source key as an operator reads it: IPv4 for mapped keys.
#[must_use]
pub fn key_text(key: &SourceKey) -> String {
    key.as_v4().map_or_else(
        || Ipv6Addr::from(key.addr).to_string(),
        |v4| Ipv4Addr::from(v4).to_string(),
    )
}

/// The key of an address written as [`key_text`] writes it.
pub fn parse_key(text: &str) -> Result<SourceKey> {
    let addr: std::net::IpAddr = text
        .parse()
        .with_context(|| format!("{text:?} is not an address"))?;
    Ok(match addr {
        std::net::IpAddr::V4(v4) => SourceKey::v4(v4.octets()),
        std::net::IpAddr::V6(v6) => SourceKey { addr: v6.octets() },
    })
}

/// The XDP action's name.
#[must_use]
pub fn action_name(action: u32) -> String {
    match action {
        1 => "XDP_DROP".to_owned(),
        2 => "XDP_PASS".to_owned(),
        other => format!("action {other}"),
    }
}

/// Every way `program` differs from `model`, one line each.
#[must_use]
pub fn differences(model: &Outcome, program: &Outcome) -> Vec<String> {
    let mut out = Vec::new();
    if model.action != program.action {
        out.push(format!(
            "action: model {}, program {}",
            action_name(model.action),
            action_name(program.action)
        ));
    }
    for (i, reason) in Reason::ALL.iter().enumerate() {
        let (m, p) = (model.counters.get(i), program.counters.get(i));
        if m != p {
            out.push(format!(
                "counter {}: model +{}, program +{}",
                reason.name(),
                m.copied().unwrap_or(0),
                p.copied().unwrap_or(0)
            ));
        }
    }
    let (m, p) = (&model.state, &program.state);
    let keys: BTreeSet<&SourceKey> = m.sources.keys().chain(p.sources.keys()).collect();
    for key in keys {
        let (ms, ps) = (m.sources.get(key), p.sources.get(key));
        if ms != ps {
            out.push(format!(
                "source {}: model {ms:?}, program {ps:?}",
                key_text(key)
            ));
        }
    }
    if m.exempt != p.exempt {
        out.push(format!(
            "exempt budget TAT: model {}, program {}",
            m.exempt, p.exempt
        ));
    }
    if m.global != p.global {
        out.push(format!(
            "global budget TAT: model {}, program {}",
            m.global, p.global
        ));
    }
    for class in [Class::Echo, Class::Reply] {
        let i = class.slot() as usize;
        if m.admission[i] != p.admission[i] {
            out.push(format!(
                "{class:?} admission budget TAT: model {}, program {}",
                m.admission[i], p.admission[i]
            ));
        }
    }
    let lines: BTreeSet<&u32> = m.seen.keys().chain(p.seen.keys()).collect();
    for line in lines {
        let (ms, ps) = (m.seen.get(line), p.seen.get(line));
        if ms != ps {
            out.push(format!(
                "recently-seen line {line}: model {ms:?}, program {ps:?}"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> Outcome {
        let key = SourceKey::v4([198, 51, 100, 2]);
        Outcome {
            action: 2,
            counters: Reason::ALL
                .iter()
                .map(|r| u64::from(*r == Reason::Passed))
                .collect(),
            state: State {
                sources: [(
                    key,
                    SourceRecord {
                        echo_tat_ns: 5,
                        reply_tat_ns: 0,
                        passed: 1,
                        dropped: 0,
                    },
                )]
                .into(),
                global: 7,
                exempt: 11,
                admission: [9, 0],
                seen: [(3, [4, 0, 0, 0, 0, 0, 0, 0])].into(),
            },
        }
    }

    /// A change made to the program's outcome.
    type Change = fn(&mut Outcome);

    /// Each way the program can differ from the model, and the line that names it.
    #[test]
    fn every_difference_is_named() {
        let cases: [(Change, &str); 8] = [
            (|o| o.action = 1, "action: model XDP_PASS, program XDP_DROP"),
            (
                |o| o.counters[1] = 0,
                "counter passed: model +1, program +0",
            ),
            (
                |o| o.counters[16] = 1,
                "counter dropped_new_source: model +0, program +1",
            ),
            (
                |o| o.state.sources.clear(),
                "source 198.51.100.2: model Some(SourceRecord { echo_tat_ns: 5, reply_tat_ns: 0, \
                 passed: 1, dropped: 0 }), program None",
            ),
            (
                |o| o.state.global = 8,
                "global budget TAT: model 7, program 8",
            ),
            (
                |o| o.state.exempt = 12,
                "exempt budget TAT: model 11, program 12",
            ),
            (
                |o| o.state.admission[1] = 1,
                "Reply admission budget TAT: model 0, program 1",
            ),
            (
                |o| o.state.seen.clear(),
                "recently-seen line 3: model Some([4, 0, 0, 0, 0, 0, 0, 0]), program None",
            ),
        ];
        assert!(differences(&outcome(), &outcome()).is_empty());
        for (change, line) in cases {
            let mut program = outcome();
            change(&mut program);
            assert_eq!(differences(&outcome(), &program), [line]);
        }
    }

    #[test]
    fn keys_read_back_as_written() {
        for key in [
            SourceKey::v4([198, 51, 100, 2]),
            SourceKey {
                addr: crate::fixtures::SRC6,
            },
            SourceKey { addr: [0; 16] },
        ] {
            assert_eq!(parse_key(&key_text(&key)).unwrap(), key);
        }
    }
}

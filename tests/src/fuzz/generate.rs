//! Batches: the frames of one fixture row mutated (with a frame of another row now and then),
//! repeated as floods are, and a preset state built around the sources those frames use.

use icmp_guard_common::{
    Config, SourceKey,
    bucket::{Limit, NS_PER_SEC},
    parse::parse_frame,
    seen::{RESTAMP_NS, WINDOW_NS},
};

use super::{
    engine::{Batch, Offset, Preset, PresetSource, Sent},
    mutate::{Addresses, mutate},
    rng::Rng,
};
use crate::fixtures::Case;

/// Frames in a batch at most: short enough that a retry after a clock tick is cheap, long
/// enough for buckets to run dry.
pub const MAX_BATCH: u64 = 48;

/// Repetitions of one frame at most (a small flood in one run).
const MAX_REPEAT: u64 = 64;

/// Known sources, and filter stamps, a preset sets up at most.
const MAX_PRESET_SOURCES: usize = 3;

/// A batch of one to [`MAX_BATCH`] frames made from `case`'s frames in order from a random
/// one (one in eight from a row of `all` instead), under `config`; `budget` (at least one) caps the frames
/// sent, repetitions counted.
pub fn batch(rng: &mut Rng, case: &Case, all: &[Case], config: &Config, budget: u64) -> Batch {
    let addrs = Addresses::draw(rng);
    let mut left = budget.max(1);
    let mut sent = Vec::new();
    // From a random step in, so every step of a long row gets its turn.
    let start = rng.index(case.steps.len());
    for i in 0..rng.between(1, MAX_BATCH) as usize {
        if left == 0 {
            break;
        }
        let step = if rng.one_in(8) {
            let other = rng.pick(all);
            rng.pick(&other.steps)
        } else {
            &case.steps[(start + i) % case.steps.len()]
        };
        let repeat = match rng.below(16) {
            0 => u64::from(step.times).clamp(1, MAX_REPEAT),
            1 | 2 => rng.between(2, 8),
            3 => rng.between(9, MAX_REPEAT),
            _ => 1,
        }
        .min(left);
        left -= repeat;
        sent.push(Sent {
            frame: mutate(rng, &step.frame, &addrs),
            repeat: repeat as u32,
        });
    }
    let preset = preset(rng, config, &sources(&sent, config));
    Batch { preset, sent }
}

/// The distinct bucket keys of the frames that parse as ICMP, in order of appearance.
fn sources(sent: &[Sent], config: &Config) -> Vec<SourceKey> {
    let mut keys = Vec::new();
    for s in sent {
        if let Ok(pkt) = parse_frame(s.frame.as_slice()) {
            let key = pkt.src.masked(config.mask(pkt.family));
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// Half the time nothing; else budgets and buckets at random fill, some of `keys` known,
/// and filter stamps fresh, due for a restamp, or past the window.
fn preset(rng: &mut Rng, config: &Config, keys: &[SourceKey]) -> Preset {
    if rng.one_in(2) {
        return Preset::default();
    }
    let mut preset = Preset {
        global: if rng.one_in(3) {
            fill(rng, &config.global)
        } else {
            None
        },
        exempt: if rng.one_in(3) {
            fill(rng, &config.exempt)
        } else {
            None
        },
        ..Preset::default()
    };
    for offset in &mut preset.admission {
        if rng.one_in(3) {
            *offset = fill(rng, &config.new_source);
        }
    }
    for key in keys.iter().take(MAX_PRESET_SOURCES) {
        if rng.one_in(2) {
            preset.sources.push(PresetSource {
                key: *key,
                echo: fill(rng, &config.echo),
                reply: fill(rng, &config.reply),
                passed: rng.below(100),
                dropped: rng.below(100),
            });
        }
        if rng.one_in(2) {
            let ms = 1_000_000;
            let ago = *rng.pick(&[
                0,
                ms,
                RESTAMP_NS / 2,
                RESTAMP_NS + ms,
                WINDOW_NS - NS_PER_SEC,
                WINDOW_NS + NS_PER_SEC,
            ]);
            preset.seen.push((*key, -signed(ago)));
        }
    }
    preset
}

/// A TAT offset for a bucket of `limit`: full, empty, one to a few tokens left, or behind
/// the clock (idle).
fn fill(rng: &mut Rng, limit: &Limit) -> Offset {
    let (interval, tolerance) = (signed(limit.interval_ns), signed(limit.tolerance_ns));
    // A packet passes while TAT + interval - now <= tolerance: `tolerance - k * interval`
    // leaves k tokens.
    Some(match rng.below(6) {
        0 => return None,
        1 => tolerance,
        2 => tolerance - interval,
        3 => tolerance.saturating_sub(interval.saturating_mul(rng.between(2, 4).cast_signed())),
        4 => -rng.between(1, 2 * NS_PER_SEC).cast_signed(),
        _ => rng.between(0, tolerance.unsigned_abs()).cast_signed(),
    })
}

fn signed(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::cases;

    #[test]
    fn batches_use_the_rows_frames_and_preset_their_sources() {
        let all = cases();
        let config = Config::with_defaults();
        let mut rng = Rng::new(9);
        let (mut presets, mut known, mut stamped, mut repeated) = (0, 0, 0, 0);
        for case in all.iter().take(40) {
            let b = batch(&mut rng, case, &all, &config, MAX_BATCH);
            assert!((1..=MAX_BATCH as usize).contains(&b.sent.len()));
            assert!(
                b.sent
                    .iter()
                    .all(|s| (1..=MAX_REPEAT as u32).contains(&s.repeat))
            );
            let keys = sources(&b.sent, &config);
            assert!(b.preset.sources.iter().all(|s| keys.contains(&s.key)));
            presets += usize::from(b.preset != Preset::default());
            known += b.preset.sources.len();
            stamped += b.preset.seen.len();
            repeated += b.sent.iter().filter(|s| s.repeat > 1).count();
        }
        assert!(presets > 5 && known > 5 && stamped > 5 && repeated > 40);
    }

    #[test]
    fn a_batch_sends_no_more_than_its_budget() {
        let all = cases();
        let mut rng = Rng::new(2);
        for budget in [1, 3, 70] {
            for _ in 0..50 {
                let b = batch(&mut rng, &all[0], &all, &Config::with_defaults(), budget);
                let sent: u64 = b.sent.iter().map(|s| u64::from(s.repeat)).sum();
                assert!((1..=budget).contains(&sent), "{sent} of {budget}");
            }
        }
    }
}

//! The differential fuzzer in CI: a bounded slice with a fixed seed must find the host model
//! and the real program in agreement, reaching every verdict the program can give; and the
//! comparison must see a difference when one is planted, and write it as a file that replays.

use icmp_guard::kernel::clock_tick_ns;
use icmp_guard_common::{Reason, config::flags};
use icmp_guard_tests::{
    fixtures::SRC,
    fuzz::{
        self, Options,
        engine::{Batch, BatchResult, Engine, Sent},
        policy::Policy,
        record::{Record, Replayable},
        rng::Rng,
    },
    host::HostEnv,
    packet::{echo_from, icmp4_frame},
};

/// Frames in the CI slice: about two seconds on the development machine.
const FRAMES: u64 = 50_000;

/// The slice's seed.
const SEED: u64 = 0x1c3b_9a4d;

#[test]
fn a_slice_of_the_fuzzer_finds_no_disagreement() {
    let options = Options {
        frames: FRAMES,
        seed: SEED,
        out: None,
    };
    let summary = fuzz::run(&options, |_| {}).unwrap();
    let report = summary.lines().join("\n");
    println!("{report}");
    assert!(summary.disagreements.is_empty(), "{report}");
    assert_eq!(summary.frames, FRAMES);
    // Every verdict but the fail-open one (the source table refusing an insert, which an
    // LRU table under its capacity never does) is reached, so the slice compares every path.
    for (reason, n) in Reason::ALL.iter().zip(&summary.verdicts) {
        let reachable = *reason != Reason::PassedUnmetered;
        assert_eq!(*n > 0, reachable, "{}: {n} frames\n{report}", reason.name());
    }
}

/// A policy with generous limits and no lists, so the planted difference is the only one.
fn plain_policy() -> Policy {
    let mut policy = Policy::random(&mut Rng::new(1), clock_tick_ns());
    policy.limits = icmp_guard::policy::Overrides::default();
    policy.limits.dry_run = Some(false);
    policy.allow.clear();
    policy.deny.clear();
    policy
}

fn once(frame: Vec<u8>, repeat: u32) -> Batch {
    Batch {
        preset: fuzz::engine::Preset::default(),
        sent: vec![Sent { frame, repeat }],
    }
}

/// A difference planted in the model.
type Plant = fn(&mut HostEnv);

/// Differences planted in the model, the frames that show them, and the first line the
/// comparison must report.
#[test]
fn a_planted_difference_is_reported() {
    let cases: [(&str, Plant, Batch, &str); 6] = [
        (
            "the model in dry-run",
            |m| m.config.flags |= flags::DRY_RUN,
            once(echo_from([127, 0, 0, 1]), 1),
            "action: model XDP_PASS, program XDP_DROP",
        ),
        (
            "the model deny-lists the sender",
            |m| {
                m.deny = vec!["198.51.100.2".parse().unwrap()];
                m.config.deny_entries = 1;
            },
            once(echo_from(SRC), 1),
            "action: model XDP_DROP, program XDP_PASS",
        ),
        (
            "the model's echo bucket holds one packet",
            |m| m.config.echo.tolerance_ns = m.config.echo.interval_ns,
            once(echo_from(SRC), 2),
            "action: model XDP_DROP, program XDP_PASS",
        ),
        (
            "the model deny-lists the sender of an unknown type",
            |m| {
                m.deny = vec!["198.51.100.0/24".parse().unwrap()];
                m.config.deny_entries = 1;
            },
            once(icmp4_frame(6, 0), 1),
            "counter dropped_denied: model +1, program +0",
        ),
        (
            "the model's echo tokens are a nanosecond longer",
            |m| m.config.echo.interval_ns += 1,
            once(echo_from(SRC), 1),
            "source 198.51.100.2: model Some(",
        ),
        (
            "the model's recently-seen filter hashes with another seed",
            |m| m.config.seen_seed ^= 1,
            once(echo_from(SRC), 1),
            "recently-seen line",
        ),
    ];
    let mut engine = Engine::new(&plain_policy()).unwrap();
    for (what, plant, batch, first) in cases {
        engine.set_policy(&plain_policy()).unwrap();
        plant(engine.model_mut());
        let report = engine.run_batch(&batch).unwrap();
        let BatchResult::Disagreed(found) = report.result else {
            panic!("{what}: not reported ({:?})", report.result);
        };
        let differences = found.differences();
        assert!(
            differences.first().is_some_and(|d| d.starts_with(first)),
            "{what}: {differences:#?}"
        );
    }
}

/// A record written for a disagreement reads back and replays on a fresh program and model
/// (which agree: the plant is not in the file).
#[test]
fn a_record_replays() {
    let policy = plain_policy();
    let mut engine = Engine::new(&policy).unwrap();
    engine.model_mut().config.flags |= flags::DRY_RUN;
    let batch = once(echo_from([127, 0, 0, 1]), 3);
    let BatchResult::Disagreed(found) = engine.run_batch(&batch).unwrap().result else {
        panic!("the plant is reported");
    };
    let record = Record {
        seed: SEED,
        batch_number: 0,
        policy: policy.clone(),
        batch: batch.clone(),
        reproduced: true,
        found: *found,
    };
    let dir = std::env::temp_dir().join(format!("icmp-guard-fuzz-{}", std::process::id()));
    let path = record.write(&dir).unwrap();
    let replayable = Replayable::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(replayable, Replayable { policy, batch });
    assert_eq!(
        fuzz::replay(&replayable).unwrap().result,
        BatchResult::Agreed
    );
}

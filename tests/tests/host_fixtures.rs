//! The fixture table on the host: the shared parser, policy and bucket, without a kernel.

use icmp_guard_common::Reason;
use icmp_guard_tests::{
    fixtures::{Verdict, cases},
    host::HostEnv,
};

#[test]
fn every_fixture_on_the_host_model() {
    for case in cases() {
        let mut env = HostEnv::new(case.config);
        let mut last = None;
        for step in &case.steps {
            for _ in 0..step.times {
                last = Some(env.run(&step.frame));
            }
        }
        let last = last.expect("a case sends at least one frame");
        let verdict = if last.is_drop() {
            Verdict::Drop
        } else {
            Verdict::Pass
        };
        assert_eq!(
            verdict, case.verdict,
            "{}: last frame got {last:?}",
            case.what
        );
        for reason in Reason::ALL {
            assert_eq!(
                env.counters[reason.slot() as usize],
                case.expected(reason),
                "{}: counter {}",
                case.what,
                reason.name()
            );
        }
        assert_eq!(
            env.counters.iter().sum::<u64>(),
            case.frames(),
            "{}: one counter per frame",
            case.what
        );
    }
}

#[test]
fn truncating_any_frame_never_panics_and_never_passes_bad_ipv4_icmp_as_metered() {
    // Every prefix of every fixture frame: the parser must stay within bounds (the slice
    // Frame panics on nothing, returns None past the end) and classify it somehow.
    for case in cases() {
        for step in &case.steps {
            for len in 0..=step.frame.len() {
                let mut env = HostEnv::new(case.config);
                let reason = env.run(&step.frame[..len]);
                if len < step.frame.len() && reason == Reason::Passed {
                    // A truncated ICMP packet can only be metered if the cut fell in padding.
                    assert!(
                        case.what.contains("padded"),
                        "{}: truncated to {len} was metered",
                        case.what
                    );
                }
            }
        }
    }
}

//! The fixture table again, through a live veth: every frame is sent by the injector from the
//! client namespace and judged by the program the CLI attached, in generic (skb) mode and in
//! native mode. The counters must move exactly as in `BPF_PROG_TEST_RUN`. The link runs at a
//! jumbo MTU, so the table's jumbo rows cross it too, in several buffers.

use std::time::{Duration, Instant};

use icmp_guard_tests::{
    fixtures::cases,
    harness::{ProgramMaps, check_counters},
    lab::Lab,
    packet::JUMBO_MTU,
    recording,
};

fn replay(mode: &str) {
    let lab = Lab::with_mtu(JUMBO_MTU).unwrap();
    // Only the injected frames may reach the guarded interface.
    lab.silence_client().unwrap();
    let iface = lab.guarded_if.clone();
    lab.cli_ok(&["attach", &iface, "--mode", mode]).unwrap();
    let mut maps = ProgramMaps::from_pins(lab.pins(&iface)).unwrap();
    let recording_path = lab.scratch.file("case.frames");
    for case in cases() {
        maps.prepare(&case).unwrap();
        let before = maps.counters().unwrap();
        let frames: Vec<(Vec<u8>, u32)> = case
            .steps
            .iter()
            .map(|s| (s.frame.clone(), s.times))
            .collect();
        recording::write(&recording_path, &frames).unwrap();
        // One CPU sends, so one CPU judges: per-CPU buckets behave as in the table.
        let report = lab
            .inject(&[
                "--kind",
                "recorded",
                "--frames",
                recording_path.to_str().unwrap(),
                "--cpu",
                "0",
            ])
            .unwrap();
        assert_eq!(report["sent"], case.frames(), "{}", case.what);
        // Frames are judged asynchronously (softirq); wait until all are counted.
        let deadline = Instant::now() + Duration::from_secs(5);
        let after = loop {
            let now = maps.counters().unwrap();
            let seen: u64 = now.iter().sum::<u64>() - before.iter().sum::<u64>();
            if seen >= case.frames() || Instant::now() > deadline {
                break now;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        check_counters(&case, &before, &after).unwrap();
    }
    lab.cli_ok(&["detach", &iface]).unwrap();
}

#[test]
fn every_fixture_through_a_live_veth_in_generic_mode() {
    replay("generic");
}

#[test]
fn every_fixture_through_a_live_veth_in_native_mode() {
    replay("native");
}

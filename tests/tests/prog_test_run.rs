//! The fixture table through BPF_PROG_TEST_RUN on the real, verifier-checked program.

use aya::{
    Ebpf,
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use icmp_guard::object;
use icmp_guard_common::maps;
use icmp_guard_tests::{
    fixtures::cases,
    harness::{ProgramMaps, check_counters},
};

fn run(ebpf: &Ebpf, frame: &[u8], repeat: u32) -> u32 {
    let program: &Xdp = ebpf.program(maps::PROGRAM).unwrap().try_into().unwrap();
    let mut out = vec![0u8; frame.len() + 256];
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(&mut out);
    opts.repeat = repeat;
    program
        .test_run(opts)
        .expect("BPF_PROG_TEST_RUN")
        .return_value
}

#[test]
fn every_fixture_through_bpf_prog_test_run() {
    let mut ebpf = Ebpf::load(object::ICMP_GUARD).expect("the object loads");
    let program: &mut Xdp = ebpf.program_mut(maps::PROGRAM).unwrap().try_into().unwrap();
    program.load().expect("the verifier accepts the program");
    let mut maps = ProgramMaps::from_ebpf(&mut ebpf).unwrap();
    for case in cases() {
        maps.prepare(&case).unwrap();
        let before = maps.counters().unwrap();
        let mut last = None;
        for step in &case.steps {
            last = Some(run(&ebpf, &step.frame, step.times));
        }
        assert_eq!(
            last,
            Some(case.verdict.action()),
            "{}: XDP action",
            case.what
        );
        check_counters(&case, &before, &maps.counters().unwrap()).unwrap();
    }
}

/// The verifier walks at most 1,000,000 instructions; stay well under half, so the next
/// feature does not find the program suddenly unloadable.
#[test]
fn the_verifier_has_headroom() {
    const BUDGET: u32 = 500_000;
    let mut ebpf = Ebpf::load(object::ICMP_GUARD).expect("the object loads");
    let program: &mut Xdp = ebpf.program_mut(maps::PROGRAM).unwrap().try_into().unwrap();
    program.load().expect("the verifier accepts the program");
    let verified = program
        .info()
        .unwrap()
        .verified_instruction_count()
        .expect("kernel reports verified_insns (5.16+)");
    println!("verifier processed {verified} instructions");
    assert!(
        verified < BUDGET,
        "verifier processed {verified} instructions, budget {BUDGET}"
    );
}

//! The fixture table through BPF_PROG_TEST_RUN on the real, verifier-checked program.

use aya::{Ebpf, programs::Xdp};
use icmp_guard::kernel::object;
use icmp_guard_common::maps;
use icmp_guard_tests::{
    fixtures::cases,
    harness::{TestProgram, check_counters},
};

#[test]
fn every_fixture_through_bpf_prog_test_run() {
    let mut program = TestProgram::load().unwrap();
    for case in cases() {
        program.maps.prepare(&case).unwrap();
        let before = program.maps.counters().unwrap();
        let mut last = None;
        for step in &case.steps {
            last = Some(program.run(&step.frame, step.times).unwrap());
        }
        assert_eq!(
            last,
            Some(case.verdict.action()),
            "{}: XDP action",
            case.what
        );
        check_counters(&case, &before, &program.maps.counters().unwrap()).unwrap();
    }
}

/// Drops `CAP_SYS_ADMIN` and `CAP_PERFMON` from this thread's effective set (capabilities are
/// per thread), as a service bounded to `CAP_BPF` and `CAP_NET_ADMIN` runs.
fn drop_perfmon_on_this_thread() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset with a valid header and two data structs, on this thread.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()),
            0
        );
        data[0].effective &= !(1 << 21); // CAP_SYS_ADMIN
        data[1].effective &= !(1 << (38 - 32)); // CAP_PERFMON
        assert_eq!(
            libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()),
            0
        );
    }
}

/// The verifier walks at most 1,000,000 instructions and keeps at most 8192 pending branches;
/// without `CAP_PERFMON` it also walks speculative paths, so that is where the program is
/// loaded. Stay well under half the instruction budget, so the next feature does not find the
/// program suddenly unloadable.
#[test]
fn the_verifier_has_headroom() {
    const BUDGET: u32 = 500_000;
    let verified = std::thread::spawn(|| {
        drop_perfmon_on_this_thread();
        let mut ebpf = Ebpf::load(object::ICMP_GUARD).expect("the object loads");
        let program: &mut Xdp = ebpf.program_mut(maps::PROGRAM).unwrap().try_into().unwrap();
        program
            .load()
            .expect("the verifier accepts the program without CAP_PERFMON");
        program
            .info()
            .unwrap()
            .verified_instruction_count()
            .expect("kernel reports verified_insns (5.16+)")
    })
    .join()
    .unwrap();
    println!("verifier processed {verified} instructions without CAP_PERFMON");
    assert!(
        verified < BUDGET,
        "verifier processed {verified} instructions, budget {BUDGET}"
    );
}

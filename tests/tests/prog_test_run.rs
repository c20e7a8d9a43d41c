//! The fixture table through BPF_PROG_TEST_RUN on the real, verifier-checked program.

use aya::{
    maps::{HashMap, PerCpuArray},
    programs::Xdp,
};
use icmp_guard::kernel::object;
use icmp_guard_common::{
    Limit, SourceKey, SourceRecord, bucket::MAX_RATE, floor, generator::SPOOF_BASE, maps,
};
use icmp_guard_tests::{
    fixtures::{Verdict, cases},
    harness::{TestProgram, check_counters, load_floor, run_once},
    lab::{kernel_at_least, pin_to_current_cpu},
    live::generator::{Frames, Generator},
    packet::{IPPROTO_TCP, arp_request, checksum, echo_from, l4_frame},
};

/// Runs the whole table through `program`, every frame with at most `linear` bytes in the
/// linear part.
fn run_table(program: &mut TestProgram, linear: Option<u32>) {
    // The tokens a CPU takes ahead from a shared budget are its own: a row run on one CPU
    // gets the verdicts of one CPU.
    pin_to_current_cpu().unwrap();
    for case in cases() {
        program.maps.prepare(&case).unwrap();
        let before = program.maps.counters().unwrap();
        let mut last = None;
        for step in &case.steps {
            last = Some(
                program
                    .run_split(&step.frame, step.times, linear)
                    .expect("BPF_PROG_TEST_RUN"),
            );
        }
        assert_eq!(
            last,
            Some(case.verdict.action()),
            "{} (linear part: {linear:?} bytes): XDP action",
            case.what
        );
        check_counters(&case, &before, &program.maps.counters().unwrap())
            .unwrap_or_else(|e| panic!("linear part {linear:?} bytes: {e}"));
    }
}

#[test]
fn every_fixture_through_bpf_prog_test_run() {
    run_table(&mut TestProgram::load().unwrap(), None);
}

/// Where a multi-buffer frame's linear part may end: a driver may leave it empty (mlx5 does in
/// some configurations, see xdp-tools pull request 409) or cut it anywhere in the headers.
/// Empty, the Ethernet header alone, with a VLAN tag, with the IPv4 header but not the ICMP
/// header, with half an IPv6 header, with the IPv6 header.
const LINEAR_PARTS: [u32; 6] = [0, 14, 18, 34, 38, 54];

/// The table again with each frame's headers cut across the linear part and the fragments:
/// the program must read the same headers and give the same verdicts, so it never assumes a
/// frame is linear. BPF_PROG_TEST_RUN takes the linear part's size from the context's
/// `data_end` on recent kernels (6.18, where this was written); older ones refuse a `data_end`
/// short of the frame with EINVAL, and the test is skipped there.
#[test]
fn every_fixture_with_its_headers_in_fragments() {
    let mut program = TestProgram::load().unwrap();
    let probe = program.run_split(&[0; 64], 1, Some(14));
    if probe
        .as_ref()
        .is_err_and(|e| e.raw_os_error() == Some(libc::EINVAL))
        && !kernel_at_least(6, 18)
    {
        println!(
            "skipped: BPF_PROG_TEST_RUN on this kernel cannot split the linear part (Linux 6.18+)"
        );
        return;
    }
    probe.expect("BPF_PROG_TEST_RUN with a linear part shorter than the frame (Linux 6.18+)");
    for linear in LINEAR_PARTS {
        run_table(&mut program, Some(linear));
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
        // As the product loads it: the CPU count sizes the tokens taken ahead, and the
        // verifier walks the paths that count allows.
        let mut ebpf = object::loader()
            .load(object::ICMP_GUARD)
            .expect("the object loads");
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

/// A limit as the CLI would build it; these tables use whole seconds, far above any clock tick.
fn limit(rate: u32, burst: u32) -> Limit {
    Limit::new(rate, burst).unwrap()
}

/// The bench's floor programs (`xdp-floor`) are only a floor if they do the work they claim:
/// each case sends ten frames (or `sent`) from one source within a second and counts the
/// actions, and for `xdp_floor` the source's passed and dropped counts. The first echo of a source creates its
/// entry and passes; the rest meet the source bucket, then (for `xdp_floor`) the global
/// budget (ten runs take far less than the second after which a token would come back).
/// `xdp_floor_pass` passes what is not ICMP, and has nothing to say about the rest.
#[test]
fn the_floor_programs_do_their_work() {
    struct Case {
        program: &'static str,
        frame: Vec<u8>,
        echo: Limit,
        global: Limit,
        sent: u64,
        passed: u64,
        /// The source's (passed, dropped) counts, where the program keeps them.
        source: Option<(u64, u64)>,
    }
    const SENT: u64 = 10;
    // A global burst a CPU takes a few tokens of at a time (`bucket::ahead`) on up to 5 CPUs.
    const TAKEN_AHEAD: u32 = 200;
    let lifted = limit(MAX_RATE, u32::MAX);
    let src = [203, 0, 113, 9];
    let frame = echo_from(src);
    let cases = [
        Case {
            program: floor::PASS_PROGRAM,
            frame: l4_frame(IPPROTO_TCP),
            echo: lifted,
            global: lifted,
            sent: SENT,
            passed: SENT,
            source: None,
        },
        // Burst 3: the entry's first token and two more.
        Case {
            program: floor::SOURCE_PROGRAM,
            frame: frame.clone(),
            echo: limit(1, 3),
            global: lifted,
            sent: SENT,
            passed: 3,
            source: None,
        },
        Case {
            program: floor::METER_PROGRAM,
            frame: frame.clone(),
            echo: limit(1, 3),
            global: lifted,
            sent: SENT,
            passed: 3,
            source: Some((3, 7)),
        },
        // The first packet does not reach the global budget; two more fit its burst.
        Case {
            program: floor::METER_PROGRAM,
            frame: frame.clone(),
            echo: lifted,
            global: limit(1, 2),
            sent: SENT,
            passed: 3,
            source: Some((3, 7)),
        },
        // Taken ahead: the entry's packet, then exactly the global burst, whatever the
        // batches (tokens a CPU took and did not spend are passed by its next frames).
        Case {
            program: floor::METER_PROGRAM,
            frame,
            echo: lifted,
            global: limit(1, TAKEN_AHEAD),
            sent: u64::from(TAKEN_AHEAD) + 20,
            passed: u64::from(TAKEN_AHEAD) + 1,
            source: Some((u64::from(TAKEN_AHEAD) + 1, 19)),
        },
    ];
    // The tokens a CPU takes ahead are its own: every frame of a case runs on one CPU.
    pin_to_current_cpu().unwrap();
    for case in cases {
        let ebpf = load_floor(&[case.program], case.echo, case.global)
            .expect("the floor object loads and the verifier accepts its program");
        for _ in 0..case.sent {
            run_once(&ebpf, case.program, &case.frame).unwrap();
        }
        let counters: PerCpuArray<_, u64> =
            PerCpuArray::try_from(ebpf.map(floor::COUNTERS).unwrap()).unwrap();
        let count = |action: u32| counters.get(&action, 0).unwrap().iter().sum::<u64>();
        let what = format!(
            "{} (echo {:?}, global {:?})",
            case.program, case.echo, case.global
        );
        assert_eq!(
            (count(Verdict::Pass.action()), count(Verdict::Drop.action())),
            (case.passed, case.sent - case.passed),
            "{what}: passed and dropped"
        );
        if let Some(expected) = case.source {
            let sources: HashMap<_, SourceKey, SourceRecord> =
                HashMap::try_from(ebpf.map(floor::SOURCES).unwrap()).unwrap();
            let record = sources.get(&SourceKey::v4(src), 0).unwrap();
            assert_eq!(
                (record.passed, record.dropped),
                expected,
                "{what}: the source's counts"
            );
        }
    }
}

/// The live bench's generator makes the frames its mode says: warm and written frames leave
/// with the bytes they came with (a written one had bytes of every cache line stored again,
/// which only the receiving CPU's cache can tell), spoofed ones with the next source from
/// `SPOOF_BASE` up and an IPv4 header checksum that still verifies. A frame it cannot rewrite
/// (not IPv4, or cut before the source) is not sent. Each case runs twice.
#[test]
fn the_generator_makes_the_frames_its_mode_says() {
    /// What leaves.
    #[derive(Clone, Copy, Debug)]
    enum Out {
        /// The frame as it came (`XDP_TX`).
        Same,
        /// The frame with the next spoofed source and its checksum (`XDP_TX`).
        NextSource,
        /// Nothing (`XDP_ABORTED`).
        Nothing,
    }
    const XDP_ABORTED: u32 = 0;
    const XDP_TX: u32 = 3;
    const HEADER: std::ops::Range<usize> = 14..34;
    const CHECKSUM: std::ops::Range<usize> = 24..26;
    const SOURCE: std::ops::Range<usize> = 26..30;
    let echo = echo_from([203, 0, 113, 7]);
    let arp = arp_request([198, 51, 100, 2], [198, 51, 100, 1]);
    let cases: [(&str, Frames, &[u8], Out); 7] = [
        ("an echo left as it is", Frames::Warm, &echo, Out::Same),
        ("an echo written", Frames::Written, &echo, Out::Same),
        ("an echo spoofed", Frames::Spoofed, &echo, Out::NextSource),
        ("ARP left as it is", Frames::Warm, &arp, Out::Same),
        ("ARP written", Frames::Written, &arp, Out::Nothing),
        ("ARP spoofed", Frames::Spoofed, &arp, Out::Nothing),
        (
            "an echo cut before its source, spoofed",
            Frames::Spoofed,
            &echo[..SOURCE.end - 1],
            Out::Nothing,
        ),
    ];
    let mut generator = Generator::load().unwrap();
    for (what, mode, frame, want) in cases {
        generator.frames(mode).unwrap();
        for _ in 0..2 {
            let next = generator.sources_used().unwrap();
            let (action, out) = generator.run_once(frame).unwrap();
            let used = generator.sources_used().unwrap() - next;
            match want {
                Out::Same => {
                    assert_eq!((action, used), (XDP_TX, 0), "{what}");
                    assert_eq!(out, frame, "{what}");
                }
                Out::NextSource => {
                    assert_eq!((action, used), (XDP_TX, 1), "{what}");
                    assert_eq!(out[SOURCE], (SPOOF_BASE + next).to_be_bytes(), "{what}");
                    assert_eq!(checksum(&out[HEADER]), 0, "{what}: header checksum");
                    assert_eq!(out[..CHECKSUM.start], frame[..CHECKSUM.start], "{what}");
                    assert_eq!(out[SOURCE.end..], frame[SOURCE.end..], "{what}");
                }
                Out::Nothing => assert_eq!((action, used), (XDP_ABORTED, 0), "{what}"),
            }
        }
    }
}

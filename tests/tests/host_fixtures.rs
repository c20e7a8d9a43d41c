//! The fixture table on the host: the shared parser, policy and buckets, without a kernel.

use std::cell::Cell;

use icmp_guard_common::{
    Config, Reason, SourceKey, SourceState,
    bucket::{Bucket, Class},
    policy::{self, Budget, Env, Insert, List},
    seen,
};
use icmp_guard_tests::{
    fixtures::{SRC, Tag, Verdict, cases},
    host::HostEnv,
    packet::echo_from,
};

/// Rows in the table, 802.1Q-tagged copies included: a row lost or duplicated by an edit
/// fails here. Change it only together with the rows.
const CASES: usize = 178;

#[test]
fn the_table_has_every_case() {
    assert_eq!(cases().len(), CASES);
}

/// The `VERDICTS.md` entries the table's rows are tagged with: a row edit that drops the last
/// check of an entry fails here.
const VERDICT_ENTRIES: [u8; 55] = [
    1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23, 25, 26, 27, 28, 29,
    30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54,
    55, 56, 58, 68, 73,
];

#[test]
fn the_table_checks_every_verdict_entry_it_did() {
    let mut covered: Vec<u8> = cases()
        .iter()
        .flat_map(|c| c.verdict_entries().collect::<Vec<_>>())
        .collect();
    covered.sort_unstable();
    covered.dedup();
    assert_eq!(covered, VERDICT_ENTRIES);
}

#[test]
fn every_fixture_on_the_host_model() {
    for case in cases() {
        let mut env = HostEnv::new(case.config, &case.allow, &case.deny);
        let mut last = None;
        for step in &case.steps {
            for _ in 0..step.times {
                last = Some(env.run(&step.frame));
            }
        }
        let last = last.expect("a case sends at least one frame");
        assert_eq!(
            Verdict::of(last, &case.config),
            case.verdict,
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
fn every_truncation_of_every_fixture_frame_is_judged_without_panicking() {
    // The slice `Frame` returns None past the end; a truncated ICMP packet must never be
    // metered as if whole, unless the cut only removed Ethernet padding (rows tagged Padding).
    for case in cases() {
        for step in &case.steps {
            for len in 0..step.frame.len() {
                let mut env = HostEnv::new(case.config, &case.allow, &case.deny);
                let reason = env.run(&step.frame[..len]);
                if reason == Reason::Passed {
                    assert!(
                        case.has(Tag::Padding),
                        "{}: truncated to {len} was metered",
                        case.what
                    );
                }
            }
        }
    }
}

/// Every drop is counted in the entry of the source it came from, if the source has one,
/// whichever stage dropped it, so `top_sources` names it: a known source dropped by the global
/// budget, and a new source admitted while the global budget is empty (which gets its entry
/// for that); a known source's oversize echo and fragments, broadcast, unknown-type, malformed
/// and over-budget exempt ICMP. A source refused admission gets no entry, nor does a source
/// never seen whose packet the screening drops; ICMP no quota limits that passes is not
/// counted in an entry. (what, frame, its source's key, verdict, the entry's passed and
/// dropped after.)
#[test]
#[expect(clippy::too_many_lines, reason = "one table of cases, a row per stage")]
fn drops_are_attributed_to_the_source_whatever_stage() {
    use icmp_guard_common::{
        Config, Limit, SourceKey, SourceState, config::defaults::MAX_ECHO_SIZE, parse::Family,
    };
    use icmp_guard_tests::{
        fixtures::{OTHER, SRC6},
        packet::{
            echo_from, echo_to, echo6_from, frag_needed, fragment, icmp4_frame,
            neighbour_solicitation, oversize_echo_from,
        },
    };

    let (third, fourth) = ([203, 0, 113, 77], [203, 0, 113, 78]);
    let config = Config {
        echo: Limit::new(1, 100).unwrap(),
        global: Limit::new(1, 1).unwrap(),
        new_source: Limit::new(1, 3).unwrap(),
        exempt: Limit::new(1, 1).unwrap(),
        ..Config::with_defaults()
    };
    let v4 = SourceKey::v4;
    let v6 = SourceKey { addr: SRC6 }.masked(config.mask(Family::V6));
    // An ICMP type RFC 6918 deprecated (information request).
    let deprecated = icmp4_frame(15, 0);
    let cases = [
        (
            "echo",
            echo_from(SRC),
            v4(SRC),
            Reason::Passed,
            Some((1, 0)),
        ),
        (
            "echo",
            echo_from(SRC),
            v4(SRC),
            Reason::DroppedRateGlobal,
            Some((1, 1)),
        ),
        (
            "first echo",
            echo_from(OTHER),
            v4(OTHER),
            Reason::DroppedRateGlobal,
            Some((0, 1)),
        ),
        (
            "first echo6",
            echo6_from(SRC6),
            v6,
            Reason::DroppedRateGlobal,
            Some((0, 1)),
        ),
        (
            "first echo",
            echo_from(third),
            v4(third),
            Reason::DroppedNewSource,
            None,
        ),
        (
            "oversize echo",
            oversize_echo_from(SRC),
            v4(SRC),
            Reason::DroppedOversize,
            Some((1, 2)),
        ),
        (
            "echo to broadcast",
            echo_to([255; 4]),
            v4(SRC),
            Reason::DroppedBroadcast,
            Some((1, 3)),
        ),
        (
            "deprecated type",
            deprecated,
            v4(SRC),
            Reason::DroppedUnknownType,
            Some((1, 4)),
        ),
        (
            "frag needed",
            frag_needed(1400),
            v4(SRC),
            Reason::PassedExempt,
            Some((1, 4)),
        ),
        (
            "frag needed",
            frag_needed(1400),
            v4(SRC),
            Reason::DroppedRateExempt,
            Some((1, 5)),
        ),
        (
            "fragment past the maximum echo size",
            fragment(MAX_ECHO_SIZE as usize, true, 8),
            v4(SRC),
            Reason::DroppedOversize,
            Some((1, 6)),
        ),
        (
            "forwarded solicitation",
            neighbour_solicitation(SRC6, 64),
            v6,
            Reason::DroppedMalformed,
            Some((0, 2)),
        ),
        (
            "oversize echo",
            oversize_echo_from(fourth),
            v4(fourth),
            Reason::DroppedOversize,
            None,
        ),
    ];
    let mut env = HostEnv::new(config, &[], &[]);
    for (what, frame, key, verdict, entry) in cases {
        assert_eq!(env.run(&frame), verdict, "{what} from {key:?}");
        let entry_now = env.sources.borrow().get(&key).map(SourceState::totals);
        assert_eq!(entry_now, entry, "{what} from {key:?} after {verdict:?}");
    }
}

/// The limits of that attribution, counted by reason only: a screening drop of a source last
/// metered longer ago than the recently-seen window (its entry still in the table), and a drop
/// by the deny list, even of a source with an entry.
#[test]
fn drops_of_quiet_or_denied_sources_are_counted_by_reason_only() {
    use icmp_guard_common::{Config, SourceKey, SourceState, seen};
    use icmp_guard_tests::packet::{echo_from, oversize_echo_from};
    /// (what happens, a change to the environment first, the frame, its verdict, the
    /// source's entry after.)
    type Step = (&'static str, fn(&mut HostEnv), Vec<u8>, Reason, (u64, u64));

    let mut env = HostEnv::new(Config::with_defaults(), &[], &[]);
    let entry = |env: &HostEnv| {
        env.sources
            .borrow()
            .get(&SourceKey::v4(SRC))
            .map(SourceState::totals)
    };
    let denied: icmp_guard::policy::Cidr = format!("{}/32", std::net::Ipv4Addr::from(SRC))
        .parse()
        .unwrap();
    let steps: [Step; 4] = [
        ("an echo", |_| (), echo_from(SRC), Reason::Passed, (1, 0)),
        (
            "an oversize echo after the window",
            |env| env.now_ns += seen::WINDOW_NS + 2 * seen::RESTAMP_NS,
            oversize_echo_from(SRC),
            Reason::DroppedOversize,
            (1, 0),
        ),
        (
            "an echo, recent again",
            |_| (),
            echo_from(SRC),
            Reason::Passed,
            (2, 0),
        ),
        (
            "an echo once denied",
            |env| env.config.deny_entries = 1,
            echo_from(SRC),
            Reason::DroppedDenied,
            (2, 0),
        ),
    ];
    env.deny.push(denied);
    for (what, before, frame, verdict, after) in steps {
        before(&mut env);
        assert_eq!(env.run(&frame), verdict, "{what}");
        assert_eq!(entry(&env), Some(after), "{what}");
    }
}

/// The parser's fast paths (untagged IPv4 that is not ICMP, and whole ICMP packets without IP
/// options, read with one `Frame::peek`) decide every frame they decide as the general parse
/// would: every fixture frame and every truncation of it, parsed with `peek` as the slice
/// gives it and with a `peek` that never answers (on XDP, a frame whose headers are not all
/// in the linear part).
#[test]
fn the_fast_path_decides_as_the_general_parse() {
    use icmp_guard_common::parse::{Fragment, Frame, parse_frame};
    use std::cell::Cell;

    /// A frame whose `peek` answers (`fast`, as the slice would) or never does (only the
    /// general parse runs), and that counts the general parse's reads.
    struct Probe<'a> {
        bytes: &'a [u8],
        fast: bool,
        reads: Cell<usize>,
    }

    impl<'a> Probe<'a> {
        fn new(bytes: &'a [u8], fast: bool) -> Self {
            Self {
                bytes,
                fast,
                reads: Cell::new(0),
            }
        }
    }

    impl Frame for Probe<'_> {
        fn has(&self, offset: usize, len: usize) -> bool {
            self.bytes.has(offset, len)
        }

        fn read<T: Copy>(&self, offset: usize) -> Option<T> {
            self.reads.set(self.reads.get() + 1);
            self.bytes.read(offset)
        }

        fn peek<T: Copy>(&self, offset: usize) -> Option<T> {
            if self.fast {
                self.bytes.read(offset)
            } else {
                None
            }
        }
    }

    // Frames each fast path must decide without a read of the general parse: untagged, the
    // peeked headers whole.
    let (mut not_icmp, mut plain_icmp, mut plain_icmpv6) = (0, 0, 0);
    for case in cases() {
        for step in &case.steps {
            for len in 0..=step.frame.len() {
                let frame = &step.frame[..len];
                let general = parse_frame(&Probe::new(frame, false));
                let fast = Probe::new(frame, true);
                assert_eq!(
                    parse_frame(&fast),
                    general,
                    "{}: truncated to {len}",
                    case.what
                );
                let counter = match (len, frame.get(12..14), general) {
                    (36.., Some([0x08, 0x00]), Err(Reason::PassedNonIcmp)) => &mut not_icmp,
                    (36.., Some([0x08, 0x00]), Ok(pkt))
                        if frame[14] == 0x45 && pkt.fragment == Fragment::None =>
                    {
                        &mut plain_icmp
                    }
                    // ICMPv6 (58) right after the fixed header.
                    (56.., Some([0x86, 0xdd]), Ok(_)) if frame[20] == 58 => &mut plain_icmpv6,
                    _ => continue,
                };
                assert_eq!(
                    fast.reads.get(),
                    0,
                    "{}: truncated to {len}: the fast path left it to the general parse",
                    case.what
                );
                *counter += 1;
            }
        }
    }
    assert!(
        not_icmp > 0,
        "no fixture frame takes the non-ICMP fast path"
    );
    assert!(
        plain_icmp > 0,
        "no fixture frame takes the plain ICMP fast path"
    );
    assert!(
        plain_icmpv6 > 0,
        "no fixture frame takes the plain ICMPv6 fast path"
    );
}

/// The verdict carries the config's flags for every judged ICMP frame, parser drops
/// included, so the program's exit applies dry-run and capture to them; other traffic
/// carries none. (what, frame, the reason, whether the flags come with it)
#[test]
fn verdicts_carry_the_flags_of_judged_icmp_only() {
    use icmp_guard_common::{Config, config::flags, policy};
    use icmp_guard_tests::packet::{Ipv4, echo_from, echo_request, icmp4, ipv4_frame};

    let config = Config {
        flags: flags::DRY_RUN | flags::CAPTURE,
        ..Config::with_defaults()
    };
    let tcp = cases()
        .into_iter()
        .find(|c| c.what.starts_with("TCP"))
        .and_then(|c| c.steps.last().map(|s| s.frame.clone()))
        .expect("a TCP row");
    let malformed = ipv4_frame(&Ipv4 {
        ihl: Some(4),
        ..icmp4(echo_request(56))
    });
    for (what, frame, reason, flagged) in [
        ("an echo", echo_from(SRC), Reason::Passed, true),
        ("a parser drop", malformed, Reason::DroppedMalformed, true),
        ("TCP", tcp, Reason::PassedNonIcmp, false),
    ] {
        let env = HostEnv::new(config, &[], &[]);
        let verdict = policy::verdict(frame.as_slice(), &env);
        assert_eq!(verdict.reason, reason, "{what}");
        let want = if flagged { config.flags } else { 0 };
        assert_eq!(verdict.flags, want, "{what}");
    }
}

/// The host model as one CPU sees the program's maps while another CPU creates the entry of the
/// same new source between this CPU's look and its insert: the rival's entry, `rival`, lands
/// first, so this CPU's insert finds it.
struct RivalInserts<'a> {
    env: &'a HostEnv,
    rival: SourceState,
}

impl Env for RivalInserts<'_> {
    fn config(&self) -> Option<&Config> {
        self.env.config()
    }

    fn now_ns(&self) -> u64 {
        self.env.now_ns()
    }

    fn with_source<R>(&self, key: &SourceKey, f: impl FnOnce(&SourceState) -> R) -> Option<R> {
        self.env.with_source(key, f)
    }

    fn insert_source(&self, key: &SourceKey, state: &SourceState) -> Insert {
        assert_eq!(self.env.insert_source(key, &self.rival), Insert::Created);
        self.env.insert_source(key, state)
    }

    fn with_budget<R>(
        &self,
        budget: Budget,
        f: impl FnOnce(&Bucket, &Cell<u64>) -> R,
    ) -> Option<R> {
        self.env.with_budget(budget, f)
    }

    fn cpus(&self) -> u32 {
        self.env.cpus()
    }

    fn with_admission<R>(&self, class: Class, f: impl FnOnce(&Bucket) -> R) -> Option<R> {
        self.env.with_admission(class, f)
    }

    fn with_seen<R>(&self, line: u32, f: impl FnOnce(&seen::Line) -> R) -> Option<R> {
        self.env.with_seen(line, f)
    }

    fn listed(&self, list: List, bank: u32, addr: &[u8; 16]) -> bool {
        self.env.listed(list, bank, addr)
    }
}

/// The first echoes of a new source on two CPUs at once: the CPU whose insert finds the
/// other's entry charges that entry as a known source's instead of overwriting it, so both
/// packets are counted and both tokens taken (an overwrite lost one of each: `stats` showed
/// 199 passed where the counters had 200, in the two-CPU e2e test).
#[test]
fn a_source_created_by_another_cpu_meanwhile_is_charged_not_overwritten() {
    let env = HostEnv::new(Config::with_defaults(), &[], &[]);
    let now = env.now_ns;
    let limit = env.config.limit(Class::Echo);
    let racing = RivalInserts {
        env: &env,
        rival: SourceState::first(Class::Echo, now, &limit),
    };
    let reason = policy::judge(echo_from(SRC).as_slice(), &racing);
    assert_eq!(reason, Reason::Passed);
    let records = env.records();
    let record = records
        .get(&SourceKey::v4(SRC))
        .expect("the source has its entry");
    assert_eq!((record.passed, record.dropped), (2, 0), "{record:?}");
    assert_eq!(
        record.echo_tat_ns,
        now + 2 * limit.interval_ns,
        "both tokens taken: {record:?}"
    );
}

//! `icmp-guard replay` on the built binary: the fixture table written as pcap and pcapng
//! captures gives the table's counters (and, with `--kernel`, the real program agrees),
//! floods of known rates give the passes the buckets allow and the limits `--suggest` must
//! print, and broken captures fail with the frame at fault, never a panic.

use std::{
    borrow::Cow,
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use icmp_guard::policy::{KNOBS, Overrides};
use icmp_guard_common::{Config, Reason};
use icmp_guard_tests::{
    fixtures::{Case, SRC, cases},
    fuzz::rng::Rng,
    lab::{Scratch, stderr_of, workspace_bin},
    packet::{echo_from, echo_to, oversize_echo_from},
};
use pcap_file::{
    DataLink, Endianness, TsResolution,
    pcap::{PcapHeader, PcapPacket, PcapWriter},
    pcapng::{
        PcapNgWriter,
        blocks::{
            enhanced_packet::EnhancedPacketBlock,
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
        },
    },
};
use serde_json::Value;

/// A capture's time origin: 2026-11-20, in ns.
const T0: u64 = 1_795_651_200_000_000_000;

fn replay(args: &[&str]) -> Output {
    let bin = workspace_bin("icmp-guard").unwrap();
    Command::new(&bin)
        .arg("replay")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawning {} replay {args:?}: {e}", bin.display()))
}

fn json_of(out: &Output, what: &str) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr_of(out)
        )
    })
}

/// `frames` (time stamp in ns, bytes) written as a nanosecond pcap; each record keeps
/// `keep` bytes when given (a short snap length).
fn write_pcap(path: &Path, frames: &[(u64, Vec<u8>)], linktype: DataLink, keep: Option<usize>) {
    let header = PcapHeader {
        snaplen: keep.map_or(262_144, |k| k as u32),
        datalink: linktype,
        ts_resolution: TsResolution::NanoSecond,
        endianness: Endianness::Little,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(File::create(path).unwrap(), header).unwrap();
    for (ts, frame) in frames {
        let data = &frame[..keep.unwrap_or(frame.len()).min(frame.len())];
        let packet = PcapPacket {
            timestamp: Duration::from_nanos(*ts),
            orig_len: frame.len() as u32,
            data: Cow::Borrowed(data),
        };
        w.write_packet(&packet).unwrap();
    }
}

/// `frames` written as pcapng with one interface of `linktype`, nanosecond time stamps.
fn write_pcapng(path: &Path, frames: &[(u64, Vec<u8>)], linktype: DataLink) {
    let on_first: Vec<_> = frames.iter().map(|(ts, f)| (0, *ts, f.clone())).collect();
    write_pcapng_on(path, &[linktype], &on_first);
}

/// A pcapng file describing an interface of each link type, and each frame (interface, time
/// stamp, bytes) on its interface.
fn write_pcapng_on(path: &Path, linktypes: &[DataLink], frames: &[(u32, u64, Vec<u8>)]) {
    let mut w = PcapNgWriter::new(File::create(path).unwrap()).unwrap();
    for linktype in linktypes {
        let idb = InterfaceDescriptionBlock {
            linktype: *linktype,
            snaplen: 0,
            options: vec![InterfaceDescriptionOption::IfTsResol(9)],
        };
        w.write_pcapng_block(idb).unwrap();
    }
    for (interface_id, ts, frame) in frames {
        let epb = EnhancedPacketBlock {
            interface_id: *interface_id,
            timestamp: Duration::from_nanos(*ts),
            original_len: frame.len() as u32,
            data: Cow::Borrowed(frame),
            options: vec![],
        };
        w.write_pcapng_block(epb).unwrap();
    }
}

/// The flags that give `config` on the command line, or None when `set` would refuse it.
fn policy_flags(case: &Case) -> Option<Vec<String>> {
    let cfg: &Config = &case.config;
    let mut overrides = Overrides::default();
    let mut flags = Vec::new();
    for knob in &KNOBS {
        let value = (knob.get)(cfg);
        overrides.set(knob, value);
        flags.push(knob.flag());
        flags.push(value.to_string());
    }
    overrides.apply(&Config::with_defaults(), 0).ok()?;
    if cfg.dry_run() {
        flags.push("--dry-run".into());
    }
    for cidr in &case.allow {
        flags.extend(["--allow".into(), cidr.to_string()]);
    }
    for cidr in &case.deny {
        flags.extend(["--deny".into(), cidr.to_string()]);
    }
    Some(flags)
}

/// Every frame of a case, all at one instant (the table's rows run within one clock tick).
fn case_frames(case: &Case) -> Vec<(u64, Vec<u8>)> {
    case.steps
        .iter()
        .flat_map(|s| (0..s.times).map(|_| (T0, s.frame.clone())))
        .collect()
}

/// Rows whose policy `set` refuses (twice the new-source rate not below the global rate, an
/// exempt budget below its floor of 1000): no command line gives them. Change only together
/// with the rows.
const REFUSED_ROWS: usize = 10;

fn fixture_captures(scratch: &Scratch) -> Vec<(Case, Vec<String>, [PathBuf; 2])> {
    let mut out = Vec::new();
    let mut refused = 0;
    for (i, case) in cases().into_iter().enumerate() {
        let Some(flags) = policy_flags(&case) else {
            refused += 1;
            continue;
        };
        let frames = case_frames(&case);
        let pcap = scratch.file(&format!("case{i}.pcap"));
        let pcapng = scratch.file(&format!("case{i}.pcapng"));
        write_pcap(&pcap, &frames, DataLink::ETHERNET, None);
        write_pcapng(&pcapng, &frames, DataLink::ETHERNET);
        out.push((case, flags, [pcap, pcapng]));
    }
    assert_eq!(refused, REFUSED_ROWS);
    out
}

#[test]
fn the_fixture_table_replays_to_its_counters_from_pcap_and_pcapng() {
    let scratch = Scratch::new().unwrap();
    for (case, flags, files) in fixture_captures(&scratch) {
        for file in &files {
            let mut args = vec![file.to_str().unwrap(), "--json"];
            args.extend(flags.iter().map(String::as_str));
            let out = replay(&args);
            assert!(out.status.success(), "{}: {}", case.what, stderr_of(&out));
            let json = json_of(&out, &case.what);
            for reason in Reason::ALL {
                assert_eq!(
                    json["counters"][reason.name()].as_u64(),
                    Some(case.expected(reason)),
                    "{} ({}): counter {}",
                    case.what,
                    file.display(),
                    reason.name()
                );
            }
            assert_eq!(
                json["judged"].as_u64(),
                Some(case.frames()),
                "{}",
                case.what
            );
        }
    }
}

#[test]
fn the_real_program_agrees_on_every_fixture_capture() {
    let scratch = Scratch::new().unwrap();
    for (case, flags, [pcap, _]) in fixture_captures(&scratch) {
        let mut args = vec![pcap.to_str().unwrap(), "--json", "--kernel"];
        args.extend(flags.iter().map(String::as_str));
        let out = replay(&args);
        assert!(out.status.success(), "{}: {}", case.what, stderr_of(&out));
        let json = json_of(&out, &case.what);
        assert_eq!(
            json["kernel"]["compared"].as_u64(),
            Some(case.frames()),
            "{}",
            case.what
        );
        assert_eq!(
            json["kernel"]["differences_total"].as_u64(),
            Some(0),
            "{}: {}",
            case.what,
            json["kernel"]
        );
    }
}

/// (what, the frames, the refused ones: number and length).
type Refused<'a> = (&'a str, Vec<Vec<u8>>, &'a [(u64, usize)]);

/// (what, the frames, the ones the kernel will not run): those are left out of the
/// comparison, counted and named by number, and the replay goes on to its report (exit 0).
/// `BPF_PROG_TEST_RUN` takes no frame under the 14 bytes of an Ethernet header (EINVAL), nor
/// one larger than it lays out in pages (ENOMEM).
#[test]
fn frames_the_kernel_will_not_run_are_left_out_of_the_comparison_and_named() {
    let scratch = Scratch::new().unwrap();
    let echo = echo_from(SRC);
    let short = echo[..10].to_vec();
    let mut big = echo.clone();
    big.resize(200_000, 0);
    let cases: [Refused; 3] = [
        (
            "a frame shorter than an Ethernet header",
            vec![short.clone(), echo.clone()],
            &[(1, 10)],
        ),
        (
            "a frame larger than a test run lays out",
            vec![echo.clone(), big.clone()],
            &[(2, 200_000)],
        ),
        (
            "both, among frames compared",
            vec![short, echo.clone(), big, echo],
            &[(1, 10), (3, 200_000)],
        ),
    ];
    for (i, (what, frames, refused)) in cases.into_iter().enumerate() {
        let stamped: Vec<_> = (0..)
            .zip(&frames)
            .map(|(n, f)| (T0 + n * 1_000_000, f.clone()))
            .collect();
        let path = scratch.file(&format!("refused{i}.pcap"));
        write_pcap(&path, &stamped, DataLink::ETHERNET, None);
        let out = replay(&[path.to_str().unwrap(), "--kernel", "--json"]);
        assert!(out.status.success(), "{what}: {}", stderr_of(&out));
        let kernel = &json_of(&out, what)["kernel"];
        let listed: Vec<(u64, usize)> = kernel["refused"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: {kernel}"))
            .iter()
            .map(|r| {
                (
                    r["frame"].as_u64().unwrap(),
                    r["bytes"].as_u64().unwrap() as usize,
                )
            })
            .collect();
        assert_eq!(listed, refused, "{what}: {kernel}");
        assert_eq!(kernel["refused_total"].as_u64(), Some(refused.len() as u64));
        assert_eq!(
            kernel["compared"].as_u64(),
            Some((frames.len() - refused.len()) as u64),
            "{what}: {kernel}"
        );
        let text = replay(&[path.to_str().unwrap(), "--kernel"]);
        assert!(text.status.success(), "{what}: {}", stderr_of(&text));
        let text = String::from_utf8_lossy(&text.stdout);
        for (frame, bytes) in refused {
            assert!(
                text.contains(&format!("frame {frame}: {bytes} bytes, ")),
                "{what}: {text}"
            );
        }
    }
}

/// `count` echoes from `src`, `gap_ns` apart from `start_ns`.
fn stream(src: [u8; 4], start_ns: u64, gap_ns: u64, count: u64) -> Vec<(u64, Vec<u8>)> {
    (0..count)
        .map(|i| (T0 + start_ns + i * gap_ns, echo_from(src)))
        .collect()
}

/// A flood of one source at a known rate: what passes is the burst plus the rate times the
/// flood's length, give or take a packet for the coarse clock.
#[test]
fn a_flood_at_a_known_rate_passes_the_burst_plus_the_rate() {
    let scratch = Scratch::new().unwrap();
    // (flood pps, seconds, echo rate, echo burst).
    for (pps, secs, rate, burst) in [
        (100_u64, 10_u64, 20_u64, 50_u64),
        (1000, 5, 5, 10),
        (50, 4, 100, 5),
    ] {
        let frames = stream(SRC, 0, 1_000_000_000 / pps, pps * secs);
        let file = scratch.file(&format!("flood{pps}.pcap"));
        write_pcap(&file, &frames, DataLink::ETHERNET, None);
        let (r, b) = (rate.to_string(), burst.to_string());
        let out = replay(&[
            file.to_str().unwrap(),
            "--json",
            "--echo-rate",
            &r,
            "--echo-burst",
            &b,
        ]);
        assert!(out.status.success(), "{}", stderr_of(&out));
        let json = json_of(&out, "flood");
        let passed = json["counters"]["passed"].as_u64().unwrap();
        let span_ms = (pps * secs - 1) * 1000 / pps;
        let wanted = (burst + rate * span_ms / 1000).min(pps * secs);
        assert!(
            passed.abs_diff(wanted) <= 1,
            "{pps} pps for {secs} s at {rate}/s burst {burst}: {passed} passed, wanted {wanted} +- 1"
        );
        assert_eq!(
            passed + json["counters"]["dropped_rate_source"].as_u64().unwrap(),
            pps * secs
        );
        let seconds = json["timeline"].as_array().unwrap();
        assert_eq!(seconds.len() as u64, secs, "{}", json["timeline"]);
    }
}

/// The replay names sources as `stats` would: a known source's drops by the screening are
/// counted with its own (an oversize echo, an echo to broadcast), a source never seen gets
/// no line for its screened drops. (frames, each source's passed and dropped.)
#[test]
fn screening_drops_are_tallied_to_known_sources() {
    let scratch = Scratch::new().unwrap();
    let unseen = [203, 0, 113, 99];
    let frames: Vec<(u64, Vec<u8>)> = [
        echo_from(SRC),
        oversize_echo_from(SRC),
        echo_to([255; 4]),
        oversize_echo_from(unseen),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, frame)| (T0 + i as u64 * 1_000_000, frame))
    .collect();
    let file = scratch.file("screened.pcap");
    write_pcap(&file, &frames, DataLink::ETHERNET, None);
    let out = replay(&[file.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let json = json_of(&out, "screened");
    let tallies: Vec<(String, u64, u64)> = json["top_sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["source"].as_str().unwrap().to_owned(),
                s["passed"].as_u64().unwrap(),
                s["dropped"].as_u64().unwrap(),
            )
        })
        .collect();
    let src = std::net::Ipv4Addr::from(SRC);
    assert_eq!(tallies, [(format!("{src}/32"), 1, 2)], "{json}");
    assert_eq!(json["counters"]["dropped_oversize"], 2, "{json}");
}

/// Two sources at known steady rates for 20 s: the suggestion at each percentile.
#[test]
fn suggest_prints_the_limits_of_known_rates() {
    let scratch = Scratch::new().unwrap();
    let mut frames = stream([198, 51, 100, 7], 0, 100_000_000, 200);
    frames.extend(stream([203, 0, 113, 9], 0, 20_000_000, 1000));
    frames.sort_by_key(|f| f.0);
    let file = scratch.file("two.pcapng");
    write_pcapng(&file, &frames, DataLink::ETHERNET);
    for (percentile, headroom, wanted) in [
        // Peaks: 10 and 50 a second, 100 and 500 in 10 s; all together 60 and 600.
        (
            "99",
            "1.5",
            "icmp-guard set eth0 --echo-rate 75 --echo-burst 75 --global-rate 201 --global-burst 90",
        ),
        (
            "50",
            "1.5",
            "icmp-guard set eth0 --echo-rate 15 --echo-burst 15 --global-rate 201 --global-burst 90",
        ),
        (
            "50",
            "2",
            "icmp-guard set eth0 --echo-rate 20 --echo-burst 20 --global-rate 201 --global-burst 120",
        ),
    ] {
        let out = replay(&[
            file.to_str().unwrap(),
            "--suggest",
            "--iface",
            "eth0",
            "--percentile",
            percentile,
            "--headroom",
            headroom,
        ]);
        assert!(out.status.success(), "{}", stderr_of(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.lines().any(|l| l == wanted),
            "{percentile} {headroom}: {text}"
        );
        assert!(text.contains("[interface.limits]\necho_rate = "), "{text}");
    }
}

/// A capture whose bytes are `mutate`d from a good one.
fn broken(scratch: &Scratch, name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch.file(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// (what, the capture, words the error must hold, the frames read and judged of the report
/// printed before the error, if one is).
type Broken<'a> = (&'a str, PathBuf, &'a [&'a str], Option<(u64, u64)>);

#[test]
fn broken_captures_fail_naming_the_frame() {
    let scratch = Scratch::new().unwrap();
    let frames = stream(SRC, 0, 1_000_000, 3);
    let good = scratch.file("good.pcap");
    write_pcap(&good, &frames, DataLink::ETHERNET, None);
    let bytes = std::fs::read(&good).unwrap();
    let short = scratch.file("short.pcap");
    write_pcap(&short, &frames, DataLink::ETHERNET, Some(40));
    let wifi = scratch.file("wifi.pcap");
    write_pcap(&wifi, &frames, DataLink::IEEE802_11, None);
    let wifi_ng = scratch.file("wifi.pcapng");
    write_pcapng(&wifi_ng, &frames, DataLink::IEEE802_11);
    // Ethernet frames 1 and 3, the second on a wireless interface.
    let mixed = scratch.file("mixed.pcapng");
    let on: Vec<_> = frames
        .iter()
        .zip([0, 1, 0])
        .map(|((ts, f), id)| (id, *ts, f.clone()))
        .collect();
    write_pcapng_on(&mixed, &[DataLink::ETHERNET, DataLink::IEEE802_11], &on);
    // A record that says it is 16 MiB long in a file that goes on for 9 MiB: a corrupt
    // length, not a file cut short.
    let mut long = bytes.clone();
    long.extend_from_slice(&[0; 8]);
    long.extend_from_slice(&(16u32 << 20).to_le_bytes());
    long.extend_from_slice(&(16u32 << 20).to_le_bytes());
    long.resize(long.len() + (9 << 20), 0);
    let cases: [Broken; 9] = [
        (
            "a file cut inside its last record: the report of the others, then the error",
            broken(&scratch, "cut.pcap", &bytes[..bytes.len() - 10]),
            &["frame 3", "ends inside", "covers the 2 record(s) before it"],
            Some((2, 2)),
        ),
        (
            "a length longer than any frame, the file going on",
            broken(&scratch, "long.pcap", &long),
            &["frame 4", "corrupt length field"],
            None,
        ),
        (
            "a file cut inside its first record",
            broken(&scratch, "cut-first.pcap", &bytes[..40]),
            &["frame 1", "ends inside"],
            None,
        ),
        (
            "a file cut in its header",
            broken(&scratch, "head.pcap", &bytes[..10]),
            &["pcap header"],
            None,
        ),
        ("an unknown link type", wifi, &["link type 105"], None),
        (
            "an unknown link type in pcapng",
            wifi_ng,
            &["frame 1: 3 frame(s)", "link type 105"],
            Some((3, 0)),
        ),
        (
            "an unknown link type beside Ethernet in pcapng: the Ethernet frames judged",
            mixed,
            &["frame 2: 1 frame(s)", "link type 105"],
            Some((3, 2)),
        ),
        (
            "a snap length shorter than the frames",
            short,
            &[
                "frame 1",
                "3 frame(s) were truncated in capture",
                "tcpdump -s 0",
            ],
            Some((3, 0)),
        ),
        (
            "garbage",
            broken(&scratch, "garbage.pcap", b"this is not a capture at all"),
            &["not a pcap or pcapng"],
            None,
        ),
    ];
    for (what, path, words, report) in cases {
        let out = replay(&[path.to_str().unwrap(), "--json"]);
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        for word in words {
            assert!(stderr.contains(word), "{what}: {stderr}");
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let printed = serde_json::from_str::<Value>(&stdout)
            .ok()
            .and_then(|v| Some((v["frames"].as_u64()?, v["judged"].as_u64()?)));
        assert_eq!(printed, report, "{what}: {stdout}");
    }
}

/// A valid file header: a microsecond pcap of link type 1 (`pcapng` false), or a pcapng
/// section header with one Ethernet interface; little-endian.
fn valid_head(pcapng: bool) -> Vec<u8> {
    let words: &[u32] = if pcapng {
        &[
            0x0a0d_0d0a,
            28,
            0x1a2b_3c4d,
            1,
            u32::MAX,
            u32::MAX,
            28,
            1,
            20,
            1,
            0,
            20,
        ]
    } else {
        &[0xa1b2_c3d4, 0x0004_0002, 0, 0, 262_144, 1]
    };
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Random records after a valid head: lengths that mostly hold (pcap records, or pcapng
/// blocks of random types, enhanced packet blocks of interface 0 most often), random
/// contents, and the file cut anywhere in the last one.
fn random_records(rng: &mut Rng, pcapng: bool) -> Vec<u8> {
    let mut body = Vec::new();
    let w32 = |body: &mut Vec<u8>, n: u32| body.extend_from_slice(&n.to_le_bytes());
    for _ in 0..rng.index(8) {
        let len = rng.index(120) as u32;
        let wrong = rng.index(8) == 0;
        let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if pcapng {
            let kinds = [0x0a0d_0d0a, 1, 2, 3, 6, 6, 6, rng.next_u64() as u32];
            let kind = kinds[rng.index(kinds.len())];
            let mut block = Vec::new();
            if kind == 6 && !wrong {
                for word in [0, rng.next_u64() as u32, 0, len, len + rng.index(3) as u32] {
                    w32(&mut block, word);
                }
            }
            block.extend(&data);
            block.resize(block.len().next_multiple_of(4), 0);
            let total = if wrong {
                rng.index(256) as u32
            } else {
                12 + block.len() as u32
            };
            w32(&mut body, kind);
            w32(&mut body, total);
            body.extend(&block);
            w32(&mut body, total);
        } else {
            w32(&mut body, rng.next_u64() as u32);
            w32(&mut body, rng.index(1_100_000) as u32);
            w32(&mut body, if wrong { rng.next_u64() as u32 } else { len });
            w32(&mut body, len + rng.index(3) as u32);
            body.extend(&data);
        }
    }
    body.truncate(body.len().saturating_sub(rng.index(16)));
    body
}

/// Random records behind valid pcap and pcapng headers: the header accepted, then a report
/// (exit 0, or 1 after it for frames skipped or a file cut short) or an error naming the
/// frame (exit 1), never a panic. Behind a bare magic number: exit 0 or 1.
#[test]
fn random_records_never_panic() {
    let scratch = Scratch::new().unwrap();
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut reported = 0;
    for i in 0..200 {
        let pcapng = i % 2 == 1;
        let mut bytes = valid_head(pcapng);
        bytes.extend(random_records(&mut rng, pcapng));
        let path = broken(&scratch, &format!("random{i}"), &bytes);
        let out = replay(&[path.to_str().unwrap(), "--json"]);
        let stderr = stderr_of(&out);
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "{}: {:?} {stderr}",
            path.display(),
            out.status
        );
        assert!(
            code == Some(0) || stderr.contains("frame "),
            "{}: the header refused: {stderr}",
            path.display()
        );
        let frames = serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v["frames"].as_u64());
        if frames.is_some_and(|n| n > 0) {
            reported += 1;
        }
    }
    assert!(reported >= 50, "{reported} of 200 reported records");
    let magics: [&[u8]; 3] = [&[0x4d, 0x3c, 0xb2, 0xa1], &[0x0a, 0x0d, 0x0d, 0x0a], &[]];
    for i in 0..30 {
        let mut bytes = magics[i % magics.len()].to_vec();
        bytes.extend((0..rng.index(300)).map(|_| rng.next_u64() as u8));
        let path = broken(&scratch, &format!("magic{i}"), &bytes);
        let out = replay(&[path.to_str().unwrap()]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}: {:?} {}",
            path.display(),
            out.status,
            stderr_of(&out)
        );
    }
}

/// A lab flood captured by tcpdump on the sending side replays to the counters the live
/// program gave: the same passes and drops, within the one packet a coarse-clock tick may
/// move a bucket's refill (the capture's time stamps and the program's clock tick apart).
#[test]
fn a_captured_lab_flood_replays_to_the_live_counters() {
    use icmp_guard_tests::lab::{Lab, counter};

    let lab = Lab::new().unwrap();
    lab.silence_client().unwrap();
    let iface = lab.guarded_if.clone();
    lab.cli_ok(&["attach", &iface, "--echo-rate", "50", "--echo-burst", "20"])
        .unwrap();
    let capture = lab.scratch.file("flood.pcap");
    let mut tcpdump = lab
        .client
        .enter("tcpdump")
        .args(["-i", &lab.client_if, "-Q", "out", "-U", "-c", "1500", "-w"])
        .arg(&capture)
        .arg("icmp")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // tcpdump says "listening on" once its socket is open; the file exists before that.
    std::thread::sleep(Duration::from_secs(1));
    let before = lab.stats().unwrap();
    // Paced, so tcpdump keeps up: 1,500 echoes over 1.5 s from three sources.
    lab.inject(&[
        "--kind",
        "echo",
        "--count",
        "1500",
        "--pps",
        "1000",
        "--src",
        "203.0.113.7",
        "--sources",
        "3",
    ])
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let after = lab.stats().unwrap();
    // tcpdump stops by itself after the 1,500 frames (`-c`); a SIGINT would cut short what
    // it has received but not yet written.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while matches!(tcpdump.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child, which may have exited already (then it fails).
    unsafe { libc::kill(i32::try_from(tcpdump.id()).unwrap(), libc::SIGINT) };
    let out = tcpdump.wait_with_output().unwrap();
    let said = stderr_of(&out);
    assert!(
        said.contains("1500 packets captured"),
        "tcpdump missed frames: {said}"
    );

    let replayed = json_of(
        &replay(&[
            capture.to_str().unwrap(),
            "--json",
            "--echo-rate",
            "50",
            "--echo-burst",
            "20",
        ]),
        "the lab capture",
    );
    for reason in ["passed", "dropped_rate_source"] {
        let live = counter(&after, reason) - counter(&before, reason);
        let again = replayed["counters"][reason].as_u64().unwrap();
        assert!(
            live.abs_diff(again) <= 3,
            "{reason}: live {live}, replayed {again} (one packet per source at most)"
        );
    }
    assert_eq!(replayed["frames"], 1500, "{replayed}");
}

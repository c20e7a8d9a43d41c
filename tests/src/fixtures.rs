//! The fixture table: every case is a description, the frames sent, the verdict of the last
//! frame and the exact change of every counter. The same table runs on the host model
//! (`tests/host_fixtures.rs`), through `BPF_PROG_TEST_RUN` on the real program
//! (`tests/prog_test_run.rs`), and as the benchmark's inputs.

use icmp_guard_common::{Config, Limit, Reason, config::defaults};

use crate::packet::{
    self, DF, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4,
    MF, echo_request, ether, icmp, ipv4_frame, padded,
};

/// The guarded host.
pub const GUARDED: [u8; 4] = [198, 51, 100, 1];
/// The sending host.
pub const SRC: [u8; 4] = [198, 51, 100, 2];
/// Another sender.
pub const OTHER: [u8; 4] = [203, 0, 113, 9];

/// XDP verdicts as returned by the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    Pass,
}

impl Verdict {
    /// The XDP action number (`XDP_DROP` = 1, `XDP_PASS` = 2).
    #[must_use]
    pub const fn action(self) -> u32 {
        match self {
            Self::Drop => 1,
            Self::Pass => 2,
        }
    }
}

/// `frame` sent `times` times back to back.
#[derive(Clone, Debug)]
pub struct Step {
    pub frame: Vec<u8>,
    pub times: u32,
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Case {
    pub what: &'static str,
    pub config: Config,
    pub steps: Vec<Step>,
    /// Verdict of the last frame sent.
    pub verdict: Verdict,
    /// Counter changes over the whole case; every counter not listed must not change.
    pub counters: Vec<(Reason, u64)>,
}

impl Case {
    fn new(what: &'static str, frame: Vec<u8>, verdict: Verdict, reason: Reason) -> Self {
        Self {
            what,
            config: Config::with_defaults(),
            steps: vec![Step { frame, times: 1 }],
            verdict,
            counters: vec![(reason, 1)],
        }
    }

    /// Frames sent in all.
    #[must_use]
    pub fn frames(&self) -> u64 {
        self.steps.iter().map(|s| u64::from(s.times)).sum()
    }

    /// The expected change of `reason`'s counter.
    #[must_use]
    pub fn expected(&self, reason: Reason) -> u64 {
        self.counters
            .iter()
            .filter(|(r, _)| *r == reason)
            .map(|(_, n)| n)
            .sum()
    }
}

/// A config with the given echo limit and maximum echo size.
#[must_use]
pub fn config(rate: u32, burst: u32, max_echo_size: u32) -> Config {
    Config {
        echo: Limit::new(rate, burst).expect("valid limit"),
        max_echo_size,
        ..Config::with_defaults()
    }
}

/// An IPv4 ICMP packet from [`SRC`] to [`GUARDED`].
#[must_use]
pub fn icmp4(payload: Vec<u8>) -> Ipv4 {
    Ipv4::new(SRC, GUARDED, IPPROTO_ICMP, payload)
}

/// A 98-byte echo request frame (`ping`'s default 56 data bytes) from `src`.
#[must_use]
pub fn echo_from(src: [u8; 4]) -> Vec<u8> {
    ipv4_frame(&Ipv4::new(src, GUARDED, IPPROTO_ICMP, echo_request(56)))
}

/// An IPv4 ICMP fragment from [`SRC`]: `offset` in bytes, `data_len` bytes of payload.
#[must_use]
pub fn fragment(offset: usize, more: bool, data_len: usize) -> Vec<u8> {
    let mut ip = icmp4(vec![0xab; data_len]);
    ip.frag = (offset / 8) as u16 | if more { MF } else { 0 };
    ipv4_frame(&ip)
}

/// Fragmentation needed (type 3 code 4) quoting one of our packets, next-hop MTU `mtu`.
#[must_use]
pub fn frag_needed(mtu: u16) -> Vec<u8> {
    let quoted = Ipv4::new(GUARDED, OTHER, IPPROTO_TCP, vec![0; 8]).bytes();
    let [hi, lo] = mtu.to_be_bytes();
    ipv4_frame(&icmp4(icmp(3, 4, [0, 0, hi, lo], &quoted)))
}

/// A TCP or UDP frame from [`SRC`].
#[must_use]
pub fn l4_frame(proto: u8) -> Vec<u8> {
    ipv4_frame(&Ipv4::new(SRC, GUARDED, proto, vec![0; 20]))
}

/// The table.
#[must_use]
#[expect(clippy::too_many_lines, reason = "a table reads best in one place")]
pub fn cases() -> Vec<Case> {
    use Reason::{
        DroppedMalformed as Malformed, DroppedOversize as Oversize, DroppedRateSource as Rate,
        Passed, PassedExempt as Exempt, PassedNonIcmp as NonIcmp, PassedUnparsed as Unparsed,
    };
    use Verdict::{Drop, Pass};

    let echo = echo_from(SRC);
    let burst = 5;
    let flood_config = config(1, burst, defaults::MAX_ECHO_SIZE);

    let mut cases = vec![
        Case::new("echo request within quota", echo.clone(), Pass, Passed),
        Case {
            what: "flood past the burst: the burst passes, the next drops",
            config: flood_config,
            steps: vec![Step {
                frame: echo.clone(),
                times: burst + 1,
            }],
            verdict: Drop,
            counters: vec![(Passed, u64::from(burst)), (Rate, 1)],
        },
        Case {
            what: "another source is untouched by a flooder's empty bucket",
            config: flood_config,
            steps: vec![
                Step {
                    frame: echo.clone(),
                    times: burst + 3,
                },
                Step {
                    frame: echo_from(OTHER),
                    times: 1,
                },
            ],
            verdict: Pass,
            counters: vec![(Passed, u64::from(burst) + 1), (Rate, 3)],
        },
        Case {
            what: "fragmentation needed from a flooding source is never limited",
            config: flood_config,
            steps: vec![
                Step {
                    frame: echo.clone(),
                    times: burst + 1,
                },
                Step {
                    frame: frag_needed(1400),
                    times: 3,
                },
            ],
            verdict: Pass,
            counters: vec![(Passed, u64::from(burst)), (Rate, 1), (Exempt, 3)],
        },
        Case::new(
            "fragmentation needed with next-hop MTU 68",
            frag_needed(68),
            Pass,
            Exempt,
        ),
        Case::new(
            "time exceeded (traceroute) is never limited",
            ipv4_frame(&icmp4(icmp(11, 0, [0; 4], &[0; 28]))),
            Pass,
            Exempt,
        ),
        Case::new(
            "echo reply is not limited in this version",
            ipv4_frame(&icmp4(icmp(0, 0, [0, 1, 0, 1], &[0; 56]))),
            Pass,
            Exempt,
        ),
        Case::new(
            "timestamp request is metered like echo",
            ipv4_frame(&icmp4(icmp(13, 0, [0, 1, 0, 1], &[0; 12]))),
            Pass,
            Passed,
        ),
        Case::new("TCP passes untouched", l4_frame(IPPROTO_TCP), Pass, NonIcmp),
        Case::new("UDP passes untouched", l4_frame(IPPROTO_UDP), Pass, NonIcmp),
        Case::new(
            "ARP passes untouched",
            packet::arp_request(SRC, GUARDED),
            Pass,
            NonIcmp,
        ),
        Case::new(
            "malformed TCP is not ours to judge",
            ipv4_frame(&Ipv4 {
                ihl: Some(2),
                ..Ipv4::new(SRC, GUARDED, IPPROTO_TCP, vec![0; 20])
            }),
            Pass,
            NonIcmp,
        ),
        Case::new(
            "padded short frame: 28-byte echo in a 60-byte frame",
            padded(ipv4_frame(&icmp4(echo_request(0))), 60),
            Pass,
            Passed,
        ),
        Case::new(
            "IPv4 options (record route): ICMP found at ihl*4",
            ipv4_frame(&Ipv4 {
                options: vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                ..icmp4(echo_request(56))
            }),
            Pass,
            Passed,
        ),
        Case::new(
            "TTL 1 echo is still answered",
            ipv4_frame(&Ipv4 {
                ttl: 1,
                ..icmp4(echo_request(56))
            }),
            Pass,
            Passed,
        ),
        Case::new(
            "DF set, offset 0, no MF: not a fragment",
            ipv4_frame(&Ipv4 {
                frag: DF,
                ..icmp4(echo_request(56))
            }),
            Pass,
            Passed,
        ),
        Case::new(
            "802.1Q-tagged echo is metered",
            ether(ETH_P_IP, &[ETH_P_8021Q], &icmp4(echo_request(56)).bytes()),
            Pass,
            Passed,
        ),
        Case::new(
            "QinQ (802.1ad outer, 802.1Q inner) echo is metered",
            ether(
                ETH_P_IP,
                &[ETH_P_8021AD, ETH_P_8021Q],
                &icmp4(echo_request(56)).bytes(),
            ),
            Pass,
            Passed,
        ),
        Case::new(
            "nine VLAN tags: past the parser's depth, passed and counted",
            ether(
                ETH_P_IP,
                &[ETH_P_8021Q; 9],
                &icmp4(echo_request(56)).bytes(),
            ),
            Pass,
            Unparsed,
        ),
        Case::new(
            "IPv4 ethertype with only the Ethernet header",
            ether(ETH_P_IP, &[], &[]),
            Drop,
            Malformed,
        ),
        Case::new(
            "IHL below 5",
            ipv4_frame(&Ipv4 {
                ihl: Some(4),
                ..icmp4(echo_request(56))
            }),
            Drop,
            Malformed,
        ),
        Case::new(
            "IHL beyond the total length",
            ipv4_frame(&Ipv4 {
                ihl: Some(15),
                tot_len: Some(40),
                ..icmp4(echo_request(56))
            }),
            Drop,
            Malformed,
        ),
        Case::new(
            "total length beyond the frame",
            ipv4_frame(&Ipv4 {
                tot_len: Some(200),
                ..icmp4(echo_request(56))
            }),
            Drop,
            Malformed,
        ),
        Case::new(
            "total length 0",
            ipv4_frame(&Ipv4 {
                tot_len: Some(0),
                ..icmp4(echo_request(56))
            }),
            Drop,
            Malformed,
        ),
        Case::new(
            "version 6 header behind the IPv4 ethertype",
            ipv4_frame(&Ipv4 {
                version: 6,
                ..icmp4(echo_request(56))
            }),
            Drop,
            Malformed,
        ),
        Case::new(
            "ICMP header truncated to 4 bytes",
            ipv4_frame(&icmp4(vec![8, 0, 0, 0])),
            Drop,
            Malformed,
        ),
        Case::new(
            "tiny first fragment: offset 0, MF, no ICMP header",
            fragment(0, true, 0),
            Drop,
            Malformed,
        ),
        Case::new(
            "non-last fragment not a multiple of 8",
            fragment(0, true, 1001),
            Drop,
            Malformed,
        ),
        Case::new(
            "zero-length last fragment",
            fragment(1480, false, 0),
            Drop,
            Malformed,
        ),
        Case::new(
            "later fragment within limits is metered",
            fragment(1480, false, 520),
            Pass,
            Passed,
        ),
        Case {
            what: "first fragment of an echo is metered by its type",
            config: Config::with_defaults(),
            steps: vec![Step {
                frame: {
                    let mut ip = icmp4(echo_request(1472));
                    ip.frag = MF;
                    ipv4_frame(&ip)
                },
                times: 1,
            }],
            verdict: Pass,
            counters: vec![(Passed, 1)],
        },
        Case {
            what: "ping of death boundary: reassembled size exactly 65535 passes",
            config: config(defaults::ECHO_RATE, defaults::ECHO_BURST, 65535),
            steps: vec![Step {
                frame: fragment(65464, false, 51),
                times: 1,
            }],
            verdict: Pass,
            counters: vec![(Passed, 1)],
        },
        Case {
            what: "ping of death: 65536 drops",
            config: config(defaults::ECHO_RATE, defaults::ECHO_BURST, 65535),
            steps: vec![Step {
                frame: fragment(65464, false, 52),
                times: 1,
            }],
            verdict: Drop,
            counters: vec![(Oversize, 1)],
        },
        Case {
            what: "ping of death: offset 65464 with 71 bytes (65555)",
            config: config(defaults::ECHO_RATE, defaults::ECHO_BURST, 65535),
            steps: vec![Step {
                frame: fragment(65464, false, 71),
                times: 1,
            }],
            verdict: Drop,
            counters: vec![(Oversize, 1)],
        },
        Case::new(
            "fragment reaching past --max-echo-size",
            fragment(9200, true, 16),
            Drop,
            Oversize,
        ),
        Case {
            what: "unfragmented echo larger than --max-echo-size",
            config: config(defaults::ECHO_RATE, defaults::ECHO_BURST, 1000),
            steps: vec![Step {
                frame: ipv4_frame(&icmp4(echo_request(1000))),
                times: 1,
            }],
            verdict: Drop,
            counters: vec![(Oversize, 1)],
        },
        Case {
            what: "echo of exactly --max-echo-size passes",
            config: config(defaults::ECHO_RATE, defaults::ECHO_BURST, 1000),
            steps: vec![Step {
                frame: ipv4_frame(&icmp4(echo_request(1000 - 28))),
                times: 1,
            }],
            verdict: Pass,
            counters: vec![(Passed, 1)],
        },
    ];
    // Everything the table checks for untagged echo must hold behind a tag too.
    let tagged: Vec<Case> = cases
        .iter()
        .filter(|c| c.what.starts_with("flood past the burst"))
        .map(|c| Case {
            what: "802.1Q-tagged flood past the burst",
            steps: c
                .steps
                .iter()
                .map(|s| Step {
                    frame: retag(&s.frame, ETH_P_8021Q),
                    times: s.times,
                })
                .collect(),
            ..c.clone()
        })
        .collect();
    cases.extend(tagged);
    cases
}

/// `frame` (untagged) with one VLAN tag inserted.
fn retag(frame: &[u8], tpid: u16) -> Vec<u8> {
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    ether(ethertype, &[tpid], &frame[14..])
}

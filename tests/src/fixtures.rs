//! The fixture table: every case is a description, the frames sent, the verdict of the last
//! frame and the exact change of every counter. The same table runs on the host model
//! (`tests/host_fixtures.rs`), through `BPF_PROG_TEST_RUN` on the real program
//! (`tests/prog_test_run.rs`), and through a live veth in generic and native mode
//! (`tests/replay.rs`). Its frame builders also make the benchmark's inputs.
//!
//! A row that checks an entry of `VERDICTS.md` is written `v(n, "...")`: tagged
//! [`Tag::V`]`(n)` and described `[Vn] ...` for people. Code decides by tags, never by
//! reading descriptions.

use icmp_guard::cidr::Cidr;
use std::fmt::Display;

use icmp_guard_common::{
    Config, Limit, Reason,
    config::{defaults, flags, prefix_mask},
};

use crate::packet::{
    self, ALL_HOSTS_MAC, BROADCAST_MAC, DF, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6,
    ETH_P_LLDP, Ext, ICMP_CHECKSUM, ICMPV6_CHECKSUM, IPPROTO_DSTOPTS, IPPROTO_HOPOPTS,
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPV4_CHECKSUM, Ipv4, Ipv6, LLDP_MAC,
    MF, PacketBuilder, echo_from, echo_request, echo_to, echo6_behind, echo6_from, ether, flipped,
    frag_needed, fragment, icmp_type, icmp4, icmp4_frame,
    icmpv6_type::{
        DEST_UNREACHABLE, ECHO_REPLY, ECHO_REQUEST, MLD_QUERY, MLDV2_REPORT,
        NEIGHBOUR_SOLICITATION, PARAMETER_PROBLEM, ROUTER_ADVERTISEMENT, TIME_EXCEEDED,
    },
    ipv4_frame, ipv6_frame, l4_frame, neighbour_solicitation, packet_too_big, padded, retag,
    to_mac,
};

/// The guarded host.
pub const GUARDED: [u8; 4] = [198, 51, 100, 1];
/// The sending host.
pub const SRC: [u8; 4] = [198, 51, 100, 2];
/// Another sender.
pub const OTHER: [u8; 4] = [203, 0, 113, 9];

/// The guarded host, IPv6.
pub const GUARDED6: [u8; 16] = v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);
/// The sending host, IPv6.
pub const SRC6: [u8; 16] = v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 2]);
/// Another sender in another /64.
pub const OTHER6: [u8; 16] = v6([0x2001, 0xdb8, 0, 1, 0, 0, 0, 9]);
/// The sender's link-local address.
pub const LINK_LOCAL: [u8; 16] = v6([0xfe80, 0, 0, 0, 0, 0, 0, 2]);
/// All nodes.
pub const ALL_NODES: [u8; 16] = v6([0xff02, 0, 0, 0, 0, 0, 0, 1]);
/// The guarded host's solicited-node group.
pub const SOLICITED: [u8; 16] = v6([0xff02, 0, 0, 0, 0, 1, 0xff00, 1]);
/// All MLDv2-capable routers.
pub const MLDV2_ROUTERS: [u8; 16] = v6([0xff02, 0, 0, 0, 0, 0, 0, 0x16]);

/// An IPv6 address from its eight groups.
#[must_use]
pub const fn v6(groups: [u16; 8]) -> [u8; 16] {
    let mut out = [0; 16];
    let mut i = 0;
    while i < 8 {
        let [hi, lo] = groups[i].to_be_bytes();
        out[2 * i] = hi;
        out[2 * i + 1] = lo;
        i += 1;
    }
    out
}

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

    /// The verdict the program's exit gives `reason` under `cfg` (dry-run passes all).
    #[must_use]
    pub const fn of(reason: Reason, cfg: &Config) -> Self {
        if reason.is_drop() && !cfg.dry_run() {
            Self::Drop
        } else {
            Self::Pass
        }
    }
}

/// What a row is, besides its description: the data the runners and the benchmark decide by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// The row checks entry `n` of `VERDICTS.md`.
    V(u8),
    /// The row's frames carry Ethernet padding after the IP packet, so cutting bytes off the
    /// end can leave a whole packet, which is rightly metered.
    Padding,
    /// `icmp-guard-bench` measures the row's last frame under `name`, with the row's config;
    /// with `lift_limits`, the echo and global limits raised to the maximum, so a million
    /// repetitions stay within quota.
    Bench {
        name: &'static str,
        lift_limits: bool,
    },
}

/// A row's description and the tags it is written with.
#[derive(Clone, Debug)]
pub struct Title {
    what: String,
    tags: Vec<Tag>,
}

impl From<&str> for Title {
    fn from(what: &str) -> Self {
        Self {
            what: what.to_owned(),
            tags: Vec::new(),
        }
    }
}

/// A row checking entry `n` of `VERDICTS.md`: tagged [`Tag::V`]`(n)`, described `[Vn] what`.
#[must_use]
pub fn v(n: u8, what: impl Display) -> Title {
    Title {
        what: format!("[V{n}] {what}"),
        tags: vec![Tag::V(n)],
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
    /// For people: the description, `[Vn]` first when the row checks a `VERDICTS.md` entry.
    pub what: String,
    pub tags: Vec<Tag>,
    pub config: Config,
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    pub steps: Vec<Step>,
    /// Verdict of the last frame sent.
    pub verdict: Verdict,
    /// Counter changes over the whole case; every counter not listed must not change.
    pub counters: Vec<(Reason, u64)>,
}

impl Case {
    /// One frame, default config, one counter.
    fn one(title: impl Into<Title>, frame: Vec<u8>, reason: Reason) -> Self {
        let Title { what, tags } = title.into();
        let config = Config::with_defaults(1);
        Self {
            what,
            tags,
            verdict: Verdict::of(reason, &config),
            config,
            allow: Vec::new(),
            deny: Vec::new(),
            steps: vec![Step { frame, times: 1 }],
            counters: vec![(reason, 1)],
        }
    }

    /// The same with another config.
    fn with(mut self, config: Config) -> Self {
        self.config = config;
        self.verdict = match self.counters.as_slice() {
            [(reason, _)] => Verdict::of(*reason, &config),
            _ => self.verdict,
        };
        self
    }

    /// The same with these prefixes on the allow list.
    fn allowing(mut self, prefixes: &[&str]) -> Self {
        self.allow = prefixes.iter().map(|p| cidr(p)).collect();
        self
    }

    /// The same with these prefixes on the deny list.
    fn denying(mut self, prefixes: &[&str]) -> Self {
        self.deny = prefixes.iter().map(|p| cidr(p)).collect();
        self
    }

    /// Several steps with their counters; the verdict is that of `last`.
    fn steps(
        title: impl Into<Title>,
        config: Config,
        steps: Vec<Step>,
        last: Reason,
        counters: Vec<(Reason, u64)>,
    ) -> Self {
        let Title { what, tags } = title.into();
        Self {
            what,
            tags,
            verdict: Verdict::of(last, &config),
            config,
            allow: Vec::new(),
            deny: Vec::new(),
            steps,
            counters,
        }
    }

    /// The same with one more tag.
    fn tagged(mut self, tag: Tag) -> Self {
        self.tags.push(tag);
        self
    }

    /// Whether the row carries `tag`.
    #[must_use]
    pub fn has(&self, tag: Tag) -> bool {
        self.tags.contains(&tag)
    }

    /// The `VERDICTS.md` entries the row checks.
    pub fn verdict_entries(&self) -> impl Iterator<Item = u8> + '_ {
        self.tags.iter().filter_map(|t| match t {
            Tag::V(n) => Some(*n),
            _ => None,
        })
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

    /// The config as the program sees it: with the list sizes the CLI records.
    #[must_use]
    pub fn effective_config(&self) -> Config {
        Config {
            allow_entries: self.allow.len() as u32,
            deny_entries: self.deny.len() as u32,
            ..self.config
        }
    }
}

fn step(frame: Vec<u8>, times: u32) -> Step {
    Step { frame, times }
}

fn cidr(text: &str) -> Cidr {
    text.parse().expect("valid fixture prefix")
}

/// A config with the given echo limit and maximum echo size.
#[must_use]
pub fn config(rate: u32, burst: u32, max_echo_size: u32) -> Config {
    Config {
        echo: Limit::new(rate, burst).expect("valid limit"),
        max_echo_size,
        ..Config::with_defaults(1)
    }
}

/// The table.
#[must_use]
#[expect(clippy::too_many_lines, reason = "a table reads best in one place")]
pub fn cases() -> Vec<Case> {
    use Reason::{
        Allowed, DroppedBroadcast as Broadcast, DroppedDenied as Denied,
        DroppedExtHeaders as ExtHeaders, DroppedMalformed as Malformed, DroppedMartian as Martian,
        DroppedOversize as Oversize, DroppedRateGlobal as Global, DroppedRateReply as ReplyRate,
        DroppedRateSource as Rate, DroppedUnknownType as Unknown, Passed, PassedExempt as Exempt,
        PassedNonIcmp as NonIcmp, PassedUnparsed as Unparsed,
    };

    let echo = echo_from(SRC);
    let echo6 = echo6_from(SRC6);
    let burst = 5;
    let flood = config(1, burst, defaults::MAX_ECHO_SIZE);
    let b = u64::from(burst);
    let pod = config(defaults::ECHO_RATE, defaults::ECHO_BURST, 65535);

    let mut cases = vec![
        // A. L2
        Case::one(
            v(1, "IPv4 ethertype with only the Ethernet header"),
            ether(ETH_P_IP, &[], &[]),
            Malformed,
        ),
        Case::one(
            v(1, "IPv6 ethertype with only the Ethernet header"),
            ether(ETH_P_IPV6, &[], &[]),
            Malformed,
        ),
        Case::one(
            v(2, "ARP passes untouched"),
            packet::arp_request(SRC, GUARDED),
            NonIcmp,
        ),
        Case::one(
            v(2, "LLDP passes untouched"),
            to_mac(
                ether(ETH_P_LLDP, &[], &[2, 7, 4, 0, 0, 0, 0, 0, 1]),
                LLDP_MAC,
            ),
            NonIcmp,
        ),
        Case::one(
            v(2, "802.3 length/LLC frame passes untouched"),
            ether(46, &[], &[0x42, 0x42, 3, 0, 0, 0]),
            NonIcmp,
        ),
        Case::one(
            v(3, "802.1Q-tagged echo is metered"),
            retag(&echo, &[ETH_P_8021Q]),
            Passed,
        ),
        Case::one(
            v(4, "QinQ (802.1ad outer, 802.1Q inner) echo is metered"),
            retag(&echo, &[ETH_P_8021AD, ETH_P_8021Q]),
            Passed,
        ),
        Case::one(
            v(
                5,
                "nine VLAN tags: past the parser's depth, passed and counted",
            ),
            retag(&echo, &[ETH_P_8021Q; 9]),
            Unparsed,
        ),
        Case::one(
            v(5, "VLAN tags to the end of the frame"),
            ether(ETH_P_8021Q, &[ETH_P_8021Q; 3], &[0x81]),
            Unparsed,
        ),
        Case::one(
            v(7, "unicast echo in an Ethernet broadcast frame"),
            to_mac(echo.clone(), BROADCAST_MAC),
            Broadcast,
        ),
        Case::one(
            v(8, "IPv6 header behind the IPv4 ethertype"),
            ipv4_frame(&Ipv4 {
                version: 6,
                ..icmp4(echo_request(56))
            }),
            Malformed,
        ),
        Case::one(
            v(8, "IPv4 header behind the IPv6 ethertype"),
            ipv6_frame(&Ipv6 {
                version: 4,
                ..Ipv6::new(
                    SRC6,
                    GUARDED6,
                    IPPROTO_ICMPV6,
                    vec![ECHO_REQUEST, 0, 0, 0, 0, 0, 0, 0],
                )
            }),
            Malformed,
        ),
        // B. IPv4 header
        Case::one(
            v(9, "IHL below 5"),
            ipv4_frame(&Ipv4 {
                ihl: Some(4),
                ..icmp4(echo_request(56))
            }),
            Malformed,
        ),
        Case::one(
            v(10, "IHL beyond the total length"),
            ipv4_frame(&Ipv4 {
                ihl: Some(15),
                tot_len: Some(40),
                ..icmp4(echo_request(56))
            }),
            Malformed,
        ),
        Case::one(
            v(10, "IHL beyond the captured bytes"),
            ipv4_frame(&Ipv4 {
                ihl: Some(15),
                tot_len: Some(60),
                ..icmp4(vec![8, 0])
            }),
            Malformed,
        ),
        Case::one(
            v(11, "total length beyond the frame"),
            ipv4_frame(&Ipv4 {
                tot_len: Some(200),
                ..icmp4(echo_request(56))
            }),
            Malformed,
        ),
        Case::one(
            v(11, "padded short frame: 28-byte echo in a 60-byte frame"),
            padded(ipv4_frame(&icmp4(echo_request(0))), 60),
            Passed,
        )
        .tagged(Tag::Padding),
        Case::one(
            v(12, "total length 0"),
            ipv4_frame(&Ipv4 {
                tot_len: Some(0),
                ..icmp4(echo_request(56))
            }),
            Malformed,
        ),
        Case::one(
            v(
                13,
                "bad IPv4 header checksum: left to the kernel, which discards it silently",
            ),
            flipped(echo.clone(), IPV4_CHECKSUM),
            Passed,
        ),
        Case::one(
            v(14, "IPv4 options (record route): ICMP found at ihl*4"),
            ipv4_frame(&Ipv4 {
                options: vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                ..icmp4(echo_request(56))
            }),
            Passed,
        ),
        Case::one(
            v(
                14,
                "bad option length: left to the kernel (parameter problem)",
            ),
            ipv4_frame(&Ipv4 {
                options: vec![7, 40, 4, 0],
                ..icmp4(echo_request(56))
            }),
            Passed,
        ),
        Case::one(
            v(16, "TTL 1 echo is still answered"),
            ipv4_frame(&Ipv4 {
                ttl: 1,
                ..icmp4(echo_request(56))
            }),
            Passed,
        ),
        Case::one(
            "malformed TCP is not ours to judge",
            ipv4_frame(&Ipv4 {
                ihl: Some(2),
                ..Ipv4::new(SRC, GUARDED, IPPROTO_TCP, vec![0; 20])
            }),
            NonIcmp,
        ),
        Case::one("TCP passes untouched", l4_frame(IPPROTO_TCP), NonIcmp),
        Case::one("UDP passes untouched", l4_frame(IPPROTO_UDP), NonIcmp),
        // C. IPv4 fragments
        Case::one(
            v(
                17,
                "ping of death boundary: reassembled size exactly 65535 passes",
            ),
            fragment(65464, false, 51),
            Passed,
        )
        .with(pod),
        Case::one(
            v(17, "ping of death: 65536 drops"),
            fragment(65464, false, 52),
            Oversize,
        )
        .with(pod),
        Case::one(
            v(17, "ping of death: offset 65464 with 71 bytes (65555)"),
            fragment(65464, false, 71),
            Oversize,
        )
        .with(pod),
        Case::one(
            v(18, "later fragment reaching past --max-echo-size"),
            fragment(9200, true, 16),
            Oversize,
        ),
        Case::one(
            v(19, "tiny first fragment: offset 0, MF, no ICMP header"),
            fragment(0, true, 0),
            Malformed,
        ),
        Case::one(
            v(20, "non-last fragment not a multiple of 8"),
            fragment(0, true, 1001),
            Malformed,
        ),
        Case::one(
            v(21, "zero-length last fragment"),
            fragment(1480, false, 0),
            Malformed,
        ),
        Case::one(
            v(23, "later fragment within limits is metered"),
            fragment(1480, false, 520),
            Passed,
        ),
        Case::steps(
            v(
                23,
                "a flood of later fragments is cut by the source's bucket",
            ),
            flood,
            vec![step(fragment(1480, true, 1480), burst + 2)],
            Rate,
            vec![(Passed, b), (Rate, 2)],
        ),
        Case::one(
            v(25, "DF set, offset 0, no MF: not a fragment"),
            ipv4_frame(&Ipv4 {
                frag: DF,
                ..icmp4(echo_request(56))
            }),
            Passed,
        ),
        Case::one(
            "first fragment of an echo is metered by its type",
            {
                let mut ip = icmp4(echo_request(1472));
                ip.frag = MF;
                ipv4_frame(&ip)
            },
            Passed,
        ),
        Case::one(
            "unfragmented echo larger than --max-echo-size",
            ipv4_frame(&icmp4(echo_request(1000))),
            Oversize,
        )
        .with(config(defaults::ECHO_RATE, defaults::ECHO_BURST, 1000)),
        Case::one(
            "echo of exactly --max-echo-size passes",
            ipv4_frame(&icmp4(echo_request(1000 - 28))),
            Passed,
        )
        .with(config(defaults::ECHO_RATE, defaults::ECHO_BURST, 1000)),
        // D. ICMPv4
        Case::one(
            v(26, "ICMP header truncated to 4 bytes"),
            ipv4_frame(&icmp4(vec![8, 0, 0, 0])),
            Malformed,
        ),
        Case::one(
            v(26, "destination unreachable truncated to 4 bytes"),
            ipv4_frame(&icmp4(vec![3, 1, 0, 0])),
            Malformed,
        ),
        Case::one(
            v(
                27,
                "bad ICMP checksum: left to the kernel, which sends no reply",
            ),
            flipped(echo.clone(), ICMP_CHECKSUM),
            Passed,
        ),
        Case::one(
            v(28, "fragmentation needed with next-hop MTU 68"),
            frag_needed(68),
            Exempt,
        ),
        Case::one(
            v(28, "fragmentation needed with next-hop MTU 0"),
            frag_needed(0),
            Exempt,
        ),
        Case::steps(
            v(
                28,
                "fragmentation needed from a flooding source is never limited",
            ),
            flood,
            vec![step(echo.clone(), burst + 1), step(frag_needed(1400), 3)],
            Exempt,
            vec![(Passed, b), (Rate, 1), (Exempt, 3)],
        ),
        Case::one(
            v(29, "time exceeded (traceroute) is never limited"),
            icmp4_frame(icmp_type::TIME_EXCEEDED, 0),
            Exempt,
        ),
        Case::one(
            v(29, "host unreachable is never limited"),
            icmp4_frame(
                icmp_type::DEST_UNREACHABLE,
                icmp_type::CODE_HOST_UNREACHABLE,
            ),
            Exempt,
        ),
        Case::one(
            v(29, "redirect is left to the kernel's accept_redirects"),
            icmp4_frame(icmp_type::REDIRECT, icmp_type::CODE_REDIRECT_HOST),
            Exempt,
        ),
        Case::one(
            v(30, "echo to the limited broadcast"),
            echo_to([255, 255, 255, 255]),
            Broadcast,
        ),
        Case::one(
            v(
                30,
                "echo to a subnet-directed broadcast (Ethernet broadcast)",
            ),
            to_mac(echo_to([198, 51, 100, 255]), BROADCAST_MAC),
            Broadcast,
        ),
        Case::one(
            v(30, "echo to 224.0.0.1"),
            to_mac(echo_to([224, 0, 0, 1]), ALL_HOSTS_MAC),
            Broadcast,
        ),
        Case::one(
            v(30, "echo to 224.0.0.1 in a unicast frame"),
            echo_to([224, 0, 0, 1]),
            Broadcast,
        ),
        Case::steps(
            v(
                31,
                "unsolicited echo-reply flood is cut by the reply bucket",
            ),
            Config {
                reply: Limit::new(1, burst).unwrap(),
                ..flood
            },
            vec![step(icmp4_frame(icmp_type::ECHO_REPLY, 0), burst + 1)],
            ReplyRate,
            vec![(Passed, b), (ReplyRate, 1)],
        ),
        Case::steps(
            v(31, "replies and requests have separate buckets"),
            flood,
            vec![
                step(echo.clone(), burst + 1),
                step(icmp4_frame(icmp_type::ECHO_REPLY, 0), 1),
            ],
            Passed,
            vec![(Passed, b + 1), (Rate, 1)],
        ),
        Case::one(
            v(33, "timestamp request is metered like echo"),
            icmp4_frame(icmp_type::TIMESTAMP, 0),
            Passed,
        ),
        Case::one(
            v(33, "timestamp request to the limited broadcast"),
            PacketBuilder::new()
                .ipv4(SRC, [255; 4])
                .icmp(icmp_type::TIMESTAMP)
                .rest([0, 1, 0, 1])
                .data(&[0; 12])
                .build(),
            Broadcast,
        ),
        Case::one(
            "extended echo request (RFC 8335) is metered like echo",
            icmp4_frame(icmp_type::EXTENDED_ECHO_REQUEST, 0),
            Passed,
        ),
        Case::one(
            "router advertisement is never limited",
            icmp4_frame(icmp_type::ROUTER_ADVERTISEMENT, 0),
            Exempt,
        ),
        // B15: martians and non-martians
        Case::one(
            v(15, "source 0.0.0.0"),
            ipv4_frame(&Ipv4::new(
                [0, 0, 0, 0],
                GUARDED,
                IPPROTO_ICMP,
                echo_request(56),
            )),
            Martian,
        ),
        Case::one(
            v(15, "source 127.0.0.1"),
            echo_from([127, 0, 0, 1]),
            Martian,
        ),
        Case::one(
            v(15, "source 224.0.0.5"),
            echo_from([224, 0, 0, 5]),
            Martian,
        ),
        Case::one(
            v(15, "source 240.0.0.1"),
            echo_from([240, 0, 0, 1]),
            Martian,
        ),
        Case::one(
            v(15, "source 255.255.255.255"),
            echo_from([255; 4]),
            Martian,
        ),
        Case::one(
            v(15, "source 10.0.0.1 is not martian"),
            echo_from([10, 0, 0, 1]),
            Passed,
        ),
        Case::one(
            v(15, "source 192.168.1.1 is not martian"),
            echo_from([192, 168, 1, 1]),
            Passed,
        ),
        Case::one(
            v(15, "source 169.254.1.1 is not martian"),
            echo_from([169, 254, 1, 1]),
            Passed,
        ),
        // E. IPv6, extension headers, fragments
        Case::one("ICMPv6 echo request is metered", echo6.clone(), Passed),
        Case::one(
            v(34, "payload length beyond the frame"),
            PacketBuilder::new()
                .ipv6(SRC6, GUARDED6)
                .payload_len(500)
                .icmpv6(ECHO_REQUEST)
                .rest([0; 4])
                .data(&[0; 56])
                .build(),
            Malformed,
        ),
        Case::one(
            v(34, "payload length shorter than the frame (padding)"),
            padded(
                PacketBuilder::new()
                    .ipv6(SRC6, GUARDED6)
                    .icmpv6(ECHO_REQUEST)
                    .build(),
                80,
            ),
            Passed,
        )
        .tagged(Tag::Padding),
        Case::one(
            v(34, "payload length 0 without a jumbo option"),
            ipv6_frame(&Ipv6 {
                payload_len: Some(0),
                ..Ipv6::new(SRC6, GUARDED6, IPPROTO_ICMPV6, vec![0; 8])
            }),
            Malformed,
        ),
        Case::one(
            v(35, "source ff02::1"),
            PacketBuilder::new()
                .ipv6(ALL_NODES, GUARDED6)
                .icmpv6(ECHO_REQUEST)
                .data(&[0; 8])
                .build(),
            Martian,
        ),
        Case::one(
            v(35, "source ::1"),
            PacketBuilder::new()
                .ipv6(v6([0, 0, 0, 0, 0, 0, 0, 1]), GUARDED6)
                .icmpv6(ECHO_REQUEST)
                .data(&[0; 8])
                .build(),
            Martian,
        ),
        Case::one(
            v(35, "destination ::1"),
            PacketBuilder::new()
                .ipv6(SRC6, v6([0, 0, 0, 0, 0, 0, 0, 1]))
                .icmpv6(ECHO_REQUEST)
                .data(&[0; 8])
                .build(),
            Martian,
        ),
        Case::one(
            v(35, "echo from ::"),
            PacketBuilder::new()
                .ipv6([0; 16], GUARDED6)
                .icmpv6(ECHO_REQUEST)
                .data(&[0; 8])
                .build(),
            Martian,
        ),
        Case::one(
            v(35, "duplicate address detection: NS from ::"),
            neighbour_solicitation([0; 16], 255),
            Exempt,
        ),
        Case::one(
            "IPv4-mapped source in an IPv6 packet",
            PacketBuilder::new()
                .ipv6(v6([0, 0, 0, 0, 0, 0xffff, 0xc633, 0x6402]), GUARDED6)
                .icmpv6(ECHO_REQUEST)
                .data(&[0; 8])
                .build(),
            Martian,
        ),
        Case::one(
            v(36, "hop-by-hop after another extension header"),
            echo6_behind(
                vec![Ext::padn(IPPROTO_DSTOPTS), Ext::padn(IPPROTO_HOPOPTS)],
                56,
            ),
            Malformed,
        ),
        Case::one(
            "hop-by-hop first is fine",
            echo6_behind(vec![Ext::padn(IPPROTO_HOPOPTS)], 56),
            Passed,
        ),
        Case::one(
            v(37, "extension header length past the packet"),
            echo6_behind(
                vec![Ext {
                    kind: IPPROTO_DSTOPTS,
                    body: vec![10, 1, 4, 0, 0, 0, 0],
                }],
                8,
            ),
            Malformed,
        ),
        Case::one(
            v(38, "ten destination-options headers: over the parse budget"),
            echo6_behind(vec![Ext::padn(IPPROTO_DSTOPTS); 10], 56),
            ExtHeaders,
        ),
        Case::one(
            "hop-by-hop and four destination-options headers are within the budget",
            echo6_behind(
                [
                    vec![Ext::padn(IPPROTO_HOPOPTS)],
                    vec![Ext::padn(IPPROTO_DSTOPTS); 4],
                ]
                .concat(),
                56,
            ),
            Passed,
        ),
        Case::one(
            "five destination-options headers are over the budget",
            echo6_behind(vec![Ext::padn(IPPROTO_DSTOPTS); 5], 56),
            ExtHeaders,
        ),
        Case::one(
            v(
                39,
                "first fragment whose chain leaves the ICMPv6 header out",
            ),
            ipv6_frame(&Ipv6 {
                exts: vec![Ext::fragment(0, true, 7), Ext::padn(IPPROTO_DSTOPTS)],
                ..Ipv6::new(SRC6, GUARDED6, IPPROTO_ICMPV6, Vec::new())
            }),
            Malformed,
        ),
        Case::one(
            v(40, "non-last fragment not a multiple of 8"),
            echo6_behind(vec![Ext::fragment(0, true, 7)], 50),
            Malformed,
        ),
        Case::one(
            v(40, "offset 65528 plus data past 65535"),
            ipv6_frame(&Ipv6 {
                exts: vec![Ext::fragment(65528, false, 7)],
                ..Ipv6::new(SRC6, GUARDED6, IPPROTO_ICMPV6, vec![0; 16])
            }),
            Oversize,
        )
        .with(pod),
        Case::one(
            v(40, "later IPv6 fragment within limits is metered"),
            ipv6_frame(&Ipv6 {
                exts: vec![Ext::fragment(1232, false, 7)],
                ..Ipv6::new(SRC6, GUARDED6, IPPROTO_ICMPV6, vec![0; 64])
            }),
            Passed,
        ),
        Case::one(
            "later IPv6 fragment of UDP is not ours",
            ipv6_frame(&Ipv6 {
                exts: vec![Ext::fragment(1232, false, 7)],
                ..Ipv6::new(SRC6, GUARDED6, IPPROTO_UDP, vec![0; 64])
            }),
            NonIcmp,
        ),
        Case::steps(
            v(
                41,
                "atomic fragment: metered as a whole packet, not a bypass",
            ),
            Config {
                echo: Limit::new(1, 2).unwrap(),
                ..flood
            },
            vec![step(echo6_behind(vec![Ext::fragment(0, false, 7)], 56), 3)],
            Rate,
            vec![(Passed, 2), (Rate, 1)],
        ),
        Case::one(
            v(43, "two fragment headers"),
            echo6_behind(
                vec![Ext::fragment(0, true, 7), Ext::fragment(0, true, 7)],
                48,
            ),
            Malformed,
        ),
        Case::one(
            v(44, "non-last fragment under 1280 bytes is not dropped"),
            echo6_behind(vec![Ext::fragment(0, true, 7)], 48),
            Passed,
        ),
        Case::one(
            "UDP over IPv6 passes untouched",
            ipv6_frame(&Ipv6::new(SRC6, GUARDED6, IPPROTO_UDP, vec![0; 16])),
            NonIcmp,
        ),
        // F. ICMPv6
        Case::one(
            v(45, "packet too big with MTU 1000"),
            packet_too_big(1000),
            Exempt,
        ),
        Case::steps(
            v(45, "packet too big from a flooding source is never limited"),
            flood,
            vec![
                step(echo6.clone(), burst + 1),
                step(packet_too_big(1280), 3),
            ],
            Exempt,
            vec![(Passed, b), (Rate, 1), (Exempt, 3)],
        ),
        Case::one(
            v(46, "destination unreachable (admin prohibited)"),
            PacketBuilder::new()
                .ipv6(SRC6, GUARDED6)
                .icmpv6(DEST_UNREACHABLE)
                .code(1)
                .data(&[0; 48])
                .build(),
            Exempt,
        ),
        Case::one(
            v(46, "time exceeded, code 0"),
            PacketBuilder::new()
                .ipv6(SRC6, GUARDED6)
                .icmpv6(TIME_EXCEEDED)
                .data(&[0; 48])
                .build(),
            Exempt,
        ),
        Case::one(
            v(46, "parameter problem, code 1"),
            PacketBuilder::new()
                .ipv6(SRC6, GUARDED6)
                .icmpv6(PARAMETER_PROBLEM)
                .code(1)
                .data(&[0; 48])
                .build(),
            Exempt,
        ),
        Case::one(
            v(46, "parameter problem, code 2"),
            PacketBuilder::new()
                .ipv6(SRC6, GUARDED6)
                .icmpv6(PARAMETER_PROBLEM)
                .code(2)
                .data(&[0; 48])
                .build(),
            Exempt,
        ),
        Case::steps(
            v(
                47,
                "neighbour solicitations during a flood are never limited",
            ),
            flood,
            vec![
                step(echo6.clone(), burst + 1),
                step(neighbour_solicitation(LINK_LOCAL, 255), 20),
            ],
            Exempt,
            vec![(Passed, b), (Rate, 1), (Exempt, 20)],
        ),
        Case::one(
            v(47, "router advertisement with hop limit 255"),
            PacketBuilder::new()
                .ipv6(LINK_LOCAL, ALL_NODES)
                .hop_limit(255)
                .icmpv6(ROUTER_ADVERTISEMENT)
                .data(&[0; 16])
                .build(),
            Exempt,
        ),
        Case::one(
            v(47, "neighbour solicitation with hop limit 64 (forwarded)"),
            neighbour_solicitation(LINK_LOCAL, 64),
            Malformed,
        ),
        Case::one(
            v(48, "fragmented neighbour solicitation"),
            PacketBuilder::new()
                .ipv6(LINK_LOCAL, SOLICITED)
                .hop_limit(255)
                .ext(Ext::fragment(0, true, 9))
                .icmpv6(NEIGHBOUR_SOLICITATION)
                .data(&GUARDED6)
                .build(),
            Malformed,
        ),
        Case::one(
            v(49, "MLDv2 report behind a hop-by-hop router alert"),
            PacketBuilder::new()
                .ipv6(LINK_LOCAL, MLDV2_ROUTERS)
                .hop_limit(1)
                .ext(Ext::router_alert())
                .icmpv6(MLDV2_REPORT)
                .data(&[0; 20])
                .build(),
            Exempt,
        ),
        Case::one(
            v(49, "MLD query behind a hop-by-hop router alert"),
            PacketBuilder::new()
                .ipv6(LINK_LOCAL, ALL_NODES)
                .hop_limit(1)
                .ext(Ext::router_alert())
                .icmpv6(MLD_QUERY)
                .data(&[0; 20])
                .build(),
            Exempt,
        ),
        Case::one(
            v(50, "echo to ff02::1 (smurf6)"),
            PacketBuilder::new()
                .ipv6(SRC6, ALL_NODES)
                .icmpv6(ECHO_REQUEST)
                .data(&[0; 56])
                .build(),
            Broadcast,
        ),
        Case::one(
            v(51, "unknown informational type 200"),
            PacketBuilder::new()
                .ipv6(SRC6, GUARDED6)
                .icmpv6(200)
                .data(&[0; 8])
                .build(),
            Unknown,
        ),
        Case::one(
            v(51, "unknown error type 100 is passed up"),
            PacketBuilder::new()
                .ipv6(SRC6, GUARDED6)
                .icmpv6(100)
                .data(&[0; 8])
                .build(),
            Exempt,
        ),
        Case::one(
            v(
                52,
                "bad ICMPv6 checksum: left to the kernel, which sends no reply",
            ),
            flipped(echo6.clone(), ICMPV6_CHECKSUM),
            Passed,
        ),
        Case::one(
            "ICMPv6 echo reply is metered against the reply bucket",
            PacketBuilder::new()
                .ipv6(SRC6, GUARDED6)
                .icmpv6(ECHO_REPLY)
                .data(&[0; 56])
                .build(),
            Passed,
        ),
        // G. Floods
        Case::steps(
            v(53, "flood past the burst: the burst passes, the next drops"),
            flood,
            vec![step(echo.clone(), burst + 1)],
            Rate,
            vec![(Passed, b), (Rate, 1)],
        ),
        Case::steps(
            v(
                53,
                "another source is untouched by a flooder's empty bucket",
            ),
            flood,
            vec![step(echo.clone(), burst + 3), step(echo_from(OTHER), 1)],
            Passed,
            vec![(Passed, b + 1), (Rate, 3)],
        ),
        Case::steps(
            v(53, "ICMPv6 flood past the burst"),
            flood,
            vec![step(echo6.clone(), burst + 1)],
            Rate,
            vec![(Passed, b), (Rate, 1)],
        ),
        Case::steps(
            v(
                54,
                "256 sources across a /24 share one bucket with --v4-prefix 24",
            ),
            Config {
                v4_mask: prefix_mask(96 + 24),
                v4_prefix: 24,
                ..flood
            },
            (0..=255u8)
                .map(|i| step(echo_from([198, 51, 100, i]), 1))
                .collect(),
            Rate,
            vec![(Passed, b), (Rate, 256 - b)],
        ),
        Case::steps(
            v(54, "256 sources each under quota: the global budget binds"),
            Config {
                global_per_cpu: Limit::new(1, 10).unwrap(),
                ..flood
            },
            (0..=255u8)
                .map(|i| step(echo_from([198, 51, 100, i]), 1))
                .collect(),
            Global,
            vec![(Passed, 10), (Global, 246)],
        ),
        Case::steps(
            v(55, "address hopping inside a /64 shares one bucket"),
            flood,
            (2..=10u16)
                .map(|i| step(echo6_from(v6([0x2001, 0xdb8, 0, 0, 0, 0, 0xbeef, i])), 1))
                .collect(),
            Rate,
            vec![(Passed, b), (Rate, 9 - b)],
        ),
        Case::steps(
            v(55, "another /64 is another bucket"),
            flood,
            vec![step(echo6.clone(), burst + 1), step(echo6_from(OTHER6), 1)],
            Passed,
            vec![(Passed, b + 1), (Rate, 1)],
        ),
    ];

    // [V56] Spoofed sources exhaust the global budget; an allow-listed monitor still passes.
    let global_10 = Config {
        global_per_cpu: Limit::new(1, 10).unwrap(),
        ..flood
    };
    let spoofed_then_monitor = (0..50u8)
        .map(|i| step(echo_from([198, 51, 100, i + 10]), 1))
        .chain([step(echo_from(OTHER), 1)])
        .collect();
    cases.extend([
        Case::steps(
            v(
                56,
                "spoofed flood over the global budget; the allow-listed monitor passes",
            ),
            global_10,
            spoofed_then_monitor,
            Allowed,
            vec![(Passed, 10), (Global, 40), (Allowed, 1)],
        )
        .allowing(&["203.0.113.0/24"]),
        // Lists.
        Case::steps(
            "allow list: never rate limited",
            flood,
            vec![step(echo.clone(), burst + 5)],
            Allowed,
            vec![(Allowed, b + 5)],
        )
        .allowing(&["198.51.100.2"]),
        Case::steps(
            "allow list: IPv6 prefix",
            flood,
            vec![step(echo6.clone(), burst + 5)],
            Allowed,
            vec![(Allowed, b + 5)],
        )
        .allowing(&["2001:db8::/48"]),
        Case::steps(
            "deny list: ICMP from the prefix dropped, others pass",
            flood,
            vec![step(echo.clone(), 2), step(echo_from(OTHER), 1)],
            Passed,
            vec![(Denied, 2), (Passed, 1)],
        )
        .denying(&["198.51.100.0/24"]),
        Case::one("deny wins over allow", echo.clone(), Denied)
            .allowing(&["198.51.100.2"])
            .denying(&["198.51.100.0/24"]),
        Case::steps(
            "deny list cannot break NDP or path MTU",
            flood,
            vec![
                step(neighbour_solicitation(LINK_LOCAL, 255), 1),
                step(packet_too_big(1280), 1),
                step(frag_needed(1400), 1),
            ],
            Exempt,
            vec![(Exempt, 3)],
        )
        .denying(&["fe80::/10", "2001:db8::/32", "198.51.100.0/24"]),
    ]);

    // Dry run: everything counted as it would be, nothing dropped.
    let dry = Config {
        flags: flags::DRY_RUN,
        ..flood
    };
    cases.push(Case::steps(
        "dry run: a flood is counted but passes",
        dry,
        vec![step(echo.clone(), burst + 1)],
        Rate,
        vec![(Passed, b), (Rate, 1)],
    ));
    cases.push(
        Case::one(
            "dry run: malformed is counted but passes",
            ipv4_frame(&Ipv4 {
                ihl: Some(4),
                ..icmp4(echo_request(56))
            }),
            Malformed,
        )
        .with(dry),
    );

    // [V32] Deprecated and unknown ICMPv4 types.
    for ty in [
        1u8, 2, 4, 6, 7, 15, 16, 17, 18, 19, 30, 39, 44, 200, 253, 255,
    ] {
        cases.push(Case::one(
            v(32, format_args!("ICMP type {ty} is deprecated or unknown")),
            icmp4_frame(ty, 0),
            Unknown,
        ));
    }

    // [V3] Everything checked for untagged floods (V53), NDP (V47) and smurf (V30) must hold
    // behind a tag too. The benchmark measures the untagged frames only.
    let tagged: Vec<Case> = cases
        .iter()
        .filter(|c| [53, 47, 30].into_iter().any(|n| c.has(Tag::V(n))))
        .map(|c| Case {
            what: format!("{} (802.1Q-tagged)", c.what),
            tags: c
                .tags
                .iter()
                .filter(|t| !matches!(t, Tag::Bench { .. }))
                .copied()
                .collect(),
            steps: c
                .steps
                .iter()
                .map(|s| step(retag(&s.frame, &[ETH_P_8021Q]), s.times))
                .collect(),
            ..c.clone()
        })
        .collect();
    cases.extend(tagged);
    cases
}

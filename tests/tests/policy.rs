//! End to end for the policy: IPv6, neighbour discovery and path MTU under floods, VLAN tags,
//! prefix aggregation, allow and deny lists, dry-run, and value validation.

use anyhow::Result;
use icmp_guard_tests::lab::{Lab, bucket_allows, counter, ip, stderr_of};
use serde_json::Value;

const RATE: u64 = 10;
const BURST: u64 = 20;

fn drops(stats: &Value) -> u64 {
    stats["counters"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.starts_with("dropped_"))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum()
}

/// The most the source's bucket can pass since `started` (see [`bucket_allows`]).
fn ceiling(started: std::time::Instant) -> u64 {
    bucket_allows(BURST, RATE, started)
}

fn attach(lab: &Lab, extra: &[&str]) -> Result<String> {
    let (rate, burst) = (RATE.to_string(), BURST.to_string());
    let mut args = vec![
        "attach",
        &lab.guarded_if,
        "--echo-rate",
        &rate,
        "--echo-burst",
        &burst,
    ];
    args.extend_from_slice(extra);
    lab.cli_ok(&args)
}

#[test]
fn icmpv6_flood_is_limited_while_another_source_pings() {
    let lab = Lab::new().unwrap();
    let started = std::time::Instant::now();
    attach(&lab, &[]).unwrap();
    let report = lab
        .inject(&[
            "--kind",
            "echo6",
            "--src6",
            "2001:db8:0:1::66",
            "--count",
            "2000",
        ])
        .unwrap();
    assert_eq!(report["sent"], 2000);
    assert_eq!(
        lab.ping6(3, "0.2", 10).unwrap(),
        3,
        "ping -6 from another /64 is answered"
    );
    let stats = lab.stats().unwrap();
    let dropped = counter(&stats, "dropped_rate_source");
    assert!(
        dropped >= 2000_u64.saturating_sub(ceiling(started)),
        "{stats}"
    );
    assert_eq!(
        stats["top_sources"][0]["source"], "2001:db8:0:1::/64",
        "{stats}"
    );
    assert_eq!(stats["top_sources"][0]["dropped"], dropped, "{stats}");
}

/// Neither NDP nor packet too big is charged to a source, admission or global budget: 1,000 of
/// them pass the tightest limits there are. (Packet too big does draw from the exempt budget:
/// see `floods.rs`'s "a flood of packet too big meets the exempt budget".)
#[test]
fn neighbour_discovery_and_packet_too_big_pass_the_tightest_quotas() {
    let lab = Lab::new().unwrap();
    // The tightest limits there are (the global rate must stay above both admission
    // budgets together; the exempt budget has a floor of 1000, which the 500 packets too
    // big sent back to back stay within).
    lab.cli_ok(&[
        "attach",
        &lab.guarded_if,
        "--echo-rate",
        "1",
        "--echo-burst",
        "1",
        "--reply-rate",
        "1",
        "--reply-burst",
        "1",
        "--new-source-rate",
        "1",
        "--new-source-burst",
        "1",
        "--global-rate",
        "3",
        "--global-burst",
        "1",
        "--exempt-rate",
        "1000",
        "--exempt-burst",
        "1000",
    ])
    .unwrap();
    lab.inject(&["--kind", "ns", "--src6", "fe80::2", "--count", "500"])
        .unwrap();
    lab.inject(&["--kind", "ptb", "--count", "500"]).unwrap();
    let stats = lab.stats().unwrap();
    assert!(counter(&stats, "passed_exempt") >= 1000, "{stats}");
    assert_eq!(drops(&stats), 0, "{stats}");
    assert_eq!(
        lab.ping6(1, "0.2", 5).unwrap(),
        1,
        "neighbour discovery still works"
    );
}

#[test]
fn tagged_flood_is_limited() {
    let lab = Lab::new().unwrap();
    let started = std::time::Instant::now();
    attach(&lab, &[]).unwrap();
    lab.inject(&["--kind", "echo", "--vlan", "100", "--count", "1000"])
        .unwrap();
    let stats = lab.stats().unwrap();
    assert!(
        counter(&stats, "dropped_rate_source") >= 1000_u64.saturating_sub(ceiling(started)),
        "{stats}"
    );
    assert_eq!(
        stats["top_sources"][0]["source"], "198.51.100.2/32",
        "{stats}"
    );
}

#[test]
fn address_hopping_inside_a_prefix_is_one_source() {
    let lab = Lab::new().unwrap();
    let started = std::time::Instant::now();
    attach(&lab, &["--v4-prefix", "24"]).unwrap();
    lab.inject(&[
        "--kind",
        "echo",
        "--src",
        "198.51.100.10",
        "--sources",
        "200",
        "--count",
        "2000",
    ])
    .unwrap();
    let stats = lab.stats().unwrap();
    let top = &stats["top_sources"];
    assert_eq!(
        top.as_array().unwrap().len(),
        1,
        "one bucket for the /24: {stats}"
    );
    assert_eq!(top[0]["source"], "198.51.100.0/24", "{stats}");
    assert!(
        top[0]["dropped"].as_u64().unwrap() >= 2000_u64.saturating_sub(ceiling(started)),
        "{stats}"
    );
}

/// The sources named in `stats`' top sources.
fn top_sources(lab: &Lab) -> Vec<String> {
    let stats = lab.stats().unwrap();
    stats["top_sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source"].as_str().unwrap().to_owned())
        .collect()
}

/// A live change of prefix length removes the entries made under the old one (their keys
/// were masked with it, and would be shown under the new one: a /32 host as a /24 with host
/// bits set); the other family's are kept.
#[test]
fn a_prefix_change_forgets_the_sources_tracked_under_the_old_one() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    attach(&lab, &[]).unwrap();
    assert_eq!(lab.ping(2, "0.2", 5).unwrap(), 2);
    assert_eq!(lab.ping6(1, "0.2", 5).unwrap(), 1);
    let before = top_sources(&lab);
    assert!(before.contains(&"198.51.100.2/32".to_owned()), "{before:?}");
    let v6: Vec<String> = before.into_iter().filter(|s| s.contains(':')).collect();
    assert_eq!(v6.len(), 1, "{v6:?}");

    let out = lab.cli_ok(&["set", iface, "--v4-prefix", "24"]).unwrap();
    assert!(out.contains("v4_prefix /32 -> /24"), "{out}");
    assert_eq!(top_sources(&lab), v6, "IPv4 sources removed, IPv6 kept");
    assert_eq!(lab.ping(2, "0.2", 5).unwrap(), 2);
    let after = top_sources(&lab);
    assert!(after.contains(&"198.51.100.0/24".to_owned()), "{after:?}");
    assert!(
        !after.iter().any(|s| s.starts_with("198.51.100.2")),
        "{after:?}"
    );

    lab.cli_ok(&["set", iface, "--v6-prefix", "128"]).unwrap();
    assert_eq!(top_sources(&lab), ["198.51.100.0/24"]);
}

#[test]
fn allow_and_deny_lists() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    attach(&lab, &[]).unwrap();

    lab.cli_ok(&["deny", "add", iface, "198.51.100.2"]).unwrap();
    let listed: Value =
        serde_json::from_str(&lab.cli_ok(&["deny", "list", iface, "--json"]).unwrap()).unwrap();
    assert_eq!(listed["prefixes"], serde_json::json!(["198.51.100.2/32"]));
    assert_eq!(
        lab.ping(3, "0.1", 2).unwrap(),
        0,
        "denied source gets no reply"
    );
    // ping keeps sending until its deadline when no reply comes: at least three were denied.
    assert!(counter(&lab.stats().unwrap(), "dropped_denied") >= 3);
    lab.cli_ok(&["deny", "del", iface, "198.51.100.2/32"])
        .unwrap();
    assert_eq!(
        lab.ping(3, "0.1", 5).unwrap(),
        3,
        "answered again once removed"
    );

    lab.cli_ok(&["set", iface, "--echo-rate", "1", "--echo-burst", "1"])
        .unwrap();
    lab.cli_ok(&["allow", "add", iface, "198.51.100.0/24"])
        .unwrap();
    lab.inject(&["--kind", "echo", "--count", "500"]).unwrap();
    let stats = lab.stats().unwrap();
    assert_eq!(counter(&stats, "allowed"), 500, "{stats}");
    assert_eq!(counter(&stats, "dropped_rate_source"), 0, "{stats}");
    let listing: Value = lab.status().unwrap();
    assert_eq!(
        listing[0]["lists"],
        serde_json::json!({"allow": 1, "deny": 0}),
        "{listing}"
    );

    for (bad, why) in [
        ("198.51.100.7/24", "did you mean 198.51.100.0/24"),
        ("198.51.100.0/33", "0 to 32"),
        ("2001:db8::/129", "0 to 128"),
        ("banana", "not an IPv4 or IPv6"),
        // Around ::ffff:0:0/96: `deny add ::/8` once dropped all IPv4 ICMP.
        ("::/8", "would also match every IPv4 source"),
        ("::/0", "would also match every IPv4 source"),
    ] {
        let out = lab.cli(&["allow", "add", iface, bad]).unwrap();
        assert!(!out.status.success(), "{bad} accepted");
        assert!(stderr_of(&out).contains(why), "{bad}: {}", stderr_of(&out));
    }
    let out = lab.cli(&["deny", "del", iface, "203.0.113.0/24"]).unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("is not in the deny list")
            && !stderr_of(&out).contains("invalid prefix"),
        "{}",
        stderr_of(&out)
    );
    let listed: Value =
        serde_json::from_str(&lab.cli_ok(&["allow", "list", iface, "--json"]).unwrap()).unwrap();
    assert_eq!(
        listed["prefixes"],
        serde_json::json!(["198.51.100.0/24"]),
        "refused prefixes left no trace"
    );
}

#[test]
fn dry_run_passes_everything_and_counts() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    lab.cli_ok(&[
        "attach",
        iface,
        "--dry-run",
        "--echo-rate",
        "1",
        "--echo-burst",
        "2",
    ])
    .unwrap();
    assert_eq!(
        lab.ping(10, "0.05", 5).unwrap(),
        10,
        "nothing dropped in a dry run"
    );
    let stats = lab.stats().unwrap();
    assert_eq!(stats["dry_run"], true);
    assert!(
        counter(&stats, "dropped_rate_source") >= 5,
        "drops still counted: {stats}"
    );

    let out = lab.cli_ok(&["set", iface, "--enforce"]).unwrap();
    assert!(!out.contains("DRY RUN"), "{out}");
    assert!(lab.ping(10, "0.05", 3).unwrap() < 10, "enforcing again");
}

#[test]
fn invalid_values_are_rejected_before_anything_is_written() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    for args in [
        vec!["attach", iface, "--v4-prefix", "33"],
        vec!["attach", iface, "--v6-prefix", "129"],
        vec!["attach", iface, "--global-rate", "0"],
        vec!["attach", iface, "--reply-burst", "0"],
        vec!["attach", iface, "--dry-run", "--enforce"],
    ] {
        let out = lab.cli(&args).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
    }
    let out = ip(&["-n", &lab.guarded.name, "link", "show", "dev", iface]).unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("prog/xdp"),
        "nothing attached"
    );

    attach(&lab, &[]).unwrap();
    let before = lab.cli_ok(&["status", "--json"]).unwrap();
    for args in [
        vec!["set", iface, "--v6-prefix", "129"],
        vec!["set", iface, "--echo-burst", "0"],
    ] {
        let out = lab.cli(&args).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    assert_eq!(
        lab.cli_ok(&["status", "--json"]).unwrap(),
        before,
        "config unchanged"
    );
}

#[test]
fn a_full_list_is_reported_not_swallowed() {
    use aya::maps::{
        Map, MapData,
        lpm_trie::{Key, LpmTrie},
    };
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    attach(&lab, &[]).unwrap();
    // Fill the allow list to capacity directly (the CLI would take one process per prefix).
    let pin = lab.pin_dir(iface).join(icmp_guard_common::maps::ALLOW);
    let mut trie: LpmTrie<MapData, [u8; 16], u8> =
        LpmTrie::try_from(Map::from_map_data(MapData::from_pin(&pin).unwrap()).unwrap()).unwrap();
    for i in 0..icmp_guard_common::maps::LIST_MAX_ENTRIES {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        addr[4..8].copy_from_slice(&i.to_be_bytes());
        trie.insert(&Key::new(64, addr), 1, 0).unwrap();
    }
    let out = lab
        .cli(&["allow", "add", iface, "198.51.100.0/24"])
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains(&format!(
            "the allow list of {iface} is full ({} prefixes)",
            icmp_guard_common::maps::LIST_MAX_ENTRIES
        )),
        "{}",
        stderr_of(&out)
    );
}

/// Applying a list was quadratic (each prefix re-read the whole list and rewrote the size: 11 s
/// for 4096). A full list goes in through `attach --config`, then is swapped for one that
/// shares half of it: one map write per prefix the bank not in force lacks or has in excess,
/// none when nothing changes, and the list and its count are exactly the file's. The time
/// bound is only a guard against a hang.
#[test]
fn a_full_list_applies_with_one_write_per_prefix_its_bank_lacks() {
    use icmp_guard::{pinned::Guard, policy::Cidr};
    use icmp_guard_common::policy::List;
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    let max = icmp_guard_common::maps::LIST_MAX_ENTRIES as usize;
    let prefix = |i: usize| format!("10.{}.{}.0/24", i >> 8, i & 0xff);
    let config = lab.scratch.file("full.toml");
    let quoted: Vec<String> = (0..max).map(|i| format!("\"{}\"", prefix(i))).collect();
    std::fs::write(
        &config,
        format!(
            "[[interface]]\nname = \"{iface}\"\nallow = [{}]\n",
            quoted.join(", ")
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    lab.cli_ok(&["attach", "--config", config.to_str().unwrap()])
        .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "applying {max} prefixes hangs: {:?}",
        started.elapsed()
    );
    let out = lab.cli_ok(&["allow", "list", iface, "--json"]).unwrap();
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["prefixes"].as_array().unwrap().len(), max);
    assert_eq!(lab.status().unwrap()[0]["lists"]["allow"], max);

    // The library, as the service uses it: count what a swap of half the list writes. The
    // list goes whole into the bank not in force (empty: the file's list went into the
    // other one), then one config write switches banks.
    let pins = lab.pins(iface);
    let mut guard = Guard::open(pins).unwrap();
    let before = guard.maps.config().unwrap();
    let original = guard.maps.list(List::Allow).unwrap();
    let wanted: Vec<Cidr> = (max / 2..max + max / 2)
        .map(|i| prefix(i).parse().unwrap())
        .collect();
    let changes = guard.maps.set_list(List::Allow, &wanted).unwrap();
    assert_eq!(
        (changes.add.len(), changes.remove.len(), changes.writes()),
        (max, 0, max)
    );
    let mut sorted = wanted.clone();
    sorted.sort();
    assert_eq!(guard.maps.list(List::Allow).unwrap(), sorted);
    let after = guard.maps.config().unwrap();
    assert_eq!(after.allow_entries as usize, max);
    assert_eq!(after.list_bank(), 1 - before.list_bank(), "banks switched");
    // Applying the same list again writes nothing.
    assert_eq!(
        guard.maps.set_list(List::Allow, &wanted).unwrap().writes(),
        0
    );
    // Going back to the previous list writes nothing either: its bank still holds it.
    let back = guard.maps.set_list(List::Allow, &original).unwrap();
    assert_eq!(back.writes(), 0);
    assert_eq!(guard.maps.list(List::Allow).unwrap(), original);
    assert_eq!(guard.maps.config().unwrap().list_bank(), before.list_bank());
}

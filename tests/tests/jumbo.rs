//! Jumbo frames end to end [V68]: the lab's veth pair at MTU 9000, icmp-guard attached by the
//! CLI in native mode (the program is built for multi-buffer XDP, so the driver takes it at
//! that MTU) and in generic mode. Each test builds its own lab with unique names and removes
//! it on drop; traffic stays between the lab's hosts (198.51.100.0/24, 2001:db8::/64) or comes
//! from documentation addresses (203.0.113.0/24); every flood is bounded by count.

use std::time::Instant;

use anyhow::Result;
use icmp_guard_tests::{
    lab::{CLIENT_ADDR, GUARDED_ADDR, GUARDED_ADDR6, Lab, bucket_allows, counter},
    packet::JUMBO_MTU,
};

const RATE: u64 = 10;
const BURST: u64 = 20;
/// Echo data bytes of the jumbo pings and the flood: an 8028-byte datagram.
const JUMBO_DATA: usize = 8000;
/// Echoes in the jumbo flood.
const FLOOD: u64 = 1000;
/// Data bytes per fragment of the jumbo ping of death: eight of 8000 bytes, then 1464 up to
/// offset 65464, then 71 bytes there, reaching 65555.
const POD_PIECE: &str = "8000";
/// Fragments in that train.
const POD_FRAMES: u64 = 10;

/// Attach at MTU 9000 in `mode`; 8000-byte pings answered; a jumbo echo flood cut by the
/// source's bucket; a jumbo ping of death dropped as oversize.
fn jumbo_frames(mode: &str) -> Result<()> {
    let lab = Lab::with_mtu(JUMBO_MTU)?;
    let iface = lab.guarded_if.as_str();
    let started = Instant::now();
    let out = lab.cli_ok(&[
        "attach",
        iface,
        "--mode",
        mode,
        "--echo-rate",
        &RATE.to_string(),
        "--echo-burst",
        &BURST.to_string(),
    ])?;
    assert!(out.contains(&format!("in {mode} mode")), "{out}");
    assert!(!out.contains("native XDP is not available"), "{out}");
    assert_eq!(lab.status()?[0]["mode"], mode);

    // 8000 data bytes that must not be fragmented, both families: the program sees each
    // datagram whole, in several buffers.
    for addr in [GUARDED_ADDR, GUARDED_ADDR6] {
        assert_eq!(lab.ping_unfragmented(addr, JUMBO_DATA, 3)?, 3, "{addr}");
    }
    let before = lab.stats()?;
    assert_eq!(counter(&before, "passed"), 6, "{before}");

    // A bounded flood of jumbo echoes is cut to burst + rate * time, and the drops are the
    // source's bucket's.
    let report = lab.inject(&[
        "--kind",
        "echo",
        "--data",
        &JUMBO_DATA.to_string(),
        "--count",
        &FLOOD.to_string(),
    ])?;
    assert_eq!(report["sent"], FLOOD);
    let ceiling = bucket_allows(BURST, RATE, started);
    let stats = lab.stats()?;
    let passed = counter(&stats, "passed") - counter(&before, "passed");
    let dropped = counter(&stats, "dropped_rate_source");
    assert_eq!(passed + dropped, FLOOD, "every echo counted once: {stats}");
    assert!(dropped > 0, "the flood was cut: {stats}");
    assert_eq!(counter(&stats, "dropped_oversize"), 0, "{stats}");
    let top = &stats["top_sources"][0];
    assert_eq!(top["source"], format!("{CLIENT_ADDR}/32"), "{stats}");
    assert_eq!(top["dropped"], dropped, "{stats}");
    // The pings and the flood share the client's bucket.
    let source_passed = top["passed"].as_u64().unwrap_or_default();
    assert!(
        source_passed <= ceiling,
        "passed {source_passed} > ceiling {ceiling}: {stats}"
    );

    // Jumbo pings of death, each from a source of its own: under the default
    // --max-echo-size (9216) only the first fragment is within it; at 65535 only the last
    // one, past 65535, is dropped. (max echo size, source, passed, oversize).
    let cases = [
        (None, "203.0.113.7", 1, POD_FRAMES - 1),
        (Some("65535"), "203.0.113.8", POD_FRAMES - 1, 1),
    ];
    for (max_echo_size, src, passed, oversize) in cases {
        if let Some(size) = max_echo_size {
            lab.cli_ok(&["set", iface, "--max-echo-size", size])?;
        }
        let before = lab.stats()?;
        let report = lab.inject(&["--kind", "pod", "--piece", POD_PIECE, "--src", src])?;
        assert_eq!(report["sent"], POD_FRAMES, "{src}");
        let after = lab.stats()?;
        let moved = |name| counter(&after, name) - counter(&before, name);
        assert_eq!(moved("passed"), passed, "{src}: {after}");
        assert_eq!(moved("dropped_oversize"), oversize, "{src}: {after}");
    }

    // The host still answers jumbo pings; detach leaves nothing.
    assert_eq!(
        lab.ping_unfragmented(GUARDED_ADDR6, JUMBO_DATA, 2)?,
        2,
        "IPv6 from another bucket"
    );
    lab.cli_ok(&["detach", iface])?;
    assert!(!lab.guarded_has_xdp());
    assert!(!lab.pin_dir(iface).exists());
    Ok(())
}

#[test]
fn jumbo_frames_native() {
    jumbo_frames("native").unwrap();
}

#[test]
fn jumbo_frames_generic() {
    jumbo_frames("generic").unwrap();
}

/// The MTU raised past a page while the guard is attached in native mode [V68]: while a
/// program without multi-buffer support is attached, a driver refuses that (veth caps its
/// peer's MTU at about a page); icmp-guard's is built with it, so the MTU changes and jumbo
/// pings are answered.
#[test]
fn the_mtu_can_be_raised_under_a_native_guard() {
    let lab = Lab::new().unwrap();
    let iface = lab.guarded_if.as_str();
    lab.cli_ok(&["attach", iface, "--mode", "native"]).unwrap();
    lab.set_mtu(JUMBO_MTU).unwrap();
    assert_eq!(
        lab.ping_unfragmented(GUARDED_ADDR, JUMBO_DATA, 2).unwrap(),
        2
    );
    let listing = lab.status().unwrap();
    assert_eq!(listing[0]["mode"], "native", "{listing}");
    let stats = lab.stats().unwrap();
    assert_eq!(counter(&stats, "passed"), 2, "{stats}");
    lab.cli_ok(&["detach", iface]).unwrap();
}

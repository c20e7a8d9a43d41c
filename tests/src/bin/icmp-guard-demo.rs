//! `cargo xtask demo`: icmp-guard containing an ICMP flood on a lab of two network
//! namespaces, with the statistics that explain every drop. Needs no real NIC; removes the
//! lab on exit, on failure and on Ctrl-C.

use std::{
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::{Result, bail};
use icmp_guard_tests::lab::{
    CLIENT_ADDR, CLIENT_ADDR6, GUARDED_ADDR, GUARDED_ADDR6, Lab, workspace_bin,
};

/// Documentation addresses standing in for the flooder.
const FLOODER: &str = "203.0.113.66";
const FLOODER6: &str = "2001:db8:0:1::66";
const FLOOD: u32 = 5000;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn main() -> Result<()> {
    // Ctrl-C, a CI job's timeout (SIGTERM) and a closed terminal (SIGHUP) all end the demo at
    // its next step, which removes the lab on the way out.
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installs an async-signal-safe handler that only stores to an atomic.
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
    let result = demo();
    if INTERRUPTED.load(Ordering::SeqCst) {
        eprintln!("interrupted: the lab has been removed");
    }
    result
}

fn checkpoint() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

fn title(text: &str) {
    println!("\n\x1b[1m== {text}\x1b[0m");
}

fn demo() -> Result<()> {
    title("building a lab: two network namespaces joined by a veth pair");
    let lab = Lab::new()?;
    let iface = lab.guarded_if.clone();
    println!(
        "  guarded host {GUARDED_ADDR} and {GUARDED_ADDR6} on {iface} (namespace {})",
        lab.guarded.name
    );
    println!(
        "  client       {CLIENT_ADDR} and {CLIENT_ADDR6} on {} (namespace {})",
        lab.client_if, lab.client.name
    );
    println!(
        "  pins under a private bpffs at {}",
        lab.bpffs.path.display()
    );
    checkpoint()?;

    let attach = [
        "attach",
        iface.as_str(),
        "--echo-rate",
        "10",
        "--echo-burst",
        "20",
    ];
    title(&format!("icmp-guard {}", attach.join(" ")));
    print!("{}", lab.cli_ok(&attach)?);
    println!("  (the command has exited; the program stays attached through its pinned link)");
    checkpoint()?;

    title(&format!("a monitoring ping from {CLIENT_ADDR}"));
    println!("  {}/3 answered", lab.ping(3, "0.2", 10)?);
    checkpoint()?;

    title(&format!("a flood: {FLOOD} echo requests from {FLOODER}"));
    let capture = lab.scratch.file("flood.pcap");
    let report = captured_flood(&lab, &capture)?;
    println!(
        "  sent {} in {:.3} s",
        report["sent"],
        report["seconds"].as_f64().unwrap_or_default()
    );
    checkpoint()?;

    title(&format!(
        "a ping of death from {FLOODER}: an echo fragmented to 65555 bytes"
    ));
    let report = lab.inject(&["--kind", "pod", "--src", FLOODER])?;
    println!("  sent {} fragments", report["sent"]);
    checkpoint()?;

    title(&format!(
        "an ICMPv6 flood: {FLOOD} echo requests from {FLOODER6}"
    ));
    let report = lab.inject(&[
        "--kind",
        "echo6",
        "--src6",
        FLOODER6,
        "--count",
        &FLOOD.to_string(),
    ])?;
    println!("  sent {}", report["sent"]);
    checkpoint()?;

    title("meanwhile, 200 neighbour solicitations: never limited");
    let report = lab.inject(&["--kind", "ns", "--src6", "fe80::2", "--count", "200"])?;
    println!("  sent {}", report["sent"]);
    checkpoint()?;

    title(&format!(
        "the monitoring ping from {CLIENT_ADDR} again: its own quota is untouched"
    ));
    println!("  {}/3 answered", lab.ping(3, "0.2", 10)?);
    println!(
        "  and over IPv6 from {CLIENT_ADDR6}: {}/3 answered",
        lab.ping6(3, "0.2", 10)?
    );
    checkpoint()?;

    title(&format!("icmp-guard stats {iface}"));
    let out = lab.cli_ok(&["stats", &iface])?;
    print!("{out}");
    checkpoint()?;

    replay_capture(&lab, &capture)?;

    title(&format!("icmp-guard detach {iface}"));
    print!("{}", lab.cli_ok(&["detach", &iface])?);
    let shown = Command::new("ip")
        .args(["-n", &lab.guarded.name, "link", "show", &iface])
        .output()?;
    if String::from_utf8_lossy(&shown.stdout).contains("xdp") {
        bail!("the program is still attached after detach");
    }
    println!(
        "\nDone. Try it on a real interface: {} attach eth0",
        workspace_bin("icmp-guard")?.display()
    );
    Ok(())
}

/// tcpdump on the client side, capturing the echoes it sends (at most the flood) to `file`.
fn start_capture(lab: &Lab, file: &std::path::Path) -> Result<std::process::Child> {
    let child = lab
        .client
        .exec("tcpdump")
        .args(["-i", &lab.client_if, "-Q", "out", "-s", "0", "-U"])
        .args([
            "-c",
            &FLOOD.to_string(),
            "-w",
            file.to_str().unwrap_or_default(),
            "icmp",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // tcpdump needs a moment to open the interface before the flood starts.
    std::thread::sleep(Duration::from_secs(1));
    Ok(child)
}

/// The flood from FLOODER, captured on the sending side into `capture`; the injector's report.
fn captured_flood(lab: &Lab, capture: &std::path::Path) -> Result<serde_json::Value> {
    let mut tcpdump = start_capture(lab, capture)?;
    let report = lab.inject(&[
        "--kind",
        "echo",
        "--src",
        FLOODER,
        "--count",
        &FLOOD.to_string(),
    ]);
    // Stopped whatever the flood did, so it never outlives the lab.
    let stopped = stop_capture(&mut tcpdump);
    let report = report?;
    stopped?;
    Ok(report)
}

/// Ends the capture: it stops by itself at FLOOD packets; a SIGINT ends it if some were missed.
fn stop_capture(tcpdump: &mut std::process::Child) -> Result<()> {
    std::thread::sleep(Duration::from_millis(500));
    if tcpdump.try_wait()?.is_none() {
        // SAFETY: signals the child this process spawned, by its pid.
        unsafe { libc::kill(i32::try_from(tcpdump.id())?, libc::SIGINT) };
    }
    tcpdump.wait()?;
    Ok(())
}

/// The captured flood replayed with the demo's policy and with a stricter one.
fn replay_capture(lab: &Lab, capture: &std::path::Path) -> Result<()> {
    let file = capture.to_str().unwrap_or_default();
    for (what, policy) in [
        (
            "the demo's policy",
            ["--echo-rate", "10", "--echo-burst", "20"],
        ),
        (
            "a stricter policy",
            ["--echo-rate", "2", "--echo-burst", "5"],
        ),
    ] {
        let mut args = vec!["replay", file, "--top", "3"];
        args.extend(policy);
        title(&format!(
            "the captured flood replayed with {what}: icmp-guard {}",
            args.join(" ")
        ));
        print!("{}", lab.cli_ok(&args)?);
        checkpoint()?;
    }
    Ok(())
}

//! `icmp-guard capture` on the lab: what the running program drops, in a pcapng that tcpdump
//! and tshark read, each frame commented with its reason and source prefix.
//!
//! Every flood is bounded by count and every wait by time: a capture runs with `--count` and
//! is killed after [`CAPTURE_DEADLINE`] if it has not stopped by then.

use std::{
    io::Read as _,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Result;
use icmp_guard::pinned::Guard;
use icmp_guard_common::{capture::Control, config::flags, maps};
use icmp_guard_tests::lab::{CLIENT_ADDR, Lab, eventually, run, stderr_of};

const RATE: &str = "10";
const BURST: &str = "20";
/// Echoes per flood: far over the source's burst, so most are dropped_rate_source.
const FLOOD: &str = "1500";
const CAPTURE_DEADLINE: Duration = Duration::from_secs(20);
/// Longer than a capture's lease (`capture::LEASE_NS`), by a second.
const PAST_A_LEASE: Duration =
    Duration::from_nanos(icmp_guard_common::capture::LEASE_NS + 1_000_000_000);

/// A guarded lab with a tight echo quota.
fn guarded_lab() -> Lab {
    let lab = Lab::new().unwrap();
    lab.cli_ok(&[
        "attach",
        &lab.guarded_if,
        "--echo-rate",
        RATE,
        "--echo-burst",
        BURST,
    ])
    .unwrap();
    lab
}

/// The config's flags, read from the pinned config map.
fn config_flags(lab: &Lab) -> u32 {
    let guard = Guard::open(lab.pins(&lab.guarded_if)).unwrap();
    guard.maps.config().unwrap().flags
}

/// Starts `capture` in the background and waits until it has armed the program.
fn start_capture(lab: &Lab, args: &[&str], stdout: Stdio) -> Child {
    let mut full = vec!["capture", lab.guarded_if.as_str()];
    full.extend_from_slice(args);
    let mut child = lab
        .cli_command(&lab.bpffs.path, &full)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let armed = eventually(10, "the capture arms the program", || {
        config_flags(lab) & flags::CAPTURE != 0
    });
    if armed.is_err() {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("capture did not arm: {}", stderr_of(&out));
    }
    child
}

/// Waits for `child` at most [`CAPTURE_DEADLINE`], killing it past that; checks that it
/// succeeded and left the capture bits clear, and returns what it wrote to stderr.
fn finish(lab: &Lab, mut child: Child) -> String {
    let started = Instant::now();
    while started.elapsed() < CAPTURE_DEADLINE {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            let err = stderr_of(&out);
            assert!(out.status.success(), "{err}");
            assert_eq!(
                config_flags(lab) & flags::CAPTURE_BITS,
                0,
                "a capture that stopped leaves the flag clear"
            );
            return err;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "capture still running after {CAPTURE_DEADLINE:?}: {}",
        stderr_of(&out)
    );
}

/// Floods echoes from the client until the capture has stopped, at most `rounds` bounded
/// floods.
fn flood_until_done(lab: &Lab, child: &mut Child, rounds: u32) -> Result<()> {
    for _ in 0..rounds {
        lab.inject(&["--kind", "echo", "--count", FLOOD])?;
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// The lines `cmd` writes to stdout, failing if it fails.
fn lines(cmd: &mut Command) -> Result<Vec<String>> {
    Ok(String::from_utf8(run(cmd)?.stdout)?
        .lines()
        .map(str::to_string)
        .collect())
}

/// `tcpdump -nr FILE`: one line a frame.
fn tcpdump(file: &str) -> Result<Vec<String>> {
    lines(Command::new("tcpdump").args(["-nr", file]))
}

/// The packet comments, as tshark reads them (`frame.comment`, one line a frame).
fn comments(path: &std::path::Path) -> Result<Vec<String>> {
    lines(
        Command::new("tshark")
            .arg("-r")
            .arg(path)
            .args(["-T", "fields", "-e", "frame.comment"]),
    )
}

#[test]
fn a_flood_over_quota_is_captured_with_reason_and_source() {
    let lab = guarded_lab();
    let file = lab.scratch.file("drops.pcapng");
    let path = file.to_str().unwrap();
    let mut child = start_capture(&lab, &["-w", path, "--count", "50"], Stdio::null());
    flood_until_done(&lab, &mut child, 5).unwrap();
    let summary = finish(&lab, child);
    assert!(summary.contains("50 captured"), "{summary}");
    assert!(summary.contains("stopped: count"), "{summary}");
    assert!(summary.contains("dropped_rate_source"), "{summary}");

    let lines = tcpdump(path).unwrap();
    assert_eq!(lines.len(), 50, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains(&format!("{CLIENT_ADDR} > ")) && l.contains("ICMP echo request")),
        "{lines:?}"
    );
    let comments = comments(&file).unwrap();
    assert_eq!(comments.len(), 50, "{comments:?}");
    let want = format!("reason=dropped_rate_source src={CLIENT_ADDR} source={CLIENT_ADDR}/32");
    assert!(comments.iter().all(|c| *c == want), "{comments:?}");
}

/// A change of the bucket prefix during a capture shows in its comments within a second
/// (the capture reads the config again at each renewal of its lease).
#[test]
fn the_comments_follow_a_change_of_prefix() {
    let lab = guarded_lab();
    let file = lab.scratch.file("prefix.pcapng");
    let path = file.to_str().unwrap();
    let child = start_capture(&lab, &["-w", path], Stdio::null());
    lab.inject(&["--kind", "echo", "--count", FLOOD]).unwrap();
    lab.cli_ok(&["set", &lab.guarded_if, "--v4-prefix", "24"])
        .unwrap();
    // The capture reads the config again as it renews its lease: waited for, twice (the
    // first renewal may have read the config just before the change).
    for renewal in 1..=2 {
        let before = lease(&lab);
        eventually(5, "the capture renews its lease", || lease(&lab) != before)
            .unwrap_or_else(|e| panic!("renewal {renewal}: {e}"));
    }
    lab.inject(&["--kind", "echo", "--count", FLOOD]).unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: signals a child of this test.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let summary = finish(&lab, child);
    assert!(summary.contains("stopped: signal"), "{summary}");
    let comments = comments(&file).unwrap();
    let host = format!("source={CLIENT_ADDR}/32");
    let net = "source=198.51.100.0/24";
    let first_net = comments.iter().position(|c| c.ends_with(net));
    let last_host = comments.iter().rposition(|c| c.ends_with(&host));
    assert!(
        matches!((last_host, first_net), (Some(h), Some(n)) if h < n),
        "{host} then {net}: of {} comments, the last {host} is {last_host:?}, the first {net} \
         {first_net:?}; the first: {:?}",
        comments.len(),
        comments.first()
    );
}

/// `--snaplen` cuts every sample to its length (the original length kept), and `--rate`
/// bounds how many the program samples, counting the rest as over the rate.
#[test]
fn snap_length_and_rate_bound_what_is_sampled() {
    let lab = guarded_lab();
    let file = lab.scratch.file("bounded.pcapng");
    let path = file.to_str().unwrap();
    let mut child = start_capture(
        &lab,
        &[
            "-w",
            path,
            "--snaplen",
            "96",
            "--rate",
            "20",
            "--count",
            "10",
        ],
        Stdio::null(),
    );
    flood_until_done(&lab, &mut child, 5).unwrap();
    let summary = finish(&lab, child);
    assert!(summary.contains("10 captured"), "{summary}");
    let over: u64 = summary
        .split(" over --rate")
        .next()
        .and_then(|s| s.rsplit(", ").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count over --rate in {summary}"));
    assert!(over > 0, "a flood of {FLOOD} is over 20/s: {summary}");
    let lengths = lines(Command::new("tshark").arg("-r").arg(&file).args([
        "-T",
        "fields",
        "-e",
        "frame.cap_len",
        "-e",
        "frame.len",
    ]))
    .unwrap();
    assert_eq!(lengths.len(), 10, "{lengths:?}");
    for line in &lengths {
        let (cap, len) = line.split_once('\t').unwrap();
        assert_eq!(cap, "96", "{lengths:?}");
        assert!(len.parse::<u32>().unwrap() > 96, "{lengths:?}");
    }
}

#[test]
fn reasons_filter_what_is_captured() {
    let lab = guarded_lab();
    // Only martians wanted: a flood of over-quota echoes yields nothing, and the capture
    // stops on SIGTERM with the flag cleared.
    let file = lab.scratch.file("martians.pcapng");
    let path = file.to_str().unwrap();
    let child = start_capture(
        &lab,
        &["-w", path, "--reason", "dropped_martian", "--count", "5"],
        Stdio::null(),
    );
    lab.inject(&["--kind", "echo", "--count", FLOOD]).unwrap();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) };
    let err = finish(&lab, child);
    assert!(err.contains("0 captured"), "{err}");
    assert!(err.contains("stopped: signal"), "{err}");
    assert_eq!(tcpdump(path).unwrap().len(), 0);

    // Passes wanted by name: the monitoring ping's echoes, which pass.
    let file = lab.scratch.file("passed.pcapng");
    let path = file.to_str().unwrap();
    let child = start_capture(
        &lab,
        &["-w", path, "--reason", "passed", "--count", "3"],
        Stdio::null(),
    );
    assert_eq!(
        config_flags(&lab) & flags::CAPTURE_BITS,
        flags::CAPTURE_BITS,
        "naming a pass sets the --all bit"
    );
    std::thread::sleep(Duration::from_secs(2)); // the flood's bucket refills
    lab.ping(3, "0.2", 10).unwrap();
    finish(&lab, child);
    let comments = comments(&file).unwrap();
    assert_eq!(comments.len(), 3, "{comments:?}");
    assert!(
        comments.iter().all(|c| c.starts_with("reason=passed ")),
        "{comments:?}"
    );
}

#[test]
fn a_capture_to_stdout_pipes_into_tcpdump() {
    let lab = guarded_lab();
    let mut child = start_capture(&lab, &["-w", "-", "--count", "20"], Stdio::piped());
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).map(|_| bytes)
    });
    flood_until_done(&lab, &mut child, 5).unwrap();
    finish(&lab, child);
    // What came through the pipe, read by tcpdump.
    let bytes = reader.join().unwrap().unwrap();
    let file = lab.scratch.file("stdout.pcapng");
    std::fs::write(&file, bytes).unwrap();
    let lines = tcpdump(file.to_str().unwrap()).unwrap();
    assert_eq!(lines.len(), 20, "{lines:?}");
}

/// What happens to a capture waiting for a reader of its FIFO.
#[derive(Clone, Copy, Debug)]
enum FifoThen {
    /// Nobody reads; after a wait longer than a lease, a second capture is refused (the
    /// waiting one renews its lease), then SIGTERM.
    Signal,
    /// A reader comes, frames flow, then SIGTERM.
    ReaderComes,
    /// The FIFO is renamed and a new one takes its name, each with a reader: the frames go
    /// to the renamed one, the FIFO the capture waited on.
    Renamed,
    /// The FIFO is removed: the capture fails, and makes no file in its place.
    Removed,
    /// Another FIFO takes its place, and a reader opens that one: the capture fails.
    Replaced,
}

/// A capture into a FIFO that nobody reads yet waits for a reader and says so, keeping its
/// lease; a stop signal ends the wait, where `open(2)` would wait through it, and the capture
/// exits 0 with nothing written and the flag clear; a reader that comes gets the frames, from
/// a blocking descriptor, and they go to the FIFO the capture waited on, whatever its name is
/// by then; a FIFO removed meanwhile is not replaced by a regular file, and one put in its
/// place is not written.
#[test]
fn a_capture_into_a_fifo_waits_for_a_reader_and_stops_on_a_signal() {
    let cases = [
        FifoThen::Signal,
        FifoThen::ReaderComes,
        FifoThen::Renamed,
        FifoThen::Removed,
        FifoThen::Replaced,
    ];
    for then in cases {
        let lab = guarded_lab();
        let fifo = lab.scratch.file("capture.fifo");
        mkfifo(&fifo);
        let mut capture = Reaped(Some(start_capture(
            &lab,
            &["-w", fifo.to_str().unwrap(), "--rate", "10000"],
            Stdio::null(),
        )));
        // Long enough for the capture to find no reader and say so.
        std::thread::sleep(Duration::from_millis(500));
        match then {
            FifoThen::Signal => fifo_then_signal(&lab, capture),
            FifoThen::ReaderComes => {
                let received = read_in_background(&fifo);
                fifo_read(&lab, capture, &fifo, &received);
            }
            FifoThen::Renamed => {
                let old = lab.scratch.file("capture.fifo.old");
                std::fs::rename(&fifo, &old).unwrap();
                mkfifo(&fifo);
                let (to_old, to_new) = (read_in_background(&old), read_in_background(&fifo));
                fifo_read(&lab, capture, &old, &to_old);
                assert_eq!(
                    release_reader(&fifo, &to_new),
                    0,
                    "the new FIFO got nothing"
                );
            }
            FifoThen::Removed | FifoThen::Replaced => {
                std::fs::remove_file(&fifo).unwrap();
                let reader = matches!(then, FifoThen::Replaced).then(|| {
                    mkfifo(&fifo);
                    read_in_background(&fifo)
                });
                // It stops at its next try to open the FIFO (every tenth of a second).
                eventually(5, "the capture stops", || {
                    capture.child().try_wait().unwrap().is_some()
                })
                .unwrap();
                let out = capture.finish();
                let err = stderr_of(&out);
                assert_eq!(out.status.code(), Some(1), "{err}");
                assert!(
                    err.contains("opening the capture FIFO")
                        && err.contains("it was removed while the capture waited"),
                    "{err}"
                );
                assert_eq!(config_flags(&lab) & flags::CAPTURE_BITS, 0, "{err}");
                match reader {
                    Some(received) => assert_eq!(release_reader(&fifo, &received), 0),
                    None => assert!(!fifo.exists(), "no file made in its place: {err}"),
                }
            }
        }
    }
}

/// The capture waiting on a FIFO nobody reads: past a lease (3 s) it still holds it, so a
/// second capture is refused (one that took over would stop at once, after its count of
/// none); SIGTERM ends the wait with nothing written.
fn fifo_then_signal(lab: &Lab, mut capture: Reaped) {
    std::thread::sleep(PAST_A_LEASE);
    let out = lab
        .cli(&["capture", &lab.guarded_if, "-w", "-", "--count", "0"])
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("another capture of it is running"), "{err}");
    capture.signal(libc::SIGTERM);
    let err = finish(lab, capture.0.take().unwrap());
    assert!(err.contains("waiting for a reader"), "{err}");
    assert!(
        err.contains(": 0 captured,")
            && err.contains("stopped: signal (before the output was opened"),
        "{err}"
    );
}

/// The capture, waiting on the FIFO now at `fifo` that a reader opened (`received`), writes
/// the frames of a flood into it, blocking, and stops on SIGTERM.
fn fifo_read(
    lab: &Lab,
    mut capture: Reaped,
    fifo: &std::path::Path,
    received: &std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
) {
    flood_until_done(lab, capture.child(), 2).unwrap();
    let flags = fd_flags_of(capture.child().id(), fifo);
    assert_eq!(flags & libc::O_NONBLOCK, 0, "written blocking: {flags:o}");
    capture.signal(libc::SIGTERM);
    let err = finish(lab, capture.0.take().unwrap());
    let bytes = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the reader got to the end")
        .unwrap();
    let file = lab.scratch.file("from-fifo.pcapng");
    std::fs::write(&file, bytes).unwrap();
    assert!(
        !tcpdump(file.to_str().unwrap()).unwrap().is_empty(),
        "{err}"
    );
    assert!(err.contains("waiting for a reader"), "{err}");
    assert!(err.contains("stopped: signal"), "{err}");
}

/// Lets the reader of the FIFO at `path` (`received`), which no capture wrote to, see its
/// end (a writer of our own, closed at once), and returns how many bytes it read.
fn release_reader(
    path: &std::path::Path,
    received: &std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
) -> usize {
    // Blocking: it waits for the reader, if that one is not in its open(2) yet.
    drop(std::fs::OpenOptions::new().write(true).open(path).unwrap());
    received
        .recv_timeout(Duration::from_secs(10))
        .expect("the reader got to the end")
        .unwrap()
        .len()
}

/// Makes a FIFO at `path`, mode 0600.
fn mkfifo(path: &std::path::Path) {
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
}

/// Reads the FIFO at `path` to its end on a thread of its own; what it read arrives on the
/// channel, so a test can wait for it with a deadline.
fn read_in_background(
    path: &std::path::Path,
) -> std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (sent, received) = std::sync::mpsc::channel();
    let from = path.to_path_buf();
    std::thread::spawn(move || sent.send(std::fs::read(from)));
    received
}

/// The status flags (`fdinfo`'s `flags`, octal) of the descriptor process `pid` has open for
/// writing on `path` (not another one on it, such as the `O_PATH` hold of a FIFO).
fn fd_flags_of(pid: u32, path: &std::path::Path) -> i32 {
    let path = path.canonicalize().unwrap();
    let flags_of = |fd: &std::fs::DirEntry| {
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ))
        .ok()?;
        let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
        i32::from_str_radix(flags.trim(), 8).ok()
    };
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|to| to == path))
        .filter_map(|fd| flags_of(&fd))
        .find(|flags| flags & libc::O_ACCMODE == libc::O_WRONLY)
        .unwrap_or_else(|| panic!("{pid} has no descriptor writing {}", path.display()))
}

/// A reader that stops reading (`| tcpdump -c 10 -nr -`, `| head`) stops the capture
/// cleanly under a flood, however much was buffered when the pipe closed.
#[test]
fn a_capture_whose_reader_goes_away_stops_cleanly() {
    let lab = guarded_lab();
    let mut child = start_capture(&lab, &["-w", "-"], Stdio::piped());
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut first = [0u8; 100];
        stdout.read_exact(&mut first)
    });
    flood_until_done(&lab, &mut child, 5).unwrap();
    reader.join().unwrap().unwrap();
    let err = finish(&lab, child);
    assert!(err.contains("output closed"), "{err}");
}

/// A reader that stops reading, without closing the pipe, leaves the capture blocked in a
/// write; SIGTERM still stops it (the write is interrupted, not restarted), and it clears the
/// flag and exits 0, saying why it stopped.
#[test]
fn sigterm_stops_a_capture_blocked_on_its_output() {
    let lab = guarded_lab();
    let mut child = start_capture(&lab, &["-w", "-", "--rate", "10000"], Stdio::piped());
    // Held open and never read.
    let stdout = child.stdout.take().unwrap();
    let wchan = format!("/proc/{}/wchan", child.id());
    // Sleeping in a pipe write (`pipe_write`, `anon_pipe_write` on newer kernels).
    let blocked = || std::fs::read_to_string(&wchan).is_ok_and(|w| w.contains("pipe_write"));
    for _ in 0..20 {
        if blocked() {
            break;
        }
        lab.inject(&["--kind", "echo", "--count", FLOOD]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    if !blocked() {
        let _ = child.kill();
        panic!("the capture never blocked on its output");
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) },
        0
    );
    let err = finish(&lab, child);
    assert!(
        err.contains("stopped: signal (while the output was blocked"),
        "{err}"
    );
    drop(stdout);
}

/// A SIGTERM that lands between two writes (here while the capture is stopped, with samples
/// waiting in the ring and a reader that never reads) leaves the drain writing what was
/// sampled before it: the write the reader takes nothing of is interrupted within a second
/// or two, and the capture stops as above, instead of waiting on the reader for ever.
#[test]
fn sigterm_between_writes_stops_a_capture_whose_output_then_blocks() {
    let lab = guarded_lab();
    let mut capture = Reaped(Some(start_capture(
        &lab,
        &["-w", "-", "--rate", "10000"],
        Stdio::piped(),
    )));
    // Held open and never read.
    let stdout = capture.child().stdout.take().unwrap();
    capture.signal(libc::SIGSTOP);
    // More samples than the pipe holds, taken well within the lease (3 s).
    for _ in 0..2 {
        lab.inject(&["--kind", "echo", "--count", FLOOD]).unwrap();
    }
    capture.signal(libc::SIGTERM);
    capture.signal(libc::SIGCONT);
    let err = finish(&lab, capture.0.take().unwrap());
    assert!(
        err.contains("stopped: signal (while the output was blocked"),
        "{err}"
    );
    drop(stdout);
}

/// (what, FILE, stopped by SIGTERM rather than `--count 0`, the error or None): a capture
/// that wrote no frame still writes its headers, to a new file of mode 0600 (it holds the
/// host's traffic), and fails when they cannot be written (a full disk: `/dev/full`)
/// rather than exit 0 with an empty file.
#[test]
fn a_capture_of_no_frames_writes_its_headers_or_fails() {
    use std::os::unix::fs::PermissionsExt as _;
    let lab = guarded_lab();
    let file = |name: &str| lab.scratch.file(name).to_str().unwrap().to_owned();
    let cases = [
        ("a new file, --count 0", file("none.pcapng"), false, None),
        ("a new file, SIGTERM", file("term.pcapng"), true, None),
        (
            "a full disk, --count 0",
            "/dev/full".to_owned(),
            false,
            Some("No space left on device"),
        ),
        (
            "a full disk, SIGTERM",
            "/dev/full".to_owned(),
            true,
            Some("No space left on device"),
        ),
    ];
    for (what, path, signal, error) in cases {
        let out = if signal {
            let child = start_capture(&lab, &["-w", &path], Stdio::null());
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) };
            child.wait_with_output().unwrap()
        } else {
            lab.cli(&["capture", &lab.guarded_if, "-w", &path, "--count", "0"])
                .unwrap()
        };
        let err = stderr_of(&out);
        assert_eq!(
            config_flags(&lab) & flags::CAPTURE_BITS,
            0,
            "{what}: the flag is cleared"
        );
        if let Some(words) = error {
            assert_eq!(out.status.code(), Some(1), "{what}: {err}");
            assert!(err.contains(words) && err.contains(&path), "{what}: {err}");
            continue;
        }
        assert!(out.status.success(), "{what}: {err}");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{what}");
        assert!(tcpdump(&path).unwrap().is_empty(), "{what}");
        assert!(meta.len() > 0, "{what}: the headers are written");
    }
}

#[test]
fn a_killed_capture_leaves_a_lease_that_runs_out() {
    let lab = guarded_lab();
    let file = lab.scratch.file("killed.pcapng");
    let mut child = start_capture(&lab, &["-w", file.to_str().unwrap()], Stdio::null());
    child.kill().unwrap();
    child.wait().unwrap();
    // SIGKILL leaves the bit set; a second capture is refused while the lease holds, then
    // takes over once it has run out (3 s), and clears the bit when it stops.
    assert_ne!(config_flags(&lab) & flags::CAPTURE, 0);
    let file2 = lab.scratch.file("next.pcapng");
    let path2 = file2.to_str().unwrap();
    let out = lab
        .cli(&["capture", &lab.guarded_if, "-w", path2, "--count", "1"])
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("another capture of it is running"),
        "{}",
        stderr_of(&out)
    );
    std::thread::sleep(PAST_A_LEASE);
    let mut child = start_capture(&lab, &["-w", path2, "--count", "5"], Stdio::null());
    flood_until_done(&lab, &mut child, 5).unwrap();
    let err = finish(&lab, child);
    assert!(err.contains("5 captured"), "{err}");
}

#[test]
fn a_capture_of_an_unguarded_interface_fails_clearly() {
    let lab = Lab::new().unwrap();
    let file = lab.scratch.file("none.pcapng");
    let out = lab
        .cli(&["capture", &lab.guarded_if, "-w", file.to_str().unwrap()])
        .unwrap();
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("{} is not guarded", lab.guarded_if)) && err.contains("attach"),
        "{err}"
    );
    assert!(
        !file.exists(),
        "no file is left by a capture that never started"
    );
}

/// Run as root, a capture never writes through a symbolic link (one left in a shared
/// folder may point anywhere): it says so, writes nothing, and leaves nothing armed.
#[test]
fn a_capture_never_writes_through_a_symbolic_link() {
    let lab = guarded_lab();
    let victim = lab.scratch.file("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let link = lab.scratch.file("capture.pcapng");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let mut child = lab
        .cli_command(
            &lab.bpffs.path,
            &["capture", &lab.guarded_if, "-w", link.to_str().unwrap()],
        )
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a capture that did write through the link would run until killed.
    let ended = eventually(10, "the capture refuses", || {
        child.try_wait().unwrap().is_some()
    });
    if ended.is_err() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!("{} is a symbolic link", link.display())),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(config_flags(&lab) & flags::CAPTURE_BITS, 0, "nothing armed");
}

/// The interface deleted and created again (the kernel detaches the guard): a running
/// capture stops and clears the flag, and a new one says why it cannot start and the fix.
#[test]
fn a_capture_stops_when_the_interface_goes_away() {
    let lab = guarded_lab();
    let file = lab.scratch.file("gone.pcapng");
    let child = start_capture(&lab, &["-w", file.to_str().unwrap()], Stdio::null());
    lab.recreate_link().unwrap();
    let err = finish(&lab, child);
    assert!(
        err.contains("stopped: the guard no longer enforces on the interface of its name"),
        "{err}"
    );
    let out = lab
        .cli(&["capture", &lab.guarded_if, "-w", file.to_str().unwrap()])
        .unwrap();
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("cannot capture on")
            && err.contains("the interface was recreated")
            && err.contains("`icmp-guard attach`"),
        "{err}"
    );
}

/// Pins of a version without capture (no `IG_CAPTURE`, `IG_CAPTURE_CTL`): capture names the
/// upgrade, and after `attach --replace` (which creates and pins the new maps, keeping the
/// rest) it works.
#[test]
fn a_guard_pinned_without_capture_is_upgraded_in_place() {
    let lab = guarded_lab();
    let iface = lab.guarded_if.as_str();
    for map in ["IG_CAPTURE", "IG_CAPTURE_CTL"] {
        std::fs::remove_file(lab.pin_dir(iface).join(map)).unwrap();
    }
    let file = lab.scratch.file("upgraded.pcapng");
    let path = file.to_str().unwrap();
    let out = lab
        .cli(&["capture", iface, "-w", path, "--count", "1"])
        .unwrap();
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("without capture") && err.contains(&format!("attach {iface} --replace")),
        "{err}"
    );
    assert_eq!(config_flags(&lab) & flags::CAPTURE_BITS, 0, "nothing armed");

    let out = lab.cli_ok(&["attach", iface, "--replace"]).unwrap();
    assert!(out.contains("replaced program"), "{out}");
    for map in ["IG_CAPTURE", "IG_CAPTURE_CTL"] {
        assert!(lab.pin_dir(iface).join(map).exists(), "{map} pinned again");
    }
    let mut child = start_capture(&lab, &["-w", path, "--count", "3"], Stdio::null());
    flood_until_done(&lab, &mut child, 5).unwrap();
    finish(&lab, child);
    assert_eq!(tcpdump(path).unwrap().len(), 3);
}

/// The lease the capture control holds now.
fn lease(lab: &Lab) -> u64 {
    let path = lab.pins(&lab.guarded_if).map(maps::CAPTURE_CTL);
    let map = aya::maps::Map::from_map_data(aya::maps::MapData::from_pin(&path).unwrap()).unwrap();
    let ctl: aya::maps::Array<_, Control> = aya::maps::Array::try_from(map).unwrap();
    ctl.get(&0, 0).unwrap().lease_until_ns
}

/// A capture stopped (SIGSTOP) past its lease is taken over by the next one; resumed, it finds
/// a lease it did not write and stops without reading the ring or clearing the flag, and the
/// next one captures on undisturbed. (Both used to read the one ring, and the first to stop
/// disarmed the other.)
#[test]
fn a_capture_stopped_past_its_lease_yields_to_the_next() {
    let lab = guarded_lab();
    let first = lab.scratch.file("first.pcapng");
    let mut stopped = stopped_past_lease(&lab, &["-w", first.to_str().unwrap()]);
    let before = lease(&lab);
    let second = lab.scratch.file("second.pcapng");
    let next = lab
        .cli_command(
            &lab.bpffs.path,
            &[
                "capture",
                &lab.guarded_if,
                "-w",
                second.to_str().unwrap(),
                "--count",
                "5",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut next = Reaped(Some(next));
    if let Err(e) = eventually(10, "the next capture takes the lease", || {
        lease(&lab) != before
    }) {
        let out = next.finish();
        panic!("{e}: {}", stderr_of(&out));
    }
    stopped.signal(libc::SIGCONT);
    let resumed = eventually(10, "the resumed capture stops", || {
        stopped.child().try_wait().unwrap().is_some()
    });
    let out = stopped.finish();
    let err = stderr_of(&out);
    resumed.unwrap_or_else(|e| panic!("{e}: {err}"));
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("another capture took the interface over"),
        "{err}"
    );
    assert_ne!(
        config_flags(&lab) & flags::CAPTURE,
        0,
        "the next capture is still armed"
    );
    flood_until_done(&lab, next.child(), 5).unwrap();
    let err = finish(&lab, next.0.take().unwrap());
    assert!(err.contains("5 captured"), "{err}");
}

/// A capture stopped past its lease with no other capture taking over (its output blocked,
/// say) renews the lease when it resumes and goes on capturing.
#[test]
fn a_capture_stopped_past_its_lease_goes_on_when_nobody_took_over() {
    let lab = guarded_lab();
    let file = lab.scratch.file("resumed.pcapng");
    let mut capture = stopped_past_lease(&lab, &["-w", file.to_str().unwrap(), "--count", "5"]);
    capture.signal(libc::SIGCONT);
    flood_until_done(&lab, capture.child(), 5).unwrap();
    let err = finish(&lab, capture.0.take().unwrap());
    assert!(
        err.contains("5 captured") && err.contains("stopped: count"),
        "{err}"
    );
}

/// A capture with `args`, armed, then stopped (SIGSTOP) until its lease has run out.
fn stopped_past_lease(lab: &Lab, args: &[&str]) -> Reaped {
    let mut capture = Reaped(Some(start_capture(lab, args, Stdio::null())));
    capture.signal(libc::SIGSTOP);
    std::thread::sleep(PAST_A_LEASE);
    capture
}

/// A child killed (SIGKILL, which ends a stopped process too) and reaped when dropped, so a
/// failed assertion leaves no capture stopped or running.
struct Reaped(Option<Child>);

impl Reaped {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("not reaped yet")
    }

    /// Sends `signal` to the child.
    fn signal(&mut self, signal: i32) {
        let pid = i32::try_from(self.child().id()).unwrap();
        // SAFETY: signals a child of this test.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Kills the child if it still runs, and returns what it wrote.
    fn finish(&mut self) -> std::process::Output {
        let mut child = self.0.take().expect("not reaped yet");
        if child.try_wait().unwrap().is_none() {
            let _ = child.kill();
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

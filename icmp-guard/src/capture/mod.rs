//! `icmp-guard capture`: what the running program drops (or judges), sampled into a pcapng.
//!
//! A [`Session`] arms the program: it writes the capture's settings and lease into
//! `IG_CAPTURE_CTL`, then sets the capture bits of `Config::flags` (under the lock, as every
//! config change). [`Session::run`] reads the `IG_CAPTURE` ring, writes each sample as a
//! pcapng packet commented with its reason and source prefix, and renews the lease; it stops
//! on a count, a signal, a closed output or the interface going away, and [`Session::finish`]
//! clears the bits again (also on every error after arming, through `Drop`). A capture killed
//! with SIGKILL leaves the bits set, but its lease runs out within
//! [`capture::LEASE_NS`](icmp_guard_common::capture::LEASE_NS): the program then stops
//! sampling, and the next capture of the interface clears the bits. The same holds for a
//! capture stopped (Ctrl-Z) or blocked on its output past its lease: the next capture takes
//! the interface over, and the first, resumed, finds a lease it did not write, stops before
//! it reads the ring again, and leaves the bits and counters to the new one.

pub mod pcapng;

use std::{
    cell::Cell,
    collections::BTreeMap,
    fmt::Write as _,
    io::{self, Write},
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd},
    path::Path,
    ptr::NonNull,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use aya::maps::{Array, Map, MapData, RingBuf};
use icmp_guard_common::{
    Config, Limit, Reason, SourceKey,
    capture::{self, Control, Sample},
    config::flags,
    maps,
    parse::{VLAN_MAX_DEPTH, ethertype},
};

use crate::{
    Error,
    kernel::{IfaceName, clock_tick_ns},
    pinned::{Guard, Lock, Pins, health::Health},
    report::format_source,
};

/// What to capture.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The reasons wanted; empty for every drop (or every judged verdict with `all`).
    pub reasons: Vec<Reason>,
    /// Every judged ICMP verdict, passes too.
    pub all: bool,
    /// Samples per second at most.
    pub rate: u32,
    /// Bytes of each frame, `MIN_SNAPLEN..=MAX_SNAPLEN`.
    pub snaplen: u32,
    /// Stop after this many frames.
    pub count: Option<u64>,
}

impl Settings {
    /// The reason bits for [`Control::reasons`] and the capture bits for `Config::flags`;
    /// an error names a reason capture never sees.
    pub fn bits(&self) -> Result<(u32, u32), Error> {
        let mut reasons = 0;
        for &reason in &self.reasons {
            if !reason.is_judged_icmp() {
                return Err(Error::Usage(format!(
                    "--reason {}: capture sees only verdicts on ICMP frames; pick from {}",
                    reason.name(),
                    judged_names()
                )));
            }
            reasons |= 1 << reason.slot();
        }
        if reasons == 0 {
            reasons = if self.all {
                Control::judged()
            } else {
                Control::drops()
            };
        }
        let passes = reasons & !Control::drops() != 0;
        let bits = if passes {
            flags::CAPTURE | flags::CAPTURE_ALL
        } else {
            flags::CAPTURE
        };
        Ok((reasons, bits))
    }
}

/// The names `--reason` accepts.
#[must_use]
pub fn judged_names() -> String {
    Reason::ALL
        .iter()
        .filter(|r| r.is_judged_icmp())
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A reason by its `stats` name.
pub fn reason_named(name: &str) -> Result<Reason, String> {
    Reason::ALL
        .iter()
        .copied()
        .find(|r| r.name() == name)
        .ok_or_else(|| format!("unknown reason {name:?}; pick from {}", judged_names()))
}

/// What a capture saw, for its summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub captured: u64,
    /// Samples the ring had no room for (the reader fell behind); None when not known (the
    /// capture was taken over, and the counters are the next one's).
    pub lost: Option<u64>,
    /// Wanted frames over `--rate`, not sampled; None when not known.
    pub over_rate: Option<u64>,
    pub by_reason: BTreeMap<&'static str, u64>,
    /// Records read from the ring that name no reason this version knows (a newer program
    /// swapped in under the capture) or are too short: not written.
    pub unreadable: u64,
    /// Why the capture stopped.
    pub stopped: &'static str,
}

impl Summary {
    /// The summary as printed on stderr.
    #[must_use]
    pub fn render(&self, iface: &IfaceName) -> String {
        let known = |n: Option<u64>| n.map_or_else(|| "unknown".to_owned(), |n| n.to_string());
        let mut out = format!(
            "icmp-guard capture {iface}: {} captured, {} lost (ring full), {} over --rate; stopped: {}",
            self.captured,
            known(self.lost),
            known(self.over_rate),
            self.stopped
        );
        if self.unreadable > 0 {
            let _ = write!(
                out,
                "; {} sample(s) unreadable by this version (not written)",
                self.unreadable
            );
        }
        for (reason, n) in &self.by_reason {
            let _ = write!(out, "\n  {reason:<22} {n}");
        }
        out
    }
}

/// SIGINT and SIGTERM received: counted, so that a write can tell whether one arrived
/// while it ran (see [`Stoppable`]).
static SIGNALS: AtomicU64 = AtomicU64::new(0);

/// Whether the ticks that follow a stop signal go on (see [`tick`]); cleared when the capture
/// has written its last byte.
static TICKING: AtomicBool = AtomicBool::new(true);

/// How long a write may stay blocked once a stop signal came: from the signal on, SIGALRM
/// interrupts whatever write is blocked every `STOP_GRACE`, and [`Stoppable`] ends the one
/// that has waited this long. Without the ticks, a signal that came between two writes left
/// the next one waiting on a reader that stopped reading for ever.
const STOP_GRACE: Duration = Duration::from_secs(1);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::SeqCst);
    tick();
}

extern "C" fn on_alarm(_: libc::c_int) {
    tick();
}

/// Schedules the next SIGALRM in [`STOP_GRACE`], unless the ticks were stopped. Async-signal
/// safe: an atomic load and alarm(2).
fn tick() {
    if TICKING.load(Ordering::SeqCst) {
        // SAFETY: alarm(2) has no memory arguments and is async-signal-safe.
        unsafe { libc::alarm(STOP_GRACE.as_secs().try_into().unwrap_or(1)) };
    }
}

/// Stops the ticks of [`tick`]: the flag first, so a handler that runs meanwhile does not
/// schedule another.
fn stop_ticking() {
    TICKING.store(false, Ordering::SeqCst);
    // SAFETY: as in `tick`; 0 cancels a pending alarm.
    unsafe { libc::alarm(0) };
}

/// Installs [`on_signal`] for SIGINT and SIGTERM, and [`on_alarm`] for the SIGALRM ticks that
/// follow them, without `SA_RESTART`, so that a write blocked on the output (a reader that
/// stopped reading) returns `EINTR` instead of going on waiting.
fn catch_stop_signals() -> io::Result<()> {
    let handlers: [(libc::c_int, extern "C" fn(libc::c_int)); 3] = [
        (libc::SIGINT, on_signal),
        (libc::SIGTERM, on_signal),
        (libc::SIGALRM, on_alarm),
    ];
    for (signal, handler) in handlers {
        // SAFETY: a zeroed sigaction is valid (empty mask, no flags); the handlers are
        // async-signal-safe (an atomic add, an atomic load and alarm(2)).
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = handler as *const () as libc::sighandler_t;
        action.sa_flags = 0;
        // SAFETY: a valid action for a catchable signal; the old action is not wanted.
        if unsafe { libc::sigaction(signal, &raw const action, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The error [`Stoppable`] returns once a signal cut its write short.
#[derive(Debug, thiserror::Error)]
#[error("stopped by a signal while the output was blocked")]
struct StoppedWriting;

/// Whether `e` is a write that a stop signal cut short ([`Stoppable`]).
fn stopped_writing(e: &io::Error) -> bool {
    matches!(e.get_ref(), Some(inner) if inner.is::<StoppedWriting>())
}

/// Why a write's error `e` ends the capture without failing it: the reader went away, or a
/// stop signal interrupted the write; `None` for an error that fails it.
fn write_stop(e: &io::Error) -> Option<&'static str> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Some(OUTPUT_CLOSED)
    } else if stopped_writing(e) {
        Some(SIGNAL_BLOCKED)
    } else {
        None
    }
}

/// The capture's output, under its buffer: once a stop signal came, a write that stays
/// blocked for [`STOP_GRACE`] ends the writing, where `write_all` (and `BufWriter`'s flush)
/// would retry it and block again. A write that the signal or a tick interrupts sooner is
/// retried, so a reader that is slow but reading gets the rest of the drain.
///
/// Interrupted before it wrote anything (`EINTR`), the write leaves the output on the end of
/// a block: the buffer above hands over whole blocks, and what it had written before went
/// out whole. A write of a block that went out in part (a pipe with some room left) is
/// followed by one of the rest, and if that one is ended, the output ends inside a block,
/// which readers (tcpdump, tshark, `icmp-guard replay`) report as cut short, after every
/// whole frame before it. That cannot be helped: the rest would wait on the reader.
struct Stoppable<W> {
    out: W,
    signals: &'static AtomicU64,
    /// [`STOP_GRACE`] (the tests' own).
    grace: Duration,
    cut: bool,
}

impl<W: Write> Stoppable<W> {
    const fn new(out: W, signals: &'static AtomicU64) -> Self {
        Self {
            out,
            signals,
            grace: STOP_GRACE,
            cut: false,
        }
    }

    fn stopped() -> io::Error {
        io::Error::other(StoppedWriting)
    }
}

impl<W: Write> Write for Stoppable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.cut {
            return Err(Self::stopped());
        }
        let started = Instant::now();
        loop {
            match self.out.write(buf) {
                // Only after a stop signal: SIGALRM ticks only after one, and no other signal
                // is caught (one would be retried by the caller).
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        && self.signals.load(Ordering::SeqCst) > 0 =>
                {
                    if started.elapsed() >= self.grace {
                        self.cut = true;
                        return Err(Self::stopped());
                    }
                }
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.cut {
            return Err(Self::stopped());
        }
        self.out.flush()
    }
}

/// An armed capture of one guarded interface.
pub struct Session {
    guard: Guard,
    bpffs: std::path::PathBuf,
    ctl: Array<MapData, Control>,
    ring: RingBuf<MapData>,
    lease: Lease,
    settings: Settings,
    armed: bool,
}

impl Session {
    /// Checks that `pins.iface` is guarded, attached and has the capture maps, refuses if
    /// another capture holds a live lease, then arms the program.
    pub fn start(bpffs: &Path, pins: Pins, settings: Settings) -> Result<Self, Error> {
        let (reasons, bits) = settings.bits()?;
        // Caught before the capture is armed: a signal from then on stops it (counted, and
        // seen by `run`), never kills it with the flag left set until its lease runs out.
        catch_stop_signals().map_err(|e| Error::Io {
            what: "catching SIGINT and SIGTERM (sigaction) for the capture of",
            path: pins.dir.clone(),
            source: e,
        })?;
        let _lock = Lock::acquire(bpffs)?;
        let guard = Guard::open(pins)?;
        let iface = guard.pins.iface.as_str().to_owned();
        let health = Health::of(&guard)?;
        if !health.attached() {
            // The health says what happened and what brings it back (a renamed or moved
            // guard enforces elsewhere, and `attach` of this name refuses it).
            return Err(Error::CaptureUnavailable {
                iface: iface.clone(),
                why: format!("its guard is {health}"),
                fix: "capture once `icmp-guard status` shows it attached".into(),
            });
        }
        let open = |name: &'static str| -> Result<MapData, Error> {
            let path = guard.pins.map(name);
            if !path.exists() {
                return Err(Error::CaptureUnavailable {
                    iface: iface.clone(),
                    why: format!(
                        "its program was attached by an icmp-guard without capture (no {name} pinned)"
                    ),
                    fix: format!(
                        "upgrade it in place with `icmp-guard attach {iface} --replace`, which keeps its state"
                    ),
                });
            }
            MapData::from_pin(&path).map_err(Error::pin("opening the pinned map", &path))
        };
        let typed = |name: &'static str, data: MapData| {
            Map::from_map_data(data)
                .map_err(Error::pin("opening the pinned map", guard.pins.map(name)))
        };
        let ctl_data = open(maps::CAPTURE_CTL)?;
        let lease = Lease::map(ctl_data.fd().as_fd(), &iface)?;
        let mut ctl: Array<MapData, Control> = Array::try_from(typed(maps::CAPTURE_CTL, ctl_data)?)
            .map_err(Error::map(maps::CAPTURE_CTL))?;
        let mut ring: RingBuf<MapData> =
            RingBuf::try_from(typed(maps::CAPTURE, open(maps::CAPTURE)?)?)
                .map_err(Error::map(maps::CAPTURE))?;

        let mut cfg = guard.maps.config()?;
        let running = |until: u64, now: u64| Error::CaptureUnavailable {
            iface: iface.clone(),
            why: format!(
                "another capture of it is running (its lease ends in {} ms)",
                until.saturating_sub(now) / 1_000_000
            ),
            fix: "stop that one first; one capture of an interface at a time".into(),
        };
        let limit = Limit::new(settings.rate, capture::burst_of(settings.rate))
            .ok_or_else(|| Error::InvalidLimit {
                what: "rate",
                why: format!("{} samples per second is out of range", settings.rate),
            })?
            .on_clock(clock_tick_ns());
        let seen = lease.current();
        let now = monotonic_ns();
        if cfg.flags & flags::CAPTURE != 0 && seen > now {
            return Err(running(seen, now));
        }
        // Fenced before the ring is touched: a capture whose lease ran out while it was
        // stopped, and resumes now, can no longer renew it (its compare-and-swap expects the
        // value it wrote), so it stops before it reads the ring this one drains.
        if !lease.fence(seen) {
            let until = lease.current();
            return Err(running(until, monotonic_ns()));
        }
        let mut guard = guard;
        let mut arm = || -> Result<(), Error> {
            // Samples a killed capture left in the ring are not this capture's. Emptied before
            // the lease is written, so none of this capture's own is thrown away: until then
            // no lease holds, and the program samples nothing.
            while ring.next().is_some() {}
            let control = Control {
                lease_until_ns: monotonic_ns() + capture::LEASE_NS,
                limit,
                tat_ns: 0,
                lost: 0,
                over_rate: 0,
                reasons,
                snaplen: settings.snaplen,
            };
            ctl.set(0, control, 0).map_err(Error::map(format!(
                "writing the capture control of {iface}"
            )))?;
            lease.claim(control.lease_until_ns);
            cfg.flags = (cfg.flags & !flags::CAPTURE_BITS) | bits;
            guard.maps.set_config(&cfg)
        };
        // A start that fails past its fence (a map update refused) leaves the fence: a capture
        // that was only stopped then stops as taken over, its flag left set with a lease long
        // past (the program samples nothing) for the next capture to clear. Putting its lease
        // back would not put back its reading position in the ring, which this one emptied.
        arm()?;
        Ok(Self {
            guard,
            bpffs: bpffs.to_path_buf(),
            ctl,
            ring,
            lease,
            settings,
            armed: true,
        })
    }

    /// Writes samples to `out` (named `target` in errors: the file, or `-` for stdout;
    /// unbuffered, as writes are buffered here above the check for a stop signal) as pcapng
    /// until the count, a signal (SIGINT, SIGTERM; also while a write is blocked), a closed
    /// output, the interface going away or another capture taking it over; then disarms
    /// (unless taken over) and returns the summary.
    pub fn run(mut self, out: impl Write, target: &Path) -> Result<Summary, Error> {
        let iface = self.guard.pins.iface.as_str().to_owned();
        let out = io::BufWriter::new(Stoppable::new(out, &SIGNALS));
        let result = self.read_loop(out, target, &iface);
        self.end(result)
    }

    /// [`run`](Self::run) into the output `open` gives, once it gives one: `None` while the
    /// output cannot be opened yet (a FIFO that nobody reads), asked again every
    /// [`OUTPUT_POLL`] while the lease is renewed as in `run`. A stop signal, another capture
    /// taking over or the guard going away meanwhile ends the capture with nothing written: a
    /// FIFO's `open(2)` would wait for a reader through every signal, as the standard library
    /// retries it. The program samples from the start, so what it took while the capture
    /// waited is written first (what the ring had no room for is counted as lost).
    pub fn run_when_open<W: Write>(
        mut self,
        target: &Path,
        mut open: impl FnMut() -> Result<Option<W>, Error>,
    ) -> Result<Summary, Error> {
        let mut renewed = Instant::now();
        let stopped = loop {
            if SIGNALS.load(Ordering::SeqCst) > 0 {
                break NO_OUTPUT;
            }
            if !self.lease.ours() {
                break TAKEN_OVER;
            }
            if renewed.elapsed() >= Duration::from_nanos(capture::LEASE_RENEW_NS) {
                if let Some(why) = self.renew()? {
                    break why;
                }
                renewed = Instant::now();
            }
            if let Some(out) = open()? {
                // Renewed now, so `run` starts with a whole lease ahead.
                if let Some(why) = self.renew()? {
                    break why;
                }
                return self.run(out, target);
            }
            std::thread::sleep(OUTPUT_POLL);
        };
        self.end(Ok(Summary {
            stopped,
            ..Summary::default()
        }))
    }

    /// Renews the lease, if the capture is still to go on: why it stops instead (the guard no
    /// longer enforces, was attached anew, or another capture took the lease over).
    fn renew(&self) -> Result<Option<&'static str>, Error> {
        Ok(if !Health::of(&self.guard)?.attached() {
            Some(
                "the guard no longer enforces on the interface of its name (gone, detached, \
                 renamed or moved: see `icmp-guard status`)",
            )
        } else if !self.guard.still_pinned() {
            Some("the guard was attached anew, with a ring of its own: capture again")
        } else if !self.lease.renew() {
            Some(TAKEN_OVER)
        } else {
            None
        })
    }

    /// Ends the capture that `result` summarises: the ticks a stop signal started have done
    /// their work (everything is written and the writer dropped), the lease ends and the
    /// program is disarmed, and the summary gets the final counters.
    fn end(&mut self, result: Result<Summary, Error>) -> Result<Summary, Error> {
        stop_ticking();
        let finished = self.finish();
        let mut summary = result?;
        if let Some(control) = finished? {
            summary.lost = Some(control.lost);
            summary.over_rate = Some(control.over_rate);
        }
        Ok(summary)
    }

    fn read_loop(&mut self, out: impl Write, target: &Path, iface: &str) -> Result<Summary, Error> {
        let io_err = |e: io::Error| Error::Io {
            what: "writing the capture",
            path: target.to_path_buf(),
            source: e,
        };
        let mut writer = pcapng::Writer::new(out, iface, self.settings.snaplen).map_err(io_err)?;
        // Read again at every renewal: a change of prefix lengths, or of the wall clock,
        // shows in the comments and time stamps within a second.
        let mut cfg = self.guard.maps.config()?;
        let mut epoch_offset = realtime_ns().saturating_sub(monotonic_ns());
        let mut summary = Summary::default();
        let mut renewed = Instant::now();
        // When a stop signal was first seen: samples the program took after it are not
        // written, so that a flood cannot hold the drain past the signal.
        let mut stop_at: Option<u64> = None;
        let stopped = loop {
            // Checked before every read of the ring, which the capture that took over reads.
            if !self.lease.ours() {
                break TAKEN_OVER;
            }
            if self.settings.count.is_some_and(|n| summary.captured >= n) {
                break "count";
            }
            if renewed.elapsed() >= Duration::from_nanos(capture::LEASE_RENEW_NS) {
                if let Some(why) = self.renew()? {
                    break why;
                }
                renewed = Instant::now();
                cfg = self.guard.maps.config()?;
                epoch_offset = realtime_ns().saturating_sub(monotonic_ns());
            }
            let (mut wrote, mut ended) = (false, None);
            // The lease is asked before every record: a write below may block past it, and
            // the capture that took over reads the same ring. A drain that lasts (a slow
            // output under a flood) goes back to renew the lease and to look for a signal.
            let renew_every = Duration::from_nanos(capture::LEASE_RENEW_NS);
            while self.lease.ours() && renewed.elapsed() < renew_every {
                if stop_at.is_none() && SIGNALS.load(Ordering::SeqCst) > 0 {
                    stop_at = Some(monotonic_ns());
                }
                let Some(record) = self.ring.next() else {
                    break;
                };
                let Some((header, data)) = Sample::parse(&record) else {
                    summary.unreadable += 1;
                    continue;
                };
                if stop_at.is_some_and(|at| header.time_ns > at) {
                    break;
                }
                // `Reason::ALL` is in slot order; a slot past it (a newer program swapped in
                // under this reader) is skipped rather than named wrongly.
                let Some(&reason) = Reason::ALL.get(header.reason as usize) else {
                    summary.unreadable += 1;
                    continue;
                };
                let comment = comment(reason, data, &cfg);
                // Copied out and the record released before the write, which may block: the
                // reader's position in the ring is written back when a record is released.
                let data = data.to_vec();
                // Unless the lease was lost meanwhile: the capture that took over has emptied
                // the ring, and this reader's older position, written back, would undo that.
                // (A loss between this look and the release is not caught: aya writes the
                // position back without a compare.)
                if !self.lease.ours() {
                    std::mem::forget(record);
                    break;
                }
                drop(record);
                // A reader that went away (`| tcpdump -c 10 -nr -`) is met here as often as
                // at the flush: the buffer fills within one wake-up under a flood.
                if let Err(e) = writer.packet(
                    header.time_ns.saturating_add(epoch_offset),
                    &data,
                    header.orig_len,
                    &comment,
                ) {
                    ended = Some(write_stop(&e).ok_or_else(|| io_err(e))?);
                    break;
                }
                wrote = true;
                summary.captured += 1;
                *summary.by_reason.entry(reason.name()).or_default() += 1;
                if self.settings.count.is_some_and(|n| summary.captured >= n) {
                    break;
                }
            }
            if let Some(why) = ended {
                break why;
            }
            if wrote && let Err(e) = writer.flush() {
                break write_stop(&e).ok_or_else(|| io_err(e))?;
            }
            // After the drain: what the program sampled before the signal is written.
            if SIGNALS.load(Ordering::SeqCst) > 0 {
                break "signal";
            }
            wait_readable(self.ring.as_raw_fd(), 100);
        };
        // Also when nothing was written: the headers may still sit in the buffer, and a write
        // that fails here (a full disk) must fail the capture, not be lost in the drop.
        let stopped = match writer.flush() {
            Ok(()) => stopped,
            Err(_) if stopped == OUTPUT_CLOSED || stopped == SIGNAL_BLOCKED => stopped,
            Err(e) => write_stop(&e).ok_or_else(|| io_err(e))?,
        };
        summary.stopped = stopped;
        Ok(summary)
    }

    /// Ends the lease and clears the capture bits (under the lock); returns the capture's
    /// final counters. None when another capture took over: the bits and counters are its.
    fn finish(&mut self) -> Result<Option<Control>, Error> {
        if !self.armed {
            return Ok(None);
        }
        self.armed = false;
        let _lock = Lock::acquire(&self.bpffs)?;
        if !self.lease.end() {
            return Ok(None);
        }
        let mut cfg = self.guard.maps.config()?;
        cfg.flags &= !flags::CAPTURE_BITS;
        self.guard.maps.set_config(&cfg)?;
        self.ctl.get(&0, 0).map(Some).map_err(Error::map(format!(
            "reading the capture control of {}",
            self.guard.pins.iface.as_str()
        )))
    }
}

const OUTPUT_CLOSED: &str = "output closed";
/// Why a capture stops when a signal came before its output could be opened.
const NO_OUTPUT: &str =
    "signal (before the output was opened, e.g. a FIFO nobody read: nothing written)";
/// How often [`Session::run_when_open`] tries to open the output again.
const OUTPUT_POLL: Duration = Duration::from_millis(100);
/// Why a capture stops when a signal interrupted a write its reader did not take.
const SIGNAL_BLOCKED: &str =
    "signal (while the output was blocked: its last frame may be cut short)";

/// Why a capture stops when another holds its interface: its lease ran out (the process was
/// stopped, or its output blocked, for longer than the lease) and the next capture took it.
const TAKEN_OVER: &str = "another capture took the interface over (this one's lease had run \
                          out while it was stopped or its output blocked)";

impl Drop for Session {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = self.finish()
        {
            eprintln!("icmp-guard: clearing the capture flag failed: {e}");
        }
    }
}

/// The capture control's value mapped into this process (`BPF_F_MMAPABLE`), so the lease is
/// renewed with one 8-byte compare-and-swap and the counters the program adds to are never
/// rewritten. The lease's value is also the capture's claim: one that finds another value
/// there than it last wrote has been taken over, and stops.
struct Lease {
    at: NonNull<libc::c_void>,
    len: usize,
    /// The lease this capture last wrote (0 before it claimed one).
    held: Cell<u64>,
}

impl Lease {
    fn map(fd: BorrowedFd<'_>, iface: &str) -> Result<Self, Error> {
        Self::of_page(fd).map_err(|e| Error::CaptureUnavailable {
            iface: iface.into(),
            why: format!("its {} map cannot be mapped: {e}", maps::CAPTURE_CTL),
            fix: format!(
                "its pins are of an older layout: upgrade with `icmp-guard attach {iface} --replace`"
            ),
        })
    }

    /// The lease in the first page of `fd`, mapped shared and writable.
    fn of_page(fd: BorrowedFd<'_>) -> io::Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let len = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        // SAFETY: maps one page of the map's value area, shared and writable; checked below.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if at == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            at: NonNull::new(at).expect("mmap succeeded"),
            len,
            held: Cell::new(0),
        })
    }

    fn word(&self) -> &AtomicU64 {
        // SAFETY: the mapping holds the array's one `Control` value at offset 0, page
        // aligned, for as long as `self`; the lease is a naturally aligned u64, which the
        // program only reads, other captures change atomically, and only a starting capture
        // rewrites whole, under the command lock and after it fenced this one's run-out lease
        // (see `fence`): a value read meanwhile is only compared with this capture's, which
        // it no longer is.
        unsafe {
            let control = self.at.as_ptr().cast::<Control>();
            AtomicU64::from_ptr(&raw mut (*control).lease_until_ns)
        }
    }

    /// Records the lease the capture's start wrote with the whole control value.
    fn claim(&self, until_ns: u64) {
        self.held.set(until_ns);
    }

    /// The lease as it is now.
    fn current(&self) -> u64 {
        self.word().load(Ordering::SeqCst)
    }

    /// Replaces the run-out lease `seen` with one long past (1 ns after boot), so that its
    /// holder cannot renew it; false if someone changed it since `seen` was read.
    fn fence(&self, seen: u64) -> bool {
        self.word()
            .compare_exchange(seen, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Whether the lease is still the one this capture wrote.
    fn ours(&self) -> bool {
        self.word().load(Ordering::SeqCst) == self.held.get()
    }

    /// Extends the lease; false if another capture took it over. A lease that ran out (the
    /// capture was stopped, or its output blocked) is renewed if no capture took it: one
    /// that takes it over fences it first (see [`Lease::fence`]), so this compare fails then.
    fn renew(&self) -> bool {
        let until = monotonic_ns() + capture::LEASE_NS;
        let swapped = self
            .word()
            .compare_exchange(self.held.get(), until, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if swapped {
            self.held.set(until);
        }
        swapped
    }

    /// Ends the lease; false if another capture holds it now.
    fn end(&self) -> bool {
        self.word()
            .compare_exchange(self.held.get(), 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `map` mapped.
        unsafe { libc::munmap(self.at.as_ptr(), self.len) };
    }
}

/// Blocks until the ring has data or `ms` pass (or a signal arrives).
fn wait_readable(fd: i32, ms: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; the result only decides when to look again.
    unsafe { libc::poll(&raw mut pfd, 1, ms) };
}

/// The program's clock (`bpf_ktime_get_ns`).
fn monotonic_ns() -> u64 {
    crate::kernel::clock_ns(libc::CLOCK_MONOTONIC)
}

fn realtime_ns() -> u64 {
    crate::kernel::clock_ns(libc::CLOCK_REALTIME)
}

/// The packet comment: the reason as `stats` names it, the source address and the bucket
/// prefix it is metered under (as `stats` shows it).
#[must_use]
pub fn comment(reason: Reason, frame: &[u8], cfg: &Config) -> String {
    match source_of(frame) {
        Some((addr, v4)) => {
            let shown = if v4 {
                Ipv4Addr::new(addr[12], addr[13], addr[14], addr[15]).to_string()
            } else {
                Ipv6Addr::from(addr).to_string()
            };
            let family = if v4 {
                icmp_guard_common::parse::Family::V4
            } else {
                icmp_guard_common::parse::Family::V6
            };
            let bucket = SourceKey { addr }.masked(cfg.mask(family));
            format!(
                "reason={} src={shown} source={}",
                reason.name(),
                format_source(&bucket, cfg)
            )
        }
        None => format!("reason={} source=-", reason.name()),
    }
}

/// The source address of a frame (IPv4 mapped) and whether it is IPv4, read past Ethernet and
/// up to [`VLAN_MAX_DEPTH`] tags as the program's parser reads it; `None` when the IP
/// header's addresses are not in the bytes.
#[must_use]
pub fn source_of(frame: &[u8]) -> Option<([u8; 16], bool)> {
    let be16 = |at: usize| Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
    let mut proto = be16(12)?;
    let mut l3 = 14;
    for _ in 0..VLAN_MAX_DEPTH {
        if proto != ethertype::VLAN_8021Q && proto != ethertype::VLAN_8021AD {
            break;
        }
        proto = be16(l3 + 2)?;
        l3 += 4;
    }
    let mut addr = [0u8; 16];
    match proto {
        ethertype::IPV4 => {
            addr[10] = 0xff;
            addr[11] = 0xff;
            addr[12..].copy_from_slice(frame.get(l3 + 12..l3 + 16)?);
            Some((addr, true))
        }
        ethertype::IPV6 => {
            addr.copy_from_slice(frame.get(l3 + 8..l3 + 24)?);
            Some((addr, false))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two captures' views of one lease word, as two processes map the control value.
    fn leases() -> (Lease, Lease) {
        // Each view maps the same page of a memfd (each `Lease` unmaps its own mapping).
        // SAFETY: memfd_create with a valid name and no flags.
        let fd = unsafe { libc::memfd_create(c"lease".as_ptr(), 0) };
        assert!(fd >= 0);
        // SAFETY: a fresh memfd we own.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // Past any page size.
        let size: libc::off_t = 1 << 16;
        // SAFETY: sizes the memfd we own.
        assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), size) }, 0);
        let view = || Lease::of_page(fd.as_fd()).unwrap();
        (view(), view())
    }

    #[test]
    fn a_run_out_lease_is_renewed_until_it_is_fenced() {
        // A live lease: renewed by its holder; a fence with a stale reading fails.
        let (a, b) = leases();
        let live = monotonic_ns() + 10_000_000_000;
        a.word().store(live, Ordering::SeqCst);
        a.claim(live);
        let stale = b.current();
        assert!(a.renew(), "a live lease is renewed");
        assert!(
            !b.fence(stale),
            "a lease renewed since it was read is not fenced"
        );
        assert!(a.ours());

        // A run-out lease nobody took is renewed (its capture's output blocked a while);
        // once the next capture fenced it, it is no longer the holder's.
        let (a, b) = leases();
        let past = monotonic_ns() - 1;
        a.word().store(past, Ordering::SeqCst);
        a.claim(past);
        assert!(a.renew(), "nobody took it");
        let run_out = monotonic_ns() - 1;
        a.word().store(run_out, Ordering::SeqCst);
        a.claim(run_out);
        assert!(b.fence(b.current()));
        assert!(!a.ours() && !a.renew() && !a.end());
    }

    /// One write of a scripted output: what it returns and whether a stop signal arrives
    /// while it runs.
    #[derive(Clone, Copy, Debug)]
    enum Step {
        /// Takes this many bytes at most.
        Takes(usize),
        /// Fails with `EINTR`, nothing written.
        Interrupted,
    }

    /// An output that answers each write with the next step, writing what it takes.
    struct Scripted {
        steps: std::collections::VecDeque<(Step, bool)>,
        signals: &'static AtomicU64,
        written: Vec<u8>,
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (step, signal) = self
                .steps
                .pop_front()
                .unwrap_or((Step::Takes(usize::MAX), false));
            if signal {
                self.signals.fetch_add(1, Ordering::SeqCst);
            }
            match step {
                Step::Takes(n) => {
                    let n = n.min(buf.len());
                    self.written.extend_from_slice(&buf[..n]);
                    Ok(n)
                }
                Step::Interrupted => Err(io::ErrorKind::Interrupted.into()),
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// (the output's writes, with whether a stop signal arrives during each; a signal before
    /// the write; how long a write may stay blocked; bytes written of 8; whether the writing
    /// stops). After a stop signal, a write interrupted once it has waited the grace ends the
    /// writing, where `write_all` would retry it and block again; one interrupted sooner is
    /// retried, and a write that goes out in part is no stop.
    #[test]
    fn a_write_blocked_past_the_grace_after_a_stop_signal_ends_the_writing() {
        use Step::{Interrupted, Takes};
        const NOW: Duration = Duration::ZERO;
        const LATER: Duration = Duration::from_secs(3600);
        type Case = (&'static [(Step, bool)], bool, Duration, usize, bool);
        let cases: [Case; 9] = [
            (&[(Takes(8), false)], false, NOW, 8, false),
            (
                &[(Takes(3), false), (Takes(5), false)],
                false,
                NOW,
                8,
                false,
            ),
            (&[(Interrupted, true)], false, NOW, 0, true),
            // A reader that is slow but reading gets the rest.
            (
                &[(Interrupted, true), (Takes(8), false)],
                false,
                LATER,
                8,
                false,
            ),
            (&[(Takes(3), true), (Takes(5), false)], false, NOW, 8, false),
            (
                &[(Takes(3), true), (Interrupted, false)],
                false,
                NOW,
                3,
                true,
            ),
            // A signal that came before (during a poll): its ticks interrupt the write.
            (
                &[(Takes(3), false), (Interrupted, false)],
                true,
                NOW,
                3,
                true,
            ),
            (
                &[(Takes(3), false), (Interrupted, false), (Takes(5), false)],
                true,
                LATER,
                8,
                false,
            ),
            // No stop signal: an interruption is another signal's, which `write_all` retries.
            (
                &[(Interrupted, false), (Takes(8), false)],
                false,
                NOW,
                8,
                false,
            ),
        ];
        for (steps, signalled, grace, written, stops) in cases {
            let signals: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
            if signalled {
                signals.store(1, Ordering::SeqCst);
            }
            let scripted = Scripted {
                steps: steps.iter().copied().collect(),
                signals,
                written: Vec::new(),
            };
            let mut out = Stoppable::new(scripted, signals);
            out.grace = grace;
            let result = out.write_all(&[7; 8]);
            assert_eq!(out.out.written.len(), written, "{steps:?}");
            match result {
                Err(e) => assert!(stops && stopped_writing(&e), "{steps:?}: {e}"),
                Ok(()) => assert!(!stops, "{steps:?}"),
            }
            if stops {
                assert!(stopped_writing(&out.write_all(&[7]).unwrap_err()));
                assert!(stopped_writing(&out.flush().unwrap_err()));
            }
        }
    }

    fn frame(ethertypes: &[u16], ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        for (i, t) in ethertypes.iter().enumerate() {
            f.extend_from_slice(&t.to_be_bytes());
            if i + 1 < ethertypes.len() {
                f.extend_from_slice(&[0, 1]);
            }
        }
        f.extend_from_slice(ip);
        f
    }

    fn ipv4(src: [u8; 4]) -> Vec<u8> {
        let mut h = vec![0x45u8; 1];
        h.resize(12, 0);
        h.extend_from_slice(&src);
        h.extend_from_slice(&[192, 0, 2, 1]);
        h
    }

    fn ipv6(src: Ipv6Addr) -> Vec<u8> {
        let mut h = vec![0x60u8];
        h.resize(8, 0);
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        h
    }

    #[test]
    fn comments_name_reason_and_bucket() {
        let mut cfg = Config::with_defaults().derive(4_000_000).unwrap();
        cfg.v4_prefix = 24;
        cfg = cfg.derive(4_000_000).unwrap();
        let v6: Ipv6Addr = "2001:db8:1:2:3::9".parse().unwrap();
        let cases: [(Vec<u8>, Reason, &str); 6] = [
            (
                frame(&[0x0800], &ipv4([198, 51, 100, 7])),
                Reason::DroppedRateSource,
                "reason=dropped_rate_source src=198.51.100.7 source=198.51.100.0/24",
            ),
            (
                frame(&[0x8100, 0x88a8, 0x0800], &ipv4([203, 0, 113, 9])),
                Reason::DroppedMartian,
                "reason=dropped_martian src=203.0.113.9 source=203.0.113.0/24",
            ),
            (
                frame(&[0x86dd], &ipv6(v6)),
                Reason::Passed,
                "reason=passed src=2001:db8:1:2:3::9 source=2001:db8:1:2::/64",
            ),
            (
                frame(&[0x0800], &ipv4([198, 51, 100, 7])[..14]),
                Reason::DroppedMalformed,
                "reason=dropped_malformed source=-",
            ),
            (
                frame(&[0x0806], &[0; 28]),
                Reason::DroppedMalformed,
                "reason=dropped_malformed source=-",
            ),
            (
                vec![0; 10],
                Reason::DroppedOversize,
                "reason=dropped_oversize source=-",
            ),
        ];
        for (bytes, reason, want) in cases {
            assert_eq!(comment(reason, &bytes, &cfg), want);
        }
    }

    #[test]
    fn reasons_pick_bits() {
        let settings = |reasons: Vec<Reason>, all: bool| Settings {
            reasons,
            all,
            rate: 1000,
            snaplen: 256,
            count: None,
        };
        let drop = Reason::DroppedRateSource;
        let cases = [
            (settings(vec![], false), Control::drops(), flags::CAPTURE),
            (
                settings(vec![], true),
                Control::judged(),
                flags::CAPTURE_BITS,
            ),
            (
                settings(vec![drop], false),
                1 << drop.slot(),
                flags::CAPTURE,
            ),
            (
                settings(vec![Reason::Passed], false),
                1 << Reason::Passed.slot(),
                flags::CAPTURE_BITS,
            ),
        ];
        for (s, reasons, bits) in cases {
            assert_eq!(s.bits().unwrap(), (reasons, bits), "{:?}", s.reasons);
        }
        assert!(settings(vec![Reason::PassedNonIcmp], false).bits().is_err());
        assert_eq!(reason_named("dropped_rate_source"), Ok(drop));
        assert!(reason_named("nope").is_err());
    }
}
